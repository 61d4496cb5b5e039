/**
 * The steps a job is made of, each composing one pipeline stage with the program state and the
 * events that report it: decompose, specify a sub-task, generate its code, write the program.
 * Every step takes the job's context explicitly; nothing here keeps state between calls.
 */
import path from "node:path";
import type { JobEvent, OverwriteMode, StageTiming } from "../protocol";
import type { EngineSettings } from "../settings";
import type { EngineModels } from "../models/engineModels";
import { assembleProgram } from "../pipeline/assembleProgram";
import { generateCode } from "../pipeline/codeGeneration";
import type { PythonSyntaxChecker } from "../pipeline/pythonSyntax";
import { generateIoSpec, generateTarget } from "../pipeline/requirementTransformation";
import { CancelledError, throwIfCancelled, type StructuredResult } from "../pipeline/structuredGeneration";
import type { UserTarget } from "../schemas";
import { decomposeRequirement } from "../pipeline/taskDecomposition";
import { CG_SYSTEM_PROMPT, buildCodePrompt } from "../pipeline/codeGeneration";
import { RT_SYSTEM_PROMPT, buildIoPrompt } from "../pipeline/requirementTransformation";
import { UserTargetSchema } from "../schemas";
import type { Passage } from "../pipeline/passages";
import { retrieveForStage, type JobRetrieval } from "./retrievalStep";
import { writeProgram } from "../pipeline/writeProgram";
import type { Program } from "./program";
import { EngineError, toErrorInfo } from "./errors";
import type { Job, JobOutcome } from "./jobQueue";
import type { ModelLifecycle } from "./modelLifecycle";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A job event without the job and program ids, which the context adds. */
export type JobEventBody = DistributiveOmit<JobEvent, "jobId" | "programId">;

export interface JobContext {
  job: Job;
  timings: StageTiming[];
  settings: EngineSettings;
  models: ModelLifecycle;
  emit: (event: JobEventBody) => void;
  /** A line for the engine's log (e.g. what was cleaned up after an interrupted write). */
  log: (message: string) => void;
  /** The engine's long-lived Python syntax checker. */
  syntax: PythonSyntaxChecker;
  /** Passages from the user's documents for RT and CG; absent: no retrieval. */
  retrieval?: JobRetrieval;
}

/** A step's own stop signal: the job's, or a narrower one (parallel steps stop together when one fails). */
export interface StepOptions {
  signal?: AbortSignal;
}

export function jobEmitter(job: Job, emit: (event: JobEvent) => void): (event: JobEventBody) => void {
  return (event) => emit({ ...event, jobId: job.id, programId: job.program.id } as JobEvent);
}

function stageRetrieval(context: JobContext, models: EngineModels, role: "rt" | "cg", signal: AbortSignal) {
  return { retrieval: context.retrieval, signal, contextSize: models.info.roles[role]?.contextSize, emit: context.emit };
}

/** Tokens kept for each earlier sub-task whose spec is not written yet (its outputs join the I/O prompt later). */
const PENDING_SPEC_TOKENS = 96;

function stageFailed(context: JobContext, stage: "td" | "rt" | "cg" | "write", subTaskId: string | undefined, error: unknown): never {
  const info = toErrorInfo(context.job.controller.signal.aborted ? new CancelledError() : error);
  if (info.code !== "CANCELLED") context.emit({ type: "stageFailed", stage, subTaskId, error: info });
  throw error;
}

export async function decompose(context: JobContext): Promise<void> {
  const { job, emit, settings } = context;
  const host = await context.models.require(job.controller.signal);
  const { program } = job;
  context.models.markGenerating();
  emit({ type: "stageStarted", stage: "td" });
  const result = await decomposeRequirement(
    host,
    { requirement: program.requirement, limits: program.limits },
    {
      signal: job.controller.signal,
      maxTokens: settings.maxTokens.td,
      onTextChunk: (text) => emit({ type: "textDelta", stage: "td", text }),
      onSubTask: (index, subTask) => emit({ type: "subTaskDecomposed", index, subTask }),
    },
  ).catch((error) => stageFailed(context, "td", undefined, error));
  const entries = program.setDecomposition(result.value.subTasks);
  context.timings.push({ stage: "td", ms: Math.round(result.totalMs), tokens: result.tokenCount, firstTokenMs: Math.round(result.firstTokenMs) });
  emit({ type: "decomposed", subTasks: entries.map(({ id, subTask }) => ({ id, subTask })) });
}

