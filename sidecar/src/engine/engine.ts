/**
 * The synthesis engine: the public face of the job queue, the models and the programs. It
 * validates each request, queues a job that composes the job steps, and reports every step as a
 * protocol event. The sidecar serves it over JSON-RPC; the CLI uses it in-process.
 */
import path from "node:path";
import {
  PROTOCOL_VERSION,
  type JobEvent,
  type JobKind,
  type LoadedModelInfo,
  type ModelEvent,
  type OverwriteMode,
  type ParamsOf,
  type ProgramSnapshot,
  type ResultOf,
  type ReviewMode,
} from "../protocol";
import { EngineSettingsSchema, defaultThreadCount, type EngineSettings, type EngineSettingsInput } from "../settings";
import type { ModelsService } from "../models/modelsService";
import { checkContextBudget, knownStagePrompts } from "../pipeline/contextBudget";
import { prepareRequirement, type PreparedRequirement } from "../pipeline/requirement";
import { checkOutputFolder } from "../pipeline/writeProgram";
import { PythonSyntaxChecker } from "../pipeline/pythonSyntax";
import { EngineError } from "./errors";
import type { EngineModels } from "../models/engineModels";
import { assembleReadyProgram, decompose, generateSubTaskCode, jobEmitter, specify, writeProgramFiles, type JobContext } from "./jobSteps";
import { JobQueue, type Job, type JobOutcome } from "./jobQueue";
import { ModelLifecycle, type LogLevel } from "./modelLifecycle";
import { Program } from "./program";
import { specifyAndGenerateInParallel, specifyThenGenerate } from "./subTaskPipeline";
import { planVerification, runVerification, type VerifyPlan } from "./verification";
import { RetrievalService } from "../retrieval/retrievalService";
import { JobRetrieval } from "./retrievalStep";

export { EngineError, toErrorInfo } from "./errors";
export type { LogLevel } from "./modelLifecycle";

export const ENGINE_VERSION = "0.1.0";

export type SynthesisCheck = Pick<ParamsOf<"synthesize">, "requirement" | "constraints" | "outDir" | "overwrite">;

/**
 * The checks of a synthesis request that need no engine: the requirement and constraints, the
 * context size (the configured one, else the loaded models') against the prompts, the output folder.
 */
export function checkSynthesisRequest(settings: EngineSettingsInput, params: SynthesisCheck, loadedContextSize?: number): PreparedRequirement {
  const { contextSize, maxTokens } = EngineSettingsSchema.parse(settings);
  const prepared = prepareRequirement(params.requirement, params.constraints);
  const budget = contextSize ?? loadedContextSize;
  if (budget !== undefined) checkContextBudget(budget, knownStagePrompts(prepared.requirement, prepared.limits, maxTokens));
  if (params.outDir) checkOutputFolder(params.outDir, params.overwrite ?? "never");
  return prepared;
}

export interface EngineOptions {
  log?(level: LogLevel, message: string): void;
}

interface OutputTarget {
  outDir?: string;
  overwrite: OverwriteMode;
  /** false: bring specs and code up to date, write nothing. */
  write?: boolean;
}

export class SynthesisEngine {
  readonly settings: EngineSettings;
  private readonly models: ModelLifecycle;
  private readonly jobs: JobQueue;
  private readonly retrieval: RetrievalService;
  /** One interpreter checks every module's syntax; it is killed when a check is cancelled and on dispose. */
  private readonly syntax: PythonSyntaxChecker;
  private readonly programs = new Map<string, Program>();
  private readonly verifyPlans = new WeakMap<Program, VerifyPlan>();
  private readonly jobListeners = new Set<(event: JobEvent) => void>();
  private readonly modelListeners = new Set<(event: ModelEvent) => void>();
  private nextProgramNumber = 1;
  private disposed = false;

  constructor(
    settings: EngineSettingsInput = {},
    private readonly options: EngineOptions = {},
  ) {
    this.settings = EngineSettingsSchema.parse(settings);
    this.syntax = new PythonSyntaxChecker(this.settings.python);
    this.models = new ModelLifecycle(this.settings, (event) => this.notify(this.modelListeners, event), (level, message) => this.log(level, message));
    this.retrieval = new RetrievalService({
      settings: this.settings,
      manifestPath: () => this.models.manifestPath(),
      loadedProfile: () => this.models.info?.profile,
      runtime: () => this.models.runtime(),
      log: (level, message) => this.log(level, message),
    });
    this.jobs = new JobQueue({
      emit: (event) => this.notify(this.jobListeners, event),
      logError: (message) => this.log("error", message),
      onJobSettled: () => this.models.markIdle(),
    });
  }

  onJobEvent(listener: (event: JobEvent) => void): () => void {
    this.jobListeners.add(listener);
    return () => this.jobListeners.delete(listener);
  }

  onModelEvent(listener: (event: ModelEvent) => void): () => void {
    this.modelListeners.add(listener);
    return () => this.modelListeners.delete(listener);
  }

