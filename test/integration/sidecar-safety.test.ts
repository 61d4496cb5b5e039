/**
 * The same promises over JSON-RPC, as the VS Code extension meets them: a request that cannot
 * work is refused before any job with an error the client can act on (OUTPUT_* with the answer
 * that would allow the write, CONTEXT_TOO_SMALL, CONSTRAINTS_INVALID), "Assemble Again" asks
 * before it replaces what the user changed, and the user's own files are kept.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { SidecarProcess } from "../../sidecar/src/client/sidecarProcess";
import { setUpTestModels, sidecarPath, type TestModelSetup } from "../helpers/testModels";
import { rpcError } from "../helpers/rpcError";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";
let setup: TestModelSetup;
let sidecar: SidecarProcess;
let scratch: string;

before(async () => {
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-sidecar-safety-"));
  sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: setup.manifestPath, profile: "tiny", threads: 1 } });
});

after(async () => {
  assert.equal(await sidecar?.dispose(), 0);
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

describe("output folders over the protocol", () => {
  test("a repository root is refused before any job, whatever the overwrite answer", async () => {
    const repository = path.join(scratch, "repository");
    mkdirSync(path.join(repository, ".git"), { recursive: true });
    const error = await rpcError(sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir: repository, overwrite: "all" }));
    assert.equal(error.data?.code, "OUTPUT_FORBIDDEN", error.message);
    assert.equal(error.data?.output?.outDir, repository);
    assert.equal(error.data?.output?.allowWith, undefined);
    assert.deepEqual(readdirSync(repository), [".git"]);
    assert.deepEqual((await sidecar.client.request("status")).queuedJobIds, []);
  });

  test("Assemble Again: asks before replacing a file the user changed, keeps the files the user added", async () => {
    const outDir = path.join(scratch, "hb");
    const { jobId, programId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir });
    assert.equal((await sidecar.waitForJob(jobId)).type, "jobFinished");
    writeFileSync(path.join(outDir, "notes.txt"), "mine");

    // Unchanged: the program's own folder is rewritten without a question.
    const again = await sidecar.client.request("assemble", { programId });
    assert.equal((await sidecar.waitForJob(again.jobId)).type, "jobFinished");
    assert.equal(readFileSync(path.join(outDir, "notes.txt"), "utf8"), "mine");

    writeFileSync(path.join(outDir, "main.py"), "# edited by hand\n");
    const refused = await rpcError(sidecar.client.request("assemble", { programId }));
    assert.equal(refused.data?.code, "OUTPUT_FILES_CHANGED", refused.message);
    assert.deepEqual(refused.data?.output?.changedFiles, ["main.py"]);
    assert.equal(refused.data?.output?.allowWith, "all");
    assert.equal(readFileSync(path.join(outDir, "main.py"), "utf8"), "# edited by hand\n");

    const confirmed = await sidecar.client.request("assemble", { programId, overwrite: refused.data!.output!.allowWith });
    assert.equal((await sidecar.waitForJob(confirmed.jobId)).type, "jobFinished");
    assert.notEqual(readFileSync(path.join(outDir, "main.py"), "utf8"), "# edited by hand\n");
    assert.equal(readFileSync(path.join(outDir, "notes.txt"), "utf8"), "mine");
    assert.deepEqual(readdirSync(scratch).filter((name) => name.includes(".gpiot-")), []);
  });

  test("another program's folder: OUTPUT_EXISTS names the answer, ownFiles replaces it", async () => {
    const outDir = path.join(scratch, "shared");
    const first = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir });
    assert.equal((await sidecar.waitForJob(first.jobId)).type, "jobFinished");
    const refused = await rpcError(sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir }));
    assert.equal(refused.data?.code, "OUTPUT_EXISTS");
    assert.equal(refused.data?.output?.allowWith, "ownFiles");
    const second = await sidecar.client.request("synthesize", { requirement: REQUIREMENT, outDir, overwrite: "ownFiles" });
    assert.equal((await sidecar.waitForJob(second.jobId)).type, "jobFinished");
    assert.equal(JSON.parse(readFileSync(path.join(outDir, "gpiot.json"), "utf8")).requirement, REQUIREMENT);
  });
});

describe("requests checked before any model work", () => {
  test("a short requirement is accepted; negative limits are refused", async () => {
    const { jobId } = await sidecar.client.request("synthesize", { requirement: "Count steps" });
    assert.equal((await sidecar.waitForJob(jobId)).type, "jobFinished");
    const error = await rpcError(sidecar.client.request("synthesize", { requirement: "Count steps", constraints: "<= -5 ms" }));
    assert.equal(error.data?.code, "CONSTRAINTS_INVALID", error.message);
  });

  test("a context too small for the prompts: refused up front (estimate), or at the stage before generating (exact)", async () => {
    const tiny = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: setup.manifestPath, profile: "tiny", threads: 1, contextSize: 256 } });
    try {
      const error = await rpcError(tiny.client.request("synthesize", { requirement: REQUIREMENT }));
      assert.equal(error.data?.code, "CONTEXT_TOO_SMALL", error.message);
      assert.match(error.message, /A context of 256 tokens is too small/);
      assert.equal((await tiny.client.request("status")).modelState, "none", "no model was loaded");
    } finally {
      assert.equal(await tiny.dispose(), 0);
    }
    // The estimate passes 768 tokens; the tiny model's tokenizer needs more for the decomposition prompt.
    const small = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: setup.manifestPath, profile: "tiny", threads: 1, contextSize: 768 } });
    try {
      const generated: string[] = [];
      small.client.onJobEvent((event) => {
        if (event.type === "textDelta") generated.push(event.text);
      });
      const { jobId } = await small.client.request("synthesize", { requirement: REQUIREMENT });
      const last = await small.waitForJob(jobId);
      assert.ok(last.type === "jobFailed" && last.error.code === "CONTEXT_TOO_SMALL", JSON.stringify(last));
      assert.match(last.error.message, /The task decomposition \(TD\) context holds 768 tokens, but this prompt takes \d+, leaving \d+ for the answer/);
      assert.deepEqual(generated, [], "nothing was generated");
    } finally {
      assert.equal(await small.dispose(), 0);
    }
  });
});