/** RT's first prompt under way: its target, and the passages both of RT's prompts show. */
export type PendingTarget = Promise<{ target: StructuredResult<UserTarget>; passages: Passage[] }>;

/** Starts RT's first prompt for a sub-task (it needs no other spec); `specify` finishes the spec. */
export function startTarget(context: JobContext, models: EngineModels, subTaskId: string, options: StepOptions = {}): PendingTarget {
  const { job, emit, settings } = context;
  const { program } = job;
  const entry = program.find(subTaskId)!;
  context.models.markGenerating();
  emit({ type: "stageStarted", stage: "rt", subTaskId });
  const signal = options.signal ?? job.controller.signal;
  return (async () => {
    const input = { requirement: program.requirement, limits: program.limits, subTask: entry.subTask };
    const index = program.subTasks.findIndex((candidate) => candidate.id === subTaskId);
    const previousSpecs = program.specsBefore(subTaskId);
    const passages = await retrieveForStage(stageRetrieval(context, models, "rt", signal), models, {
      stage: "rt",
      subTaskId,
      query: [entry.subTask.name, entry.subTask.problem, ...entry.subTask.steps].join("\n"),
      systemPrompt: RT_SYSTEM_PROMPT,
      // The longer of RT's two prompts: the I/O prompt with the longest target, and room for the specs before it still being written.
      userPrompt: buildIoPrompt({ ...input, previousSpecs }, "x".repeat(UserTargetSchema.shape.target.maxLength ?? 400)),
      reserveTokens: Math.max(0, index - previousSpecs.length) * PENDING_SPEC_TOKENS,
      maxAnswerTokens: Math.max(settings.maxTokens.rtTarget, settings.maxTokens.rtIo),
    });
    const target = await generateTarget(models, { ...input, passages }, { signal, maxTokens: settings.maxTokens.rtTarget, onTextChunk: (text) => emit({ type: "textDelta", stage: "rt", subTaskId, text }) });
    return { target, passages };
  })();
}

/** RT for one sub-task: its target (or the one already started), then inputs and outputs given the specs before it. */
export async function specify(context: JobContext, models: EngineModels, subTaskId: string, options: StepOptions & { target?: PendingTarget } = {}): Promise<void> {
  const { job, emit, settings } = context;
  const { program } = job;
  const entry = program.find(subTaskId)!;
  const signal = options.signal ?? job.controller.signal;
  let passages: Passage[] = [];
  const result = await (async () => {
    const started = await (options.target ?? startTarget(context, models, subTaskId, options));
    passages = started.passages;
    context.models.markGenerating();
    return generateIoSpec(
      models,
      { requirement: program.requirement, limits: program.limits, subTask: entry.subTask, previousSpecs: program.specsBefore(subTaskId), passages },
      started.target,
      { signal, maxTokens: settings.maxTokens.rtIo, onTextChunk: (text) => emit({ type: "textDelta", stage: "rt", subTaskId, text }) },
    );
  })().catch((error) => stageFailed(context, "rt", subTaskId, error));
  const citations = passages.map((passage) => passage.citation);
  program.setSpec(subTaskId, result.spec, citations);
  context.timings.push({ stage: "rt", subTaskId, ms: Math.round(result.totalMs), tokens: result.tokenCount, firstTokenMs: Math.round(result.firstTokenMs) });
  emit({ type: "specReady", subTaskId, spec: result.spec, markdown: entry.specMarkdown!, citations });
}

