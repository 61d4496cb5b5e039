/**
 * GPU fit: before anything is loaded, decide how many layers of each model go to the GPU and how
 * large each role's context is, so that the models and all three contexts (TD, RT, CG: one each)
 * fit the device, using node-llama-cpp's GGUF insights for the memory estimates. The plan says in
 * plain words what was chosen and why, or why it does not fit and what to pick instead.
 *
 * Choice: the largest context (from the profile's contextSize down to its minContextSize, halving)
 * at which every layer fits on the GPU; if none, as many layers as fit at the minimum context (a
 * layer on the GPU is worth more speed than context beyond what the profile needs). Then RAM must
 * hold what stays on the CPU. The profile's embedding model (retrieval), when downloaded, is small and
 * planned whole on the GPU (or in RAM on the CPU) before the role models.
 */
import { existsSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { GgufInsights, readGgufFileInfo, type Llama } from "node-llama-cpp";
import { MAX_EMBEDDING_CONTEXT } from "../retrieval/embedder";
import { roleNames, type RoleName } from "../schemas";
import type { ResolvedModels } from "./manifest";

export type FitBackend = "cuda" | "vulkan" | "metal" | "cpu";

export interface FitHardware {
  backend: FitBackend;
  devices: string[];
  vram: { total: number; free: number };
  ram: { total: number; free: number };
  /** VRAM kept free for the driver and other programs. */
  vramReserve: number;
}

export interface MemoryEstimate {
  vram: number;
  ram: number;
}

/** What the planner asks of a model file; the default reads it with GgufInsights. */
export interface FitEstimator {
  layers(modelPath: string): Promise<number>;
  trainContextSize(modelPath: string): Promise<number | undefined>;
  model(modelPath: string, gpuLayers: number): Promise<MemoryEstimate>;
  context(modelPath: string, gpuLayers: number, contextSize: number): Promise<MemoryEstimate>;
}

export interface FitRequest {
  resolved: ResolvedModels;
  /** A context size the user set (fixed); else the profile's, else 4096. */
  contextSize?: number;
  /** Layers the user set (fixed for every model); "auto" plans them. */
  gpuLayers?: number | "auto";
  defaultContextSize?: number;
}

export interface FitModelPlan {
  path: string;
  roles: RoleName[];
  layers: number;
  gpuLayers: number;
  adapterBytes: number;
}

export interface FitPlan {
  profile: string;
  backend: FitBackend;
  devices: string[];
  fits: boolean;
  /** Context size per role. */
  contextSize: number;
  models: FitModelPlan[];
  gpuLayers: Record<string, number>;
  vram: { total: number; free: number; needed: number };
  ram: { total: number; free: number; needed: number };
  /** Plain sentences: what was chosen and why. */
  summary: string;
  /** When it does not fit (or only barely): what to pick instead. */
  advice?: string;
}

const GiB = 1024 ** 3;
export function formatBytes(bytes: number): string {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(1)} GiB`;
  if (bytes >= 1024 ** 2) return `${Math.round(bytes / 1024 ** 2)} MiB`;
  return `${Math.max(0, Math.round(bytes / 1024))} KiB`;
}

export async function detectHardware(llama: Llama): Promise<FitHardware> {
  const backend: FitBackend = llama.gpu === false ? "cpu" : llama.gpu;
  const vram = backend === "cpu" ? { total: 0, free: 0 } : await llama.getVramState();
  const devices = backend === "cpu" ? [] : await llama.getGpuDeviceNames().catch(() => []);
  return {
    backend,
    devices,
    vram: { total: vram.total, free: vram.free },
    ram: { total: os.totalmem(), free: os.freemem() },
    vramReserve: backend === "cpu" ? 0 : Math.max(llama.vramPaddingSize, 256 * 1024 ** 2),
  };
}

export function insightsEstimator(llama: Llama): FitEstimator {
  const insights = new Map<string, Promise<GgufInsights>>();
  const of = (modelPath: string) => {
    let found = insights.get(modelPath);
    if (!found) {
      found = readGgufFileInfo(modelPath, { readTensorInfo: true, logWarnings: false, sourceType: "filesystem" }).then((info) => GgufInsights.from(info, llama));
      insights.set(modelPath, found);
    }
    return found;
  };
  return {
    async layers(modelPath) {
      return (await of(modelPath)).totalLayers;
    },
    async trainContextSize(modelPath) {
      return (await of(modelPath)).trainContextSize;
    },
    async model(modelPath, gpuLayers) {
      const estimate = await (await of(modelPath)).estimateModelResourceRequirementsV2({ gpuLayers });
      return { vram: estimate.gpuVram, ram: estimate.cpuRam };
    },
    async context(modelPath, gpuLayers, contextSize) {
      const estimate = await (await of(modelPath)).estimateContextResourceRequirementsV2({ contextSize, modelGpuLayers: gpuLayers, sequences: 1, flashAttention: false });
      return { vram: estimate.gpuVram, ram: estimate.cpuRam };
    },
  };
}

export async function planFit(request: FitRequest, hardware: FitHardware, estimator: FitEstimator): Promise<FitPlan> {
  const { resolved } = request;
  const models: FitModelPlan[] = [];
  for (const role of roleNames) {
    const { modelPath, adapters } = resolved.roles[role];
    let model = models.find((candidate) => candidate.path === modelPath);
    if (!model) {
      model = { path: modelPath, roles: [], layers: await estimator.layers(modelPath), gpuLayers: 0, adapterBytes: 0 };
      models.push(model);
    }
    model.roles.push(role);
    // Each adapter file is loaded once per model, whatever the number of contexts using it.
    const seen = new Set<string>();
    for (const adapter of adapters) {
      if (seen.has(adapter.path) || !existsSync(adapter.path)) continue;
      seen.add(adapter.path);
      model.adapterBytes += statSync(adapter.path).size;
    }
  }

  let trainContext = Infinity;
  for (const model of models) trainContext = Math.min(trainContext, (await estimator.trainContextSize(model.path)) ?? Infinity);
  const wanted = Math.min(request.contextSize ?? resolved.contextSize ?? request.defaultContextSize ?? 4096, trainContext);
  const minimum = request.contextSize !== undefined ? wanted : Math.min(wanted, resolved.minContextSize ?? wanted);
  const contexts: number[] = [];
  for (let size = wanted; size >= minimum; size = Math.floor(size / 2)) contexts.push(size);
  if (contexts.at(-1) !== minimum) contexts.push(minimum);

  const gpu = hardware.backend !== "cpu";
  const embeddingPath = resolved.embedding?.path;
  let embedding: MemoryEstimate | null = null;
  if (embeddingPath && existsSync(embeddingPath)) {
    const layers = gpu ? await estimator.layers(embeddingPath) : 0;
    const contextSize = Math.min(MAX_EMBEDDING_CONTEXT, (await estimator.trainContextSize(embeddingPath)) ?? MAX_EMBEDDING_CONTEXT);
    const weights = await estimator.model(embeddingPath, layers);
    const context = await estimator.context(embeddingPath, layers, contextSize);
    embedding = { vram: weights.vram + context.vram, ram: weights.ram + context.ram };
  }

  const usage = async (layersOf: (model: FitModelPlan) => number, contextSize: number) => {
    let vram = embedding?.vram ?? 0;
    let ram = embedding?.ram ?? 0;
    for (const model of models) {
      const layers = layersOf(model);
      const weights = await estimator.model(model.path, layers);
      const context = await estimator.context(model.path, layers, contextSize);
      const adapterOnGpu = model.layers > 0 ? (model.adapterBytes * layers) / model.layers : 0;
      vram += weights.vram + context.vram * model.roles.length + adapterOnGpu;
      ram += weights.ram + context.ram * model.roles.length + (model.adapterBytes - adapterOnGpu);
    }
    return { vram, ram };
  };

  const vramBudget = Math.max(0, hardware.vram.free - hardware.vramReserve);
  const ramBudget = Math.max(0, hardware.ram.total - Math.min(2 * GiB, hardware.ram.total * 0.1));
  const fixedLayers = typeof request.gpuLayers === "number" ? request.gpuLayers : undefined;
  const reasons: string[] = [];

  // Fraction f of each model's layers on the GPU (the same share for every model), as layers.
  const layersAt = (fraction: number) => (model: FitModelPlan) => Math.round(model.layers * fraction);
  let chosenContext: number;
  let fraction = 0;
  if (!gpu) {
    fraction = 0;
    chosenContext = contexts[0];
    for (const size of contexts) {
      chosenContext = size;
      if ((await usage(() => 0, size)).ram <= ramBudget) break;
    }
    reasons.push(`No GPU backend is in use, so everything runs on the CPU (${hardware.ram.total ? formatBytes(hardware.ram.total) : "unknown"} RAM).`);
  } else if (fixedLayers !== undefined) {
    fraction = -1;
    chosenContext = contexts[0];
    for (const size of contexts) {
      chosenContext = size;
      if ((await usage((model) => Math.min(fixedLayers, model.layers), size)).vram <= vramBudget) break;
    }
    reasons.push(`GPU layers are set to ${fixedLayers} by the user.`);
  } else {
    let full: number | undefined;
    for (const size of contexts) {
      if ((await usage((model) => model.layers, size)).vram <= vramBudget) {
        full = size;
        break;
      }
    }
    if (full !== undefined) {
      fraction = 1;
      chosenContext = full;
      reasons.push(
        full === contexts[0]
          ? `All layers fit in ${formatBytes(vramBudget)} of free VRAM with a ${full}-token context for each of the ${roleNames.length} roles.`
          : `All layers fit only with a smaller context: ${full} tokens per role instead of ${contexts[0]} (the profile needs at least ${minimum}).`,
      );
    } else {
      chosenContext = minimum;
      // Binary search over the share of layers offloaded (monotonic in VRAM).
      const steps = Math.max(...models.map((model) => model.layers), 1);
      let low = 0;
      let high = steps;
      while (low < high) {
        const mid = Math.ceil((low + high) / 2);
        if ((await usage(layersAt(mid / steps), chosenContext)).vram <= vramBudget) low = mid;
        else high = mid - 1;
      }
      fraction = low / steps;
      reasons.push(
        low === 0
          ? `Not even one layer fits in ${formatBytes(vramBudget)} of free VRAM next to the ${roleNames.length} contexts, so everything runs on the CPU.`
          : `Only part of the model fits in ${formatBytes(vramBudget)} of free VRAM with ${roleNames.length} contexts of ${chosenContext} tokens: the other layers run on the CPU, which is slower.`,
      );
    }
  }

  const layersFor = (model: FitModelPlan) => (!gpu ? 0 : fraction < 0 ? Math.min(fixedLayers!, model.layers) : layersAt(fraction)(model));
  for (const model of models) model.gpuLayers = layersFor(model);
  const final = await usage(layersFor, chosenContext);
  const vramFits = !gpu || final.vram <= vramBudget;
  const ramFits = final.ram <= ramBudget;
  const fits = vramFits && ramFits;

  const modelWords = models.map((model) => `${path.basename(model.path)} (${model.roles.map((role) => role.toUpperCase()).join("/")}): ${model.gpuLayers}/${model.layers} layers on the GPU`).join("; ");
  const summaryParts = [
    `${hardware.backend === "cpu" ? "CPU" : hardware.backend.toUpperCase()}${hardware.devices.length ? ` (${hardware.devices.join(", ")})` : ""}.`,
    `${modelWords}; context ${chosenContext} tokens per role.`,
    ...(embedding && embeddingPath ? [`The embedding model ${path.basename(embeddingPath)} (retrieval) takes about ${formatBytes(gpu ? embedding.vram : embedding.ram)} of ${gpu ? "VRAM" : "RAM"}.`] : []),
    `Needs about ${formatBytes(final.vram)} VRAM${gpu ? ` of ${formatBytes(hardware.vram.free)} free` : ""} and ${formatBytes(final.ram)} RAM of ${formatBytes(hardware.ram.total)}.`,
    ...reasons,
  ];
  let advice: string | undefined;
  if (!ramFits)
    advice = `It does not fit: about ${formatBytes(final.ram)} must stay in RAM but the machine has ${formatBytes(hardware.ram.total)}. Pick a smaller profile (e.g. "small"), a smaller quantization, or a smaller context (--context-size ${Math.max(256, Math.floor(minimum / 2))}).`;
  else if (!vramFits)
    advice = `It does not fit the GPU with ${fixedLayers} layers: lower --gpu-layers or leave it on auto.`;
  else if (gpu && fraction < 1 && fraction >= 0)
    advice = `For full speed pick a smaller profile (e.g. "small") or a GPU with more free memory; closing other programs that use the GPU also helps.`;
  else if (chosenContext < contexts[0] && request.contextSize === undefined)
    advice = `For the full ${contexts[0]}-token context, free some GPU memory or pick a smaller profile.`;

  return {
    profile: resolved.profile,
    backend: hardware.backend,
    devices: hardware.devices,
    fits,
    contextSize: chosenContext,
    models,
    gpuLayers: Object.fromEntries(models.map((model) => [model.path, model.gpuLayers])),
    vram: { total: hardware.vram.total, free: hardware.vram.free, needed: Math.round(final.vram) },
    ram: { total: hardware.ram.total, free: hardware.ram.free, needed: Math.round(final.ram) },
    summary: summaryParts.join(" "),
    ...(advice ? { advice } : {}),
  };
}
