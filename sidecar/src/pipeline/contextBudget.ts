/**
 * Whether a role's context can hold a stage: its prompt (system + user, in the chat template) and
 * room for its answer. The answer may use what the context leaves, up to the stage's max tokens;
 * a context that leaves less than MIN_ANSWER_TOKENS (or the stage's whole budget, when that is
 * smaller) is too small, and is refused before any work instead of failing in the middle of it.
 *
 * Two checks, because the exact count needs the model's tokenizer:
 * - before loading (a request's context size against the prompts it will build), a low estimate
 *   of the prompt's tokens from its UTF-8 length, so no context that could work is refused, and
 *   of RT's and CG's prompts only what is known before generation (requirement, constraints,
 *   instructions);
 * - before each generation, the exact count with the loaded model, which also caps the answer at
 *   what the context leaves (a longer answer would otherwise push the prompt out of the context).
 */
import type { ResourceLimits, RoleName } from "../schemas";
import type { StageTokenLimits } from "../settings";
import { CG_SYSTEM_PROMPT, buildCodePrompt } from "./codeGeneration";
import { RT_SYSTEM_PROMPT, buildIoPrompt, buildTargetPrompt } from "./requirementTransformation";
import { TD_SYSTEM_PROMPT, buildDecompositionPrompt } from "./taskDecomposition";

/** The least room for an answer a context must leave after a stage's prompt. */
export const MIN_ANSWER_TOKENS = 512;

/**
 * BPE tokenizers of instruction models average 3-4.5 bytes of English or code per token; 6 is
 * more than any of them averages over a prompt, so bytes / 6 estimates low.
 */
const MAX_BYTES_PER_TOKEN = 6;

/** Chat-template tokens around a system and a user message (role markers, BOS): a low estimate. */
const TEMPLATE_TOKENS = 8;

export class ContextTooSmallError extends Error {
  readonly code = "CONTEXT_TOO_SMALL";
  constructor(message: string) {
    super(message);
    this.name = "ContextTooSmallError";
  }
}

const stageLabels: Record<RoleName, string> = { td: "task decomposition (TD)", rt: "requirement transformation (RT)", cg: "code generation (CG)" };

export interface StagePrompt {
  role: RoleName;
  systemPrompt: string;
  userPrompt: string;
  maxTokens: number;
}

export function estimatePromptTokens(systemPrompt: string, userPrompt: string): number {
  return Math.ceil((Buffer.byteLength(systemPrompt) + Buffer.byteLength(userPrompt)) / MAX_BYTES_PER_TOKEN) + TEMPLATE_TOKENS;
}

function answerRoomNeeded(maxTokens: number): number {
  return Math.min(maxTokens, MIN_ANSWER_TOKENS);
}

function suggestedContextSize(needed: number): number {
  return Math.ceil(needed / 256) * 256;
}

/** What each stage's prompt is before anything is generated: the parts that come from the request. */
export function knownStagePrompts(requirement: string, limits: ResourceLimits | null, maxTokens: StageTokenLimits): StagePrompt[] {
  const subTask = { name: "", problem: "", steps: [""] };
  const spec = { target: "", inputs: [], outputs: [{ name: "value", type: "", description: "" }] };
  const transformation = { requirement, limits, subTask, previousSpecs: [] };
  return [
    { role: "td", systemPrompt: TD_SYSTEM_PROMPT, userPrompt: buildDecompositionPrompt({ requirement, limits }), maxTokens: maxTokens.td },
    { role: "rt", systemPrompt: RT_SYSTEM_PROMPT, userPrompt: buildTargetPrompt(transformation), maxTokens: maxTokens.rtTarget },
    { role: "rt", systemPrompt: RT_SYSTEM_PROMPT, userPrompt: buildIoPrompt(transformation, ""), maxTokens: maxTokens.rtIo },
    { role: "cg", systemPrompt: CG_SYSTEM_PROMPT, userPrompt: buildCodePrompt({ requirement, limits, spec, previousSpecs: [] }), maxTokens: maxTokens.cg },
  ];
}

/** Refuses a context size that cannot hold one of these prompts (estimated) plus room for its answer. */
export function checkContextBudget(contextSize: number, prompts: StagePrompt[]): void {
  let worst: { prompt: StagePrompt; promptTokens: number; needed: number } | null = null;
  for (const prompt of prompts) {
    const promptTokens = estimatePromptTokens(prompt.systemPrompt, prompt.userPrompt);
    const needed = promptTokens + answerRoomNeeded(prompt.maxTokens);
    if (!worst || needed > worst.needed) worst = { prompt, promptTokens, needed };
  }
  if (!worst || worst.needed <= contextSize) return;
  throw new ContextTooSmallError(
    `A context of ${contextSize} tokens is too small: the ${stageLabels[worst.prompt.role]} prompt takes about ${worst.promptTokens} tokens and its answer needs at least ${answerRoomNeeded(worst.prompt.maxTokens)} more. ` +
      `Use a context of ${suggestedContextSize(worst.needed)} tokens or more (--context-size, setting contextSize)${worst.promptTokens > contextSize / 2 ? ", or a shorter requirement" : ""}.`,
  );
}

/**
 * The exact check before one generation: returns the max tokens the answer may use (the stage's
 * budget, capped at what the context leaves), or throws when the room left is too small.
 */
export function answerBudget(role: RoleName, contextSize: number, promptTokens: number, maxTokens: number): number {
  const room = contextSize - promptTokens;
  if (room < answerRoomNeeded(maxTokens))
    throw new ContextTooSmallError(
      `The ${stageLabels[role]} context holds ${contextSize} tokens, but this prompt takes ${promptTokens}, leaving ${Math.max(0, room)} for the answer; at least ${answerRoomNeeded(maxTokens)} are needed. ` +
        `Use a context of ${suggestedContextSize(promptTokens + answerRoomNeeded(maxTokens))} tokens or more (--context-size, setting contextSize), or a shorter requirement.`,
    );
  return Math.min(maxTokens, room);
}
