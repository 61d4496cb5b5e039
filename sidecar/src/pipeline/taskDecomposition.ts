/**
 * TD stage: requirement (+ resource limits) -> ordered sub-tasks, each with a name, a problem
 * statement and implementation steps. Sub-tasks are reported one by one as the model finishes
 * each of them.
 */
import { DecompositionSchema, SubTaskSchema, type ResourceLimits, type SubTask } from "../schemas";
import { JsonStreamScanner } from "./jsonStream";
import { describeLimits } from "./requirement";
import { generateStructured, type RoleModels, type StructuredResult } from "./structuredGeneration";
import { promptFormatOf } from "./promptFormats/promptFormat";
import { decomposeRequirementPaper } from "./promptFormats/paperStages";

export interface DecompositionInput {
  requirement: string;
  limits: ResourceLimits | null;
}

export interface DecompositionHooks {
  signal?: AbortSignal;
  maxTokens: number;
  onTextChunk?(text: string): void;
  onSubTask?(index: number, subTask: SubTask): void;
}

export const TD_SYSTEM_PROMPT = [
  "You are TDSLM, an expert in IoT systems and sensor data processing.",
  "You decompose an IoT programming requirement into an ordered list of sub-tasks that together build one Python program.",
  "Each sub-task has a short name, a problem statement, and concrete implementation steps that name the IoT algorithms to use",
  "(for example band-pass filtering, Pan-Tompkins QRS detection, FFT features, quantization for small devices).",
  "Respect every resource constraint in every sub-task. Answer only with JSON.",
].join(" ");

export function buildDecompositionPrompt(input: DecompositionInput): string {
  return [
    `Requirement: ${input.requirement}`,
    describeLimits(input.limits),
    "Decompose the requirement into 2 to 6 sub-tasks in execution order (data loading first, reporting last).",
    'Answer as JSON: {"subTasks": [{"name": "...", "problem": "...", "steps": ["...", "..."]}]}',
  ].join("\n");
}

export async function decomposeRequirement(
  models: RoleModels,
  input: DecompositionInput,
  hooks: DecompositionHooks,
): Promise<StructuredResult<{ subTasks: SubTask[] }>> {
  if (promptFormatOf(models, "td") === "paper") return decomposeRequirementPaper(models, input, hooks);
  const scanner = new JsonStreamScanner({
    onArrayElement(path, index, json) {
      if (path !== "subTasks" || !hooks.onSubTask) return;
      const parsed = SubTaskSchema.safeParse(safeJsonParse(json));
      if (parsed.success) hooks.onSubTask(index, parsed.data);
    },
  });
  return generateStructured(models, {
    stage: "Task decomposition (TD)",
    role: "td",
    schema: DecompositionSchema,
    systemPrompt: TD_SYSTEM_PROMPT,
    userPrompt: buildDecompositionPrompt(input),
    maxTokens: hooks.maxTokens,
    signal: hooks.signal,
    onTextChunk(text) {
      scanner.push(text);
      hooks.onTextChunk?.(text);
    },
  });
}

function safeJsonParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
