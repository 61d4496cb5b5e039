/**
 * What the extension knows about programs and jobs, built from the sidecar's job events and
 * program snapshots. The tree, the streaming editors, the status bar, the comment threads and the
 * chat participant all read it; commands wait on it for a job's end.
 *
 * Ids from the sidecar are only unique within one sidecar process, so each program gets a `uid`
 * that never changes (first "<generation>-<programId>") and is found by its engine address
 * (generation and programId) too; jobs are keyed by generation and job id. When the process dies,
 * its unfinished jobs end as failed with ENGINE_STOPPED and its programs wait for the new process:
 * engineRecovery.ts restores them there (`moveToEngine`) or marks them `lost` (a new run is needed).
 */
import * as vscode from "vscode";
import type { ErrorInfo, JobEvent, JobKind, ProgramSnapshot, ProgramSubTask, ReviewMode, StageTiming } from "../../sidecar/src/protocol";
import type { ResourceLimits, SubTask } from "../../sidecar/src/schemas";
import { filesOutOfDate, fingerprint } from "./programRules";

export type ExtensionErrorInfo = ErrorInfo | { code: "ENGINE_STOPPED"; message: string };

export type ProgramPhase =
  | "queued"
  | "starting"
  | "decomposing"
  | "specifying"
  | "coding"
  | "assembling"
  | "writing"
  | "awaitingReview"
  | "ready"
  | "done"
  | "failed"
  | "cancelled";

export interface SubTaskState extends ProgramSubTask {
  /** RT's raw output while it writes this sub-task's spec. */
  specStream: string;
  /** CG's code as it streams (the final code is in `artifact`). */
  codeStream: string;
  activeStage?: "rt" | "cg";
  error?: ErrorInfo;
}

export type ProgramOrigin = "palette" | "comment" | "chat";

/** Programs of one comment conversation: the first requirement and every refinement. */
export interface ProgramGroup {
  id: string;
  /** The conversation's first requirement (what the tree shows). */
  title: string;
  /** 1 for the first program of the conversation, 2 after the first refinement, ... */
  version: number;
}

export interface ProgramState {
  uid: string;
  generation: number;
  programId: string;
  /** The engine's owner id of the program (in its gpiot.json): given back when the program is restored after a restart. */
  ownerId?: string;
  requirement: string;
  constraints?: string;
  limits?: ResourceLimits | null;
  origin: ProgramOrigin;
  group?: ProgramGroup;
  /** 1, 2, 3, ... in the order programs were made: tells programs with the same requirement apart. */
  number: number;
  review: ReviewMode;
  /** Where the user wants the files (before they are written). */
  intendedOutDir?: string;
  outDir: string | null;
  files: string[];
  subTasks: SubTaskState[];
  /** Sub-tasks TD has finished writing, before `decomposed` gives them ids. */
  draftSubTasks: SubTask[];
  tdText: string;
  phase: ProgramPhase;
  awaitingReview?: "decomposition" | "specs";
  busy: boolean;
  activeJobId?: string;
  activeJobKind?: JobKind;
  lastError?: ExtensionErrorInfo;
  /** Code changed after the files were written: assemble again to update them. */
  filesStale: boolean;
  /** What the written files were made from (programRules.fingerprint). */
  writtenFingerprint?: string;
  /** The sidecar that knew this program is gone and it could not be restored: it needs a new run. */
  lost: boolean;
  /** The sidecar that knew this program is gone; the new one has not taken it over yet. */
  detached: boolean;
  mainCompiles?: boolean;
  createdAt: number;
  /** Measurements for the benchmark (Date.now() values in this extension host). */
  marks: { commandAt?: number; requestSentAt?: number; firstSubTaskEventAt?: number; firstSubTaskShownAt?: number; firstTokenAt?: number; tdFirstTokenMs?: number; lastTimings?: StageTiming[] };
}

export type JobStatus = "queued" | "running" | "finished" | "awaitingReview" | "failed" | "cancelled";

