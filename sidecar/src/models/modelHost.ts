/**
 * Holds the loaded models of the three roles (or of the roles that run locally). Each distinct GGUF
 * file is loaded once; each role gets its own context (with its LoRA adapters, fixed per context).
 * TD's context has one sequence; RT's and CG's have one per sub-task generated in parallel, and
 * node-llama-cpp evaluates the tokens of all busy sequences of a context in one batch. A
 * generation takes a free sequence of its role's context and waits when all are busy. With the
 * default profile that is one base model and three contexts: the memory-saving layout.
 */
import { stat } from "node:fs/promises";
import {
  readGgufFileInfo,
  resolveChatWrapper,
  LlamaChatSession,
  LlamaCompletion,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
  type ChatWrapper,
} from "node-llama-cpp";
import { roleNames, type RoleName } from "../schemas";
import { DEFAULT_CONTEXT_SIZE, defaultThreadCount, type EngineSettings } from "../settings";
import { answerBudget } from "../pipeline/contextBudget";
import type { CompletionRequest, PromptFormat } from "../pipeline/promptFormats/promptFormat";
import { CancelledError, type GenerationRequest, type GenerationResult, type RoleModels, type StopReason } from "../pipeline/structuredGeneration";
import type { ResolvedModels } from "./manifest";
import { detectHardware, insightsEstimator, planFit, sequencesPerRole, type FitEstimator, type FitHardware, type FitPlan } from "./gpuFit";

export class ModelLoadError extends Error {
  constructor(
    readonly code: "MODEL_NOT_FOUND" | "MODEL_INVALID" | "ADAPTER_MISMATCH" | "MODEL_LOAD_FAILED",
    message: string,
  ) {
    super(message);
    this.name = "ModelLoadError";
  }
}

export interface LoadedModelInfo {
  profile: string;
  roles: Record<RoleName, { modelPath: string; adapters: { path: string; scale: number }[]; contextSize: number; promptFormat: PromptFormat; sequences?: number; remote?: { baseUrl: string; model: string; adapter?: string } }>;
  distinctModels: number;
  threads: number;
  gpu: string | false;
  gpuLayers: Record<string, number>;
  loadMs: number;
  /** What GPU fit chose and why (absent when planning was not possible). */
  fit?: { backend: string; fits: boolean; contextSize: number; parallel?: number; summary: string; advice?: string };
  /** Sub-tasks generated at once (sequences of the RT and CG contexts, or concurrent requests). */
  parallelSubTasks?: number;
}

interface RoleRuntime {
  context: LlamaContext;
  sequences: LlamaContextSequence[];
  free: LlamaContextSequence[];
  /** Generations waiting for a free sequence, first come first served. */
  waiting: ((sequence: LlamaContextSequence) => void)[];
  /** Resolved once per model file at load: resolving "auto" renders the model's chat template many times (seconds on a busy CPU). */
  chatWrapper: ChatWrapper;
}

export interface LoadOptions {
  signal?: AbortSignal;
  /** 0..1 over all files to load. */
  onProgress?(progress: number, message: string): void;
  /** Test hooks: the device and the memory estimates GPU fit plans with. */
  hardware?: FitHardware;
  estimator?: FitEstimator;
  /** The roles to load (default: all three); the others run elsewhere (a remote backend). */
  roles?: readonly RoleName[];
}

function describeNonFile(info: Awaited<ReturnType<typeof stat>>): string {
  if (info.isDirectory()) return "a folder";
  if (info.isFIFO()) return "a named pipe (FIFO)";
  if (info.isSocket()) return "a socket";
  if (info.isCharacterDevice() || info.isBlockDevice()) return "a device";
  return "not a regular file";
}

