/**
 * TDD: task decomposition pairs mined from IoT papers, in the paper's two passes with a teacher
 * model: (1) split the system a paper describes into modules ("Module N: name, description"),
 * citing the part of the paper that describes each; (2) per module, a problem statement and
 * ordered sub-tasks with implementation steps. Each pair becomes a TD record in the TD stage's
 * own prompt form, with its provenance (file, page, section). Optional: A1-A3 augmentation of
 * every pair, and RT records from the teacher running the RT stage's prompt chain on each
 * sub-task.
 *
 * Every finished unit (one window of a paper in pass 1, one module, one augmentation) is kept in
 * the work journal, so an interrupted run resumes where it stopped.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { prepareRequirement, RequirementError } from "../pipeline/requirement";
import { transformSubTask } from "../pipeline/requirementTransformation";
import { generateStructured, StageOutputError, type RoleModels, type StructuredRequest } from "../pipeline/structuredGeneration";
import { DecompositionSchema, type SubTask, type TaskSpec } from "../schemas";
import { buildAugmentationPrompt, chooseValues, type AugmentationAxis } from "./augmentation";
import { chunkText, corpusChunks, type CorpusChunk } from "./corpus";
import { DataError } from "./errors";
import type { Paper } from "./papers";
import type { DataProgress } from "./progress";
import type { Rejection } from "./quality";
import { rtRecords, tdRecord, type DraftRecord, type RecordSource } from "./records";
import type { Teacher } from "./teacher";
import type { WorkJournal } from "./workJournal";

export const TDD_TEACHER_SYSTEM_PROMPT = [
  "You are an IoT research engineer. You read papers about IoT sensing systems and turn what they describe into",
  "programming problems that a developer can implement in Python, with the algorithms, parameters and data formats the paper states.",
  "Answer only with JSON.",
].join(" ");

export const ModuleTaskSchema = z.object({
  problem: z.string().min(24).max(600).describe("Problem statement a developer would be given"),
  subTasks: DecompositionSchema.shape.subTasks,
});
export type ModuleTask = z.infer<typeof ModuleTaskSchema>;

/** A paper describes at least one module, so its first part must name one; later parts may name none. */
export function moduleListSchema(labels: string[], maxModules: number, minModules = 0) {
  return z.object({
    modules: z
      .array(
        z.object({
          name: z.string().min(1).max(80).describe("Module name"),
          description: z.string().min(1).max(600).describe("What the module computes and how"),
          source: z.enum(labels as [string, ...string[]]).describe("Label of the part of the paper that describes it"),
        }),
      )
      .min(minModules)
      .max(maxModules),
  });
}

/** A piece of a paper that fits the teacher's context, with the label the teacher cites it by. */
export interface PaperChunk {
  label: string;
  heading: string;
  page?: number;
  text: string;
}

export interface PaperModule {
  name: string;
  description: string;
  label: string;
}

function renderChunk(chunk: PaperChunk): string {
  return `[${chunk.label}] ${chunk.heading || "(untitled)"}${chunk.page ? ` (page ${chunk.page})` : ""}\n${chunk.text}`;
}

export function buildModulesPrompt(paper: Paper, chunks: PaperChunk[], maxModules: number, first = true): string {
  return [
    `Paper: ${paper.title} (${paper.file})`,
    "Parts of the paper follow; each starts with its label in brackets.",
    "",
    chunks.map(renderChunk).join("\n\n"),
    "",
    `List the modules of the system these parts describe, in processing order (sensing and data collection first), as "Module N: name, description" (at most ${maxModules}${first ? "" : "; none if these parts describe no module"}).`,
    "Give each module a short name, a description of what it computes and how (the algorithms, parameters and data formats the paper states), and the label of the part that describes it best.",
    "Leave out evaluation, related work and hardware that needs no code.",
    'Answer as JSON: {"modules": [{"name": "...", "description": "...", "source": "<label>"}]}',
  ].join("\n");
}

export function buildModuleTaskPrompt(paper: Paper, index: number, module: PaperModule, chunk: PaperChunk): string {
  return [
    `Paper: ${paper.title} (${paper.file})`,
    `Module ${index + 1}: ${module.name}. ${module.description}`,
    "What the paper says about it:",
    renderChunk(chunk),
    "",
    "Write the problem statement a developer would be given to build this module as a Python program: what goes in, what must come out, and the constraints the paper states.",
    "Then decompose it into 2 to 6 ordered sub-tasks (data loading first), each with a short name, a problem statement and concrete implementation steps that name the algorithms and parameters the paper uses.",
    'Answer as JSON: {"problem": "...", "subTasks": [{"name": "...", "problem": "...", "steps": ["...", "..."]}]}',
  ].join("\n");
}

