/**
 * Verify and repair through the real sidecar and CLI on the tiny random-weight models: their code
 * fails every check, so each failure is sent back for the set number of rounds and reported,
 * never looped forever; consent and workspace trust gate every run.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { SidecarProcess } from "../../sidecar/src/client/sidecarProcess";
import type { JobEvent } from "../../sidecar/src/protocol";
import { cliPath, setUpTestModels, sidecarPath, type TestModelSetup } from "../helpers/testModels";
import { rpcError } from "../helpers/rpcError";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";
let setup: TestModelSetup;
let sidecar: SidecarProcess;
let scratch: string;

before(async () => {
  assert.ok(existsSync(sidecarPath), "run `npm run build` first");
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-verify-test-"));
  sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: setup.manifestPath, threads: 1, verify: { timeoutMs: 20_000 } } });
});

after(async () => {
  assert.equal(await sidecar?.dispose(), 0);
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

describe("verify and repair over JSON-RPC", () => {
  let programId: string;

  test("random code fails, is repaired the set number of times, then reported; the best version is written", async () => {
    await sidecar.client.request("loadModels", { profile: "tiny" });
    const outDir = path.join(scratch, "repaired");
    const started = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir, verify: { consent: true, repairRounds: 2 } });
    programId = started.programId;
    const last = await sidecar.waitForJob(started.jobId);
    assert.equal(last.type, "jobFinished", JSON.stringify(last));
    const events = sidecar.eventsOf(started.jobId);
    const verify = events.filter((event): event is Extract<JobEvent, { type: "verifyStarted" | "verifyResult" | "repairAttempt" }> => ["verifyStarted", "verifyResult", "repairAttempt"].includes(event.type));
    assert.deepEqual(
      verify.filter((event) => event.type !== "repairAttempt").map((event) => `${event.type}:${event.round}`),
      ["verifyStarted:0", "verifyResult:0", "verifyStarted:1", "verifyResult:1", "verifyStarted:2", "verifyResult:2"],
    );
    const first = verify[0];
    assert.ok(first.type === "verifyStarted" && first.sandbox, "the first check says what the sandbox is before the program runs");
    assert.ok(first.sandbox.summary.length > 0 && ["isolated", "notIsolated"].includes(first.sandbox.outcome));
    const results = verify.filter((event) => event.type === "verifyResult");
    for (const result of results) {
      assert.ok(result.type === "verifyResult");
      assert.equal(result.report.ok, false);
      assert.ok(result.report.failure, "a failure with a kind");
    }
    const repairs = verify.filter((event) => event.type === "repairAttempt");
    assert.ok(repairs.length >= 2, "at least one sub-task per round");
    assert.deepEqual([...new Set(repairs.map((event) => event.round))], [1, 2]);
    for (const repair of repairs) {
      assert.ok(repair.type === "repairAttempt");
      assert.ok(repair.error.length > 0);
      // Each repair regenerates code: a cg stage and a codeReady for that sub-task follow it.
      const at = events.indexOf(repair);
      assert.ok(events.slice(at).some((event) => event.type === "codeReady" && event.subTaskId === repair.subTaskId));
    }
    assert.ok(events.findIndex((event) => event.type === "fileWritten") > events.lastIndexOf(results.at(-1)!), "files are written once, after verification");
    assert.ok(last.type === "jobFinished" && last.verification);
    assert.equal(last.verification.status, "failed");
    assert.equal(last.verification.rounds, 2);
    assert.ok(last.timings.some((timing) => timing.stage === "verify"));

    const snapshot = await sidecar.client.request("getProgram", { programId });
    assert.equal(snapshot.verification?.attempts.length, 3, "the history keeps every round");
    assert.equal(snapshot.verification?.maxRounds, 2);
    const best = snapshot.verification!.attempts.find((attempt) => attempt.round === snapshot.verification!.bestRound)!;
    assert.ok(best);
    assert.ok(readdirSync(outDir).includes("main.py"));
  });

  test("gpiot/sandboxProbe: what a run would get, before anything runs", async () => {
    const probe = await sidecar.client.request("sandboxProbe");
    assert.equal(probe.mode, "auto");
    assert.ok(probe.python?.executable);
    assert.ok(["isolated", "notIsolated"].includes(probe.outcome));
    if (probe.isolated) assert.equal(probe.probed.length, 4, "each check is reported");
    else assert.match(probe.summary, /CANNOT isolate/);
  });

  test("running without consent, or in an untrusted workspace, is refused with named codes", async () => {
    const noConsent = await rpcError(sidecar.client.request("synthesize", { requirement: REQUIREMENT, verify: {} }));
    assert.equal(noConsent.data?.code, "CONSENT_REQUIRED");
    const untrusted = await rpcError(sidecar.client.request("synthesize", { requirement: REQUIREMENT, workspaceTrusted: false, verify: { consent: true } }));
    assert.equal(untrusted.data?.code, "WORKSPACE_UNTRUSTED");
    const verifyUntrusted = await rpcError(sidecar.client.request("verify", { programId, consent: true, workspaceTrusted: false }));
    assert.equal(verifyUntrusted.data?.code, "WORKSPACE_UNTRUSTED");
    const verifyNoConsent = await rpcError(sidecar.client.request("verify", { programId }));
    assert.equal(verifyNoConsent.data?.code, "CONSENT_REQUIRED");
  });

  test("gpiot/verify: static checks only need no consent, even in an untrusted workspace", async () => {
    const { jobId } = await sidecar.client.request("verify", { programId, execute: false, repairRounds: 0, workspaceTrusted: false });
    const last = await sidecar.waitForJob(jobId);
    assert.equal(last.type, "jobFinished", JSON.stringify(last));
    assert.ok(last.type === "jobFinished" && last.kind === "verify");
    const results = sidecar.eventsOf(jobId).filter((event) => event.type === "verifyResult");
    assert.equal(results.length, 1);
    assert.ok(results[0].type === "verifyResult");
    assert.equal(results[0].report.executed, false);
    assert.equal(results[0].report.failure?.kind, "static", "random code does not parse");
  });
});

describe("gpiot synthesize --verify", () => {
  function gpiot(args: string[], env: NodeJS.ProcessEnv = process.env) {
    const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", timeout: 120_000, stdio: ["ignore", "pipe", "pipe"], env });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** A PATH with python3 but without unshare: the sandbox cannot isolate. */
  function pathWithoutUnshare(): NodeJS.ProcessEnv {
    const bin = mkdtempSync(path.join(scratch, "bin-"));
    const python = spawnSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).stdout.trim();
    symlinkSync(python, path.join(bin, "python3"));
    return { ...process.env, PATH: bin };
  }

  /** Runs the CLI on a terminal (util-linux `script`), answering `answer` to any question. */
  function gpiotOnTerminal(args: string[], answer: string, env: NodeJS.ProcessEnv = process.env) {
    const command = [process.execPath, cliPath, ...args].map((part) => `'${part.replace(/'/g, "'\\''")}'`).join(" ");
    const result = spawnSync(scriptPath, ["-qec", command, "/dev/null"], { encoding: "utf8", timeout: 120_000, input: answer, env, maxBuffer: 64 * 1024 * 1024 });
    if (result.stdout === null) throw new Error(`script did not run: ${result.error?.message}`);
    return { code: result.status, output: result.stdout.replace(/\r/g, "") };
  }
  const scriptPath = spawnSync("sh", ["-c", "command -v script"], { encoding: "utf8" }).stdout.trim();
  const hasScript = scriptPath !== "" && spawnSync(scriptPath, ["--version"]).status === 0;

  test("the prompt comes after what the sandbox probe found, and promises nothing it did not find", { skip: hasScript ? false : "util-linux script is not installed" }, () => {
    const base = ["synthesize", REQUIREMENT, "--manifest", setup.manifestPath, "--profile", "tiny", "--threads", "1", "--verify", "--repair-rounds", "0", "--quiet"];
    const isolatedRun = gpiotOnTerminal([...base, "--out", path.join(scratch, "tty-isolated")], "n\n");
    const question = isolatedRun.output.search(/Run the generated program .* to check and repair it\? \[y\/N\]/);
    const findings = isolatedRun.output.indexOf("Sandbox: ");
    assert.ok(findings >= 0 && question > findings, isolatedRun.output);
    assert.doesNotMatch(isolatedRun.output, /no network, read-only files/);
    assert.match(isolatedRun.output, /no consent.*static checks only/);

    const unisolated = gpiotOnTerminal([...base, "--out", path.join(scratch, "tty-unisolated")], "n\n", pathWithoutUnshare());
    const warning = unisolated.output.search(/Sandbox: The sandbox CANNOT isolate the program here \(unshare is not usable here/);
    const unisolatedQuestion = unisolated.output.indexOf("Run the generated program WITHOUT isolation to check and repair it? [y/N]");
    assert.ok(warning >= 0 && unisolatedQuestion > warning, unisolated.output);
  });

  test("--yes where isolation is unavailable: 'auto' falls back only after saying so", () => {
    const out = path.join(scratch, "cli-unisolated");
    const { code, stderr } = gpiot(["synthesize", REQUIREMENT, "--out", out, "--manifest", setup.manifestPath, "--profile", "tiny", "--threads", "1", "--verify", "--yes", "--repair-rounds", "0"], pathWithoutUnshare());
    assert.equal(code, 6, stderr);
    const said = stderr.search(/Sandbox: The sandbox CANNOT isolate the program here/);
    const running = stderr.search(/Verifying the program \(static checks and a sandboxed run\) \[sandbox NOT isolated: unshare is not usable here/);
    assert.ok(said >= 0 && running > said, stderr);
    assert.match(stderr, /Running it without isolation \(--yes\)/);
  });

  test("--yes runs the check and repairs; exit code 6 reports the failed verification", () => {
    const out = path.join(scratch, "cli-yes");
    const { code, stdout, stderr } = gpiot(["synthesize", REQUIREMENT, "--out", out, "--manifest", setup.manifestPath, "--profile", "tiny", "--threads", "1", "--verify", "--yes", "--repair-rounds", "1"]);
    assert.equal(code, 6, stderr);
    assert.equal(stdout.trim(), out);
    assert.match(stderr, /Verifying the program \(static checks and a sandboxed run\)/);
    assert.match(stderr, /repairing sub-task \d/);
    assert.match(stderr, /Verification failed after 1 repair round/);
  });

  test("without a terminal and without --yes nothing runs: static checks only", () => {
    const out = path.join(scratch, "cli-no");
    const { code, stderr } = gpiot(["synthesize", REQUIREMENT, "--out", out, "--manifest", setup.manifestPath, "--profile", "tiny", "--threads", "1", "--verify", "--repair-rounds", "0"]);
    assert.equal(code, 6, stderr);
    assert.match(stderr, /no consent.*static checks only/);
    assert.match(stderr, /static checks only\)/);
  });

  test("verify flags without --verify are a usage error", () => {
    const { code, stderr } = gpiot(["synthesize", REQUIREMENT, "--out", path.join(scratch, "x"), "--yes"]);
    assert.equal(code, 2);
    assert.match(stderr, /--yes goes with --verify/);
  });
});