export interface JobResult {
  jobId: string;
  programId: string;
  programUid: string;
  generation: number;
  kind: JobKind;
  status: Exclude<JobStatus, "queued" | "running">;
  awaitingReview?: "decomposition" | "specs";
  outDir?: string;
  files: string[];
  mainCompiles?: boolean;
  error?: ExtensionErrorInfo;
  timings?: StageTiming[];
  totalMs?: number;
  tokens?: number;
}

export interface JobRecord {
  key: string;
  generation: number;
  jobId: string;
  programUid: string;
  kind: JobKind;
  status: JobStatus;
  result?: JobResult;
  startedAt?: number;
  endedAt?: number;
}

export interface ProgramChange {
  program: ProgramState;
  /** false for token deltas only (text grew, nothing else changed). */
  structural: boolean;
  event?: JobEvent;
}

export const programUid = (generation: number, programId: string) => `${generation}-${programId}`;
const address = programUid;
const jobKey = (generation: number, jobId: string) => `${generation}:${jobId}`;

export class ProgramStore implements vscode.Disposable {
  private readonly programMap = new Map<string, ProgramState>();
  /** Engine address ("<generation>-<programId>") → uid. */
  private readonly addresses = new Map<string, string>();
  private nextNumber = 1;
  private readonly jobMap = new Map<string, JobRecord>();
  private readonly waiters = new Map<string, ((result: JobResult) => void)[]>();
  private readonly changeEmitter = new vscode.EventEmitter<ProgramChange>();
  private readonly removeEmitter = new vscode.EventEmitter<ProgramState>();
  private readonly jobEndEmitter = new vscode.EventEmitter<JobResult>();
  readonly onDidChangeProgram = this.changeEmitter.event;
  readonly onDidRemoveProgram = this.removeEmitter.event;
  readonly onDidEndJob = this.jobEndEmitter.event;
  /** The last events, for the log and for tests. */
  readonly recentEvents: { generation: number; event: JobEvent; at: number }[] = [];

  programs(): ProgramState[] {
    return [...this.programMap.values()];
  }

  get(uid: string): ProgramState | undefined {
    return this.programMap.get(uid);
  }

  find(generation: number, programId: string): ProgramState | undefined {
    const uid = this.addresses.get(address(generation, programId));
    return uid ? this.programMap.get(uid) : undefined;
  }

  jobs(): JobRecord[] {
    return [...this.jobMap.values()];
  }

  job(generation: number, jobId: string): JobRecord | undefined {
    return this.jobMap.get(jobKey(generation, jobId));
  }

  /** Creates (or completes) the record of a program the user just asked for. */
  register(generation: number, programId: string, meta: Partial<Pick<ProgramState, "requirement" | "constraints" | "origin" | "group" | "review" | "intendedOutDir" | "marks">>): ProgramState {
    const program = this.ensureProgram(generation, programId);
    if (meta.requirement !== undefined) program.requirement = meta.requirement;
    if (meta.constraints !== undefined) program.constraints = meta.constraints;
    if (meta.origin) program.origin = meta.origin;
    if (meta.group) program.group = meta.group;
    if (meta.review) program.review = meta.review;
    if (meta.intendedOutDir) program.intendedOutDir = meta.intendedOutDir;
    if (meta.marks) program.marks = { ...program.marks, ...meta.marks };
    this.fire(program, true);
    return program;
  }

  /** Notes a job the extension queued (its jobQueued event may have come first). */
  registerJob(generation: number, jobId: string, program: ProgramState, kind: JobKind): JobRecord {
    const key = jobKey(generation, jobId);
    let record = this.jobMap.get(key);
    if (!record) {
      record = { key, generation, jobId, programUid: program.uid, kind, status: "queued" };
      this.jobMap.set(key, record);
      program.busy = true;
      program.activeJobId = jobId;
      program.activeJobKind = kind;
      this.fire(program, true);
    }
    return record;
  }

