/**
 * Restricted Mode (run in its own code-server with workspace trust on; the workspace was never
 * trusted): GPIoT activates in limited mode, offers no synthesis from the workspace's comments
 * (no CodeLens, no code action, the command refuses in words), ignores the workspace's values of
 * the settings that name something to load or run, never runs generated code, and still
 * synthesizes programs from the palette (the engine is told the workspace is untrusted).
 */
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { getApi, REQUIREMENTS, workspaceDir } from "./helpers";

suite("Restricted Mode", () => {
  test("the workspace is untrusted and GPIoT runs in limited mode", async () => {
    assert.equal(vscode.workspace.isTrusted, false, "the test workspace opened in Restricted Mode");
    const api = await getApi();
    assert.ok(api.activationMs >= 0);
  });

  test("no CodeLens or code action on requirement comments, and the command refuses in words", async () => {
    const api = await getApi();
    const file = path.join(workspaceDir(), "sensor.py");
    writeFileSync(file, "# GPIoT: Read a temperature sensor every second and warn when it overheats\n\n# Count steps from a wrist accelerometer signal and report them every minute\nx = 1\n");
    const document = await vscode.workspace.openTextDocument(file);
    await vscode.window.showTextDocument(document);
    const lenses = await vscode.commands.executeCommand<vscode.CodeLens[]>("vscode.executeCodeLensProvider", document.uri);
    assert.ok(!lenses.some((lens) => lens.command?.command === "gpiot.synthesizeFromComment"), "no CodeLens");
    const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>("vscode.executeCodeActionProvider", document.uri, new vscode.Range(0, 2, 0, 2));
    assert.ok(!actions.some((action) => action.title.startsWith("GPIoT")), "no code action");
    const result = await vscode.commands.executeCommand<{ status: string }>("gpiot.synthesizeFromComment", { uri: document.uri.toString(), line: 0 });
    assert.equal(result.status, "aborted");
    assert.match(api.ui.messages.at(-1)!.message, /Restricted Mode/);
    assert.equal(api.commentThreads().length, 0);
  });

  test("the workspace's model, Python and models folder settings are ignored; palette synthesis works and nothing runs", async () => {
    const api = await getApi();
    const config = vscode.workspace.getConfiguration("gpiot");
    assert.equal(config.get("modelPath"), "", "VS Code ignores the workspace's gpiot.modelPath");
    assert.equal(config.get("pythonPath"), "");
    assert.equal(config.get("modelsDir"), "");
    assert.equal(config.get("profile"), "tiny", "ordinary settings still apply");
    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.steps, constraints: "", openEditors: false });
    assert.equal(result.status, "finished", result.error?.message);
    assert.ok(existsSync(path.join(result.outDir!, "main.py")));
    const status = await api.sidecar.request((rpc) => rpc.request("status"));
    assert.equal(status.models?.profile, "tiny", "the engine loaded the profile, not the workspace's model file");
    await vscode.commands.executeCommand("gpiot.runProgram", { programUid: result.programUid });
    assert.match(api.ui.messages.at(-1)!.message, /does not run generated code in an untrusted workspace/);
    assert.equal(vscode.window.terminals.length, 0, "no terminal was opened");
  });
});
