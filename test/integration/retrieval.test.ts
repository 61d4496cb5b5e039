/**
 * Retrieval on real parts: the tiny random embedding model through node-llama-cpp, `gpiot index` as a
 * shell user runs it, the index requests over the sidecar's protocol, and whole syntheses on the tiny
 * models whose RT and CG prompts hold the retrieved passages and whose citations reach the events, the
 * program snapshot and the files written. Model output is noise: only structure is checked.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { SidecarProcess } from "../../sidecar/src/client/sidecarProcess";
import { SynthesisEngine } from "../../sidecar/src/engine/engine";
import { ModelHost } from "../../sidecar/src/models/modelHost";
import type { GenerationRequest } from "../../sidecar/src/pipeline/structuredGeneration";
import { IndexUpdateSummarySchema, type IndexProgress, type JobEvent } from "../../sidecar/src/protocol";
import { LlamaEmbedder } from "../../sidecar/src/retrieval/embedder";
import { indexText, openIndex, SearchableIndex } from "../../sidecar/src/retrieval/indexStore";
import { RetrievalService } from "../../sidecar/src/retrieval/retrievalService";
import { EngineSettingsSchema } from "../../sidecar/src/settings";
import type { Citation } from "../../sidecar/src/schemas";
import { cliPath, repoRoot, setUpTestModels, sidecarPath, type TestModelSetup } from "../helpers/testModels";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG from the MIT-BIH database and report the heart rate";
const DOCS = path.join(repoRoot, "test", "fixtures", "retrieval", "docs");
const PASSAGE_HEADER = "Reference passages from the user's documents";

let setup: TestModelSetup;
let scratch: string;
let llama: Llama;

before(async () => {
  assert.ok(existsSync(sidecarPath), "run `npm run build` first");
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-retrieval-it-"));
  llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
});
after(async () => {
  await llama?.dispose();
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

function gpiot(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", timeout: 120_000, env: { ...process.env, ...env } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("the tiny embedding model", () => {
  test("a query equal to a chunk's text ranks that chunk first, and hybrid results repeat exactly", async () => {
    const embedder = await LlamaEmbedder.load(llama, { path: setup.models.embedding }, { threads: 1 });
    try {
      assert.equal(embedder.dims, 32);
      const indexDir = path.join(scratch, "identity");
      const settings = EngineSettingsSchema.parse({ retrieval: { indexDir } });
      const retrieval = new RetrievalService({ settings, manifestPath: () => setup.manifestPath, runtime: () => Promise.resolve(llama), embedder });
      const added = await retrieval.add({ path: DOCS });
      assert.equal(added.summary.embedding?.key, embedder.key);
      assert.equal(added.summary.vectors, added.summary.chunks);
      const state = openIndex(indexDir);
      const index = new SearchableIndex(state.built!, state.sources);
      for (const chunk of index.chunks) {
        const vector = await embedder.embedQuery(indexText(chunk));
        const [best] = index.search("", vector, 1);
        assert.equal(best.chunk.textHash, chunk.textHash, `identical text ranks its own chunk first (${chunk.file} § ${chunk.section})`);
        assert.equal(best.vectorRank, 1);
      }
      const queries = ["band-pass filter for the ECG", "count steps", "CFAR radar detection"];
      const run = async () => Promise.all(queries.map(async (query) => (await retrieval.search(query, { k: 5 })).passages.map((passage) => `${passage.citation.chunkId}@${passage.citation.score}`)));
      const first = await run();
      assert.ok(first.every((ranking) => ranking.length === 5));
      assert.deepEqual(await run(), first);
      const again = new RetrievalService({ settings, manifestPath: () => setup.manifestPath, runtime: () => Promise.resolve(llama), embedder });
      assert.deepEqual(await Promise.all(queries.map(async (query) => (await again.search(query, { k: 5 })).passages.map((passage) => `${passage.citation.chunkId}@${passage.citation.score}`))), first, "the same ranking after reopening the index");
    } finally {
      await embedder.dispose();
    }
  });
});

describe("gpiot index", () => {
  test("add, add again, change one file, list, search, remove, rebuild", () => {
    const docs = path.join(scratch, "cli-docs");
    cpSync(DOCS, docs, { recursive: true });
    const env = { GPIOT_INDEX_DIR: path.join(scratch, "cli-index") };
    const common = ["--manifest", setup.manifestPath, "--profile", "tiny", "--threads", "1"];
    const summaryOf = (stdout: string) => IndexUpdateSummarySchema.parse(JSON.parse(stdout).summary ?? JSON.parse(stdout));

    const first = gpiot(["index", "add", docs, ...common, "--json"], env);
    assert.equal(first.code, 0, first.stderr);
    const added = summaryOf(first.stdout);
    assert.equal(added.files.read, 8);
    assert.equal(added.embedded, added.chunks, "every chunk embedded with the profile's embedding model");
    assert.match(added.embedding?.key ?? "", /^tiny-embed\.gguf:/);

    const again = gpiot(["index", "add", docs, ...common, "--json"], env);
    assert.equal(summaryOf(again.stdout).embedded, 0, "nothing new to embed");

    const file = path.join(docs, "wfdb.md");
    writeFileSync(file, readFileSync(file, "utf8").replace("Format 212 packs two 12-bit samples into three bytes.", "Format 212 packs two 12-bit samples into three bytes; format 16 stores one sample in two bytes."));
    const changed = summaryOf(gpiot(["index", "add", docs, ...common, "--json"], env).stdout);
    assert.deepEqual(changed.files, { read: 1, unchanged: 7, removed: 0 });
    assert.equal(changed.embedded, 1, "only the one changed chunk of the changed file is embedded again");

    const list = gpiot(["index", "list"], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`folder\\s+${docs.replace(/[/\\]/g, "[/\\\\]")}`));
    assert.match(list.stdout, /8 document\(s\), \d+ chunks/);

    const search = gpiot(["index", "search", "write a WFDB record in format 212", ...common], env);
    assert.equal(search.code, 0, search.stderr);
    assert.match(search.stdout, /\[1\] .*wfdb\.md/);

    writeFileSync(path.join(env.GPIOT_INDEX_DIR, "index.json"), "corrupted");
    const broken = gpiot(["index", "list"], env);
    assert.match(broken.stdout, /Problem: The index in .* is corrupt .*Run `gpiot index rebuild`/);
    const rebuilt = gpiot(["index", "rebuild", ...common], env);
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.match(rebuilt.stdout, /rebuilt from its sources/);

    // gpiot synthesize uses the index by default; --no-retrieval and --k change that.
    const programCitations = (outDir: string) =>
      (JSON.parse(readFileSync(path.join(outDir, "gpiot.json"), "utf8")) as { parts: { citations: { spec: Citation[]; code: Citation[] } }[] }).parts.map((part) => [part.citations.spec.length, part.citations.code.length]);
    const withIndex = gpiot(["synthesize", REQUIREMENT, "--out", path.join(scratch, "cli-with"), "--k", "2", ...common], env);
    assert.equal(withIndex.code, 0, withIndex.stderr);
    assert.match(withIndex.stderr, /spec ready: .*\(2 passage\(s\) from your documents\)/);
    const cited = programCitations(path.join(scratch, "cli-with"));
    assert.ok(cited.length >= 1 && cited.every(([spec, code]) => spec === 2 && code === 2), JSON.stringify(cited));
    const without = gpiot(["synthesize", REQUIREMENT, "--out", path.join(scratch, "cli-without"), "--no-retrieval", ...common], env);
    assert.equal(without.code, 0, without.stderr);
    assert.doesNotMatch(without.stderr, /passage/);
    assert.ok(programCitations(path.join(scratch, "cli-without")).every(([spec, code]) => spec === 0 && code === 0));

    const removed = gpiot(["index", "remove", docs], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /Removed folder/);
    assert.match(gpiot(["index", "list"], env).stdout, /No sources yet/);

    assert.equal(gpiot(["index", "add", path.join(scratch, "nowhere")], env).code, 7);
    assert.equal(gpiot(["index", "remove", "s0000000000"], env).code, 7);
    assert.equal(gpiot(["index", "frobnicate"], env).code, 2);
    assert.equal(gpiot(["index", "add"], env).code, 2);
  });
});

function citationsOf(events: JobEvent[], type: "specReady" | "codeReady", subTaskId: string): Citation[] {
  const event = events.find((candidate) => candidate.type === type && candidate.subTaskId === subTaskId) as { citations?: Citation[] } | undefined;
  return event?.citations ?? [];
}

describe("the sidecar with an index", () => {
  let sidecar: SidecarProcess;
  let indexDir: string;
  const progress: IndexProgress[] = [];

  before(async () => {
    indexDir = path.join(scratch, "sidecar-index");
    sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: setup.manifestPath, profile: "tiny", threads: 1, retrieval: { indexDir } } });
    sidecar.client.onIndexProgress((event) => progress.push(event));
  });
  after(async () => {
    assert.equal(await sidecar.dispose(), 0);
  });

  test("index requests: add with progress, list, search, bad params", async () => {
    const empty = await sidecar.client.request("indexList");
    assert.equal(empty.state, "none");
    const added = await sidecar.client.request("indexAdd", { path: DOCS });
    assert.equal(added.existed, false);
    assert.ok(added.summary.chunks >= 40);
    assert.equal(added.summary.embedded, added.summary.chunks, "embedded with the tiny profile's embedding model");
    assert.ok(progress.some((event) => event.operation === "add" && event.phase === "read"));
    assert.ok(progress.some((event) => event.phase === "embed"));
    const listing = await sidecar.client.request("indexList");
    assert.equal(listing.state, "ready");
    assert.equal(listing.sources[0].path, DOCS);
    const found = await sidecar.client.request("indexSearch", { query: "heart rate in beats per minute from RR intervals", k: 3 });
    assert.equal(found.passages.length, 3);
    assert.ok(found.passages.some((passage) => passage.citation.document === "wfdb.md"));
    await assert.rejects(sidecar.client.request("indexAdd", { path: "/tmp/a\u0000b" }), (error: { code: number; message: string }) => error.code === -32602 && /NUL/.test(error.message));
    await assert.rejects(sidecar.client.request("indexAdd", { path: path.join(scratch, "missing") }), (error: { data?: { code: string } }) => error.data?.code === "INDEX_INPUT_INVALID");
    await assert.rejects(sidecar.client.request("indexRemove", { source: "s0000000000" }), (error: { data?: { code: string } }) => error.data?.code === "INDEX_SOURCE_NOT_FOUND");
  });

  test("gpiot/cancelIndex stops an update while it embeds; the index stays as it was and keeps serving", async () => {
    const big = path.join(scratch, "big-docs");
    for (let copy = 0; copy < 20; copy++) {
      cpSync(DOCS, path.join(big, `copy${copy}`), { recursive: true });
      for (const name of readdirSync(path.join(big, `copy${copy}`))) {
        const file = path.join(big, `copy${copy}`, name);
        writeFileSync(file, readFileSync(file, "utf8").replace(/\n\n/g, ` (copy ${copy})\n\n`));
      }
    }
    const before = await sidecar.client.request("indexList");
    const embedding = new Promise<void>((resolve) => {
      const subscription = sidecar.client.onIndexProgress((event) => {
        if (event.phase === "embed" && event.done > 0) {
          subscription.dispose();
          resolve();
        }
      });
    });
    const adding = sidecar.client.request("indexAdd", { path: big });
    const outcome = adding.then(
      () => "finished",
      (error: { data?: { code: string }; message: string }) => `${error.data?.code}: ${error.message}`,
    );
    await Promise.race([embedding, outcome]);
    assert.deepEqual(await sidecar.client.request("cancelIndex"), { cancelled: true });
    assert.match(await outcome, /^CANCELLED: .*as it was before/);
    assert.deepEqual(await sidecar.client.request("indexList"), before, "the index and its sources as before");
    assert.equal((await sidecar.client.request("indexSearch", { query: "heart rate", k: 2 })).passages.length, 2);
  });

  test("a synthesis puts passages into RT and CG, and the citations reach the events, the snapshot and the files", async () => {
    const outDir = path.join(scratch, "with-passages");
    const { jobId, programId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir });
    const last = await sidecar.waitForJob(jobId);
    assert.equal(last.type, "jobFinished", JSON.stringify(last));
    const events = sidecar.eventsOf(jobId);
    const snapshot = await sidecar.client.request("getProgram", { programId });
    assert.ok(snapshot.subTasks.length >= 2);
    for (const entry of snapshot.subTasks) {
      for (const stage of ["rt", "cg"] as const) {
        const retrieved = events.find((event) => event.type === "passagesRetrieved" && event.stage === stage && event.subTaskId === entry.id);
        assert.ok(retrieved && retrieved.type === "passagesRetrieved", `${stage} of ${entry.id} retrieved passages`);
        assert.ok(retrieved.citations.length >= 1 && retrieved.citations.length <= 4);
        assert.ok(retrieved.promptTokens > 0);
        for (const citation of retrieved.citations) {
          assert.ok(citation.path.startsWith(DOCS) && existsSync(citation.path), citation.path);
          assert.ok(citation.line! >= 1 && citation.section);
        }
        const ready = citationsOf(events, stage === "rt" ? "specReady" : "codeReady", entry.id);
        assert.deepEqual(ready, retrieved.citations, `${stage === "rt" ? "specReady" : "codeReady"} carries the citations`);
        assert.deepEqual(stage === "rt" ? entry.specCitations : entry.codeCitations, retrieved.citations, "the snapshot keeps them");
      }
    }
    const manifest = JSON.parse(readFileSync(path.join(outDir, "gpiot.json"), "utf8"));
    assert.deepEqual(
      manifest.parts.map((part: { citations: { spec: Citation[]; code: Citation[] } }) => part.citations),
      snapshot.subTasks.map((entry) => ({ spec: entry.specCitations, code: entry.codeCitations })),
      "gpiot.json records every part's citations",
    );
    const readme = readFileSync(path.join(outDir, "README.md"), "utf8");
    const modules = readdirSync(outDir).filter((name) => /^task_\d\d.*\.py$/.test(name));
    snapshot.subTasks.forEach((entry, index) => {
      const module = readFileSync(path.join(outDir, modules[index]), "utf8");
      assert.match(module, /# Written with passages from these sources:/);
      for (const citation of [...entry.specCitations!, ...entry.codeCitations!]) {
        assert.ok(readme.includes(`\`${citation.path}:${citation.line}\``), `README names ${citation.path}:${citation.line}`);
        assert.ok(module.includes(`${citation.path}:${citation.line}`), `the module names ${citation.path}:${citation.line}`);
      }
    });
    assert.equal((readme.match(/#### Sources/g) ?? []).length, snapshot.subTasks.length);
  });

  test("an index that cannot be used gives a warning, no passages, and the job still finishes", async () => {
    const indexFile = path.join(indexDir, "index.json");
    const good = readFileSync(indexFile, "utf8");
    // The sidecar keeps a loaded index until index.json changes: replace it by a broken one.
    writeFileSync(indexFile, `${good.slice(0, good.length / 2)}`);
    try {
      const { jobId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
      const last = await sidecar.waitForJob(jobId);
      assert.equal(last.type, "jobFinished", JSON.stringify(last));
      const events = sidecar.eventsOf(jobId);
      const warnings = events.filter((event) => event.type === "warning");
      assert.equal(warnings.length, 1, "one warning per job, not one per sub-task");
      assert.ok(warnings[0].type === "warning" && warnings[0].code === "RETRIEVAL_UNAVAILABLE" && /corrupt.*gpiot index rebuild/s.test(warnings[0].message), JSON.stringify(warnings[0]));
      assert.ok(events.filter((event) => event.type === "passagesRetrieved").length === 0);
      assert.ok(events.filter((event) => event.type === "specReady").every((event) => event.type === "specReady" && event.citations?.length === 0));
    } finally {
      const rebuilt = await sidecar.client.request("indexRebuild");
      assert.match(rebuilt.notes.join(" "), /rebuilt from its sources/);
    }
  });
});

describe("the prompts", () => {
  test("RT's target and I/O prompts and CG's prompt contain the retrieved passages; without retrieval they do not", async () => {
    const indexDir = path.join(scratch, "prompts-index");
    const settings = { manifestPath: setup.manifestPath, profile: "tiny", threads: 1, retrieval: { indexDir } };
    const prompts: GenerationRequest[] = [];
    const original = Reflect.get(ModelHost.prototype, "generate") as ModelHost["generate"];
    // A spy that records each prompt and passes it to the real model.
    ModelHost.prototype.generate = function (this: ModelHost, request: GenerationRequest) {
      prompts.push(request);
      return original.call(this, request);
    };
    const engine = new SynthesisEngine(settings);
    try {
      await engine.retrievalIndex.add({ path: DOCS });
      const events: JobEvent[] = [];
      engine.onJobEvent((event) => events.push(event));
      const run = async (eng: SynthesisEngine) => {
        const { jobId } = eng.synthesize({ requirement: REQUIREMENT });
        return new Promise<JobEvent>((resolve) => eng.onJobEvent((event) => (event.jobId === jobId && (event.type === "jobFinished" || event.type === "jobFailed") ? resolve(event) : undefined)));
      };
      assert.equal((await run(engine)).type, "jobFinished");
      const rt = prompts.filter((prompt) => prompt.role === "rt");
      const cg = prompts.filter((prompt) => prompt.role === "cg");
      assert.ok(rt.length >= 4 && cg.length >= 2, `${rt.length} RT and ${cg.length} CG prompts`);
      const retrieved = events.filter((event) => event.type === "passagesRetrieved");
      for (const prompt of [...rt, ...cg]) {
        assert.ok(prompt.userPrompt.includes(PASSAGE_HEADER), `a ${prompt.role} prompt holds the passage block`);
        const match = retrieved.find((event) => event.type === "passagesRetrieved" && event.stage === prompt.role && event.citations.every((citation) => prompt.userPrompt.includes(`[${citation.n}] (`) && prompt.userPrompt.includes(citation.excerpt.slice(0, 40))));
        assert.ok(match, `the ${prompt.role} prompt holds the passages its event cites`);
      }
      assert.ok(rt.some((prompt) => prompt.userPrompt.includes('"target"')) && rt.some((prompt) => prompt.userPrompt.includes('"inputs"')), "both RT prompts");

      prompts.length = 0;
      const off = new SynthesisEngine({ ...settings, retrieval: { indexDir, enabled: false } });
      try {
        assert.equal((await run(off)).type, "jobFinished");
        assert.ok(prompts.length >= 4 && prompts.every((prompt) => !prompt.userPrompt.includes(PASSAGE_HEADER)), "retrieval off: no passages");
      } finally {
        await off.dispose();
      }
    } finally {
      ModelHost.prototype.generate = original;
      await engine.dispose();
    }
  });
});
