/**
 * Retrieval for the engine and the CLI: the index's add/list/remove/rebuild (one update at a time),
 * and search for the pipeline's prompts. Searching never throws: a missing index gives no passages,
 * an index that cannot be used (corrupt, another version, a changed embedding model) gives no or
 * lexical-only passages and a warning that says what to do.
 */
import { statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Llama } from "node-llama-cpp";
import { defaultModelsDir, expandHome, loadManifest, resolveProfile } from "../models/manifest";
import type { Passage } from "../pipeline/passages";
import type { Citation } from "../schemas";
import type { EngineSettings } from "../settings";
import { LlamaEmbedder, type Embedder, type EmbeddingModelRef } from "./embedder";
import {
  addSource,
  findSource,
  IndexError,
  openIndex,
  removeSource,
  SearchableIndex,
  updateIndex,
  withIndexLock,
  type IndexProgress,
  type IndexSource,
  type SourceKind,
  type UpdateSummary,
} from "./indexStore";

/**
 * The per-user index folder: $GPIOT_INDEX_DIR, else the platform's data folder
 * (~/.local/share/gpiot/index, $XDG_DATA_HOME/gpiot/index, ~/Library/Application Support/gpiot/index,
 * %LOCALAPPDATA%\gpiot\index). The VS Code extension passes its global storage folder instead.
 */
export function defaultIndexDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GPIOT_INDEX_DIR) return path.resolve(expandHome(env.GPIOT_INDEX_DIR));
  if (process.platform === "win32") return path.join(env.LOCALAPPDATA ?? path.join(os.homedir(), "AppData", "Local"), "gpiot", "index");
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Application Support", "gpiot", "index");
  return path.join(env.XDG_DATA_HOME ?? path.join(os.homedir(), ".local", "share"), "gpiot", "index");
}

/**
 * The embedding model: the setting's file, else the embedding model of the profile in use (a single
 * model file has none, so the manifest's default profile's is used), or null when there is none.
 */
export function resolveEmbeddingModel(settings: EngineSettings, manifestPath: string, profileName?: string): EmbeddingModelRef | null {
  if (settings.retrieval.embeddingModelPath) return { path: path.resolve(expandHome(settings.retrieval.embeddingModelPath)) };
  try {
    const manifest = loadManifest(manifestPath);
    const name = [profileName, settings.modelPath ? undefined : settings.profile].find((candidate) => candidate !== undefined && manifest.profiles.has(candidate));
    const resolved = resolveProfile(manifest, manifestPath, name, { modelsDir: settings.modelsDir ?? defaultModelsDir() });
    return resolved.embedding ?? null;
  } catch {
    return null;
  }
}

export interface SourceListing extends IndexSource {
  /** Documents with chunks; for a corpus, 1. */
  files: number;
  chunks: number;
  skipped: { path: string; reason: string }[];
  /** The folder or file is not there any more. */
  missing: boolean;
}

export interface IndexListing {
  dir: string;
  /** "none": nothing added yet; "ready"; "stale": sources were added but the index was never built, or it is corrupt (see problem). */
  state: "none" | "ready" | "stale";
  problem?: string;
  notes: string[];
  embedding: { key: string; dims: number } | null;
  sources: SourceListing[];
  chunks: number;
  vectors: number;
  updatedAt?: string;
}

export interface RetrievalServiceOptions {
  settings: EngineSettings;
  manifestPath: () => string;
  /** The profile whose models are loaded, if any (its embedding model is used). */
  loadedProfile?: () => string | undefined;
  runtime: () => Promise<Llama>;
  /** An embedding model to use instead of loading one (tests, the benchmark). */
  embedder?: Embedder;
  log?: (level: "warn" | "info", message: string) => void;
}

export interface RetrievalResult {
  passages: Passage[];
  warnings: string[];
}

