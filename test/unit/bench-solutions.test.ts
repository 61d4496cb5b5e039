/**
 * The harness proves itself: on the synthetic data, the hand-written reference solutions score
 * high and the deliberately broken ones score low, through the same path generated programs take
 * (assembled main.py, sandboxed run, contract outputs, scorer). Also the report files.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { runBench, type BenchReport, type TaskResult } from "../../sidecar/src/bench/harness";
import { formatTable, writeReports } from "../../sidecar/src/bench/report";
import { defaultBenchRoot } from "../../sidecar/src/bench/tasks";

const outDir = mkdtempSync(path.join(os.tmpdir(), "gpiot-bench-solutions-"));
let report: BenchReport;
const lines: string[] = [];

before(async () => {
  report = await runBench({
    root: defaultBenchRoot(),
    outDir,
    systems: [{ kind: "solutions" }],
    n: 1,
    k: 1,
    dataPaths: {},
    records: 4,
    engineSettings: {},
    repairRounds: 0,
    verify: { python: "python3", timeoutMs: 60_000, memoryMB: 4096 },
    log: (line) => lines.push(line),
  });
});
after(() => rmSync(outDir, { recursive: true, force: true }));

function result(task: string, solution: string): TaskResult {
  const found = report.results.find((entry) => entry.task === task && entry.system === `solution:${solution}`);
  assert.ok(found, `${task} ${solution}: ${lines.join("\n")}`);
  return found;
}

describe("reference and broken solutions on synthetic data", () => {
  test("ECG: Pan-Tompkins reaches >= 0.95 precision and recall; broken detectors do not", () => {
    const reference = result("ecg-heartbeat", "reference");
    assert.equal(reference.runRate, 1, JSON.stringify(reference.programs[0].runs));
    assert.ok(reference.metrics.precision >= 0.95, `precision ${reference.metrics.precision}`);
    assert.ok(reference.metrics.recall >= 0.95, `recall ${reference.metrics.recall}`);
    assert.equal(reference.passAt1, 1);
    assert.equal(reference.programs[0].runs.length, 4, "one run per record");

    const fixed = result("ecg-heartbeat", "broken-fixed-rate");
    assert.equal(fixed.runRate, 1);
    assert.ok(fixed.metrics.precision < 0.7 && fixed.metrics.recall < 0.7, JSON.stringify(fixed.metrics));
    assert.equal(fixed.passAt1, 0);
    const late = result("ecg-heartbeat", "broken-late");
    assert.ok(late.metrics.precision < 0.05 && late.metrics.recall < 0.05, JSON.stringify(late.metrics));
    const crash = result("ecg-heartbeat", "broken-crash");
    assert.equal(crash.runRate, 0);
    assert.equal(crash.compileRate, 1);
    assert.match(crash.programs[0].failure ?? "", /ZeroDivisionError.*sub-task 2/);
  });

  test("IMU HAR: the reference classifies; a constant guess does not", () => {
    const reference = result("imu-har", "reference");
    assert.ok(reference.metrics.accuracy >= 0.9, `accuracy ${reference.metrics.accuracy}`);
    assert.ok(reference.peakMemoryMB !== null && reference.peakMemoryMB > 0);
    assert.ok(reference.pipelineMs !== null && reference.pipelineMs > 0);
    assert.equal(reference.programs[0].resources?.memory?.limitMB, 500, "checked against the task's constraint");
    assert.equal(reference.programs[0].resources?.memory?.ok, true);
    assert.equal(reference.withinLimitsRate, 1);
    const constant = result("imu-har", "broken-constant");
    assert.ok(constant.metrics.accuracy < 0.3, `accuracy ${constant.metrics.accuracy}`);
  });

  test("multimodal HAR: fusion works; random labels do not", () => {
    const reference = result("multimodal-har", "reference");
    assert.ok(reference.metrics.accuracy >= 0.85, `accuracy ${reference.metrics.accuracy}`);
    const random = result("multimodal-har", "broken-random");
    assert.ok(random.metrics.accuracy < 0.4, `accuracy ${random.metrics.accuracy}`);
  });

  test("the programs never saw the answers", () => {
    const ecg = report.tasks.find((task) => task.id === "ecg-heartbeat")!;
    assert.equal(ecg.source, "synthetic");
    assert.equal(ecg.items, 4);
    const visible = path.join(ecg.dataDir, "visible");
    assert.deepEqual(
      readdirSync(visible).filter((name) => name.endsWith(".atr")),
      [],
    );
    const har = report.tasks.find((task) => task.id === "imu-har")!;
    assert.deepEqual(
      readdirSync(path.join(har.dataDir, "visible", "test")).filter((name) => name.startsWith("y_")),
      [],
    );
  });

  test("report.json, a self-contained report.html and the terminal table", async () => {
    const written = await writeReports(report, outDir);
    const json = JSON.parse(readFileSync(written.json, "utf8")) as BenchReport;
    assert.equal(json.results.length, report.results.length);
    const html = readFileSync(written.html, "utf8");
    assert.match(html, /<svg /);
    assert.doesNotMatch(html, /<script|<link|src=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, "no scripts, links or remote resources");
    for (const task of report.tasks) assert.ok(html.includes(task.title));
    const table = formatTable(report);
    assert.match(table.split("\n")[0], /task\s+system\s+n\s+format\s+compile\s+run\s+pass@1/);
    assert.equal(table.split("\n").length, 2 + report.results.length);
  });
});
