/**
 * The retrieval index on disk, in a per-user folder (indexDir.ts):
 *
 *   sources.json         what the user added: folders, corpora, workspace folders (the only input
 *                        that cannot be rebuilt, so it is its own small file)
 *   index.json           the built index: format version, generation, embedding model, per source
 *                        every file's SHA-256 and chunk count, the files skipped and why
 *   g000012/chunks.jsonl the chunks of generation 12 (text and where it came from)
 *   g000012/vectors.bin  their embeddings, keyed by the SHA-256 of the embedded text
 *   index.lock           held while an update runs (the process id), so two processes never write at once
 *
 * An update writes a new generation folder, then index.json (a temporary file renamed into place),
 * then deletes the old generation: a reader sees the old index or the new one, never half of one,
 * and an update that is cancelled or killed leaves the old index as it was.
 *
 * Updates are incremental: a file whose SHA-256 is unchanged keeps its chunks without being read
 * again, and a chunk whose text was embedded before keeps its vector; only new text is embedded.
 * A corrupt index.json, or one from another format version, is rebuilt from sources.json; a corrupt
 * sources.json is moved aside (sources.json.corrupt-<time>) so nothing the user wrote is lost.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { DataError } from "../data/errors";
import { writeFileAtomic } from "../data/workJournal";
import { corpusChunks, documentChunks, listDocuments, readDocumentBytes, sha256Hex, type ChunkDraft, type SkippedFile } from "./documents";
import type { Embedder } from "./embedder";
import { fuseRankings } from "./hybrid";
import { Bm25Index } from "./lexical";
import { FlatVectorStore } from "./vectorStore";
import { processAlive } from "../shared/processAlive";

export const INDEX_FORMAT = "gpiot-index";
/** Bumped whenever the files change shape; an index of another version is rebuilt from its sources. */
export const INDEX_FORMAT_VERSION = 1;
const SOURCES_FORMAT = "gpiot-index-sources";
const VECTORS_MAGIC = "GPIOTVEC";

export const SourceKindSchema = z.enum(["folder", "corpus", "workspace"]);
export type SourceKind = z.infer<typeof SourceKindSchema>;

export const IndexSourceSchema = z.object({
  id: z.string().regex(/^s[0-9a-f]{10}$/),
  kind: SourceKindSchema,
  /** Absolute path of the folder or corpus file. */
  path: z.string().min(1),
  addedAt: z.string(),
});
export type IndexSource = z.infer<typeof IndexSourceSchema>;

const SourcesFileSchema = z.object({ format: z.literal(SOURCES_FORMAT), version: z.literal(1), sources: z.array(IndexSourceSchema) });

const SkippedSchema = z.object({ path: z.string(), reason: z.string() });
const FileStateSchema = z.object({ file: z.string(), hash: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative(), chunks: z.number().int().nonnegative() });
type FileState = z.infer<typeof FileStateSchema>;

const IndexFileSchema = z.object({
  format: z.literal(INDEX_FORMAT),
  version: z.number().int(),
  generation: z.number().int().nonnegative(),
  data: z.string().regex(/^g\d{6,}$/),
  updatedAt: z.string(),
  embedding: z.object({ key: z.string(), dims: z.number().int().positive(), model: z.string() }).nullable(),
  sources: z.array(z.object({ id: z.string(), files: z.array(FileStateSchema), skipped: z.array(SkippedSchema) })),
  chunks: z.number().int().nonnegative(),
  vectors: z.number().int().nonnegative(),
});
type IndexFile = z.infer<typeof IndexFileSchema>;

export const IndexChunkSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{24}$/),
  sourceId: z.string(),
  /** The file of the source it was read from (relative to a folder source; the corpus file's name). */
  file: z.string(),
  /** What to call the document in a citation (for a corpus chunk: its paper or function). */
  document: z.string(),
  text: z.string().min(1),
  /** Title and section put before the text when it is embedded and matched. */
  label: z.string().optional(),
  page: z.number().int().positive().optional(),
  section: z.string().optional(),
  line: z.number().int().positive().optional(),
  package: z.string().optional(),
  function: z.string().optional(),
  /** SHA-256 (32 hex digits) of the embedded text: the key of its vector. */
  textHash: z.string().regex(/^[0-9a-f]{32}$/),
});
export type IndexChunk = z.infer<typeof IndexChunkSchema>;

