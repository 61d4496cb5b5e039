/**
 * Retrieval figures for `npm run bench`, each next to a baseline measured in the same run:
 * - the searchable index (BM25 + the flat vector store) built and queried at 10k and 100k chunks of
 *   synthetic text with 384-dimensional vectors (bge-small's size), against exact brute-force search
 *   (cosine over every vector, sort all, take k);
 * - `index add` of a folder through the whole pipeline (read, chunk, embed with the tiny model,
 *   write), against the tiny model embedding the same chunks alone;
 * - the prompt tokens retrieval adds to a synthesis job on the tiny models, against the same job
 *   without retrieval.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { SynthesisEngine } from "../sidecar/src/engine/engine";
import { ModelHost } from "../sidecar/src/models/modelHost";
import type { GenerationRequest } from "../sidecar/src/pipeline/structuredGeneration";
import type { JobEvent } from "../sidecar/src/protocol";
import { LlamaEmbedder } from "../sidecar/src/retrieval/embedder";
import { indexText, openIndex, SearchableIndex, type BuiltIndex, type IndexChunk, type IndexSource } from "../sidecar/src/retrieval/indexStore";
import { lexicalTokens } from "../sidecar/src/retrieval/lexical";
import { RetrievalService } from "../sidecar/src/retrieval/retrievalService";
import { normalise } from "../sidecar/src/retrieval/vectorStore";
import { EngineSettingsSchema } from "../sidecar/src/settings";
import { repoRoot, type TestModelSetup } from "../test/helpers/testModels";
import { seededRandom as random } from "../sidecar/src/shared/seededRandom";

const DIMS = 384;
const K = 4;
const REQUIREMENT = "Detect heartbeats in a single-lead ECG from the MIT-BIH database and report the heart rate";
const FIXTURE_DOCS = path.join(repoRoot, "test", "fixtures", "retrieval", "docs");

const fmt = (value: number, digits = 1) => value.toFixed(digits);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function vocabulary(): string[] {
  const words = new Set<string>();
  for (const name of readdirSync(FIXTURE_DOCS)) for (const word of readFileSync(path.join(FIXTURE_DOCS, name), "utf8").split(/\s+/)) if (/^[\w.]{2,}$/.test(word)) words.add(word);
  return [...words];
}

/** n chunks of ~60 words drawn with a skewed (Zipf-like) frequency, and a unit vector for each. */
function syntheticIndex(n: number, words: string[]): BuiltIndex {
  const next = random(n);
  const chunks: IndexChunk[] = [];
  const vectors = new Map<string, Float32Array>();
  for (let i = 0; i < n; i++) {
    const text = Array.from({ length: 60 }, () => words[Math.floor(next() * next() * words.length)]).join(" ");
    const hex = i.toString(16).padStart(24, "0");
    const textHash = hex.padStart(32, "0");
    chunks.push({ id: hex, sourceId: "sbench00000", file: `doc${Math.floor(i / 20)}.md`, document: `doc${Math.floor(i / 20)}.md`, text, line: 1 + (i % 20) * 5, textHash });
    const vector = new Float32Array(DIMS);
    for (let d = 0; d < DIMS; d++) vector[d] = next() * 2 - 1;
    vectors.set(textHash, vector);
  }
  return { generation: 1, embedding: { key: "bench", dims: DIMS, model: "bench" }, files: new Map(), skipped: new Map(), chunks, vectors };
}

const BENCH_SOURCE: IndexSource = { id: "sbench00000", kind: "folder", path: "/bench", addedAt: new Date(0).toISOString() };

/** Exact brute force as one would write it first: every cosine, a full sort, the first k. */
class BruteForce {
  private readonly rows: Float32Array[] = [];
  add(vector: Float32Array): void {
    this.rows.push(normalise(vector));
  }
  search(query: Float32Array, k: number): number[] {
    const q = normalise(query);
    const scored = this.rows.map((row, index) => {
      let dot = 0;
      for (let d = 0; d < row.length; d++) dot += q[d] * row[d];
      return { index, dot };
    });
    scored.sort((a, b) => b.dot - a.dot || a.index - b.index);
    return scored.slice(0, k).map((entry) => entry.index);
  }
}

interface SizeFigures {
  chunks: number;
  buildRate: number;
  bruteBuildRate: number;
  hybrid: { p50: number; p95: number };
  vectorOnly: { p50: number; p95: number };
  brute: { p50: number; p95: number };
  sameTopK: number;
}

