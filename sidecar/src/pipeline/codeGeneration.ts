/**
 * CG stage: a task spec (+ the specs before it, so names and types line up) -> a Python module
 * implementing `run(...)` and its Markdown documentation. The code is streamed as it is written.
 */
import { CodeArtifactSchema, type CodeArtifact, type ResourceLimits, type TaskSpec } from "../schemas";
import { JsonStreamScanner } from "./jsonStream";
import { pythonIdentifier } from "./pythonNames";
import { describeLimits } from "./requirement";
import type { Passage } from "./passages";
import { describeAvailableValues, passageLines, renderSpecMarkdown } from "./requirementTransformation";
import { generateStructured, type RoleModels, type StructuredResult } from "./structuredGeneration";
import { promptFormatOf } from "./promptFormats/promptFormat";
import { generateCodePaper } from "./promptFormats/paperStages";

export interface CodeGenerationInput {
  requirement: string;
  limits: ResourceLimits | null;
  spec: TaskSpec;
  previousSpecs: TaskSpec[];
  /** Set when repairing: the previous attempt and what went wrong with it. */
  repair?: { previousCode: string; error: string };
  /** Passages retrieved for this spec from the user's documents (e.g. the right API call and its arguments). */
  passages?: Passage[];
}

export interface CodeGenerationHooks {
  signal?: AbortSignal;
  maxTokens: number;
  onTextChunk?: (text: string) => void;
  onCodeDelta?: (text: string) => void;
}

export const CG_SYSTEM_PROMPT = [
  "You are CGSLM, an expert Python programmer for IoT sensing and embedded machine learning",
  "(NumPy, SciPy, wfdb, scikit-learn, PyTorch). You write one Python module and its Markdown documentation",
  "for a task specification. Answer only with JSON.",
].join(" ");

export function runSignature(spec: TaskSpec): string {
  return `def run(${spec.inputs.map((input) => pythonIdentifier(input.name)).join(", ")}) -> dict`;
}

export function buildCodePrompt(input: CodeGenerationInput): string {
  const lines = [
    `Overall requirement: ${input.requirement}`,
    describeLimits(input.limits),
    describeAvailableValues(input.previousSpecs),
    "Task specification:",
    renderSpecMarkdown(input.spec),
    ...passageLines(input.passages),
    `The module must define \`${runSignature(input.spec)}\` returning a dict whose keys are exactly the output names: ${input.spec.outputs.map((output) => pythonIdentifier(output.name)).join(", ")}.`,
    "Import what you use at the top of the module. Do not read from stdin and do not start servers.",
  ];
  if (input.repair) {
    lines.push("Your previous version failed. Fix it.", "Previous code:", input.repair.previousCode.slice(0, 4000), "Error:", input.repair.error.slice(0, 2000));
  }
  lines.push('Answer as JSON: {"code": "<python source>", "documentation": "<markdown>", "requirements": ["numpy", "..."]}');
  return lines.join("\n");
}

export async function generateCode(models: RoleModels, input: CodeGenerationInput, hooks: CodeGenerationHooks): Promise<StructuredResult<CodeArtifact>> {
  if (promptFormatOf(models, "cg") === "paper") return generateCodePaper(models, input, hooks);
  const scanner = new JsonStreamScanner({
    onStringDelta(path, text) {
      if (path === "code") hooks.onCodeDelta?.(text);
    },
  });
  return generateStructured(models, {
    stage: "Code generation (CG)",
    role: "cg",
    schema: CodeArtifactSchema,
    systemPrompt: CG_SYSTEM_PROMPT,
    userPrompt: buildCodePrompt(input),
    maxTokens: hooks.maxTokens,
    signal: hooks.signal,
    onTextChunk(text) {
      scanner.push(text);
      hooks.onTextChunk?.(text);
    },
  });
}
