/**
 * The engine's own promises, in-process on the tiny models: a job's end event says what is on
 * disk, cancel answers truthfully for any id, a throwing listener cannot wedge the queue, model
 * loads never race into a leaked host, and a cancel never waits for the Python syntax check.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, mock, test } from "node:test";
import { SynthesisEngine } from "../../sidecar/src/engine/engine";
import { ModelHost } from "../../sidecar/src/models/modelHost";
import { checkPythonSyntax } from "../../sidecar/src/pipeline/pythonSyntax";
import { CancelledError } from "../../sidecar/src/pipeline/structuredGeneration";
import type { JobEvent } from "../../sidecar/src/protocol";
import { setUpTestModels, type TestModelSetup } from "../helpers/testModels";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";
let setup: TestModelSetup;
let scratch: string;

before(async () => {
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-engine-lifecycle-"));
});

after(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

function jobEnd(engine: SynthesisEngine, jobId: string): Promise<Extract<JobEvent, { type: "jobFinished" | "jobFailed" }>> {
  return new Promise((resolve) => {
    const stop = engine.onJobEvent((event) => {
      if (event.jobId === jobId && (event.type === "jobFinished" || event.type === "jobFailed")) {
        stop();
        resolve(event);
      }
    });
  });
}

function listEntries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

describe("a cancel during the write", () => {
  let engine: SynthesisEngine;
  before(async () => {
    engine = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny", threads: 1 });
    await engine.loadModels();
  });
  after(() => engine.dispose());

  test("that arrives after the files are in place: the job reports finished, and the files are there", async () => {
    const outDir = path.join(scratch, "cancel-after-write");
    let jobId = "";
    const stop = engine.onJobEvent((event) => {
      if (event.type === "fileWritten" && event.jobId === jobId) engine.cancel(jobId);
    });
    jobId = engine.synthesize({ requirement: REQUIREMENT, outDir }).jobId;
    const end = await jobEnd(engine, jobId);
    stop();
    assert.equal(end.type, "jobFinished", JSON.stringify(end));
    assert.ok(existsSync(path.join(outDir, "main.py")));
  });

  test("that arrives before the folder is renamed into place: the job reports cancelled, and nothing is there", async () => {
    const parent = path.join(scratch, "cancel-during-write");
    const outDir = path.join(parent, "program");
    let jobId = "";
    const stop = engine.onJobEvent((event) => {
      if (event.type === "stageStarted" && event.stage === "write" && event.jobId === jobId) engine.cancel(jobId);
    });
    jobId = engine.synthesize({ requirement: REQUIREMENT, outDir }).jobId;
    const end = await jobEnd(engine, jobId);
    stop();
    assert.equal(end.type, "jobFailed", JSON.stringify(end));
    assert.equal(end.type === "jobFailed" && end.cancelled, true);
    assert.deepEqual(listEntries(parent), [], "no program folder and no staging folder");
  });
});

describe("cancel answers truthfully", () => {
  test("an id that never named a job is unknown; a job that ended is finished", async () => {
    const engine = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "missing", threads: 1 });
    try {
      const { jobId, programId } = engine.synthesize({ requirement: REQUIREMENT });
      await jobEnd(engine, jobId);
      assert.deepEqual(engine.cancel(jobId), { cancelled: false, state: "finished" });
      for (const neverAJob of ["j0", `j${Number(programId.slice(1))}`, "j99", "p1", "", "constructor"])
        if (neverAJob !== jobId) assert.deepEqual(engine.cancel(neverAJob), { cancelled: false, state: "unknown" }, neverAJob);
    } finally {
      await engine.dispose();
    }
  });
});

describe("a listener that throws", () => {
  test("is skipped: the request succeeds, every job ends, and other listeners see every event", async () => {
    const engine = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "missing", threads: 1 });
    try {
      engine.onJobEvent(() => {
        throw new Error("a broken listener");
      });
      const seen: JobEvent[] = [];
      engine.onJobEvent((event) => seen.push(event));
      const first = engine.synthesize({ requirement: REQUIREMENT });
      const second = engine.synthesize({ requirement: REQUIREMENT });
      const ends = await Promise.all([jobEnd(engine, first.jobId), jobEnd(engine, second.jobId)]);
      assert.deepEqual(ends.map((end) => end.type), ["jobFailed", "jobFailed"]);
      for (const jobId of [first.jobId, second.jobId])
        assert.deepEqual(seen.filter((event) => event.jobId === jobId).map((event) => event.type), ["jobQueued", "jobStarted", "jobFailed"]);
      assert.equal(engine.status().runningJobId, null);
    } finally {
      await engine.dispose();
    }
  });
});

describe("model loads", () => {
  test("loads requested at once run one after another and leave exactly one model host", async () => {
    // Spies that call through to the real load and dispose.
    const loads = mock.method(ModelHost, "load");
    const disposes = mock.method(ModelHost.prototype, "dispose");
    const loaded = () =>
      Promise.all(
        loads.mock.calls.map((call) => {
          assert.ok(call.result, "ModelHost.load returned a promise");
          return call.result;
        }),
      );
    const disposed = () => new Set(disposes.mock.calls.map((call) => call.this));
    const engine = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny", threads: 1 });
    try {
      try {
        const results = await Promise.all([engine.loadModels(), engine.loadModels({ profile: "tiny-all-adapters" }), engine.loadModels(), engine.loadModels({ profile: "tiny-all-adapters" })]);
        assert.equal(results.length, 4);
        assert.equal(loads.mock.callCount(), 4);
        const live = (await loaded()).filter((host) => !disposed().has(host));
        assert.equal(live.length, 1, "every replaced model host was disposed");
        assert.equal(engine.status().models?.profile, "tiny-all-adapters", "the last request wins");
      } finally {
        await engine.dispose();
      }
      assert.equal((await loaded()).filter((host) => !disposed().has(host)).length, 0, "dispose frees the last one");
    } finally {
      loads.mock.restore();
      disposes.mock.restore();
    }
  });

  test("a job cancelled while its models load stops at once, and the engine serves the next job", async () => {
    const engine = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny", threads: 1 });
    try {
      let jobId = "";
      const stop = engine.onModelEvent((event) => {
        if (event.type === "loading") engine.cancel(jobId);
      });
      jobId = engine.synthesize({ requirement: REQUIREMENT }).jobId;
      const end = await jobEnd(engine, jobId);
      stop();
      assert.equal(end.type === "jobFailed" && end.cancelled, true, JSON.stringify(end));
      const next = engine.synthesize({ requirement: REQUIREMENT });
      assert.equal((await jobEnd(engine, next.jobId)).type, "jobFinished");
    } finally {
      await engine.dispose();
    }
  });
});

describe("the Python syntax check", () => {
  test("is stopped by the abort signal: the interpreter is killed and the check rejects as cancelled", async () => {
    const slowPython = path.join(scratch, "slow-python.sh");
    const pidFile = path.join(scratch, "slow-python.pid");
    writeFileSync(slowPython, `#!/bin/sh\necho $$ > "${pidFile}"\nexec sleep 30\n`);
    chmodSync(slowPython, 0o755);
    const controller = new AbortController();
    const check = checkPythonSyntax("print(1)\n", "x.py", slowPython, controller.signal);
    while (!existsSync(pidFile)) await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    await assert.rejects(check, CancelledError);
    const pid = Number((await import("node:fs")).readFileSync(pidFile, "utf8").trim());
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.throws(() => process.kill(pid, 0), /ESRCH/, "the interpreter process is gone");
  });
});
