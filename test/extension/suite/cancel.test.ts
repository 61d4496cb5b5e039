import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { closeAllEditors, flatten, getApi, partialFolders, REQUIREMENTS, waitFor, workspaceDir } from "./helpers";

suite("cancel", () => {
  suiteSetup(closeAllEditors);

  test("cancelling stops the sidecar's generation and writes nothing", async () => {
    const api = await getApi();
    const outDir = path.join(workspaceDir(), "programs", "cancelled-har");
    // Cancel while the models are writing: as soon as the first tokens of the decomposition arrive
    // (the tiny model can finish a whole job in a few hundred milliseconds).
    const cancelled = new Promise<boolean>((resolve) => {
      const subscription = api.store.onDidChangeProgram(({ program, event }) => {
        if (event?.type !== "textDelta" || program.intendedOutDir !== outDir) return;
        subscription.dispose();
        resolve(vscode.commands.executeCommand<boolean>("gpiot.cancelJob", { programUid: program.uid }) as Promise<boolean>);
      });
    });
    const queued = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.har, constraints: "", outDir, wait: false, openEditors: false });
    assert.equal(queued.status, "queued");
    const program = api.store.get(queued.programUid!)!;
    assert.equal(await cancelled, true, "gpiot/cancel reached the running job");
    const result = await api.store.waitForJob(queued.generation!, queued.jobId!);
    assert.equal(result.status, "cancelled");
    assert.equal(result.error?.code, "CANCELLED");
    assert.equal(program.phase, "cancelled");
    assert.equal(program.busy, false);
    assert.equal(existsSync(outDir), false, "no program folder");
    assert.deepEqual(partialFolders(path.dirname(outDir)), [], "no partial files");
    const node = flatten(await api.treeSnapshot()).find((candidate) => candidate.kind === "program" && candidate.label.startsWith("Recognize human activities"));
    assert.equal(node?.description, "cancelled");
    assert.match(node?.contextValue ?? "", /\bretryable\b/);
    const status = await api.sidecar.request((rpc) => rpc.request("status"));
    assert.equal(status.runningJobId, null, "the sidecar is idle again");
    await waitFor("the cancellation message", () => api.ui.messages.some((message) => /stopped .*nothing was written/.test(message.message)), 5000);
  });
});