export interface TddOptions {
  papers: Paper[];
  teacher: Teacher;
  journal: WorkJournal<TddUnit>;
  progress: DataProgress;
  axes: AugmentationAxis[];
  perRecord: number;
  withRt: boolean;
  maxModules: number;
  /** Token limit of one teacher answer. */
  maxTokens: number;
  signal?: AbortSignal;
}

export type TddUnit =
  | { kind: "modules"; modules: PaperModule[]; rejected: Rejection[] }
  | { kind: "task"; base: { requirement: string; subTasks: SubTask[]; recordId: string } | null; records: DraftRecord[]; rejected: Rejection[] }
  | { kind: "augment"; records: DraftRecord[]; rejected: Rejection[] };

export interface TddResult {
  drafts: DraftRecord[];
  rejected: Rejection[];
  corpus: CorpusChunk[];
  modules: number;
}

/** Splits the paper into labelled chunks of at most `budget` tokens each, whole paragraphs where possible. */
export function paperChunks(paper: Paper, budget: number, countTokens: (text: string) => number): PaperChunk[] {
  const chunks: PaperChunk[] = [];
  for (const section of paper.sections) {
    const tokens = countTokens(section.text);
    const charsPerToken = section.text.length / Math.max(1, tokens);
    let maxChars = Math.max(200, Math.floor(budget * charsPerToken * 0.9));
    let pieces = tokens <= budget ? [section.text] : chunkText(section.text, maxChars);
    while (pieces.some((piece) => countTokens(piece) > budget) && maxChars > 200) {
      maxChars = Math.floor(maxChars / 2);
      pieces = chunkText(section.text, maxChars);
    }
    for (const piece of pieces) chunks.push({ label: `S${chunks.length + 1}`, heading: section.heading, ...(section.page ? { page: section.page } : {}), text: piece });
  }
  return chunks;
}

/** Packs consecutive chunks into windows whose rendered text fits `budget` tokens. */
export function packWindows(chunks: PaperChunk[], budget: number, countTokens: (text: string) => number): PaperChunk[][] {
  const windows: PaperChunk[][] = [];
  let current: PaperChunk[] = [];
  let used = 0;
  for (const chunk of chunks) {
    const tokens = countTokens(renderChunk(chunk)) + 2;
    if (current.length && used + tokens > budget) {
      windows.push(current);
      current = [];
      used = 0;
    }
    current.push(chunk);
    used += tokens;
  }
  if (current.length) windows.push(current);
  return windows;
}

function sourceOf(paper: Paper, chunk: PaperChunk): RecordSource {
  return { kind: "paper", file: paper.file, ...(chunk.page ? { page: chunk.page } : {}), ...(chunk.heading ? { section: chunk.heading } : {}) };
}

/** A prompt that, with room for its answer, does not fit the teacher's context: that unit is skipped, not the run. */
export class PromptTooLongError extends Error {
  constructor(readonly tokens: number, readonly limit: number) {
    super(`the prompt takes ${tokens} tokens; with its answer it does not fit the teacher's context of ${limit} tokens`);
    this.name = "PromptTooLongError";
  }
}

/** The teacher, refusing prompts that would overflow its context before generation starts. */
function guarded(teacher: Teacher): RoleModels {
  return {
    generate(request) {
      const tokens = teacher.countTokens(request.role, `${request.systemPrompt}\n${request.userPrompt}`) + 64;
      const limit = teacher.contextTokens(request.role);
      if (tokens + request.maxTokens > limit) return Promise.reject(new PromptTooLongError(tokens, limit));
      return teacher.generate(request);
    },
  };
}

/** Cuts `text` to about `tokens` tokens, at a paragraph or sentence end where possible. */
function fitText(text: string, tokens: number, countTokens: (text: string) => number): string {
  let fitted = text;
  while (fitted.length > 200 && countTokens(fitted) > tokens) {
    const cut = fitted.slice(0, Math.floor(fitted.length * 0.85));
    const end = Math.max(cut.lastIndexOf("\n\n"), cut.lastIndexOf(". "));
    fitted = end > cut.length / 2 ? cut.slice(0, end + 1) : cut;
  }
  return fitted;
}

function teacherFailure(unit: string, error: unknown): Rejection | null {
  if (error instanceof StageOutputError) return { reason: "teacher-output-invalid", item: unit, detail: error.reason };
  if (error instanceof PromptTooLongError) return { reason: "prompt-too-long", item: unit, detail: error.message };
  if (error instanceof RequirementError) return { reason: "requirement-rejected", item: unit, detail: error.message };
  return null;
}

function keyOf(...parts: (string | number)[]): string {
  return parts.join("|");
}

