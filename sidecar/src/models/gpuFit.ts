/**
 * GPU fit: before anything is loaded, decide how many layers of each model go to the GPU and how
 * large each role's context is, so that the models and all three contexts (TD, RT, CG: one each)
 * fit the device, using node-llama-cpp's GGUF insights for the memory estimates. RT and CG get one
 * sequence per sub-task generated in parallel (each sequence has a KV cache of the full context
 * size); TD gets one. The plan says in plain words what was chosen and why, or why it does not fit
 * and what to pick instead.
 *
 * Choice: the largest context (from the profile's contextSize down to its minContextSize, halving)
 * at which every layer fits on the GPU, with as many parallel sequences as fit at that context (down
 * to one); if none, one sequence and as many layers as fit at the minimum context (a layer on the
 * GPU is worth more speed than parallel sub-tasks or context beyond what the profile needs). Then
 * RAM must hold what stays on the CPU. The profile's embedding model (retrieval), when downloaded, is
 * small and planned whole on the GPU (or in RAM on the CPU) next to the role models.
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
  /** One context of `sequences` sequences, each with `contextSize` tokens of KV cache. */
  context(modelPath: string, gpuLayers: number, contextSize: number, sequences: number): Promise<MemoryEstimate>;
}

export interface FitRequest {
  resolved: ResolvedModels;
  /** A context size the user set (fixed); else the profile's, else 4096. */
  contextSize?: number;
  /** Layers the user set (fixed for every model); "auto" plans them. */
  gpuLayers?: number | "auto";
  defaultContextSize?: number;
  /** The roles that run on this machine (default: all three). */
  roles?: readonly RoleName[];
  /** Sub-tasks generated in parallel (sequences of the RT and CG contexts); default 1. */
  parallel?: number;
}

/** Sequences per role's context when `parallel` sub-tasks are generated at once. */
export function sequencesPerRole(parallel: number): Record<RoleName, number> {
  return { td: 1, rt: parallel, cg: parallel };
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
  /** Context size per role (per sequence). */
  contextSize: number;
  /** Sub-tasks RT and CG may generate in parallel (sequences of their contexts). */
  parallel: number;
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
    async context(modelPath, gpuLayers, contextSize, sequences) {
      const estimate = await (await of(modelPath)).estimateContextResourceRequirementsV2({ contextSize, modelGpuLayers: gpuLayers, sequences, flashAttention: false });
      return { vram: estimate.gpuVram, ram: estimate.cpuRam };
    },
  };
}

