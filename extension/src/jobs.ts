/**
 * The protocol calls that change programs, in one place: synthesize, continue, regenerate,
 * assemble, cancel and the review edits. Each returns what the store will report, and each job
 * can be awaited. Also keeps the store in step with the sidecar: events in, snapshots after each
 * job, and when the sidecar dies, failed jobs and no half-written program folders.
 *
 * Undo keeps, per program, the sub-tasks as they were before each review edit (text, order, specs,
 * code and their states) and puts them back with `gpiot/restoreProgram`. A job that rewrites specs
 * or code (continue, regenerate) starts a new history: undo never takes back a model's work.
 */
import * as vscode from "vscode";
import { type OverwriteMode, type ParamsOf, type ProgramSnapshot, type ProgramSubTask, type ResultOf, type ReviewMode } from "../../sidecar/src/protocol";
import type { SubTask, TaskSpec } from "../../sidecar/src/schemas";
import { cleanupPartialOutput } from "./outputFolders";
import { ProgramStore, type JobResult, type ProgramGroup, type ProgramOrigin, type ProgramState } from "./programStore";
import { Sidecar } from "./sidecar";

export interface StartedJob {
  generation: number;
  jobId: string;
  program: ProgramState;
  /** Resolves when the job ends, however it ends (never rejects). */
  done: Promise<JobResult>;
}

/** The user's "Overwrite" (true) replaces GPIoT's files of another program; a mode passes the sidecar's own answer on. */
type OverwriteAnswer = boolean | OverwriteMode;

function overwriteMode(answer: OverwriteAnswer | undefined): OverwriteMode {
  return answer === true ? "ownFiles" : answer === false || answer === undefined ? "never" : answer;
}

export interface SynthesizeRequest {
  requirement: string;
  constraints?: string;
  outDir?: string;
  overwrite?: OverwriteAnswer;
  review?: ReviewMode;
  origin?: ProgramOrigin;
  group?: ProgramGroup;
  commandAt?: number;
}

/** Undo information for the last review edits of a program: its sub-tasks before the edit. */
interface UndoEntry {
  label: string;
  subTasks: ProgramSubTask[];
}

/** Waits for a program of a stopped engine to be taken over by the new one (engineRecovery.ts). */
export type RecoveryWait = (program: ProgramState) => Promise<void>;