async function readValidGguf(filePath: string, what: string) {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(filePath);
  } catch {
    throw new ModelLoadError("MODEL_NOT_FOUND", `${what} not found: ${filePath}. If it belongs to a profile with a download source, fetch it with \`gpiot models pull <profile>\` (or the "Download models" command in VS Code).`);
  }
  // Opening a FIFO or a device would wait for a writer, or read forever: only regular files are opened.
  if (!info.isFile()) throw new ModelLoadError("MODEL_INVALID", `${what} ${filePath} is ${describeNonFile(info)}, not a GGUF file.`);
  try {
    return await readGgufFileInfo(filePath, { readTensorInfo: true, logWarnings: false });
  } catch (error) {
    throw new ModelLoadError("MODEL_INVALID", `${what} ${filePath} is not a valid GGUF file: ${(error as Error).message}`);
  }
}

type GgufInfo = Awaited<ReturnType<typeof readGgufFileInfo>>;
/** The metadata read here; node-llama-cpp's type has no `general.type` (which adapters set). */
type GeneralMetadata = { general?: { architecture?: string; type?: string } };

/**
 * Reads every model and adapter file a load needs (headers only) and checks each is what its
 * place asks for: a model where a model goes, an adapter that fits its base. Returns the headers.
 */
export async function checkModelFiles(resolved: ResolvedModels, roles: readonly RoleName[] = roleNames): Promise<Map<string, GgufInfo>> {
  const infos = new Map<string, GgufInfo>();
  for (const modelPath of new Set(roles.map((role) => resolved.roles[role].modelPath))) {
    const info = await readValidGguf(modelPath, "Model file");
    const type = (info.metadata as { general?: { type?: unknown } }).general?.type;
    if (type === "adapter")
      throw new ModelLoadError(
        "MODEL_INVALID",
        `${modelPath} is a LoRA adapter (its GGUF general.type is "adapter"), not a model. Pass the base model as the model and the adapter in a profile's roles.<role>.adapters (models/manifest.json).`,
      );
    infos.set(modelPath, info);
  }
  for (const role of roles) {
    const { modelPath, adapters } = resolved.roles[role];
    for (const adapter of adapters) {
      const adapterInfo = await readValidGguf(adapter.path, `${role.toUpperCase()} adapter file`);
      checkAdapterMatchesBase(adapter.path, adapterInfo, modelPath, infos.get(modelPath)!);
    }
  }
  return infos;
}

/** Checks an adapter against its base before llama.cpp sees it, to name the mismatch plainly. */
export function checkAdapterMatchesBase(adapterPath: string, adapter: GgufInfo, basePath: string, base: GgufInfo): void {
  const metadata = adapter.metadata as GeneralMetadata;
  const baseArchitecture = (base.metadata as GeneralMetadata).general?.architecture;
  const adapterArchitecture = metadata.general?.architecture;
  if (metadata.general?.type !== undefined && metadata.general.type !== "adapter")
    throw new ModelLoadError("ADAPTER_MISMATCH", `${adapterPath} is not a LoRA adapter (general.type is "${metadata.general.type}").`);
  if (adapterArchitecture !== baseArchitecture)
    throw new ModelLoadError("ADAPTER_MISMATCH", `Adapter ${adapterPath} is for architecture "${adapterArchitecture}" but the base model ${basePath} is "${baseArchitecture}".`);
  const baseShapes = new Map((base.fullTensorInfo ?? base.tensorInfo ?? []).map((tensor) => [tensor.name, tensor.dimensions.map(Number)]));
  for (const tensor of adapter.fullTensorInfo ?? adapter.tensorInfo ?? []) {
    const match = tensor.name.match(/^(.*)\.lora_([ab])$/);
    if (!match) continue;
    const baseShape = baseShapes.get(match[1]);
    if (!baseShape)
      throw new ModelLoadError("ADAPTER_MISMATCH", `Adapter ${adapterPath} targets ${match[1]}, which the base model ${basePath} does not have.`);
    const shape = tensor.dimensions.map(Number);
    const [expected, actual] = match[2] === "a" ? [baseShape[0], shape[0]] : [baseShape[1], shape[1]];
    if (expected !== actual)
      throw new ModelLoadError(
        "ADAPTER_MISMATCH",
        `Adapter ${adapterPath} does not match the base model ${basePath}: ${tensor.name} has ${match[2] === "a" ? "input" : "output"} size ${actual}, the base's ${match[1]} has ${expected}.`,
      );
  }
}