function measureSize(n: number, words: string[], queries: number): SizeFigures {
  const built = syntheticIndex(n, words);
  let started = performance.now();
  const index = new SearchableIndex(built, [BENCH_SOURCE]);
  const buildMs = performance.now() - started;
  started = performance.now();
  const brute = new BruteForce();
  for (const chunk of built.chunks) brute.add(built.vectors.get(chunk.textHash)!);
  const bruteBuildMs = performance.now() - started;

  const next = random(7 * n + 1);
  const hybrid: number[] = [];
  const vectorOnly: number[] = [];
  const bruteTimes: number[] = [];
  let same = 0;
  for (let q = 0; q < queries; q++) {
    const text = Array.from({ length: 3 + Math.floor(next() * 4) }, () => words[Math.floor(next() * words.length)]).join(" ");
    const vector = new Float32Array(DIMS);
    for (let d = 0; d < DIMS; d++) vector[d] = next() * 2 - 1;
    let t = performance.now();
    index.search(text, vector, K);
    hybrid.push(performance.now() - t);
    t = performance.now();
    const fromStore = index.search("", vector, K).map((hit) => Number.parseInt(hit.chunk.id, 16));
    vectorOnly.push(performance.now() - t);
    t = performance.now();
    const exact = brute.search(vector, K);
    bruteTimes.push(performance.now() - t);
    if (exact.join() === fromStore.join()) same++;
  }
  const stats = (values: number[]) => ({ p50: percentile(values, 50), p95: percentile(values, 95) });
  return { chunks: n, buildRate: n / (buildMs / 1000), bruteBuildRate: n / (bruteBuildMs / 1000), hybrid: stats(hybrid), vectorOnly: stats(vectorOnly), brute: stats(bruteTimes), sameTopK: same / queries };
}

/** `index add` of a folder with the tiny embedding model, and the same chunks embedded alone. */
async function measurePipeline(setup: TestModelSetup, scratch: string, copies: number): Promise<{ chunks: number; embedded: number; rate: number; embedOnlyRate: number }> {
  const docs = path.join(scratch, "bench-docs");
  for (let copy = 0; copy < copies; copy++) {
    mkdirSync(path.join(docs, `copy${copy}`), { recursive: true });
    cpSync(FIXTURE_DOCS, path.join(docs, `copy${copy}`), { recursive: true });
    // Each copy differs, so every chunk is embedded (identical text shares a vector).
    for (const name of readdirSync(path.join(docs, `copy${copy}`))) {
      const file = path.join(docs, `copy${copy}`, name);
      writeFileSync(file, readFileSync(file, "utf8").replace(/\n\n/g, ` (copy ${copy})\n\n`));
    }
  }
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const embedder = await LlamaEmbedder.load(llama, { path: setup.models.embedding }, { threads: 1 });
  try {
    const indexDir = path.join(scratch, "bench-index");
    const service = new RetrievalService({ settings: EngineSettingsSchema.parse({ retrieval: { indexDir } }), manifestPath: () => setup.manifestPath, runtime: () => Promise.resolve(llama), embedder });
    let started = performance.now();
    const added = await service.add({ path: docs });
    const addMs = performance.now() - started;
    await service.dispose();
    // The same texts the update embedded: one per distinct chunk text (identical text shares a vector).
    const texts = [...new Map(openIndex(indexDir).built!.chunks.map((chunk) => [chunk.textHash, indexText(chunk)])).values()];
    started = performance.now();
    for (const text of texts) await embedder.embedDocument(text);
    const embedMs = performance.now() - started;
    return { chunks: added.summary.chunks, embedded: added.summary.embedded, rate: added.summary.chunks / (addMs / 1000), embedOnlyRate: texts.length / (embedMs / 1000) };
  } finally {
    await embedder.dispose();
    await llama.dispose();
  }
}