export class IndexError extends Error {
  constructor(
    readonly code: "INDEX_BUSY" | "INDEX_INPUT_INVALID" | "INDEX_SOURCE_NOT_FOUND" | "CANCELLED",
    message: string,
  ) {
    super(message);
    this.name = "IndexError";
  }
}

export function indexText(chunk: Pick<IndexChunk, "label" | "text">): string {
  return chunk.label ? `${chunk.label}\n${chunk.text}` : chunk.text;
}

export function sourceIdFor(kind: SourceKind, absolutePath: string): string {
  return `s${sha256Hex(`${kind === "corpus" ? "corpus" : "folder"}\u0000${absolutePath}`, 10)}`;
}

/** The built part of an index, as read from disk. */
export interface BuiltIndex {
  generation: number;
  embedding: { key: string; dims: number; model: string } | null;
  files: Map<string, Map<string, FileState>>;
  skipped: Map<string, SkippedFile[]>;
  chunks: IndexChunk[];
  vectors: Map<string, Float32Array>;
}

export interface IndexState {
  dir: string;
  sources: IndexSource[];
  built: BuiltIndex | null;
  /** Why the built index could not be used (corrupt, another version, missing data); it is rebuilt at the next update. */
  problem?: string;
  /** What was done on opening it (a corrupt sources.json moved aside). */
  notes: string[];
}

function dataDirName(generation: number): string {
  return `g${String(generation).padStart(6, "0")}`;
}