export class RetrievalService {
  private searchable: { key: string; index: SearchableIndex } | null = null;
  private embedderLoad: { path: string; promise: Promise<Embedder | { error: string }> } | null = null;
  private updateTail: Promise<unknown> = Promise.resolve();
  private running: AbortController | null = null;
  private readonly progressListeners = new Set<(progress: IndexProgress & { operation: string }) => void>();
  private disposed = false;

  constructor(private readonly options: RetrievalServiceOptions) {}

  get settings(): EngineSettings["retrieval"] {
    return this.options.settings.retrieval;
  }

  get indexDir(): string {
    return this.settings.indexDir ? path.resolve(expandHome(this.settings.indexDir)) : defaultIndexDir();
  }

  onProgress(listener: (progress: IndexProgress & { operation: string }) => void): () => void {
    this.progressListeners.add(listener);
    return () => this.progressListeners.delete(listener);
  }

  /** The embedding model for this engine, loaded once; an error says why there is none. */
  private embedder(): Promise<Embedder | { error: string }> {
    if (this.options.embedder) return Promise.resolve(this.options.embedder);
    const ref = resolveEmbeddingModel(this.options.settings, this.options.manifestPath(), this.options.loadedProfile?.());
    if (!ref) return Promise.resolve({ error: "no embedding model is set up (the profile has none)" });
    if (this.embedderLoad?.path === ref.path) return this.embedderLoad.promise;
    const previous = this.embedderLoad;
    const promise = (async () => {
      const old = await previous?.promise;
      if (old && "dispose" in old) await old.dispose();
      try {
        return await LlamaEmbedder.load(await this.options.runtime(), ref, { threads: this.options.settings.threads });
      } catch (error) {
        return { error: (error as Error).message };
      }
    })();
    this.embedderLoad = { path: ref.path, promise };
    return promise;
  }

  private exclusive<T>(operation: string, task: (signal: AbortSignal, progress: (progress: IndexProgress) => void) => Promise<T>): Promise<T> {
    const run = async () => {
      if (this.disposed) throw new IndexError("CANCELLED", "The engine is shutting down.");
      const controller = new AbortController();
      this.running = controller;
      try {
        return await withIndexLock(this.indexDir, () => task(controller.signal, (progress) => this.progressListeners.forEach((listener) => listener({ ...progress, operation }))));
      } finally {
        this.running = null;
        this.searchable = null;
      }
    };
    const result = this.updateTail.then(run, run);
    this.updateTail = result.catch(() => undefined);
    return result;
  }

  /** Cancels the index update that is running (the index stays as it was). */
  cancel(): { cancelled: boolean } {
    const running = this.running;
    running?.abort();
    return { cancelled: running !== null };
  }

  list(): IndexListing {
    const state = openIndex(this.indexDir);
    const built = state.built;
    const sources = state.sources.map((source): SourceListing => {
      const files = built?.files.get(source.id);
      let missing = false;
      try {
        statSync(source.path);
      } catch {
        missing = true;
      }
      return {
        ...source,
        files: files ? [...files.values()].filter((file) => file.chunks > 0).length : 0,
        chunks: files ? [...files.values()].reduce((sum, file) => sum + file.chunks, 0) : 0,
        skipped: built?.skipped.get(source.id) ?? [],
        missing,
      };
    });
    const unbuilt = state.sources.some((source) => !built?.files.has(source.id));
    return {
      dir: state.dir,
      state: !state.sources.length && !built ? "none" : state.problem || unbuilt ? "stale" : "ready",
      ...(state.problem ? { problem: state.problem } : {}),
      notes: state.notes,
      embedding: built?.embedding ? { key: built.embedding.key, dims: built.embedding.dims } : null,
      sources,
      chunks: built?.chunks.length ?? 0,
      vectors: built?.vectors.size ?? 0,
    };
  }

