/**
 * What the index reads: the documents of a folder (PDF, Markdown, text, through the papers reader
 * of `gpiot data`) cut into chunks that never cross a section, and the retrieval corpus that
 * `gpiot data` writes (already chunked). Every chunk keeps where it came from: the file, the PDF
 * page, the section, and for text files the line the chunk starts on, so that a citation can open
 * the source at the passage.
 *
 * A file that cannot be used is skipped with the reason (too large, binary, not UTF-8, unreadable,
 * a PDF without text); it never stops the other files.
 */
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, type Stats } from "node:fs";
import path from "node:path";
import { chunkText, CorpusChunkSchema } from "../data/corpus";
import { DataError } from "../data/errors";
import { readPaper } from "../data/papers";

export const DOCUMENT_EXTENSIONS = new Set([".pdf", ".md", ".markdown", ".txt"]);
/** Folders a workspace holds that are never documentation. */
const SKIPPED_FOLDERS = new Set(["node_modules", "__pycache__", "venv", "site-packages", "dist", "build", "out", "gpiot-programs"]);
/** The most files one folder source may hold; more usually means the wrong folder was added. */
export const MAX_FOLDER_FILES = 20_000;

export interface DocumentFile {
  /** Absolute path. */
  path: string;
  /** Path relative to the source folder, "/"-separated. */
  relative: string;
  size: number;
  mtimeMs: number;
}

export interface SkippedFile {
  path: string;
  reason: string;
}

/** One chunk as the index stores it. */
export interface ChunkDraft {
  text: string;
  /** What is embedded and matched: the document's title and section, then the text. */
  indexText: string;
  /** Document the chunk is in, relative to its source ("/"-separated); for a corpus, the paper file or the function. */
  document: string;
  page?: number;
  section?: string;
  /** 1-based line of the file where the chunk starts (text and Markdown files; the corpus file's line). */
  line?: number;
  package?: string;
  function?: string;
}

function describeNonFile(stats: Stats): string {
  if (stats.isSymbolicLink()) return "a symbolic link (not followed)";
  if (stats.isFIFO()) return "a named pipe";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return "a device";
  return "not a regular file";
}

/**
 * The documents under `root`, sorted: PDF, Markdown and text files. Hidden entries, symbolic links
 * and build or dependency folders are not entered; files of other types are not listed at all.
 */
