// Sample suite (tdd UI). Runs inside the extension host with the full vscode API.
const assert = require("node:assert/strict");
const fs = require("node:fs");
const vscode = require("vscode");

const EXTENSION_ID = "gpiot-test.gpiot-sample";

suite("GPIoT sample extension", () => {
  test("the workspace folder is open", () => {
    const folders = vscode.workspace.workspaceFolders ?? [];
    assert.equal(folders.length, 1);
    assert.ok(fs.existsSync(vscode.Uri.joinPath(folders[0].uri, "README.md").fsPath));
  });

  test("sample.hello runs and returns its greeting", async () => {
    const result = await vscode.commands.executeCommand("sample.hello");
    assert.equal(result.greeting, "Hello from the GPIoT sample");
    assert.equal(result.pid, process.pid, "command ran in this extension host");
  });

  test("the extension is active", () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `${EXTENSION_ID} is loaded`);
    assert.equal(ext.isActive, true);
  });

  test("user settings written by the runner are in effect", () => {
    assert.equal(vscode.workspace.getConfiguration("telemetry").get("telemetryLevel"), "off");
  });

  test("env vars given to the runner reach the extension host", async function () {
    if (!process.env.GPIOT_SAMPLE_MODEL) this.skip();
    const result = await vscode.commands.executeCommand("sample.hello");
    assert.equal(result.model, process.env.GPIOT_SAMPLE_MODEL);
    assert.ok(fs.existsSync(result.model), `${result.model} exists`);
    console.log(`[sample] GPIOT_SAMPLE_MODEL=${result.model}`);
  });

  test("deliberate failure when GPIOT_SAMPLE_FAIL=1", () => {
    assert.equal(process.env.GPIOT_SAMPLE_FAIL === "1" ? "failing on purpose" : "ok", "ok");
  });
});
