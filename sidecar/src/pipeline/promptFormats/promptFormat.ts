/**
 * Prompt formats: how the pipeline talks to a role's model.
 *
 * - "json" (default): this project's prompts, beside each stage, answered as JSON under a grammar
 *   derived from the stage's zod schema.
 * - "paper": the GPIoT authors' Llama-2 chat prompts and free-text answers (paperFormat.ts), under a
 *   GBNF grammar of that text (paperGrammar.ts), parsed into the same zod schemas. For the authors'
 *   published adapters and for adapters tuned on records in that format.
 *
 * A profile declares the format per role (models/manifest.ts); the model host reports it, and a
 * stage asks with promptFormatOf() which way to prompt.
 */
import { z } from "zod";
import type { RoleName } from "../../schemas";
import type { GenerationResult } from "../structuredGeneration";

export const PromptFormatSchema = z.enum(["json", "paper"]);
export type PromptFormat = z.infer<typeof PromptFormatSchema>;

/** A fully rendered prompt completed as raw text (no chat template) under a GBNF grammar. */
export interface CompletionRequest {
  role: RoleName;
  /** The exact prompt text; special tokens written in it (e.g. "<s>") are read as those tokens. */
  prompt: string;
  /** GBNF grammar (llama.cpp syntax, root rule "root") the answer must follow. */
  gbnf: string;
  maxTokens: number;
  signal?: AbortSignal;
  onTextChunk?: (text: string) => void;
}

/** What a model host offers beyond chat generation, for formats that need it. */
export interface PromptFormatModels {
  /** The prompt format a role's model was trained on; absent means "json". */
  promptFormat?(role: RoleName): PromptFormat;
  complete?(request: CompletionRequest): Promise<GenerationResult>;
}

export function promptFormatOf(models: PromptFormatModels, role: RoleName): PromptFormat {
  return models.promptFormat?.(role) ?? "json";
}
