/**
 * The CLI's progress on stderr: one line per finished step, and on a terminal a live status
 * line with the tokens streamed so far.
 */
import type { JobEvent, ModelEvent } from "../protocol";

const stageLabels: Record<string, string> = { td: "Decomposing the requirement", rt: "Writing the spec", cg: "Writing the code", check: "Checking", assemble: "Assembling the program", write: "Writing files", verify: "Verifying" };

export class ProgressDisplay {
  private readonly live: boolean;
  private statusLine = "";
  private streamedChars = 0;
  private stageStarted = 0;
  private subTaskNames = new Map<string, string>();

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly options: { enabled: boolean },
  ) {
    this.live = options.enabled && Boolean(stream.isTTY);
  }

  private clearStatus(): void {
    if (this.live && this.statusLine) this.stream.write("\r\x1b[K");
    this.statusLine = "";
  }

  private setStatus(text: string): void {
    if (!this.live) return;
    this.statusLine = text.slice(0, (this.stream.columns || 80) - 1);
    this.stream.write(`\r\x1b[K${this.statusLine}`);
  }

  note(message: string): void {
    if (!this.options.enabled) return;
    this.clearStatus();
    this.stream.write(`${message}\n`);
  }

  error(message: string): void {
    this.clearStatus();
    this.stream.write(`error: ${message}\n`);
  }

  model(event: ModelEvent): void {
    if (event.type === "loading") this.setStatus(`Loading models ${Math.round(event.progress * 100)}%`);
    else if (event.type === "loaded") {
      this.note(`Models ready: profile ${event.info.profile}, ${event.info.distinctModels} file(s), ${event.info.threads} thread(s), ${event.info.gpu || "CPU"}, ${event.info.loadMs} ms`);
      if (event.info.fit) this.note(`  ${event.info.fit.summary}${event.info.fit.advice ? ` ${event.info.fit.advice}` : ""}`);
    }
  }

  job(event: JobEvent): void {
    switch (event.type) {
      case "stageStarted": {
        this.streamedChars = 0;
        this.stageStarted = performance.now();
        const name = event.subTaskId ? ` "${this.subTaskNames.get(event.subTaskId) ?? event.subTaskId}"` : "";
        this.setStatus(`${stageLabels[event.stage]}${name}...`);
        break;
      }
      case "textDelta": {
        this.streamedChars += event.text.length;
        const seconds = (performance.now() - this.stageStarted) / 1000;
        this.setStatus(`${stageLabels[event.stage]}: ${this.streamedChars} chars, ${seconds.toFixed(1)} s`);
        break;
      }
      case "decomposed":
        for (const { id, subTask } of event.subTasks) this.subTaskNames.set(id, subTask.name);
        this.note(`Sub-tasks (${event.subTasks.length}):`);
        event.subTasks.forEach(({ subTask }, index) => this.note(`  ${index + 1}. ${subTask.name.replace(/\s+/g, " ").slice(0, 100)}`));
        break;
      case "specReady":
        this.note(`  spec ready: ${this.subTaskNames.get(event.subTaskId) ?? event.subTaskId}${event.citations?.length ? ` (${event.citations.length} passage(s) from your documents)` : ""}`);
        break;
      case "warning":
        this.note(`Warning: ${event.message}`);
        break;
      case "codeReady": {
        const syntax = !event.syntax.checked ? "syntax not checked" : event.syntax.ok ? "syntax ok" : `syntax error${event.syntax.line ? ` at line ${event.syntax.line}` : ""}`;
        this.note(`  code ready: ${this.subTaskNames.get(event.subTaskId) ?? event.subTaskId} (${syntax}${event.citations?.length ? `, ${event.citations.length} passage(s)` : ""})`);
        break;
      }
      case "stageFailed":
        this.note(`  ${stageLabels[event.stage]} failed: ${event.error.message}`);
        break;
      case "jobFinished": {
        const seconds = event.totalMs / 1000;
        const tokensPerSecond = seconds > 0 ? Math.round(event.tokens / seconds) : 0;
        this.note(`Done in ${seconds.toFixed(1)} s, ${event.tokens} tokens (${tokensPerSecond} tokens/s)${event.outDir ? `: ${event.files.length} files in ${event.outDir}` : ""}`);
        if (event.mainCompiles === false) this.note("Warning: main.py does not compile");
        break;
      }
      case "jobFailed":
        if (event.cancelled) this.note("Cancelled.");
        else this.error(event.error.message);
        break;
    }
  }

  finish(): void {
    this.clearStatus();
  }
}
