/**
 * TDD from the two papers the tests ship (a WiFi-CSI breathing monitor as PDF, an ECG arrhythmia
 * detector as Markdown), with a scripted teacher: what the records say, where they came from,
 * augmentation A1-A3, RT records, rejections, and resuming after a crash.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { augmentationValues } from "../../sidecar/src/data/augmentation";
import { writeDataset } from "../../sidecar/src/data/dataset";
import { readPaper, type Paper } from "../../sidecar/src/data/papers";
import { DataProgress } from "../../sidecar/src/data/progress";
import { defaultQualityOptions } from "../../sidecar/src/data/quality";
import { TrainingRecordSchema, type DraftRecord } from "../../sidecar/src/data/records";
import { runTdd, type TddOptions, type TddUnit } from "../../sidecar/src/data/tdd";
import { WorkJournal } from "../../sidecar/src/data/workJournal";
import { describeLimits, parseResourceLimits } from "../../sidecar/src/pipeline/requirement";
import { buildIoPrompt, buildTargetPrompt, RT_SYSTEM_PROMPT } from "../../sidecar/src/pipeline/requirementTransformation";
import { buildDecompositionPrompt, TD_SYSTEM_PROMPT } from "../../sidecar/src/pipeline/taskDecomposition";
import { DecompositionSchema } from "../../sidecar/src/schemas";
import { ScriptedTeacher } from "../helpers/scriptedTeacher";
import { repoRoot } from "../helpers/testModels";

/** Code-unit order, as Python's sorted() and Array.prototype.sort() without a comparator. */
const byText = (a: string | undefined, b: string | undefined): number => (a === b ? 0 : a === undefined ? 1 : b === undefined ? -1 : a < b ? -1 : 1);

const fixtures = path.join(repoRoot, "test", "fixtures", "data");
const modules = {
  "4 QRS Detection": "QRS detection",
  "6 Beat Classification": "Beat classification",
  "3 CSI Collection and Resampling": "CSI collection",
  "5 Subcarrier Selection": "Subcarrier selection",
};
let papers: Paper[];
let scratch: string;
const silent = () => new DataProgress({ write: () => true }, { enabled: false, unit: "steps" });

