/** The work journal (resume, torn writes, conflicting runs), whole-file writes, progress, and `gpiot data stats`. */
import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { writeDataset } from "../../sidecar/src/data/dataset";
import { DataProgress, formatDuration } from "../../sidecar/src/data/progress";
import { defaultQualityOptions } from "../../sidecar/src/data/quality";
import { cgRecord, tdRecord } from "../../sidecar/src/data/records";
import { barChart, computeStats, formatStats, renderStatsHtml } from "../../sidecar/src/data/stats";
import { removeStaleTemporaries, WorkJournal, workDirFor, writeFileAtomic } from "../../sidecar/src/data/workJournal";

let scratch: string;
before(() => (scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-journal-test-"))));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("work journal", () => {
  test("finished units survive a new process; a torn last line is cut off; the next unit appends cleanly", () => {
    const out = path.join(scratch, "a.jsonl");
    const first = WorkJournal.open<{ n: number }>(out, { run: 1 });
    first.add("u1", { n: 1 });
    first.add("u2", { n: 2 });
    first.close();
    appendFileSync(path.join(workDirFor(out), "units.jsonl"), '{"unit":"u3","value":{"n"');
    const second = WorkJournal.open<{ n: number }>(out, { run: 1 });
    assert.equal(second.resumedUnits, 2);
    assert.deepEqual(second.get("u2"), { n: 2 });
    assert.equal(second.has("u3"), false);
    second.add("u3", { n: 3 });
    second.close();
    const third = WorkJournal.open<{ n: number }>(out, { run: 1 });
    assert.deepEqual(third.values(), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    third.remove();
    assert.equal(existsSync(workDirFor(out)), false);
  });

  test("a journal of a run with other options is refused until --restart", () => {
    const out = path.join(scratch, "b.jsonl");
    const journal = WorkJournal.open<number>(out, { papers: ["a.pdf"] });
    journal.add("u1", 1);
    journal.close();
    assert.throws(() => WorkJournal.open(out, { papers: ["b.pdf"] }), (error: Error & { code?: string }) => error.code === "RESUME_CONFLICT" && /--restart/.test(error.message));
    const restarted = WorkJournal.open<number>(out, { papers: ["b.pdf"] }, { restart: true });
    assert.equal(restarted.size, 0);
    restarted.remove();
  });

  test("whole-file writes leave no temporary files; stale ones of dead processes are removed", () => {
    const file = path.join(scratch, "whole.txt");
    writeFileAtomic(file, "one\n");
    writeFileAtomic(file, "two\n");
    assert.equal(readFileSync(file, "utf8"), "two\n");
    assert.deepEqual(readdirSync(scratch).filter((name) => name.includes(".tmp-")), []);
    writeFileSync(path.join(scratch, ".whole.txt.tmp-999999-abc"), "half");
    removeStaleTemporaries(file);
    assert.deepEqual(readdirSync(scratch).filter((name) => name.includes(".tmp-")), []);
  });

  test("progress: records/s and an ETA from this run's pace; resumed units count as done", () => {
    const lines: string[] = [];
    const progress = new DataProgress({ write: (text: string) => lines.push(text) }, { enabled: true, unit: "functions" });
    progress.setTotal(10);
    progress.addResumed(4, 12);
    progress.unitDone(3, "numpy.convolve");
    assert.match(lines.at(-1)!, /^\[ 5\/10 functions\] 15 records, [\d.]+ records\/s, ETA \d+:\d\d - numpy\.convolve\n$/);
    assert.equal(formatDuration(3725), "1:02:05");
  });
});

describe("gpiot data stats", () => {
  test("counts, lengths, rejections from the run report, and a self-contained HTML report with SVG charts", () => {
    const out = path.join(scratch, "stats.jsonl");
    const subTasks = [
      { name: "Load", problem: "Read the CSI stream", steps: ["Open it"] },
      { name: "Estimate", problem: "Estimate the breathing rate", steps: ["STFT peak"] },
    ];
    const spec = { target: "Write some code and documentation to filter", inputs: [], outputs: [{ name: "y", type: "np.ndarray", description: "output" }] };
    const drafts = [
      tdRecord({ requirement: "Estimate the breathing rate from WiFi CSI <script>alert(1)</script>", limits: null, subTasks }, { kind: "paper", file: "wifi.pdf", page: 2 }),
      tdRecord({ requirement: "Estimate the breathing rate from IMU data on the chest", limits: null, subTasks }, { kind: "paper", file: "wifi.pdf", page: 2 }, { axis: "modality", value: "IMU (3-axis accelerometer and gyroscope)" }),
      cgRecord({ requirement: "Filter a signal", limits: null, spec }, { code: "def run():\n    return {'y': 1}\n", documentation: "Doc.", requirements: [] }, { kind: "package", package: "scipy", function: "scipy.signal.lfilter", kind_detail: "D2" }),
    ];
    writeDataset({ command: "cgd", outFile: out, drafts, rejected: [{ reason: "sample-failed", item: "scipy.signal.x example 1 D2", detail: "ZeroDivisionError" }], quality: defaultQualityOptions, corpus: null, inputs: {}, notes: [] });
    appendFileSync(out, "not json\n");
    const stats = computeStats(out);
    assert.equal(stats.records, 3);
    assert.deepEqual(stats.byRole, { td: 2, cg: 1 });
    assert.deepEqual(stats.bySource, { paper: 2, package: 1 });
    assert.deepEqual(stats.byAugmentation, { none: 2, modality: 1 });
    assert.deepEqual(stats.byCgdSet, { D2: 1 });
    assert.deepEqual(stats.rejected, { "sample-failed": 1 });
    assert.deepEqual(stats.invalidLines, [{ line: 4, reason: "not JSON" }]);
    assert.equal(stats.promptChars.count, 3);
    assert.ok(stats.promptChars.min <= stats.promptChars.p50 && stats.promptChars.p50 <= stats.promptChars.max);
    assert.match(formatStats(stats), /role: +td 2, cg 1/);
    const html = renderStatsHtml(stats);
    assert.match(html, /^<!DOCTYPE html>/);
    assert.ok((html.match(/<svg /g) ?? []).length >= 8, "charts are inline SVG");
    assert.doesNotMatch(html, /<script/i, "no scripts (record text is escaped)");
    assert.doesNotMatch(html, /(src|href)=/i, "nothing external");
    assert.match(html, /Records per role/);
    assert.match(html, /sample-failed/);
    assert.match(barChart("t", [["a<b", 2]]), /a&lt;b/);
  });

  test("a file that holds no records is named as such", () => {
    const file = path.join(scratch, "notes.jsonl");
    writeFileSync(file, '{"hello": 1}\n');
    assert.throws(() => computeStats(file), /notes\.jsonl: is not a records file: none of its 1 line\(s\) is a valid record/);
    assert.throws(() => computeStats(path.join(scratch, "absent.jsonl")), /absent\.jsonl: cannot be read/);
  });
});