  private ensureProgram(generation: number, programId: string): ProgramState {
    let program = this.find(generation, programId);
    if (!program) {
      const uid = programUid(generation, programId);
      program = {
        uid,
        generation,
        programId,
        requirement: "",
        number: this.nextNumber++,
        origin: "palette",
        review: "none",
        outDir: null,
        files: [],
        subTasks: [],
        draftSubTasks: [],
        tdText: "",
        phase: "queued",
        busy: false,
        filesStale: false,
        lost: false,
        detached: false,
        createdAt: Date.now(),
        marks: {},
      };
      this.programMap.set(uid, program);
      this.addresses.set(address(generation, programId), uid);
    }
    return program;
  }

  private fire(program: ProgramState, structural: boolean, event?: JobEvent): void {
    if (structural) {
      program.filesStale = filesOutOfDate(program);
      if (!program.busy && program.phase === "done" && program.filesStale) program.phase = "ready";
      else if (!program.busy && program.phase === "ready" && program.files.length && !program.filesStale) program.phase = "done";
    }
    this.changeEmitter.fire({ program, structural, event });
  }

  /** The program now lives in another engine process (restored there): same uid, new address. */
  moveToEngine(program: ProgramState, generation: number, programId: string): void {
    this.addresses.delete(address(program.generation, program.programId));
    program.generation = generation;
    program.programId = programId;
    program.detached = false;
    program.lost = false;
    this.addresses.set(address(generation, programId), program.uid);
  }

  /** The program could not be restored in the new engine: only a new run can bring it back. */
  markLost(program: ProgramState, message?: string): void {
    program.detached = false;
    program.lost = true;
    program.busy = false;
    if (message) program.lastError = { code: "ENGINE_STOPPED", message };
    this.fire(program, true);
  }

