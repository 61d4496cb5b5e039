/**
 * Embeddings through node-llama-cpp's embedding context, with the profile's small GGUF embedding
 * model (models/manifest.json, `embedding`). Texts longer than the context are cut to fit, a
 * model's query and document prefixes (e.g. bge's "Represent this sentence for searching relevant
 * passages: ") are added, and the thread count comes from the settings like every other context.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Llama, LlamaEmbeddingContext, LlamaModel } from "node-llama-cpp";
import { defaultThreadCount } from "../settings";

export interface EmbeddingModelRef {
  path: string;
  queryPrefix?: string;
  documentPrefix?: string;
}

/** What the index needs of an embedding model; tests may pass any deterministic one. */
export interface Embedder {
  /** Names the model: vectors of different keys are never compared. */
  readonly key: string;
  readonly dims: number;
  embedDocument(text: string, signal?: AbortSignal): Promise<Float32Array>;
  embedQuery(text: string, signal?: AbortSignal): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export class EmbeddingError extends Error {
  readonly code = "EMBEDDING_UNAVAILABLE";
  constructor(message: string) {
    super(message);
    this.name = "EmbeddingError";
  }
}

/** The key of a model file: its name and size (a re-download of the same file keeps its vectors). */
export async function embeddingModelKey(modelPath: string): Promise<string> {
  const info = await stat(modelPath);
  return `${path.basename(modelPath)}:${info.size}`;
}

/** Context size of the embedding context: the model's training context, kept between 128 and 2048 tokens. */
export const MAX_EMBEDDING_CONTEXT = 2048;

export class LlamaEmbedder implements Embedder {
  private constructor(
    readonly key: string,
    readonly dims: number,
    private readonly model: LlamaModel,
    private readonly context: LlamaEmbeddingContext,
    private readonly ref: EmbeddingModelRef,
    private readonly contextSize: number,
  ) {}

  static async load(llama: Llama, ref: EmbeddingModelRef, options: { threads?: number; gpuLayers?: number | "auto"; signal?: AbortSignal } = {}): Promise<LlamaEmbedder> {
    let key: string;
    try {
      const info = await stat(ref.path);
      if (!info.isFile()) throw new Error("not a regular file");
      key = await embeddingModelKey(ref.path);
    } catch (error) {
      throw new EmbeddingError(`The embedding model ${ref.path} is not there (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); fetch it with \`gpiot models pull <profile>\`.`);
    }
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: ref.path, gpuLayers: options.gpuLayers ?? "auto", loadSignal: options.signal });
    } catch (error) {
      throw new EmbeddingError(`llama.cpp could not load the embedding model ${ref.path}: ${(error as Error).message}`);
    }
    try {
      const contextSize = Math.max(128, Math.min(model.trainContextSize, MAX_EMBEDDING_CONTEXT));
      const context = await model.createEmbeddingContext({ contextSize, threads: options.threads ?? defaultThreadCount(), createSignal: options.signal });
      const probe = await context.getEmbeddingFor("dimension probe");
      if (probe.vector.length === 0) throw new Error("it returns empty vectors");
      return new LlamaEmbedder(key, probe.vector.length, model, context, ref, contextSize);
    } catch (error) {
      await model.dispose();
      throw new EmbeddingError(`The embedding model ${ref.path} cannot compute embeddings: ${(error as Error).message}`);
    }
  }

  private async embed(text: string, signal?: AbortSignal): Promise<Float32Array> {
    if (signal?.aborted) throw new EmbeddingError("Embedding cancelled.");
    let tokens = this.model.tokenize(text);
    // Cut to the context, leaving room for the BOS/EOS (or CLS/SEP) tokens the context adds.
    const added = this.context.calculateInputLength(tokens) - tokens.length;
    const limit = this.contextSize - added - 1;
    if (tokens.length > limit) tokens = tokens.slice(0, Math.max(1, limit));
    const embedding = await this.context.getEmbeddingFor(tokens);
    return Float32Array.from(embedding.vector);
  }

  embedDocument(text: string, signal?: AbortSignal): Promise<Float32Array> {
    return this.embed((this.ref.documentPrefix ?? "") + text, signal);
  }

  embedQuery(text: string, signal?: AbortSignal): Promise<Float32Array> {
    return this.embed((this.ref.queryPrefix ?? "") + text, signal);
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}
