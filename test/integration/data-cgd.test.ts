/**
 * `gpiot data cgd` on the machine's own numpy and scipy (and a tiny fixture package with one
 * failing example): D1/D2/D3 records, every sample run in the sandbox, failures dropped and
 * counted; a package that is not installed; resuming after SIGKILL.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { CorpusChunkSchema } from "../../sidecar/src/data/corpus";
import { checkSample } from "../../sidecar/src/data/cgd";
import { DataReportSchema } from "../../sidecar/src/data/dataset";
import { TrainingRecordSchema, type TrainingRecord } from "../../sidecar/src/data/records";
import { workDirFor } from "../../sidecar/src/data/workJournal";
import { cliPath, repoRoot } from "../helpers/testModels";

/** Code-unit order, as Python's sorted() and Array.prototype.sort() without a comparator. */
const byText = (a: string | undefined, b: string | undefined): number => (a === b ? 0 : a === undefined ? 1 : b === undefined ? -1 : a < b ? -1 : 1);

const fixturePackage = path.join(repoRoot, "test", "fixtures", "data", "pkg");
const env = { ...process.env, PYTHONPATH: [fixturePackage, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) };
const FUNCTIONS = ["numpy.interp", "numpy.fft.rfftfreq", "scipy.signal.detrend", "scipy.signal.medfilt", "gpiot_data_fixture.moving_average", "gpiot_data_fixture.heart_rate"];
let scratch: string;

