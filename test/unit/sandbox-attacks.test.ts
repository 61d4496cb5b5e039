/**
 * The sandbox against the program it judges: a program that writes its own verdict on the report
 * channel, claims less memory or time than it used, fails and exits 0 with a forged success,
 * writes to every descriptor it can reach, kills its supervisor, or undoes the read-only
 * filesystem or the hidden folders. Exit status, time and memory come from outside the program;
 * a report that contradicts them is rejected and the run fails.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { assembleProgram } from "../../sidecar/src/pipeline/assembleProgram";
import type { ResourceLimits, TaskSpec } from "../../sidecar/src/schemas";
import { probeIsolation, resolvePython } from "../../sidecar/src/verify/pythonEnv";
import { inputFiles, runInSandbox, type SandboxOptions } from "../../sidecar/src/verify/sandbox";
import { verifyProgram } from "../../sidecar/src/verify/verifier";

const spec: TaskSpec = {
  target: "Write some code and documentation to sum a signal",
  inputs: [{ name: "signal", type: "list of float", description: "samples" }],
  outputs: [{ name: "total", type: "float", description: "the sum" }],
};

function program(code: string, limits: ResourceLimits | null = null) {
  return assembleProgram({
    requirement: "Sum the samples of a signal",
    limits,
    parts: [{ subTask: { name: "Sum", problem: "Sum the samples", steps: ["Add them"] }, spec, artifact: { code, documentation: "Sums.", requirements: [] } }],
    generator: { profile: "test", createdAt: "2026-01-01T00:00:00Z" },
  });
}

async function run(code: string, options: Partial<SandboxOptions> = {}) {
  const inputs = inputFiles({ signal: [1, 2, 3.5] });
  return runInSandbox({ files: [...program(code), inputs.file], args: inputs.args, python: "python3", timeoutMs: 30_000, memoryMB: 2048, ...options });
}

function verify(code: string, limits: ResourceLimits | null, isolation: "auto" | "off" = "auto") {
  return verifyProgram({ files: program(code, limits), execute: true, inputs: { signal: [1, 2, 3.5] }, exactInputs: true, settings: { python: "python3", timeoutMs: 30_000, memoryMB: 2048, isolation } });
}

const isolation = await probeIsolation((await resolvePython("python3")).executable);
const isolated = { skip: isolation.available ? false : `no isolation here: ${isolation.reason}` };

/** A line in the format the preamble reports its final values in, claiming whatever the attacker likes. */
const FORGE = String.raw`
import json, os


def forged(peak=1.0, pipeline_ms=0.5):
    final = {"exitCode": 0, "peakMemoryMB": peak, "pipelineMs": pipeline_ms, "importMs": 0.1, "outputs": {"total": 6.5}, "finalOutputs": ["total"],
             "steps": [{"module": "task_01_sum", "ms": pipeline_ms, "peakMemoryMB": peak}], "setup": {"filesystem": "readOnly", "limits": {"memory": 1}}}
    return (json.dumps({"final": final}) + "\n" + json.dumps({"exit": {"code": 0, "peakMemoryMB": peak, "pipelineMs": pipeline_ms}}) + "\n").encode()
`;

