/**
 * The synthesis engine: owns the models and the job queue, composes the pipeline stages, and
 * reports every step as a protocol event. The sidecar serves it over JSON-RPC; the CLI uses it
 * in-process. One job runs at a time, in the order they were queued.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import {
  PROTOCOL_VERSION,
  type ErrorCode,
  type ErrorInfo,
  type JobEvent,
  type JobKind,
  type LoadedModelInfo,
  type ModelEvent,
  type ModelState,
  type ParamsOf,
  type ProgramSnapshot,
  type ResultOf,
  type ReviewMode,
  type StageTiming,
} from "../protocol";
import { roleNames } from "../schemas";
import { EngineSettingsSchema, defaultThreadCount, type EngineSettings, type EngineSettingsInput } from "../settings";
import { defaultManifestPath, loadManifest, ManifestError, resolveProfile, resolveSingleModel, type ResolvedModels } from "../models/manifest";
import { ModelHost, ModelLoadError } from "../models/modelHost";
import { ModelsError } from "../models/download";
import { ModelsService } from "../models/modelsService";
import { ConversionError } from "../peft/hfLlamaToGguf";
import { assembleProgram } from "../pipeline/assembleProgram";
import { generateCode } from "../pipeline/codeGeneration";
import { checkPythonSyntax } from "../pipeline/pythonSyntax";
import { prepareRequirement, RequirementError } from "../pipeline/requirement";
import { transformSubTask } from "../pipeline/requirementTransformation";
import { CancelledError, StageOutputError, throwIfCancelled } from "../pipeline/structuredGeneration";
import { decomposeRequirement } from "../pipeline/taskDecomposition";
import { OutputExistsError, writeProgram } from "../pipeline/writeProgram";
import { Program } from "./program";
// ---- verify and repair (issue #5) ----
import { PythonUnavailableError } from "../verify/pythonEnv";
import { verifyAndRepair } from "../verify/repairLoop";
import { VerifyRequestSchema, type VerifyRequest } from "../verify/report";
import { IsolationUnavailableError } from "../verify/sandbox";
// ---- end verify ----

export const ENGINE_VERSION = "0.1.0";

export class EngineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "EngineError";
  }
}

export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof CancelledError) return { code: "CANCELLED", message: error.message };
  if (error instanceof EngineError || error instanceof RequirementError || error instanceof ModelLoadError) return { code: error.code, message: error.message };
  if (error instanceof StageOutputError || error instanceof OutputExistsError || error instanceof ManifestError) return { code: error.code, message: error.message };
  if (error instanceof ModelsError || error instanceof ConversionError) return { code: error.code, message: error.message };
  if (error instanceof PythonUnavailableError || error instanceof IsolationUnavailableError) return { code: error.code, message: error.message };
  if (error instanceof Error && error.name === "AbortError") return { code: "CANCELLED", message: "Cancelled by the user" };
  return { code: "INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

interface JobOutcome {
  awaitingReview?: "decomposition" | "specs";
  outDir?: string;
  files: string[];
  mainCompiles?: boolean;
  verification?: VerificationSummary;
}

// ---- verify and repair (issue #5) ----
type VerificationSummary = NonNullable<Extract<JobEvent, { type: "jobFinished" }>["verification"]>;

/** What one verification may do, fixed when it is requested. */
interface VerifyPlan {
  execute: boolean;
  repairRounds: number;
  inputs?: Record<string, unknown>;
  dataFile?: string;
  /** Fail the job when verification cannot run (gpiot/verify) rather than skip it (after synthesis). */
  required: boolean;
}
// ---- end verify ----

interface Job {
  id: string;
  program: Program;
  kind: JobKind;
  controller: AbortController;
  state: "queued" | "running" | "finished";
  run(job: Job, timings: StageTiming[]): Promise<JobOutcome>;
}

export type LogLevel = "error" | "warn" | "info" | "debug";

export interface EngineOptions {
  log?(level: LogLevel, message: string): void;
}