before(() => (scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-cgd-test-"))));
after(() => rmSync(scratch, { recursive: true, force: true }));

function gpiot(args: string[]) {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", env, timeout: 300_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function readRecords(file: string): TrainingRecord[] {
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => TrainingRecordSchema.parse(JSON.parse(line)));
}

function runPython(code: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync("python3", ["-c", code], { encoding: "utf8", env, timeout: 60_000 });
}

describe("gpiot data cgd", () => {
  test("a fixed list of numpy/scipy functions -> D1/D2/D3 records; every sample ran in the sandbox; a failing one is dropped and counted", () => {
    const out = path.join(scratch, "cgd.jsonl");
    const corpusFile = path.join(scratch, "corpus", "docs.jsonl");
    const { code, stdout, stderr } = gpiot(["data", "cgd", "--functions", FUNCTIONS.join(","), "--out", out, "--jobs", "2", "--corpus", corpusFile]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim(), out);
    assert.match(stderr, /Harvested 6 function\(s\) in [\d.]+ s \(numpy [\d.]+, scipy [\d.]+, gpiot_data_fixture/);
    assert.match(stderr, /\[6\/6 functions\] \d+ records, [\d.]+ records\/s, ETA 0:00/);
    const records = readRecords(out);
    assert.ok(records.every((record) => record.role === "cg" && record.format === "json" && record.source.kind === "package"));
    const sets = (fn: string) => records.filter((record) => record.source.function === fn).map((record) => record.source.kind_detail);
    for (const fn of FUNCTIONS) assert.ok(sets(fn).includes("D1"), `${fn} has a D1 record`);
    assert.ok(sets("numpy.interp").includes("D2") && sets("numpy.interp").includes("D3"));
    assert.ok(sets("scipy.signal.detrend").includes("D2") && sets("scipy.signal.detrend").includes("D3"));
    assert.deepEqual(sets("gpiot_data_fixture.moving_average").sort(byText), ["D1", "D2", "D3"]);
    assert.deepEqual(sets("gpiot_data_fixture.heart_rate"), ["D1"], "the example that fails is not kept");

    const report = DataReportSchema.parse(JSON.parse(readFileSync(path.join(scratch, "cgd.report.json"), "utf8")));
    assert.equal(report.rejected["sample-failed"], 1);
    const failed = report.rejections.find((rejection) => rejection.reason === "sample-failed")!;
    assert.equal(failed.item, "gpiot_data_fixture.heart_rate example 1 D2");
    assert.match(failed.detail!, /ZeroDivisionError/);
    const inputs = report.inputs as { samplesRun: number; samplesPassed: number };
    assert.equal(inputs.samplesRun - inputs.samplesPassed, 1);
    assert.ok(inputs.samplesPassed >= records.length, "every kept record's code ran (duplicates may be filtered after)");

    for (const record of records) {
      const answer = JSON.parse(record.messages[2].content) as { code: string; documentation: string; requirements: string[] };
      const prompt = record.messages[1].content;
      assert.match(prompt, /^Overall requirement: /);
      assert.match(prompt, /\*\*Target\*\*\nWrite some code and documentation to /);
      const fn = record.source.function!.replace(/\./g, "\\.");
      assert.match(answer.documentation, record.source.kind_detail === "D1" ? new RegExp(`^# \`${fn}\``) : new RegExp(`\n## \`${fn}\`\n`));
      if (record.source.kind_detail === "D3") {
        assert.doesNotMatch(prompt, /\*\*Input Specification\*\*\n- \(none\)/, "a D3 spec has inputs");
        continue;
      }
      // Independently of the sandbox: the kept code runs and returns the outputs its spec names.
      const outputs = [...prompt.split("**Output Specification**\n")[1].matchAll(/^- (\w+) \(/gm)].map((match) => match[1]);
      const check = runPython(`${answer.code}\nresult = run()\nassert sorted(result) == ${JSON.stringify(outputs.sort(byText))}, sorted(result)\nprint("ran")`);
      assert.equal(check.status, 0, `${record.source.function} ${record.source.kind_detail}: ${check.stderr}`);
    }
    const interp = records.find((record) => record.source.function === "numpy.interp" && record.source.kind_detail === "D2")!;
    assert.match(interp.messages[1].content, /\*\*Output Specification\*\*\n- \w+ \((float|np\.ndarray of shape \(\d+,?\d*\))\): /, "output types were measured in the sandbox");

    const corpus = readFileSync(corpusFile, "utf8").trim().split("\n").map((line) => CorpusChunkSchema.parse(JSON.parse(line)));
    assert.deepEqual([...new Set(corpus.map((chunk) => chunk.source.function))].sort(byText), [...FUNCTIONS].sort(byText));
    assert.ok(corpus.every((chunk) => chunk.source.kind === "package"));
    assert.equal(existsSync(workDirFor(out)), false, "the work folder goes when the run is complete");
  });

  test("the sandbox check: time limit, memory cap, and run() that does not return what the spec promises", async () => {
    const limits = { python: "python3", timeoutMs: 1500, memoryMB: 512 };
    const slow = await checkSample({ code: "import time\n\n\ndef run() -> dict:\n    time.sleep(60)\n    return {'result': 1}\n", setup: "", inputs: [], outputs: ["result"] }, limits);
    assert.deepEqual([slow.ok, slow.reason], [false, "sample-timeout"]);
    const hungry = await checkSample({ code: "def run() -> dict:\n    return {'result': bytearray(2 * 1024 ** 3)}\n", setup: "", inputs: [], outputs: ["result"] }, { ...limits, timeoutMs: 30_000 });
    assert.deepEqual([hungry.ok, hungry.reason], [false, "sample-failed"]);
    assert.match(hungry.detail!, /MemoryError/);
    const wrong = await checkSample({ code: "def run(x) -> dict:\n    return {'other': x}\n", setup: "x = [1, 2]\n", inputs: ["x"], outputs: ["result"] }, { ...limits, timeoutMs: 30_000 });
    assert.deepEqual([wrong.ok, wrong.reason], [false, "sample-failed"]);
    assert.match(wrong.detail!, /run\(\) returned dict with keys \['other'\], not \['result'\]/);
    const good = await checkSample({ code: "def run(x) -> dict:\n    return {'total': sum(x)}\n", setup: "x = [1, 2]\n", inputs: ["x"], outputs: ["total"] }, { ...limits, timeoutMs: 30_000 });
    assert.deepEqual(good.outputs, { total: ["int", ""] });
    assert.deepEqual(good.inputs, { x: ["list", "2 items"] });
  });

  test("a package that is not installed: exit 7, the package and the interpreter named, nothing written", () => {
    const out = path.join(scratch, "missing.jsonl");
    const { code, stderr } = gpiot(["data", "cgd", "--packages", "numpy,gpiot_no_such_package", "--out", out]);
    assert.equal(code, 7, stderr);
    assert.match(stderr, /gpiot_no_such_package is not installed in \S*python\S* \(Python 3\.\d+\.\d+\): install it there \(pip install gpiot_no_such_package\) or choose another interpreter with --python/);
    assert.deepEqual(readdirSync(scratch).filter((name) => name.startsWith("missing") || name.startsWith(".missing")), []);
  });

  test("SIGKILL mid-run: finished functions are kept, the next run does only the rest, no duplicates, the output is valid", async () => {
    const out = path.join(scratch, "killed.jsonl");
    const functions = ["numpy.fft.rfftfreq", "gpiot_data_fixture.moving_average", "gpiot_data_fixture.heart_rate", "numpy.interp"];
    const args = [cliPath, "data", "cgd", "--functions", functions.join(","), "--out", out, "--jobs", "1", "--no-corpus"];
    const journal = path.join(workDirFor(out), "units.jsonl");
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_, signal) => resolve(signal)));
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline) {
      if (existsSync(journal) && readFileSync(journal, "utf8").split("\n").filter(Boolean).length >= 1) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill("SIGKILL");
    assert.equal(await exited, "SIGKILL", `the run ended before it could be killed: ${stderr}`);
    assert.equal(existsSync(out), false, "no records file from an unfinished run");
    const finished = readFileSync(journal, "utf8")
      .split("\n")
      .filter((line) => line.endsWith("}"))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as { unit: string; value: { records: TrainingRecord[] } }];
        } catch {
          return [];
        }
      });
    assert.ok(finished.length >= 1 && finished.length < functions.length, `${finished.length} functions finished before the kill`);

    const resumed = gpiot(args.slice(1));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`Resuming: ${finished.length} of ${functions.length} functions were finished by an earlier run`));
    const progressLines = resumed.stderr.split("\n").filter((line) => /^\[\d+\/4 functions\]/.test(line));
    assert.equal(progressLines.length, functions.length - finished.length, "only the unfinished functions ran again");
    const records = readRecords(out);
    const ids = records.map((record) => record.id);
    assert.equal(new Set(ids).size, ids.length, "no duplicates");
    for (const unit of finished) for (const record of unit.value.records) assert.ok(ids.includes(record.id), `kept: ${unit.unit}`);
    assert.deepEqual([...new Set(records.map((record) => record.source.function))].sort(byText), [...functions].sort(byText));
    assert.equal(existsSync(workDirFor(out)), false);
    assert.equal(existsSync(path.join(scratch, "killed.corpus.jsonl")), false, "--no-corpus");
  });

  test("Ctrl+C (SIGINT) stops the run with exit 130; finished work stays for the next run; no records file", async () => {
    const out = path.join(scratch, "interrupted.jsonl");
    const child = spawn(process.execPath, [cliPath, "data", "cgd", "--functions", "gpiot_data_fixture.moving_average,gpiot_data_fixture.heart_rate,numpy.fft.rfftfreq", "--out", out, "--jobs", "1"], { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let sent = false;
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      if (!sent && /\[1\/3 functions\]/.test(stderr)) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", (exitCode) => resolve(exitCode)));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted; run the same command again to resume/);
    assert.equal(existsSync(out), false);
    assert.ok(readFileSync(path.join(workDirFor(out), "units.jsonl"), "utf8").includes('"unit":"gpiot_data_fixture.moving_average"'));
  });
});