/** Counts one generation's tokens and times its first token and its whole run. */
class GenerationMeter {
  private readonly started = performance.now();
  private firstTokenMs = -1;
  private tokenCount = 0;

  readonly onToken = (tokens: readonly unknown[]): void => {
    if (this.firstTokenMs < 0) this.firstTokenMs = performance.now() - this.started;
    this.tokenCount += tokens.length;
  };

  result(text: string, stopReason: string): GenerationResult {
    return { text, stopReason: stopReason as StopReason, tokenCount: this.tokenCount, firstTokenMs: Math.max(0, this.firstTokenMs), totalMs: performance.now() - this.started };
  }
}

export class ModelHost implements RoleModels {
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  private disposed = false;

  private constructor(
    private readonly llama: Llama,
    private readonly models: Map<string, LlamaModel>,
    private readonly roles: Partial<Record<RoleName, RoleRuntime>>,
    private readonly settings: EngineSettings,
    readonly info: LoadedModelInfo,
  ) {}

  /** Generations the role's context can run at once (its sequences); 0 for a role not loaded here. */
  parallelism(role: RoleName): number {
    return this.roles[role]?.sequences.length ?? 0;
  }

  static async load(llama: Llama, resolved: ResolvedModels, settings: EngineSettings, options: LoadOptions = {}): Promise<ModelHost> {
    const started = performance.now();
    const localRoles = options.roles ?? roleNames;
    if (localRoles.length === 0) throw new ModelLoadError("MODEL_LOAD_FAILED", "No role runs on the local models.");
    const threads = settings.threads ?? resolved.threads ?? defaultThreadCount();
    let contextSize = settings.contextSize ?? resolved.contextSize ?? DEFAULT_CONTEXT_SIZE;
    let parallel = settings.parallelSubTasks;

    const modelPaths = [...new Set(localRoles.map((role) => resolved.roles[role].modelPath))];
    await checkModelFiles(resolved, localRoles);

    // GPU fit: layers per model and one context size so that all three roles fit the device.
    let fit: FitPlan | null = null;
    try {
      fit = await planFit(
        { resolved, roles: localRoles, contextSize: settings.contextSize, gpuLayers: settings.gpuLayers, defaultContextSize: DEFAULT_CONTEXT_SIZE, parallel: settings.parallelSubTasks },
        options.hardware ?? (await detectHardware(llama)),
        options.estimator ?? insightsEstimator(llama),
      );
      contextSize = fit.contextSize;
      parallel = fit.parallel;
      options.onProgress?.(0, `GPU fit: ${fit.summary}${fit.advice ? ` ${fit.advice}` : ""}`);
    } catch (error) {
      options.onProgress?.(0, `GPU fit could not plan (${(error as Error).message}); letting node-llama-cpp choose the GPU layers.`);
    }

    const models = new Map<string, LlamaModel>();
    const contexts: LlamaContext[] = [];
    try {
      for (const [index, modelPath] of modelPaths.entries()) {
        options.onProgress?.(index / modelPaths.length, `Loading ${modelPath}`);
        const planned = fit && Object.hasOwn(fit.gpuLayers, modelPath) ? fit.gpuLayers[modelPath] : undefined;
        const load = (gpuLayers: number | "auto") =>
          llama.loadModel({
            modelPath,
            gpuLayers,
            loadSignal: options.signal,
            onLoadProgress: (progress) => options.onProgress?.((index + progress) / modelPaths.length, `Loading ${modelPath}`),
          });
        try {
          models.set(modelPath, await load(planned ?? (settings.gpuLayers === "auto" ? "auto" : settings.gpuLayers)));
        } catch (error) {
          if (options.signal?.aborted) throw error;
          if (planned !== undefined && planned > 0 && settings.gpuLayers === "auto") {
            // The estimate was too optimistic for this device: let node-llama-cpp fit the layers itself.
            options.onProgress?.(index / modelPaths.length, `Loading ${modelPath} with ${planned} GPU layers failed (${(error as Error).message}); retrying with automatic GPU layers.`);
            try {
              models.set(modelPath, await load("auto"));
              continue;
            } catch (retryError) {
              if (options.signal?.aborted) throw retryError;
            }
          }
          throw new ModelLoadError("MODEL_LOAD_FAILED", `llama.cpp could not load ${modelPath}: ${(error as Error).message}${fit?.advice ? ` ${fit.advice}` : ""}`);
        }
      }
      const roles: Partial<Record<RoleName, RoleRuntime>> = {};
      const sequenceCounts = sequencesPerRole(parallel);
      const chatWrappers = new Map([...models].map(([modelPath, model]) => [modelPath, resolveChatWrapper(model)]));
      for (const role of localRoles) {
        const { modelPath, adapters } = resolved.roles[role];
        const model = models.get(modelPath)!;
        let context: LlamaContext;
        try {
          context = await model.createContext({
            contextSize: Math.min(contextSize, model.trainContextSize),
            threads,
            sequences: sequenceCounts[role],
            lora: adapters.length ? { adapters: adapters.map((adapter) => ({ filePath: adapter.path, scale: adapter.scale })) } : undefined,
            createSignal: options.signal,
          });
        } catch (error) {
          if (options.signal?.aborted) throw error;
          throw new ModelLoadError("MODEL_LOAD_FAILED", `Could not create the ${role.toUpperCase()} context on ${modelPath}: ${(error as Error).message}`);
        }
        contexts.push(context);
        const sequences = Array.from({ length: sequenceCounts[role] }, () => context.getSequence());
        roles[role] = { context, sequences, free: [...sequences], waiting: [], chatWrapper: chatWrappers.get(modelPath)! };
      }
      options.onProgress?.(1, "Models ready");
      const info: LoadedModelInfo = {
        profile: resolved.profile,
        roles: Object.fromEntries(
          localRoles.map((role) => [role, { ...resolved.roles[role], promptFormat: resolved.roles[role].promptFormat ?? "json", contextSize: roles[role]!.context.contextSize, sequences: roles[role]!.sequences.length }]),
        ) as LoadedModelInfo["roles"],
        distinctModels: models.size,
        threads,
        gpu: llama.gpu,
        gpuLayers: Object.fromEntries([...models].map(([modelPath, model]) => [modelPath, model.gpuLayers])),
        loadMs: Math.round(performance.now() - started),
        ...(fit ? { fit: { backend: fit.backend, fits: fit.fits, contextSize: fit.contextSize, parallel: fit.parallel, summary: fit.summary, ...(fit.advice ? { advice: fit.advice } : {}) } } : {}),
        parallelSubTasks: parallel,
      };
      return new ModelHost(llama, models, roles, settings, info);
    } catch (error) {
      for (const context of contexts) await context.dispose();
      for (const model of models.values()) await model.dispose();
      throw error;
    }
  }