export class Jobs implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private readonly undoStacks = new Map<string, UndoEntry[]>();
  /** Set by engineRecovery.ts. */
  waitForRecovery: RecoveryWait = async () => undefined;

  constructor(
    readonly sidecar: Sidecar,
    readonly store: ProgramStore,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      sidecar.onJobEvent(({ generation, event }) => store.apply(generation, event)),
      store.onDidEndJob((result) => {
        if (result.error?.code !== "ENGINE_STOPPED") void this.refresh(result.generation, result.programId);
      }),
      sidecar.onDidCrash((crash) => void this.handleCrash(crash.generation, crash.willRestart)),
    );
  }

  private async handleCrash(generation: number, willRestart: boolean): Promise<void> {
    const message = `The GPIoT engine stopped unexpectedly${willRestart ? " and was restarted" : ""}; the job was lost.`;
    const programsWithJobs = new Set(this.store.jobs().filter((job) => job.generation === generation && !job.result).map((job) => job.programUid));
    const ended = this.store.markEngineStopped(generation, message);
    this.log.warn(`${ended.length} job(s) ended by the engine crash: ${ended.map((result) => result.jobId).join(", ") || "none"}`);
    for (const uid of programsWithJobs) {
      const program = this.store.get(uid);
      const folder = program?.intendedOutDir ?? program?.outDir ?? undefined;
      if (!folder) continue;
      try {
        const touched = await cleanupPartialOutput(folder);
        if (touched.length) this.log.info(`Cleaned up after the interrupted write: ${touched.join(", ")}`);
      } catch (error) {
        this.log.error(`Could not clean up beside ${folder}: ${(error as Error).message}`);
      }
    }
  }

  private started(generation: number, jobId: string, program: ProgramState, kind: JobResult["kind"]): StartedJob {
    this.store.registerJob(generation, jobId, program, kind);
    return { generation, jobId, program, done: this.store.waitForJob(generation, jobId) };
  }

  /** The live program for a store record (after the engine took it over again); throws when it cannot be. */
  private async live(program: ProgramState): Promise<ProgramState> {
    if (program.detached || program.generation !== this.sidecar.generation) await this.waitForRecovery(program);
    if (program.lost || program.generation !== this.sidecar.generation) throw new ProgramLostError(program);
    return program;
  }

  async synthesize(request: SynthesizeRequest): Promise<StartedJob> {
    const params: ParamsOf<"synthesize"> = {
      requirement: request.requirement,
      review: request.review ?? "none",
      overwrite: overwriteMode(request.overwrite),
      // In an untrusted workspace the sidecar refuses to run anything generated.
      workspaceTrusted: vscode.workspace.isTrusted,
    };
    if (request.constraints?.trim()) params.constraints = request.constraints.trim();
    if (request.outDir) params.outDir = request.outDir;
    const requestSentAt = Date.now();
    let generation = 0;
    const { jobId, programId } = await this.sidecar.request(async (rpc) => {
      generation = this.sidecar.generation;
      return rpc.request("synthesize", params);
    });
    const program = this.store.register(generation, programId, {
      requirement: request.requirement.trim(),
      constraints: params.constraints,
      origin: request.origin ?? "palette",
      group: request.group,
      review: params.review,
      intendedOutDir: request.outDir,
      marks: { commandAt: request.commandAt, requestSentAt },
    });
    this.log.info(`Job ${jobId}: synthesize ${programId} (${params.review === "none" ? "no review" : `review ${params.review}`})${request.outDir ? ` into ${request.outDir}` : ""}`);
    return this.started(generation, jobId, program, "synthesize");
  }

  async continue(program: ProgramState, options: { outDir?: string; overwrite?: OverwriteAnswer; review?: ReviewMode } = {}): Promise<StartedJob> {
    await this.live(program);
    const outDir = options.outDir ?? program.intendedOutDir ?? program.outDir ?? undefined;
    if (outDir) program.intendedOutDir = outDir;
    const { jobId } = await this.sidecar.request((rpc) =>
      rpc.request("continue", { programId: program.programId, review: options.review ?? "none", ...(outDir ? { outDir } : {}), ...(options.overwrite ? { overwrite: overwriteMode(options.overwrite) } : {}) }),
    );
    this.undoStacks.delete(program.uid);
    return this.started(program.generation, jobId, program, "continue");
  }

  /** Brings every edited or missing spec and code up to date, and writes no file. */
  async regenerateStale(program: ProgramState): Promise<StartedJob> {
    await this.live(program);
    const { jobId } = await this.sidecar.request((rpc) => rpc.request("continue", { programId: program.programId, review: "none", assemble: false }));
    this.undoStacks.delete(program.uid);
    return this.started(program.generation, jobId, program, "continue");
  }

  async regenerate(program: ProgramState, subTaskId: string, stage: "spec" | "code"): Promise<StartedJob> {
    await this.live(program);
    const { jobId } = await this.sidecar.request((rpc) => rpc.request("regenerate", { programId: program.programId, subTaskId, stage }));
    this.undoStacks.delete(program.uid);
    return this.started(program.generation, jobId, program, "regenerate");
  }

  /** The files an assembly would write now (nothing is written). */
  async preview(program: ProgramState): Promise<ResultOf<"previewProgram">["files"]> {
    await this.live(program);
    return (await this.sidecar.request((rpc) => rpc.request("previewProgram", { programId: program.programId }))).files;
  }

  /** Makes the program again in the running engine from what the extension knows of it (after a restart). */
  async restoreInEngine(program: ProgramState): Promise<ProgramState> {
    let generation = 0;
    const snapshot = await this.sidecar.request((rpc) => {
      generation = this.sidecar.generation;
      return rpc.request("restoreProgram", {
        requirement: program.requirement,
        limits: program.limits ?? null,
        subTasks: program.subTasks.map(toProgramSubTask),
        outDir: program.outDir,
        files: program.files,
        ...(program.ownerId ? { ownerId: program.ownerId } : {}),
      });
    });
    this.store.moveToEngine(program, generation, snapshot.programId);
    return this.store.applySnapshot(generation, snapshot);
  }

  async assemble(program: ProgramState, options: { outDir?: string; overwrite?: OverwriteAnswer } = {}): Promise<StartedJob> {
    await this.live(program);
    const outDir = options.outDir ?? program.outDir ?? program.intendedOutDir;
    if (!outDir) throw new Error("The program has no output folder yet.");
    program.intendedOutDir = outDir;
    const { jobId } = await this.sidecar.request((rpc) => rpc.request("assemble", { programId: program.programId, outDir, overwrite: overwriteMode(options.overwrite) }));
    return this.started(program.generation, jobId, program, "assemble");
  }

  async cancel(program: ProgramState): Promise<boolean> {
    const jobs = this.store.jobs().filter((job) => job.programUid === program.uid && !job.result);
    if (!jobs.length || program.generation !== this.sidecar.generation) return false;
    let cancelled = false;
    for (const job of jobs) {
      const result = await this.sidecar.request((rpc) => rpc.request("cancel", { jobId: job.jobId }));
      this.log.info(`Cancel ${job.jobId}: ${result.cancelled ? "cancelled" : "not cancelled"} (${result.state})`);
      cancelled ||= result.cancelled;
    }
    return cancelled;
  }

  async refresh(generation: number, programId: string): Promise<ProgramState | undefined> {
    if (generation !== this.sidecar.generation || this.sidecar.state !== "running") return undefined;
    if (!this.store.find(generation, programId)) return undefined;
    try {
      const snapshot = await this.sidecar.request((rpc) => rpc.request("getProgram", { programId }));
      return this.store.applySnapshot(generation, snapshot);
    } catch (error) {
      this.log.warn(`Could not refresh program ${programId}: ${(error as Error).message}`);
      return undefined;
    }
  }

  // ---- review edits (each one can be undone) ----

  private pushUndo(program: ProgramState, label: string): void {
    const stack = this.undoStacks.get(program.uid) ?? [];
    stack.push({ label, subTasks: program.subTasks.map(toProgramSubTask) });
    if (stack.length > 50) stack.shift();
    this.undoStacks.set(program.uid, stack);
  }

  canUndo(program: ProgramState): boolean {
    return (this.undoStacks.get(program.uid)?.length ?? 0) > 0 && !program.lost;
  }

  undoLabel(program: ProgramState): string | undefined {
    return this.undoStacks.get(program.uid)?.at(-1)?.label;
  }

  private applyEdit(program: ProgramState, snapshot: ProgramSnapshot): ProgramState {
    return this.store.applySnapshot(program.generation, snapshot);
  }

  async updateSubTasks(program: ProgramState, entries: { id?: string; subTask: SubTask }[], label: string): Promise<ProgramState> {
    await this.live(program);
    this.pushUndo(program, label);
    try {
      const snapshot = await this.sidecar.request((rpc) => rpc.request("updateSubTasks", { programId: program.programId, subTasks: entries }));
      this.log.info(`${label} (program ${program.programId})`);
      return this.applyEdit(program, snapshot);
    } catch (error) {
      this.undoStacks.get(program.uid)?.pop();
      throw error;
    }
  }

  async updateSpec(program: ProgramState, subTaskId: string, spec: TaskSpec, label: string): Promise<ProgramState> {
    await this.live(program);
    this.pushUndo(program, label);
    try {
      const snapshot = await this.sidecar.request((rpc) => rpc.request("updateSpec", { programId: program.programId, subTaskId, spec }));
      this.log.info(`${label} (program ${program.programId}, ${subTaskId})`);
      return this.applyEdit(program, snapshot);
    } catch (error) {
      this.undoStacks.get(program.uid)?.pop();
      throw error;
    }
  }

  /** Puts the sub-tasks back as they were before the last edit: order, text, specs and code. */
  async undo(program: ProgramState): Promise<string | undefined> {
    await this.live(program);
    const stack = this.undoStacks.get(program.uid);
    const entry = stack?.at(-1);
    if (!entry) return undefined;
    const snapshot = await this.sidecar.request((rpc) => rpc.request("restoreProgram", { programId: program.programId, requirement: program.requirement, subTasks: entry.subTasks }));
    stack!.pop();
    this.applyEdit(program, snapshot);
    this.log.info(`Undid "${entry.label}" (program ${program.programId})`);
    return entry.label;
  }

  dispose(): void {
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }
}

/** A program whose engine stopped and that could not be restored in the new one. */
export class ProgramLostError extends Error {
  readonly code = "ENGINE_STOPPED";
  constructor(readonly program: ProgramState) {
    super(vscode.l10n.t('The GPIoT engine stopped and "{0}" could not be restored in the new one; it needs a new run.', short(program.requirement)));
    this.name = "ProgramLostError";
  }
}

/** What the engine needs to know of a sub-task (the stream buffers stay in the extension). */
export function toProgramSubTask(entry: ProgramSubTask): ProgramSubTask {
  const copy: ProgramSubTask = {
    id: entry.id,
    subTask: structuredClone(entry.subTask),
    spec: entry.spec ? structuredClone(entry.spec) : null,
    specMarkdown: entry.specMarkdown,
    artifact: entry.artifact ? structuredClone(entry.artifact) : null,
    syntax: entry.syntax ? structuredClone(entry.syntax) : null,
    codeState: entry.codeState,
  };
  if (entry.specStale) copy.specStale = true;
  return copy;
}

export function short(text: string, max = 60): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
