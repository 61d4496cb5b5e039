/**
 * Token-by-token deltas are merged into one notification per flush interval, so the sidecar
 * sends tens of messages a second rather than one per token; every other event flushes the
 * pending delta first, so order is kept.
 */
import type { JobEvent } from "../protocol";

type DeltaEvent = Extract<JobEvent, { type: "textDelta" | "codeDelta" }>;

function isDelta(event: JobEvent): event is DeltaEvent {
  return event.type === "textDelta" || event.type === "codeDelta";
}

function sameStream(a: DeltaEvent, b: DeltaEvent): boolean {
  return a.type === b.type && a.jobId === b.jobId && a.subTaskId === b.subTaskId && (a.type === "codeDelta" || (b.type === "textDelta" && a.stage === b.stage));
}

export class EventBatcher {
  private pending: DeltaEvent[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly send: (event: JobEvent) => void,
    private readonly intervalMs = 16,
  ) {}

  push(event: JobEvent): void {
    if (!isDelta(event)) {
      this.flush();
      this.send(event);
      return;
    }
    const last = this.pending.find((pending) => sameStream(pending, event));
    if (last) last.text += event.text;
    else this.pending.push({ ...event });
    this.timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const pending = this.pending;
    this.pending = [];
    for (const event of pending) this.send(event);
  }
}
