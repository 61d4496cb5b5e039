/**
 * GPU fit: the planner's choices on simulated devices (a fake estimator with the memory shape of a
 * 7B model), and the real estimator + ModelHost on the tiny model (CPU here).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { writeTinyTestModels, type TinyTestModelPaths } from "../../sidecar/src/gguf/tinyTestModels";
import { detectHardware, insightsEstimator, planFit, type FitEstimator, type FitHardware } from "../../sidecar/src/models/gpuFit";
import { resolveSingleModel, type ResolvedModels } from "../../sidecar/src/models/manifest";
import { ModelHost } from "../../sidecar/src/models/modelHost";
import { EngineSettingsSchema } from "../../sidecar/src/settings";

const GiB = 1024 ** 3;

/** 28 layers of 160 MiB; the KV cache costs 56 KiB per token per layer share; plus fixed overheads. */
function fakeEstimator(layers = 28, layerBytes = 160 * 1024 ** 2, kvPerTokenAllLayers = 56 * 1024): FitEstimator {
  return {
    layers: async () => layers + 1,
    trainContextSize: async () => 32768,
    model: async (_path, gpuLayers) => {
      const onGpu = Math.min(gpuLayers, layers);
      return { vram: onGpu * layerBytes + (gpuLayers > layers ? 300 * 1024 ** 2 : 0), ram: (layers - onGpu) * layerBytes + 300 * 1024 ** 2 };
    },
    context: async (_path, gpuLayers, contextSize) => {
      const share = Math.min(gpuLayers, layers) / layers;
      const kv = kvPerTokenAllLayers * contextSize;
      return { vram: gpuLayers > 0 ? kv * share + 200 * 1024 ** 2 : 0, ram: kv * (1 - share) + 50 * 1024 ** 2 };
    },
  };
}

function profile(contextSize = 8192, minContextSize = 4096): ResolvedModels {
  const role = () => ({ modelPath: "/models/qwen-7b.gguf", adapters: [] });
  return { profile: "default", roles: { td: role(), rt: role(), cg: role() }, contextSize, minContextSize };
}

const gpu = (freeGiB: number, ramGiB = 32): FitHardware => ({
  backend: "cuda",
  devices: ["Test GPU"],
  vram: { total: freeGiB * GiB, free: freeGiB * GiB },
  ram: { total: ramGiB * GiB, free: ramGiB * GiB },
  vramReserve: 256 * 1024 ** 2,
});

