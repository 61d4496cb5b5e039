/** `gpiot bench` end to end on the tiny models (whose programs fail, as random code must) and on the solutions. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { BenchReport } from "../../sidecar/src/bench/harness";
import { cliPath, setUpTestModels, type TestModelSetup } from "../helpers/testModels";

let setup: TestModelSetup;
let scratch: string;

function gpiot(args: string[]) {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", timeout: 600_000, stdio: ["ignore", "pipe", "pipe"] });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

before(async () => {
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-bench-cli-"));
});
after(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

describe("gpiot bench", () => {
  test("--profile tiny --k 1: every task, a table, report.json and report.html", () => {
    const out = path.join(scratch, "tiny");
    const { code, stdout, stderr } = gpiot(["bench", "--profile", "tiny", "--k", "1", "--out", out, "--manifest", setup.manifestPath, "--threads", "1"]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^task\s+system\s+n\s+format\s+compile\s+run\s+pass@1/m);
    assert.match(stdout, /Report: .*report\.html/);
    assert.match(stderr, /sandbox: /);
    const report = JSON.parse(readFileSync(path.join(out, "report.json"), "utf8")) as BenchReport;
    assert.deepEqual(report.options.tasks, ["ecg-heartbeat", "imu-har", "multimodal-har"]);
    assert.equal(report.results.length, 3);
    for (const result of report.results) {
      assert.equal(result.system, "profile:tiny");
      assert.equal(result.n, 1);
      assert.equal(result.programs.length, 1);
      assert.ok(result.passAt1 >= 0 && result.passAt1 <= 1);
      assert.equal(result.passAt1, result.programs[0].passed ? 1 : 0);
      assert.ok(result.synthesisMs !== null && result.synthesisMs > 0);
      assert.ok(result.tokensPerSecond !== null && result.tokensPerSecond > 0);
      assert.equal(typeof result.programs[0].formatOk, "boolean");
      // Random weights write noise: a program that passes would be a harness bug.
      assert.equal(result.programs[0].passed, false);
    }
    assert.ok(existsSync(path.join(out, "report.html")));
    const programs = path.join(out, "programs", "profile_tiny");
    for (const task of report.options.tasks) assert.ok(readdirSync(path.join(programs, task, "01")).includes("main.py"), task);
    for (const task of report.tasks) assert.equal(task.source, "synthetic");
  });

  test("--solutions on one task; --json prints the report", () => {
    const out = path.join(scratch, "solutions");
    const { code, stdout, stderr } = gpiot(["bench", "--solutions", "--tasks", "imu-har", "--out", out, "--json", "-q"]);
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "");
    const report = JSON.parse(stdout) as BenchReport;
    const byName = Object.fromEntries(report.results.map((result) => [result.system, result]));
    assert.ok(byName["solution:reference"].metrics.accuracy >= 0.9);
    assert.ok(byName["solution:broken-constant"].metrics.accuracy < 0.3);
  });

  test("usage errors and help", () => {
    assert.equal(gpiot(["bench", "--k", "0"]).code, 2);
    assert.equal(gpiot(["bench", "--k", "3", "--n", "2"]).code, 2);
    assert.equal(gpiot(["bench", "--tasks", "nope", "--solutions", "--out", path.join(scratch, "nope")]).code, 1);
    const help = gpiot(["bench", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /gpiot bench/);
    assert.match(gpiot(["--help"]).stdout, /gpiot bench/);
  });
});
