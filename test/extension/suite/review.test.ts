import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { ProgramState } from "../../../extension/src/programStore";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import type { JobResult } from "../../../extension/src/programStore";
import { closeAllEditors, flatten, getApi, REQUIREMENTS, workspaceDir } from "./helpers";

suite("review before generate", () => {
  let program: ProgramState;
  let outDir: string;
  suiteSetup(closeAllEditors);

  const names = () => program.subTasks.map((entry) => entry.subTask.name);

  test("synthesis stops after the decomposition for review", async () => {
    const api = await getApi();
    outDir = path.join(workspaceDir(), "programs", "reviewed-ecg");
    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.ecg, constraints: "", outDir, review: "decomposition", openEditors: false });
    assert.equal(result.status, "awaitingReview", result.error?.message);
    assert.equal(result.awaitingReview, "decomposition");
    program = api.store.get(result.programUid!)!;
    assert.equal(program.phase, "awaitingReview");
    assert.ok(program.subTasks.length >= 1);
    assert.ok(program.subTasks.every((entry) => entry.spec === null && entry.artifact === null), "no spec or code before the review");
    assert.equal(existsSync(outDir), false, "nothing written before the review");
    const node = flatten(await api.treeSnapshot()).find((candidate) => candidate.kind === "program" && candidate.contextValue?.includes(" awaitingReview"));
    assert.ok(node, "the tree offers Continue");
    assert.match(node.description ?? "", /review the sub-tasks/);
  });

  test("a sub-task is edited, added, moved, deleted, and an edit is undone", async () => {
    const api = await getApi();
    const firstId = program.subTasks[0].id;
    await vscode.commands.executeCommand("gpiot.editSubTask", { programUid: program.uid, subTaskId: firstId }, { name: "Band-pass filter the ECG", problem: "Remove baseline wander and noise from the raw ECG before peak detection.", steps: ["Design a 5-15 Hz Butterworth band-pass filter", "Apply it forwards and backwards"] });
    assert.equal(program.subTasks[0].id, firstId, "the edited sub-task keeps its id");
    assert.equal(program.subTasks[0].subTask.name, "Band-pass filter the ECG");
    const tree = flatten(await api.treeSnapshot());
    assert.ok(tree.some((node) => node.kind === "subTask" && node.label === "1. Band-pass filter the ECG"), "the tree shows the edit");

    const before = program.subTasks.length;
    await vscode.commands.executeCommand("gpiot.addSubTask", { programUid: program.uid }, { name: "Report the heart rate", problem: "Turn R-peak times into beats per minute and print them.", steps: ["Average the RR intervals over 10 s"] });
    assert.equal(program.subTasks.length, before + 1);
    assert.equal(names().at(-1), "Report the heart rate");

    const added = program.subTasks.at(-1)!.id;
    await vscode.commands.executeCommand("gpiot.moveSubTaskUp", { programUid: program.uid, subTaskId: added });
    assert.equal(program.subTasks.at(-2)!.id, added, "moved up one place");
    await vscode.commands.executeCommand("gpiot.moveSubTaskDown", { programUid: program.uid, subTaskId: added });
    assert.equal(program.subTasks.at(-1)!.id, added, "and back down");

    await vscode.commands.executeCommand("gpiot.deleteSubTask", { programUid: program.uid, subTaskId: added });
    assert.equal(program.subTasks.length, before);
    assert.ok(!names().includes("Report the heart rate"));
    const undone = await vscode.commands.executeCommand<string>("gpiot.undoReviewEdit", { programUid: program.uid });
    assert.match(undone ?? "", /Delete sub-task/);
    assert.equal(names().at(-1), "Report the heart rate", "undo restored the deleted sub-task");
  });

  test("one sub-task's spec is regenerated, then generation continues into files", async () => {
    const api = await getApi();
    const first = program.subTasks[0];
    const regenerated = await vscode.commands.executeCommand<JobResult>("gpiot.regenerateSpec", { programUid: program.uid, subTaskId: first.id });
    assert.equal(regenerated.status, "finished", regenerated.error?.message);
    assert.equal(regenerated.kind, "regenerate");
    assert.ok(program.subTasks[0].spec, "the regenerated sub-task has a spec");
    assert.ok(program.subTasks[0].artifact, "and code");
    assert.ok(program.subTasks.slice(1).every((entry) => entry.spec === null), "the others are untouched");

    const continued = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.continue", { programUid: program.uid });
    assert.equal(continued.status, "finished", continued.error?.message);
    assert.equal(continued.outDir, outDir);
    assert.equal(program.phase, "done");
    const readme = readFileSync(path.join(outDir, "README.md"), "utf8");
    assert.ok(readme.includes("Band-pass filter the ECG"), "the edited sub-task is in the program");
    assert.ok(readme.includes("Report the heart rate"), "the added sub-task is in the program");
    const tree = flatten(await api.treeSnapshot());
    assert.ok(tree.some((node) => node.kind === "files" && node.label === `Files (${program.files.length})`));
  });

  test("a spec field is edited, the code regenerated, and the program assembled again", async () => {
    const target = "Write some code and documentation to band-pass filter an ECG sampled at 360 Hz";
    const id = program.subTasks[0].id;
    await vscode.commands.executeCommand("gpiot.editField", { programUid: program.uid, subTaskId: id, field: "target" }, target);
    assert.equal(program.subTasks[0].spec?.target, target);
    assert.equal(program.subTasks[0].codeState, "stale", "the code no longer matches the spec");
    await vscode.commands.executeCommand("gpiot.addParameter", { programUid: program.uid, subTaskId: id, field: "inputs" }, "sampling_rate (int): samples per second of the ECG");
    assert.ok(program.subTasks[0].spec?.inputs.some((parameter) => parameter.name === "sampling_rate"));

    const regenerated = await vscode.commands.executeCommand<JobResult>("gpiot.regenerateCode", { programUid: program.uid, subTaskId: id });
    assert.equal(regenerated.status, "finished", regenerated.error?.message);
    assert.notEqual(program.subTasks[0].codeState, "stale");
    assert.equal(program.filesStale, true, "the files are out of date until assembled again");

    const assembled = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.assemble", { programUid: program.uid }, { confirm: true });
    assert.equal(assembled.status, "finished", assembled.error?.message);
    assert.equal(program.filesStale, false);
    const manifest = readFileSync(path.join(outDir, "gpiot.json"), "utf8");
    assert.ok(manifest.includes("band-pass filter an ECG sampled at 360 Hz"), "the edited target reached the written program");
    assert.ok(manifest.includes("sampling_rate"));
  });
});