export class SynthesisEngine {
  readonly settings: EngineSettings;
  private llama: Promise<Llama> | null = null;
  private host: ModelHost | null = null;
  private loading: Promise<ModelHost> | null = null;
  private modelState: ModelState = "none";
  private readonly programs = new Map<string, Program>();
  private readonly queue: Job[] = [];
  private running: Job | null = null;
  private readonly jobListeners = new Set<(event: JobEvent) => void>();
  private readonly modelListeners = new Set<(event: ModelEvent) => void>();
  private nextId = 1;
  private disposed = false;

  constructor(
    settings: EngineSettingsInput = {},
    private readonly options: EngineOptions = {},
  ) {
    this.settings = EngineSettingsSchema.parse(settings);
  }

  onJobEvent(listener: (event: JobEvent) => void): () => void {
    this.jobListeners.add(listener);
    return () => this.jobListeners.delete(listener);
  }

  onModelEvent(listener: (event: ModelEvent) => void): () => void {
    this.modelListeners.add(listener);
    return () => this.modelListeners.delete(listener);
  }

  private emit(event: JobEvent): void {
    for (const listener of this.jobListeners) listener(event);
  }

  private emitModel(event: ModelEvent): void {
    for (const listener of this.modelListeners) listener(event);
  }

  private log(level: LogLevel, message: string): void {
    this.options.log?.(level, message);
  }

  private manifestPath(): string {
    return this.settings.manifestPath ? path.resolve(this.settings.manifestPath) : defaultManifestPath();
  }

  // ---- models ----

  // ---- model files: pull, remove, GPU fit (issue #4) ----
  private modelsService?: ModelsService;
  /** Pull plans, pulls with progress, removal and GPU fit (gpiot/pullPlan, pullModel, cancelPull, removeModel, modelFit). */
  get modelManager(): ModelsService {
    this.modelsService ??= new ModelsService(this.settings, () => this.manifestPath(), () => this.getLlamaRuntime(), (message) => this.log("info", message));
    return this.modelsService;
  }
  // ---- end model files ----

  private getLlamaRuntime(): Promise<Llama> {
    this.llama ??= getLlama({
      gpu: this.settings.gpu,
      build: "never",
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => this.log(level === LlamaLogLevel.error || level === LlamaLogLevel.fatal ? "error" : "debug", `llama.cpp: ${message.trimEnd()}`),
    });
    return this.llama;
  }

  status(): ResultOf<"status"> {
    return {
      version: ENGINE_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      modelState: this.modelState,
      models: this.host?.info ?? null,
      runningJobId: this.running?.id ?? null,
      queuedJobIds: this.queue.map((job) => job.id),
      defaults: { threads: this.settings.threads ?? defaultThreadCount(), manifestPath: this.manifestPath() },
    };
  }

  listProfiles(): ResultOf<"listProfiles"> {
    const manifestPath = this.manifestPath();
    const manifest = loadManifest(manifestPath);
    return {
      manifestPath,
      defaultProfile: manifest.defaultProfile,
      profiles: Object.entries(manifest.profiles).map(([name, profile]) => {
        let missing: string[];
        try {
          const resolved = resolveProfile(manifest, manifestPath, name, { modelsDir: this.settings.modelsDir });
          missing = [...new Set(roleNames.flatMap((role) => [resolved.roles[role].modelPath, ...resolved.roles[role].adapters.map((adapter) => adapter.path)]))].filter((file) => !existsSync(file));
        } catch (error) {
          missing = [(error as Error).message];
        }
        return { name, description: profile.description, available: missing.length === 0, missing };
      }),
    };
  }

  private resolveModels(params: ParamsOf<"loadModels">): ResolvedModels {
    const modelPath = params.modelPath ?? (params.profile ? undefined : this.settings.modelPath);
    if (modelPath) return resolveSingleModel(modelPath);
    const manifestPath = this.manifestPath();
    return resolveProfile(loadManifest(manifestPath), manifestPath, params.profile ?? this.settings.profile, { modelsDir: this.settings.modelsDir });
  }