const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-attacks-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("a program cannot write its own verdict", () => {
  test("700 MB used, 1 MB claimed on fd 3: the sandbox measures 700 MB and the memory limit fails", async () => {
    const code = `${FORGE}

def run(signal):
    block = b"\\x01" * (700 << 20)
    os.write(3, forged(peak=1.0))
    os._exit(0 if block else 1)
`;
    for (const mode of ["auto", "off"] as const) {
      const result = await run(code, { isolation: mode });
      assert.ok(result.peakMemoryMB !== null && result.peakMemoryMB >= 700, `isolation ${mode}: peak ${result.peakMemoryMB} MB`);
      assert.equal(result.selfReport.status, "rejected", JSON.stringify(result.selfReport));
      assert.equal(result.outputs, null, "values from a rejected report are not used");
    }
    const { report } = await verify(code, { text: "at most 100 MB of memory", memoryMB: 100 });
    assert.equal(report.ok, false, "the memory limit is checked against what the sandbox measured");
    assert.ok(report.execution!.peakMemoryMB! >= 700);
    assert.equal(report.execution!.selfReport.status, "rejected");
  });

  test("a run that slept 1.5 s and claims 1 ms: time is measured outside and the latency limit fails", async () => {
    const code = `${FORGE}
import time


def run(signal):
    time.sleep(1.5)
    os.write(3, forged(pipeline_ms=1.0))
    os._exit(0)
`;
    for (const mode of ["auto", "off"] as const) {
      const result = await run(code, { isolation: mode });
      assert.ok(result.pipelineMs !== null && result.pipelineMs >= 1400, `isolation ${mode}: pipeline ${result.pipelineMs} ms`);
      assert.equal(result.selfReport.status, "rejected");
    }
    const { report } = await verify(code, { text: "within 500 ms", latencyMs: 500 });
    assert.equal(report.ok, false);
    assert.ok(report.execution!.pipelineMs! >= 1400);
  });

  test("a crash that ends in exit 0 with a forged success report is still a failure", async () => {
    const code = `${FORGE}
_exit = os._exit
_channel = []


def _fake_exit(code):
    os.write(_channel[0], forged(peak=30.0))
    _exit(0)


def run(signal):
    _channel.append(os.dup(3))
    os._exit = _fake_exit
    return {"total": 1 / 0}
`;
    const { report } = await verify(code, null);
    assert.equal(report.ok, false, "the run failed, whatever the program wrote afterwards");
    assert.equal(report.failure?.kind, "runtime");
  });

  test("forged reports written to every descriptor it holds and its parent's change nothing", async () => {
    const code = `${FORGE}
import glob


def run(signal):
    block = b"\\x01" * (300 << 20)
    reached = []
    for fd in range(3, 64):
        try:
            os.write(fd, forged())
            reached.append(fd)
        except OSError:
            pass
    for entry in glob.glob("/proc/self/fd/*") + glob.glob("/proc/%d/fd/*" % os.getppid()):
        try:
            with open(entry, "wb", buffering=0) as handle:
                handle.write(forged())
            reached.append(entry)
        except OSError:
            pass
    print("reached", reached)
    os._exit(0 if block else 1)
`;
    const result = await run(code);
    assert.ok(result.peakMemoryMB !== null && result.peakMemoryMB >= 300, `peak ${result.peakMemoryMB} MB; ${result.stdout.slice(0, 400)}`);
    assert.equal(result.selfReport.status, "rejected");
    const { report } = await verify(code, { text: "at most 100 MB of memory", memoryMB: 100 });
    assert.equal(report.ok, false);
  });

  test("killing its supervisor makes the run fail, never pass", async () => {
    const code = `${FORGE}
import signal as signals


def run(signal):
    try:
        os.kill(os.getppid(), signals.SIGKILL)
    except OSError:
        pass
    os.write(3, forged(peak=1.0))
    os._exit(0)
`;
    const unisolated = await verify(code, { text: "at most 100 MB of memory", memoryMB: 100 }, "off");
    assert.equal(unisolated.report.ok, false);
    assert.match(unisolated.report.failure?.message ?? "", /could not measure the run/);
    const isolatedRun = await verify(code, { text: "at most 100 MB of memory", memoryMB: 100 }, "auto");
    assert.equal(isolatedRun.report.ok, false, JSON.stringify(isolatedRun.report.failure));
    if (isolation.available) {
      assert.ok(isolatedRun.report.execution!.peakMemoryMB! > 1, "PID 1 of the namespace survives the signal and measures");
      assert.equal(isolatedRun.report.execution!.selfReport.status, "rejected");
    }
  });

  test("an honest program's report is accepted and agrees with the measurements", async () => {
    const result = await run("import time\n\n\ndef run(signal):\n    block = bytearray(b'\\x01') * (50 << 20)\n    time.sleep(0.2)\n    return {'total': sum(signal) + len(block) * 0}\n");
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.selfReport.status, "accepted", JSON.stringify(result.selfReport));
    assert.deepEqual(result.outputs, { total: 6.5 });
    assert.ok(result.peakMemoryMB! >= 50 && result.peakMemoryMB! < 200, String(result.peakMemoryMB));
    assert.ok(result.pipelineMs! >= 190 && result.pipelineMs! < 5000, String(result.pipelineMs));
    assert.ok(result.cpuMs !== null && result.cpuMs > 0);
    assert.equal(result.steps.length, 1);
    assert.ok(result.steps[0].ms >= 190);
  });
});

describe("a program cannot undo its sandbox", () => {
  test("remounting the filesystem read-write fails: nothing is written outside the working copy", isolated, async () => {
    const outside = path.join(scratch, "escaped.txt");
    const result = await run(`import ctypes, os


def run(signal):
    libc = ctypes.CDLL(None, use_errno=True)
    codes = []
    for target in (b"/", b"/tmp", ${JSON.stringify(scratch)}.encode()):
        for flags in (32 | 4096, 32 | 4096 | 2 | 4, 32 | 4096 | 2 | 4 | 8):
            codes.append(libc.mount(None, target, None, flags, None))
    try:
        with open(${JSON.stringify(outside)}, "w") as handle:
            handle.write("x")
        return {"total": "escaped"}
    except OSError as error:
        return {"total": error.errno}
`);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(existsSync(outside), false, "the program wrote outside its working copy");
    assert.equal(result.outputs?.total, 30, "EROFS");
  });

  test("hidden folders stay hidden: unmounting them fails and their files cannot be read", isolated, async () => {
    const secretDir = path.join(scratch, "answers");
    mkdirSync(secretDir, { recursive: true });
    writeFileSync(path.join(secretDir, "labels.txt"), "1 2 3\n");
    const result = await run(
      `import ctypes, os


def run(signal):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(${JSON.stringify(secretDir)}.encode(), 2)
    libc.umount2(${JSON.stringify(secretDir)}.encode(), 0)
    try:
        with open(${JSON.stringify(path.join(secretDir, "labels.txt"))}) as handle:
            return {"total": handle.read()}
    except OSError as error:
        return {"total": error.errno}
`,
      { hidePaths: [secretDir] },
    );
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.outputs?.total, 2, "ENOENT: the folder is empty in the program's view");
  });

  test("the program runs without capabilities, even as root in its user namespace", isolated, async () => {
    const result = await run("def run(signal):\n    with open('/proc/self/status') as handle:\n        fields = dict(line.split(':', 1) for line in handle if ':' in line)\n    return {'total': [fields['CapEff'].strip(), fields['CapBnd'].strip()]}\n");
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(result.outputs?.total, ["0000000000000000", "0000000000000000"]);
  });
});