  promptFormat(role: RoleName): PromptFormat {
    return this.info.roles[role].promptFormat;
  }

  private gbnfGrammar(gbnf: string): Promise<LlamaGrammar> {
    const key = `gbnf:${gbnf}`;
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = this.llama.createGrammar({ grammar: gbnf });
      this.grammars.set(key, grammar);
    }
    return grammar;
  }

  /**
   * Completes a fully rendered prompt as raw text (no chat template), under a GBNF grammar. The text is
   * tokenized with special tokens read as such ("<s>" is BOS) and llama.cpp's own BOS goes in front, as
   * a Hugging Face tokenizer call does: this is how the GPIoT authors' scripts feed their prompts.
   */
  async complete(request: CompletionRequest): Promise<GenerationResult> {
    if (this.disposed) throw new Error("The models were unloaded");
    const role = this.localRole(request.role);
    const grammar = await this.gbnfGrammar(request.gbnf);
    const sequence = await this.acquire(role, request.signal);
    const completion = new LlamaCompletion({ contextSequence: sequence });
    const meter = new GenerationMeter();
    try {
      const result = await completion.generateCompletionWithMeta(sequence.model.tokenize(request.prompt, true), {
        ...this.sampling(request, grammar, request.maxTokens, meter),
      });
      return meter.result(result.response, result.metadata.stopReason);
    } finally {
      completion.dispose({ disposeSequence: false });
      this.release(role, sequence);
    }
  }

  private grammarFor(schema: GenerationRequest["jsonSchema"]): Promise<LlamaGrammar> {
    const key = JSON.stringify(schema);
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = this.llama.createGrammarForJsonSchema(schema as Parameters<Llama["createGrammarForJsonSchema"]>[0]);
      this.grammars.set(key, grammar);
    }
    return grammar;
  }

  private acquire(role: RoleRuntime, signal: AbortSignal | undefined): Promise<LlamaContextSequence> {
    const free = role.free.pop();
    if (free) return Promise.resolve(free);
    if (signal?.aborted) return Promise.reject(new CancelledError());
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        role.waiting.splice(role.waiting.indexOf(take), 1);
        reject(new CancelledError());
      };
      const take = (sequence: LlamaContextSequence) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(sequence);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      role.waiting.push(take);
    });
  }

  /** The options every generation shares: grammar, budget, cancel, the engine's sampling, streaming. */
  private sampling(request: { signal?: AbortSignal; onTextChunk?: (text: string) => void }, grammar: LlamaGrammar, maxTokens: number, meter: GenerationMeter) {
    return {
      grammar,
      maxTokens,
      signal: request.signal,
      stopOnAbortSignal: true,
      temperature: this.settings.temperature,
      seed: this.settings.seed,
      onToken: meter.onToken,
      onTextChunk: request.onTextChunk,
    };
  }

  private localRole(name: RoleName): RoleRuntime {
    const role = this.roles[name];
    if (!role) throw new Error(`The ${name.toUpperCase()} role does not run on the local models`);
    return role;
  }

  private release(role: RoleRuntime, sequence: LlamaContextSequence): void {
    const next = role.waiting.shift();
    if (next) next(sequence);
    else role.free.push(sequence);
  }

  async generate(request: GenerationRequest): Promise<GenerationResult> {
    if (this.disposed) throw new Error("The models were unloaded");
    const role = this.localRole(request.role);
    const grammar = await this.grammarFor(request.jsonSchema);
    const sequence = await this.acquire(role, request.signal);
    try {
      return await this.generateOn(role, sequence, grammar, request);
    } finally {
      this.release(role, sequence);
    }
  }

  private async generateOn(role: RoleRuntime, sequence: LlamaContextSequence, grammar: LlamaGrammar, request: GenerationRequest): Promise<GenerationResult> {
    const session = new LlamaChatSession({ contextSequence: sequence, systemPrompt: request.systemPrompt, autoDisposeSequence: false, chatWrapper: role.chatWrapper });
    let maxTokens: number;
    try {
      const { contextText } = session.chatWrapper.generateContextState({
        chatHistory: [
          { type: "system", text: request.systemPrompt },
          { type: "user", text: request.userPrompt },
          { type: "model", response: [] },
        ],
      });
      maxTokens = answerBudget(request.role, role.context.contextSize, contextText.tokenize(role.context.model.tokenizer).length, request.maxTokens);
    } catch (error) {
      session.dispose({ disposeSequence: false });
      throw error;
    }
    const meter = new GenerationMeter();
    try {
      const result = await session.promptWithMeta(request.userPrompt, this.sampling(request, grammar, maxTokens, meter));
      return meter.result(result.responseText, result.stopReason);
    } finally {
      session.dispose({ disposeSequence: false });
    }
  }

  /** How many tokens `text` takes in a role's model (to fit a document into the role's context). */
  countTokens(role: RoleName, text: string): number {
    return this.localRole(role).context.model.tokenize(text).length;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const role of roleNames) await this.roles[role]?.context.dispose();
    for (const model of this.models.values()) await model.dispose();
    this.grammars.clear();
  }
}