  async loadModels(params: ParamsOf<"loadModels"> = {}): Promise<LoadedModelInfo> {
    if (this.running) throw new EngineError("PROGRAM_BUSY", `Job ${this.running.id} is running; wait for it or cancel it before loading other models.`);
    return this.load(params);
  }

  private async load(params: ParamsOf<"loadModels">): Promise<LoadedModelInfo> {
    if (this.loading) await this.loading.catch(() => undefined);
    const resolved = this.resolveModels(params);
    const previous = this.host;
    this.host = null;
    await previous?.dispose();
    this.modelState = "loading";
    this.emitModel({ type: "loading", progress: 0, message: `Loading profile ${resolved.profile}` });
    this.loading = (async () => {
      const llama = await this.getLlamaRuntime();
      return ModelHost.load(llama, resolved, this.settings, {
        onProgress: (progress, message) => this.emitModel({ type: "loading", progress, message }),
      });
    })();
    try {
      this.host = await this.loading;
      this.modelState = "ready";
      this.emitModel({ type: "loaded", info: this.host.info });
      this.log("info", `Loaded profile ${resolved.profile}: ${this.host.info.distinctModels} model file(s), threads ${this.host.info.threads}, gpu ${this.host.info.gpu}, ${this.host.info.loadMs} ms`);
      return this.host.info;
    } catch (error) {
      this.modelState = "error";
      this.emitModel({ type: "loadFailed", error: toErrorInfo(error) });
      throw error;
    } finally {
      this.loading = null;
    }
  }

  async unloadModels(): Promise<ResultOf<"unloadModels">> {
    if (this.running) throw new EngineError("PROGRAM_BUSY", `Job ${this.running.id} is running; cancel it before unloading the models.`);
    const host = this.host;
    this.host = null;
    this.modelState = "none";
    await host?.dispose();
    if (host) this.emitModel({ type: "unloaded" });
    return { unloaded: host !== null };
  }

  private async requireModels(): Promise<ModelHost> {
    if (this.host) return this.host;
    if (this.loading) return this.loading;
    // A job that finds no models loads the configured ones itself (the job is already running).
    await this.load({});
    return this.host!;
  }

  // ---- programs and jobs ----

  private program(programId: string): Program {
    const program = this.programs.get(programId);
    if (!program) throw new EngineError("PROGRAM_NOT_FOUND", `There is no program ${programId}.`);
    return program;
  }

  private assertIdle(program: Program): void {
    if (program.busyJobs > 0) throw new EngineError("PROGRAM_BUSY", `Program ${program.id} has a queued or running job; wait for it or cancel it first.`);
  }

  getProgram(programId: string): ProgramSnapshot {
    return this.program(programId).snapshot();
  }

  synthesize(params: ParamsOf<"synthesize">): ResultOf<"synthesize"> {
    this.assertServing();
    const { requirement, limits } = prepareRequirement(params.requirement, params.constraints);
    const program = new Program(`p${this.nextId++}`, requirement, limits);
    this.programs.set(program.id, program);
    const review = params.review ?? "none";
    if (params.outDir) program.requestedOutput = { outDir: params.outDir, overwrite: params.overwrite ?? false };
    const target = { outDir: params.outDir, overwrite: params.overwrite ?? false };
    const verifyPlan = this.verifyPlan(params.verify, params.workspaceTrusted, false);
    if (verifyPlan) this.verifyPlans.set(program, verifyPlan);
    const job = this.enqueue(program, "synthesize", async (job, timings) => {
      await this.runDecomposition(job, timings);
      if (review === "decomposition") return { awaitingReview: "decomposition", files: [] };
      return this.runRemaining(job, timings, review, target);
    });
    return { jobId: job.id, programId: program.id };
  }

