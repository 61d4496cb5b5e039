/**
 * The real sidecar process, the real node-llama-cpp and the tiny random-weight models: a whole
 * synthesis over JSON-RPC, cancel, review and regenerate, and bad input. Model output is noise,
 * so these tests check events, structure and files, never wording.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { SidecarProcess } from "../../sidecar/src/client/sidecarProcess";
import type { JobEvent } from "../../sidecar/src/protocol";
import { setUpTestModels, sidecarPath, type TestModelSetup } from "../helpers/testModels";
import { rpcError } from "../helpers/rpcError";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG from the MIT-BIH database and report the heart rate";

let setup: TestModelSetup;
let sidecar: SidecarProcess;
let scratch: string;
const logs: string[] = [];

function types(events: JobEvent[]): string[] {
  return events.map((event) => event.type);
}

before(async () => {
  assert.ok(existsSync(sidecarPath), "run `npm run build` first");
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-sidecar-test-"));
  sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: setup.manifestPath, threads: 1 }, onLog: (line) => logs.push(line) });
});

after(async () => {
  const exitCode = await sidecar?.dispose();
  assert.equal(exitCode, 0, "the sidecar exits cleanly on shutdown/exit");
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

describe("sidecar on the tiny models", () => {
  test("status before any model is loaded", async () => {
    const status = await sidecar.client.request("status");
    assert.equal(status.modelState, "none");
    assert.equal(status.models, null);
    assert.equal(status.defaults.threads, 1);
    assert.equal(status.defaults.manifestPath, setup.manifestPath);
  });

  test("lists profiles with what is missing", async () => {
    const { profiles } = await sidecar.client.request("listProfiles");
    const byName = Object.fromEntries(profiles.map((profile) => [profile.name, profile]));
    assert.equal(byName.tiny.available, true);
    assert.equal(byName.missing.available, false);
    assert.match(byName.missing.missing[0], /nowhere\.gguf$/);
  });

  test("a job with no models loaded loads the configured profile itself", async () => {
    const fresh = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: setup.manifestPath, threads: 1, profile: "tiny" } });
    try {
      const { jobId } = await fresh.client.request("synthesize", { requirement: REQUIREMENT });
      const last = await fresh.waitForJob(jobId);
      assert.equal(last.type, "jobFinished", JSON.stringify(last));
      assert.equal(fresh.modelEvents.at(-1)?.type, "loaded");
      assert.equal((await fresh.client.request("status")).models?.profile, "tiny");
    } finally {
      assert.equal(await fresh.dispose(), 0);
    }
  });

  test("loads one base model with an adapter per role in its own context", async () => {
    const info = await sidecar.client.request("loadModels", { profile: "tiny" });
    assert.equal(info.distinctModels, 1);
    assert.deepEqual(Object.keys(info.roles).sort(), ["cg", "rt", "td"]);
    assert.equal(info.roles.td.adapters[0].path, setup.models.adapters.td);
    assert.equal(info.roles.cg.adapters[0].path, setup.models.adapters.cg);
    assert.deepEqual(info.roles.rt.adapters, [], "RT runs on the bare base");
    assert.equal(info.threads, 1);
    const loading = sidecar.modelEvents.filter((event) => event.type === "loading");
    assert.ok(loading.length >= 2);
    assert.equal(sidecar.modelEvents.at(-1)?.type, "loaded");
    assert.equal((await sidecar.client.request("status")).modelState, "ready");
  });

  test("synthesize streams events in order and writes the program", async () => {
    const outDir = path.join(scratch, "heartbeat");
    const { jobId, programId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, constraints: "runs on a Jetson Nano, <= 200 MB RAM", outDir });
    const last = await sidecar.waitForJob(jobId);
    assert.equal(last.type, "jobFinished", JSON.stringify(last));
    const events = sidecar.eventsOf(jobId);
    const order = types(events);
    assert.deepEqual(order.slice(0, 3), ["jobQueued", "jobStarted", "stageStarted"]);
    assert.ok(events.every((event) => event.programId === programId));

    const decomposed = events.find((event) => event.type === "decomposed")!;
    assert.ok(decomposed.type === "decomposed");
    const subTaskIds = decomposed.subTasks.map((entry) => entry.id);
    assert.ok(subTaskIds.length >= 2);
    const streamedSubTasks = events.filter((event) => event.type === "subTaskDecomposed");
    assert.deepEqual(streamedSubTasks.map((event) => event.type === "subTaskDecomposed" && event.index), subTaskIds.map((_, index) => index));
    assert.ok(order.indexOf("subTaskDecomposed") < order.indexOf("decomposed"));
    assert.ok(order.indexOf("textDelta") < order.indexOf("subTaskDecomposed"), "TD text streams before the sub-tasks are complete");

    // Specs in order and code in order, then files; a sub-task's code starts once the specs up to
    // it exist (sub-tasks run in parallel, so CG of one overlaps RT of the next).
    const specOrder = events.flatMap((event) => (event.type === "specReady" ? [event.subTaskId] : []));
    const codeOrder = events.flatMap((event) => (event.type === "codeReady" ? [event.subTaskId] : []));
    assert.deepEqual(specOrder, subTaskIds);
    assert.deepEqual(codeOrder, subTaskIds);
    subTaskIds.forEach((id, index) => {
      const codeStarted = events.findIndex((event) => event.type === "stageStarted" && event.stage === "cg" && event.subTaskId === id);
      const specsUpToIt = Math.max(...subTaskIds.slice(0, index + 1).map((earlier) => events.findIndex((event) => event.type === "specReady" && event.subTaskId === earlier)));
      assert.ok(codeStarted > specsUpToIt, `CG of ${id} starts after the specs up to it`);
    });
    for (const id of subTaskIds) {
      const codeDeltas = events.filter((event) => event.type === "codeDelta" && event.subTaskId === id).map((event) => (event.type === "codeDelta" ? event.text : ""));
      const ready = events.find((event) => event.type === "codeReady" && event.subTaskId === id);
      assert.ok(ready?.type === "codeReady");
      assert.equal(codeDeltas.join(""), ready.artifact.code, "the streamed code is the final code");
      assert.equal(ready.syntax.checked, true, "python3 is present, so syntax is checked");
      const specReady = events.find((event) => event.type === "specReady" && event.subTaskId === id);
      assert.ok(specReady?.type === "specReady");
      assert.match(specReady.markdown, /\*\*Target\*\*[\s\S]*\*\*Input Specification\*\*[\s\S]*\*\*Output Specification\*\*/);
    }
    assert.ok(order.indexOf("fileWritten") > order.lastIndexOf("codeReady"));
    assert.equal(order.at(-1), "jobFinished");

    assert.ok(last.type === "jobFinished");
    assert.equal(last.outDir, outDir);
    assert.equal(last.mainCompiles, true);
    const written = readdirSync(outDir).sort();
    assert.deepEqual(written, [...last.files.map((file) => path.basename(file))].sort());
    assert.ok(written.includes("main.py") && written.includes("README.md") && written.includes("requirements.txt") && written.includes("gpiot.json"));
    assert.equal(written.filter((name) => /^task_\d\d.*\.py$/.test(name)).length, subTaskIds.length);
    execFileSync("python3", ["-m", "py_compile", path.join(outDir, "main.py")]);
    assert.ok(last.timings.some((timing) => timing.stage === "td" && timing.tokens > 0));
    assert.equal(last.timings.filter((timing) => timing.stage === "rt").length, subTaskIds.length);
    assert.ok(last.tokens > 0);
    assert.match(readFileSync(path.join(outDir, "README.md"), "utf8"), /Jetson Nano/);

    const snapshot = await sidecar.client.request("getProgram", { programId });
    assert.equal(snapshot.busy, false);
    assert.deepEqual(snapshot.subTasks.map((entry) => entry.id), subTaskIds);
    assert.ok(snapshot.subTasks.every((entry) => entry.spec && entry.artifact && ["done", "syntaxError"].includes(entry.codeState)));
    assert.deepEqual(readdirSync(scratch).filter((name) => name.startsWith(".")), [], "no staging folders left");
  });

  test("cancel stops the generation mid-job and writes nothing", async () => {
    const outDir = path.join(scratch, "cancelled");
    const { jobId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir });
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (sidecar.eventsOf(jobId).some((event) => event.type === "textDelta")) {
          clearInterval(check);
          resolve();
        }
      }, 2);
    });
    const cancelled = await sidecar.client.request("cancel", { jobId });
    assert.deepEqual(cancelled, { cancelled: true, state: "running" });
    const last = await sidecar.waitForJob(jobId);
    assert.equal(last.type, "jobFailed");
    assert.ok(last.type === "jobFailed" && last.cancelled && last.error.code === "CANCELLED");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(sidecar.eventsOf(jobId).at(-1)?.type, "jobFailed", "nothing streams after the job ended");
    assert.equal(existsSync(outDir), false);
    const status = await sidecar.client.request("status");
    assert.equal(status.runningJobId, null);
    assert.deepEqual(await sidecar.client.request("cancel", { jobId }), { cancelled: false, state: "finished" });
  });

  test("cancel at any moment: each job ends exactly once, no partial files", async () => {
    for (const delayMs of [0, 3, 15, 40, 120, 400, 900]) {
      const outDir = path.join(scratch, `cancel-${delayMs}`);
      const { jobId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      await sidecar.client.request("cancel", { jobId });
      const last = await sidecar.waitForJob(jobId);
      const terminal = sidecar.eventsOf(jobId).filter((event) => event.type === "jobFinished" || event.type === "jobFailed");
      assert.equal(terminal.length, 1, `one terminal event after a cancel at ${delayMs} ms`);
      if (last.type === "jobFailed") {
        assert.equal(last.error.code, "CANCELLED");
        assert.equal(existsSync(outDir), false, `no output folder after a cancel at ${delayMs} ms`);
      } else {
        assert.ok(existsSync(path.join(outDir, "main.py")), "a job that finished before the cancel wrote its whole program");
      }
    }
    assert.deepEqual(readdirSync(scratch).filter((name) => name.startsWith(".")), [], "no staging folders left");
  });

  test("queued jobs run in order; a queued job can be cancelled before it starts", async () => {
    const first = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
    const second = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
    const third = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
    assert.deepEqual(await sidecar.client.request("cancel", { jobId: second.jobId }), { cancelled: true, state: "queued" });
    const [a, b, c] = await Promise.all([first, second, third].map((job) => sidecar.waitForJob(job.jobId)));
    assert.equal(a.type, "jobFinished");
    assert.ok(b.type === "jobFailed" && b.cancelled);
    assert.equal(c.type, "jobFinished");
    const starts = sidecar.events.filter((event) => event.type === "jobStarted").map((event) => event.jobId);
    assert.ok(starts.indexOf(first.jobId) < starts.indexOf(third.jobId));
    assert.equal(starts.includes(second.jobId), false);
  });

  test("review: stop after the decomposition, edit a sub-task, continue, regenerate, assemble again", async () => {
    const outDir = path.join(scratch, "reviewed");
    const { jobId, programId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, review: "decomposition", outDir });
    const paused = await sidecar.waitForJob(jobId);
    assert.ok(paused.type === "jobFinished" && paused.awaitingReview === "decomposition");
    assert.equal(sidecar.eventsOf(jobId).some((event) => event.type === "specReady"), false, "no spec before the review");
    assert.equal(existsSync(outDir), false);

    let snapshot = await sidecar.client.request("getProgram", { programId });
    const [first, ...rest] = snapshot.subTasks;
    const edited = { name: "Load the ECG record", problem: "Read a WFDB record from disk", steps: ["Read the .hea and .dat files", "Return the signal and its sampling rate"] };
    snapshot = await sidecar.client.request("updateSubTasks", {
      programId,
      subTasks: [{ id: first.id, subTask: edited }, ...rest.map((entry) => ({ id: entry.id, subTask: entry.subTask })), { subTask: { name: "Print the report", problem: "Print bpm", steps: ["Format and print"] } }],
    });
    assert.equal(snapshot.subTasks.length, rest.length + 2);
    assert.deepEqual(snapshot.subTasks[0].subTask, edited);
    assert.equal(snapshot.subTasks[0].id, first.id);

    const continued = await sidecar.client.request("continue", { programId });
    const done = await sidecar.waitForJob(continued.jobId);
    assert.equal(done.type, "jobFinished", JSON.stringify(done));
    assert.ok(done.type === "jobFinished" && done.outDir === outDir);
    const moduleCount = () => readdirSync(outDir).filter((name) => name.startsWith("task_")).length;
    assert.equal(moduleCount(), rest.length + 2);
    const targetPrompted = sidecar.eventsOf(continued.jobId).filter((event) => event.type === "specReady").length;
    assert.equal(targetPrompted, rest.length + 2);

    const regenerated = await sidecar.client.request("regenerate", { programId, subTaskId: first.id, stage: "spec" });
    const regenerateEnd = await sidecar.waitForJob(regenerated.jobId);
    assert.equal(regenerateEnd.type, "jobFinished");
    assert.deepEqual(types(sidecar.eventsOf(regenerated.jobId)).filter((type) => ["specReady", "codeReady", "fileWritten"].includes(type)), ["specReady", "codeReady"]);

    const codeOnly = await sidecar.client.request("regenerate", { programId, subTaskId: rest[0].id, stage: "code" });
    await sidecar.waitForJob(codeOnly.jobId);
    assert.deepEqual(types(sidecar.eventsOf(codeOnly.jobId)).filter((type) => ["specReady", "codeReady"].includes(type)), ["codeReady"]);

    const assembled = await sidecar.client.request("assemble", { programId });
    const assembledEnd = await sidecar.waitForJob(assembled.jobId);
    assert.ok(assembledEnd.type === "jobFinished" && assembledEnd.mainCompiles === true);
    assert.equal(moduleCount(), rest.length + 2);
  });

  test("review after the specs, then an edited spec makes its code stale until regenerated", async () => {
    const { jobId, programId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, review: "specs" });
    const paused = await sidecar.waitForJob(jobId);
    assert.ok(paused.type === "jobFinished" && paused.awaitingReview === "specs");
    assert.equal(sidecar.eventsOf(jobId).some((event) => event.type === "codeReady"), false);
    const snapshot = await sidecar.client.request("getProgram", { programId });
    const target = snapshot.subTasks[1];
    const spec = { target: "Write some code and documentation to compute the heart rate", inputs: [{ name: "r_peaks", type: "np.ndarray", description: "R-peak sample indices" }], outputs: [{ name: "heart_rate", type: "float", description: "beats per minute" }] };
    const updated = await sidecar.client.request("updateSpec", { programId, subTaskId: target.id, spec });
    assert.deepEqual(updated.subTasks[1].spec, spec);
    const continued = await sidecar.client.request("continue", { programId });
    await sidecar.waitForJob(continued.jobId);
    const after = await sidecar.client.request("getProgram", { programId });
    assert.deepEqual(after.subTasks[1].spec, spec, "continue keeps the user's spec");
    assert.ok(after.subTasks.every((entry) => entry.artifact !== null));
  });

  test("separate model files per role also work", async () => {
    const info = await sidecar.client.request("loadModels", { profile: "tiny-separate" });
    assert.equal(info.distinctModels, 3);
    const { jobId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
    assert.equal((await sidecar.waitForJob(jobId)).type, "jobFinished");
    const allAdapters = await sidecar.client.request("loadModels", { profile: "tiny-all-adapters" });
    assert.equal(allAdapters.distinctModels, 1);
    assert.equal(allAdapters.roles.rt.adapters.length, 1);
    await sidecar.client.request("loadModels", { profile: "tiny" });
  });
});

