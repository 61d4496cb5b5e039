import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { JobResult } from "../../../extension/src/programStore";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { closeAllEditors, getApi, waitFor, workspaceDir } from "./helpers";

const PYTHON_SOURCE = [
  "import time",
  "",
  "# GPIoT: Read a temperature sensor every second and warn when it overheats",
  "# Constraints: Raspberry Pi Zero, <= 64 MB RAM",
  "",
  "def main():",
  "    pass",
  "",
].join("\n");

const C_SOURCE = ["#include <stdio.h>", "", "/*", " * Count steps from a wrist accelerometer signal", " * and report them every minute.", " */", "int main(void) { return 0; }", ""].join("\n");

type ChatResult = JobResult & { threadId: number };

suite("inline chat on a requirement comment", () => {
  let document: vscode.TextDocument;
  let threadId: number;
  suiteSetup(async () => {
    // GPIoT is not activated by opening a Python file (only by its commands, its view, or a workspace with GPIoT programs).
    await getApi();
    await closeAllEditors();
    const file = path.join(workspaceDir(), "sensor.py");
    writeFileSync(file, PYTHON_SOURCE);
    document = await vscode.workspace.openTextDocument(file);
    const editor = await vscode.window.showTextDocument(document);
    editor.selection = new vscode.Selection(2, 2, 3, 10);
  });
  teardown(async () => {
    const api = await getApi();
    api.ui.setResponder(undefined);
    // A failed test must not leave a proposal waiting for the next one.
    for (const proposal of api.proposals.list()) await vscode.commands.executeCommand("gpiot.proposal.discard", { id: proposal.id });
  });

  test("a code action and a CodeLens offer it on the selected comment", async () => {
    const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>("vscode.executeCodeActionProvider", document.uri, new vscode.Range(2, 2, 3, 10));
    const action = actions.find((candidate) => candidate.title === "GPIoT: Synthesize from comment");
    assert.ok(action, `code actions: ${actions.map((candidate) => candidate.title).join(", ")}`);
    assert.deepEqual(action.command?.arguments?.[0], { uri: document.uri.toString(), line: 2, endLine: 3 });
    const none = await vscode.commands.executeCommand<vscode.CodeAction[]>("vscode.executeCodeActionProvider", document.uri, new vscode.Range(5, 0, 5, 0));
    assert.ok(!none.some((candidate) => candidate.title.startsWith("GPIoT")), "not offered on code");
    const lenses = await vscode.commands.executeCommand<vscode.CodeLens[]>("vscode.executeCodeLensProvider", document.uri);
    assert.ok(lenses.some((lens) => lens.command?.command === "gpiot.synthesizeFromComment" && lens.range.start.line === 2), "a CodeLens sits on the comment");
  });

  test("the conversation opens at the comment and streams the decomposition and code", async () => {
    const api = await getApi();
    const result = await vscode.commands.executeCommand<ChatResult>("gpiot.synthesizeFromComment", { uri: document.uri.toString(), line: 2, endLine: 3 });
    assert.equal(result.status, "finished", result.error?.message);
    threadId = result.threadId;
    const thread = api.commentThreads().find((candidate) => candidate.id === threadId)!;
    assert.equal(thread.requirement, "Read a temperature sensor every second and warn when it overheats");
    assert.equal(thread.startLine, 2);
    assert.equal(thread.endLine, 3);
    assert.equal(thread.status, "ready");
    assert.equal(thread.contextValue, "ready insertable", "Insert Below is offered in a Python file");
    const program = api.store.get(thread.programUid!)!;
    assert.equal(program.constraints, "Raspberry Pi Zero, <= 64 MB RAM", "the Constraints: line became the constraints");
    assert.equal(program.origin, "comment");
    assert.equal(thread.comments.length, 2);
    assert.equal(thread.comments[0].author, "You");
    assert.equal(thread.comments[1].author, "GPIoT");
    assert.match(thread.comments[1].body, /\*\*Sub-tasks\*\*/);
    assert.match(thread.comments[1].body, /```+python/);
    assert.match(thread.comments[1].body, /Done/);
  });

  test("a reply refines the requirement and generates again", async () => {
    const api = await getApi();
    const result = await vscode.commands.executeCommand<ChatResult>("gpiot.comment.refine", { threadId, text: "Smooth the readings with a moving average of 5 samples" });
    assert.equal(result.status, "finished", result.error?.message);
    const thread = api.commentThreads().find((candidate) => candidate.id === threadId)!;
    assert.deepEqual(thread.refinements, ["Smooth the readings with a moving average of 5 samples"]);
    assert.deepEqual(thread.comments.map((comment) => comment.author), ["You", "GPIoT", "You", "GPIoT"]);
    const program = api.store.get(thread.programUid!)!;
    assert.equal(program.requirement, "Read a temperature sensor every second and warn when it overheats\n\nRefinement: Smooth the readings with a moving average of 5 samples");
  });

  test("the conversation is one entry in the GPIoT view, its first version under it", async () => {
    const api = await getApi();
    const thread = api.commentThreads().find((candidate) => candidate.id === threadId)!;
    const newest = api.store.get(thread.programUid!)!;
    const roots = (await api.treeSnapshot()).filter((node) => node.kind === "program" && api.store.get(node.uid)?.group?.id === newest.group?.id);
    assert.equal(roots.length, 1, `one entry: ${roots.map((node) => `${node.label} (${node.description})`).join(" | ")}`);
    assert.equal(roots[0].uid, newest.uid, "the entry is the newest version");
    assert.match(roots[0].description ?? "", /^refined ×1 · /);
    const versions = roots[0].children.find((child) => child.kind === "versions")!;
    assert.equal(versions.label, "Earlier versions (1)");
    assert.equal(versions.children.length, 1);
    assert.match(versions.children[0].label, /^Version 1: Read a temperature sensor/);
  });

  test("Insert Below shows a diff with Accept in the editor, nothing blocks it, and Accept applies one undoable edit", async () => {
    const api = await getApi();
    const original = document.getText();
    const modalsBefore = api.ui.messages.filter((message) => message.modal).length;
    const pending = vscode.commands.executeCommand<{ applied: boolean; line?: number }>("gpiot.comment.insertBelow", { threadId });
    const diff = await waitFor("the diff of the proposed change", () =>
      vscode.window.tabGroups.all.flatMap((group) => group.tabs).find((tab) => tab.input instanceof vscode.TabInputTextDiff && tab.input.modified.scheme === "gpiot-proposal" && tab.input.original.toString() === document.uri.toString()),
    );
    assert.ok(diff, "the proposal is a diff against the file");
    assert.equal(api.ui.messages.filter((message) => message.modal).length, modalsBefore, "no modal question over the diff");
    assert.equal(document.getText(), original, "nothing changes while the diff is shown");
    assert.equal(api.proposals.list().length, 1);
    const proposed = await vscode.workspace.openTextDocument((diff.input as vscode.TabInputTextDiff).modified);
    assert.ok(proposed.getText().includes("# Generated by GPIoT from the comment above"), "the diff shows the code that would be inserted");
    assert.equal(await vscode.commands.executeCommand<boolean>("gpiot.proposal.accept"), true);
    const inserted = await pending;
    assert.equal(inserted.applied, true);
    assert.equal(inserted.line, 4);
    const lines = document.getText().split("\n");
    assert.equal(lines[3], "# Constraints: Raspberry Pi Zero, <= 64 MB RAM", "the comment is kept");
    assert.equal(lines[4], "# Generated by GPIoT from the comment above and your refinements.");
    assert.ok(document.getText().includes("# --- Sub-task 1: "));
    await waitFor("the diff to close", () => !vscode.window.tabGroups.all.some((group) => group.tabs.some((tab) => tab.input instanceof vscode.TabInputTextDiff)));

    await vscode.window.showTextDocument(document);
    await vscode.commands.executeCommand("undo");
    await waitFor("one undo to restore the file", () => document.getText() === original);
  });

  test("Discard (or closing the diff) changes nothing; confirm: true inserts without the diff", async () => {
    const original = document.getText();
    const discarded = vscode.commands.executeCommand<{ applied: boolean }>("gpiot.comment.insertBelow", { threadId });
    await waitFor("the diff", () => vscode.window.tabGroups.all.some((group) => group.tabs.some((tab) => tab.input instanceof vscode.TabInputTextDiff)));
    await vscode.commands.executeCommand("gpiot.proposal.discard");
    assert.equal((await discarded).applied, false);
    assert.equal(document.getText(), original);
    await waitFor("Discard to close the diff", () => !vscode.window.tabGroups.all.some((group) => group.tabs.some((tab) => tab.input instanceof vscode.TabInputTextDiff)), 20_000);
    const closed = vscode.commands.executeCommand<{ applied: boolean }>("gpiot.comment.insertBelow", { threadId });
    const api = await getApi();
    const proposal = await waitFor("the new proposal", () => api.proposals.list()[0]);
    const tab = await waitFor("its diff", () =>
      vscode.window.tabGroups.all.flatMap((group) => group.tabs).find((candidate) => candidate.input instanceof vscode.TabInputTextDiff && proposal.uris.includes(candidate.input.modified.toString())),
    );
    await vscode.window.tabGroups.close(tab);
    assert.equal((await closed).applied, false, "closing the diff discards the change");
    assert.equal(document.getText(), original);
    const applied = await vscode.commands.executeCommand<{ applied: boolean }>("gpiot.comment.insertBelow", { threadId, confirm: true });
    assert.equal(applied.applied, true);
    assert.notEqual(document.getText(), original);
    await vscode.window.showTextDocument(document);
    await vscode.commands.executeCommand("undo");
    await waitFor("undo", () => document.getText() === original);
  });

  test("Create Files shows the program's files as a diff, and writes them into a new folder on Accept", async () => {
    const api = await getApi();
    const outDir = path.join(workspaceDir(), "programs", "from-comment");
    const pending = vscode.commands.executeCommand<SynthesizeResult>("gpiot.comment.createFiles", { threadId, outDir });
    const proposal = await waitFor("the files to review", () => api.proposals.list()[0]);
    assert.ok(proposal.files.some((file) => file === path.join(outDir, "main.py")), proposal.files.join(", "));
    assert.equal(existsSync(outDir), false, "nothing is written before Accept");
    await vscode.commands.executeCommand("gpiot.proposal.accept", { id: proposal.id });
    const result = await pending;
    assert.equal(result.status, "finished", result.error?.message);
    assert.ok(existsSync(path.join(outDir, "main.py")));
    const thread = api.commentThreads().find((candidate) => candidate.id === threadId)!;
    assert.match(thread.comments.at(-1)!.body, /Wrote \d+ files/);
  });

  test("a C block comment works too (Create Files only: the code is Python)", async () => {
    const api = await getApi();
    const file = path.join(workspaceDir(), "firmware.c");
    writeFileSync(file, C_SOURCE);
    const cDocument = await vscode.workspace.openTextDocument(file);
    await vscode.window.showTextDocument(cDocument);
    const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>("vscode.executeCodeActionProvider", cDocument.uri, new vscode.Range(3, 4, 3, 4));
    assert.ok(actions.some((candidate) => candidate.title === "GPIoT: Synthesize from comment"));
    const result = await vscode.commands.executeCommand<ChatResult>("gpiot.synthesizeFromComment", { uri: cDocument.uri.toString(), line: 3 });
    assert.equal(result.status, "finished", result.error?.message);
    const thread = api.commentThreads().find((candidate) => candidate.id === result.threadId)!;
    assert.equal(thread.requirement, "Count steps from a wrist accelerometer signal\nand report them every minute.");
    assert.equal(thread.startLine, 2);
    assert.equal(thread.endLine, 5);
    assert.equal(thread.contextValue, "ready");
    await vscode.commands.executeCommand("gpiot.comment.close", { threadId: result.threadId });
    assert.ok(!api.commentThreads().some((candidate) => candidate.id === result.threadId));
  });
});
