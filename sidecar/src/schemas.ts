/**
 * The shapes the three roles produce and the engine passes around. Each is one zod schema:
 * the generation grammar is derived from it (grammarSchema.ts), the protocol reuses it, and the
 * parsed model output is validated against it.
 */
import { z } from "zod";

export const roleNames = ["td", "rt", "cg"] as const;
export const RoleName = z.enum(roleNames);
export type RoleName = z.infer<typeof RoleName>;

export const REQUIREMENT_MAX_CHARS = 8000;

/** TD output: one step of the decomposition. */
export const SubTaskSchema = z.object({
  name: z.string().min(1).max(80).describe("Short name of the sub-task"),
  problem: z.string().min(1).max(600).describe("Problem statement: what this sub-task must solve"),
  steps: z.array(z.string().min(1).max(300)).min(1).max(6).describe("Implementation steps"),
});
export type SubTask = z.infer<typeof SubTaskSchema>;

export const DecompositionSchema = z.object({
  subTasks: z.array(SubTaskSchema).min(2).max(8),
});
export type Decomposition = z.infer<typeof DecompositionSchema>;

/** RT, first prompt of the chain: the user target of one sub-task. */
export const UserTargetSchema = z.object({
  target: z.string().min(1).max(400).describe("Write some code and documentation to ..."),
});
export type UserTarget = z.infer<typeof UserTargetSchema>;

export const ParameterSchema = z.object({
  name: z.string().min(1).max(40),
  type: z.string().min(1).max(60),
  description: z.string().min(1).max(300),
});
export type Parameter = z.infer<typeof ParameterSchema>;

/** RT, second prompt of the chain: the input/output specification. */
export const IoSpecSchema = z.object({
  inputs: z.array(ParameterSchema).max(6),
  outputs: z.array(ParameterSchema).min(1).max(6),
});
export type IoSpec = z.infer<typeof IoSpecSchema>;

/** RT's result: the task specification CG consumes. */
export const TaskSpecSchema = z.object({
  target: UserTargetSchema.shape.target,
  inputs: IoSpecSchema.shape.inputs,
  outputs: IoSpecSchema.shape.outputs,
});
export type TaskSpec = z.infer<typeof TaskSpecSchema>;

/** CG output for one spec. `code` comes first so that it streams first. */
export const CodeArtifactSchema = z.object({
  code: z.string().min(1).max(12000).describe("Python source of the module"),
  documentation: z.string().min(1).max(4000).describe("Markdown documentation"),
  requirements: z.array(z.string().min(1).max(60)).max(8).describe("pip packages the code imports"),
});
export type CodeArtifact = z.infer<typeof CodeArtifactSchema>;

export const SyntaxCheckSchema = z.object({
  checked: z.boolean().describe("false when no Python interpreter was available"),
  ok: z.boolean(),
  message: z.string().optional(),
  line: z.number().int().optional(),
});
export type SyntaxCheck = z.infer<typeof SyntaxCheckSchema>;

/** Limits parsed from the user's resource constraint text (e.g. "Jetson Nano, <= 200 MB RAM, <= 10 ms"). */
export const ResourceLimitsSchema = z.object({
  text: z.string().max(1000),
  device: z.string().optional(),
  memoryMB: z.number().positive().optional(),
  latencyMs: z.number().positive().optional(),
});
export type ResourceLimits = z.infer<typeof ResourceLimitsSchema>;

/**
 * A passage retrieval put into a prompt, and where it came from: enough to name it in the program's
 * files and to open the source at the passage (the file, the PDF page, the line of a text file).
 */
export const CitationSchema = z.object({
  /** 1-based number of the passage in the prompt ("[1]"). */
  n: z.number().int().positive(),
  chunkId: z.string(),
  sourceId: z.string(),
  sourceKind: z.enum(["folder", "corpus", "workspace"]),
  /** Absolute path of the file to open: the document, or the corpus file that holds the chunk. */
  path: z.string(),
  /** What to call it: the document's path within its folder, or the corpus chunk's paper or function. */
  document: z.string(),
  page: z.number().int().positive().optional(),
  section: z.string().optional(),
  /** 1-based line of `path` where the passage starts, when known. */
  line: z.number().int().positive().optional(),
  package: z.string().optional(),
  function: z.string().optional(),
  /** Fused rank score (reciprocal rank fusion of the lexical and the vector ranking). */
  score: z.number(),
  /** The start of the passage, for tooltips and lists. */
  excerpt: z.string(),
});
export type Citation = z.infer<typeof CitationSchema>;

/** "ecg.md, p. 3, §4 QRS Detection, line 12" */
export function describeCitation(citation: Citation): string {
  return [
    citation.function ?? citation.document,
    citation.page ? `p. ${citation.page}` : "",
    citation.section ? `§ ${citation.section}` : "",
    citation.line && citation.sourceKind !== "corpus" ? `line ${citation.line}` : "",
  ]
    .filter(Boolean)
    .join(", ");
}
