/**
 * Model management behind the protocol and the CLI: pull plans, pulls with progress and
 * cancellation, removal, and GPU fit. The engine delegates its `gpiot/pullPlan`, `gpiot/pullModel`,
 * `gpiot/cancelPull`, `gpiot/removeModel` and `gpiot/modelFit` requests here.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { getLlamaGpuTypes, getModuleVersion, type Llama } from "node-llama-cpp";
import { roleNames } from "../schemas";
import { DEFAULT_CONTEXT_SIZE, type EngineSettings } from "../settings";
import { downloadTimeouts, ModelsError } from "./download";
import { detectHardware, insightsEstimator, planFit, type FitEstimator, type FitHardware, type FitPlan } from "./gpuFit";
import { findGpuRuntimes, type GpuRuntime, type GpuType } from "./gpuRuntimes";
import { loadManifest, resolveProfile, resolveSingleModel, type ResolvedModels } from "./manifest";
import { planPull, pullProfile, removeProfile, type PullPlan, type PullProgress, type PullResult, type RemoveResult } from "./modelStore";

export interface PullProgressEvent extends PullProgress {
  pullId: string;
}

export class ModelsService {
  private readonly pulls = new Map<string, AbortController>();
  private readonly listeners = new Set<(event: PullProgressEvent) => void>();
  private nextPull = 1;

  constructor(
    private readonly settings: EngineSettings,
    private readonly manifestPath: () => string,
    private readonly getLlama: () => Promise<Llama>,
    private readonly log: (message: string) => void = () => undefined,
  ) {}

  onPullProgress(listener: (event: PullProgressEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private store() {
    return { manifestPath: this.manifestPath(), modelsDir: this.settings.modelsDir };
  }

  plan(profile?: string): PullPlan {
    return planPull(profile ?? this.settings.profile, this.store());
  }

  async pull(params: { profile?: string; pullId?: string }): Promise<PullResult & { pullId: string }> {
    const pullId = params.pullId ?? `pull${this.nextPull++}`;
    if (this.pulls.has(pullId)) throw new ModelsError("INVALID_PARAMS", `A pull with id ${pullId} is already running.`);
    const plan = this.plan(params.profile);
    const controller = new AbortController();
    this.pulls.set(pullId, controller);
    let lastSent = 0;
    let lastPhase = "";
    try {
      const result = await pullProfile(plan, {
        offline: this.settings.offline,
        endpoint: this.settings.downloadEndpoint,
        timeouts: downloadTimeouts(this.settings.downloadTimeoutMs),
        signal: controller.signal,
        onNote: this.log,
        onProgress: (progress) => {
          // A few notifications a second are enough for a progress bar; phase changes always go out.
          const now = performance.now();
          if (progress.phase === lastPhase && progress.phase !== "done" && now - lastSent < 200) return;
          lastSent = now;
          lastPhase = progress.phase;
          for (const listener of this.listeners) listener({ ...progress, pullId });
        },
      });
      return { ...result, pullId };
    } finally {
      this.pulls.delete(pullId);
    }
  }

  cancelPull(pullId: string): { cancelled: boolean } {
    const controller = this.pulls.get(pullId);
    controller?.abort();
    return { cancelled: controller !== undefined };
  }

  async remove(profile: string): Promise<RemoveResult> {
    return removeProfile(profile, this.store());
  }

  resolve(profile?: string, modelPath?: string): ResolvedModels {
    if (modelPath) return resolveSingleModel(modelPath);
    const manifestPath = this.manifestPath();
    return resolveProfile(loadManifest(manifestPath), manifestPath, profile ?? this.settings.profile, { modelsDir: this.settings.modelsDir });
  }

  /** GPU fit of a profile (or one model file) whose files are on disk. */
  async fit(params: { profile?: string; modelPath?: string }, hooks: { hardware?: FitHardware; estimator?: FitEstimator } = {}): Promise<FitPlan> {
    const resolved = this.resolve(params.profile, params.modelPath);
    const missing = [...new Set(roleNames.flatMap((role) => [resolved.roles[role].modelPath, ...resolved.roles[role].adapters.map((adapter) => adapter.path)]))].filter((file) => !existsSync(file));
    const models = missing.filter((file) => roleNames.some((role) => resolved.roles[role].modelPath === file));
    if (models.length)
      throw new ModelsError(
        "MODEL_NOT_FOUND",
        `GPU fit reads the model files, and ${models.map((file) => path.basename(file)).join(", ")} ${models.length === 1 ? "is" : "are"} not downloaded yet: run \`gpiot models pull ${resolved.profile}\` first.`,
      );
    const llama = await this.getLlama();
    return planFit(
      { resolved, contextSize: this.settings.contextSize, gpuLayers: this.settings.gpuLayers, defaultContextSize: DEFAULT_CONTEXT_SIZE, parallel: this.settings.parallelSubTasks },
      hooks.hardware ?? (await detectHardware(llama)),
      hooks.estimator ?? insightsEstimator(llama),
    );
  }

  /** The machine as the engine sees it, and which GPU runtimes node-llama-cpp finds (gpiot/hardware). */
  async hardware(): Promise<Omit<FitHardware, "vramReserve"> & { platform: string; arch: string; runtimeVersion: string; supportedGpus: GpuType[]; gpuRuntimes: GpuRuntime[] }> {
    const { vramReserve: _reserve, ...hardware } = await detectHardware(await this.getLlama());
    const runtimeVersion = await getModuleVersion();
    const supportedGpus = (await getLlamaGpuTypes("supported")).filter((gpu): gpu is GpuType => gpu !== false);
    return { ...hardware, platform: process.platform, arch: process.arch, runtimeVersion, supportedGpus, gpuRuntimes: await findGpuRuntimes(runtimeVersion) };
  }

  /** Cancels every running pull. */
  dispose(): void {
    for (const controller of this.pulls.values()) controller.abort();
  }
}