  /** Applies one job event from the sidecar of `generation`. */
  apply(generation: number, event: JobEvent): void {
    this.recentEvents.push({ generation, event, at: Date.now() });
    if (this.recentEvents.length > 2000) this.recentEvents.splice(0, this.recentEvents.length - 2000);
    const program = this.ensureProgram(generation, event.programId);
    const key = jobKey(generation, event.jobId);
    let found = this.jobMap.get(key);
    if (!found) {
      const kind: JobKind = event.type === "jobQueued" || event.type === "jobStarted" ? event.kind : "synthesize";
      found = { key, generation, jobId: event.jobId, programUid: program.uid, kind, status: "queued" };
      this.jobMap.set(key, found);
    }
    const job: JobRecord = found;
    const subTask = (id: string | undefined) => (id ? program.subTasks.find((entry) => entry.id === id) : undefined);
    let structural = true;
    switch (event.type) {
      case "jobQueued":
        job.kind = event.kind;
        program.busy = true;
        program.activeJobId = event.jobId;
        program.activeJobKind = event.kind;
        if (!["decomposing", "specifying", "coding", "assembling", "writing", "starting"].includes(program.phase)) program.phase = "queued";
        break;
      case "jobStarted":
        job.status = "running";
        job.startedAt = Date.now();
        program.busy = true;
        program.activeJobId = event.jobId;
        program.activeJobKind = event.kind;
        program.phase = "starting";
        program.awaitingReview = undefined;
        program.lastError = undefined;
        break;
      case "stageStarted":
        if (event.stage === "td") {
          program.phase = "decomposing";
          program.tdText = "";
          program.draftSubTasks = [];
        } else if (event.stage === "rt") {
          program.phase = "specifying";
          const entry = subTask(event.subTaskId);
          if (entry) {
            entry.activeStage = "rt";
            entry.specStream = "";
            entry.error = undefined;
          }
        } else if (event.stage === "cg") {
          program.phase = "coding";
          const entry = subTask(event.subTaskId);
          if (entry) {
            entry.activeStage = "cg";
            entry.codeStream = "";
            entry.codeState = "streaming";
            entry.error = undefined;
          }
        } else if (event.stage === "assemble") program.phase = "assembling";
        else if (event.stage === "write") program.phase = "writing";
        break;
      case "textDelta":
        structural = false;
        program.marks.firstTokenAt ??= Date.now();
        if (event.stage === "td") program.tdText += event.text;
        else if (event.stage === "rt") {
          const entry = subTask(event.subTaskId);
          if (entry) entry.specStream += event.text;
        }
        break;
      case "subTaskDecomposed":
        program.draftSubTasks[event.index] = event.subTask;
        program.marks.firstSubTaskEventAt ??= Date.now();
        break;
      case "decomposed":
        program.subTasks = event.subTasks.map(({ id, subTask: st }) => ({
          id,
          subTask: st,
          spec: null,
          specMarkdown: null,
          artifact: null,
          syntax: null,
          codeState: "pending",
          specStream: "",
          codeStream: "",
        }));
        program.draftSubTasks = [];
        break;
      case "specReady": {
        const entry = subTask(event.subTaskId);
        if (entry) {
          entry.spec = event.spec;
          entry.specMarkdown = event.markdown;
          entry.specCitations = event.citations ?? [];
          entry.specStale = undefined;
          entry.activeStage = undefined;
          if (entry.artifact) entry.codeState = "stale";
        }
        break;
      }
      case "codeDelta": {
        structural = false;
        const entry = subTask(event.subTaskId);
        if (entry) {
          if (entry.codeState !== "streaming") structural = true;
          entry.codeState = "streaming";
          entry.codeStream += event.text;
        }
        break;
      }
      case "codeReady": {
        const entry = subTask(event.subTaskId);
        if (entry) {
          entry.artifact = event.artifact;
          entry.syntax = event.syntax;
          entry.codeStream = event.artifact.code;
          entry.codeCitations = event.citations ?? [];
          entry.codeState = event.syntax.checked && !event.syntax.ok ? "syntaxError" : "done";
          entry.activeStage = undefined;
        }
        break;
      }
      case "stageFailed": {
        const entry = subTask(event.subTaskId);
        if (entry) {
          entry.error = event.error;
          entry.activeStage = undefined;
          if (event.stage === "cg") entry.codeState = entry.artifact ? "stale" : "failed";
        }
        program.lastError = event.error;
        break;
      }
      case "fileWritten":
        program.phase = "writing";
        break;
      case "jobFinished": {
        const result: JobResult = {
          jobId: event.jobId,
          programId: event.programId,
          programUid: program.uid,
          generation,
          kind: event.kind,
          status: event.awaitingReview ? "awaitingReview" : "finished",
          awaitingReview: event.awaitingReview,
          outDir: event.outDir,
          files: event.files,
          mainCompiles: event.mainCompiles,
          timings: event.timings,
          totalMs: event.totalMs,
          tokens: event.tokens,
        };
        if (event.outDir) {
          program.outDir = event.outDir;
          program.files = event.files;
          program.writtenFingerprint = fingerprint(program);
          program.mainCompiles = event.mainCompiles;
        }
        const td = event.timings.find((timing) => timing.stage === "td");
        if (td?.firstTokenMs !== undefined) program.marks.tdFirstTokenMs = td.firstTokenMs;
        program.marks.lastTimings = event.timings;
        program.awaitingReview = event.awaitingReview;
        program.phase = event.awaitingReview ? "awaitingReview" : program.files.length && !filesOutOfDate(program) ? "done" : "ready";
        this.endJob(job, program, result);
        break;
      }
      case "jobFailed": {
        const result: JobResult = {
          jobId: event.jobId,
          programId: event.programId,
          programUid: program.uid,
          generation,
          kind: event.kind,
          status: event.cancelled ? "cancelled" : "failed",
          files: [],
          error: event.error,
          totalMs: event.totalMs,
        };
        for (const entry of program.subTasks) {
          if (entry.codeState === "streaming") entry.codeState = entry.artifact ? "stale" : "failed";
          entry.activeStage = undefined;
        }
        program.draftSubTasks = [];
        program.lastError = event.error;
        program.phase = event.cancelled ? "cancelled" : "failed";
        this.endJob(job, program, result);
        break;
      }
    }
    this.fire(program, structural, event);
  }

  private endJob(job: JobRecord, program: ProgramState, result: JobResult): void {
    job.status = result.status;
    job.result = result;
    job.endedAt = Date.now();
    const stillBusy = this.jobs().some((other) => other.programUid === program.uid && other !== job && (other.status === "queued" || other.status === "running"));
    program.busy = stillBusy;
    if (!stillBusy) {
      program.activeJobId = undefined;
      program.activeJobKind = undefined;
    }
    for (const resolve of this.waiters.get(job.key) ?? []) resolve(result);
    this.waiters.delete(job.key);
    this.jobEndEmitter.fire(result);
  }

