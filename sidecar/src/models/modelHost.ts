/**
 * Holds the loaded models of the three roles. Each distinct GGUF file is loaded once; each role
 * gets its own context (with its LoRA adapters, fixed per context) and one sequence. With the
 * default profile that is one base model and three contexts: the memory-saving layout.
 */
import { stat } from "node:fs/promises";
import {
  readGgufFileInfo,
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
import type { GenerationRequest, GenerationResult, RoleModels, StopReason } from "../pipeline/structuredGeneration";
import type { CompletionRequest, PromptFormat } from "../pipeline/promptFormats/promptFormat";
import type { ResolvedModels } from "./manifest";
import { detectHardware, insightsEstimator, planFit, type FitEstimator, type FitHardware, type FitPlan } from "./gpuFit";

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
  roles: Record<RoleName, { modelPath: string; adapters: { path: string; scale: number }[]; contextSize: number; promptFormat: PromptFormat }>;
  distinctModels: number;
  threads: number;
  gpu: string | false;
  gpuLayers: Record<string, number>;
  loadMs: number;
  /** What GPU fit chose and why (absent when planning was not possible). */
  fit?: { backend: string; fits: boolean; contextSize: number; summary: string; advice?: string };
}

interface RoleRuntime {
  context: LlamaContext;
  sequence: LlamaContextSequence;
  /** Resolved once: resolving "auto" parses the model's chat template, which takes ~200 ms per session. */
  chatWrapper?: ChatWrapper;
}