  private async update(
    signal: AbortSignal,
    progress: (progress: IndexProgress) => void,
    prepare: (state: ReturnType<typeof openIndex>) => { state: ReturnType<typeof openIndex>; rescan: "all" | Set<string>; full?: boolean },
    embeddings: boolean,
  ): Promise<UpdateSummary> {
    const opened = openIndex(this.indexDir);
    const { state, rescan, full } = prepare(opened);
    const embedder = embeddings ? await this.embedder() : null;
    const summary = (
      await updateIndex(state, {
        rescan: state.problem ? "all" : rescan,
        full,
        embedder: embedder && !("error" in embedder) ? embedder : null,
        maxFileBytes: this.settings.maxFileMB * 1024 * 1024,
        signal,
        onProgress: progress,
      })
    ).summary;
    if (embedder && "error" in embedder) summary.notes.push(`No embeddings: ${embedder.error}.`);
    return summary;
  }

  /**
   * Adds a folder of documents (or a workspace folder) or a retrieval corpus and indexes it; adding
   * a source again updates it incrementally (only changed files are read, only new text embedded).
   */
  async add(params: { path: string; kind?: SourceKind; embeddings?: boolean }): Promise<{ source: IndexSource; existed: boolean; summary: UpdateSummary }> {
    const absolute = path.resolve(expandHome(params.path));
    let stats;
    try {
      stats = statSync(absolute);
    } catch {
      throw new IndexError("INDEX_INPUT_INVALID", `${absolute} does not exist; add a folder of PDF, Markdown or text documents, or a retrieval corpus (.corpus.jsonl).`);
    }
    let kind: SourceKind;
    if (stats.isDirectory()) {
      if (params.kind === "corpus") throw new IndexError("INDEX_INPUT_INVALID", `${absolute} is a folder; a corpus is the .corpus.jsonl file gpiot data writes.`);
      if (absolute === path.parse(absolute).root || absolute === os.homedir())
        throw new IndexError("INDEX_INPUT_INVALID", `${absolute} is too broad to index (${absolute === os.homedir() ? "your home folder" : "the filesystem root"}); add the folder that holds your documents.`);
      if (absolute === this.indexDir || absolute.startsWith(`${this.indexDir}${path.sep}`)) throw new IndexError("INDEX_INPUT_INVALID", `${absolute} is the index's own folder.`);
      kind = params.kind ?? "folder";
    } else if (stats.isFile() && /\.jsonl$/i.test(absolute)) {
      kind = "corpus";
    } else {
      throw new IndexError("INDEX_INPUT_INVALID", `${absolute} is ${stats.isFile() ? "a single file" : "not a folder or a file"}: add the folder that holds it, or a retrieval corpus (.corpus.jsonl) written by gpiot data.`);
    }
    let source: IndexSource | undefined;
    let existed = false;
    const summary = await this.exclusive("add", (signal, progress) =>
      this.update(
        signal,
        progress,
        (state) => {
          const added = addSource(state, kind, absolute);
          source = added.source;
          existed = added.existed;
          return { state: added.state, rescan: new Set([added.source.id]) };
        },
        params.embeddings ?? true,
      ),
    );
    return { source: source!, existed, summary };
  }

  /** Removes a source (by id or path) and its chunks. */
  async remove(params: { source: string }): Promise<{ removed: IndexSource; summary: UpdateSummary }> {
    let removed: IndexSource | undefined;
    const summary = await this.exclusive("remove", (signal, progress) =>
      this.update(
        signal,
        progress,
        (state) => {
          const found = findSource(state.sources, params.source);
          if (!found) throw new IndexError("INDEX_SOURCE_NOT_FOUND", `The index has no source ${params.source}; \`gpiot index list\` shows its sources.`);
          removed = found;
          return { state: removeSource(state, found), rescan: new Set() };
        },
        false,
      ),
    );
    return { removed: removed!, summary };
  }

  /** Reads every source again (incrementally; `full`: everything, embeddings included). */
  rebuild(params: { full?: boolean; embeddings?: boolean } = {}): Promise<UpdateSummary> {
    return this.exclusive("rebuild", (signal, progress) => this.update(signal, progress, (state) => ({ state, rescan: "all", full: params.full }), params.embeddings ?? true));
  }

