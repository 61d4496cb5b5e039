/**
 * Retrieval without a model: BM25 on a labelled set the tests ship (recall@5 above a stated bar),
 * the tokenizer's treatment of API names, exact vector search against a naive brute force, the
 * determinism of the hybrid merge, fitting passages to a token budget, and the index on disk:
 * incremental updates, bad files, and corrupt or old index folders.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, existsSync, ftruncateSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fuseRankings } from "../../sidecar/src/retrieval/hybrid";
import { Bm25Index, lexicalTokens } from "../../sidecar/src/retrieval/lexical";
import { FlatVectorStore } from "../../sidecar/src/retrieval/vectorStore";
import { INDEX_FORMAT_VERSION, openIndex, SearchableIndex } from "../../sidecar/src/retrieval/indexStore";
import { RetrievalService } from "../../sidecar/src/retrieval/retrievalService";
import type { Embedder } from "../../sidecar/src/retrieval/embedder";
import { fitPassages, renderPassages, type Passage } from "../../sidecar/src/pipeline/passages";
import { buildCodePrompt } from "../../sidecar/src/pipeline/codeGeneration";
import { buildIoPrompt, buildTargetPrompt } from "../../sidecar/src/pipeline/requirementTransformation";
import { EngineSettingsSchema, type EngineSettingsInput } from "../../sidecar/src/settings";
import { repoRoot } from "../helpers/testModels";

const fixtures = path.join(repoRoot, "test", "fixtures", "retrieval");
/** The bar the lexical half must reach on the shipped labelled set. */
const BM25_RECALL_AT_5_BAR = 0.9;

let scratch: string;
before(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-retrieval-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

function service(indexDir: string, extra: EngineSettingsInput["retrieval"] = {}, embedder?: Embedder): RetrievalService {
  const settings = EngineSettingsSchema.parse({ retrieval: { indexDir, ...extra } });
  return new RetrievalService({
    settings,
    manifestPath: () => path.join(repoRoot, "models", "manifest.json"),
    runtime: () => Promise.reject(new Error("no model runtime in unit tests")),
    ...(embedder ? { embedder } : {}),
  });
}

/** A deterministic stand-in for an embedding model: a bag of hashed words. Counts what it embeds. */
class HashingEmbedder implements Embedder {
  readonly key = "hashing-test:1";
  readonly dims = 64;
  documents = 0;
  async embedDocument(text: string): Promise<Float32Array> {
    this.documents++;
    return this.vector(text);
  }
  async embedQuery(text: string): Promise<Float32Array> {
    return this.vector(text);
  }
  private vector(text: string): Float32Array {
    const vector = new Float32Array(this.dims);
    for (const token of lexicalTokens(text)) {
      let hash = 2166136261;
      for (let i = 0; i < token.length; i++) hash = Math.imul(hash ^ token.charCodeAt(i), 16777619);
      vector[(hash >>> 0) % this.dims] += 1;
    }
    return vector;
  }
  async dispose(): Promise<void> {}
}

describe("BM25 on the labelled set", () => {
  test(`recall@5 of the lexical ranking is at least ${BM25_RECALL_AT_5_BAR}`, async () => {
    const indexDir = path.join(scratch, "labelled");
    const retrieval = service(indexDir);
    const added = await retrieval.add({ path: path.join(fixtures, "docs"), embeddings: false });
    assert.equal(added.summary.skipped.length, 0);
    assert.ok(added.summary.chunks >= 40, `the labelled documents give ${added.summary.chunks} chunks`);
    const state = openIndex(indexDir);
    const index = new SearchableIndex(state.built!, state.sources);
    const { queries } = JSON.parse(readFileSync(path.join(fixtures, "queries.json"), "utf8")) as { queries: { query: string; file: string; section: string }[] };
    assert.ok(queries.length >= 30);
    for (const query of queries) assert.ok(index.chunks.some((chunk) => chunk.file === query.file && chunk.section === query.section), `the labelled answer ${query.file} § ${query.section} is a chunk`);
    const misses: string[] = [];
    for (const query of queries) {
      const top = index.lexicalSearch(query.query, 5);
      if (!top.some((chunk) => chunk.file === query.file && chunk.section === query.section)) misses.push(`${query.query} -> ${top.map((chunk) => chunk.section).join(" | ")}`);
    }
    const recall = 1 - misses.length / queries.length;
    console.log(`BM25 recall@5 on ${queries.length} labelled queries: ${recall.toFixed(3)}${misses.length ? `; misses:\n  ${misses.join("\n  ")}` : ""}`);
    assert.ok(recall >= BM25_RECALL_AT_5_BAR, `recall@5 ${recall.toFixed(3)} is below ${BM25_RECALL_AT_5_BAR}`);
    await retrieval.dispose();
  });

  test("API names are tokens of their own and of their parts", () => {
    const tokens = lexicalTokens("Call scipy.signal.find_peaks, then RandomForestClassifier; filters filtering filtered.");
    for (const expected of ["scipy.signal.find_peaks", "scipy", "signal", "find", "peak", "randomforestclassifier", "random", "forest", "classifier", "filter"]) assert.ok(tokens.includes(expected), `${expected} in ${tokens.join(" ")}`);
    assert.ok(!tokens.includes("then"), "common words are dropped");
    const index = new Bm25Index();
    index.add("A band-pass filter removes baseline wander.");
    index.add("Use scipy.signal.find_peaks with a distance.");
    index.add("Peaks and valleys of a waveform.");
    assert.equal(index.search("find_peaks", 1)[0].index, 1, "the exact API name finds its chunk");
  });
});

describe("vector search", () => {
  test("the flat store returns exactly the naive brute-force top k", () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const dims = 48;
    const vectors = Array.from({ length: 500 }, () => Array.from({ length: dims }, random));
    const store = new FlatVectorStore(dims, 16);
    for (const vector of vectors) store.add(vector);
    const cosine = (a: number[], b: number[]) => a.reduce((sum, value, i) => sum + value * b[i], 0) / Math.sqrt(a.reduce((s, v) => s + v * v, 0) * b.reduce((s, v) => s + v * v, 0));
    for (let q = 0; q < 20; q++) {
      const query = Array.from({ length: dims }, random);
      const naive = vectors.map((vector, index) => ({ index, score: cosine(query, vector) })).sort((a, b) => b.score - a.score).slice(0, 10);
      const found = store.search(query, 10);
      assert.deepEqual(found.map((hit) => hit.index), naive.map((hit) => hit.index));
      found.forEach((hit, i) => assert.ok(Math.abs(hit.score - naive[i].score) < 1e-5));
    }
    assert.throws(() => store.search([1, 2], 3), /dimension/);
  });
});

