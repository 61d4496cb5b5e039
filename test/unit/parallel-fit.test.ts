/**
 * GPU fit with parallel sub-tasks: RT and CG get one sequence (one full-context KV cache) per
 * sub-task generated at once, TD one; the plan counts them, keeps every layer and the context
 * first, and lowers the parallelism when the extra sequences do not fit. Simulated devices, with
 * the memory shape of a 7B model at Q4 (weights ~4.5 GiB, KV cache 56 KiB per token).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { planFit, sequencesPerRole, type FitEstimator, type FitHardware } from "../../sidecar/src/models/gpuFit";
import type { ResolvedModels } from "../../sidecar/src/models/manifest";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const LAYERS = 28;

/** Context memory grows with the sequences: each has a KV cache of the full context. */
function estimator(calls: { contextSize: number; sequences: number }[] = []): FitEstimator {
  return {
    layers: async () => LAYERS + 1,
    trainContextSize: async () => 32768,
    model: async (_path, gpuLayers) => ({ vram: Math.min(gpuLayers, LAYERS) * 160 * MiB, ram: (LAYERS - Math.min(gpuLayers, LAYERS)) * 160 * MiB + 300 * MiB }),
    context: async (_path, gpuLayers, contextSize, sequences) => {
      calls.push({ contextSize, sequences });
      const share = Math.min(gpuLayers, LAYERS) / LAYERS;
      const kv = 56 * 1024 * contextSize * sequences;
      return { vram: gpuLayers > 0 ? kv * share + 100 * MiB : 0, ram: kv * (1 - share) + 50 * MiB };
    },
  };
}

const resolved: ResolvedModels = {
  profile: "default",
  roles: { td: { modelPath: "/m/qwen-7b.gguf", adapters: [] }, rt: { modelPath: "/m/qwen-7b.gguf", adapters: [] }, cg: { modelPath: "/m/qwen-7b.gguf", adapters: [] } },
  contextSize: 8192,
  minContextSize: 4096,
};

const gpu = (freeGiB: number): FitHardware => ({ backend: "cuda", devices: ["Test GPU"], vram: { total: freeGiB * GiB, free: freeGiB * GiB }, ram: { total: 64 * GiB, free: 60 * GiB }, vramReserve: 256 * MiB });

describe("GPU fit with parallel sub-tasks", () => {
  test("sequences per role: one for TD, one per parallel sub-task for RT and CG", () => {
    assert.deepEqual(sequencesPerRole(4), { td: 1, rt: 4, cg: 4 });
  });

  test("a large GPU gets every layer, the full context and four sequences for RT and CG; the estimate counts them", async () => {
    const calls: { contextSize: number; sequences: number }[] = [];
    const plan = await planFit({ resolved, parallel: 4 }, gpu(24), estimator(calls));
    assert.equal(plan.parallel, 4);
    assert.equal(plan.contextSize, 8192);
    assert.equal(plan.gpuLayers["/m/qwen-7b.gguf"], 29);
    assert.match(plan.summary, /RT and CG each have 4 sequences, so 4 sub-tasks are generated in parallel/);
    // 28 layers x 160 MiB + TD (1 sequence) + RT and CG (4 each) at 8192 tokens.
    const kv = 56 * 1024 * 8192;
    assert.equal(plan.vram.needed, Math.round(LAYERS * 160 * MiB + kv * (1 + 4 + 4) + 3 * 100 * MiB));
    assert.ok(calls.some((call) => call.sequences === 4) && calls.some((call) => call.sequences === 1));
  });

  test("a GPU with room for the model and one sequence each keeps the context and runs sub-tasks one after another", async () => {
    // Weights 4.4 GiB + 3 x 0.54 GiB of KV at 8192 ≈ 6.3 GiB: fits with 1 sequence, not with 2.
    const plan = await planFit({ resolved, parallel: 4 }, gpu(6.8), estimator());
    assert.equal(plan.contextSize, 8192, "the context is kept");
    assert.equal(plan.gpuLayers["/m/qwen-7b.gguf"], 29, "every layer stays on the GPU");
    assert.equal(plan.parallel, 1);
    assert.match(plan.summary, /Only 1 of the 4 parallel sub-task sequences fit, so sub-tasks are generated one after another/);
  });

  test("in between: two sequences fit", async () => {
    const plan = await planFit({ resolved, parallel: 4 }, gpu(8.4), estimator());
    assert.equal(plan.parallel, 2);
    assert.equal(plan.contextSize, 8192);
    assert.match(plan.summary, /Only 2 of the 4 parallel sub-task sequences fit\./);
  });

  test("without a parallel setting the plan is the sequential one", async () => {
    const plan = await planFit({ resolved }, gpu(24), estimator());
    assert.equal(plan.parallel, 1);
    assert.doesNotMatch(plan.summary, /sequences/);
  });

  test("only the roles that run locally are planned", async () => {
    const plan = await planFit({ resolved, roles: ["cg"], parallel: 4 }, gpu(24), estimator());
    assert.deepEqual(plan.models[0].roles, ["cg"]);
    const kv = 56 * 1024 * 8192;
    assert.equal(plan.vram.needed, Math.round(LAYERS * 160 * MiB + kv * 4 + 100 * MiB));
  });
});