describe("bad input gets a named error and the sidecar keeps serving", () => {
  test("requirements: empty, huge, nothing to build", async () => {
    for (const [requirement, code] of [["", "REQUIREMENT_EMPTY"], ["x ".repeat(5000), "REQUIREMENT_TOO_LONG"], ["thanks!", "NOTHING_TO_BUILD"]] as const) {
      const error = await rpcError(sidecar.client.request("synthesize", { requirement }));
      assert.equal(error.data?.code, code);
      assert.ok(error.message.length > 20);
    }
  });

  test("models: missing file, corrupt file, not a GGUF, adapter for another shape, unknown profile", async () => {
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ modelPath: path.join(setup.dir, "absent.gguf") }, "MODEL_NOT_FOUND", /absent\.gguf/],
      [{ profile: "corrupt" }, "MODEL_INVALID", /corrupt\.gguf/],
      [{ profile: "not-gguf" }, "MODEL_INVALID", /notes\.gguf is not a valid GGUF/],
      [{ profile: "mismatched" }, "ADAPTER_MISMATCH", /tiny-mismatched\.lora\.gguf does not match the base model/],
      [{ profile: "nope" }, "MANIFEST_INVALID", /no model profile "nope"/],
    ];
    for (const [params, code, message] of cases) {
      const error = await rpcError(sidecar.client.request("loadModels", params));
      assert.equal(error.data?.code, code, error.message);
      assert.match(error.message, message);
    }
    await sidecar.client.request("loadModels", { profile: "tiny" });
    const { jobId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
    assert.equal((await sidecar.waitForJob(jobId)).type, "jobFinished", "still serving after bad models");
  });

  test("an existing output folder is not touched: the request is refused before any job", async () => {
    const outDir = path.join(scratch, "users-folder");
    mkdirSync(outDir);
    writeFileSync(path.join(outDir, "notes.txt"), "mine");
    for (const overwrite of ["never", "ownFiles", "all"] as const) {
      const error = await rpcError(sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir, overwrite }));
      assert.equal(error.data?.code, "OUTPUT_EXISTS", error.message);
      assert.match(error.message, /GPIoT did not write it/);
    }
    assert.deepEqual(readdirSync(outDir), ["notes.txt"]);
    assert.equal(readFileSync(path.join(outDir, "notes.txt"), "utf8"), "mine");
  });

  test("malformed, unknown and invalid JSON-RPC messages", async () => {
    const error = await rpcError(sidecar.connection.sendRequest("gpiot/doesNotExist", {}));
    assert.equal(error.code, -32601);
    const invalid = await rpcError(sidecar.connection.sendRequest("gpiot/synthesize", { requirement: 42 }));
    assert.equal(invalid.code, -32602);
    assert.match(invalid.message, /requirement/);
    const extra = await rpcError(sidecar.connection.sendRequest("gpiot/cancel", { jobId: "j1", surprise: true }));
    assert.equal(extra.code, -32602);
    const unknownProgram = await rpcError(sidecar.client.request("regenerate", { programId: "p999", subTaskId: "x", stage: "code" }));
    assert.equal(unknownProgram.data?.code, "PROGRAM_NOT_FOUND");
    // Raw bytes: a body that is not JSON, a message that is not JSON-RPC, and garbage between frames.
    const frame = (body: string) => `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    sidecar.child.stdin!.write(frame("{not json"));
    sidecar.child.stdin!.write("garbage between messages\r\n");
    sidecar.child.stdin!.write(frame(JSON.stringify({ id: 5, hello: "world" })));
    const status = await sidecar.client.request("status");
    assert.equal(status.modelState, "ready");
    assert.ok(logs.some((line) => /not JSON/.test(line)));
    assert.ok(logs.some((line) => /not a JSON-RPC message header/.test(line)));
  });
});