  continue(params: ParamsOf<"continue">): ResultOf<"continue"> {
    this.assertServing();
    const program = this.program(params.programId);
    this.assertIdle(program);
    if (program.subTasks.length === 0) throw new EngineError("NOTHING_TO_ASSEMBLE", `Program ${program.id} has no sub-tasks yet.`);
    const target =
      params.assemble === false
        ? { outDir: undefined, overwrite: false, write: false }
        : params.outDir
          ? { outDir: params.outDir, overwrite: params.overwrite ?? false }
          : { outDir: program.requestedOutput?.outDir, overwrite: params.overwrite ?? program.requestedOutput?.overwrite ?? false };
    const job = this.enqueue(program, "continue", (job, timings) => this.runRemaining(job, timings, params.review ?? "none", target));
    return { jobId: job.id };
  }

  regenerate(params: ParamsOf<"regenerate">): ResultOf<"regenerate"> {
    this.assertServing();
    const program = this.program(params.programId);
    this.assertIdle(program);
    const entry = program.find(params.subTaskId);
    if (!entry) throw new EngineError("SUBTASK_NOT_FOUND", `Program ${program.id} has no sub-task ${params.subTaskId}.`);
    if (params.stage === "code" && !entry.spec) throw new EngineError("SUBTASK_NOT_FOUND", `Sub-task ${entry.id} has no spec yet; regenerate its spec first.`);
    const job = this.enqueue(program, "regenerate", async (job, timings) => {
      const host = await this.requireModels();
      if (params.stage === "spec") await this.runSpec(job, timings, host, entry.id);
      await this.runCode(job, timings, host, entry.id);
      return { files: [] };
    });
    return { jobId: job.id };
  }

  assemble(params: ParamsOf<"assemble">): ResultOf<"assemble"> {
    this.assertServing();
    const program = this.program(params.programId);
    this.assertIdle(program);
    const outDir = params.outDir ?? program.outDir;
    if (!outDir) throw new EngineError("INVALID_PARAMS", `Program ${program.id} has no output folder yet; pass outDir.`);
    const job = this.enqueue(program, "assemble", (job, timings) => this.runWrite(job, timings, outDir, params.overwrite ?? false));
    return { jobId: job.id };
  }

  previewProgram(params: ParamsOf<"previewProgram">): ResultOf<"previewProgram"> {
    const program = this.program(params.programId);
    const ready = program.parts();
    if ("missing" in ready) throw new EngineError("NOTHING_TO_ASSEMBLE", `Sub-task "${ready.missing.subTask.name}" (${ready.missing.id}) has no up-to-date spec and code yet; continue or regenerate it first.`);
    const files = assembleProgram({ requirement: program.requirement, limits: program.limits, parts: ready.parts, generator: { profile: this.host?.info.profile ?? "unknown", createdAt: new Date().toISOString() } });
    return { files: files.map(({ path, kind, content }) => ({ path, kind, content })) };
  }

  restoreProgram(params: ParamsOf<"restoreProgram">): ProgramSnapshot {
    this.assertServing();
    let program: Program;
    if (params.programId) {
      program = this.program(params.programId);
      this.assertIdle(program);
    } else {
      program = new Program(`p${this.nextId++}`, params.requirement, params.limits ?? null);
    }
    try {
      program.restore(params.subTasks);
    } catch (error) {
      throw new EngineError("INVALID_PARAMS", `Program ${program.id}: ${(error as Error).message}`);
    }
    if (params.outDir !== undefined) program.outDir = params.outDir === null ? null : path.resolve(params.outDir);
    if (params.files) program.files = [...params.files];
    this.programs.set(program.id, program);
    return program.snapshot();
  }

  updateSubTasks(params: ParamsOf<"updateSubTasks">): ProgramSnapshot {
    const program = this.program(params.programId);
    this.assertIdle(program);
    try {
      program.replaceSubTasks(params.subTasks);
    } catch (error) {
      throw new EngineError("SUBTASK_NOT_FOUND", `Program ${program.id}: ${(error as Error).message}`);
    }
    return program.snapshot();
  }

  updateSpec(params: ParamsOf<"updateSpec">): ProgramSnapshot {
    const program = this.program(params.programId);
    this.assertIdle(program);
    if (!program.find(params.subTaskId)) throw new EngineError("SUBTASK_NOT_FOUND", `Program ${program.id} has no sub-task ${params.subTaskId}.`);
    program.setSpec(params.subTaskId, params.spec);
    return program.snapshot();
  }