/** The generation of the index on disk (cheap: index.json only), or null when there is none. */
export function readGeneration(dir: string): { generation: number; updatedAt: string } | null {
  try {
    const parsed = IndexFileSchema.safeParse(JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8")));
    return parsed.success ? { generation: parsed.data.generation, updatedAt: parsed.data.updatedAt } : null;
  } catch {
    return null;
  }
}

function readSources(dir: string, notes: string[]): IndexSource[] {
  const file = path.join(dir, "sources.json");
  if (!existsSync(file)) return [];
  let problem: string;
  try {
    const parsed = SourcesFileSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
    if (parsed.success) return parsed.data.sources;
    problem = `${parsed.error.issues[0].path.join(".") || "$"}: ${parsed.error.issues[0].message}`;
  } catch (error) {
    problem = (error as Error).message;
  }
  const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  try {
    renameSync(file, aside);
    notes.push(`The index's list of sources ${file} was unreadable (${problem}); it was moved to ${aside} and the index starts empty: add your folders again.`);
  } catch {
    notes.push(`The index's list of sources ${file} is unreadable (${problem}) and could not be moved aside; the index is treated as empty.`);
  }
  return [];
}

function writeSources(dir: string, sources: IndexSource[]): void {
  writeFileAtomic(path.join(dir, "sources.json"), `${JSON.stringify({ format: SOURCES_FORMAT, version: 1, sources }, null, 2)}\n`);
}

function readVectors(file: string, dims: number): Map<string, Float32Array> {
  const vectors = new Map<string, Float32Array>();
  const bytes = readFileSync(file);
  if (bytes.length < 20 || bytes.toString("latin1", 0, 8) !== VECTORS_MAGIC) throw new Error(`${file} is not a vectors file`);
  const version = bytes.readUInt32LE(8);
  const fileDims = bytes.readUInt32LE(12);
  const count = bytes.readUInt32LE(16);
  if (version !== 1 || fileDims !== dims) throw new Error(`${file} has version ${version} and dimension ${fileDims}; expected 1 and ${dims}`);
  const entry = 16 + dims * 4;
  if (bytes.length !== 20 + count * entry) throw new Error(`${file} has ${bytes.length} bytes; ${count} vectors of dimension ${dims} take ${20 + count * entry}`);
  for (let i = 0; i < count; i++) {
    const offset = 20 + i * entry;
    const hash = bytes.toString("hex", offset, offset + 16);
    const vector = new Float32Array(dims);
    for (let d = 0; d < dims; d++) vector[d] = bytes.readFloatLE(offset + 16 + d * 4);
    vectors.set(hash, vector);
  }
  return vectors;
}

function encodeVectors(vectors: Map<string, Float32Array>, dims: number): Buffer {
  const entry = 16 + dims * 4;
  const bytes = Buffer.alloc(20 + vectors.size * entry);
  bytes.write(VECTORS_MAGIC, 0, "latin1");
  bytes.writeUInt32LE(1, 8);
  bytes.writeUInt32LE(dims, 12);
  bytes.writeUInt32LE(vectors.size, 16);
  let offset = 20;
  for (const [hash, vector] of vectors) {
    bytes.write(hash, offset, "hex");
    for (let d = 0; d < dims; d++) bytes.writeFloatLE(vector[d], offset + 16 + d * 4);
    offset += entry;
  }
  return bytes;
}

function readBuilt(dir: string, index: IndexFile): BuiltIndex {
  const dataDir = path.join(dir, index.data);
  const chunks: IndexChunk[] = [];
  const text = readFileSync(path.join(dataDir, "chunks.jsonl"), "utf8");
  let lineNumber = 0;
  for (const line of text.split("\n")) {
    lineNumber++;
    if (!line) continue;
    const parsed = IndexChunkSchema.safeParse(JSON.parse(line));
    if (!parsed.success) throw new Error(`chunks.jsonl line ${lineNumber}: ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`);
    chunks.push(parsed.data);
  }
  if (chunks.length !== index.chunks) throw new Error(`chunks.jsonl holds ${chunks.length} chunks; index.json says ${index.chunks}`);
  const vectors = index.embedding ? readVectors(path.join(dataDir, "vectors.bin"), index.embedding.dims) : new Map<string, Float32Array>();
  const files = new Map<string, Map<string, FileState>>();
  const skipped = new Map<string, SkippedFile[]>();
  for (const source of index.sources) {
    files.set(source.id, new Map(source.files.map((state) => [state.file, state])));
    skipped.set(source.id, source.skipped);
  }
  return { generation: index.generation, embedding: index.embedding, files, skipped, chunks, vectors };
}

/** Opens the index folder; never throws for a broken index: its problem is reported and it is rebuilt at the next update. */
export function openIndex(dir: string): IndexState {
  const notes: string[] = [];
  const sources = readSources(dir, notes);
  const indexFile = path.join(dir, "index.json");
  if (!existsSync(indexFile)) return { dir, sources, built: null, notes, ...(sources.length ? { problem: `The index in ${dir} has sources but was never built completely.` } : {}) };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(indexFile, "utf8"));
  } catch (error) {
    return { dir, sources, built: null, notes, problem: `The index in ${dir} is corrupt (index.json: ${(error as Error).message}).` };
  }
  const version = (raw as { version?: unknown } | null)?.version;
  if (typeof raw === "object" && raw !== null && (raw as { format?: unknown }).format === INDEX_FORMAT && typeof version === "number" && version !== INDEX_FORMAT_VERSION)
    return { dir, sources, built: null, notes, problem: `The index in ${dir} was written by ${version < INDEX_FORMAT_VERSION ? "an older" : "a newer"} version of GPIoT (format ${version}; this one reads format ${INDEX_FORMAT_VERSION}).` };
  const parsed = IndexFileSchema.safeParse(raw);
  if (!parsed.success) return { dir, sources, built: null, notes, problem: `The index in ${dir} is corrupt (index.json at ${parsed.error.issues[0].path.join(".") || "$"}: ${parsed.error.issues[0].message}).` };
  try {
    return { dir, sources, built: readBuilt(dir, parsed.data), notes };
  } catch (error) {
    return { dir, sources, built: null, notes, problem: `The index in ${dir} is corrupt (${(error as Error).message}).` };
  }
}

// ---- the lock ----

/** Runs `task` holding index.lock; a lock left by a process that is gone is taken over. */
export async function withIndexLock<T>(dir: string, task: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true });
  const lock = path.join(dir, "index.lock");
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(lock, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }), { flag: "wx" });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 2) throw error;
      let holder: number | undefined;
      try {
        holder = (JSON.parse(readFileSync(lock, "utf8")) as { pid?: number }).pid;
      } catch {
        holder = undefined;
      }
      if (typeof holder === "number" && holder !== process.pid && processAlive(holder))
        throw new IndexError("INDEX_BUSY", `The index in ${dir} is being updated by another GPIoT process (pid ${holder}); try again when it has finished.`);
      rmSync(lock, { force: true });
    }
  }
  try {
    return await task();
  } finally {
    rmSync(lock, { force: true });
  }
}

