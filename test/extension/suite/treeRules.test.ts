/**
 * The task tree keeps the user's work, on the real engine and the tiny model: an edited sub-task
 * keeps its spec and code until regenerated and says so; Assemble is offered only when it can
 * succeed (otherwise the tree says what is missing, in words); Regenerate Stale Sub-tasks brings
 * the program back and offers Assemble; Assemble shows the files as a diff and writes them on
 * Accept; Undo restores order and content; tooltips are Markdown; the tree says what the progress
 * notification says; each job shows one notification at most once it ends; stream editors of two
 * programs have different titles; Clear Finished keeps what waits for the user.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { JobResult, ProgramState } from "../../../extension/src/programStore";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { answer, closeAllEditors, discardProposals, flatten, getApi, REQUIREMENTS, waitFor, workspaceDir } from "./helpers";

const RENAMED = "Band-pass filter the ECG";

/** What undo must put back: text, order, specs, code and their states. */
function content(program: ProgramState) {
  return program.subTasks.map((entry) => ({ id: entry.id, subTask: entry.subTask, spec: entry.spec, artifact: entry.artifact, codeState: entry.codeState, specStale: entry.specStale ?? false }));
}

suite("task tree rules", () => {
  let program: ProgramState;
  let outDir: string;
  suiteSetup(closeAllEditors);
  teardown(async () => {
    const api = await getApi();
    api.ui.setResponder(undefined);
    await discardProposals(api);
  });

  async function programNode() {
    const api = await getApi();
    return flatten(await api.treeSnapshot()).find((node) => node.kind === "program" && node.uid === program.uid)!;
  }

  test("a renamed sub-task keeps its spec and code, says they are out of date, and Assemble is not offered", async () => {
    const api = await getApi();
    outDir = path.join(workspaceDir(), "programs", "tree-rules");
    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.ecg, constraints: "", outDir, openEditors: false });
    assert.equal(result.status, "finished", result.error?.message);
    program = api.store.get(result.programUid!)!;
    const before = structuredClone(program.subTasks[0]);
    const readmeBefore = readFileSync(path.join(outDir, "README.md"), "utf8");

    await vscode.commands.executeCommand("gpiot.editSubTask", { programUid: program.uid, subTaskId: before.id }, { name: RENAMED });
    const edited = program.subTasks[0];
    assert.equal(edited.subTask.name, RENAMED);
    assert.deepEqual(edited.spec, before.spec, "the spec is kept");
    assert.deepEqual(edited.artifact, before.artifact, "the code is kept");
    assert.equal(edited.specStale, true);

    const node = await programNode();
    assert.match(node.contextValue ?? "", /\bstaleParts\b/, "Regenerate Stale Sub-tasks is offered");
    assert.doesNotMatch(node.contextValue ?? "", /\bassemblable\b/, "Assemble is not offered while it would fail");
    assert.equal(node.description, "edited — Regenerate Stale Sub-tasks");
    const subTask = node.children.find((child) => child.kind === "subTask")!;
    assert.equal(subTask.description, "edited: spec and code out of date");
    const reason = node.children.find((child) => child.kind === "message")!;
    assert.match(reason.label, new RegExp(`^Not ready to assemble: Sub-task 1 “${RENAMED}” was edited: its spec and code are out of date\\.$`));
    assert.doesNotMatch(JSON.stringify(node), /p\d+-st\d+/, "no internal ids anywhere in the program's rows");

    answer(api, [[/Not ready to assemble/, undefined]]);
    const refused = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.assemble", { programUid: program.uid });
    assert.equal(refused.status, "aborted");
    const warning = api.ui.messages.at(-1)!;
    assert.match(warning.message, /^Not ready to assemble: Sub-task 1/);
    assert.deepEqual(warning.items, ["Regenerate Stale Sub-tasks"], "the message offers what fixes it");
    assert.equal(readFileSync(path.join(outDir, "README.md"), "utf8"), readmeBefore, "nothing was written");
  });

  test("Regenerate Stale Sub-tasks brings the program back in one job, writes nothing, then offers Assemble once", async () => {
    const api = await getApi();
    const readmeBefore = readFileSync(path.join(outDir, "README.md"), "utf8");
    const messagesBefore = api.ui.messages.length;
    answer(api, [[/Assemble the program/, undefined]]);
    const result = await vscode.commands.executeCommand<JobResult>("gpiot.regenerateStale", { programUid: program.uid });
    assert.equal(result.status, "finished", result.error?.message);
    assert.equal(program.subTasks[0].specStale, undefined);
    assert.ok(["done", "syntaxError"].includes(program.subTasks[0].codeState));
    assert.equal(readFileSync(path.join(outDir, "README.md"), "utf8"), readmeBefore, "regenerating writes no file");
    const node = await programNode();
    assert.match(node.contextValue ?? "", /\bassemblable\b/);
    assert.equal(node.description, "files out of date — Assemble");
    const notifications = api.ui.messages.slice(messagesBefore).filter((message) => message.kind !== "status");
    assert.equal(notifications.length, 1, notifications.map((message) => message.message).join(" | "));
    assert.deepEqual(notifications[0].items, ["Assemble"]);
  });

  test("Assemble shows the files as a diff against the folder and writes them only on Accept", async () => {
    const api = await getApi();
    const readmeBefore = readFileSync(path.join(outDir, "README.md"), "utf8");
    const pending = vscode.commands.executeCommand<SynthesizeResult>("gpiot.assemble", { programUid: program.uid });
    const proposal = await waitFor("the files to review", () => api.proposals.list()[0]);
    assert.ok(proposal.files.includes(path.join(outDir, "main.py")) && proposal.files.includes(path.join(outDir, "README.md")), proposal.files.join(", "));
    assert.match(proposal.title, /^GPIoT: update /);
    const tab = await waitFor("the multi-file diff", () => vscode.window.tabGroups.all.flatMap((group) => group.tabs).find((candidate) => candidate.label.startsWith(proposal.title)));
    assert.ok(tab);
    assert.equal(readFileSync(path.join(outDir, "README.md"), "utf8"), readmeBefore, "nothing is written while the diff is open");
    await vscode.commands.executeCommand("gpiot.proposal.accept", { id: proposal.id });
    const result = await pending;
    assert.equal(result.status, "finished", result.error?.message);
    assert.ok(readFileSync(path.join(outDir, "README.md"), "utf8").includes(RENAMED), "the renamed sub-task reached the files");
    assert.equal(program.filesStale, false);
    assert.match((await programNode()).description ?? "", /^\d+ files$/);
  });

  test("Undo puts back order, text, specs and code exactly, and the files are current again", async () => {
    const api = await getApi();
    const original = content(program);
    const [first, second] = program.subTasks;
    await vscode.commands.executeCommand("gpiot.editSubTask", { programUid: program.uid, subTaskId: first.id }, { name: "Load the record", problem: "Read the WFDB record from disk." });
    await vscode.commands.executeCommand("gpiot.addSubTask", { programUid: program.uid }, { name: "Report the heart rate", problem: "Turn R-peak times into beats per minute.", steps: ["Average the RR intervals"] });
    if (second) await vscode.commands.executeCommand("gpiot.moveSubTaskUp", { programUid: program.uid, subTaskId: second.id });
    await vscode.commands.executeCommand("gpiot.deleteSubTask", { programUid: program.uid, subTaskId: first.id });
    assert.equal(program.filesStale, true);
    const labels: string[] = [];
    for (;;) {
      const label = await vscode.commands.executeCommand<string | undefined>("gpiot.undoReviewEdit", { programUid: program.uid });
      if (!label) break;
      labels.push(label);
    }
    assert.equal(labels.length, second ? 4 : 3, labels.join(" | "));
    assert.match(labels[0], /^Delete sub-task/);
    assert.deepEqual(content(program), original, "every sub-task as it was, in its place, with its spec and code");
    const snapshot = await api.sidecar.request((rpc) => rpc.request("getProgram", { programId: program.programId }));
    assert.deepEqual(
      snapshot.subTasks.map((entry) => [entry.id, entry.subTask.name, entry.codeState]),
      original.map((entry) => [entry.id, entry.subTask.name, entry.codeState]),
      "the engine holds the same",
    );
    assert.equal(program.filesStale, false, "back to what was written");
    assert.match((await programNode()).description ?? "", /^\d+ files$/);
  });

  test("every tooltip of the tree is Markdown", async () => {
    const api = await getApi();
    const nodes = flatten(await api.treeSnapshot()).filter((node) => node.tooltip);
    assert.ok(nodes.length > 5);
    for (const node of nodes) assert.equal(node.tooltip!.markdown, true, `${node.kind} "${node.label}"`);
  });

  test("while a job runs the tree says what the progress notification says; when it ends there is no pile of notifications", async () => {
    const api = await getApi();
    const seen: string[] = [];
    const subscription = api.store.onDidChangeProgram(({ program: changed, structural }) => {
      if (!structural || !changed.busy) return;
      const description = api.tree.getTreeItem(api.tree.programNode(changed)).description;
      if (typeof description === "string") seen.push(description);
    });
    const messagesBefore = api.ui.messages.length;
    const progressBefore = api.ui.progress.length;
    let result: SynthesizeResult;
    try {
      result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.steps, constraints: "", openEditors: false });
    } finally {
      subscription.dispose();
    }
    assert.equal(result.status, "finished", result.error?.message);
    const progress = api.ui.progress.slice(progressBefore);
    assert.equal(progress.length, 1, "one progress notification for the job");
    assert.ok(progress[0].messages.length >= 3, progress[0].messages.join(" | "));
    for (const message of progress[0].messages) assert.ok(seen.includes(message), `the tree also said "${message}" (tree: ${[...new Set(seen)].join(" | ")})`);
    const after = api.ui.messages.slice(messagesBefore);
    assert.deepEqual(after.filter((message) => message.kind !== "status").map((message) => message.message), [], "no notification for a job that went well");
    assert.equal(after.filter((message) => message.kind === "status").length, 1, "the status bar says where the files went");

    const paused = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.audio, constraints: "", review: "decomposition", openEditors: false });
    assert.equal(paused.status, "awaitingReview");
    const review = api.ui.messages.filter((message) => message.kind !== "status" && message.at >= (after.at(-1)?.at ?? 0) && /Review the/.test(message.message));
    assert.equal(review.length, 1, "a review to do is one notification");
    assert.deepEqual(review[0].items, ["Continue"]);
  });

  test("the stream editors of two programs with the same requirement have different titles", async () => {
    const api = await getApi();
    const results: SynthesizeResult[] = [];
    for (let i = 0; i < 2; i++) results.push(await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.temperature, constraints: "", openEditors: true }));
    const tabsOf = (uid: string) =>
      vscode.window.tabGroups.all
        .flatMap((group) => group.tabs)
        .filter((tab) => tab.input instanceof vscode.TabInputText && tab.input.uri.scheme === "gpiot-stream" && tab.input.uri.path.startsWith(`/${uid}/`))
        .map((tab) => tab.label)
        .sort();
    const titles = await Promise.all(results.map((result) => waitFor("the three stream editors", () => (tabsOf(result.programUid!).length === 3 ? tabsOf(result.programUid!) : undefined), 10_000)));
    assert.equal(titles[0].length, 3, titles[0].join(", "));
    assert.equal(titles[1].length, 3, titles[1].join(", "));
    for (const title of titles[0]) assert.ok(!titles[1].includes(title), `"${title}" names one program only`);
    assert.ok(titles[0].some((title) => /^read-temperature-sensor-\d+\.code\.py$/.test(title)), titles[0].join(", "));
    void api;
    await closeAllEditors();
  });

  test("Clear Finished removes done, failed and cancelled programs and keeps the ones waiting for the user", async () => {
    const api = await getApi();
    const waiting = api.store.programs().filter((candidate) => candidate.phase === "awaitingReview");
    assert.ok(waiting.length >= 1);
    const done = api.store.programs().filter((candidate) => candidate.phase === "done" && !candidate.busy);
    assert.ok(done.length >= 1);
    const cleared = await vscode.commands.executeCommand<number>("gpiot.clearFinished");
    assert.ok(cleared >= done.length);
    for (const program of done) assert.equal(api.store.get(program.uid), undefined);
    for (const program of waiting) assert.ok(api.store.get(program.uid), "a program waiting for review stays");
    const roots = flatten(await api.treeSnapshot()).filter((node) => node.kind === "program");
    assert.ok(!roots.some((node) => /^\d+ files$/.test(node.description ?? "")), "no finished program is listed");
    assert.ok(api.ui.messages.at(-1)?.kind === "status" && /Cleared \d+ finished program/.test(api.ui.messages.at(-1)!.message));
  });
});
