/**
 * The long-lived Python syntax checker: one interpreter answers every check (a check costs well
 * under a millisecond instead of an interpreter start), checks queue in order, and a cancelled or
 * timed-out check, dispose, and a missing interpreter all end cleanly.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { PythonSyntaxChecker } from "../../sidecar/src/pipeline/pythonSyntax";
import { CancelledError } from "../../sidecar/src/pipeline/structuredGeneration";

let scratch: string;
before(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-syntax-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  return !alive(pid);
}

describe("the Python syntax checker", () => {
  test("one interpreter answers many checks, in order, with the line of each error", async () => {
    const checker = new PythonSyntaxChecker();
    try {
      assert.deepEqual(await checker.check("x = 1\n", "a.py"), { checked: true, ok: true });
      const pid = checker.pid!;
      assert.ok(pid > 0);
      const results = await Promise.all([checker.check("def f(:\n", "b.py"), checker.check("print('ok')\n", "c.py"), checker.check("x = (\n\n\n", "d.py")]);
      assert.deepEqual(results[0], { checked: true, ok: false, message: "SyntaxError: invalid syntax", line: 1 });
      assert.deepEqual(results[1], { checked: true, ok: true });
      assert.equal(results[2].ok, false);
      assert.equal(checker.pid, pid, "still the same interpreter");
      const started = performance.now();
      for (let i = 0; i < 50; i++) await checker.check(`value_${i} = ${i}\n`, "e.py");
      assert.ok((performance.now() - started) / 50 < 50, "a check does not start Python");
      assert.deepEqual(await checker.check("s = '\u00e9\ud800'\n", "f.py"), { checked: true, ok: true }, "a lone surrogate is checked as U+FFFD, as on disk");
    } finally {
      checker.dispose();
    }
  });

  test("cancel kills the interpreter at once; the next check starts a new one", async () => {
    const slowPython = path.join(scratch, "slow-python.sh");
    writeFileSync(slowPython, "#!/bin/sh\nexec sleep 30\n");
    chmodSync(slowPython, 0o755);
    const checker = new PythonSyntaxChecker(slowPython);
    try {
      const controller = new AbortController();
      const check = checker.check("x = 1\n", "a.py", controller.signal);
      const queued = checker.check("y = 2\n", "b.py", controller.signal);
      const pid = checker.pid!;
      controller.abort();
      await assert.rejects(check, CancelledError);
      await assert.rejects(queued, CancelledError);
      assert.ok(await gone(pid), "the interpreter was killed");
      const next = new AbortController();
      const again = checker.check("z = 3\n", "c.py", next.signal);
      assert.notEqual(checker.pid, pid);
      next.abort();
      await assert.rejects(again, CancelledError);
    } finally {
      checker.dispose();
    }
  });

  test("a check that hangs times out as not checked, and dispose kills the interpreter", async () => {
    const slowPython = path.join(scratch, "slow-python-2.sh");
    writeFileSync(slowPython, "#!/bin/sh\nexec sleep 30\n");
    chmodSync(slowPython, 0o755);
    const checker = new PythonSyntaxChecker(slowPython, 200);
    const check = checker.check("x = 1\n", "a.py");
    const pid = checker.pid!;
    assert.deepEqual(await check, { checked: false, ok: false, message: "The syntax check timed out after 0.2 s" });
    assert.ok(await gone(pid));
    const real = new PythonSyntaxChecker();
    await real.check("x = 1\n", "a.py");
    const realPid = real.pid!;
    real.dispose();
    assert.ok(await gone(realPid), "dispose kills the interpreter");
    assert.deepEqual(await real.check("x = 1\n", "a.py"), { checked: false, ok: false, message: "The syntax checker was shut down" });
  });

  test("without an interpreter every check says so", async () => {
    const checker = new PythonSyntaxChecker(path.join(scratch, "no-such-python"));
    try {
      const result = await checker.check("x = 1\n", "a.py");
      assert.equal(result.checked, false);
      assert.match(result.message!, /No Python interpreter to check syntax/);
    } finally {
      checker.dispose();
    }
  });
});
