/**
 * TD and CG in the "paper" prompt format: the authors' prompt, completed under the grammar of their
 * answer text, parsed into the stage's schema. Same inputs, hooks and results as the JSON stages,
 * which hand over to these when the role's model was trained on this format.
 */
import type { CodeArtifact, SubTask } from "../../schemas";
import type { CodeGenerationHooks, CodeGenerationInput } from "../codeGeneration";
import { pythonIdentifier } from "../pythonNames";
import { CancelledError, StageOutputError, throwIfCancelled, type RoleModels, type StructuredResult } from "../structuredGeneration";
import type { DecompositionHooks, DecompositionInput } from "../taskDecomposition";
import {
  blockToSubTask,
  buildPaperCodePrompt,
  buildPaperDecompositionPrompt,
  PAPER_CG_SYSTEM_PROMPT,
  PAPER_TD_SYSTEM_PROMPT,
  paperBlocks,
  PaperFormatError,
  parsePaperCode,
  parsePaperDecomposition,
  renderPaperPrompt,
  withRunEntryPoint,
} from "./paperFormat";
import { PAPER_CG_GRAMMAR, PAPER_TD_GRAMMAR } from "./paperGrammar";
import type { CompletionRequest } from "./promptFormat";
import { SubTaskSchema } from "../../schemas";

async function complete(models: RoleModels, stage: string, request: CompletionRequest) {
  if (!models.complete) throw new StageOutputError(stage, 'these models cannot complete raw prompts, which the "paper" prompt format needs', "");
  throwIfCancelled(request.signal);
  const result = await models.complete(request);
  if (result.stopReason === "abort" || request.signal?.aborted) throw new CancelledError();
  if (result.stopReason === "maxTokens") throw new StageOutputError(stage, "the model reached its token limit before finishing the answer (raise the stage's max tokens)", result.text);
  return result;
}

function parseOrThrow<T>(stage: string, text: string, parse: (text: string) => T): T {
  try {
    return parse(text);
  } catch (error) {
    if (error instanceof PaperFormatError) throw new StageOutputError(stage, `the model's answer is not in the GPIoT text format: ${error.message}`, text);
    throw error;
  }
}

export function paperDecompositionPrompt(input: DecompositionInput): string {
  return renderPaperPrompt(PAPER_TD_SYSTEM_PROMPT, buildPaperDecompositionPrompt(input));
}

export async function decomposeRequirementPaper(models: RoleModels, input: DecompositionInput, hooks: DecompositionHooks): Promise<StructuredResult<{ subTasks: SubTask[] }>> {
  const stage = "Task decomposition (TD)";
  let text = "";
  let reported = 0;
  const report = (complete: number) => {
    const blocks = paperBlocks(text);
    for (; reported < Math.min(complete, blocks.length); reported++) {
      const parsed = SubTaskSchema.safeParse(blockToSubTask(blocks[reported]));
      if (parsed.success) hooks.onSubTask?.(reported, parsed.data);
    }
  };
  const result = await complete(models, stage, {
    role: "td",
    prompt: paperDecompositionPrompt(input),
    gbnf: PAPER_TD_GRAMMAR,
    maxTokens: hooks.maxTokens,
    signal: hooks.signal,
    onTextChunk(chunk) {
      text += chunk;
      // A block is complete once the next one has started.
      report(paperBlocks(text).length - 1);
      hooks.onTextChunk?.(chunk);
    },
  });
  const value = parseOrThrow(stage, result.text, parsePaperDecomposition);
  text = result.text;
  for (; reported < value.subTasks.length; reported++) hooks.onSubTask?.(reported, value.subTasks[reported]);
  return { ...result, value };
}

export function paperCodePrompt(input: CodeGenerationInput): string {
  let user = buildPaperCodePrompt(input.spec);
  // The authors' format has no repair turn: the failed attempt goes after the specification.
  if (input.repair) user += `\n\nYour previous version failed. Fix it.\n\nPrevious code:\n\`\`\`python\n${input.repair.previousCode.slice(0, 4000)}\n\`\`\`\n\nError:\n${input.repair.error.slice(0, 2000)}`;
  return renderPaperPrompt(PAPER_CG_SYSTEM_PROMPT, user);
}

/** Streams the text inside the first ```python fence, holding back what may be the closing fence. */
class FencedCodeStream {
  private text = "";
  private emitted = 0;
  private done = false;

  constructor(private readonly onDelta?: (text: string) => void) {}

  push(chunk: string): void {
    this.text += chunk;
    if (this.done || !this.onDelta) return;
    const open = this.text.indexOf("```python\n");
    if (open < 0) return;
    const start = open + "```python\n".length;
    const body = this.text.slice(start);
    const close = body.search(/(^|\n)```/);
    let end = close >= 0 ? close + (body[close] === "\n" ? 1 : 0) : body.length;
    if (close < 0) {
      const tail = /\n`{0,2}$/.exec(body);
      if (tail) end = tail.index + 1;
    } else {
      this.done = true;
    }
    if (end > this.emitted) {
      this.onDelta(body.slice(this.emitted, end));
      this.emitted = end;
    }
  }
}

export async function generateCodePaper(models: RoleModels, input: CodeGenerationInput, hooks: CodeGenerationHooks): Promise<StructuredResult<CodeArtifact>> {
  const stage = "Code generation (CG)";
  const stream = new FencedCodeStream(hooks.onCodeDelta);
  const result = await complete(models, stage, {
    role: "cg",
    prompt: paperCodePrompt(input),
    gbnf: PAPER_CG_GRAMMAR,
    maxTokens: hooks.maxTokens,
    signal: hooks.signal,
    onTextChunk(chunk) {
      stream.push(chunk);
      hooks.onTextChunk?.(chunk);
    },
  });
  const parsed = parseOrThrow(stage, result.text, parsePaperCode);
  const value: CodeArtifact = { ...parsed, code: withRunEntryPoint(parsed.code, input.spec, pythonIdentifier) };
  return { ...result, value };
}