// ---- updates ----

export interface IndexProgress {
  phase: "read" | "embed" | "write";
  done: number;
  total: number;
  /** The file being read. */
  file?: string;
}

export interface UpdateOptions {
  /** Sources to read again (incrementally); the others keep their chunks as they are. */
  rescan: "all" | ReadonlySet<string>;
  /** Ignore every previous chunk and vector: read and embed everything again. */
  full?: boolean;
  /** null: no embedding model (lexical retrieval only); existing vectors of the same model are kept. */
  embedder: Embedder | null;
  maxFileBytes: number;
  signal?: AbortSignal;
  onProgress?(progress: IndexProgress): void;
}

export interface UpdateSummary {
  sources: number;
  chunks: number;
  vectors: number;
  files: { read: number; unchanged: number; removed: number };
  skipped: SkippedFile[];
  chunksAdded: number;
  chunksRemoved: number;
  /** Chunks whose text was embedded in this update (new or changed text). */
  embedded: number;
  embedding: { key: string; dims: number } | null;
  notes: string[];
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new IndexError("CANCELLED", "The index update was cancelled; the index is as it was before.");
}

function chunkId(sourceId: string, file: string, ordinal: number, text: string): string {
  return sha256Hex(`${sourceId}\u0000${file}\u0000${ordinal}\u0000${text}`, 24);
}

function toIndexChunks(sourceId: string, file: string, drafts: ChunkDraft[]): IndexChunk[] {
  return drafts.map((draft, ordinal) => {
    const label = draft.indexText === draft.text ? undefined : draft.indexText.slice(0, draft.indexText.length - draft.text.length - 1);
    return {
      id: chunkId(sourceId, file, ordinal, draft.text),
      sourceId,
      file,
      document: draft.document,
      text: draft.text,
      ...(label ? { label } : {}),
      ...(draft.page ? { page: draft.page } : {}),
      ...(draft.section ? { section: draft.section } : {}),
      ...(draft.line ? { line: draft.line } : {}),
      ...(draft.package ? { package: draft.package } : {}),
      ...(draft.function ? { function: draft.function } : {}),
      textHash: sha256Hex(draft.indexText, 32),
    };
  });
}

interface SourceBuild {
  files: Map<string, FileState>;
  skipped: SkippedFile[];
  chunks: IndexChunk[];
}

async function scanSource(
  source: IndexSource,
  previous: { files: Map<string, FileState>; chunks: Map<string, IndexChunk[]> } | null,
  options: UpdateOptions,
  counts: UpdateSummary["files"],
  progress: { done: number; total: number },
): Promise<SourceBuild> {
  const build: SourceBuild = { files: new Map(), skipped: [], chunks: [] };
  const reuse = (file: string, hash: string): IndexChunk[] | null => {
    const state = previous?.files.get(file);
    const chunks = previous?.chunks.get(file);
    return state && state.hash === hash && chunks && chunks.length === state.chunks ? chunks : null;
  };
  const readOne = async (file: string, absolute: string, read: (bytes: Buffer) => Promise<ChunkDraft[]>) => {
    throwIfAborted(options.signal);
    options.onProgress?.({ phase: "read", done: progress.done, total: progress.total, file: absolute });
    progress.done++;
    let bytes: Buffer;
    try {
      bytes = readDocumentBytes(absolute, options.maxFileBytes);
    } catch (error) {
      if (!(error instanceof DataError)) throw error;
      build.skipped.push({ path: absolute, reason: error.message });
      return;
    }
    const hash = sha256Hex(bytes);
    const kept = reuse(file, hash);
    if (kept) {
      counts.unchanged++;
      build.files.set(file, { file, hash, size: bytes.length, chunks: kept.length });
      build.chunks.push(...kept);
      return;
    }
    let drafts: ChunkDraft[];
    try {
      drafts = await read(bytes);
    } catch (error) {
      if (!(error instanceof DataError)) throw error;
      build.skipped.push({ path: absolute, reason: error.message.startsWith(`${absolute}: `) ? error.message.slice(absolute.length + 2) : error.message });
      return;
    }
    counts.read++;
    const chunks = toIndexChunks(source.id, file, drafts);
    build.files.set(file, { file, hash, size: bytes.length, chunks: chunks.length });
    build.chunks.push(...chunks);
  };

  if (source.kind === "corpus") {
    progress.total += 1;
    const file = path.basename(source.path);
    await readOne(file, source.path, (bytes) => {
      const read = corpusChunks(source.path, bytes);
      if (read.invalid.count) build.skipped.push({ path: source.path, reason: `${read.invalid.count} line(s) are not corpus chunks and were left out (first: ${read.invalid.first})` });
      return Promise.resolve(read.chunks);
    });
  } else {
    const listing = listDocuments(source.path);
    build.skipped.push(...listing.skipped);
    progress.total += listing.files.length;
    for (const document of listing.files) await readOne(document.relative, document.path, (bytes) => documentChunks(document, bytes));
  }
  if (previous) for (const file of previous.files.keys()) if (!build.files.has(file) && !build.skipped.some((entry) => entry.path === path.join(source.path, file))) counts.removed++;
  return build;
}