export async function generateSubTaskCode(
  context: JobContext,
  models: EngineModels,
  subTaskId: string,
  repair?: { previousCode: string; error: string },
  options: StepOptions = {},
): Promise<void> {
  const { job, emit, settings } = context;
  const { program } = job;
  const signal = options.signal ?? job.controller.signal;
  const entry = program.find(subTaskId)!;
  context.models.markGenerating();
  entry.codeState = "streaming";
  emit({ type: "stageStarted", stage: "cg", subTaskId });
  const input = { requirement: program.requirement, limits: program.limits, spec: entry.spec!, previousSpecs: program.specsBefore(subTaskId), ...(repair ? { repair } : {}) };
  const spec = entry.spec!;
  const passages = await retrieveForStage(stageRetrieval(context, models, "cg", signal), models, {
    stage: "cg",
    subTaskId,
    query: [spec.target, entry.subTask.name, ...[...spec.inputs, ...spec.outputs].map((parameter) => `${parameter.name} (${parameter.type}): ${parameter.description}`)].join("\n"),
    systemPrompt: CG_SYSTEM_PROMPT,
    userPrompt: buildCodePrompt(input),
    maxAnswerTokens: settings.maxTokens.cg,
  }).catch((error) => {
    entry.codeState = entry.artifact ? "stale" : "failed";
    throw error;
  });
  const result = await generateCode(
    models,
    { ...input, passages },
    {
      signal,
      maxTokens: settings.maxTokens.cg,
      onTextChunk: (text) => emit({ type: "textDelta", stage: "cg", subTaskId, text }),
      onCodeDelta: (text) => emit({ type: "codeDelta", subTaskId, text }),
    },
  ).catch((error) => {
    entry.codeState = entry.artifact ? "stale" : "failed";
    return stageFailed(context, "cg", subTaskId, error);
  });
  const syntaxStarted = performance.now();
  const syntax = await context.syntax.check(result.value.code, `${subTaskId}.py`, signal).catch((error) => {
    entry.codeState = entry.artifact ? "stale" : "failed";
    throw error;
  });
  const citations = passages.map((passage) => passage.citation);
  program.setCode(subTaskId, result.value, syntax, citations);
  context.timings.push({ stage: "cg", subTaskId, ms: Math.round(result.totalMs), tokens: result.tokenCount, firstTokenMs: Math.round(result.firstTokenMs) });
  context.timings.push({ stage: "check", subTaskId, ms: Math.round(performance.now() - syntaxStarted), tokens: 0 });
  emit({ type: "codeReady", subTaskId, artifact: result.value, syntax, citations });
}

/**
 * Assembles and writes the program. Cancellable until the folder is renamed into place; after
 * that the files are on disk and the job finishes, whatever arrives later.
 */
/** The program's files from the current spec and code of every sub-task; refused while one lacks them. */
export function assembleReadyProgram(program: Program, profile: string): ReturnType<typeof assembleProgram> {
  const ready = program.parts();
  if ("missing" in ready) throw new EngineError("NOTHING_TO_ASSEMBLE", `Sub-task "${ready.missing.subTask.name}" (${ready.missing.id}) has no up-to-date spec and code yet; continue or regenerate it first.`);
  return assembleProgram({ requirement: program.requirement, limits: program.limits, parts: ready.parts, generator: { profile, createdAt: new Date().toISOString() }, programId: program.uid });
}

export async function writeProgramFiles(context: JobContext, outDir: string, overwrite: OverwriteMode): Promise<JobOutcome> {
  const { job, emit } = context;
  const { program } = job;
  const signal = job.controller.signal;
  const started = performance.now();
  emit({ type: "stageStarted", stage: "assemble" });
  const files = assembleReadyProgram(program, context.models.info?.profile ?? "unknown");
  const mainFile = files.find((file) => file.kind === "main")!;
  const mainCheck = await context.syntax.check(mainFile.content, "main.py", signal);
  context.timings.push({ stage: "assemble", ms: Math.round(performance.now() - started), tokens: 0 });
  throwIfCancelled(signal);
  const writeStarted = performance.now();
  emit({ type: "stageStarted", stage: "write" });
  const written = await writeProgram(outDir, files, { overwrite, signal, onNote: context.log }).catch((error) => stageFailed(context, "write", undefined, error));
  program.outDir = written.outDir;
  program.files = written.files.map((file) => path.join(written.outDir, file.path));
  for (const file of written.files) emit({ type: "fileWritten", path: path.join(written.outDir, file.path), kind: file.kind });
  context.timings.push({ stage: "write", ms: Math.round(performance.now() - writeStarted), tokens: 0 });
  return { outDir: written.outDir, files: program.files, ...(mainCheck.checked ? { mainCompiles: mainCheck.ok } : {}) };
}