  cancel(jobId: string): ResultOf<"cancel"> {
    if (this.running?.id === jobId) {
      this.running.controller.abort();
      return { cancelled: true, state: "running" };
    }
    const index = this.queue.findIndex((job) => job.id === jobId);
    if (index >= 0) {
      const [job] = this.queue.splice(index, 1);
      job.state = "finished";
      job.program.busyJobs -= 1;
      this.emit({ type: "jobFailed", jobId, programId: job.program.id, kind: job.kind, error: { code: "CANCELLED", message: "Cancelled before it started" }, cancelled: true, totalMs: 0 });
      return { cancelled: true, state: "queued" };
    }
    return { cancelled: false, state: jobId.startsWith("j") && Number(jobId.slice(1)) < this.nextId ? "finished" : "unknown" };
  }

  private assertServing(): void {
    if (this.disposed) throw new EngineError("SHUTTING_DOWN", "The engine is shutting down.");
  }

  private enqueue(program: Program, kind: JobKind, run: Job["run"]): Job {
    const job: Job = { id: `j${this.nextId++}`, program, kind, controller: new AbortController(), state: "queued", run };
    program.busyJobs += 1;
    this.queue.push(job);
    this.emit({ type: "jobQueued", jobId: job.id, programId: program.id, kind, position: this.queue.length - 1 + (this.running ? 1 : 0) });
    queueMicrotask(() => void this.pump());
    return job;
  }

  private async pump(): Promise<void> {
    if (this.running || this.disposed) return;
    const job = this.queue.shift();
    if (!job) return;
    this.running = job;
    job.state = "running";
    const started = performance.now();
    const timings: StageTiming[] = [];
    const ref = { jobId: job.id, programId: job.program.id };
    this.emit({ type: "jobStarted", ...ref, kind: job.kind });
    try {
      const outcome = await job.run(job, timings);
      throwIfCancelled(job.controller.signal);
      this.emit({
        type: "jobFinished",
        ...ref,
        kind: job.kind,
        ...outcome,
        timings,
        totalMs: Math.round(performance.now() - started),
        tokens: timings.reduce((sum, timing) => sum + timing.tokens, 0),
      });
    } catch (error) {
      const info = toErrorInfo(job.controller.signal.aborted ? new CancelledError() : error);
      if (info.code === "INTERNAL") this.log("error", `Job ${job.id} failed: ${(error as Error)?.stack ?? error}`);
      this.emit({ type: "jobFailed", ...ref, kind: job.kind, error: info, cancelled: info.code === "CANCELLED", totalMs: Math.round(performance.now() - started) });
    } finally {
      job.state = "finished";
      job.program.busyJobs -= 1;
      this.running = null;
      if (this.host) this.modelState = "ready";
      void this.pump();
    }
  }

  // ---- stages of a job ----

  private async runDecomposition(job: Job, timings: StageTiming[]): Promise<void> {
    const host = await this.requireModels();
    const { program } = job;
    const ref = { jobId: job.id, programId: program.id };
    this.modelState = "generating";
    this.emit({ type: "stageStarted", ...ref, stage: "td" });
    const result = await decomposeRequirement(
      host,
      { requirement: program.requirement, limits: program.limits },
      {
        signal: job.controller.signal,
        maxTokens: this.settings.maxTokens.td,
        onTextChunk: (text) => this.emit({ type: "textDelta", ...ref, stage: "td", text }),
        onSubTask: (index, subTask) => this.emit({ type: "subTaskDecomposed", ...ref, index, subTask }),
      },
    ).catch((error) => this.stageFailed(job, "td", undefined, error));
    const entries = program.setDecomposition(result.value.subTasks);
    timings.push({ stage: "td", ms: Math.round(result.totalMs), tokens: result.tokenCount, firstTokenMs: Math.round(result.firstTokenMs) });
    this.emit({ type: "decomposed", ...ref, subTasks: entries.map(({ id, subTask }) => ({ id, subTask })) });
  }