export function listDocuments(root: string): { files: DocumentFile[]; skipped: SkippedFile[] } {
  const files: DocumentFile[] = [];
  const skipped: SkippedFile[] = [];
  const walk = (folder: string, relative: string) => {
    let entries: string[];
    try {
      entries = readdirSync(folder).sort();
    } catch (error) {
      skipped.push({ path: folder, reason: `the folder cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
      return;
    }
    for (const name of entries) {
      if (name.startsWith(".")) continue;
      const full = path.join(folder, name);
      const rel = relative ? `${relative}/${name}` : name;
      let stats: Stats;
      try {
        stats = lstatSync(full);
      } catch (error) {
        skipped.push({ path: full, reason: `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
        continue;
      }
      if (stats.isDirectory()) {
        if (!SKIPPED_FOLDERS.has(name)) walk(full, rel);
        continue;
      }
      if (!DOCUMENT_EXTENSIONS.has(path.extname(name).toLowerCase())) continue;
      if (!stats.isFile()) {
        skipped.push({ path: full, reason: `is ${describeNonFile(stats)}` });
        continue;
      }
      if (files.length >= MAX_FOLDER_FILES) {
        skipped.push({ path: full, reason: `the folder holds more than ${MAX_FOLDER_FILES} documents; add its sub-folders one by one` });
        continue;
      }
      files.push({ path: full, relative: rel, size: stats.size, mtimeMs: stats.mtimeMs });
    }
  };
  walk(root, "");
  return { files, skipped };
}

export function sha256Hex(data: string | Buffer, length = 64): string {
  return createHash("sha256").update(data).digest("hex").slice(0, length);
}

/** Reads a file for the index: refuses what is too large or not a regular file before opening it. */
export function readDocumentBytes(file: string, maxBytes: number): Buffer {
  let stats: Stats;
  try {
    stats = lstatSync(file);
  } catch (error) {
    throw new DataError("DATA_INPUT_INVALID", `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, file);
  }
  if (!stats.isFile()) throw new DataError("DATA_INPUT_INVALID", `is ${describeNonFile(stats)}, not a document`, file);
  if (stats.size > maxBytes)
    throw new DataError("DATA_INPUT_INVALID", `is ${formatMegabytes(stats.size)}; documents over ${formatMegabytes(maxBytes)} are not indexed (raise the limit with --max-file-mb or the retrieval.maxFileMB setting)`, file);
  try {
    return readFileSync(file);
  } catch (error) {
    throw new DataError("DATA_INPUT_INVALID", `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, file);
  }
}

function formatMegabytes(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MB`;
}

/** A text file that holds NUL bytes is binary, whatever its name says. */
function checkNotBinary(bytes: Buffer, file: string): void {
  const head = bytes.subarray(0, 65536);
  if (head.includes(0)) throw new DataError("DATA_INPUT_INVALID", "is a binary file, not text (it contains NUL bytes)", file);
}

/**
 * The chunks of one document, section by section (a chunk never spans two sections). `bytes` is
 * what was read and hashed; the reader of `gpiot data` turns it into cleaned sections.
 */
export async function documentChunks(file: DocumentFile, bytes: Buffer, maxChunkChars?: number): Promise<ChunkDraft[]> {
  const extension = path.extname(file.path).toLowerCase();
  if (extension !== ".pdf") checkNotBinary(bytes, file.path);
  let paper;
  try {
    paper = await readPaper(file.path, file.relative);
  } catch (error) {
    if (error instanceof DataError) throw new DataError(error.code, error.message.startsWith(`${file.path}: `) ? error.message.slice(file.path.length + 2) : error.message, file.path);
    throw error;
  }
  const locator = extension === ".pdf" ? null : new LineLocator(bytes.toString("utf8"));
  const chunks: ChunkDraft[] = [];
  for (const section of paper.sections) {
    const headingLine = locator && section.heading ? locator.headingLine(section.heading) : undefined;
    for (const text of chunkText(section.text, maxChunkChars)) {
      const line = locator ? (locator.find(text) ?? headingLine) : undefined;
      const label = [paper.title, section.heading && section.heading !== paper.title ? section.heading : ""].filter(Boolean).join(" — ");
      chunks.push({
        text,
        indexText: label ? `${label}\n${text}` : text,
        document: file.relative,
        ...(section.page ? { page: section.page } : {}),
        ...(section.heading ? { section: section.heading } : {}),
        ...(line ? { line } : {}),
      });
    }
  }
  return chunks;
}

/**
 * Finds the line a chunk starts on in the raw file. The reader cleans the text (joins lines, drops
 * Markdown emphasis and link targets), so the search compares a whitespace- and emphasis-free
 * form of both; chunks come in file order, so each search starts where the last one matched.
 */
export class LineLocator {
  private readonly normalised: string;
  private readonly offsets: number[];
  private readonly lineStarts: number[];
  private from = 0;

  constructor(private readonly raw: string) {
    let normalised = "";
    const offsets: number[] = [];
    let space = false;
    for (let i = 0; i < raw.length; i++) {
      const char = raw[i];
      if (char === "*" || char === "_" || char === "`" || char === "#" || char === ">") continue;
      if (/\s/.test(char)) {
        space = normalised.length > 0;
        continue;
      }
      if (space) {
        normalised += " ";
        offsets.push(i);
        space = false;
      }
      normalised += char.toLowerCase();
      offsets.push(i);
    }
    this.normalised = normalised;
    this.offsets = offsets;
    this.lineStarts = [0];
    for (let i = 0; i < raw.length; i++) if (raw[i] === "\n") this.lineStarts.push(i + 1);
  }

  private lineAt(offset: number): number {
    let low = 0;
    let high = this.lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.lineStarts[mid] <= offset) low = mid;
      else high = mid - 1;
    }
    return low + 1;
  }

  private static normalise(text: string): string {
    return text.replace(/[*_`#>]/g, "").replace(/\s+/g, " ").trim().toLowerCase();
  }

  /** The line of the chunk's first words, or undefined when they are not in the file as written. */
  find(chunk: string): number | undefined {
    const probe = LineLocator.normalise(chunk).slice(0, 48);
    if (!probe) return undefined;
    let at = this.normalised.indexOf(probe, this.from);
    if (at < 0) at = this.normalised.indexOf(probe);
    if (at < 0) return undefined;
    this.from = at + 1;
    return this.lineAt(this.offsets[at]);
  }

  /** The line of a section's heading. */
  headingLine(heading: string): number | undefined {
    const wanted = LineLocator.normalise(heading);
    const lines = this.raw.split("\n");
    const index = lines.findIndex((line) => LineLocator.normalise(line.replace(/^#{1,6}\s+/, "")) === wanted);
    return index >= 0 ? index + 1 : undefined;
  }
}

/** The chunks of a retrieval corpus written by `gpiot data`; lines that are not corpus chunks are counted. */
export function corpusChunks(file: string, bytes: Buffer): { chunks: ChunkDraft[]; invalid: { count: number; first?: string } } {
  checkNotBinary(bytes, file);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new DataError("DATA_INPUT_INVALID", "is not UTF-8 text, so it is no retrieval corpus", file);
  }
  const chunks: ChunkDraft[] = [];
  const invalid: { count: number; first?: string } = { count: 0 };
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (!line) return;
    let parsed;
    try {
      parsed = CorpusChunkSchema.safeParse(JSON.parse(line));
    } catch (error) {
      invalid.count++;
      invalid.first ??= `line ${index + 1}: not JSON (${(error as Error).message})`;
      return;
    }
    if (!parsed.success) {
      invalid.count++;
      invalid.first ??= `line ${index + 1}: ${parsed.error.issues[0].path.join(".") || "$"}: ${parsed.error.issues[0].message}`;
      return;
    }
    const { source, text: chunk } = parsed.data;
    const document = source.file ?? source.function ?? source.package ?? path.basename(file);
    const label = [source.function ?? source.file, source.section].filter(Boolean).join(" — ");
    chunks.push({
      text: chunk,
      indexText: label ? `${label}\n${chunk}` : chunk,
      document,
      line: index + 1,
      ...(source.page ? { page: source.page } : {}),
      ...(source.section ? { section: source.section } : {}),
      ...(source.package ? { package: source.package } : {}),
      ...(source.function ? { function: source.function } : {}),
    });
  });
  if (!chunks.length) throw new DataError("DATA_INPUT_INVALID", `holds no retrieval corpus chunks${invalid.first ? ` (${invalid.first})` : ""}; a corpus is the .corpus.jsonl file gpiot data writes`, file);
  return { chunks, invalid };
}
