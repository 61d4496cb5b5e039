/**
 * `gpiot data import`: the published GPIoT datasets (lemingshen/GPIoT_Task_Decomposition and
 * lemingshen/GPIoT_Code_Generation) turned into records. Layouts read:
 *
 * - a Hugging Face `save_to_disk` folder: `state.json` naming Arrow IPC stream files, or a
 *   `dataset_dict.json` with one such folder per split (train/validation/test splits are kept);
 * - single Arrow IPC files (stream or file format);
 * - JSON Lines with a `data` field per line;
 * - Parquet files (uncompressed or snappy, which `datasets` and pyarrow write by default).
 *
 * Every row must hold a `data` text in Llama-2 chat format; a row that cannot be parsed is
 * counted with its reason, never dropped silently.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { inputError } from "./errors";
import { decodeUtf8 } from "./papers";
import { parseLlama2Chat } from "./llama2Chat";
import type { Rejection } from "./quality";
import { paperFormatRecord, type DraftRecord, type RecordRole, type Split } from "./records";

export type ImportRole = RecordRole | "auto";

export interface ImportSource {
  /** File to read, and how. */
  file: string;
  format: "arrow" | "jsonl" | "parquet";
  /** Split named by the dataset's layout, if any. */
  split: Split | null;
  /** Name used in provenance: relative to the path the user gave. */
  label: string;
}

export interface ImportResult {
  drafts: DraftRecord[];
  rejected: Rejection[];
  presetSplits: Map<string, Split>;
  rows: number;
  sources: ImportSource[];
}

const splitNames: Record<string, Split> = { train: "train", training: "train", validation: "validation", valid: "validation", val: "validation", dev: "validation", test: "test", testing: "test" };

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw inputError(file, `is not valid JSON (${(error as Error).message})`);
  }
}

function saveToDiskFiles(dir: string, label: string, split: Split | null): ImportSource[] {
  const state = readJson(path.join(dir, "state.json")) as { _data_files?: { filename?: string }[] };
  const files = (state._data_files ?? []).map((entry) => entry.filename).filter((name): name is string => typeof name === "string");
  if (!files.length) throw inputError(path.join(dir, "state.json"), "lists no data files (_data_files)");
  return files.map((name) => {
    const file = path.join(dir, name);
    if (!existsSync(file)) throw inputError(file, "is listed in state.json but missing");
    return { file, format: "arrow" as const, split, label: path.join(label, name).split(path.sep).join("/") };
  });
}

/** Works out what to read under each path the user gave. */
export function resolveImportSources(inputs: string[]): ImportSource[] {
  const sources: ImportSource[] = [];
  for (const input of inputs) {
    let stats;
    try {
      stats = statSync(input);
    } catch {
      throw inputError(input, "does not exist");
    }
    const label = path.basename(path.resolve(input));
    if (stats.isDirectory()) {
      if (existsSync(path.join(input, "dataset_dict.json"))) {
        const dict = readJson(path.join(input, "dataset_dict.json")) as { splits?: string[] };
        if (!Array.isArray(dict.splits) || !dict.splits.length) throw inputError(path.join(input, "dataset_dict.json"), "lists no splits");
        for (const split of dict.splits) sources.push(...saveToDiskFiles(path.join(input, split), `${label}/${split}`, splitNames[split.toLowerCase()] ?? null));
      } else if (existsSync(path.join(input, "state.json"))) {
        sources.push(...saveToDiskFiles(input, label, null));
      } else {
        const files = readdirSync(input)
          .filter((name) => /\.(arrow|jsonl|parquet)$/i.test(name))
          .sort();
        if (!files.length) throw inputError(input, "is neither a `save_to_disk` dataset folder (no state.json or dataset_dict.json) nor a folder of .arrow, .jsonl or .parquet files");
        for (const name of files) sources.push(fileSource(path.join(input, name), `${label}/${name}`));
      }
    } else sources.push(fileSource(input, label));
  }
  return sources;
}

function fileSource(file: string, label: string): ImportSource {
  const ext = path.extname(file).toLowerCase();
  const format = ext === ".arrow" ? "arrow" : ext === ".jsonl" || ext === ".json" || ext === ".ndjson" ? "jsonl" : ext === ".parquet" ? "parquet" : null;
  if (!format) throw inputError(file, "is not an .arrow, .jsonl or .parquet file");
  return { file, format, split: null, label };
}

/** A row's `data` text, or why it has none. */
type Row = string | { problem: string };

