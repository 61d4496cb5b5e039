/**
 * The one way every stage asks a role's model for structured output: a grammar derived from the
 * stage's zod schema constrains generation, then the text is parsed and validated with the same
 * schema. Stages depend on the `RoleModels` interface only, so their prompt building and parsing
 * can be unit-tested with a fake model.
 */
import type { z } from "zod";
import { grammarSchemaFor, type GrammarJsonSchema } from "../grammarSchema";
import type { RoleName } from "../schemas";
import type { PromptFormatModels } from "./promptFormats/promptFormat";

export interface GenerationRequest {
  role: RoleName;
  systemPrompt: string;
  userPrompt: string;
  jsonSchema: GrammarJsonSchema;
  maxTokens: number;
  signal?: AbortSignal;
  onTextChunk?: (text: string) => void;
}

export type StopReason = "eogToken" | "maxTokens" | "abort" | "stopGenerationTrigger" | "customStopTrigger" | "functionCalls";

export interface GenerationResult {
  text: string;
  stopReason: StopReason;
  tokenCount: number;
  /** Milliseconds from the request to the first generated token. */
  firstTokenMs: number;
  totalMs: number;
  /** A remote server's own account of the request (llama.cpp reports it), to compare with what the client saw. */
  serverTimings?: { promptMs?: number; predictedMs?: number; predictedN?: number };
}

export interface RoleModels extends PromptFormatModels {
  generate(request: GenerationRequest): Promise<GenerationResult>;
}

export class StageOutputError extends Error {
  readonly code = "STAGE_OUTPUT_INVALID";
  constructor(
    readonly stage: string,
    readonly reason: string,
    readonly rawText: string,
  ) {
    super(`${stage}: ${reason}`);
    this.name = "StageOutputError";
  }
}

export class CancelledError extends Error {
  readonly code = "CANCELLED";
  constructor(message = "Cancelled by the user") {
    super(message);
    this.name = "CancelledError";
  }
}

export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError();
}

export interface StructuredResult<T> extends GenerationResult {
  value: T;
}

export interface StructuredRequest<T> {
  stage: string;
  role: RoleName;
  schema: z.ZodType<T>;
  systemPrompt: string;
  userPrompt: string;
  maxTokens: number;
  signal?: AbortSignal;
  onTextChunk?: (text: string) => void;
}

export function parseStageOutput<T>(stage: string, schema: z.ZodType<T>, text: string, stopReason: StopReason): T {
  if (stopReason === "maxTokens")
    throw new StageOutputError(stage, "the model reached its token limit before finishing the answer (raise the stage's max tokens)", text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new StageOutputError(stage, `the model's answer is not valid JSON (${(error as Error).message})`, text);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StageOutputError(stage, `the model's answer does not match the expected shape at ${issue?.path.join(".") || "$"}: ${issue?.message}`, text);
  }
  return parsed.data;
}

export async function generateStructured<T>(models: RoleModels, request: StructuredRequest<T>): Promise<StructuredResult<T>> {
  throwIfCancelled(request.signal);
  const result = await models.generate({
    role: request.role,
    systemPrompt: request.systemPrompt,
    userPrompt: request.userPrompt,
    jsonSchema: grammarSchemaFor(request.schema),
    maxTokens: request.maxTokens,
    signal: request.signal,
    onTextChunk: request.onTextChunk,
  });
  if (result.stopReason === "abort" || request.signal?.aborted) throw new CancelledError();
  return { ...result, value: parseStageOutput(request.stage, request.schema, result.text, result.stopReason) };
}