  /** Replaces what the sidecar has authority over with its snapshot, keeping the streamed text. */
  applySnapshot(generation: number, snapshot: ProgramSnapshot): ProgramState {
    const program = this.ensureProgram(generation, snapshot.programId);
    const previous = new Map(program.subTasks.map((entry) => [entry.id, entry]));
    program.subTasks = snapshot.subTasks.map((entry) => {
      const before = previous.get(entry.id);
      return {
        ...entry,
        specStream: before?.specStream ?? "",
        codeStream: entry.artifact?.code ?? before?.codeStream ?? "",
        activeStage: entry.codeState === "streaming" ? before?.activeStage : undefined,
        error: before?.error,
      };
    });
    if (!program.requirement) program.requirement = snapshot.requirement;
    program.ownerId = snapshot.ownerId;
    program.limits = snapshot.limits;
    if (snapshot.outDir) program.outDir = snapshot.outDir;
    if (snapshot.files.length) {
      // Files the store did not see being written are taken to match what the engine holds.
      program.writtenFingerprint ??= fingerprint(program);
      program.files = snapshot.files;
    }
    program.busy = snapshot.busy || program.busy;
    this.fire(program, true);
    return program;
  }

  /** Resolves when the job ends (at once when it already has). */
  waitForJob(generation: number, jobId: string): Promise<JobResult> {
    const job = this.jobMap.get(jobKey(generation, jobId));
    if (job?.result) return Promise.resolve(job.result);
    return new Promise((resolve) => {
      const key = jobKey(generation, jobId);
      this.waiters.set(key, [...(this.waiters.get(key) ?? []), resolve]);
    });
  }

  /** The sidecar of `generation` died: its jobs end as failed, its programs wait for the new one (`detached`). */
  markEngineStopped(generation: number, message: string): JobResult[] {
    const ended: JobResult[] = [];
    for (const job of this.jobs()) {
      if (job.generation !== generation || job.result) continue;
      const program = this.programMap.get(job.programUid)!;
      const result: JobResult = {
        jobId: job.jobId,
        programId: program.programId,
        programUid: program.uid,
        generation,
        kind: job.kind,
        status: "failed",
        files: [],
        error: { code: "ENGINE_STOPPED", message },
      };
      for (const entry of program.subTasks) {
        if (entry.codeState === "streaming") entry.codeState = entry.artifact ? "stale" : "failed";
        entry.activeStage = undefined;
      }
      program.phase = "failed";
      program.lastError = result.error;
      this.endJob(job, program, result);
      ended.push(result);
    }
    this.detachAll(generation);
    return ended;
  }

  /** The engine of `generation` is gone (crash or restart): its programs wait to be restored. */
  detachAll(generation: number): ProgramState[] {
    const detached: ProgramState[] = [];
    for (const program of this.programs()) {
      if (program.generation !== generation || program.lost || program.detached) continue;
      program.detached = true;
      program.busy = false;
      program.draftSubTasks = [];
      for (const entry of program.subTasks) entry.activeStage = undefined;
      detached.push(program);
      this.fire(program, true);
    }
    return detached;
  }

  /** Marks the moment a sub-task of this program was first shown in the tree. */
  markSubTaskShown(program: ProgramState): void {
    if (program.marks.firstSubTaskShownAt === undefined) program.marks.firstSubTaskShownAt = Date.now();
  }

  remove(uid: string): void {
    const program = this.programMap.get(uid);
    if (!program) return;
    this.programMap.delete(uid);
    this.addresses.delete(address(program.generation, program.programId));
    this.removeEmitter.fire(program);
  }

  /** Fires a structural change (after an edit the store made itself). */
  touch(program: ProgramState): void {
    this.fire(program, true);
  }

  dispose(): void {
    this.changeEmitter.dispose();
    this.removeEmitter.dispose();
    this.jobEndEmitter.dispose();
  }
}