before(async () => {
  papers = [await readPaper(path.join(fixtures, "papers", "ecg-arrhythmia.md"), "ecg-arrhythmia.md"), await readPaper(path.join(fixtures, "pdf", "wifi-csi-breathing.pdf"), "wifi-csi-breathing.pdf")];
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-tdd-test-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

function options(teacher: ScriptedTeacher, outFile: string, extra: Partial<TddOptions> = {}): TddOptions {
  return {
    papers,
    teacher,
    journal: WorkJournal.open<TddUnit>(outFile, { test: outFile }),
    progress: silent(),
    axes: ["modality", "representation", "resources"],
    perRecord: 1,
    withRt: true,
    maxModules: 8,
    maxTokens: 1024,
    ...extra,
  };
}

const userOf = (record: DraftRecord) => record.messages[1].content;
const answerOf = (record: DraftRecord) => JSON.parse(record.messages[2].content);

describe("gpiot data tdd with a scripted teacher", () => {
  test("two passes: modules with provenance, then per module a problem and sub-tasks in the TD stage's prompt form", async () => {
    const teacher = new ScriptedTeacher({ modules });
    const result = await runTdd(options(teacher, path.join(scratch, "a.jsonl"), { axes: [], withRt: false }));
    assert.equal(result.modules, 4);
    const td = result.drafts.filter((record) => record.role === "td");
    assert.equal(td.length, 4);
    for (const record of td) {
      assert.equal(record.messages[0].content, TD_SYSTEM_PROMPT);
      const problem = /^Requirement: (.*)$/m.exec(userOf(record))![1];
      assert.equal(userOf(record), buildDecompositionPrompt({ requirement: problem, limits: null }), "the TD stage's own prompt builder");
      const answer = DecompositionSchema.parse(answerOf(record));
      assert.equal(answer.subTasks.length, 2);
      assert.equal(record.format, "json");
      assert.equal(record.augmentation, null);
      assert.ok(TrainingRecordSchema.safeParse({ ...record, split: "train" }).success);
    }
    const qrs = td.find((record) => userOf(record).includes("QRS detection stage"))!;
    assert.deepEqual(qrs.source, { kind: "paper", file: "ecg-arrhythmia.md", section: "4 QRS Detection" });
    const subcarrier = td.find((record) => userOf(record).includes("Subcarrier selection stage"))!;
    assert.deepEqual(subcarrier.source, { kind: "paper", file: "wifi-csi-breathing.pdf", page: 2, section: "5 Subcarrier Selection" }, "a PDF record names its page");
    const csi = td.find((record) => userOf(record).includes("CSI collection stage"))!;
    assert.equal(csi.source.page, 1);

    const modulePrompts = teacher.requests.filter((request) => request.userPrompt.includes("List the modules"));
    assert.equal(modulePrompts.length, 2, "one window per short paper");
    for (const request of modulePrompts) {
      assert.doesNotMatch(request.userPrompt, /Halperin|Tompkins\. A real-time|References/, "the references are left out");
      const source = (request.jsonSchema as unknown as { properties: { modules: { items: { properties: { source: { enum: string[] } } } } } }).properties.modules.items.properties.source;
      assert.ok(source.enum.length >= 6, "the grammar only lets the teacher cite labels the prompt offers");
    }
    const taskPrompt = teacher.requests.find((request) => request.userPrompt.includes("Module 1: QRS detection"))!;
    assert.match(taskPrompt.userPrompt, /Pan-Tompkins algorithm/, "pass 2 reads the section the module came from");
  });

  test("A1-A3 rewrite each pair: axis and value on the record; A3 values reach the prompt as resource constraints", async () => {
    const teacher = new ScriptedTeacher({ modules: { "4 QRS Detection": "QRS detection", "3 CSI Collection and Resampling": "CSI collection" } });
    const result = await runTdd(options(teacher, path.join(scratch, "b.jsonl"), { withRt: false, perRecord: 2 }));
    const augmented = result.drafts.filter((record) => record.augmentation);
    assert.equal(augmented.length, 2 * 3 * 2, "2 modules x 3 axes x 2 values");
    for (const record of augmented) {
      const { axis, value } = record.augmentation!;
      assert.ok(augmentationValues[axis].some((candidate) => candidate.value === value), `${axis}: ${value}`);
      const problem = /^Requirement: (.*)$/m.exec(userOf(record))![1];
      const limits = axis === "resources" ? parseResourceLimits(value) : null;
      assert.equal(userOf(record), buildDecompositionPrompt({ requirement: problem, limits }));
      if (axis === "resources") assert.ok(userOf(record).includes(describeLimits(parseResourceLimits(value))));
      assert.equal(record.source.kind, "paper", "augmented records keep the provenance of their pair");
    }
    const csiModalities = augmented.filter((record) => record.source.file === "wifi-csi-breathing.pdf" && record.augmentation!.axis === "modality").map((record) => record.augmentation!.value);
    assert.ok(!csiModalities.some((value) => /wifi/i.test(value)), "a WiFi problem is not rewritten to WiFi");
    assert.equal(new Set(augmented.map((record) => record.id)).size, augmented.length);
  });

  test("--rt: the teacher runs the RT stage's prompt chain on every sub-task, later sub-tasks see earlier outputs", async () => {
    const teacher = new ScriptedTeacher({ modules: { "4 QRS Detection": "QRS detection" } });
    const result = await runTdd(options(teacher, path.join(scratch, "c.jsonl"), { axes: [] }));
    const td = result.drafts.find((record) => record.role === "td")!;
    const requirement = /^Requirement: (.*)$/m.exec(userOf(td))![1];
    const subTasks = answerOf(td).subTasks;
    const rt = result.drafts.filter((record) => record.role === "rt");
    assert.equal(rt.length, 2 * subTasks.length, "a target record and an I/O record per sub-task");
    const firstSpec = { target: answerOf(rt[0]).target, ...answerOf(rt[1]) };
    assert.equal(rt[0].messages[0].content, RT_SYSTEM_PROMPT);
    assert.equal(userOf(rt[0]), buildTargetPrompt({ requirement, limits: null, subTask: subTasks[0], previousSpecs: [] }));
    assert.equal(userOf(rt[1]), buildIoPrompt({ requirement, limits: null, subTask: subTasks[0], previousSpecs: [] }, firstSpec.target));
    assert.equal(userOf(rt[3]), buildIoPrompt({ requirement, limits: null, subTask: subTasks[1], previousSpecs: [firstSpec] }, answerOf(rt[2]).target));
    assert.match(userOf(rt[3]), /load_data_for_qrs_detection_out/);
  });

  test("a teacher answer that is not valid is counted as rejected; the run goes on", async () => {
    const teacher = new ScriptedTeacher({
      modules: { "4 QRS Detection": "QRS detection", "6 Beat Classification": "Beat classification" },
      override: (request) => (request.userPrompt.includes("Module 2: Beat classification") ? { text: '{"problem": "unfinished', stopReason: "maxTokens" } : undefined),
    });
    const result = await runTdd(options(teacher, path.join(scratch, "d.jsonl"), { axes: ["modality"], withRt: false }));
    assert.equal(result.drafts.filter((record) => !record.augmentation).length, 1);
    const rejected = result.rejected.filter((rejection) => rejection.item.startsWith("task|"));
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0].reason, "teacher-output-invalid");
    assert.equal(rejected[0].item, "task|ecg-arrhythmia.md|0|1");
    assert.match(rejected[0].detail!, /token limit/);
    assert.ok(result.rejected.some((rejection) => rejection.item === "modules|wifi-csi-breathing.pdf|0"), "a paper whose first part names no module is counted");
  });

  test("a crash mid-run keeps the finished units; the next run does only the rest and ends with the same records", async () => {
    const referenceTeacher = new ScriptedTeacher({ modules });
    const reference = await runTdd(options(referenceTeacher, path.join(scratch, "ref.jsonl"), { withRt: false }));
    const outFile = path.join(scratch, "crash.jsonl");
    const crashing = new ScriptedTeacher({
      modules,
      beforeAnswer: (_, index) => {
        if (index === 7) throw new Error("simulated crash");
      },
    });
    await assert.rejects(runTdd(options(crashing, outFile, { withRt: false })), /simulated crash/);
    const resumed = new ScriptedTeacher({ modules });
    const result = await runTdd(options(resumed, outFile, { withRt: false }));
    assert.equal(crashing.requests.length, 7);
    assert.equal(resumed.requests.length, referenceTeacher.requests.length - 7, "only the unfinished units are asked again");
    assert.deepEqual(
      result.drafts.map((record) => record.id),
      reference.drafts.map((record) => record.id),
    );
    const written = writeDataset({ command: "tdd", outFile, drafts: result.drafts, rejected: result.rejected, quality: defaultQualityOptions, corpus: null, inputs: {}, notes: [] });
    const splitsByPaper = new Map<string, Set<string>>();
    for (const record of written.records) splitsByPaper.set(record.source.file!, (splitsByPaper.get(record.source.file!) ?? new Set()).add(record.split));
    for (const [file, splits] of splitsByPaper) assert.equal(splits.size, 1, `${file} is in one split only`);
  });

  test("a paper longer than the teacher's context is read in windows; each module keeps its own section", async () => {
    const teacher = new ScriptedTeacher({ modules, contextTokens: 1400 });
    const result = await runTdd(options(teacher, path.join(scratch, "windows.jsonl"), { axes: [], withRt: false, maxTokens: 300 }));
    const modulePrompts = teacher.requests.filter((request) => request.userPrompt.includes("List the modules"));
    assert.ok(modulePrompts.length >= 4, `${modulePrompts.length} windows`);
    for (const request of modulePrompts) assert.ok(teacher.countTokens("td", request.userPrompt) + 300 <= 1400, "every prompt fits next to its answer");
    assert.equal(modulePrompts.filter((request) => !request.userPrompt.includes("none if these parts describe no module")).length, 2, "only a paper's first window must name a module");
    assert.deepEqual(
      result.drafts.map((record) => record.source.section).sort(byText),
      Object.keys(modules).sort(),
    );
  });

  test("a prompt that would overflow the teacher's context is refused before generating and counted; the run goes on", async () => {
    const long = "Apply a band-pass filter and locate the peaks of the filtered signal with adaptive thresholds. ".repeat(3).trim();
    const teacher = new ScriptedTeacher({
      modules: { "4 QRS Detection": "QRS detection" },
      contextTokens: 1400,
      override: (request) =>
        request.userPrompt.includes("Write the problem statement")
          ? { text: JSON.stringify({ problem: long, subTasks: [1, 2, 3, 4].map((i) => ({ name: `Step ${i}`, problem: long, steps: [long, long] })) }) }
          : undefined,
    });
    const result = await runTdd(options(teacher, path.join(scratch, "overflow.jsonl"), { axes: ["modality"], withRt: false, maxTokens: 300 }));
    assert.equal(result.drafts.length, 1, "the pair is kept");
    const augment = result.rejected.filter((rejection) => rejection.item.startsWith("augment|"));
    assert.deepEqual(augment.map((rejection) => rejection.reason), ["prompt-too-long"]);
    assert.match(augment[0].detail!, /does not fit the teacher's context of 1400 tokens/);
    assert.ok(!teacher.requests.some((request) => request.userPrompt.startsWith("An IoT programming problem")), "the teacher was not asked");
  });

  test("a teacher context too small for the answer is a clear error", async () => {
    await assert.rejects(runTdd(options(new ScriptedTeacher({ modules, contextTokens: 1200 }), path.join(scratch, "e.jsonl"), { maxTokens: 1024 })), /context \(1200 tokens\) leaves no room/);
  });
});