describe("planFit on simulated devices", () => {
  test("24 GB GPU: every layer on the GPU with the full context for all three roles", async () => {
    const plan = await planFit({ resolved: profile() }, gpu(24), fakeEstimator());
    assert.equal(plan.fits, true);
    assert.equal(plan.contextSize, 8192);
    assert.equal(plan.gpuLayers["/models/qwen-7b.gguf"], 29);
    assert.match(plan.summary, /^CUDA \(Test GPU\)\. qwen-7b\.gguf \(TD\/RT\/CG\): 29\/29 layers on the GPU; context 8192 tokens per role\./);
    assert.match(plan.summary, /All layers fit/);
    assert.equal(plan.advice, undefined);
  });

  test("a tight GPU keeps every layer by halving the context, down to the profile's minimum", async () => {
    // Weights ~4.7 GiB, three contexts ~1.9 GiB at 8192 or ~1.2 GiB at 4096: 6.5 GiB free fits all layers only at 4096.
    const plan = await planFit({ resolved: profile() }, gpu(6.5), fakeEstimator());
    assert.equal(plan.fits, true);
    assert.equal(plan.contextSize, 4096);
    assert.equal(plan.gpuLayers["/models/qwen-7b.gguf"], 29);
    assert.match(plan.summary, /only with a smaller context: 4096 tokens per role instead of 8192/);
    assert.match(plan.advice!, /full 8192-token context/);
  });

  test("a small GPU takes as many layers as fit at the minimum context; the rest runs on the CPU", async () => {
    const plan = await planFit({ resolved: profile() }, gpu(3), fakeEstimator());
    const layers = plan.gpuLayers["/models/qwen-7b.gguf"];
    assert.ok(layers > 0 && layers < 29, `layers ${layers}`);
    assert.equal(plan.contextSize, 4096);
    assert.ok(plan.vram.needed <= 3 * GiB - 256 * 1024 ** 2);
    assert.equal(plan.fits, true);
    assert.match(plan.summary, new RegExp(`${layers}/29 layers on the GPU`));
    assert.match(plan.advice!, /smaller profile/);
  });

  test("CPU only: no layers offloaded; not enough RAM says so and what to pick instead", async () => {
    const cpu: FitHardware = { backend: "cpu", devices: [], vram: { total: 0, free: 0 }, ram: { total: 32 * GiB, free: 30 * GiB }, vramReserve: 0 };
    const ok = await planFit({ resolved: profile() }, cpu, fakeEstimator());
    assert.equal(ok.fits, true);
    assert.equal(ok.gpuLayers["/models/qwen-7b.gguf"], 0);
    assert.match(ok.summary, /^CPU\. .*No GPU backend/);

    const tooSmall = await planFit({ resolved: profile() }, { ...cpu, ram: { total: 4 * GiB, free: 3 * GiB } }, fakeEstimator());
    assert.equal(tooSmall.fits, false);
    assert.match(tooSmall.advice!, /does not fit: about .* must stay in RAM but the machine has 4\.0 GiB\. Pick a smaller profile \(e\.g\. "small"\)/);
  });

  test("the profile's embedding model, once downloaded, is counted whole next to the role models", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "gpiot-fit-embed-"));
    try {
      const embeddingPath = path.join(dir, "bge-small.gguf");
      await writeFile(embeddingPath, "stand-in: the estimator below answers for it");
      const roleEstimator = fakeEstimator();
      const contexts: number[] = [];
      const estimator: FitEstimator = {
        layers: (file) => (file === embeddingPath ? Promise.resolve(13) : roleEstimator.layers(file)),
        trainContextSize: (file) => (file === embeddingPath ? Promise.resolve(512) : roleEstimator.trainContextSize(file)),
        model: (file, layers) => (file === embeddingPath ? Promise.resolve(layers ? { vram: 40 * 1024 ** 2, ram: 1024 ** 2 } : { vram: 0, ram: 41 * 1024 ** 2 }) : roleEstimator.model(file, layers)),
        context: (file, layers, contextSize, sequences) => {
          if (file !== embeddingPath) return roleEstimator.context(file, layers, contextSize, sequences);
          contexts.push(contextSize);
          return Promise.resolve(layers ? { vram: 20 * 1024 ** 2, ram: 0 } : { vram: 0, ram: 20 * 1024 ** 2 });
        },
      };
      const withEmbedding: ResolvedModels = { ...profile(), embedding: { path: embeddingPath } };
      const onGpu = await planFit({ resolved: withEmbedding }, gpu(24), estimator);
      const without = await planFit({ resolved: profile() }, gpu(24), estimator);
      assert.equal(onGpu.vram.needed - without.vram.needed, 60 * 1024 ** 2, "its weights and its context, all layers on the GPU");
      assert.equal(onGpu.ram.needed - without.ram.needed, 1024 ** 2);
      assert.deepEqual(contexts, [512], "its context is its training context when that is below the cap");
      assert.match(onGpu.summary, /The embedding model bge-small\.gguf \(retrieval\) takes about .* of VRAM\./);
      const cpu: FitHardware = { backend: "cpu", devices: [], vram: { total: 0, free: 0 }, ram: { total: 32 * GiB, free: 30 * GiB }, vramReserve: 0 };
      const onCpu = await planFit({ resolved: withEmbedding }, cpu, estimator);
      assert.equal(onCpu.ram.needed - (await planFit({ resolved: profile() }, cpu, estimator)).ram.needed, 61 * 1024 ** 2);
      assert.match(onCpu.summary, /takes about .* of RAM\./);
      const notDownloaded = await planFit({ resolved: { ...profile(), embedding: { path: path.join(dir, "missing.gguf") } } }, gpu(24), estimator);
      assert.equal(notDownloaded.vram.needed, without.vram.needed, "a missing embedding model is not planned");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("user settings win: a fixed context size and fixed GPU layers are kept and checked", async () => {
    const plan = await planFit({ resolved: profile(), contextSize: 2048, gpuLayers: 10 }, gpu(24), fakeEstimator());
    assert.equal(plan.contextSize, 2048);
    assert.equal(plan.gpuLayers["/models/qwen-7b.gguf"], 10);
    assert.match(plan.summary, /GPU layers are set to 10 by the user/);
  });

  test("two model files: each is counted once with the contexts of its roles", async () => {
    const resolved: ResolvedModels = {
      profile: "split",
      roles: { td: { modelPath: "/m/a.gguf", adapters: [] }, rt: { modelPath: "/m/a.gguf", adapters: [] }, cg: { modelPath: "/m/b.gguf", adapters: [] } },
      contextSize: 4096,
    };
    const plan = await planFit({ resolved }, gpu(24), fakeEstimator());
    assert.deepEqual(plan.models.map((model) => [path.basename(model.path), model.roles]), [["a.gguf", ["td", "rt"]], ["b.gguf", ["cg"]]]);
    assert.equal(plan.fits, true);
  });
});

