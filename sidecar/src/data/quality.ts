/**
 * Quality and hygiene of a record set, in this order:
 *
 * 1. schema: each record must pass its role's zod schema (records.ts);
 * 2. length: the prompt and the answer must be within the configured character bounds;
 * 3. leakage: a record that shares any 13-word sequence (lower-cased, punctuation dropped) with
 *    an IoT Bench task requirement is dropped, so that tuning never sees the benchmark;
 * 4. exact duplicates: the same content hash, or the same prompt and answer after lower-casing
 *    and collapsing whitespace;
 * 5. near duplicates: MinHash over word 5-shingles (64 hash functions, 16 LSH bands of 4 rows)
 *    finds candidate pairs of the same role (and CGD set); a pair whose exact Jaccard similarity of shingle
 *    sets reaches the threshold (default 0.8) is a duplicate, and the later record goes. Prompt
 *    lines that most records of a role share (the stage's fixed instructions) are left out of
 *    the comparison, so that only what varies counts.
 * 6. splits by source document: every record of one paper, one documented function or one
 *    published row group lands in the same split, chosen by a hash of the document's key.
 */
import { createHash } from "node:crypto";
import { answerOf, promptOf, TrainingRecordSchema, type DraftRecord, type Split, type TrainingRecord } from "./records";

export interface QualityOptions {
  minPromptChars: number;
  maxPromptChars: number;
  minAnswerChars: number;
  maxAnswerChars: number;
  /** Jaccard similarity at or above which two records are near duplicates. */
  nearDuplicateThreshold: number;
  /** Fractions of documents for train, validation and test. */
  split: [number, number, number];
  /** Requirements that must not leak into the records (IoT Bench tasks), by task id. */
  heldOut: { id: string; text: string }[];
}

export const defaultQualityOptions: QualityOptions = {
  minPromptChars: 20,
  maxPromptChars: 24_000,
  minAnswerChars: 2,
  maxAnswerChars: 24_000,
  nearDuplicateThreshold: 0.8,
  split: [0.8, 0.1, 0.1],
  heldOut: [],
};

export interface Rejection {
  reason: string;
  /** What was rejected (record id, unit, file and row, ...). */
  item: string;
  detail?: string;
}

export interface QualityResult {
  records: TrainingRecord[];
  rejected: Rejection[];
  /** Documents per split. */
  documents: Record<Split, number>;
}

export const LEAKAGE_NGRAM = 13;
const SHINGLE = 5;
const HASHES = 64;
const BANDS = 16;
const ROWS = HASHES / BANDS;

export function normalizeWords(text: string): string[] {
  return text.toLowerCase().normalize("NFKC").match(/[\p{L}\p{N}]+/gu) ?? [];
}

function ngrams(words: string[], n: number): Set<string> {
  const grams = new Set<string>();
  if (words.length < n) {
    if (words.length) grams.add(words.join(" "));
    return grams;
  }
  for (let i = 0; i + n <= words.length; i++) grams.add(words.slice(i, i + n).join(" "));
  return grams;
}

/** 32-bit FNV-1a, then murmur3's finaliser per hash function. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function mix(value: number, seed: number): number {
  let h = (value ^ seed) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const seeds = Array.from({ length: HASHES }, (_, i) => mix(0x9e3779b9 + i * 0x632be5ab, 0x5bd1e995));

export function minHashSignature(shingles: Set<string>): Uint32Array {
  const signature = new Uint32Array(HASHES).fill(0xffffffff);
  for (const shingle of shingles) {
    const base = hash32(shingle);
    for (let i = 0; i < HASHES; i++) {
      const value = mix(base, seeds[i]);
      if (value < signature[i]) signature[i] = value;
    }
  }
  return signature;
}

export function jaccard(a: Set<string>, b: Set<string>): number {
  if (!a.size && !b.size) return 1;
  let shared = 0;
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const item of small) if (large.has(item)) shared++;
  return shared / (a.size + b.size - shared);
}

/** The n-grams of the held-out requirements, for the leakage check. */
export function heldOutIndex(heldOut: { id: string; text: string }[]): Map<string, string> {
  const index = new Map<string, string>();
  for (const task of heldOut) for (const gram of ngrams(normalizeWords(task.text), LEAKAGE_NGRAM)) if (!index.has(gram)) index.set(gram, task.id);
  return index;
}

/** The held-out task a text overlaps, if any. */
export function leakedTask(text: string, index: Map<string, string>): string | null {
  if (!index.size) return null;
  const words = normalizeWords(text);
  for (let i = 0; i + LEAKAGE_NGRAM <= words.length; i++) {
    const task = index.get(words.slice(i, i + LEAKAGE_NGRAM).join(" "));
    if (task) return task;
  }
  return null;
}

/** The key that keeps one source document's records in one split. */
export function documentKey(record: Pick<DraftRecord, "source" | "id">): string {
  const source = record.source;
  if (source.kind === "package" && source.function) return `package:${source.package ?? ""}:${source.function}`;
  if (source.file && source.kind !== "published") return `${source.kind}:${source.file}`;
  if (source.kind === "published") return `published:${source.file ?? ""}:${source.section ?? record.id}`;
  return `${source.kind}:${record.id}`;
}

export function splitFor(key: string, fractions: [number, number, number]): Split {
  const total = fractions[0] + fractions[1] + fractions[2];
  const position = createHash("sha256").update(key).digest().readUInt32BE(0) / 0x1_0000_0000;
  if (position < fractions[0] / total) return "train";
  if (position < (fractions[0] + fractions[1]) / total) return "validation";
  return "test";
}