  private stageFailed(job: Job, stage: "td" | "rt" | "cg" | "write", subTaskId: string | undefined, error: unknown): never {
    const info = toErrorInfo(job.controller.signal.aborted ? new CancelledError() : error);
    if (info.code !== "CANCELLED") this.emit({ type: "stageFailed", jobId: job.id, programId: job.program.id, stage, subTaskId, error: info });
    throw error;
  }

  private async runSpec(job: Job, timings: StageTiming[], host: ModelHost, subTaskId: string): Promise<void> {
    const { program } = job;
    const ref = { jobId: job.id, programId: program.id };
    const entry = program.find(subTaskId)!;
    this.modelState = "generating";
    this.emit({ type: "stageStarted", ...ref, stage: "rt", subTaskId });
    const result = await transformSubTask(
      host,
      { requirement: program.requirement, limits: program.limits, subTask: entry.subTask, previousSpecs: program.specsBefore(subTaskId) },
      {
        signal: job.controller.signal,
        maxTokens: { target: this.settings.maxTokens.rtTarget, io: this.settings.maxTokens.rtIo },
        onTextChunk: (_step, text) => this.emit({ type: "textDelta", ...ref, stage: "rt", subTaskId, text }),
      },
    ).catch((error) => this.stageFailed(job, "rt", subTaskId, error));
    program.setSpec(subTaskId, result.spec);
    timings.push({ stage: "rt", subTaskId, ms: Math.round(result.totalMs), tokens: result.tokenCount, firstTokenMs: Math.round(result.firstTokenMs) });
    this.emit({ type: "specReady", ...ref, subTaskId, spec: result.spec, markdown: entry.specMarkdown! });
  }

  private async runCode(job: Job, timings: StageTiming[], host: ModelHost, subTaskId: string, repair?: { previousCode: string; error: string }): Promise<void> {
    const { program } = job;
    const ref = { jobId: job.id, programId: program.id };
    const entry = program.find(subTaskId)!;
    this.modelState = "generating";
    entry.codeState = "streaming";
    this.emit({ type: "stageStarted", ...ref, stage: "cg", subTaskId });
    const result = await generateCode(
      host,
      { requirement: program.requirement, limits: program.limits, spec: entry.spec!, previousSpecs: program.specsBefore(subTaskId), ...(repair ? { repair } : {}) },
      {
        signal: job.controller.signal,
        maxTokens: this.settings.maxTokens.cg,
        onTextChunk: (text) => this.emit({ type: "textDelta", ...ref, stage: "cg", subTaskId, text }),
        onCodeDelta: (text) => this.emit({ type: "codeDelta", ...ref, subTaskId, text }),
      },
    ).catch((error) => {
      entry.codeState = entry.artifact ? "stale" : "failed";
      return this.stageFailed(job, "cg", subTaskId, error);
    });
    const syntaxStarted = performance.now();
    const syntax = await checkPythonSyntax(result.value.code, `${subTaskId}.py`, this.settings.python);
    program.setCode(subTaskId, result.value, syntax);
    timings.push({ stage: "cg", subTaskId, ms: Math.round(result.totalMs), tokens: result.tokenCount, firstTokenMs: Math.round(result.firstTokenMs) });
    timings.push({ stage: "check", subTaskId, ms: Math.round(performance.now() - syntaxStarted), tokens: 0 });
    this.emit({ type: "codeReady", ...ref, subTaskId, artifact: result.value, syntax });
  }

  private async runRemaining(job: Job, timings: StageTiming[], review: ReviewMode, target: { outDir?: string; overwrite: boolean; write?: boolean }): Promise<JobOutcome> {
    const host = await this.requireModels();
    const { program } = job;
    let newSpecs = 0;
    for (const entry of program.subTasks) {
      if (entry.spec && !entry.specStale) continue;
      await this.runSpec(job, timings, host, entry.id);
      newSpecs += 1;
    }
    if (review === "specs" && newSpecs > 0) return { awaitingReview: "specs", files: [] };
    for (const entry of program.subTasks) {
      if (program.needsCode(entry)) await this.runCode(job, timings, host, entry.id);
    }
    // ---- verify and repair (issue #5) ----
    const verifyPlan = this.verifyPlans.get(program);
    const verification = verifyPlan ? await this.runVerification(job, timings, verifyPlan) : undefined;
    const verified = verification ? { verification } : {};
    // ---- end verify ----
    const outDir = target.write === false ? undefined : (target.outDir ?? program.outDir);
    if (!outDir) return { files: [], ...verified };
    return { ...(await this.runWrite(job, timings, outDir, target.overwrite)), ...verified };
  }