  private loadSearchable(): { index: SearchableIndex | null; problem?: string } {
    const dir = this.indexDir;
    let key: string;
    try {
      const stats = statSync(path.join(dir, "index.json"));
      key = `${stats.mtimeMs}:${stats.size}`;
    } catch {
      const state = openIndex(dir);
      return { index: null, ...(state.sources.length ? { problem: state.problem ?? `The index in ${dir} was never built.` } : {}) };
    }
    if (this.searchable?.key === key) return { index: this.searchable.index };
    const state = openIndex(dir);
    if (!state.built) return { index: null, problem: state.problem };
    const index = new SearchableIndex(state.built, state.sources);
    this.searchable = { key, index };
    return { index };
  }

  /** The sources a search may use: the chosen ones, and workspace sources only of the open workspace. */
  private allowedSources(sources: IndexSource[]): Set<string> {
    const workspaces = new Set(this.settings.workspaceFolders.map((folder) => path.resolve(folder)));
    const chosen = this.settings.sources;
    return new Set(
      sources
        .filter((source) => source.kind !== "workspace" || workspaces.has(source.path))
        .filter((source) => !chosen.length || chosen.some((choice) => choice === source.id || path.resolve(expandHome(choice)) === source.path))
        .map((source) => source.id),
    );
  }

  /** The k best passages for a query. Never throws: problems come back as warnings. */
  async search(query: string, options: { k?: number; signal?: AbortSignal } = {}): Promise<RetrievalResult> {
    const warnings: string[] = [];
    if (!this.settings.enabled || this.disposed) return { passages: [], warnings };
    try {
      const { index, problem } = this.loadSearchable();
      if (!index) {
        if (problem) warnings.push(`The retrieval index cannot be used, so no passages were added: ${problem} Run \`gpiot index rebuild\` (VS Code: GPIoT: Rebuild Document Index).`);
        return { passages: [], warnings };
      }
      const allowed = this.allowedSources(index.sources);
      if (!allowed.size || !index.chunks.length) return { passages: [], warnings };
      let queryVector: Float32Array | null = null;
      if (index.embedding) {
        const embedder = await this.embedder();
        if ("error" in embedder) warnings.push(`Retrieval used words only (BM25): ${embedder.error}.`);
        else if (embedder.key !== index.embedding.key)
          warnings.push(`Retrieval used words only (BM25): the index was embedded with ${index.embedding.key}, but the embedding model now is ${embedder.key}. Run \`gpiot index rebuild\` to embed it again.`);
        else queryVector = await embedder.embedQuery(query, options.signal);
      }
      const hits = index.search(query, queryVector, options.k ?? this.settings.k, allowed);
      const sources = new Map(index.sources.map((source) => [source.id, source]));
      const passages = hits.map((hit, position): Passage => {
        const source = sources.get(hit.chunk.sourceId)!;
        const citation: Citation = {
          n: position + 1,
          chunkId: hit.chunk.id,
          sourceId: source.id,
          sourceKind: source.kind,
          path: source.kind === "corpus" ? source.path : path.join(source.path, ...hit.chunk.file.split("/")),
          document: hit.chunk.document,
          ...(hit.chunk.page ? { page: hit.chunk.page } : {}),
          ...(hit.chunk.section ? { section: hit.chunk.section } : {}),
          ...(hit.chunk.line ? { line: hit.chunk.line } : {}),
          ...(hit.chunk.package ? { package: hit.chunk.package } : {}),
          ...(hit.chunk.function ? { function: hit.chunk.function } : {}),
          score: Math.round(hit.score * 1e6) / 1e6,
          excerpt: hit.chunk.text.slice(0, 240),
        };
        return { citation, text: hit.chunk.text };
      });
      return { passages, warnings };
    } catch (error) {
      warnings.push(`Retrieval failed, so no passages were added: ${(error as Error).message}`);
      return { passages: [], warnings };
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.running?.abort();
    await this.updateTail;
    const loaded = await this.embedderLoad?.promise;
    if (loaded && "dispose" in loaded) await loaded.dispose();
    this.searchable = null;
  }
}
