/**
 * `gpiot data` as a shell user runs it: TDD from the shipped papers with the tiny model as the
 * teacher (A1-A3 and RT included), import of the published layout, stats with its HTML report,
 * and bad inputs with their exit codes, leaving nothing half-written.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { CorpusChunkSchema } from "../../sidecar/src/data/corpus";
import { DataReportSchema } from "../../sidecar/src/data/dataset";
import { TrainingRecordSchema } from "../../sidecar/src/data/records";
import { cliPath, repoRoot, setUpTestModels, type TestModelSetup } from "../helpers/testModels";

/** Code-unit order, as Python's sorted() and Array.prototype.sort() without a comparator. */
const byText = (a: string | undefined, b: string | undefined): number => (a === b ? 0 : a === undefined ? 1 : b === undefined ? -1 : a < b ? -1 : 1);

const fixtures = path.join(repoRoot, "test", "fixtures", "data");
let setup: TestModelSetup;
let scratch: string;
let papers: string;

function gpiot(args: string[]) {
  const result = spawnSync(process.execPath, [cliPath, "data", ...args], { encoding: "utf8", timeout: 300_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

before(async () => {
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-data-cli-test-"));
  papers = path.join(scratch, "papers");
  mkdirSync(papers);
  copyFileSync(path.join(fixtures, "pdf", "wifi-csi-breathing.pdf"), path.join(papers, "wifi-csi-breathing.pdf"));
  copyFileSync(path.join(fixtures, "papers", "ecg-arrhythmia.md"), path.join(papers, "ecg-arrhythmia.md"));
});
after(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

describe("gpiot data (CLI)", () => {
  test("tdd with the tiny model as the teacher: both passes, A1-A3 and RT run; files are whole and valid; the work folder goes", () => {
    const out = path.join(scratch, "tdd", "tdd.jsonl");
    const { code, stdout, stderr } = gpiot(["tdd", "--papers", papers, "--out", out, "--model", setup.models.base, "--threads", "1", "--augment", "A1,A2,A3", "--rt", "--max-modules", "2", "--max-tokens", "384"]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim(), out);
    assert.match(stderr, /Read 2 paper\(s\): ecg-arrhythmia\.md \(8 sections\), wifi-csi-breathing\.pdf \(8 sections\)/);
    assert.match(stderr, /\[\d+\/\d+ steps\] \d+ records, [\d.]+ records\/s, ETA (\d+:\d\d|\?)/);
    for (const axis of ["modality", "representation", "resources"]) assert.match(stderr, new RegExp(`\\] \\d+ records.* - ${axis}: `), `${axis} augmentation ran`);
    const records = readFileSync(out, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => TrainingRecordSchema.parse(JSON.parse(line)));
    assert.ok(records.some((record) => record.role === "td" && !record.augmentation), "TD pairs");
    assert.ok(records.some((record) => record.role === "rt"), "RT records from the teacher's RT chain");
    const constrained = records.find((record) => record.augmentation?.axis === "resources");
    assert.ok(constrained, "an A3 record (the tiny model's other rewrites are near duplicates of each other)");
    assert.match(constrained.messages[1].content, /Resource constraints \(must hold\): /);
    assert.ok(records.every((record) => record.source.kind === "paper" && ["ecg-arrhythmia.md", "wifi-csi-breathing.pdf"].includes(record.source.file!) && record.source.section));
    assert.ok(records.filter((record) => record.source.file === "wifi-csi-breathing.pdf").every((record) => record.source.page !== undefined), "PDF records name their page");
    const report = DataReportSchema.parse(JSON.parse(readFileSync(path.join(scratch, "tdd", "tdd.report.json"), "utf8")));
    assert.deepEqual(report.methods.heldOutTasks, ["ecg-heartbeat", "imu-har", "multimodal-har"], "the shipped IoT Bench tasks are held out");
    const modules = (report.inputs as { modules: number }).modules;
    assert.ok(modules >= 2, "pass 1 found modules in both papers");
    const rejected = Object.values(report.rejected).reduce((sum, count) => sum + count, 0);
    assert.ok(report.records + rejected >= modules, "every module ends as records or as counted rejections");
    const corpus = readFileSync(path.join(scratch, "tdd", "tdd.corpus.jsonl"), "utf8").trim().split("\n").map((line) => CorpusChunkSchema.parse(JSON.parse(line)));
    assert.deepEqual([...new Set(corpus.map((chunk) => chunk.source.file))].sort(byText), ["ecg-arrhythmia.md", "wifi-csi-breathing.pdf"]);
    assert.ok(corpus.some((chunk) => chunk.source.page === 2 && chunk.source.section === "6 Breathing Rate Estimation"));
    assert.deepEqual(readdirSync(path.join(scratch, "tdd")).sort(byText), ["tdd.corpus.jsonl", "tdd.jsonl", "tdd.report.json"], "no work folder or temporary file is left");
  });

  test("import the published layout, then stats: counts on stdout, unparseable rows reported, an HTML report with charts", () => {
    const out = path.join(scratch, "published.jsonl");
    const imported = gpiot(["import", path.join(fixtures, "published", "GPIoT_Task_Decomposition"), "--out", out]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stderr, /Read 6 row\(s\) from 2 file\(s\); 2 could not be parsed \(first: GPIoT_Task_Decomposition\/train\/data-00000-of-00001\.arrow row 3: an \[INST\] instruction is not closed by \[\/INST\]\)/);
    assert.match(imported.stderr, /Wrote 4 records \(td 4\)/);
    assert.match(imported.stderr, /rejected: unparseable 2/);
    const stats = gpiot(["stats", out]);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(stats.stdout, /published\.jsonl: 4 records/);
    assert.match(stats.stdout, /role: +td 4/);
    assert.match(stats.stdout, /split: +train 3, test 1/);
    assert.match(stats.stdout, /rejected: +unparseable 2/);
    const html = readFileSync(path.join(scratch, "published.stats.html"), "utf8");
    assert.match(html, /<svg /);
    assert.doesNotMatch(html, /<script/i);
    const json = gpiot(["stats", out, "--json", "--html", path.join(scratch, "other.html")]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).records, 4);
    assert.ok(existsSync(path.join(scratch, "other.html")));
  });

  test("bad inputs: a clear error naming the file, a documented exit code, nothing written", () => {
    const dir = path.join(scratch, "bad");
    mkdirSync(dir);
    const folder = (name: string, files: [string, string][]) => {
      const folderPath = path.join(dir, name);
      mkdirSync(folderPath);
      for (const [source, target] of files) copyFileSync(source, path.join(folderPath, target));
      return folderPath;
    };
    const empty = folder("empty", []);
    const encrypted = folder("encrypted", [[path.join(fixtures, "bad", "encrypted.pdf"), "locked.pdf"]]);
    const corrupt = folder("corrupt", [[path.join(fixtures, "bad", "corrupt.pdf"), "broken.pdf"]]);
    const latin1 = folder("latin1", [[path.join(fixtures, "bad", "latin1.txt"), "notes.txt"]]);
    const out = path.join(dir, "out", "records.jsonl");
    const model = ["--model", setup.models.base, "--threads", "1"];
    const cases: [string[], number, RegExp][] = [
      [["tdd", "--papers", empty, "--out", out, ...model], 7, /empty: holds no papers/],
      [["tdd", "--papers", path.join(dir, "nowhere"), "--out", out, ...model], 7, /nowhere: the papers folder does not exist/],
      [["tdd", "--papers", encrypted, "--out", out, ...model], 7, /locked\.pdf: is encrypted/],
      [["tdd", "--papers", corrupt, "--out", out, ...model], 7, /broken\.pdf: is not a readable PDF/],
      [["tdd", "--papers", latin1, "--out", out, ...model], 7, /notes\.txt: is not valid UTF-8 text/],
      [["tdd", "--papers", papers, "--out", out, "--model", path.join(dir, "absent.gguf")], 5, /absent\.gguf/],
      [["tdd", "--papers", papers, "--out", out], 2, /--model FILE or --profile NAME/],
      [["tdd", "--papers", papers, "--out", out, ...model, "--augment", "A4"], 2, /--augment takes A1/],
      [["import", path.join(fixtures, "bad", "no-data-column"), "--out", out], 7, /data-00000-of-00001\.arrow: has no `data` column/],
      [["import", path.join(fixtures, "published", "cg.jsonl")], 2, /--out FILE is required/],
      [["cgd", "--papers", papers, "--out", out], 2, /--papers does not go with gpiot data cgd/],
      [["frobnicate"], 2, /unknown data command "frobnicate"/],
      [["stats", path.join(dir, "absent.jsonl")], 7, /absent\.jsonl: cannot be read/],
    ];
    for (const [args, expected, message] of cases) {
      const { code, stderr } = gpiot(args);
      assert.equal(code, expected, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr, message);
      assert.equal(existsSync(path.dirname(out)) ? readdirSync(path.dirname(out)).length : 0, 0, `${args[0]} wrote nothing`);
    }

    const taken = path.join(dir, "taken.jsonl");
    writeFileSync(taken, "mine\n");
    const exists = gpiot(["import", path.join(fixtures, "published", "cg.jsonl"), "--out", taken]);
    assert.equal(exists.code, 4, exists.stderr);
    assert.match(exists.stderr, /taken\.jsonl already exists; choose another --out or add --overwrite/);
    assert.equal(readFileSync(taken, "utf8"), "mine\n", "nothing the user wrote is overwritten without asking");
    const replaced = gpiot(["import", path.join(fixtures, "published", "cg.jsonl"), "--out", taken, "--overwrite", "--split", "0,0,1"]);
    assert.equal(replaced.code, 0, replaced.stderr);
    const lines = readFileSync(taken, "utf8").trim().split("\n");
    assert.equal(lines.length, 2);
    assert.ok(lines.every((line) => JSON.parse(line).split === "test"), "--split 0,0,1 puts every document in test");
  });
});