  // ---- verify and repair (issue #5) ----
  private readonly verifyPlans = new WeakMap<Program, VerifyPlan>();

  /**
   * What a verification may do. An explicit request that runs the program needs consent (in the
   * request or the verify.consent setting) and a trusted workspace, else it is refused; the
   * verify.enabled setting alone runs the program only with consent and trust, else checks it
   * statically.
   */
  private verifyPlan(request: VerifyRequest | undefined, workspaceTrusted: boolean | undefined, required: boolean): VerifyPlan | null {
    const settings = this.settings.verify;
    if (!request && !settings.enabled) return null;
    const parsed = VerifyRequestSchema.parse(request ?? { execute: settings.consent && workspaceTrusted !== false });
    const consent = parsed.consent ?? settings.consent;
    if (parsed.execute && workspaceTrusted === false)
      throw new EngineError("WORKSPACE_UNTRUSTED", "This workspace is not trusted: GPIoT never runs generated code in it. Trust the workspace, or verify with execute: false (static checks only).");
    if (parsed.execute && !consent)
      throw new EngineError("CONSENT_REQUIRED", "Running the generated program needs your consent: pass consent: true (CLI: --yes), set verify.consent, or verify with execute: false (static checks only).");
    return { execute: parsed.execute, repairRounds: parsed.repairRounds ?? settings.repairRounds, inputs: parsed.inputs, dataFile: parsed.dataFile, required };
  }

  /** Queues a verification (and repair) of a program whose sub-tasks all have code. */
  verify(params: ParamsOf<"verify">): ResultOf<"verify"> {
    this.assertServing();
    const program = this.program(params.programId);
    this.assertIdle(program);
    if (program.subTasks.length === 0) throw new EngineError("NOTHING_TO_ASSEMBLE", `Program ${program.id} has no sub-tasks yet.`);
    const ready = program.parts();
    if ("missing" in ready) throw new EngineError("NOTHING_TO_ASSEMBLE", `Sub-task "${ready.missing.subTask.name}" (${ready.missing.id}) has no up-to-date spec and code yet; continue or regenerate it first.`);
    const { programId: _programId, workspaceTrusted, ...request } = params;
    const plan = this.verifyPlan(request, workspaceTrusted, true)!;
    const job = this.enqueue(program, "verify", async (job, timings) => {
      const before = JSON.stringify(program.subTasks.map((entry) => entry.artifact?.code ?? null));
      const verification = await this.runVerification(job, timings, plan);
      const changed = JSON.stringify(program.subTasks.map((entry) => entry.artifact?.code ?? null)) !== before;
      if (program.outDir && changed) return { ...(await this.runWrite(job, timings, program.outDir, true)), ...(verification ? { verification } : {}) };
      return { files: [], ...(verification ? { verification } : {}) };
    });
    return { jobId: job.id };
  }