export async function runTdd(options: TddOptions): Promise<TddResult> {
  const { teacher, journal, progress } = options;
  const count = (text: string) => teacher.countTokens("td", text);
  const overhead = count(TDD_TEACHER_SYSTEM_PROMPT) + count(buildModulesPrompt({ file: "x", kind: "text", title: "x", sections: [] }, [], options.maxModules)) + 128;
  const budget = teacher.contextTokens("td") - options.maxTokens - overhead;
  if (budget < 128)
    throw new DataError(
      "DATA_INPUT_INVALID",
      `The teacher's context (${teacher.contextTokens("td")} tokens) leaves no room for paper text next to answers of up to ${options.maxTokens} tokens: raise --context-size or lower --max-tokens.`,
    );
  const models = guarded(teacher);
  const ask = async <T>(request: Omit<StructuredRequest<T>, "role" | "systemPrompt" | "maxTokens" | "signal">) =>
    (await generateStructured(models, { ...request, role: "td", systemPrompt: TDD_TEACHER_SYSTEM_PROMPT, maxTokens: options.maxTokens, signal: options.signal })).value;

  const plans = options.papers.map((paper) => {
    const chunks = paperChunks(paper, budget, count);
    return { paper, chunks, windows: packWindows(chunks, budget, count) };
  });
  const resumedRecords = journal.values().reduce((sum, value) => sum + ("records" in value ? value.records.length : 0), 0);
  progress.addResumed(journal.size, resumedRecords);
  if (journal.size) progress.note(`Resuming: ${journal.size} finished step(s) of an earlier run are kept.`);
  progress.setTotal(plans.reduce((sum, plan) => sum + plan.windows.length, 0));

  // Pass 1: modules, window by window.
  const modules: { paper: Paper; window: number; index: number; module: PaperModule; chunk: PaperChunk }[] = [];
  for (const plan of plans) {
    for (const [w, window] of plan.windows.entries()) {
      const unit = keyOf("modules", plan.paper.file, w);
      let value = journal.get(unit);
      if (!value) {
        let found: PaperModule[] = [];
        const rejected: Rejection[] = [];
        try {
          const answer = await ask({
            stage: `TDD modules of ${plan.paper.file}`,
            schema: moduleListSchema(
              window.map((chunk) => chunk.label),
              options.maxModules,
              w === 0 ? 1 : 0,
            ),
            userPrompt: buildModulesPrompt(plan.paper, window, options.maxModules, w === 0),
          });
          found = answer.modules.map((module) => ({ name: module.name, description: module.description, label: module.source }));
        } catch (error) {
          const rejection = teacherFailure(unit, error);
          if (!rejection) throw error;
          rejected.push(rejection);
        }
        value = { kind: "modules", modules: found, rejected };
        journal.add(unit, value);
        progress.unitDone(0, `${plan.paper.file}: ${found.length} module(s)`);
      }
      if (value.kind !== "modules") continue;
      for (const module of value.modules) {
        const chunk = plan.chunks.find((candidate) => candidate.label === module.label) ?? window[0];
        modules.push({ paper: plan.paper, window: w, index: modules.filter((m) => m.paper === plan.paper).length, module, chunk });
      }
    }
  }

  const perModule = 1 + options.axes.length * options.perRecord;
  progress.setTotal(plans.reduce((sum, plan) => sum + plan.windows.length, 0) + modules.length * perModule);

  // Pass 2: per module, the problem and its sub-tasks; then augmentation.
  for (const entry of modules) {
    const unit = keyOf("task", entry.paper.file, entry.window, entry.index);
    let value = journal.get(unit);
    if (!value) {
      // Pass 2's prompt also carries the module's description: the section text gives way to it.
      const room = budget - count(`${entry.module.name} ${entry.module.description}`) - 64;
      value = await moduleTask(options, models, { ...entry, chunk: { ...entry.chunk, text: fitText(entry.chunk.text, room, count) } }, unit, ask);
      journal.add(unit, value);
      progress.unitDone(value.kind === "task" ? value.records.length : 0, `${entry.paper.file}: ${entry.module.name.slice(0, 60)}`);
    }
    if (value.kind !== "task" || !value.base) {
      progress.addToTotal(-(perModule - 1));
      continue;
    }
    const base = value.base;
    for (const axis of options.axes) {
      const values = chooseValues(axis, base.requirement, base.recordId, options.perRecord);
      if (values.length < options.perRecord) progress.addToTotal(-(options.perRecord - values.length));
      for (const augmentValue of values) {
        const augmentUnit = keyOf("augment", entry.paper.file, entry.window, entry.index, axis, augmentValue);
        if (journal.has(augmentUnit)) continue;
        const records: DraftRecord[] = [];
        const rejected: Rejection[] = [];
        try {
          const rewritten = await ask({
            stage: `TDD ${axis} augmentation`,
            schema: ModuleTaskSchema,
            userPrompt: buildAugmentationPrompt(base.requirement, base.subTasks, { axis, value: augmentValue }),
          });
          // An A3 value reaches the TD prompt as the user's resource constraints do at inference time.
          const prepared = prepareRequirement(rewritten.problem, axis === "resources" ? augmentValue : undefined);
          records.push(tdRecord({ requirement: prepared.requirement, limits: prepared.limits, subTasks: rewritten.subTasks }, sourceOf(entry.paper, entry.chunk), { axis, value: augmentValue }));
        } catch (error) {
          const rejection = teacherFailure(augmentUnit, error);
          if (!rejection) throw error;
          rejected.push(rejection);
        }
        journal.add(augmentUnit, { kind: "augment", records, rejected });
        progress.unitDone(records.length, `${axis}: ${augmentValue}`);
      }
    }
  }

  return { ...collect(options, plans, modules), modules: modules.length };
}