describe("hybrid merge", () => {
  test("reciprocal rank fusion is deterministic and independent of the order of equal scores", () => {
    const lexical = [
      { index: 4, score: 9 },
      { index: 2, score: 5 },
      { index: 7, score: 5 },
    ];
    const vector = [
      { index: 7, score: 0.9 },
      { index: 3, score: 0.8 },
      { index: 4, score: 0.1 },
    ];
    const first = fuseRankings(lexical, vector, 5);
    assert.deepEqual(
      first.map((hit) => hit.index),
      [4, 7, 2, 3],
      "in both rankings first; equal fused scores go to the better single rank, then the earlier chunk",
    );
    for (let i = 0; i < 5; i++) assert.deepEqual(fuseRankings(lexical, vector, 5), first);
    // Two chunks with exactly the same fused score: the earlier chunk wins, whatever order they come in.
    assert.deepEqual(fuseRankings([{ index: 9, score: 1 }], [{ index: 1, score: 1 }], 2).map((hit) => hit.index), [1, 9]);
    assert.deepEqual(fuseRankings([{ index: 1, score: 1 }], [{ index: 9, score: 1 }], 2).map((hit) => hit.index), [1, 9]);
  });

  test("hybrid search over the same index gives the same ranking every time and after reopening", async () => {
    const indexDir = path.join(scratch, "hybrid");
    const embedder = new HashingEmbedder();
    const retrieval = service(indexDir, {}, embedder);
    await retrieval.add({ path: path.join(fixtures, "docs") });
    const rank = async (svc: RetrievalService, query: string) => (await svc.search(query, { k: 6 })).passages.map((passage) => `${passage.citation.chunkId}:${passage.citation.score}`);
    const queries = ["band-pass filter for ECG", "step counting accelerometer", "quantize int8 microcontroller", "range doppler map"];
    const first = await Promise.all(queries.map((query) => rank(retrieval, query)));
    const reopened = service(indexDir, {}, embedder);
    for (let round = 0; round < 3; round++) assert.deepEqual(await Promise.all(queries.map((query) => rank(reopened, query))), first);
    const hits = (await retrieval.search("band-pass filter for ECG", { k: 6 })).passages;
    assert.ok(hits.length === 6 && hits.every((hit, i) => hit.citation.n === i + 1));
    await retrieval.dispose();
    await reopened.dispose();
  });
});

