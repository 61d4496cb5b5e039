import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { JobEvent } from "../../../sidecar/src/protocol";
import type { GpiotExtensionApi } from "../../../extension/src/extension";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { answer, closeAllEditors, flatten, getApi, partialFolders, REQUIREMENTS, waitFor, workspaceDir } from "./helpers";

/** Kills the sidecar in the same tick as the first job event that matches. */
function killOn(api: GpiotExtensionApi, matches: (event: JobEvent) => boolean, pid: number): Promise<void> {
  return new Promise((resolve) => {
    const subscription = api.store.onDidChangeProgram(({ event }) => {
      if (!event || !matches(event)) return;
      subscription.dispose();
      process.kill(pid, "SIGKILL");
      resolve();
    });
  });
}

suite("the sidecar dies mid-job", () => {
  suiteSetup(closeAllEditors);
  teardown(async () => {
    const api = await getApi();
    api.ui.setResponder(undefined);
    await api.sidecar.whenRunning();
  });

  test("the user gets a clear message and a retry, the sidecar restarts, no partial files are left", async () => {
    const api = await getApi();
    const outDir = path.join(workspaceDir(), "programs", "after-crash");
    await api.sidecar.ensureStarted();
    const generationBefore = api.sidecar.generation;
    const pidBefore = api.sidecar.pid!;
    let retries = 0;
    answer(api, [[/engine stopped/, () => (retries++ === 0 ? "Retry" : undefined)]]);

    // Kill it while the code generation model writes: synchronously on the first streamed code,
    // since the tiny model can finish the whole job in a few hundred milliseconds.
    const killed = killOn(api, (event) => event.type === "codeDelta", pidBefore);
    const running = vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.temperature, constraints: "", outDir, openEditors: false });
    const program = await waitFor("the program", () => api.store.programs().find((candidate) => candidate.generation === generationBefore && candidate.intendedOutDir === outDir));
    await killed;

    const result = await running;
    // The first attempt failed with a clear message ...
    assert.equal(result.retriedAfter?.status, "failed");
    assert.equal(result.retriedAfter?.error?.code, "ENGINE_STOPPED");
    const message = api.ui.messages.find((candidate) => candidate.kind === "error" && /engine stopped/.test(candidate.message))!;
    assert.ok(message, "an error message was shown");
    assert.match(message.message, /has been restarted; no files were written/);
    assert.deepEqual(message.items, ["Retry", "Show Log"]);
    assert.equal(message.answer, "Retry");
    // ... the sidecar was restarted ...
    assert.ok(api.sidecar.generation > generationBefore, "a new sidecar generation");
    assert.notEqual(api.sidecar.pid, pidBefore);
    assert.equal(api.sidecar.state, "running");
    // The program's decomposition survived the crash: the new engine took it over, marked as stopped, with Retry.
    await api.recovery.whenRecovered();
    assert.equal(program.lost, false);
    assert.equal(program.generation, api.sidecar.generation, "restored in the new engine");
    assert.equal(program.phase, "failed");
    const node = flatten(await api.treeSnapshot()).find((candidate) => candidate.kind === "program" && candidate.uid === program.uid);
    assert.match(node?.contextValue ?? "", /\bretryable\b/);
    assert.equal(node?.description, "stopped: the engine stopped — Retry", "the stopped program says so in the tree");
    // ... and the retry wrote the program, with nothing half-written beside it.
    assert.equal(result.status, "finished", result.error?.message);
    assert.equal(result.outDir, outDir);
    assert.ok(readdirSync(outDir).includes("main.py"));
    assert.deepEqual(partialFolders(path.dirname(outDir)), []);
  });

  test("a kill with no retry leaves no folder at all", async () => {
    const api = await getApi();
    const outDir = path.join(workspaceDir(), "programs", "crash-no-retry");
    answer(api, [[/engine stopped/, undefined]]);
    await api.sidecar.ensureStarted();
    const generation = api.sidecar.generation;
    const killed = killOn(api, (event) => event.type === "textDelta" && event.stage === "td", api.sidecar.pid!);
    const running = vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.steps, constraints: "", outDir, openEditors: false });
    await killed;
    const result = await running;
    assert.equal(result.status, "failed");
    assert.equal(result.error?.code, "ENGINE_STOPPED");
    assert.equal(existsSync(outDir), false);
    assert.deepEqual(partialFolders(path.dirname(outDir)), []);
    await waitFor("the restart", () => api.sidecar.state === "running" && api.sidecar.generation > generation, 30_000);
    // Nothing of it was decomposed yet: it needs a new run, and the tree says so (never "ready").
    await api.recovery.whenRecovered();
    const program = api.store.get(result.programUid!)!;
    assert.equal(program.lost, true);
    const node = flatten(await api.treeSnapshot()).find((candidate) => candidate.kind === "program" && candidate.uid === program.uid);
    assert.equal(node?.description, "needs a new run — Retry");
    assert.match(node?.contextValue ?? "", /\bretryable\b/);
    assert.doesNotMatch(node?.contextValue ?? "", /\b(editable|assemblable)\b/);
  });
});
