/**
 * IoT Bench keeps its answers out of the program's reach: a program that searches the filesystem
 * for the withheld test labels or beat annotations of its own data (a file next to a byte-equal
 * copy of its inputs) finds nothing and scores as chance, on synthetic data everywhere and on a
 * real dataset folder (which holds its answers) where the sandbox can hide folders.
 */
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { ecgOptionsFor, generateEcg } from "../../sidecar/src/bench/ecgsyn";
import { generateHar } from "../../sidecar/src/bench/har";
import { runBench, type BenchReport, type TaskResult } from "../../sidecar/src/bench/harness";
import { defaultBenchRoot } from "../../sidecar/src/bench/tasks";
import { NORMAL, writeAnnotations, writeRecord } from "../../sidecar/src/bench/wfdb";
import { probeIsolation, resolvePython } from "../../sidecar/src/verify/pythonEnv";

const here = path.dirname(fileURLToPath(import.meta.url));
const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-bench-answers-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A bench root with the shipped tasks (own seeds, so no other copy of the data matches) and the cheats. */
function cheatBenchRoot(): string {
  const root = path.join(scratch, "iotbench");
  mkdirSync(path.join(root, "tasks"), { recursive: true });
  for (const file of readdirSync(path.join(defaultBenchRoot(), "tasks"))) {
    const task = JSON.parse(readFileSync(path.join(defaultBenchRoot(), "tasks", file), "utf8"));
    task.synthetic.seed = (task.synthetic.seed ?? 0) + 7919;
    if (task.synthetic.durationS) task.synthetic.durationS = 20;
    writeFileSync(path.join(root, "tasks", file), JSON.stringify(task));
  }
  cpSync(path.join(here, "..", "fixtures", "bench-cheats"), path.join(root, "solutions"), { recursive: true });
  return root;
}

const python = await resolvePython("python3");
const isolation = await probeIsolation(python.executable);

async function bench(root: string, outDir: string, dataPaths: Record<string, string> = {}, taskIds?: string[]): Promise<{ report: BenchReport; lines: string[] }> {
  const lines: string[] = [];
  const report = await runBench({
    root,
    outDir,
    taskIds,
    systems: [{ kind: "solutions" }],
    n: 1,
    k: 1,
    dataPaths,
    records: 2,
    engineSettings: {},
    repairRounds: 0,
    verify: { python: "python3", timeoutMs: 120_000, memoryMB: 4096 },
    log: (line) => lines.push(line),
  });
  return { report, lines };
}

function cheat(report: BenchReport, lines: string[], task: string): TaskResult {
  const found = report.results.find((entry) => entry.task === task && entry.system === "solution:cheat");
  assert.ok(found, lines.join("\n"));
  assert.equal(found.runRate, 1, `the cheat runs: ${JSON.stringify(found.programs[0].runs)}`);
  return found;
}

describe("withheld answers are out of the program's reach", () => {
  let root: string;
  before(() => {
    root = cheatBenchRoot();
  });

  test("synthetic data: a program that searches the filesystem for the answers scores as chance", async () => {
    const { report, lines } = await bench(root, path.join(scratch, "synthetic"));
    const har = cheat(report, lines, "imu-har");
    assert.ok(har.metrics.accuracy <= 0.2, `IMU HAR: the cheat found the test labels (accuracy ${har.metrics.accuracy})`);
    const multimodal = cheat(report, lines, "multimodal-har");
    assert.ok(multimodal.metrics.accuracy <= 0.2, `multimodal: the cheat found the test labels (accuracy ${multimodal.metrics.accuracy})`);
    const ecg = cheat(report, lines, "ecg-heartbeat");
    assert.equal(ecg.metrics.recall, 0, `ECG: the cheat found the annotations (${JSON.stringify(ecg.metrics)})`);
    assert.match(report.environment.answers, /never written|hidden/);
  });

  test("a real dataset folder holds its answers: hidden from the program where the sandbox can hide folders", async (t) => {
    const real = path.join(scratch, "real");
    await generateHar(path.join(real, "har"), { trainPerActivity: 10, testPerActivity: 10, seed: 4242 });
    const records = path.join(real, "ecg");
    mkdirSync(records, { recursive: true });
    for (const name of ["r1", "r2"]) {
      const ecg = generateEcg(ecgOptionsFor(name === "r1" ? 9001 : 9002, 20, 360));
      await writeRecord(records, name, ecg.fs, [{ values: ecg.signal, description: "MLII" }]);
      await writeAnnotations(path.join(records, `${name}.atr`), ecg.rPeaks.map((sample) => ({ sample, code: NORMAL })));
    }
    const { report, lines } = await bench(root, path.join(scratch, "real-out"), { "imu-har": path.join(real, "har"), "ecg-heartbeat": records }, ["ecg-heartbeat", "imu-har"]);
    if (!isolation.available) {
      assert.match(report.environment.answers, /readable/, "the report says that the program could read the real answers");
      return t.skip(`no isolation here (${isolation.reason}): a real dataset's answers stay readable, and the report says so`);
    }
    const har = cheat(report, lines, "imu-har");
    assert.ok(har.metrics.accuracy <= 0.2, `IMU HAR: the cheat found the test labels (accuracy ${har.metrics.accuracy})`);
    const ecg = cheat(report, lines, "ecg-heartbeat");
    assert.equal(ecg.metrics.recall, 0, `ECG: the cheat found the annotations (${JSON.stringify(ecg.metrics)})`);
  });
});