/**
 * Reads the sources into a new generation of the index and writes it. Call it holding the lock
 * (withIndexLock); `state` is the index as opened before.
 */
export async function updateIndex(state: IndexState, options: UpdateOptions): Promise<{ summary: UpdateSummary; state: IndexState }> {
  const { dir, sources } = state;
  const old = options.full ? null : state.built;
  const summary: UpdateSummary = {
    sources: sources.length,
    chunks: 0,
    vectors: 0,
    files: { read: 0, unchanged: 0, removed: 0 },
    skipped: [],
    chunksAdded: 0,
    chunksRemoved: 0,
    embedded: 0,
    embedding: null,
    notes: [...state.notes],
  };
  if (state.problem) summary.notes.push(`${state.problem} It was rebuilt from its sources.`);

  const oldChunksBySource = new Map<string, Map<string, IndexChunk[]>>();
  for (const chunk of old?.chunks ?? []) {
    let byFile = oldChunksBySource.get(chunk.sourceId);
    if (!byFile) oldChunksBySource.set(chunk.sourceId, (byFile = new Map()));
    byFile.set(chunk.file, [...(byFile.get(chunk.file) ?? []), chunk]);
  }

  const progress = { done: 0, total: 0 };
  const files = new Map<string, Map<string, FileState>>();
  const skipped = new Map<string, SkippedFile[]>();
  const chunks: IndexChunk[] = [];
  for (const source of sources) {
    throwIfAborted(options.signal);
    const previousFiles = old?.files.get(source.id);
    const previousChunks = oldChunksBySource.get(source.id);
    const rescan = options.rescan === "all" || options.rescan.has(source.id) || !previousFiles;
    if (!rescan) {
      files.set(source.id, previousFiles);
      skipped.set(source.id, old?.skipped.get(source.id) ?? []);
      for (const state of previousFiles.values()) chunks.push(...(previousChunks?.get(state.file) ?? []));
      continue;
    }
    if (!existsSync(source.path)) {
      const reason = `is not there any more (an unplugged drive?)${previousFiles?.size ? "; its chunks were kept" : ""}; remove it with \`gpiot index remove\` if it is gone for good`;
      summary.skipped.push({ path: source.path, reason });
      files.set(source.id, previousFiles ?? new Map());
      skipped.set(source.id, [{ path: source.path, reason }]);
      for (const state of previousFiles?.values() ?? []) chunks.push(...(previousChunks?.get(state.file) ?? []));
      continue;
    }
    const build = await scanSource(source, previousFiles ? { files: previousFiles, chunks: previousChunks ?? new Map() } : null, options, summary.files, progress);
    files.set(source.id, build.files);
    skipped.set(source.id, build.skipped);
    summary.skipped.push(...build.skipped);
    chunks.push(...build.chunks);
  }

  const oldIds = new Set((state.built?.chunks ?? []).map((chunk) => chunk.id));
  const newIds = new Set(chunks.map((chunk) => chunk.id));
  summary.chunksAdded = chunks.filter((chunk) => !oldIds.has(chunk.id)).length;
  summary.chunksRemoved = [...oldIds].filter((id) => !newIds.has(id)).length;

  // Vectors: reuse what this model embedded before; embed the rest.
  let embedding: BuiltIndex["embedding"] = null;
  const vectors = new Map<string, Float32Array>();
  if (options.embedder) {
    const { key, dims } = options.embedder;
    embedding = { key, dims, model: key.split(":")[0] };
    const reusable = old?.embedding?.key === key && old.embedding.dims === dims ? old.vectors : new Map<string, Float32Array>();
    if (old?.embedding && old.embedding.key !== key) summary.notes.push(`The embedding model changed (${old.embedding.key} -> ${key}): every chunk is embedded again.`);
    const missing = new Map<string, IndexChunk>();
    for (const chunk of chunks) {
      const known = reusable.get(chunk.textHash);
      if (known) vectors.set(chunk.textHash, known);
      else if (!vectors.has(chunk.textHash)) missing.set(chunk.textHash, chunk);
    }
    let done = 0;
    for (const [hash, chunk] of missing) {
      throwIfAborted(options.signal);
      options.onProgress?.({ phase: "embed", done, total: missing.size });
      const vector = await options.embedder.embedDocument(indexText(chunk), options.signal);
      if (vector.length !== dims) throw new Error(`The embedding model returned a vector of dimension ${vector.length}, expected ${dims}`);
      vectors.set(hash, vector);
      done++;
    }
    summary.embedded = missing.size;
  } else if (old?.embedding) {
    // No model now: keep the vectors there are, so the model's next run only embeds what is new.
    embedding = old.embedding;
    for (const chunk of chunks) {
      const known = old.vectors.get(chunk.textHash);
      if (known) vectors.set(chunk.textHash, known);
    }
    const without = chunks.filter((chunk) => !vectors.has(chunk.textHash)).length;
    if (without) summary.notes.push(`${without} chunk(s) have no embedding yet (no embedding model was available): they are found by their words only until the next update with the model.`);
  } else if (chunks.length) {
    summary.notes.push("No embedding model was available: the index is lexical only (BM25). Pull the profile's embedding model (gpiot models pull) and run `gpiot index rebuild` for hybrid retrieval.");
  }

  throwIfAborted(options.signal);
  options.onProgress?.({ phase: "write", done: 0, total: 1 });
  const generation = (state.built?.generation ?? readGeneration(dir)?.generation ?? 0) + 1;
  const data = dataDirName(generation);
  const dataDir = path.join(dir, data);
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  writeFileAtomic(path.join(dataDir, "chunks.jsonl"), chunks.map((chunk) => `${JSON.stringify(chunk)}\n`).join(""));
  if (embedding) writeFileAtomic(path.join(dataDir, "vectors.bin"), encodeVectors(vectors, embedding.dims));
  const indexFile: IndexFile = {
    format: INDEX_FORMAT,
    version: INDEX_FORMAT_VERSION,
    generation,
    data,
    updatedAt: new Date().toISOString(),
    embedding,
    sources: sources.map((source) => ({ id: source.id, files: [...(files.get(source.id)?.values() ?? [])], skipped: skipped.get(source.id) ?? [] })),
    chunks: chunks.length,
    vectors: vectors.size,
  };
  // The list of sources, then the index: the moment the update takes effect (a crash in between leaves a source listed but not built, which the next update builds).
  writeSources(dir, sources);
  writeFileAtomic(path.join(dir, "index.json"), `${JSON.stringify(indexFile)}\n`);
  for (const entry of readdirSync(dir)) if (/^g\d{6,}$/.test(entry) && entry !== data) rmSync(path.join(dir, entry), { recursive: true, force: true });

  summary.chunks = chunks.length;
  summary.vectors = vectors.size;
  summary.embedding = embedding ? { key: embedding.key, dims: embedding.dims } : null;
  return { summary, state: { dir, sources, built: { generation, embedding, files, skipped, chunks, vectors }, notes: [] } };
}

