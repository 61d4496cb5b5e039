import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import { streamUri } from "../../../extension/src/streamDocuments";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { answer, closeAllEditors, flatten, getApi, partialFolders, REQUIREMENTS, sleep, waitFor, workspaceDir } from "./helpers";

suite("GPIoT: Synthesize Program", () => {
  suiteSetup(closeAllEditors);
  teardown(async () => (await getApi()).ui.setResponder(undefined));

  test("end to end: the tree fills, the streams open, the files are written and main.py opens", async () => {
    const api = await getApi();
    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.ecg, constraints: "Raspberry Pi 4, <= 200 MB RAM" });
    assert.equal(result.status, "finished", `status ${result.status}: ${result.error?.message ?? ""}`);
    // The folder comes from gpiot.outputFolder ("programs") and the requirement.
    assert.ok(result.outDir, "the job wrote the program");
    assert.equal(path.dirname(result.outDir), path.join(workspaceDir(), "programs"));
    const files = readdirSync(result.outDir).sort();
    for (const expected of ["README.md", "gpiot.json", "main.py", "requirements.txt"]) assert.ok(files.includes(expected), `${expected} in ${files.join(", ")}`);
    assert.ok(files.some((file) => /^task_01.*\.py$/.test(file)), "one module per sub-task");
    assert.deepEqual(partialFolders(path.dirname(result.outDir)), []);

    // The job's events arrived in order.
    const events: string[] = api.store.recentEvents.filter((entry) => entry.event.jobId === result.jobId && entry.generation === result.generation).map((entry) => entry.event.type);
    const order = ["jobQueued", "jobStarted", "subTaskDecomposed", "decomposed", "specReady", "codeDelta", "codeReady", "fileWritten", "jobFinished"];
    let at = -1;
    for (const type of order) {
      const next = events.indexOf(type, at + 1);
      assert.ok(next > at, `${type} after the previous stage (${events.join(",")})`);
      at = next;
    }

    // The tree shows the program, its sub-tasks with their specs and code state, and the files.
    const program = api.store.get(result.programUid!)!;
    assert.equal(program.phase, "done");
    const tree = flatten(await api.treeSnapshot());
    const programNode = tree.find((node) => node.kind === "program" && node.label.startsWith("Detect heartbeats"));
    assert.ok(programNode, `program node in ${tree.map((node) => node.label).join(" | ")}`);
    assert.match(programNode.description ?? "", /\d+ files/);
    const subTaskNodes = programNode.children.filter((node) => node.kind === "subTask");
    assert.equal(subTaskNodes.length, program.subTasks.length);
    assert.ok(subTaskNodes.length >= 1);
    subTaskNodes.forEach((node, index) => {
      assert.ok(node.label.startsWith(`${index + 1}. `), node.label);
      const kinds = node.children.map((child) => child.kind);
      assert.deepEqual(kinds, ["problem", "steps", "target", "params", "params", "code"]);
      const code = node.children.find((child) => child.kind === "code")!;
      assert.match(code.description ?? "", /^(done|syntax error)/);
    });
    const filesNode = programNode.children.find((node) => node.kind === "files");
    assert.ok(filesNode && filesNode.children.length === files.length, "every written file is listed");

    // The view was revealed and drew the sub-tasks (with the tiny model the whole job can end
    // within VS Code's tree refresh delay, so "while it ran" is checked by the UI test instead).
    await waitFor("a sub-task drawn in the tree", () => program.marks.firstSubTaskShownAt !== undefined, 5000);
    assert.equal(api.viewVisible(), true, "the GPIoT view was shown");

    // Streaming editors and the program's main.py were opened.
    const openStreams = vscode.workspace.textDocuments.filter((document) => document.uri.scheme === "gpiot-stream" && document.uri.path.startsWith(`/${program.uid}/`)).map((document) => path.basename(document.uri.path));
    for (const name of ["decomposition.md", "specs.md", "code.py"]) assert.ok(openStreams.includes(`detect-heartbeats-single-${program.number}.${name}`), `${name} was opened (${openStreams.join(", ")})`);
    const codeDocument = vscode.workspace.textDocuments.find((document) => document.uri.scheme === "gpiot-stream" && document.uri.path.startsWith(`/${program.uid}/`) && document.uri.path.endsWith(".code.py"))!;
    assert.equal(codeDocument.languageId, "python");
    assert.match(codeDocument.getText(), /# --- Sub-task 1: /);
    // The stream editors follow the job to its end.
    const finalText = () => !/being written|queued|no code yet/.test(codeDocument.getText());
    await waitFor(() => `the code stream to show the final code (it shows: ${codeDocument.getText().slice(0, 300)})`, () => finalText(), 10_000);
    await waitFor("main.py in the active editor", () => vscode.window.activeTextEditor?.document.uri.fsPath === path.join(result.outDir!, "main.py"));
    assert.ok(api.ui.messages.some((message) => message.kind === "status" && message.message.startsWith("GPIoT wrote")), "the user is told where the files are, in the status bar");
  });

  test("a stream editor shows a change made while VS Code was opening it", async () => {
    const api = await getApi();
    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.temperature, constraints: "", outDir: path.join(workspaceDir(), "programs", "stream-race"), openEditors: false });
    assert.equal(result.status, "finished", result.error?.message);
    const program = api.store.get(result.programUid!)!;
    const uri = streamUri(program, "code");
    await sleep(1000); // past the refresh that follows a job's end
    // VS Code asks for the content first and lists the document as open only afterwards: a change
    // in between (here made by the first request itself) must still reach the editor.
    const streams = api.streams;
    const provide = streams.provideTextDocumentContent.bind(streams);
    let changed = false;
    streams.provideTextDocumentContent = (asked: vscode.Uri) => {
      const text = provide(asked);
      if (!changed && asked.toString() === uri.toString()) {
        changed = true;
        program.requirement = `${program.requirement} (revised)`;
        api.store.touch(program);
      }
      return text;
    };
    try {
      const document = await vscode.workspace.openTextDocument(uri);
      assert.ok(changed, "the content was asked for");
      await waitFor("the stream editor to show the revised requirement", () => document.getText().startsWith(`# GPIoT: ${program.requirement}\n`), 10_000);
    } finally {
      delete (streams as Partial<Pick<typeof streams, "provideTextDocumentContent">>).provideTextDocumentContent;
    }
  });

  test("an existing folder is never overwritten without asking", async () => {
    const api = await getApi();
    const outDir = path.join(workspaceDir(), "programs", "keep-me");
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path.join(outDir, "notes.txt"), "mine");

    answer(api, [[/already exists/, undefined]]);
    const refused = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.audio, constraints: "", outDir, openEditors: false });
    assert.equal(refused.status, "aborted");
    assert.equal(readFileSync(path.join(outDir, "notes.txt"), "utf8"), "mine");
    // GPIoT did not write that folder, so the question offers a new folder beside it, never Overwrite.
    const question = api.ui.messages.find((message) => message.modal && message.message.includes(outDir) && /already exists/.test(message.message));
    assert.ok(question, "the user was asked");
    assert.match(question.message, /GPIoT did not write it/);
    assert.deepEqual(question.items, ["Use New Folder"]);

    // A caller that insists (overwrite: true skips the question) is refused by the engine.
    const notOurs = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.audio, constraints: "", outDir, overwrite: true, openEditors: false });
    assert.equal(notOurs.status, "failed");
    assert.equal(notOurs.error?.code, "OUTPUT_EXISTS", notOurs.error?.message);
    assert.deepEqual(readdirSync(outDir), ["notes.txt"]);
    assert.equal(readFileSync(path.join(outDir, "notes.txt"), "utf8"), "mine");

    answer(api, [[/GPIoT did not write it/, "Use New Folder"]]);
    const beside = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.audio, constraints: "", outDir, openEditors: false });
    assert.equal(beside.status, "finished", beside.error?.message);
    assert.equal(beside.outDir, `${outDir}-2`);
    assert.deepEqual(readdirSync(outDir), ["notes.txt"]);

    // A folder GPIoT wrote is replaced after the question; the files the user added there stay.
    answer(api, [[/holds a program GPIoT wrote/, "Overwrite"]]);
    const ours = path.join(workspaceDir(), "programs", "replace-me");
    const first = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.audio, constraints: "", outDir: ours, openEditors: false });
    assert.equal(first.status, "finished", first.error?.message);
    writeFileSync(path.join(ours, "notes.txt"), "mine");
    const replaced = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.audio, constraints: "", outDir: ours, openEditors: false });
    assert.equal(replaced.status, "finished", replaced.error?.message);
    assert.ok(api.ui.messages.some((message) => message.modal && message.message.includes(ours) && message.items.includes("Overwrite")), "asked before replacing");
    assert.equal(readFileSync(path.join(ours, "notes.txt"), "utf8"), "mine");
    assert.ok(existsSync(path.join(ours, "main.py")));
  });

  test("a requirement document (multi-line) is synthesized from its CodeLens command", async () => {
    const api = await getApi();
    const editor = await vscode.commands.executeCommand<vscode.TextEditor>("gpiot.writeRequirement");
    const document = editor.document;
    await editor.edit((edit) => edit.insert(document.lineAt(document.lineCount - 1).range.end, `${REQUIREMENTS.steps}\nReport the count every minute.\nConstraints: Arduino Nano 33, <= 256 KB RAM\n`));
    const lenses = await vscode.commands.executeCommand<vscode.CodeLens[]>("vscode.executeCodeLensProvider", document.uri);
    const lens = lenses.find((candidate) => candidate.command?.command === "gpiot.synthesize");
    assert.ok(lens?.command, "the requirement document offers Synthesize");
    const result = await vscode.commands.executeCommand<SynthesizeResult>(lens.command.command, { ...lens.command.arguments![0], openEditors: false });
    assert.equal(result.status, "finished", result.error?.message);
    const program = api.store.get(result.programUid!)!;
    assert.equal(program.requirement, `${REQUIREMENTS.steps}\nReport the count every minute.`);
    assert.equal(program.constraints, "Arduino Nano 33, <= 256 KB RAM");
    await vscode.commands.executeCommand("workbench.action.revertAndCloseActiveEditor");
  });
});
