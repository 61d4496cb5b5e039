/**
 * The sandbox on real Python: what it measures, and what it stops (time, memory, output,
 * network, writes outside the working copy, processes left behind).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { assembleProgram } from "../../sidecar/src/pipeline/assembleProgram";
import type { TaskSpec } from "../../sidecar/src/schemas";
import { probeIsolation, resolvePython } from "../../sidecar/src/verify/pythonEnv";
import { shippedPythonPath } from "../../sidecar/src/verify/pythonFiles";
import { inputFiles, runInSandbox, type SandboxOptions } from "../../sidecar/src/verify/sandbox";

const spec: TaskSpec = {
  target: "Write some code and documentation to sum a signal",
  inputs: [{ name: "signal", type: "list of float", description: "samples" }],
  outputs: [{ name: "total", type: "float", description: "the sum" }],
};

function program(code: string, secondCode?: string) {
  const parts = [{ subTask: { name: "Sum", problem: "Sum the samples", steps: ["Add them"] }, spec, artifact: { code, documentation: "Sums.", requirements: [] } }];
  if (secondCode)
    parts.push({
      subTask: { name: "Scale", problem: "Scale the sum", steps: ["Double it"] },
      spec: { target: "Write some code and documentation to scale", inputs: [{ name: "total", type: "float", description: "sum" }], outputs: [{ name: "scaled", type: "float", description: "2x" }] },
      artifact: { code: secondCode, documentation: "Scales.", requirements: [] },
    });
  return assembleProgram({ requirement: "Sum the samples of a signal", limits: null, parts, generator: { profile: "test", createdAt: "2026-01-01T00:00:00Z" } });
}

async function run(code: string, options: Partial<SandboxOptions> = {}, secondCode?: string) {
  const inputs = inputFiles({ signal: [1, 2, 3.5] });
  return runInSandbox({ files: [...program(code, secondCode), inputs.file], args: inputs.args, python: "python3", timeoutMs: 20_000, memoryMB: 2048, ...options });
}

const isolation = await probeIsolation((await resolvePython("python3")).executable);
const isolated = { skip: isolation.available ? false : `no isolation here: ${isolation.reason}` };

describe("sandboxed runs", () => {
  test("runs main.py on the inputs and reports outputs, times and peak memory", async () => {
    const result = await run("import numpy as np\n\ndef run(signal):\n    return {'total': np.asarray(signal).sum()}\n", {}, "def run(total):\n    return {'scaled': total * 2}\n");
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(result.outputs, { scaled: 13 });
    assert.deepEqual(result.finalOutputs, ["scaled"]);
    assert.equal(result.steps.length, 2);
    assert.ok(result.pipelineMs !== null && result.pipelineMs >= 0);
    assert.ok(result.importMs !== null && result.importMs > 0);
    assert.ok(result.peakMemoryMB !== null && result.peakMemoryMB > 5 && result.peakMemoryMB < 1000, String(result.peakMemoryMB));
    assert.ok(result.wallMs > 0);
    assert.match(result.stdout, /^scaled: /m, "main.py prints the final values");
    assert.equal(result.error, null);
    assert.equal(result.workdir, null, "the working copy is removed");
  });

  test("numpy arrays come back as JSON lists; wanted intermediate values too", async () => {
    const result = await run("import numpy as np\n\ndef run(signal):\n    return {'total': np.arange(4) * 1.5}\n", { want: ["signal"] });
    assert.deepEqual(result.outputs, { signal: [1, 2, 3.5], total: [0, 1.5, 3, 4.5] });
  });

  test("a wall-clock timeout kills the program and everything it started", async () => {
    const marker = `gpiot-sandbox-sleep-${process.pid}`;
    const code = `import subprocess, time\n\ndef run(signal):\n    subprocess.Popen(['sh', '-c', 'exec -a ${marker} sleep 60'], start_new_session=True)\n    time.sleep(60)\n`;
    const started = performance.now();
    const result = await run(code, { timeoutMs: 1500 });
    assert.equal(result.timedOut, true);
    assert.equal(result.exitCode, null);
    assert.ok(performance.now() - started < 10_000);
    assert.equal(result.lastModule, "task_01_sum", "the step that was running when time ran out");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const left = spawnSync("pgrep", ["-f", marker], { encoding: "utf8" });
    if (isolation.available) assert.equal(left.stdout.trim(), "", "the PID namespace took the detached child down too");
    else for (const pid of left.stdout.split("\n").filter(Boolean)) process.kill(Number(pid), "SIGKILL");
  });

  test("the memory cap turns a huge allocation into a MemoryError located in the module", async () => {
    const result = await run("import numpy as np\n\ndef run(signal):\n    block = np.ones((8, 1024, 1024, 1024), dtype=np.uint8)\n    return {'total': float(block.sum())}\n", { memoryMB: 1024 });
    assert.equal(result.exitCode, 1);
    assert.match(result.error?.type ?? "", /MemoryError$/);
    assert.equal(result.error?.module, "task_01_sum");
    assert.equal(result.isolation.memoryCapMB, 1024);
  });

  test("output beyond the limit stops the run; captures keep the head and the tail", async () => {
    const result = await run("import sys\n\ndef run(signal):\n    sys.stdout.write('start\\n')\n    while True:\n        sys.stdout.write('x' * 65536)\n", { maxOutputBytes: 1 << 20, captureBytes: 4096 });
    assert.equal(result.outputLimitExceeded, true);
    assert.ok(result.stdoutBytes > 1 << 20);
    assert.ok(result.stdout.startsWith("start"));
    assert.match(result.stdout, /bytes left out/);
    assert.ok(result.stdout.length < 6000);
  });

  test("a crash reports the exception, the traceback and the deepest module frame", async () => {
    const result = await run("def helper(x):\n    return 1 / x\n\n\ndef run(signal):\n    return {'total': helper(0)}\n", {}, "def run(total):\n    return {'scaled': total}\n");
    assert.equal(result.exitCode, 1);
    assert.equal(result.error?.type, "ZeroDivisionError");
    assert.equal(result.error?.module, "task_01_sum");
    assert.ok(result.error?.line && result.error.line > 10, "line in the module file (after the spec header)");
    assert.match(result.stderr, /ZeroDivisionError/);
    assert.match(result.stderr, /task_01_sum\.py", line \d+, in helper/, "the full traceback reaches stderr");
  });

  test("stdin is closed: a program waiting for input does not hang", async () => {
    const result = await run("import sys\n\ndef run(signal):\n    return {'total': len(sys.stdin.read())}\n");
    assert.equal(result.exitCode, 0);
    assert.deepEqual(result.outputs, { total: 0 });
  });

  test("no network: connections fail inside the sandbox", isolated, async () => {
    const result = await run("import socket\n\ndef run(signal):\n    names = [name for _, name in socket.if_nameindex()]\n    s = socket.socket()\n    s.settimeout(3)\n    return {'total': [names, s.connect_ex(('192.0.2.1', 80))]}\n");
    assert.equal(result.exitCode, 0, result.stderr);
    const [names, code] = result.outputs!.total as [string[], number];
    assert.deepEqual(names, ["lo"]);
    assert.notEqual(code, 0);
    assert.equal(result.isolation.network, "blocked");
    assert.equal(result.isolation.processes, "pidNamespace");
  });

  test("the filesystem is read-only outside the working copy", isolated, async () => {
    const outside = path.join(os.tmpdir(), `gpiot-escape-${process.pid}.txt`);
    const result = await run(`import os\n\ndef run(signal):\n    open('inside.txt', 'w').write('ok')\n    open(os.path.join(os.environ['TMPDIR'], 't.txt'), 'w').write('ok')\n    try:\n        open(${JSON.stringify(outside)}, 'w').write('x')\n        return {'total': 'escaped'}\n    except OSError as error:\n        return {'total': error.errno}\n`);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.outputs?.total, 30, "EROFS");
    assert.equal(existsSync(outside), false);
    assert.equal(result.isolation.filesystem, "readOnly");
    rmSync(outside, { force: true });
  });

  test("isolation off is reported as such, and 'required' refuses when it cannot isolate", async () => {
    const result = await run("def run(signal):\n    return {'total': 1}\n", { isolation: "off" });
    assert.equal(result.exitCode, 0);
    assert.equal(result.isolation.network, "notIsolated");
    assert.equal(result.isolation.filesystem, "notIsolated");
    if (!isolation.available) await assert.rejects(run("def run(signal):\n    return {'total': 1}\n", { isolation: "required" }), { code: "VERIFY_UNAVAILABLE" });
  });

  test("a missing interpreter is a clear error", async () => {
    await assert.rejects(run("def run(signal):\n    return {}\n", { python: "/nonexistent/python3" }), { code: "VERIFY_UNAVAILABLE" });
  });

  test("unprivileged users get the same namespaces (the shipped probe, run as nobody when run as root)", async (t) => {
    if (process.getuid?.() !== 0 || !existsSync("/usr/bin/setpriv") || !existsSync("/usr/bin/python3")) return t.skip("needs root, setpriv and /usr/bin/python3");
    const args = ["--reuid=65534", "--regid=65534", "--clear-groups", "unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--", "/usr/bin/python3", "-B", shippedPythonPath("isolation_probe.py")];
    const result = spawnSync("setpriv", args, { encoding: "utf8", cwd: "/" });
    if (result.status !== 0) return t.skip(`unprivileged user namespaces are not available here: ${result.stderr.trim()}`);
    const probe = JSON.parse(result.stdout) as { interfaces: string[]; connect: number; pid: number; readOnly: boolean; capabilitiesDropped: boolean };
    assert.deepEqual(probe.interfaces, ["lo"]);
    assert.notEqual(probe.connect, 0);
    assert.equal(probe.pid, 1);
    assert.equal(probe.readOnly, true);
    assert.equal(probe.capabilitiesDropped, true);
  });
});