  private async runVerification(job: Job, timings: StageTiming[], plan: VerifyPlan): Promise<VerificationSummary | undefined> {
    const { program } = job;
    const ref = { jobId: job.id, programId: program.id };
    const settings = this.settings.verify;
    try {
      const state = await verifyAndRepair(
        {
          subTasks: () => program.subTasks,
          assemble: () => {
            const ready = program.parts();
            if ("missing" in ready) throw new EngineError("NOTHING_TO_ASSEMBLE", `Sub-task "${ready.missing.subTask.name}" (${ready.missing.id}) has no up-to-date code.`);
            return assembleProgram({ requirement: program.requirement, limits: program.limits, parts: ready.parts, generator: { profile: this.host?.info.profile ?? "unknown", createdAt: new Date().toISOString() } });
          },
          regenerate: async (subTaskId, repair) => this.runCode(job, timings, await this.requireModels(), subTaskId, repair),
          emit: (event) => this.emit({ ...event, ...ref }),
          signal: job.controller.signal,
        },
        {
          execute: plan.execute,
          repairRounds: plan.repairRounds,
          inputs: plan.inputs,
          dataFile: plan.dataFile,
          settings: { python: settings.pythonPath ?? this.settings.python, timeoutMs: settings.timeoutMs, memoryMB: settings.memoryMB, isolation: settings.isolation },
        },
      );
      program.verification = state;
      timings.push({ stage: "verify", ms: state.attempts.reduce((sum, attempt) => sum + attempt.report.ms, 0), tokens: 0 });
      const best = state.attempts.find((attempt) => attempt.round === state.bestRound)!;
      return { status: state.status, bestRound: state.bestRound, rounds: state.attempts.length - 1, executed: best.report.executed, failure: best.report.failure };
    } catch (error) {
      if (plan.required || job.controller.signal.aborted || !(error instanceof PythonUnavailableError || error instanceof IsolationUnavailableError)) throw error;
      this.emit({ type: "stageFailed", ...ref, stage: "verify", error: toErrorInfo(error) });
      return undefined;
    }
  }
  // ---- end verify ----

  private async runWrite(job: Job, timings: StageTiming[], outDir: string, overwrite: boolean): Promise<JobOutcome> {
    const { program } = job;
    const ref = { jobId: job.id, programId: program.id };
    const started = performance.now();
    this.emit({ type: "stageStarted", ...ref, stage: "assemble" });
    const ready = program.parts();
    if ("missing" in ready) throw new EngineError("NOTHING_TO_ASSEMBLE", `Sub-task "${ready.missing.subTask.name}" (${ready.missing.id}) has no up-to-date spec and code yet; continue or regenerate it first.`);
    const files = assembleProgram({
      requirement: program.requirement,
      limits: program.limits,
      parts: ready.parts,
      generator: { profile: this.host?.info.profile ?? "unknown", createdAt: new Date().toISOString() },
    });
    const mainFile = files.find((file) => file.kind === "main")!;
    const mainCheck = await checkPythonSyntax(mainFile.content, "main.py", this.settings.python);
    timings.push({ stage: "assemble", ms: Math.round(performance.now() - started), tokens: 0 });
    throwIfCancelled(job.controller.signal);
    const writeStarted = performance.now();
    this.emit({ type: "stageStarted", ...ref, stage: "write" });
    const written = await writeProgram(outDir, files, { overwrite: overwrite || (program.outDir !== null && path.resolve(outDir) === program.outDir) }).catch((error) =>
      this.stageFailed(job, "write", undefined, error),
    );
    program.outDir = written.outDir;
    program.files = written.files.map((file) => path.join(written.outDir, file.path));
    for (const file of written.files) this.emit({ type: "fileWritten", ...ref, path: path.join(written.outDir, file.path), kind: file.kind });
    timings.push({ stage: "write", ms: Math.round(performance.now() - writeStarted), tokens: 0 });
    return { outDir: written.outDir, files: program.files, ...(mainCheck.checked ? { mainCompiles: mainCheck.ok } : {}) };
  }

  /** Cancels every job and frees the models. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.modelsService?.dispose();
    for (const job of this.queue.splice(0)) {
      job.program.busyJobs -= 1;
      this.emit({ type: "jobFailed", jobId: job.id, programId: job.program.id, kind: job.kind, error: { code: "SHUTTING_DOWN", message: "The engine shut down before the job started" }, cancelled: true, totalMs: 0 });
    }
    const running = this.running;
    running?.controller.abort();
    while (this.running) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.loading?.catch(() => undefined);
    await this.host?.dispose();
    this.host = null;
    const llama = await this.llama?.catch(() => null);
    await llama?.dispose();
  }
}
