import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { JobResult } from "../../../extension/src/programStore";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { answer, closeAllEditors, getApi, waitFor, workspaceDir } from "./helpers";

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
    await closeAllEditors();
    const file = path.join(workspaceDir(), "sensor.py");
    writeFileSync(file, PYTHON_SOURCE);
    document = await vscode.workspace.openTextDocument(file);
    const editor = await vscode.window.showTextDocument(document);
    editor.selection = new vscode.Selection(2, 2, 3, 10);
  });
  teardown(async () => (await getApi()).ui.setResponder(undefined));

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

  test("Insert Below shows a diff first, applies an undoable edit on Apply", async () => {
    const api = await getApi();
    let diffShown = false;
    answer(api, [
      [
        /apply this change/,
        () => {
          diffShown = vscode.window.tabGroups.all.some((group) => group.tabs.some((tab) => tab.input instanceof vscode.TabInputTextDiff && tab.input.modified.scheme === "gpiot-proposal" && tab.input.original.toString() === document.uri.toString()));
          return "Apply";
        },
      ],
    ]);
    const original = document.getText();
    const inserted = await vscode.commands.executeCommand<{ applied: boolean; line?: number }>("gpiot.comment.insertBelow", { threadId });
    assert.equal(diffShown, true, "the proposal was shown as a diff before the question");
    assert.equal(inserted.applied, true);
    assert.equal(inserted.line, 4);
    const lines = document.getText().split("\n");
    assert.equal(lines[3], "# Constraints: Raspberry Pi Zero, <= 64 MB RAM", "the comment is kept");
    assert.equal(lines[4], "# Generated by GPIoT from the comment above and your refinements.");
    assert.ok(document.getText().includes("# --- Sub-task 1: "));
    assert.ok(!vscode.window.tabGroups.all.some((group) => group.tabs.some((tab) => tab.input instanceof vscode.TabInputTextDiff)), "the diff closed");

    await vscode.window.showTextDocument(document);
    await vscode.commands.executeCommand("undo");
    await waitFor("undo to restore the file", () => document.getText() === original);
  });

  test("Insert Below with confirm: true applies without the diff; declining changes nothing", async () => {
    const api = await getApi();
    const original = document.getText();
    answer(api, [[/apply this change/, undefined]]);
    const declined = await vscode.commands.executeCommand<{ applied: boolean }>("gpiot.comment.insertBelow", { threadId });
    assert.equal(declined.applied, false);
    assert.equal(document.getText(), original);
    const applied = await vscode.commands.executeCommand<{ applied: boolean }>("gpiot.comment.insertBelow", { threadId, confirm: true });
    assert.equal(applied.applied, true);
    assert.notEqual(document.getText(), original);
    await vscode.window.showTextDocument(document);
    await vscode.commands.executeCommand("undo");
    await waitFor("undo", () => document.getText() === original);
  });

  test("Create Files writes the program into a new folder", async () => {
    const outDir = path.join(workspaceDir(), "programs", "from-comment");
    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.comment.createFiles", { threadId, outDir });
    assert.equal(result.status, "finished", result.error?.message);
    assert.ok(existsSync(path.join(outDir, "main.py")));
    const api = await getApi();
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
