/**
 * After the engine restarts — a setting changed, or it crashed while idle — the open programs and
 * comment conversations are restored in the new engine and keep working: the next edit, undo,
 * assembly or Create Files reaches a program the new engine knows (never "ready" when the next
 * action would fail).
 */
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { JobResult, ProgramState } from "../../../extension/src/programStore";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { changeEngineSetting, closeAllEditors, discardProposals, flatten, getApi, REQUIREMENTS, waitFor, workspaceDir } from "./helpers";

function content(program: ProgramState) {
  return program.subTasks.map((entry) => ({ id: entry.id, subTask: entry.subTask, spec: entry.spec, artifact: entry.artifact, codeState: entry.codeState }));
}

suite("engine restart recovery", () => {
  let written: ProgramState;
  let conversation: ProgramState;
  let threadId: number;
  suiteSetup(async () => {
    await closeAllEditors();
    const api = await getApi();
    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.har, constraints: "", outDir: path.join(workspaceDir(), "programs", "recovery"), openEditors: false });
    assert.equal(result.status, "finished", result.error?.message);
    written = api.store.get(result.programUid!)!;
    const file = path.join(workspaceDir(), "recovery.py");
    writeFileSync(file, "# GPIoT: Count steps from a wrist accelerometer signal and report them every minute\n");
    const chat = await vscode.commands.executeCommand<JobResult & { threadId: number }>("gpiot.synthesizeFromComment", { uri: vscode.Uri.file(file).toString(), line: 0 });
    assert.equal(chat.status, "finished", chat.error?.message);
    threadId = chat.threadId;
    conversation = api.store.get(chat.programUid)!;
  });
  teardown(async () => discardProposals(await getApi()));

  test("a settings change restarts the engine; programs and conversations are restored and keep working", async () => {
    const api = await getApi();
    const before = { written: content(written), conversation: content(conversation), uids: [written.uid, conversation.uid] };
    const generation = api.sidecar.generation;
    try {
      await changeEngineSetting(api, "temperature", 0.5);
      for (const program of [written, conversation]) {
        assert.ok(program.generation > generation, "taken over by the new engine");
        assert.equal(program.lost, false);
        assert.equal(program.detached, false);
        const snapshot = await api.sidecar.request((rpc) => rpc.request("getProgram", { programId: program.programId }));
        assert.equal(snapshot.subTasks.length, program.subTasks.length, "the new engine knows it");
      }
      assert.deepEqual([written.uid, conversation.uid], before.uids, "the same entries in the tree");
      assert.deepEqual(content(written), before.written);
      assert.deepEqual(content(conversation), before.conversation);
      assert.equal(written.outDir, path.join(workspaceDir(), "programs", "recovery"));
      const node = flatten(await api.treeSnapshot()).find((candidate) => candidate.kind === "program" && candidate.uid === written.uid)!;
      assert.match(node.description ?? "", /^\d+ files$/);
      assert.match(node.contextValue ?? "", /\beditable\b/);

      // The next actions reach the restored programs.
      const firstId = written.subTasks[0].id;
      await vscode.commands.executeCommand("gpiot.editSubTask", { programUid: written.uid, subTaskId: firstId }, { name: "Read the CSI frames" });
      assert.equal(written.subTasks[0].specStale, true);
      assert.match(await vscode.commands.executeCommand<string>("gpiot.undoReviewEdit", { programUid: written.uid }), /Edit sub-task 1/);
      assert.deepEqual(content(written), before.written);
      const folder = path.join(workspaceDir(), "programs", "recovery-conversation");
      const created = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.comment.createFiles", { threadId, outDir: folder, confirm: true });
      assert.equal(created.status, "finished", created.error?.message);
      assert.ok(existsSync(path.join(folder, "main.py")));
    } finally {
      await changeEngineSetting(api, "temperature", undefined);
    }
  });

  test("after a crash while idle the programs are restored too, and assemble again into their folder", async () => {
    const api = await getApi();
    await api.sidecar.ensureStarted();
    const generation = api.sidecar.generation;
    const before = content(written);
    process.kill(api.sidecar.pid!, "SIGKILL");
    await waitFor("the engine to come back", () => api.sidecar.generation > generation && api.sidecar.state === "running", 30_000);
    await api.recovery.whenRecovered();
    assert.equal(written.generation, api.sidecar.generation);
    assert.deepEqual(content(written), before);
    const assembled = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.assemble", { programUid: written.uid }, { confirm: true });
    assert.equal(assembled.status, "finished", assembled.error?.message);
    assert.equal(assembled.outDir, path.join(workspaceDir(), "programs", "recovery"));
  });
});