  /** A listener that throws is logged and skipped: it must never stop the queue or the other listeners. */
  private notify<E>(listeners: Set<(event: E) => void>, event: E): void {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        this.log("error", `An event listener failed: ${(error as Error)?.stack ?? error}`);
      }
    }
  }

  private log(level: LogLevel, message: string): void {
    this.options.log?.(level, message);
  }

  // Models

  /** Pull plans, pulls with progress, removal and GPU fit (gpiot/pullPlan, pullModel, cancelPull, removeModel, modelFit). */
  get modelManager(): ModelsService {
    return this.models.modelManager;
  }

  /** The retrieval index: add, list, remove, rebuild, search (gpiot/index*). */
  get retrievalIndex(): RetrievalService {
    return this.retrieval;
  }

  status(): ResultOf<"status"> {
    return {
      version: ENGINE_VERSION,
      protocolVersion: PROTOCOL_VERSION,
      modelState: this.models.modelState,
      models: this.models.info,
      runningJobId: this.jobs.running?.id ?? null,
      queuedJobIds: this.jobs.queuedIds,
      defaults: { threads: this.settings.threads ?? defaultThreadCount(), manifestPath: this.models.manifestPath() },
    };
  }

  listProfiles(): ResultOf<"listProfiles"> {
    return this.models.listProfiles();
  }

  async loadModels(params: ParamsOf<"loadModels"> = {}): Promise<LoadedModelInfo> {
    this.assertServing();
    const running = this.jobs.running;
    if (running) throw new EngineError("PROGRAM_BUSY", `Job ${running.id} is running; wait for it or cancel it before loading other models.`);
    return this.models.load(params);
  }

  async unloadModels(): Promise<ResultOf<"unloadModels">> {
    const running = this.jobs.running;
    if (running) throw new EngineError("PROGRAM_BUSY", `Job ${running.id} is running; cancel it before unloading the models.`);
    return { unloaded: await this.models.unload() };
  }

  // Programs and jobs

  private program(programId: string): Program {
    const program = this.programs.get(programId);
    if (!program) throw new EngineError("PROGRAM_NOT_FOUND", `There is no program ${programId}.`);
    return program;
  }

  private assertIdle(program: Program): void {
    if (program.busyJobs > 0) throw new EngineError("PROGRAM_BUSY", `Program ${program.id} has a queued or running job; wait for it or cancel it first.`);
  }

  private assertServing(): void {
    if (this.disposed) throw new EngineError("SHUTTING_DOWN", "The engine is shutting down.");
  }

  getProgram(programId: string): ProgramSnapshot {
    return this.program(programId).snapshot();
  }

  private enqueue(program: Program, kind: JobKind, run: (context: JobContext) => Promise<JobOutcome>): Job {
    return this.jobs.enqueue(program, kind, (job, timings) =>
      run({
        job,
        timings,
        settings: this.settings,
        models: this.models,
        syntax: this.syntax,
        emit: jobEmitter(job, (event) => this.notify(this.jobListeners, event)),
        log: (message) => this.log("info", message),
        retrieval: new JobRetrieval(this.retrieval),
      }),
    );
  }

  /**
   * Everything a synthesis can be refused for, checked before any model is loaded or any job is
   * queued: the requirement and constraints, the context size against the prompts, the output
   * folder. Throws the coded error that names the problem.
   */
  checkSynthesis(params: SynthesisCheck): PreparedRequirement {
    return checkSynthesisRequest(this.settings, params, this.models.loadedContextSize());
  }

  synthesize(params: ParamsOf<"synthesize">): ResultOf<"synthesize"> {
    this.assertServing();
    const { requirement, limits } = this.checkSynthesis(params);
    const verifyPlan = planVerification(this.settings.verify, params.verify, params.workspaceTrusted, false);
    const program = new Program(`p${this.nextProgramNumber++}`, requirement, limits);
    this.programs.set(program.id, program);
    if (verifyPlan) this.verifyPlans.set(program, verifyPlan);
    const review = params.review ?? "none";
    const target = { outDir: params.outDir, overwrite: params.overwrite ?? "never" };
    if (params.outDir) program.requestedOutput = { outDir: params.outDir, overwrite: target.overwrite };
    const job = this.enqueue(program, "synthesize", async (context) => {
      await decompose(context);
      if (review === "decomposition") return { awaitingReview: "decomposition", files: [] };
      return this.runRemaining(context, review, target);
    });
    return { jobId: job.id, programId: program.id };
  }

  continue(params: ParamsOf<"continue">): ResultOf<"continue"> {
    this.assertServing();
    const program = this.program(params.programId);
    this.assertIdle(program);
    if (program.subTasks.length === 0) throw new EngineError("NOTHING_TO_ASSEMBLE", `Program ${program.id} has no sub-tasks yet.`);
    const target: OutputTarget =
      params.assemble === false
        ? { overwrite: "never", write: false }
        : params.outDir
          ? { outDir: params.outDir, overwrite: params.overwrite ?? "never" }
          : { outDir: program.requestedOutput?.outDir, overwrite: params.overwrite ?? program.requestedOutput?.overwrite ?? "never" };
    const outDir = target.write === false ? undefined : (target.outDir ?? program.outDir);
    if (outDir) checkOutputFolder(outDir, target.overwrite, program.uid);
    const job = this.enqueue(program, "continue", (context) => this.runRemaining(context, params.review ?? "none", target));
    return { jobId: job.id };
  }

  regenerate(params: ParamsOf<"regenerate">): ResultOf<"regenerate"> {
    this.assertServing();
    const program = this.program(params.programId);
    this.assertIdle(program);
    const entry = program.find(params.subTaskId);
    if (!entry) throw new EngineError("SUBTASK_NOT_FOUND", `Program ${program.id} has no sub-task ${params.subTaskId}.`);
    if (params.stage === "code" && !entry.spec) throw new EngineError("SUBTASK_NOT_FOUND", `Sub-task ${entry.id} has no spec yet; regenerate its spec first.`);
    const job = this.enqueue(program, "regenerate", async (context) => {
      const host = await this.models.require(context.job.controller.signal);
      if (params.stage === "spec") await specify(context, host, entry.id);
      await generateSubTaskCode(context, host, entry.id);
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
    const overwrite = params.overwrite ?? "never";
    checkOutputFolder(outDir, overwrite, program.uid);
    const job = this.enqueue(program, "assemble", (context) => writeProgramFiles(context, outDir, overwrite));
    return { jobId: job.id };
  }

  previewProgram(params: ParamsOf<"previewProgram">): ResultOf<"previewProgram"> {
    const files = assembleReadyProgram(this.program(params.programId), this.models.info?.profile ?? "unknown");
    return { files: files.map(({ path, kind, content }) => ({ path, kind, content })) };
  }

  restoreProgram(params: ParamsOf<"restoreProgram">): ProgramSnapshot {
    this.assertServing();
    let program: Program;
    if (params.programId) {
      program = this.program(params.programId);
      this.assertIdle(program);
    } else {
      program = new Program(`p${this.nextProgramNumber++}`, params.requirement, params.limits ?? null, params.ownerId);
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
    return this.jobs.cancel(jobId);
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
    const plan = planVerification(this.settings.verify, request, workspaceTrusted, true)!;
    const job = this.enqueue(program, "verify", async (context) => {
      const codeOf = () => JSON.stringify(program.subTasks.map((entry) => entry.artifact?.code ?? null));
      const before = codeOf();
      const verified = await this.runVerificationStep(context, plan);
      // The program's own folder: GPIoT's files are rewritten; a file the user changed stops it (OUTPUT_FILES_CHANGED).
      if (program.outDir && codeOf() !== before) return { ...(await writeProgramFiles(context, program.outDir, "never")), ...verified };
      return { files: [], ...verified };
    });
    return { jobId: job.id };
  }

  // Job bodies

  /** Sub-tasks a job generates at once with these models: the setting, bounded by what the roles can run. */
  private parallelism(models: EngineModels): number {
    return Math.max(1, Math.min(this.settings.parallelSubTasks, models.parallelism("rt"), models.parallelism("cg")));
  }

  private async runRemaining(context: JobContext, review: ReviewMode, target: OutputTarget): Promise<JobOutcome> {
    const models = await this.models.require(context.job.controller.signal);
    const { program } = context.job;
    // A review of new specs comes before any code is written.
    const code = !(review === "specs" && program.subTasks.some((entry) => program.needsSpec(entry)));
    const parallel = this.parallelism(models);
    this.syntax.warmUp();
    const { newSpecs } = parallel > 1 ? await specifyAndGenerateInParallel(context, models, code, parallel) : await specifyThenGenerate(context, models, code);
    if (review === "specs" && newSpecs > 0) return { awaitingReview: "specs", files: [] };
    const verifyPlan = this.verifyPlans.get(program);
    const verified = verifyPlan ? await this.runVerificationStep(context, verifyPlan) : {};
    const outDir = target.write === false ? undefined : (target.outDir ?? program.outDir);
    if (!outDir) return { files: [], ...verified };
    return { ...(await writeProgramFiles(context, outDir, target.overwrite)), ...verified };
  }

  private async runVerificationStep(context: JobContext, plan: VerifyPlan): Promise<Pick<JobOutcome, "verification">> {
    const { job } = context;
    const result = await runVerification(
      {
        program: job.program,
        settings: this.settings,
        profile: this.models.info?.profile ?? "unknown",
        signal: job.controller.signal,
        emit: context.emit,
        regenerate: async (subTaskId, repair) => generateSubTaskCode(context, await this.models.require(job.controller.signal), subTaskId, repair),
      },
      plan,
    );
    if (!result) return {};
    context.timings.push({ stage: "verify", ms: result.ms, tokens: 0 });
    return { verification: result.summary };
  }

  /** Cancels every job and frees the models. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.jobs.close({ code: "SHUTTING_DOWN", message: "The engine shut down before the job started" });
    await this.retrieval.dispose();
    await this.models.dispose();
    this.syntax.dispose();
  }
}