function duplicateText(record: DraftRecord): string {
  return `${normalizeWords(promptOf(record)).join(" ")}\u0000${normalizeWords(answerOf(record)).join(" ")}`;
}

/**
 * Runs the filters and assigns splits. `presetSplits` (record id -> split) keeps splits a
 * published dataset already has.
 */
export function applyQuality(drafts: DraftRecord[], options: QualityOptions, presetSplits: Map<string, Split> = new Map()): QualityResult {
  const rejected: Rejection[] = [];
  const index = heldOutIndex(options.heldOut);
  const kept: DraftRecord[] = [];
  const seenIds = new Set<string>();
  const seenTexts = new Set<string>();
  for (const draft of drafts) {
    const parsed = TrainingRecordSchema.safeParse({ ...draft, split: "train" });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      rejected.push({ reason: "schema", item: draft.id ?? "(no id)", detail: `${issue.path.join(".") || "$"}: ${issue.message}` });
      continue;
    }
    const prompt = promptOf(draft);
    const answer = answerOf(draft);
    if (prompt.length < options.minPromptChars || answer.length < options.minAnswerChars) {
      rejected.push({ reason: "too-short", item: draft.id, detail: `prompt ${prompt.length} chars, answer ${answer.length} chars` });
      continue;
    }
    if (prompt.length > options.maxPromptChars || answer.length > options.maxAnswerChars) {
      rejected.push({ reason: "too-long", item: draft.id, detail: `prompt ${prompt.length} chars, answer ${answer.length} chars` });
      continue;
    }
    const leak = leakedTask(`${prompt}\n${answer}`, index);
    if (leak) {
      rejected.push({ reason: "leakage", item: draft.id, detail: `shares a ${LEAKAGE_NGRAM}-word sequence with IoT Bench task ${leak}` });
      continue;
    }
    const text = duplicateText(draft);
    if (seenIds.has(draft.id) || seenTexts.has(text)) {
      rejected.push({ reason: "duplicate", item: draft.id });
      continue;
    }
    seenIds.add(draft.id);
    seenTexts.add(text);
    kept.push(draft);
  }

  const unique = removeNearDuplicates(kept, options.nearDuplicateThreshold, rejected);

  const documents: Record<Split, Set<string>> = { train: new Set(), validation: new Set(), test: new Set() };
  const records = unique.map((draft) => {
    const key = documentKey(draft);
    const split = presetSplits.get(draft.id) ?? splitFor(key, options.split);
    documents[split].add(key);
    return { ...draft, split } as TrainingRecord;
  });
  return { records, rejected, documents: { train: documents.train.size, validation: documents.validation.size, test: documents.test.size } };
}

/** Prompt lines that at least half of a role's records share (and at least 3 records): fixed instructions. */
function boilerplateLines(records: DraftRecord[]): Set<string> {
  const counts = new Map<string, number>();
  for (const record of records) for (const line of new Set(promptOf(record).split("\n"))) counts.set(line, (counts.get(line) ?? 0) + 1);
  const limit = Math.max(3, records.length / 2);
  return new Set([...counts].filter(([, count]) => count >= limit).map(([line]) => line));
}

function removeNearDuplicates(records: DraftRecord[], threshold: number, rejected: Rejection[]): DraftRecord[] {
  if (threshold > 1) return records;
  // Records are compared within a role and, for CGD, within one set: a D3 spec and the D2 target of
  // the same example are different tasks by design, however alike their code.
  const byRole = new Map<string, number[]>();
  records.forEach((record, i) => {
    const group = `${record.role}:${record.source.kind_detail ?? ""}`;
    byRole.set(group, [...(byRole.get(group) ?? []), i]);
  });
  const dropped = new Set<number>();
  for (const indices of byRole.values()) {
    const boilerplate = boilerplateLines(indices.map((i) => records[i]));
    const shingles = new Map<number, Set<string>>();
    const buckets = new Map<string, number[]>();
    for (const i of indices) {
      const prompt = promptOf(records[i])
        .split("\n")
        .filter((line) => !boilerplate.has(line))
        .join("\n");
      const set = ngrams(normalizeWords(`${prompt}\n${answerOf(records[i])}`), SHINGLE);
      shingles.set(i, set);
      const signature = minHashSignature(set);
      for (let band = 0; band < BANDS; band++) {
        const key = `${band}:${Array.from(signature.subarray(band * ROWS, band * ROWS + ROWS)).join(",")}`;
        const bucket = buckets.get(key);
        if (bucket) bucket.push(i);
        else buckets.set(key, [i]);
      }
    }
    const candidates = new Map<number, Set<number>>();
    for (const bucket of buckets.values()) {
      if (bucket.length < 2) continue;
      for (let a = 0; a < bucket.length; a++)
        for (let b = a + 1; b < bucket.length; b++) {
          const [first, later] = bucket[a] < bucket[b] ? [bucket[a], bucket[b]] : [bucket[b], bucket[a]];
          const set = candidates.get(later) ?? new Set<number>();
          set.add(first);
          candidates.set(later, set);
        }
    }
    for (const later of [...candidates.keys()].sort((a, b) => a - b)) {
      for (const first of [...candidates.get(later)!].sort((a, b) => a - b)) {
        if (dropped.has(first)) continue;
        const similarity = jaccard(shingles.get(first)!, shingles.get(later)!);
        if (similarity >= threshold) {
          dropped.add(later);
          rejected.push({ reason: "near-duplicate", item: records[later].id, detail: `Jaccard ${similarity.toFixed(2)} with ${records[first].id}` });
          break;
        }
      }
    }
  }
  return records.filter((_, i) => !dropped.has(i));
}
