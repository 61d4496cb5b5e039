/**
 * The job queue: one job runs at a time, in the order they were queued. A job's end event says
 * what is true when it is sent: a job whose work resolved reports `jobFinished` even when a
 * cancel arrived after its last cancellable step (its files are on disk), and a job that stopped
 * reports `jobFailed` with `cancelled` when the user stopped it.
 */
import type { JobEvent, JobKind, ResultOf, StageTiming } from "../protocol";
import { CancelledError } from "../pipeline/structuredGeneration";
import { toErrorInfo } from "./errors";
import type { Program } from "./program";

export interface JobOutcome {
  awaitingReview?: "decomposition" | "specs";
  outDir?: string;
  files: string[];
  mainCompiles?: boolean;
  verification?: Extract<JobEvent, { type: "jobFinished" }>["verification"];
}

export interface Job {
  readonly id: string;
  readonly program: Program;
  readonly kind: JobKind;
  readonly controller: AbortController;
  state: "queued" | "running" | "finished";
  run(job: Job, timings: StageTiming[]): Promise<JobOutcome>;
}

export interface JobQueueHooks {
  emit(event: JobEvent): void;
  logError(message: string): void;
  /** Called after every job, whatever its end. */
  onJobSettled(): void;
}

export class JobQueue {
  private readonly queue: Job[] = [];
  private runningJob: Job | null = null;
  private readonly endedJobIds = new Set<string>();
  private nextJobNumber = 1;
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly hooks: JobQueueHooks) {}

  get running(): Job | null {
    return this.runningJob;
  }

  get queuedIds(): string[] {
    return this.queue.map((job) => job.id);
  }

  enqueue(program: Program, kind: JobKind, run: Job["run"]): Job {
    const job: Job = { id: `j${this.nextJobNumber++}`, program, kind, controller: new AbortController(), state: "queued", run };
    program.busyJobs += 1;
    this.queue.push(job);
    this.hooks.emit({ type: "jobQueued", jobId: job.id, programId: program.id, kind, position: this.queue.length - 1 + (this.runningJob ? 1 : 0) });
    queueMicrotask(() => void this.pump());
    return job;
  }

  cancel(jobId: string): ResultOf<"cancel"> {
    if (this.runningJob?.id === jobId) {
      this.runningJob.controller.abort();
      return { cancelled: true, state: "running" };
    }
    const index = this.queue.findIndex((job) => job.id === jobId);
    if (index >= 0) {
      const [job] = this.queue.splice(index, 1);
      this.end(job, { type: "jobFailed", jobId, programId: job.program.id, kind: job.kind, error: { code: "CANCELLED", message: "Cancelled before it started" }, cancelled: true, totalMs: 0 });
      return { cancelled: true, state: "queued" };
    }
    return { cancelled: false, state: this.endedJobIds.has(jobId) ? "finished" : "unknown" };
  }

  /** Fails every queued job, stops the running one and resolves when it has ended. */
  async close(reason: { code: "SHUTTING_DOWN"; message: string }): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) this.end(job, { type: "jobFailed", jobId: job.id, programId: job.program.id, kind: job.kind, error: reason, cancelled: true, totalMs: 0 });
    if (!this.runningJob) return;
    this.runningJob.controller.abort();
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private end(job: Job, event: JobEvent): void {
    job.state = "finished";
    job.program.busyJobs -= 1;
    this.endedJobIds.add(job.id);
    this.hooks.emit(event);
  }

  private async pump(): Promise<void> {
    if (this.runningJob) return;
    const job = this.queue.shift();
    if (!job) return;
    this.runningJob = job;
    job.state = "running";
    const started = performance.now();
    const timings: StageTiming[] = [];
    const ref = { jobId: job.id, programId: job.program.id };
    let endEvent: JobEvent;
    try {
      this.hooks.emit({ type: "jobStarted", ...ref, kind: job.kind });
      const outcome = await job.run(job, timings);
      endEvent = {
        type: "jobFinished",
        ...ref,
        kind: job.kind,
        ...outcome,
        timings,
        totalMs: Math.round(performance.now() - started),
        tokens: timings.reduce((sum, timing) => sum + timing.tokens, 0),
      };
    } catch (error) {
      const info = toErrorInfo(job.controller.signal.aborted ? new CancelledError() : error);
      if (info.code === "INTERNAL") this.hooks.logError(`Job ${job.id} failed: ${(error as Error)?.stack ?? error}`);
      endEvent = { type: "jobFailed", ...ref, kind: job.kind, error: info, cancelled: info.code === "CANCELLED", totalMs: Math.round(performance.now() - started) };
    }
    this.runningJob = null;
    this.end(job, endEvent);
    this.hooks.onJobSettled();
    for (const resolve of this.idleWaiters.splice(0)) resolve();
    void this.pump();
  }
}