/** The `data` texts of a source, in row order. */
async function readRows(source: ImportSource): Promise<Row[]> {
  if (source.format === "arrow") {
    const { RecordBatchReader } = await import("apache-arrow");
    let reader;
    try {
      reader = RecordBatchReader.from(readFileSync(source.file));
      reader.open();
    } catch (error) {
      throw inputError(source.file, `is not a readable Arrow IPC file (${(error as Error).message})`);
    }
    const fields = reader.schema?.fields.map((field) => field.name) ?? [];
    if (!fields.includes("data")) throw inputError(source.file, `has no \`data\` column (its columns: ${fields.join(", ") || "none"}); the published GPIoT datasets keep each row in one text column named data`);
    const rows: Row[] = [];
    try {
      for (const batch of reader) {
        const column = batch.getChild("data");
        for (let i = 0; i < batch.numRows; i++) {
          const value = column?.get(i);
          rows.push(typeof value === "string" ? value : { problem: value === null || value === undefined ? "the data value is missing" : "the data value is not text" });
        }
      }
    } catch (error) {
      throw inputError(source.file, `could not be read to the end (${(error as Error).message})`);
    }
    return rows;
  }
  if (source.format === "parquet") {
    const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } = await import("hyparquet");
    try {
      const file = await asyncBufferFromFile(source.file);
      const metadata = await parquetMetadataAsync(file);
      const columns = parquetSchema(metadata).children.map((child) => child.element.name);
      if (!columns.includes("data")) throw inputError(source.file, `has no \`data\` column (its columns: ${columns.join(", ") || "none"})`);
      const objects = await parquetReadObjects({ file, metadata, columns: ["data"] });
      return objects.map((row): Row => (typeof row.data === "string" ? row.data : { problem: "the data value is missing or not text" }));
    } catch (error) {
      if ((error as { code?: string }).code === "DATA_INPUT_INVALID") throw error;
      throw inputError(source.file, `is not a readable Parquet file (${(error as Error).message}); snappy-compressed and uncompressed files are supported`);
    }
  }
  const text = decodeUtf8(source.file, readFileSync(source.file));
  const rows: Row[] = [];
  let withData = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = (JSON.parse(line) as { data?: unknown } | null)?.data;
    } catch (error) {
      rows.push({ problem: `not valid JSON (${(error as Error).message.slice(0, 80)})` });
      continue;
    }
    if (typeof value === "string") {
      rows.push(value);
      withData++;
    } else rows.push({ problem: "no `data` text field" });
  }
  if (rows.length && !withData) throw inputError(source.file, "has no row with a `data` text field; the published GPIoT datasets keep each row in one text field named data");
  return rows;
}

/** The role a dataset's rows belong to: from its name, else from each answer. */
export function roleFromName(name: string): RecordRole | null {
  if (/task.?decomposition|(^|[^a-z])(tdd?)([^a-z]|$)/i.test(name)) return "td";
  if (/code.?generation|(^|[^a-z])(cgd?)([^a-z]|$)/i.test(name)) return "cg";
  return null;
}

function roleFromAnswer(answer: string): RecordRole | null {
  if (/sub-?task\s*\d/i.test(answer)) return "td";
  if (/```|\bdef \w+\(|^\s*(import|from) \w+/m.test(answer)) return "cg";
  return null;
}

export async function importPublished(inputs: string[], role: ImportRole): Promise<ImportResult> {
  const sources = resolveImportSources(inputs);
  const drafts: DraftRecord[] = [];
  const rejected: Rejection[] = [];
  const presetSplits = new Map<string, Split>();
  let rows = 0;
  for (const source of sources) {
    const texts = await readRows(source);
    const named = role === "auto" ? roleFromName(inputs.length === 1 ? `${path.resolve(inputs[0])}/${source.label}` : source.label) : role;
    for (const [row, text] of texts.entries()) {
      rows++;
      const item = `${source.label} row ${row}`;
      if (typeof text !== "string") {
        rejected.push({ reason: "unparseable", item, detail: text.problem });
        continue;
      }
      const parsed = parseLlama2Chat(text);
      if (!parsed.ok) {
        rejected.push({ reason: "unparseable", item, detail: parsed.reason });
        continue;
      }
      const rowRole = named ?? roleFromAnswer(parsed.messages[parsed.messages.length - 1].content);
      if (!rowRole) {
        rejected.push({ reason: "role-unknown", item, detail: "pass --role td or --role cg" });
        continue;
      }
      const record = paperFormatRecord(rowRole, parsed.messages, { kind: "published", file: source.label, section: `row ${row}` });
      drafts.push(record);
      if (source.split && !presetSplits.has(record.id)) presetSplits.set(record.id, source.split);
    }
  }
  return { drafts, rejected, presetSplits, rows, sources };
}
