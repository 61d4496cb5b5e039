/**
 * What the VS Code extension's task tree relies on, over the real sidecar and the tiny models: an
 * edited sub-task keeps its spec and code (marked out of date) until regenerated, "regenerate
 * stale" (continue with assemble: false) writes nothing, previewProgram shows the files an
 * assembly would write, restoreProgram puts a program back exactly (undo) and into a new engine
 * process (after a restart), and gpiot/hardware describes the machine without loading a model.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { SidecarProcess } from "../../sidecar/src/client/sidecarProcess";
import type { ProgramSnapshot } from "../../sidecar/src/protocol";
import { setUpTestModels, sidecarPath, type TestModelSetup } from "../helpers/testModels";
import { rpcError } from "../helpers/rpcError";

const REQUIREMENT = "Count steps from a wrist accelerometer signal and report them every minute";

let setup: TestModelSetup;
let scratch: string;
const sidecars: SidecarProcess[] = [];

async function start(): Promise<SidecarProcess> {
  const sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: setup.manifestPath, threads: 1 } });
  sidecars.push(sidecar);
  return sidecar;
}

before(async () => {
  assert.ok(existsSync(sidecarPath), "run `npm run build` first");
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-sidecar-programs-"));
});

after(async () => {
  for (const sidecar of sidecars) await sidecar.dispose();
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

describe("programs the extension edits, undoes and restores", () => {
  let sidecar: SidecarProcess;
  let programId: string;
  let written: ProgramSnapshot;
  const outDir = () => path.join(scratch, "steps");

  test("an edited sub-task keeps its spec and code, out of date; the program cannot be previewed or assembled until regenerated", async () => {
    sidecar = await start();
    const queued = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir: outDir() });
    programId = queued.programId;
    const end = await sidecar.waitForJob(queued.jobId);
    assert.equal(end.type, "jobFinished", JSON.stringify(end));
    written = await sidecar.client.request("getProgram", { programId });
    const preview = await sidecar.client.request("previewProgram", { programId });
    const onDisk = Object.fromEntries(readdirSync(outDir()).map((name) => [name, readFileSync(path.join(outDir(), name), "utf8")]));
    for (const file of preview.files.filter((candidate) => candidate.kind === "module" || candidate.kind === "main")) assert.equal(file.content, onDisk[file.path], `${file.path} previews as written`);

    const [first, ...rest] = written.subTasks;
    const renamed = { ...first.subTask, name: "Filter the accelerometer signal" };
    const edited = await sidecar.client.request("updateSubTasks", { programId, subTasks: [{ id: first.id, subTask: renamed }, ...rest.map((entry) => ({ id: entry.id, subTask: entry.subTask }))] });
    assert.deepEqual(edited.subTasks[0].spec, first.spec, "the spec is kept");
    assert.deepEqual(edited.subTasks[0].artifact, first.artifact, "the code is kept");
    assert.equal(edited.subTasks[0].specStale, true);
    assert.equal(edited.subTasks[0].codeState, "stale");
    const refused = await rpcError(sidecar.client.request("previewProgram", { programId }));
    assert.equal(refused.data?.code, "NOTHING_TO_ASSEMBLE");
  });

  test("continue with assemble: false regenerates only what is out of date and writes no file", async () => {
    const before = readdirSync(outDir()).map((name) => [name, readFileSync(path.join(outDir(), name), "utf8")]);
    const { jobId } = await sidecar.client.request("continue", { programId, assemble: false });
    const end = await sidecar.waitForJob(jobId);
    assert.equal(end.type, "jobFinished", JSON.stringify(end));
    assert.ok(end.type === "jobFinished" && end.outDir === undefined && end.files.length === 0);
    const events = sidecar.eventsOf(jobId);
    assert.equal(events.filter((event) => event.type === "specReady").length, 1, "one spec regenerated");
    assert.equal(events.some((event) => event.type === "fileWritten"), false);
    const after = readdirSync(outDir()).map((name) => [name, readFileSync(path.join(outDir(), name), "utf8")]);
    assert.deepEqual(after, before, "the folder is untouched");
    const snapshot = await sidecar.client.request("getProgram", { programId });
    assert.equal(snapshot.subTasks[0].specStale, undefined);
    assert.ok(["done", "syntaxError"].includes(snapshot.subTasks[0].codeState));
    await sidecar.client.request("previewProgram", { programId });
  });

  test("restoreProgram with the program's id puts back order, text, specs and code exactly", async () => {
    const restored = await sidecar.client.request("restoreProgram", { programId, requirement: written.requirement, subTasks: written.subTasks });
    assert.deepEqual(restored.subTasks, written.subTasks);
    assert.equal(restored.outDir, written.outDir, "the folder is kept");
  });

  test("restoreProgram without an id makes the program again in a new engine process, which assembles it into its folder", async () => {
    await sidecar.dispose();
    const fresh = await start();
    const gone = await rpcError(fresh.client.request("getProgram", { programId }));
    assert.equal(gone.data?.code, "PROGRAM_NOT_FOUND", "a new process knows no programs");
    const stranger = await fresh.client.request("restoreProgram", { requirement: written.requirement, limits: written.limits, subTasks: written.subTasks, outDir: written.outDir, files: written.files });
    const refused = await rpcError(fresh.client.request("assemble", { programId: stranger.programId }));
    assert.equal(refused.data?.code, "OUTPUT_EXISTS", "without the owner id the restored program does not own the folder");
    const restored = await fresh.client.request("restoreProgram", { requirement: written.requirement, limits: written.limits, subTasks: written.subTasks, outDir: written.outDir, files: written.files, ownerId: written.ownerId });
    assert.deepEqual(restored.subTasks, written.subTasks);
    assert.equal(restored.ownerId, written.ownerId);
    const { jobId } = await fresh.client.request("assemble", { programId: restored.programId });
    const end = await fresh.waitForJob(jobId);
    assert.equal(end.type, "jobFinished", JSON.stringify(end));
    assert.ok(end.type === "jobFinished" && end.outDir === outDir());
    const bad = await rpcError(fresh.client.request("restoreProgram", { requirement: "x", subTasks: [written.subTasks[0], written.subTasks[0]] }));
    assert.equal(bad.data?.code, "INVALID_PARAMS");
  });

  test("gpiot/hardware answers without loading a model", async () => {
    const fresh = sidecars.at(-1)!;
    const hardware = await fresh.client.request("hardware");
    assert.equal(hardware.backend, "cpu", "the tests run on the CPU binaries");
    assert.ok(hardware.ram.total > 0);
    assert.equal(hardware.platform, process.platform);
    assert.match(hardware.runtimeVersion, /^\d+\.\d+\.\d+/);
    if (process.platform === "linux" && process.arch === "x64") assert.deepEqual(hardware.gpuRuntimes.map((runtime) => runtime.gpu), ["cuda", "vulkan"]);
    assert.ok(hardware.gpuRuntimes.every((runtime) => runtime.packages.length > 0));
    const status = await fresh.client.request("status");
    assert.equal(status.models, null);
  });
});