async function moduleTask(
  options: TddOptions,
  models: RoleModels,
  entry: { paper: Paper; index: number; module: PaperModule; chunk: PaperChunk },
  unit: string,
  ask: <T>(request: Omit<StructuredRequest<T>, "role" | "systemPrompt" | "maxTokens" | "signal">) => Promise<T>,
): Promise<TddUnit> {
  const records: DraftRecord[] = [];
  const rejected: Rejection[] = [];
  let base: { requirement: string; subTasks: SubTask[]; recordId: string } | null = null;
  try {
    const answer = await ask({ stage: `TDD sub-tasks of "${entry.module.name}"`, schema: ModuleTaskSchema, userPrompt: buildModuleTaskPrompt(entry.paper, entry.index, entry.module, entry.chunk) });
    const prepared = prepareRequirement(answer.problem);
    const record = tdRecord({ requirement: prepared.requirement, limits: prepared.limits, subTasks: answer.subTasks }, sourceOf(entry.paper, entry.chunk));
    records.push(record);
    base = { requirement: prepared.requirement, subTasks: answer.subTasks, recordId: record.id };
    if (options.withRt) {
      const previousSpecs: TaskSpec[] = [];
      for (const subTask of answer.subTasks) {
        const input = { requirement: prepared.requirement, limits: prepared.limits, subTask, previousSpecs: [...previousSpecs] };
        try {
          const { spec } = await transformSubTask(models, input, { signal: options.signal, maxTokens: { target: 256, io: Math.min(1024, options.maxTokens) } });
          records.push(...rtRecords(input, spec, sourceOf(entry.paper, entry.chunk)));
          previousSpecs.push(spec);
        } catch (error) {
          const rejection = teacherFailure(`${unit}|rt|${subTask.name}`, error);
          if (!rejection) throw error;
          rejected.push(rejection);
          break;
        }
      }
    }
  } catch (error) {
    const rejection = teacherFailure(unit, error);
    if (!rejection) throw error;
    rejected.push(rejection);
  }
  return { kind: "task", base, records, rejected };
}

/** The records and rejections of every unit, in document order, and the corpus of the papers. */
function collect(options: TddOptions, plans: { paper: Paper; windows: PaperChunk[][] }[], modules: { paper: Paper; window: number; index: number }[]): Omit<TddResult, "modules"> {
  const { journal } = options;
  const drafts: DraftRecord[] = [];
  const rejected: Rejection[] = [];
  const take = (value: TddUnit | undefined) => {
    if (!value) return;
    rejected.push(...value.rejected);
    if ("records" in value) drafts.push(...value.records);
  };
  for (const plan of plans) for (const w of plan.windows.keys()) take(journal.get(keyOf("modules", plan.paper.file, w)));
  for (const entry of modules) {
    const task = journal.get(keyOf("task", entry.paper.file, entry.window, entry.index));
    take(task);
    if (task?.kind !== "task" || !task.base) continue;
    for (const axis of options.axes)
      for (const value of chooseValues(axis, task.base.requirement, task.base.recordId, options.perRecord)) take(journal.get(keyOf("augment", entry.paper.file, entry.window, entry.index, axis, value)));
  }
  const corpus = options.papers.flatMap((paper) =>
    paper.sections.flatMap((section) => corpusChunks(section.text, { kind: "paper", file: paper.file, ...(section.page ? { page: section.page } : {}), ...(section.heading ? { section: section.heading } : {}) })),
  );
  return { drafts, rejected, corpus };
}

/** A fingerprint of the papers' content, for the work journal. */
export function papersFingerprint(papers: Paper[]): { file: string; sha256: string }[] {
  return papers.map((paper) => ({ file: paper.file, sha256: createHash("sha256").update(JSON.stringify(paper.sections)).digest("hex") }));
}
