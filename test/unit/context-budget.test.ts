/** A context size is refused when it cannot hold a stage's prompt plus room for its answer. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ContextTooSmallError, MIN_ANSWER_TOKENS, answerBudget, checkContextBudget, estimatePromptTokens, knownStagePrompts } from "../../sidecar/src/pipeline/contextBudget";
import { parseResourceLimits } from "../../sidecar/src/pipeline/requirement";
import { StageTokenLimitsSchema } from "../../sidecar/src/settings";

const maxTokens = StageTokenLimitsSchema.parse({});
const requirement = "Detect heartbeats in a single-lead ECG from the MIT-BIH database and report the heart rate";
const limits = parseResourceLimits("Jetson Nano, <= 200 MB RAM, <= 10 ms");

describe("before loading: an estimate that never refuses a context that could work", () => {
  test("the engine's own sizes pass: the 4096 default, the paper profile's 2048 minimum", () => {
    for (const size of [2048, 4096, 8192]) assert.doesNotThrow(() => checkContextBudget(size, knownStagePrompts(requirement, limits, maxTokens)), String(size));
  });

  test("a context too small for the prompts is refused, naming the stage and a size that works", () => {
    for (const size of [256, 512]) {
      assert.throws(
        () => checkContextBudget(size, knownStagePrompts(requirement, limits, maxTokens)),
        (error: unknown) => error instanceof ContextTooSmallError && error.code === "CONTEXT_TOO_SMALL" && new RegExp(`A context of ${size} tokens is too small: the .+ prompt takes about \\d+ tokens`).test(error.message),
      );
    }
  });

  test("a long requirement needs a larger context, and the message says to shorten it", () => {
    const long = "Detect heartbeats in a single-lead ECG and report the heart rate. ".repeat(110);
    assert.doesNotThrow(() => checkContextBudget(4096, knownStagePrompts(long, null, maxTokens)));
    assert.throws(() => checkContextBudget(1536, knownStagePrompts(long, null, maxTokens)), /or a shorter requirement/);
  });

  test("the estimate is low: about one token per 6 bytes of prompt", () => {
    assert.equal(estimatePromptTokens("", "x".repeat(600)), 108);
  });
});

describe("before each generation: the exact count", () => {
  test("the answer is capped at what the context leaves", () => {
    assert.equal(answerBudget("cg", 4096, 1000, 4096), 3096);
    assert.equal(answerBudget("td", 8192, 1000, 2048), 2048);
  });

  test("too little room for an answer is refused before generating", () => {
    assert.throws(() => answerBudget("rt", 1024, 1024 - MIN_ANSWER_TOKENS + 1, 1024), /The requirement transformation \(RT\) context holds 1024 tokens, but this prompt takes 513, leaving 511 for the answer; at least 512 are needed/);
    assert.equal(answerBudget("rt", 1024, 800, 200), 200, "a stage whose whole budget fits needs no more");
  });
});