/** Prompt tokens of one synthesis with and without retrieval (tiny models, index of the fixture documents). */
async function measureTokenOverhead(setup: TestModelSetup, scratch: string): Promise<{ withoutTokens: number; withTokens: number; prompts: number }> {
  const indexDir = path.join(scratch, "overhead-index");
  const original = Reflect.get(ModelHost.prototype, "generate") as ModelHost["generate"];
  let promptTokens = 0;
  let prompts = 0;
  ModelHost.prototype.generate = function (this: ModelHost, request: GenerationRequest) {
    if (request.role === "td") return original.call(this, request);
    prompts++;
    promptTokens += this.countTokens(request.role, `${request.systemPrompt}\n${request.userPrompt}`);
    return original.call(this, request);
  };
  const run = async (enabled: boolean) => {
    const engine = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny", threads: 1, retrieval: { indexDir, enabled } });
    try {
      if (enabled) await engine.retrievalIndex.add({ path: FIXTURE_DOCS });
      await engine.loadModels({ profile: "tiny" });
      promptTokens = 0;
      prompts = 0;
      const { jobId } = engine.synthesize({ requirement: REQUIREMENT });
      const last = await new Promise<JobEvent>((resolve) => engine.onJobEvent((event) => (event.jobId === jobId && (event.type === "jobFinished" || event.type === "jobFailed") ? resolve(event) : undefined)));
      if (last.type !== "jobFinished") throw new Error(`bench job failed: ${JSON.stringify(last)}`);
      return { tokens: promptTokens, prompts };
    } finally {
      await engine.dispose();
    }
  };
  try {
    const without = await run(false);
    const withRetrieval = await run(true);
    if (without.prompts !== withRetrieval.prompts) throw new Error(`the jobs differ: ${without.prompts} and ${withRetrieval.prompts} RT/CG prompts`);
    return { withoutTokens: without.tokens, withTokens: withRetrieval.tokens, prompts: withRetrieval.prompts };
  } finally {
    ModelHost.prototype.generate = original;
  }
}

export async function runRetrievalBench(options: { setup: TestModelSetup; scratch: string; queries?: number }): Promise<string[]> {
  const words = vocabulary().filter((word) => lexicalTokens(word).length > 0);
  const lines = [`Retrieval (synthetic chunks of ~60 words, ${DIMS}-dim vectors, k = ${K}; ratios to exact brute-force search: every cosine, full sort)`];
  for (const n of [10_000, 100_000]) {
    const figures = measureSize(n, words, options.queries ?? (n > 50_000 ? 100 : 300));
    lines.push(
      `  ${n.toLocaleString("en")} chunks: index build ${fmt(figures.buildRate, 0)} chunks/s (BM25 + vector store; brute force's ${fmt(figures.bruteBuildRate, 0)} chunks/s, ratio ${fmt(figures.buildRate / figures.bruteBuildRate, 2)})`,
      `    query p50/p95 ms: hybrid ${fmt(figures.hybrid.p50, 2)} / ${fmt(figures.hybrid.p95, 2)}, vector store alone ${fmt(figures.vectorOnly.p50, 2)} / ${fmt(figures.vectorOnly.p95, 2)}, brute force ${fmt(figures.brute.p50, 2)} / ${fmt(figures.brute.p95, 2)}`,
      `    ratio to brute force, p50/p95: hybrid ${fmt(figures.hybrid.p50 / figures.brute.p50, 2)} / ${fmt(figures.hybrid.p95 / figures.brute.p95, 2)}, vector store ${fmt(figures.vectorOnly.p50 / figures.brute.p50, 2)} / ${fmt(figures.vectorOnly.p95 / figures.brute.p95, 2)}; vector store's top ${K} equal to brute force's in ${fmt(figures.sameTopK * 100, 0)}% of queries`,
    );
  }
  const pipeline = await measurePipeline(options.setup, options.scratch, 10);
  lines.push(`  gpiot index add, whole pipeline with the tiny embedding model: ${fmt(pipeline.rate, 0)} chunks/s over ${pipeline.chunks} chunks (${pipeline.embedded} distinct texts embedded); embedding those texts alone ${fmt(pipeline.embedOnlyRate, 0)} chunks/s (ratio ${fmt(pipeline.rate / pipeline.embedOnlyRate, 2)})`);
  const overhead = await measureTokenOverhead(options.setup, options.scratch);
  lines.push(
    `  token overhead of one synthesis (its ${overhead.prompts} RT and CG prompts, k = ${K}, budget 600 tokens a prompt): ${overhead.withoutTokens} prompt tokens without retrieval, ${overhead.withTokens} with, +${fmt((overhead.withTokens - overhead.withoutTokens) / overhead.prompts, 0)} a prompt, ratio ${fmt(overhead.withTokens / overhead.withoutTokens, 2)}`,
  );
  return lines;
}
