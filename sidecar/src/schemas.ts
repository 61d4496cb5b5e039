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
