/**
 * The protocol calls that change programs, in one place: synthesize, continue, regenerate,
 * assemble, cancel and the review edits. Each returns what the store will report, and each job
 * can be awaited. Also keeps the store in step with the sidecar: events in, snapshots after each
 * job, and when the sidecar dies, failed jobs and no half-written program folders.
 */
import * as vscode from "vscode";
import { type OverwriteMode, type ParamsOf, type ProgramSnapshot, type ReviewMode } from "../../sidecar/src/protocol";
import type { SubTask, TaskSpec } from "../../sidecar/src/schemas";
import { cleanupPartialOutput } from "./outputFolders";
import { ProgramStore, type JobResult, type ProgramOrigin, type ProgramState } from "./programStore";
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
  commandAt?: number;
}

/** Undo information for the last review edits of a program. */
interface UndoEntry {
  label: string;
  subTasks: { id: string; subTask: SubTask }[];
  specs: Map<string, TaskSpec | null>;
}

export class Jobs implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private readonly undoStacks = new Map<string, UndoEntry[]>();

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

  /** The live program for a store record; throws when its sidecar is gone. */
  private live(program: ProgramState): ProgramState {
    if (program.lost || program.generation !== this.sidecar.generation) {
      throw new Error(`The GPIoT engine was restarted since "${short(program.requirement)}" was generated; it can only be synthesized again (Retry).`);
    }
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
      review: params.review,
      intendedOutDir: request.outDir,
      marks: { commandAt: request.commandAt, requestSentAt },
    });
    this.log.info(`Job ${jobId}: synthesize ${programId} (${params.review === "none" ? "no review" : `review ${params.review}`})${request.outDir ? ` into ${request.outDir}` : ""}`);
    return this.started(generation, jobId, program, "synthesize");
  }

  async continue(program: ProgramState, options: { outDir?: string; overwrite?: OverwriteAnswer; review?: ReviewMode } = {}): Promise<StartedJob> {
    this.live(program);
    const outDir = options.outDir ?? program.intendedOutDir ?? program.outDir ?? undefined;
    if (outDir) program.intendedOutDir = outDir;
    const { jobId } = await this.sidecar.request((rpc) =>
      rpc.request("continue", { programId: program.programId, review: options.review ?? "none", ...(outDir ? { outDir } : {}), ...(options.overwrite ? { overwrite: overwriteMode(options.overwrite) } : {}) }),
    );
    return this.started(program.generation, jobId, program, "continue");
  }

  async regenerate(program: ProgramState, subTaskId: string, stage: "spec" | "code"): Promise<StartedJob> {
    this.live(program);
    const { jobId } = await this.sidecar.request((rpc) => rpc.request("regenerate", { programId: program.programId, subTaskId, stage }));
    return this.started(program.generation, jobId, program, "regenerate");
  }

  async assemble(program: ProgramState, options: { outDir?: string; overwrite?: OverwriteAnswer } = {}): Promise<StartedJob> {
    this.live(program);
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
    stack.push({
      label,
      subTasks: program.subTasks.map((entry) => ({ id: entry.id, subTask: structuredClone(entry.subTask) })),
      specs: new Map(program.subTasks.map((entry) => [entry.id, entry.spec ? structuredClone(entry.spec) : null])),
    });
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
    this.live(program);
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
    this.live(program);
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

  /** Restores the sub-task list and specs from before the last edit. Deleted sub-tasks come back without their code. */
  async undo(program: ProgramState): Promise<string | undefined> {
    this.live(program);
    const entry = this.undoStacks.get(program.uid)?.pop();
    if (!entry) return undefined;
    const existing = new Set(program.subTasks.map((st) => st.id));
    let snapshot = await this.sidecar.request((rpc) =>
      rpc.request("updateSubTasks", { programId: program.programId, subTasks: entry.subTasks.map((st) => (existing.has(st.id) ? st : { subTask: st.subTask })) }),
    );
    for (const current of snapshot.subTasks) {
      const before = entry.specs.get(current.id);
      if (before && JSON.stringify(before) !== JSON.stringify(current.spec)) {
        snapshot = await this.sidecar.request((rpc) => rpc.request("updateSpec", { programId: program.programId, subTaskId: current.id, spec: before }));
      }
    }
    this.applyEdit(program, snapshot);
    this.log.info(`Undid "${entry.label}" (program ${program.programId})`);
    return entry.label;
  }

  dispose(): void {
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }
}

export function short(text: string, max = 60): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