describe("passages in prompts", () => {
  const citation = (n: number) => ({ n, chunkId: `c${n}`, sourceId: "s0123456789", sourceKind: "folder" as const, path: `/docs/${n}.md`, document: `${n}.md`, section: "Intro", line: 3, score: 0.1, excerpt: "" });
  const passages: Passage[] = [1, 2, 3].map((n) => ({ citation: citation(n), text: `Passage number ${n}. ${"It explains one thing in detail. ".repeat(20)}` }));
  const count = (text: string) => Math.ceil(text.length / 4);

  test("fitting keeps the best passages that fit, renumbered, and cuts one at a sentence when there is room", () => {
    assert.deepEqual(fitPassages(passages, 0, count), []);
    const all = fitPassages(passages, 10_000, count);
    assert.equal(all.length, 3);
    const some = fitPassages(passages, 300, count);
    assert.ok(some.length >= 1 && some.length < 3);
    assert.ok(count(renderPassages(some)) <= 300, "the rendered block stays within the budget");
    assert.deepEqual(some.map((passage) => passage.citation.n), some.map((_, i) => i + 1));
    assert.ok(some.at(-1)!.text.endsWith("…") || some.length === 1, "the last one is cut at a sentence");
  });

  test("the RT and CG prompts hold the passages, and are unchanged without them", () => {
    const subTask = { name: "Filter", problem: "Remove noise", steps: ["Design a filter"] };
    const input = { requirement: "Detect heartbeats", limits: null, subTask, previousSpecs: [] };
    const block = renderPassages(passages.slice(0, 1));
    assert.ok(buildTargetPrompt({ ...input, passages: passages.slice(0, 1) }).includes(block));
    assert.ok(buildIoPrompt({ ...input, passages: passages.slice(0, 1) }, "Write some code").includes(block));
    assert.equal(buildTargetPrompt({ ...input, passages: [] }), buildTargetPrompt(input));
    const spec = { target: "Write some code", inputs: [], outputs: [{ name: "y", type: "float", description: "out" }] };
    const codeInput = { requirement: "Detect heartbeats", limits: null, spec, previousSpecs: [] };
    assert.ok(buildCodePrompt({ ...codeInput, passages: passages.slice(0, 2) }).includes("[2] (2.md, § Intro, line 3)"));
    assert.equal(buildCodePrompt({ ...codeInput, passages: [] }), buildCodePrompt(codeInput));
  });
});

function writeDocs(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
}

