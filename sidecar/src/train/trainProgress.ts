/**
 * `gpiot train`'s progress on stderr: a live status line on a terminal (step, loss, tokens/s, ETA),
 * and one line per validation, checkpoint and warning. Without a terminal a step line is printed
 * about twenty times per run, so logs stay readable.
 */
import type { TrainEvent } from "./trainEvents";

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const roleList = (losses: Record<string, number>) =>
  Object.entries(losses)
    .map(([role, loss]) => `${role.toUpperCase()} ${loss.toFixed(3)}`)
    .join(", ");

export function describeStep(event: Extract<TrainEvent, { event: "step" }>, epochs: number): string {
  return `step ${event.step}/${event.steps} · epoch ${event.epoch}/${epochs} · loss ${event.loss.toFixed(4)} · ${Math.round(event.tokens_per_s).toLocaleString("en")} tok/s · ETA ${formatDuration(event.eta_s)}`;
}

export class TrainProgress {
  private readonly live: boolean;
  private status = "";
  private epochs = 1;
  private every = 1;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly enabled: boolean,
  ) {
    this.live = enabled && Boolean(stream.isTTY);
  }

  private clear(): void {
    if (this.live && this.status) this.stream.write("\r\x1b[K");
    this.status = "";
  }

  note(message: string): void {
    if (!this.enabled) return;
    this.clear();
    this.stream.write(`${message}\n`);
  }

  error(message: string): void {
    this.clear();
    this.stream.write(`error: ${message}\n`);
  }

  private setStatus(text: string): void {
    if (!this.live) return;
    this.status = text.slice(0, (this.stream.columns || 100) - 1);
    this.stream.write(`\r\x1b[K${this.status}`);
  }

  event(event: TrainEvent): void {
    switch (event.event) {
      case "fit":
        this.note(`Fit: ${event.summary}`);
        break;
      case "start": {
        this.epochs = event.epochs;
        this.every = Math.max(1, Math.round(event.steps / 20));
        const counts = `${event.parameters.trainable.toLocaleString("en")} trainable parameters of ${event.parameters.total.toLocaleString("en")} (${(100 * event.trainable_share).toFixed(3)}%)`;
        const records = Object.entries(event.train_records)
          .map(([role, n]) => `${n} ${role.toUpperCase()}`)
          .join(" + ");
        this.note(`${event.mode.toUpperCase()} on ${event.roles.map((role) => role.toUpperCase()).join(", ")}: ${counts}`);
        this.note(`${records} training records; ${event.steps} steps (${event.epochs} epoch${event.epochs === 1 ? "" : "s"}) on ${event.device}, base weights ${event.weights}, seed ${event.seed}${event.start_step ? `; resuming at step ${event.start_step}` : ""}`);
        break;
      }
      case "step": {
        const line = describeStep(event, this.epochs);
        if (this.live) this.setStatus(line);
        else if (event.step % this.every === 0 || event.step === event.steps) this.note(line);
        break;
      }
      case "validation": {
        let line = `epoch ${event.epoch} validation loss ${event.loss.toFixed(4)} (${roleList(event.role_loss)})`;
        if (event.loss_without_cross !== undefined) line += `; without the cross projections (as exported) ${event.loss_without_cross.toFixed(4)}`;
        this.note(line);
        break;
      }
      case "checkpoint":
        if (this.live) this.setStatus(`${this.status} · checkpoint saved`);
        break;
      case "resumed":
        this.note(`Resuming from ${event.checkpoint} (step ${event.step})`);
        break;
      case "warning":
        this.note(`warning: ${event.message}`);
        break;
      case "exported":
        this.note(`${event.role.toUpperCase()} PEFT adapter: ${event.dir} (rank ${event.rank})`);
        break;
      case "generated":
        this.note(`Generated ${event.samples} held-out ${event.role.toUpperCase()} answer(s) without a grammar (${event.split} split)`);
        break;
      case "interrupted":
        this.note(event.message);
        break;
      default:
        break;
    }
  }

  finish(): void {
    this.clear();
  }
}
