/**
 * Retrieval as a job step: the passages for one stage of one sub-task, cut to the token budget the
 * role's context leaves, reported as a `passagesRetrieved` event. Never fails the job: a problem
 * with the index becomes one `warning` event per job (each distinct message once) and no passages.
 */
import { MIN_ANSWER_TOKENS } from "../pipeline/contextBudget";
import { fitPassages, renderPassages, type Passage } from "../pipeline/passages";
import { promptFormatOf } from "../pipeline/promptFormats/promptFormat";
import type { RoleModels } from "../pipeline/structuredGeneration";
import type { RetrievalService } from "../retrieval/retrievalService";
import type { JobEventBody } from "./jobSteps";

/** Retrieval for one job: the engine's service, and the warnings this job has already sent. */
export class JobRetrieval {
  readonly warned = new Set<string>();
  constructor(readonly service: RetrievalService) {}
}

/** Tokens for the chat template around the messages and a little slack: the passages never push the answer out. */
const TEMPLATE_MARGIN_TOKENS = 32;

export interface StageRetrievalRequest {
  stage: "rt" | "cg";
  subTaskId: string;
  query: string;
  /** The stage's prompt without passages (the longest of the stage's prompts), to see what room the context leaves. */
  systemPrompt: string;
  userPrompt: string;
  /** Tokens the prompt will hold beyond userPrompt by the time it is sent. */
  reserveTokens?: number;
  maxAnswerTokens: number;
}

export interface StageRetrievalContext {
  retrieval?: JobRetrieval;
  signal: AbortSignal;
  /** The role's context size, when the models are loaded. */
  contextSize?: number;
  emit(event: JobEventBody): void;
}

function tokenCounter(models: RoleModels, role: "rt" | "cg"): (text: string) => number {
  const counting = models as RoleModels & { countTokens?(role: "rt" | "cg", text: string): number };
  if (typeof counting.countTokens === "function") return (text) => counting.countTokens!(role, text);
  return (text) => Math.ceil(Buffer.byteLength(text) / 4);
}

export async function retrieveForStage(context: StageRetrievalContext, models: RoleModels, request: StageRetrievalRequest): Promise<Passage[]> {
  const retrieval = context.retrieval;
  // The paper format's prompts are the GPIoT authors' own, byte for byte: their adapters never saw passages.
  if (!retrieval || !retrieval.service.settings.enabled || promptFormatOf(models, request.stage) === "paper") return [];
  const found = await retrieval.service.search(request.query, { signal: context.signal });
  for (const message of found.warnings) {
    if (retrieval.warned.has(message)) continue;
    retrieval.warned.add(message);
    context.emit({ type: "warning", stage: request.stage, subTaskId: request.subTaskId, code: "RETRIEVAL_UNAVAILABLE", message });
  }
  if (!found.passages.length) return [];
  const count = tokenCounter(models, request.stage);
  let budget = retrieval.service.settings.maxPromptTokens;
  if (context.contextSize !== undefined) {
    const promptTokens = count(`${request.systemPrompt}\n${request.userPrompt}`) + (request.reserveTokens ?? 0) + TEMPLATE_MARGIN_TOKENS;
    // What the context leaves after the prompt and the least room the answer must keep (as the exact check before generating demands).
    const room = context.contextSize - promptTokens - Math.min(request.maxAnswerTokens, MIN_ANSWER_TOKENS);
    budget = Math.max(0, Math.min(budget, room));
  }
  const passages = fitPassages(found.passages, budget, count);
  context.emit({
    type: "passagesRetrieved",
    stage: request.stage,
    subTaskId: request.subTaskId,
    citations: passages.map((passage) => passage.citation),
    promptTokens: passages.length ? count(renderPassages(passages)) + 1 : 0,
  });
  return passages;
}