describe("GPU fit with node-llama-cpp on the tiny model", () => {
  let work: string;
  let models: TinyTestModelPaths;
  let llama: Llama;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "gpiot-fit-test-"));
    models = await writeTinyTestModels(work);
    llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  });

  after(async () => {
    await llama?.dispose();
    await rm(work, { recursive: true, force: true });
  });

  test("GgufInsights estimates drive the plan, and ModelHost reports it in the load result", async () => {
    const hardware = await detectHardware(llama);
    assert.equal(hardware.backend, "cpu");
    const resolved: ResolvedModels = {
      profile: "tiny",
      roles: { td: { modelPath: models.base, adapters: [{ path: models.adapters.td, scale: 1 }] }, rt: { modelPath: models.base, adapters: [] }, cg: { modelPath: models.base, adapters: [] } },
      contextSize: 1024,
    };
    const plan = await planFit({ resolved }, hardware, insightsEstimator(llama));
    assert.equal(plan.fits, true);
    assert.equal(plan.contextSize, 1024);
    assert.ok(plan.ram.needed > 0);
    assert.ok(plan.models[0].adapterBytes > 0);

    const messages: string[] = [];
    const host = await ModelHost.load(llama, resolved, EngineSettingsSchema.parse({ threads: 1 }), { onProgress: (_progress, message) => messages.push(message) });
    try {
      assert.equal(host.info.fit?.backend, "cpu");
      assert.equal(host.info.fit?.contextSize, 1024);
      assert.equal(host.info.roles.td.contextSize, 1024);
      assert.ok(messages.some((message) => message.startsWith("GPU fit: CPU.")), messages.join("\n"));
    } finally {
      await host.dispose();
    }
  });

  test("a simulated GPU that is too small for the three contexts shrinks the context the host creates", async () => {
    const resolved = { ...resolveSingleModel(models.base), contextSize: 4096, minContextSize: 512 };
    const estimator: FitEstimator = {
      ...insightsEstimator(llama),
      model: async (_path, layers) => ({ vram: layers * 1000, ram: 1e6 }),
      context: async (_path, layers, contextSize) => ({ vram: layers > 0 ? contextSize * 1000 : 0, ram: 1e6 }),
    };
    const hardware: FitHardware = { backend: "cuda", devices: ["Simulated"], vram: { total: 4e6, free: 4e6 }, ram: { total: 16 * GiB, free: 16 * GiB }, vramReserve: 0 };
    // 3 contexts x 1024 x 1000 bytes + weights fit in 4 MB; 3 x 2048 do not.
    const host = await ModelHost.load(llama, resolved, EngineSettingsSchema.parse({ threads: 1 }), { hardware, estimator });
    try {
      assert.equal(host.info.fit?.contextSize, 1024);
      assert.equal(host.info.roles.cg.contextSize, 1024);
      assert.match(host.info.fit!.summary, /All layers fit only with a smaller context: 1024 tokens per role instead of 4096/);
    } finally {
      await host.dispose();
    }
  });
});