export async function planFit(request: FitRequest, hardware: FitHardware, estimator: FitEstimator): Promise<FitPlan> {
  const { resolved } = request;
  const models: FitModelPlan[] = [];
  const roles = request.roles ?? roleNames;
  for (const role of roles) {
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
    const context = await estimator.context(embeddingPath, layers, contextSize, 1);
    embedding = { vram: weights.vram + context.vram, ram: weights.ram + context.ram };
  }

  const wantedParallel = Math.max(1, Math.floor(request.parallel ?? 1));
  const parallelOptions: number[] = [];
  for (let count = wantedParallel; count >= 1; count = count > 1 ? Math.max(1, Math.floor(count / 2)) : 0) parallelOptions.push(count);

  const usage = async (layersOf: (model: FitModelPlan) => number, contextSize: number, parallel: number) => {
    let vram = embedding?.vram ?? 0;
    let ram = embedding?.ram ?? 0;
    const sequences = sequencesPerRole(parallel);
    for (const model of models) {
      const layers = layersOf(model);
      const weights = await estimator.model(model.path, layers);
      const adapterOnGpu = model.layers > 0 ? (model.adapterBytes * layers) / model.layers : 0;
      vram += weights.vram + adapterOnGpu;
      ram += weights.ram + (model.adapterBytes - adapterOnGpu);
      for (const role of model.roles) {
        const context = await estimator.context(model.path, layers, contextSize, sequences[role]);
        vram += context.vram;
        ram += context.ram;
      }
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
  let chosenParallel: number;
  let fraction = 0;
  /** The largest context, then the most parallel sequences, that `fits`; else the smallest of both. */
  const largestFitting = async (fits: (size: number, parallel: number) => Promise<boolean>): Promise<{ size: number; parallel: number; found: boolean }> => {
    for (const size of contexts) for (const parallel of parallelOptions) if (await fits(size, parallel)) return { size, parallel, found: true };
    return { size: contexts.at(-1)!, parallel: 1, found: false };
  };
  if (!gpu) {
    fraction = 0;
    ({ size: chosenContext, parallel: chosenParallel } = await largestFitting(async (size, parallel) => (await usage(() => 0, size, parallel)).ram <= ramBudget));
    reasons.push(`No GPU backend is in use, so everything runs on the CPU (${hardware.ram.total ? formatBytes(hardware.ram.total) : "unknown"} RAM).`);
  } else if (fixedLayers !== undefined) {
    fraction = -1;
    ({ size: chosenContext, parallel: chosenParallel } = await largestFitting(
      async (size, parallel) => (await usage((model) => Math.min(fixedLayers, model.layers), size, parallel)).vram <= vramBudget,
    ));
    reasons.push(`GPU layers are set to ${fixedLayers} by the user.`);
  } else {
    const best = await largestFitting(async (size, parallel) => (await usage((model) => model.layers, size, parallel)).vram <= vramBudget);
    const full = best.found ? best.size : undefined;
    if (full !== undefined) {
      fraction = 1;
      chosenContext = full;
      chosenParallel = best.parallel;
      reasons.push(
        full === contexts[0]
          ? `All layers fit in ${formatBytes(vramBudget)} of free VRAM with a ${full}-token context for each of the ${roles.length} roles.`
          : `All layers fit only with a smaller context: ${full} tokens per role instead of ${contexts[0]} (the profile needs at least ${minimum}).`,
      );
    } else {
      chosenContext = minimum;
      chosenParallel = 1;
      // Binary search over the share of layers offloaded (monotonic in VRAM).
      const steps = Math.max(...models.map((model) => model.layers), 1);
      let low = 0;
      let high = steps;
      while (low < high) {
        const mid = Math.ceil((low + high) / 2);
        if ((await usage(layersAt(mid / steps), chosenContext, 1)).vram <= vramBudget) low = mid;
        else high = mid - 1;
      }
      fraction = low / steps;
      reasons.push(
        low === 0
          ? `Not even one layer fits in ${formatBytes(vramBudget)} of free VRAM next to the ${roles.length} contexts, so everything runs on the CPU.`
          : `Only part of the model fits in ${formatBytes(vramBudget)} of free VRAM with ${roles.length} contexts of ${chosenContext} tokens: the other layers run on the CPU, which is slower.`,
      );
    }
  }

  const layersFor = (model: FitModelPlan) => (!gpu ? 0 : fraction < 0 ? Math.min(fixedLayers!, model.layers) : layersAt(fraction)(model));
  for (const model of models) model.gpuLayers = layersFor(model);
  const final = await usage(layersFor, chosenContext, chosenParallel);
  if (wantedParallel > 1)
    reasons.push(
      chosenParallel === wantedParallel
        ? `RT and CG each have ${chosenParallel} sequences, so ${chosenParallel} sub-tasks are generated in parallel.`
        : `Only ${chosenParallel} of the ${wantedParallel} parallel sub-task sequences fit${chosenParallel === 1 ? ", so sub-tasks are generated one after another" : ""}.`,
    );
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
    parallel: chosenParallel,
    models,
    gpuLayers: Object.fromEntries(models.map((model) => [model.path, model.gpuLayers])),
    vram: { total: hardware.vram.total, free: hardware.vram.free, needed: Math.round(final.vram) },
    ram: { total: hardware.ram.total, free: hardware.ram.free, needed: Math.round(final.ram) },
    summary: summaryParts.join(" "),
    ...(advice ? { advice } : {}),
  };
}
