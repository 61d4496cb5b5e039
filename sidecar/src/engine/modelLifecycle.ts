/**
 * The models the engine generates with: the llama.cpp runtime, the loaded ModelHost and its
 * state, and the remote servers of the roles configured to run on one (probed when "loaded").
 * Loads and unloads run one after another, so a reload can never race another load and leave a
 * model host behind; a job waiting for models stops waiting when it is cancelled.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import type { LoadedModelInfo, ModelEvent, ModelState, ParamsOf, ResultOf } from "../protocol";
import { roleNames, type RoleName } from "../schemas";
import type { EngineSettings } from "../settings";
import { defaultManifestPath, loadManifest, resolveProfile, resolveSingleModel, type ResolvedModels } from "../models/manifest";
import type { EngineModels } from "../models/engineModels";
import { ModelHost, checkModelFiles } from "../models/modelHost";
import { ComposedModels } from "../remote/composedModels";
import { RemoteRoleModels } from "../remote/remoteRoleModels";
import { ModelsService } from "../models/modelsService";
import { CancelledError, throwIfCancelled } from "../pipeline/structuredGeneration";
import { EngineError, toErrorInfo } from "./errors";

export type LogLevel = "error" | "warn" | "info" | "debug";

/** Resolves with the promise, or rejects with CancelledError as soon as the signal aborts. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new CancelledError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError());
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

export class ModelLifecycle {
  private llama: Promise<Llama> | null = null;
  private host: EngineModels | null = null;
  private state: ModelState = "none";
  /** The load or unload in progress; the next one starts when it has settled. */
  private exclusiveTail: Promise<unknown> = Promise.resolve();
  private pendingLoad: Promise<EngineModels> | null = null;
  private modelsService?: ModelsService;
  private disposed = false;
  private readonly disposing = new AbortController();

  constructor(
    private readonly settings: EngineSettings,
    private readonly emit: (event: ModelEvent) => void,
    private readonly log: (level: LogLevel, message: string) => void,
  ) {}

  get modelState(): ModelState {
    return this.state;
  }

  get info(): LoadedModelInfo | null {
    return this.host?.info ?? null;
  }

  /** The smallest context of the loaded roles, or undefined when no models are loaded. */
  loadedContextSize(): number | undefined {
    const roles = this.host ? Object.values(this.host.info.roles) : [];
    return roles.length ? Math.min(...roles.map((role) => role.contextSize)) : undefined;
  }

  manifestPath(): string {
    return this.settings.manifestPath ? path.resolve(this.settings.manifestPath) : defaultManifestPath();
  }

  /** Pull plans, pulls with progress, removal and GPU fit. */
  get modelManager(): ModelsService {
    this.modelsService ??= new ModelsService(this.settings, () => this.manifestPath(), () => this.runtime(), (message) => this.log("info", message));
    return this.modelsService;
  }

  runtime(): Promise<Llama> {
    const gpu = this.settings.gpu;
    this.llama ??= getLlama({
      gpu,
      build: "never",
      progressLogs: false,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => this.log(level === LlamaLogLevel.error || level === LlamaLogLevel.fatal ? "error" : "debug", `llama.cpp: ${message.trimEnd()}`),
    }).catch((error: unknown) => {
      if (gpu === "auto" || gpu === false) throw error;
      const backend = gpu === "cuda" ? "CUDA" : gpu === "vulkan" ? "Vulkan" : "Metal";
      throw new EngineError(
        "GPU_UNAVAILABLE",
        `${backend} is not available on this machine (node-llama-cpp has no working ${backend} build for ${process.platform}-${process.arch} here: ${(error as Error)?.name ?? error}). Use --gpu auto (setting gpu: "auto") to take the best backend there is, or --gpu cpu.`,
      );
    });
    return this.llama;
  }

  markGenerating(): void {
    if (this.host) this.state = "generating";
  }

  markIdle(): void {
    if (this.host) this.state = "ready";
  }

  listProfiles(): ResultOf<"listProfiles"> {
    const manifestPath = this.manifestPath();
    const manifest = loadManifest(manifestPath);
    return {
      manifestPath,
      defaultProfile: manifest.defaultProfile,
      profiles: [...manifest.profiles].map(([name, profile]) => {
        let missing: string[];
        try {
          const resolved = resolveProfile(manifest, manifestPath, name, { modelsDir: this.settings.modelsDir });
          missing = [...new Set(roleNames.flatMap((role) => [resolved.roles[role].modelPath, ...resolved.roles[role].adapters.map((adapter) => adapter.path)]))].filter((file) => !existsSync(file));
        } catch (error) {
          missing = [(error as Error).message];
        }
        return { name, description: profile.description, available: missing.length === 0, missing };
      }),
    };
  }

  resolve(params: ParamsOf<"loadModels">): ResolvedModels {
    const modelPath = params.modelPath ?? (params.profile ? undefined : this.settings.modelPath);
    if (modelPath) return resolveSingleModel(modelPath);
    const manifestPath = this.manifestPath();
    return resolveProfile(loadManifest(manifestPath), manifestPath, params.profile ?? this.settings.profile, { modelsDir: this.settings.modelsDir });
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.exclusiveTail.then(task, task);
    this.exclusiveTail = run.catch(() => undefined);
    return run;
  }

  /** The roles configured to run on a remote server. */
  remoteRoles(): RoleName[] {
    const roles = this.settings.remote?.roles ?? {};
    return roleNames.filter((role) => roles[role] !== undefined);
  }

  /** The roles that run on the local models. */
  localRoles(): RoleName[] {
    const remoteRoles = this.remoteRoles();
    return roleNames.filter((role) => !remoteRoles.includes(role));
  }

  private async loadModels(resolved: ResolvedModels | null, signal: AbortSignal): Promise<EngineModels> {
    const remoteRoles = this.remoteRoles();
    const localRoles = this.localRoles();
    const onProgress = (progress: number, message: string) => this.emit({ type: "loading", progress, message });
    if (remoteRoles.length === 0) return ModelHost.load(await this.runtime(), resolved!, this.settings, { signal, onProgress });
    const started = performance.now();
    const remote = await RemoteRoleModels.connect(this.settings, this.settings.remote!, { signal, onProgress: (message) => onProgress(0, message) });
    const local = localRoles.length ? await ModelHost.load(await this.runtime(), resolved!, this.settings, { signal, onProgress, roles: localRoles }) : null;
    return new ComposedModels(local, remote, this.settings.parallelSubTasks, Math.round(performance.now() - started));
  }

  /** Replaces the loaded models; `signal` stops the load (the previous models are already freed). */
  async load(params: ParamsOf<"loadModels">, signal?: AbortSignal): Promise<LoadedModelInfo> {
    // With every role on a server there is nothing local to resolve (no manifest or model file needed).
    const resolved = this.remoteRoles().length === roleNames.length ? null : this.resolve(params);
    const stop = signal ? AbortSignal.any([signal, this.disposing.signal]) : this.disposing.signal;
    const loading = this.exclusive(async () => {
      if (this.disposed) throw new CancelledError("The engine is shutting down");
      throwIfCancelled(stop);
      const previous = this.host;
      this.host = null;
      await previous?.dispose();
      this.state = "loading";
      this.emit({ type: "loading", progress: 0, message: resolved ? `Loading profile ${resolved.profile}` : "Connecting to the remote servers" });
      try {
        // The files first: a wrong --model is named before the llama.cpp runtime starts.
        if (resolved) await checkModelFiles(resolved, this.localRoles());
        throwIfCancelled(stop);
        const host = await this.loadModels(resolved, stop);
        if (this.disposed) {
          await host.dispose();
          throw new CancelledError("The engine is shutting down");
        }
        this.host = host;
        this.state = "ready";
        this.emit({ type: "loaded", info: host.info });
        this.log("info", `Loaded profile ${host.info.profile}: ${host.info.distinctModels} model file(s), threads ${host.info.threads}, gpu ${host.info.gpu}, ${host.info.parallelSubTasks ?? 1} parallel sub-task(s), ${host.info.loadMs} ms`);
        return host;
      } catch (error) {
        const cancelled = stop.aborted || error instanceof CancelledError;
        this.state = cancelled ? "none" : "error";
        this.emit(cancelled ? { type: "unloaded" } : { type: "loadFailed", error: toErrorInfo(error) });
        throw cancelled ? new CancelledError() : error;
      }
    });
    this.pendingLoad = loading;
    try {
      return (await loading).info;
    } finally {
      if (this.pendingLoad === loading) this.pendingLoad = null;
    }
  }

  async unload(): Promise<boolean> {
    return this.exclusive(async () => {
      const host = this.host;
      this.host = null;
      this.state = "none";
      await host?.dispose();
      if (host) this.emit({ type: "unloaded" });
      return host !== null;
    });
  }

  /** The loaded models; waits for a load in progress, or loads the configured ones. */
  async require(signal?: AbortSignal): Promise<EngineModels> {
    for (;;) {
      throwIfCancelled(signal);
      if (this.host && !this.pendingLoad) return this.host;
      if (this.pendingLoad) {
        try {
          return await untilAborted(this.pendingLoad, signal);
        } catch (error) {
          // Someone else's load was cancelled: load for this job instead, unless it is cancelled too.
          if (signal?.aborted || !(error instanceof CancelledError)) throw error;
          continue;
        }
      }
      await this.load({}, signal);
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.disposing.abort();
    this.modelsService?.dispose();
    await this.exclusiveTail;
    const host = this.host;
    this.host = null;
    await host?.dispose();
    const llama = await this.llama?.catch(() => null);
    await llama?.dispose();
  }
}