/** Adds (or returns the existing) source for a path; sources.json is written by the update that follows (updateIndex), so a cancelled or failed update leaves it as it was. */
export function addSource(state: IndexState, kind: SourceKind, absolutePath: string): { state: IndexState; source: IndexSource; existed: boolean } {
  const id = sourceIdFor(kind, absolutePath);
  const existing = state.sources.find((source) => source.id === id);
  if (existing) {
    // A folder added again as the workspace (or the other way round) keeps its chunks and takes the new kind.
    if (existing.kind === kind) return { state, source: existing, existed: true };
    const changed = { ...existing, kind };
    const sources = state.sources.map((source) => (source.id === id ? changed : source));
    return { state: { ...state, sources }, source: changed, existed: true };
  }
  const source: IndexSource = { id, kind, path: absolutePath, addedAt: new Date().toISOString() };
  const sources = [...state.sources, source];
  return { state: { ...state, sources }, source, existed: false };
}

/** Finds a source by id, or by its path (as given or resolved). */
export function findSource(sources: IndexSource[], idOrPath: string): IndexSource | undefined {
  const resolved = path.resolve(idOrPath);
  return sources.find((source) => source.id === idOrPath) ?? sources.find((source) => source.path === resolved || source.path === idOrPath);
}

/** The state without a source; like addSource, written by the update that follows. */
export function removeSource(state: IndexState, source: IndexSource): IndexState {
  const sources = state.sources.filter((candidate) => candidate.id !== source.id);
  return { ...state, sources };
}

