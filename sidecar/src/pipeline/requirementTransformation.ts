/**
 * RT stage: one sub-task -> a task specification, by a chain of two prompts as in GPIoT:
 * first the user target, then the input/output specification given that target (and the specs of
 * the sub-tasks before it).
 */
import { IoSpecSchema, UserTargetSchema, type ResourceLimits, type SubTask, type TaskSpec, type UserTarget } from "../schemas";
import { renderPassages, type Passage } from "./passages";
import { describeLimits } from "./requirement";
import { generateStructured, type RoleModels, type StructuredResult } from "./structuredGeneration";

export interface TransformationInput {
  requirement: string;
  limits: ResourceLimits | null;
  subTask: SubTask;
  /** Specs of the sub-tasks before this one, so inputs can reuse their output names. */
  previousSpecs: TaskSpec[];
  /** Passages retrieved for this sub-task from the user's documents (both prompts show them). */
  passages?: Passage[];
}

export interface TransformationHooks {
  signal?: AbortSignal;
  maxTokens: { target: number; io: number };
  onTextChunk?(step: "target" | "io", text: string): void;
}

export interface TransformationResult {
  spec: TaskSpec;
  tokenCount: number;
  totalMs: number;
  firstTokenMs: number;
}

export const RT_SYSTEM_PROMPT = [
  "You are RTSLM. You turn one sub-task of an IoT program into a precise task specification",
  "that a code generation model can implement as a Python function. Answer only with JSON.",
].join(" ");

function describeSubTask(subTask: SubTask): string {
  return [`Sub-task: ${subTask.name}`, `Problem: ${subTask.problem}`, "Implementation steps:", ...subTask.steps.map((step, i) => `${i + 1}. ${step}`)].join("\n");
}

export function describeAvailableValues(previousSpecs: TaskSpec[]): string {
  const values = previousSpecs.flatMap((spec) => spec.outputs);
  if (values.length === 0) return "This is the first sub-task: its inputs come from the command line or a data file.";
  return ["Values produced by earlier sub-tasks (reuse these exact names for inputs that depend on them):", ...values.map((value) => `- ${value.name} (${value.type}): ${value.description}`)].join("\n");
}

/** The passage block as prompt lines; none at all without passages, so the prompt is as before. */
export function passageLines(passages: Passage[] | undefined): string[] {
  const block = renderPassages(passages);
  return block ? [block] : [];
}

export function buildTargetPrompt(input: TransformationInput): string {
  return [
    `Overall requirement: ${input.requirement}`,
    describeLimits(input.limits),
    describeSubTask(input.subTask),
    ...passageLines(input.passages),
    'State the user target of this sub-task in one sentence that starts with "Write some code and documentation to".',
    'Answer as JSON: {"target": "Write some code and documentation to ..."}',
  ].join("\n");
}

export function buildIoPrompt(input: TransformationInput, target: string): string {
  return [
    `Overall requirement: ${input.requirement}`,
    describeLimits(input.limits),
    describeSubTask(input.subTask),
    ...passageLines(input.passages),
    `Target: ${target}`,
    describeAvailableValues(input.previousSpecs),
    "List the input parameters and output values of the Python function that implements the target.",
    "Names are Python identifiers in snake_case; types are Python or NumPy types such as np.ndarray, float, int, str, dict.",
    'Answer as JSON: {"inputs": [{"name": "...", "type": "...", "description": "..."}], "outputs": [{"name": "...", "type": "...", "description": "..."}]}',
  ].join("\n");
}

/** First prompt of the chain: the user target. It needs no other sub-task's spec, so targets can be written in parallel. */
export function generateTarget(models: RoleModels, input: Omit<TransformationInput, "previousSpecs">, hooks: { signal?: AbortSignal; maxTokens: number; onTextChunk?: (text: string) => void }): Promise<StructuredResult<UserTarget>> {
  return generateStructured(models, {
    stage: `Requirement transformation (RT) target of "${input.subTask.name}"`,
    role: "rt",
    schema: UserTargetSchema,
    systemPrompt: RT_SYSTEM_PROMPT,
    userPrompt: buildTargetPrompt({ ...input, previousSpecs: [] }),
    maxTokens: hooks.maxTokens,
    signal: hooks.signal,
    onTextChunk: hooks.onTextChunk,
  });
}

/** Second prompt of the chain: inputs and outputs, given the target and the specs before this sub-task. */
export async function generateIoSpec(
  models: RoleModels,
  input: TransformationInput,
  target: StructuredResult<UserTarget>,
  hooks: { signal?: AbortSignal; maxTokens: number; onTextChunk?: (text: string) => void },
): Promise<TransformationResult> {
  const io = await generateStructured(models, {
    stage: `Requirement transformation (RT) inputs/outputs of "${input.subTask.name}"`,
    role: "rt",
    schema: IoSpecSchema,
    systemPrompt: RT_SYSTEM_PROMPT,
    userPrompt: buildIoPrompt(input, target.value.target),
    maxTokens: hooks.maxTokens,
    signal: hooks.signal,
    onTextChunk: hooks.onTextChunk,
  });
  return {
    spec: { target: target.value.target, inputs: io.value.inputs, outputs: io.value.outputs },
    tokenCount: target.tokenCount + io.tokenCount,
    totalMs: target.totalMs + io.totalMs,
    firstTokenMs: target.firstTokenMs,
  };
}

export async function transformSubTask(models: RoleModels, input: TransformationInput, hooks: TransformationHooks): Promise<TransformationResult> {
  const target = await generateTarget(models, input, { signal: hooks.signal, maxTokens: hooks.maxTokens.target, onTextChunk: (text) => hooks.onTextChunk?.("target", text) });
  return generateIoSpec(models, input, target, { signal: hooks.signal, maxTokens: hooks.maxTokens.io, onTextChunk: (text) => hooks.onTextChunk?.("io", text) });
}

function renderParameters(parameters: TaskSpec["inputs"]): string {
  if (parameters.length === 0) return "- (none)";
  return parameters.map((parameter) => `- ${parameter.name} (${parameter.type}): ${parameter.description}`).join("\n");
}

/** The Markdown form GPIoT's CG model was trained on. */
export function renderSpecMarkdown(spec: TaskSpec): string {
  return [`**Target**`, spec.target, "", `**Input Specification**`, renderParameters(spec.inputs), "", `**Output Specification**`, renderParameters(spec.outputs), ""].join("\n");
}
