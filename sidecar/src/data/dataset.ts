/**
 * The end of every `gpiot data` run: quality filters and splits over the records, then the
 * files, each written whole (temporary file + rename): the retrieval corpus, the run report
 * (counts, rejections by reason, methods), and the records file last, so that a records file
 * on disk always belongs to a finished run.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { loadTasks } from "../bench/tasks";
import { CorpusChunkSchema, type CorpusChunk } from "./corpus";
import { DataError } from "./errors";
import { applyQuality, LEAKAGE_NGRAM, type QualityOptions, type Rejection } from "./quality";
import type { DraftRecord, Split, TrainingRecord } from "./records";
import { removeStaleTemporaries, writeFileAtomic } from "./workJournal";

export const NEAR_DUPLICATE_METHOD = "MinHash (64 hash functions, 16 LSH bands of 4 rows) over word 5-shingles, verified by exact Jaccard similarity";

export const DataReportSchema = z.object({
  command: z.enum(["tdd", "cgd", "import"]),
  createdAt: z.string(),
  records: z.number().int(),
  splits: z.record(z.string(), z.number().int()),
  documents: z.record(z.string(), z.number().int()),
  rejected: z.record(z.string(), z.number().int()),
  /** The first 2000 rejections, with what was rejected and why. */
  rejections: z.array(z.object({ reason: z.string(), item: z.string(), detail: z.string().optional() })),
  methods: z.object({
    exactDuplicates: z.string(),
    nearDuplicates: z.string(),
    nearDuplicateThreshold: z.number(),
    leakage: z.string(),
    heldOutTasks: z.array(z.string()),
    splits: z.string(),
  }),
  corpus: z.object({ file: z.string(), chunks: z.number().int() }).nullable(),
  inputs: z.record(z.string(), z.unknown()),
  notes: z.array(z.string()),
});
export type DataReport = z.infer<typeof DataReportSchema>;

/** `records.jsonl` -> `records<suffix>` (e.g. `.report.json`, `.corpus.jsonl`). */
export function siblingPath(outFile: string, suffix: string): string {
  const ext = path.extname(outFile);
  const base = [".jsonl", ".json", ".ndjson"].includes(ext.toLowerCase()) ? outFile.slice(0, -ext.length) : outFile;
  return `${base}${suffix}`;
}

export function reportPathFor(outFile: string): string {
  return siblingPath(outFile, ".report.json");
}

/** Refuses to replace an existing records file unless asked to. */
export function checkOutputFree(outFile: string, overwrite: boolean): void {
  if (existsSync(outFile) && !overwrite) throw new DataError("OUTPUT_EXISTS", `${outFile} already exists; choose another --out or add --overwrite to replace it.`, outFile);
  removeStaleTemporaries(outFile);
}

/** The IoT Bench requirements that must not leak into training data. */
export async function heldOutRequirements(benchRoot: string | null): Promise<{ id: string; text: string }[]> {
  if (!benchRoot) return [];
  const tasks = await loadTasks(benchRoot);
  return tasks.map((task) => ({ id: task.id, text: [task.requirement, task.constraints ?? ""].join("\n") }));
}

export interface WriteDatasetInput {
  command: DataReport["command"];
  outFile: string;
  drafts: DraftRecord[];
  /** Rejections made while building the records (teacher output, sandbox failures, unparseable rows). */
  rejected: Rejection[];
  quality: QualityOptions;
  corpus: { file: string; chunks: CorpusChunk[] } | null;
  inputs: Record<string, unknown>;
  notes: string[];
  presetSplits?: Map<string, Split>;
}

export interface WriteDatasetResult {
  records: TrainingRecord[];
  report: DataReport;
  reportFile: string;
}

export function writeDataset(input: WriteDatasetInput): WriteDatasetResult {
  const result = applyQuality(input.drafts, input.quality, input.presetSplits);
  const rejections = [...input.rejected, ...result.rejected];
  const rejected: Record<string, number> = {};
  for (const rejection of rejections) rejected[rejection.reason] = (rejected[rejection.reason] ?? 0) + 1;
  const splits: Record<Split, number> = { train: 0, validation: 0, test: 0 };
  for (const record of result.records) splits[record.split]++;
  const report: DataReport = {
    command: input.command,
    createdAt: new Date().toISOString(),
    records: result.records.length,
    splits,
    documents: result.documents,
    rejected,
    rejections: rejections.slice(0, 2000),
    methods: {
      exactDuplicates: "same content hash (id), or the same prompt and answer after lower-casing and dropping punctuation and spacing",
      nearDuplicates: NEAR_DUPLICATE_METHOD,
      nearDuplicateThreshold: input.quality.nearDuplicateThreshold,
      leakage: `dropped: records sharing a ${LEAKAGE_NGRAM}-word sequence (lower-cased, punctuation dropped) with an IoT Bench task requirement`,
      heldOutTasks: input.quality.heldOut.map((task) => task.id),
      splits: `by source document (paper file, documented function, published row), hashed into train/validation/test ${input.quality.split.map((part) => Math.round(part * 100)).join("/")}`,
    },
    corpus: input.corpus ? { file: input.corpus.file, chunks: input.corpus.chunks.length } : null,
    inputs: input.inputs,
    notes: input.notes,
  };
  if (input.corpus) {
    const seen = new Set<string>();
    const lines = input.corpus.chunks.filter((chunk) => !seen.has(chunk.id) && seen.add(chunk.id)).map((chunk) => JSON.stringify(CorpusChunkSchema.parse(chunk)));
    report.corpus = { file: input.corpus.file, chunks: lines.length };
    writeFileAtomic(input.corpus.file, lines.length ? `${lines.join("\n")}\n` : "");
  }
  const reportFile = reportPathFor(input.outFile);
  writeFileAtomic(reportFile, `${JSON.stringify(report, null, 2)}\n`);
  writeFileAtomic(input.outFile, result.records.map((record) => `${JSON.stringify(record)}\n`).join(""));
  return { records: result.records, report, reportFile };
}