describe("the index on disk", () => {
  test("changing one file re-reads only it and embeds only its changed chunks", async () => {
    const docs = path.join(scratch, "incremental-docs");
    for (const name of ["scipy-signal.md", "wfdb.md", "imu-activity.md"]) {
      mkdirSync(docs, { recursive: true });
      copyFileSync(path.join(fixtures, "docs", name), path.join(docs, name));
    }
    const embedder = new HashingEmbedder();
    const retrieval = service(path.join(scratch, "incremental"), {}, embedder);
    const first = await retrieval.add({ path: docs });
    assert.equal(first.summary.files.read, 3);
    assert.equal(first.summary.embedded, first.summary.chunks);
    assert.equal(embedder.documents, first.summary.chunks);

    const again = await retrieval.add({ path: docs });
    assert.deepEqual(again.summary.files, { read: 0, unchanged: 3, removed: 0 });
    assert.equal(again.summary.embedded, 0);
    assert.equal(embedder.documents, first.summary.chunks, "nothing embedded again");

    const file = path.join(docs, "wfdb.md");
    const before = readFileSync(file, "utf8");
    const chunksOfFile = openIndex(path.join(scratch, "incremental")).built!.chunks.filter((chunk) => chunk.file === "wfdb.md");
    writeFileSync(file, before.replace("returns a `Record` object", "returns a Record object with the signals").concat("\n## wfdb.rdheader\n\n`wfdb.rdheader(record_name)` reads only the header of a record.\n"));
    embedder.documents = 0;
    const changed = await retrieval.add({ path: docs });
    const after = openIndex(path.join(scratch, "incremental")).built!.chunks.filter((chunk) => chunk.file === "wfdb.md");
    const newTexts = after.filter((chunk) => !chunksOfFile.some((old) => old.textHash === chunk.textHash)).length;
    assert.deepEqual(changed.summary.files, { read: 1, unchanged: 2, removed: 0 });
    assert.equal(newTexts, 2, "one changed section and one new section");
    assert.equal(changed.summary.embedded, newTexts);
    assert.equal(embedder.documents, newTexts, "exactly the chunks with new text were embedded");
    assert.equal(changed.summary.chunks, first.summary.chunks + 1);

    rmSync(path.join(docs, "imu-activity.md"));
    const removed = await retrieval.add({ path: docs });
    assert.equal(removed.summary.files.removed, 1);
    assert.ok(openIndex(path.join(scratch, "incremental")).built!.chunks.every((chunk) => chunk.file !== "imu-activity.md"));
    await retrieval.dispose();
  });

  test("unusable files are skipped with their reason and the rest is indexed", async () => {
    const docs = path.join(scratch, "bad-docs");
    writeDocs(docs, {
      "good.md": "# Good\n\nA Butterworth band-pass filter between 5 and 15 Hz isolates the QRS complex.\n",
      "binary.txt": Buffer.concat([Buffer.from("PK\u0003\u0004"), Buffer.alloc(64, 0), Buffer.from("more")]).toString("latin1"),
      "empty.md": "",
      "corrupt.pdf": "%PDF-1.4\nthis is not a PDF body\n",
      "notes.bin": "ignored: not a document type",
    });
    writeFileSync(path.join(docs, "latin1.txt"), Buffer.from("Caf\xe9 au lait and a filter.\n", "latin1"));
    // A 200 MB PDF: sparse, so it takes no disk; refused from its size before it is opened.
    const huge = openSync(path.join(docs, "huge.pdf"), "w");
    ftruncateSync(huge, 200 * 1024 * 1024);
    closeSync(huge);
    symlinkSync(path.join(docs, "nowhere.md"), path.join(docs, "dangling.md"));
    // Permissions stop every user but root (CI runs as a user; this machine may not).
    const asUser = typeof process.getuid === "function" && process.getuid() !== 0 && process.platform !== "win32";
    writeFileSync(path.join(docs, "private.md"), "# Private\n\nNot for anyone.\n");
    chmodSync(path.join(docs, "private.md"), 0o000);
    let fifo = false;
    try {
      execFileSync("mkfifo", [path.join(docs, "pipe.md")]);
      fifo = true;
    } catch {
      // No mkfifo on this system: the other cases still run.
    }
    const retrieval = service(path.join(scratch, "bad"));
    const result = await retrieval.add({ path: docs, embeddings: false });
    const reasons = new Map(result.summary.skipped.map((skipped) => [path.basename(skipped.path), skipped.reason]));
    assert.match(reasons.get("huge.pdf") ?? "", /200 MB; documents over 64 MB are not indexed/);
    assert.match(reasons.get("binary.txt") ?? "", /binary/);
    assert.match(reasons.get("latin1.txt") ?? "", /not valid UTF-8/);
    assert.match(reasons.get("corrupt.pdf") ?? "", /not a readable PDF/);
    assert.match(reasons.get("empty.md") ?? "", /empty/);
    assert.match(reasons.get("dangling.md") ?? "", /symbolic link/);
    if (fifo) assert.match(reasons.get("pipe.md") ?? "", /named pipe/);
    if (asUser) assert.match(reasons.get("private.md") ?? "", /cannot be read \(EACCES\)/);
    assert.ok(!reasons.has("notes.bin"), "other file types are not documents at all");
    assert.equal(result.summary.files.read, asUser ? 1 : 2);
    assert.ok(result.summary.chunks >= 1);
    const listing = retrieval.list();
    assert.equal(listing.state, "ready");
    assert.equal(listing.sources[0].skipped.length, result.summary.skipped.length);
    await retrieval.dispose();
  });

  test("adding what cannot be a source is refused with the reason", async () => {
    const retrieval = service(path.join(scratch, "refused"));
    await assert.rejects(retrieval.add({ path: path.join(scratch, "does-not-exist") }), (error: Error & { code?: string }) => error.code === "INDEX_INPUT_INVALID" && /does not exist/.test(error.message));
    await assert.rejects(retrieval.add({ path: os.homedir() }), /too broad/);
    const single = path.join(scratch, "single.md");
    writeFileSync(single, "# One\n\ntext\n");
    await assert.rejects(retrieval.add({ path: single }), /add the folder that holds it/);
    await assert.rejects(retrieval.remove({ source: "s0000000000" }), (error: Error & { code?: string }) => error.code === "INDEX_SOURCE_NOT_FOUND");
    await retrieval.dispose();
  });

  test("a corrupt, truncated or older index is reported, searched without passages, and rebuilt from its sources", async () => {
    const indexDir = path.join(scratch, "corrupt");
    const docs = path.join(fixtures, "docs");
    const embedder = new HashingEmbedder();
    const retrieval = service(indexDir, {}, embedder);
    const built = await retrieval.add({ path: docs });
    assert.ok((await retrieval.search("heart rate from RR intervals")).passages.length > 0);

    const indexFile = path.join(indexDir, "index.json");
    let good = "";
    const cases: [string, () => void, RegExp][] = [
      ["garbage index.json", () => writeFileSync(indexFile, "{ not json"), /corrupt/],
      ["older format", () => writeFileSync(indexFile, JSON.stringify({ ...JSON.parse(good), version: 0 })), /older version of GPIoT \(format 0; this one reads format 1\)/],
      ["truncated chunks", () => {
        const data = path.join(indexDir, JSON.parse(good).data, "chunks.jsonl");
        writeFileSync(data, readFileSync(data, "utf8").slice(0, 500));
      }, /corrupt/],
      ["vectors cut short", () => {
        const data = path.join(indexDir, JSON.parse(good).data, "vectors.bin");
        writeFileSync(data, readFileSync(data).subarray(0, 100));
      }, /corrupt/],
    ];
    assert.equal(INDEX_FORMAT_VERSION, 1);
    for (const [what, damage, problem] of cases) {
      good = readFileSync(indexFile, "utf8");
      damage();
      const listing = retrieval.list();
      assert.equal(listing.state, "stale", what);
      assert.match(listing.problem ?? "", problem, what);
      // A new process (a restarted engine) opens the damaged files.
      const found = await service(indexDir, {}, embedder).search("heart rate from RR intervals");
      assert.equal(found.passages.length, 0, what);
      assert.match(found.warnings.join(" "), /cannot be used.*gpiot index rebuild/s, what);
      const rebuilt = await retrieval.rebuild();
      assert.match(rebuilt.notes.join(" "), /rebuilt from its sources/, what);
      assert.equal(rebuilt.chunks, built.summary.chunks, what);
      assert.equal(retrieval.list().state, "ready", what);
      assert.ok((await retrieval.search("heart rate from RR intervals")).passages.length > 0, what);
    }
    const generations = readdirSync(indexDir).filter((entry) => /^g\d+$/.test(entry));
    assert.equal(generations.length, 1, "old generations are removed");

    // A corrupt list of sources is kept aside, never deleted.
    writeFileSync(path.join(indexDir, "sources.json"), "[oops");
    const listing = retrieval.list();
    assert.match(listing.notes.join(" "), /moved to .*sources\.json\.corrupt-.*add your folders again/);
    const aside = readdirSync(indexDir).find((entry) => entry.startsWith("sources.json.corrupt-"));
    assert.ok(aside && readFileSync(path.join(indexDir, aside), "utf8") === "[oops");
    await retrieval.dispose();
  });

  test("a cancelled update leaves the index as it was, and the same update runs later", async () => {
    const indexDir = path.join(scratch, "cancelled");
    const first = path.join(scratch, "cancel-first");
    writeDocs(first, { "notes.md": "# Notes\n\nA Butterworth band-pass filter between 5 and 15 Hz isolates the QRS complex.\n" });
    class CancellingEmbedder extends HashingEmbedder {
      cancelAfter = Infinity;
      cancel: () => void = () => undefined;
      override async embedDocument(text: string): Promise<Float32Array> {
        if (this.documents + 1 >= this.cancelAfter) this.cancel();
        return super.embedDocument(text);
      }
    }
    const embedder = new CancellingEmbedder();
    const retrieval = service(indexDir, {}, embedder);
    embedder.cancel = () => retrieval.cancel();
    await retrieval.add({ path: first });
    const before = { index: readFileSync(path.join(indexDir, "index.json"), "utf8"), sources: readFileSync(path.join(indexDir, "sources.json"), "utf8"), entries: readdirSync(indexDir).sort(), listing: retrieval.list() };

    embedder.documents = 0;
    embedder.cancelAfter = 3;
    const docs = path.join(fixtures, "docs");
    await assert.rejects(retrieval.add({ path: docs }), (error: Error & { code?: string }) => error.code === "CANCELLED" && /as it was before/.test(error.message));
    assert.equal(embedder.documents, 3, "it stopped where it was cancelled");
    assert.equal(readFileSync(path.join(indexDir, "index.json"), "utf8"), before.index);
    assert.equal(readFileSync(path.join(indexDir, "sources.json"), "utf8"), before.sources);
    assert.deepEqual(readdirSync(indexDir).sort(), before.entries, "no half-written generation is left");
    assert.deepEqual(retrieval.list(), before.listing);
    assert.equal(retrieval.cancel().cancelled, false, "nothing runs any more");

    embedder.cancelAfter = Infinity;
    const added = await retrieval.add({ path: docs });
    assert.equal(added.existed, false);
    assert.equal(retrieval.list().sources.length, 2);
    await retrieval.dispose();
  });

  test("a lock left by a process that is gone is taken over; one held by a live process refuses", async () => {
    const indexDir = path.join(scratch, "locked");
    const retrieval = service(indexDir);
    mkdirSync(indexDir, { recursive: true });
    writeFileSync(path.join(indexDir, "index.lock"), JSON.stringify({ pid: 2 ** 22 + 12345 }));
    await retrieval.add({ path: path.join(fixtures, "docs"), embeddings: false });
    assert.ok(!existsSync(path.join(indexDir, "index.lock")));
    const sleeper = (await import("node:child_process")).spawn("sleep", ["30"]);
    try {
      writeFileSync(path.join(indexDir, "index.lock"), JSON.stringify({ pid: sleeper.pid }));
      await assert.rejects(retrieval.rebuild(), (error: Error & { code?: string }) => error.code === "INDEX_BUSY" && error.message.includes(String(sleeper.pid)));
    } finally {
      sleeper.kill();
      rmSync(path.join(indexDir, "index.lock"), { force: true });
    }
    await retrieval.dispose();
  });

  test("retrieval off, chosen sources and workspace sources", async () => {
    const indexDir = path.join(scratch, "choices");
    const workspace = path.join(scratch, "workspace");
    writeDocs(workspace, { "docs/notes.md": "# Sensor wiring\n\nThe accelerometer is on I2C bus 1 at address 0x68; step counting reads it at 50 Hz.\n" });
    const base = service(indexDir);
    const docs = await base.add({ path: path.join(fixtures, "docs"), embeddings: false });
    const ws = await base.add({ path: workspace, kind: "workspace", embeddings: false });
    const query = "accelerometer step counting";
    const sourcesOf = async (svc: RetrievalService) => new Set((await svc.search(query, { k: 10 })).passages.map((passage) => passage.citation.sourceId));
    assert.deepEqual(await sourcesOf(base), new Set([docs.source.id]), "a workspace source is not used outside its workspace");
    assert.deepEqual(await sourcesOf(service(indexDir, { workspaceFolders: [workspace] })), new Set([docs.source.id, ws.source.id]));
    assert.deepEqual(await sourcesOf(service(indexDir, { workspaceFolders: [workspace], sources: [workspace] })), new Set([ws.source.id]), "sources by path");
    assert.deepEqual(await sourcesOf(service(indexDir, { workspaceFolders: [workspace], sources: [docs.source.id] })), new Set([docs.source.id]), "sources by id");
    assert.equal((await service(indexDir, { enabled: false }).search(query)).passages.length, 0);
    assert.deepEqual(await service(path.join(scratch, "never-made")).search(query), { passages: [], warnings: [] }, "no index: no passages and nothing to warn about");
    await base.dispose();
  });
});
