/** Records (one schema per role, stable content-hash ids) and the quality filters: duplicates, near duplicates, leakage, lengths, splits. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { applyQuality, defaultQualityOptions, jaccard, LEAKAGE_NGRAM, normalizeWords, type QualityOptions } from "../../sidecar/src/data/quality";
import { cgRecord, CgRecordSchema, paperFormatRecord, recordId, rtRecords, tdRecord, TdRecordSchema, TrainingRecordSchema, type DraftRecord } from "../../sidecar/src/data/records";
import { buildCodePrompt, CG_SYSTEM_PROMPT } from "../../sidecar/src/pipeline/codeGeneration";
import { buildTargetPrompt } from "../../sidecar/src/pipeline/requirementTransformation";
import { buildDecompositionPrompt } from "../../sidecar/src/pipeline/taskDecomposition";
import { repoRoot } from "../helpers/testModels";

const subTasks = [
  { name: "Load ECG", problem: "Read the recording", steps: ["Open the file", "Scale to millivolts"] },
  { name: "Detect beats", problem: "Find the QRS complexes", steps: ["Band-pass 5-15 Hz", "Adaptive threshold"] },
];
const spec = { target: "Write some code and documentation to band-pass filter an ECG", inputs: [{ name: "ecg", type: "np.ndarray", description: "samples" }], outputs: [{ name: "filtered", type: "np.ndarray", description: "filtered samples" }] };
const artifact = { code: "from scipy.signal import butter\n\ndef run(ecg):\n    return {'filtered': ecg}\n", documentation: "Filters.", requirements: ["scipy"] };

const words = (count: number, seed: number) => Array.from({ length: count }, (_, i) => `w${(i * 7919 + seed * 104729) % 100003}`).join(" ");

function td(requirement: string, file = "a.md", steps = subTasks): DraftRecord {
  return tdRecord({ requirement, limits: null, subTasks: steps }, { kind: "paper", file });
}

function quality(extra: Partial<QualityOptions> = {}): QualityOptions {
  return { ...defaultQualityOptions, ...extra };
}

describe("records", () => {
  test("each role's record holds the stage's exact prompts; the id is a stable hash of role and messages", () => {
    const record = td("Detect heartbeats in a wearable ECG patch stream");
    assert.equal(record.messages[1].content, buildDecompositionPrompt({ requirement: "Detect heartbeats in a wearable ECG patch stream", limits: null }));
    assert.equal(record.id, recordId("td", record.messages));
    assert.equal(record.id, td("Detect heartbeats in a wearable ECG patch stream").id, "same content, same id");
    assert.notEqual(record.id, td("Detect heartbeats in a wearable ECG patch streams").id);
    assert.match(record.id, /^[0-9a-f]{64}$/);
    assert.ok(TdRecordSchema.safeParse({ ...record, split: "train" }).success);

    const cg = cgRecord({ requirement: "Filter an ECG", limits: null, spec }, artifact, { kind: "package", package: "scipy", function: "scipy.signal.butter", kind_detail: "D2" });
    assert.equal(cg.messages[0].content, CG_SYSTEM_PROMPT);
    assert.equal(cg.messages[1].content, buildCodePrompt({ requirement: "Filter an ECG", limits: null, spec, previousSpecs: [] }));
    assert.deepEqual(Object.keys(JSON.parse(cg.messages[2].content)), ["code", "documentation", "requirements"]);
    assert.ok(CgRecordSchema.safeParse({ ...cg, split: "test" }).success);

    const [target, io] = rtRecords({ requirement: "Filter an ECG", limits: null, subTask: subTasks[1], previousSpecs: [] }, spec, { kind: "synthetic" });
    assert.equal(target.messages[1].content, buildTargetPrompt({ requirement: "Filter an ECG", limits: null, subTask: subTasks[1], previousSpecs: [] }));
    assert.deepEqual(JSON.parse(io.messages[2].content), { inputs: spec.inputs, outputs: spec.outputs });
  });

  test("the schema refuses a wrong id, an answer that is not the role's stage output, and a last message that is not the answer", () => {
    const record = { ...td("Detect heartbeats in a wearable ECG patch stream"), split: "train" };
    const issue = (value: unknown) => {
      const parsed = TrainingRecordSchema.safeParse(value);
      return parsed.success ? "valid" : parsed.error.issues[0].message;
    };
    assert.equal(issue(record), "valid");
    assert.match(issue({ ...record, id: "0".repeat(64) }), /content hash/);
    const cgAnswer = [...record.messages.slice(0, 2), { role: "assistant", content: JSON.stringify(artifact) }];
    assert.match(issue({ ...record, messages: cgAnswer, id: recordId("td", cgAnswer as never) }), /not a valid TD stage output/);
    const noAnswer = record.messages.slice(0, 2);
    assert.match(issue({ ...record, messages: noAnswer, id: recordId("td", noAnswer) }), /last message must be the assistant/);
    assert.match(issue({ ...record, split: "dev" }), /Invalid option|expected one of/);
    const paper = paperFormatRecord("td", [{ role: "user", content: "Decompose: count steps" }, { role: "assistant", content: "- Sub-Task 1 [Filter] ..." }], { kind: "published", file: "x.arrow", section: "row 0" });
    assert.equal(issue({ ...paper, split: "train" }), "valid", "the paper format keeps free-text answers");
  });
});

describe("quality filters", () => {
  test("exact duplicates go, including the same text with other case and spacing", () => {
    const a = td("Detect heartbeats in a wearable ECG patch stream");
    const b = td("Detect heartbeats  in a wearable ecg patch stream");
    const result = applyQuality([a, a, b], quality());
    assert.equal(result.records.length, 1);
    assert.deepEqual(
      result.rejected.map((rejection) => rejection.reason),
      ["duplicate", "duplicate"],
    );
  });

  test("near duplicates (MinHash candidates, Jaccard over word 5-shingles) go; different records with the same fixed instructions stay", () => {
    const long = words(60, 1);
    const steps = (text: string) => [{ name: "Step", problem: text, steps: ["Do it"] }, subTasks[1]];
    const original = td(`Estimate the breathing rate from WiFi CSI ${long}`, "a.md", steps(long));
    const nearCopy = td(`Estimate the breathing rate from WiFi CSI ${long.replace(/w\d+$/, "changed")}`, "b.md", steps(long));
    const others = Array.from({ length: 6 }, (_, i) => td(`Task ${i}: ${words(40, 10 + i)}`, `c${i}.md`, steps(words(60, 20 + i))));
    const result = applyQuality([original, ...others, nearCopy], quality());
    assert.deepEqual(
      result.rejected.map((rejection) => [rejection.reason, rejection.item]),
      [["near-duplicate", nearCopy.id]],
    );
    assert.match(result.rejected[0].detail!, /Jaccard 0\.9\d with/);
    assert.equal(result.records.length, 7);
    assert.equal(applyQuality([original, nearCopy], quality({ nearDuplicateThreshold: 1.01 })).records.length, 2, "a threshold above 1 turns it off");
  });

  test("near duplicates are looked for within one CGD set: a D3 spec of an example stays beside its D2 target", () => {
    const long = words(200, 3);
    const make = (detail: "D2" | "D3", tail: string) =>
      cgRecord({ requirement: `Filter an ECG ${tail}`, limits: null, spec }, { ...artifact, documentation: `${long} ${tail}` }, { kind: "package", package: "scipy", function: "scipy.signal.butter", kind_detail: detail });
    const result = applyQuality([make("D2", "one"), make("D3", "two"), make("D2", "three")], quality());
    assert.deepEqual(
      result.records.map((record) => record.source.kind_detail),
      ["D2", "D3"],
    );
    assert.equal(result.rejected[0].reason, "near-duplicate");
  });

  test(`leakage: a record sharing a ${LEAKAGE_NGRAM}-word sequence with an IoT Bench requirement is dropped`, () => {
    const task = JSON.parse(readFileSync(path.join(repoRoot, "iotbench", "tasks", "ecg-heartbeat.json"), "utf8")) as { id: string; requirement: string };
    const benchWords = normalizeWords(task.requirement);
    const leaking = td(`Please ${benchWords.slice(10, 10 + LEAKAGE_NGRAM).join(" ")} quickly`);
    const close = td(`Please ${benchWords.slice(10, 10 + LEAKAGE_NGRAM - 1).join(" ")} quickly`);
    const result = applyQuality([leaking, close], quality({ heldOut: [{ id: task.id, text: task.requirement }] }));
    assert.deepEqual(
      result.records.map((record) => record.id),
      [close.id],
    );
    assert.equal(result.rejected[0].reason, "leakage");
    assert.match(result.rejected[0].detail!, /ecg-heartbeat/);
  });

  test("length and schema filters name their reason", () => {
    const ok = td("Detect heartbeats in a wearable ECG patch stream");
    const broken = { ...ok, id: "f".repeat(64) };
    const result = applyQuality([ok, broken], quality({ maxAnswerChars: 100 }));
    assert.deepEqual(result.rejected.map((rejection) => rejection.reason).sort(), ["schema", "too-long"]);
    assert.equal(applyQuality([ok], quality({ minPromptChars: 10_000 })).rejected[0].reason, "too-short");
  });

  test("splits by source document: no paper in two splits; shares follow --split", () => {
    const drafts: DraftRecord[] = [];
    for (let paper = 0; paper < 200; paper++) for (let k = 0; k < 3; k++) drafts.push(td(`Paper ${paper} module ${k}: ${words(30, paper * 3 + k)}`, `paper-${paper}.pdf`, [{ name: "A", problem: words(20, 5000 + paper * 3 + k), steps: ["x"] }, subTasks[1]]));
    const result = applyQuality(drafts, quality({ nearDuplicateThreshold: 1.01 }));
    assert.equal(result.records.length, 600);
    const byPaper = new Map<string, Set<string>>();
    for (const record of result.records) byPaper.set(record.source.file!, (byPaper.get(record.source.file!) ?? new Set()).add(record.split));
    assert.ok([...byPaper.values()].every((splits) => splits.size === 1));
    assert.equal(result.documents.train + result.documents.validation + result.documents.test, 200);
    assert.ok(result.documents.train > 140 && result.documents.train < 180, JSON.stringify(result.documents));
    assert.ok(result.documents.test > 5 && result.documents.validation > 5, JSON.stringify(result.documents));
    const again = applyQuality(drafts, quality({ nearDuplicateThreshold: 1.01 }));
    assert.deepEqual(
      again.records.map((record) => record.split),
      result.records.map((record) => record.split),
      "splits are stable",
    );
  });

  test("jaccard", () => {
    assert.equal(jaccard(new Set(["a", "b"]), new Set(["b", "c"])), 1 / 3);
  });
});