export interface LoadOptions {
  signal?: AbortSignal;
  /** 0..1 over all files to load. */
  onProgress?(progress: number, message: string): void;
  /** Test hooks: the device and the memory estimates GPU fit plans with. */
  hardware?: FitHardware;
  estimator?: FitEstimator;
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
export async function checkModelFiles(resolved: ResolvedModels): Promise<Map<string, GgufInfo>> {
  const infos = new Map<string, GgufInfo>();
  for (const modelPath of new Set(roleNames.map((role) => resolved.roles[role].modelPath))) {
    const info = await readValidGguf(modelPath, "Model file");
    const type = (info.metadata as { general?: { type?: unknown } }).general?.type;
    if (type === "adapter")
      throw new ModelLoadError(
        "MODEL_INVALID",
        `${modelPath} is a LoRA adapter (its GGUF general.type is "adapter"), not a model. Pass the base model as the model and the adapter in a profile's roles.<role>.adapters (models/manifest.json).`,
      );
    infos.set(modelPath, info);
  }
  for (const role of roleNames) {
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

export class ModelHost implements RoleModels {
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  private disposed = false;

  private constructor(
    private readonly llama: Llama,
    private readonly models: Map<string, LlamaModel>,
    private readonly roles: Record<RoleName, RoleRuntime>,
    private readonly settings: EngineSettings,
    readonly info: LoadedModelInfo,
  ) {}

  static async load(llama: Llama, resolved: ResolvedModels, settings: EngineSettings, options: LoadOptions = {}): Promise<ModelHost> {
    const started = performance.now();
    const threads = settings.threads ?? resolved.threads ?? defaultThreadCount();
    let contextSize = settings.contextSize ?? resolved.contextSize ?? DEFAULT_CONTEXT_SIZE;

    const modelPaths = [...new Set(roleNames.map((role) => resolved.roles[role].modelPath))];
    await checkModelFiles(resolved);

    // GPU fit: layers per model and one context size so that all three roles fit the device.
    let fit: FitPlan | null = null;
    try {
      fit = await planFit(
        { resolved, contextSize: settings.contextSize, gpuLayers: settings.gpuLayers, defaultContextSize: DEFAULT_CONTEXT_SIZE },
        options.hardware ?? (await detectHardware(llama)),
        options.estimator ?? insightsEstimator(llama),
      );
      contextSize = fit.contextSize;
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
      const roles = {} as Record<RoleName, RoleRuntime>;
      for (const role of roleNames) {
        const { modelPath, adapters } = resolved.roles[role];
        const model = models.get(modelPath)!;
        let context: LlamaContext;
        try {
          context = await model.createContext({
            contextSize: Math.min(contextSize, model.trainContextSize),
            threads,
            sequences: 1,
            lora: adapters.length ? { adapters: adapters.map((adapter) => ({ filePath: adapter.path, scale: adapter.scale })) } : undefined,
            createSignal: options.signal,
          });
        } catch (error) {
          if (options.signal?.aborted) throw error;
          throw new ModelLoadError("MODEL_LOAD_FAILED", `Could not create the ${role.toUpperCase()} context on ${modelPath}: ${(error as Error).message}`);
        }
        contexts.push(context);
        roles[role] = { context, sequence: context.getSequence() };
      }
      options.onProgress?.(1, "Models ready");
      const info: LoadedModelInfo = {
        profile: resolved.profile,
        roles: Object.fromEntries(
          roleNames.map((role) => [role, { ...resolved.roles[role], promptFormat: resolved.roles[role].promptFormat ?? "json", contextSize: roles[role].context.contextSize }]),
        ) as LoadedModelInfo["roles"],
        distinctModels: models.size,
        threads,
        gpu: llama.gpu,
        gpuLayers: Object.fromEntries([...models].map(([modelPath, model]) => [modelPath, model.gpuLayers])),
        loadMs: Math.round(performance.now() - started),
        ...(fit ? { fit: { backend: fit.backend, fits: fit.fits, contextSize: fit.contextSize, summary: fit.summary, ...(fit.advice ? { advice: fit.advice } : {}) } } : {}),
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
    const role = this.roles[request.role];
    const grammar = await this.gbnfGrammar(request.gbnf);
    const completion = new LlamaCompletion({ contextSequence: role.sequence });
    const started = performance.now();
    let firstTokenMs = -1;
    let tokenCount = 0;
    try {
      const result = await completion.generateCompletionWithMeta(role.sequence.model.tokenize(request.prompt, true), {
        grammar,
        maxTokens: request.maxTokens,
        signal: request.signal,
        stopOnAbortSignal: true,
        temperature: this.settings.temperature,
        seed: this.settings.seed,
        onToken(tokens) {
          if (firstTokenMs < 0) firstTokenMs = performance.now() - started;
          tokenCount += tokens.length;
        },
        onTextChunk: request.onTextChunk,
      });
      return {
        text: result.response,
        stopReason: result.metadata.stopReason as StopReason,
        tokenCount,
        firstTokenMs: Math.max(0, firstTokenMs),
        totalMs: performance.now() - started,
      };
    } finally {
      completion.dispose({ disposeSequence: false });
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

  async generate(request: GenerationRequest): Promise<GenerationResult> {
    if (this.disposed) throw new Error("The models were unloaded");
    const role = this.roles[request.role];
    const grammar = await this.grammarFor(request.jsonSchema);
    const session = new LlamaChatSession({ contextSequence: role.sequence, systemPrompt: request.systemPrompt, autoDisposeSequence: false, chatWrapper: role.chatWrapper ?? "auto" });
    role.chatWrapper ??= session.chatWrapper;
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
    const started = performance.now();
    let firstTokenMs = -1;
    let tokenCount = 0;
    try {
      const result = await session.promptWithMeta(request.userPrompt, {
        grammar,
        maxTokens,
        signal: request.signal,
        stopOnAbortSignal: true,
        temperature: this.settings.temperature,
        seed: this.settings.seed,
        onToken(tokens) {
          if (firstTokenMs < 0) firstTokenMs = performance.now() - started;
          tokenCount += tokens.length;
        },
        onTextChunk: request.onTextChunk,
      });
      return {
        text: result.responseText,
        stopReason: result.stopReason as StopReason,
        tokenCount,
        firstTokenMs: Math.max(0, firstTokenMs),
        totalMs: performance.now() - started,
      };
    } finally {
      session.dispose({ disposeSequence: false });
    }
  }

  /** How many tokens `text` takes in a role's model (to fit a document into the role's context). */
  countTokens(role: RoleName, text: string): number {
    return this.roles[role].context.model.tokenize(text).length;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const role of roleNames) await this.roles[role].context.dispose();
    for (const model of this.models.values()) await model.dispose();
    this.grammars.clear();
  }
}