// ---- search ----

export interface SearchHit {
  chunk: IndexChunk;
  score: number;
  lexicalRank?: number;
  vectorRank?: number;
}

/** How many candidates each ranking offers the fusion, per result wanted. */
const CANDIDATES_PER_RESULT = 10;
const MIN_CANDIDATES = 50;

/** A built index made searchable: BM25 over the chunks and their vectors in a flat store. */
export class SearchableIndex {
  private readonly bm25 = new Bm25Index();
  private readonly store: FlatVectorStore | null;
  /** Chunk number of each row of the vector store. */
  private readonly rowChunk: number[] = [];
  private readonly chunkRow: Int32Array;

  constructor(
    readonly built: BuiltIndex,
    readonly sources: IndexSource[],
  ) {
    this.chunkRow = new Int32Array(built.chunks.length).fill(-1);
    this.store = built.embedding && built.vectors.size ? new FlatVectorStore(built.embedding.dims, built.chunks.length) : null;
    built.chunks.forEach((chunk, index) => {
      this.bm25.add(indexText(chunk));
      const vector = built.vectors.get(chunk.textHash);
      if (this.store && vector) {
        this.chunkRow[index] = this.store.add(vector);
        this.rowChunk.push(index);
      }
    });
  }

  get chunks(): IndexChunk[] {
    return this.built.chunks;
  }

  get embedding(): BuiltIndex["embedding"] {
    return this.store ? this.built.embedding : null;
  }

  /**
   * The k best chunks for a query: BM25 and (given the query's vector) cosine rankings fused by RRF.
   * `sourceIds` limits the search to those sources.
   */
  search(query: string, queryVector: Float32Array | null, k: number, sourceIds?: ReadonlySet<string>): SearchHit[] {
    const chunks = this.built.chunks;
    const allowed = sourceIds ? (index: number) => sourceIds.has(chunks[index].sourceId) : undefined;
    const candidates = Math.max(MIN_CANDIDATES, k * CANDIDATES_PER_RESULT);
    const lexical = this.bm25.search(query, candidates, allowed);
    const vector =
      this.store && queryVector && queryVector.length === this.store.dims
        ? this.store.search(queryVector, candidates, allowed ? (row) => allowed(this.rowChunk[row]) : undefined).map((hit) => ({ index: this.rowChunk[hit.index], score: hit.score }))
        : [];
    return fuseRankings(lexical, vector, k).map((hit) => ({ chunk: chunks[hit.index], score: hit.score, lexicalRank: hit.lexicalRank, vectorRank: hit.vectorRank }));
  }

  /** The BM25 ranking alone (for tests and the benchmark). */
  lexicalSearch(query: string, k: number): IndexChunk[] {
    return this.bm25.search(query, k).map((hit) => this.built.chunks[hit.index]);
  }
}
