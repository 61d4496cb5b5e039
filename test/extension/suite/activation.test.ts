import assert from "node:assert/strict";
import * as vscode from "vscode";
import { EXTENSION_ID, getApi, waitFor } from "./helpers";

suite("activation", () => {
  test("the extension activates and exports its API", async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, "the GPIoT extension is loaded");
    const api = await getApi();
    assert.equal(extension.isActive, true);
    assert.equal(typeof api.activationMs, "number");
    assert.ok(api.activationMs < 5000, `activation took ${api.activationMs} ms`);
    console.log(`      activate() took ${api.activationMs.toFixed(1)} ms`);
  });

  test("its commands are registered", async () => {
    const commands = await vscode.commands.getCommands(true);
    for (const command of ["gpiot.synthesize", "gpiot.synthesizeFromComment", "gpiot.showLog", "gpiot.chooseProfile", "gpiot.chooseModelFile", "gpiot.loadModels", "gpiot.continue", "gpiot.regenerateSpec", "gpiot.assemble", "gpiot.cancelJob"])
      assert.ok(commands.includes(command), `${command} is registered`);
  });

  test("the sidecar starts with the workspace's settings and answers gpiot/status", async () => {
    const api = await getApi();
    const status = await vscode.commands.executeCommand<{ version: string; protocolVersion: number; defaults: { threads: number } }>("gpiot.showStatus");
    assert.ok(status, "gpiot.showStatus returned the engine status");
    assert.equal(status.protocolVersion, 1);
    assert.equal(api.sidecar.state, "running");
    assert.ok(api.sidecar.pid && api.sidecar.pid !== process.pid, "the engine runs in its own process");
    assert.equal(status.defaults.threads, 1, "threads: 1 from .vscode/settings.json reached the engine");
    assert.ok(api.ui.messages.some((message) => /GPIoT engine .* \(protocol 1/.test(message.message)), "the status was shown");
  });

  test("the test profile is available, so the welcome view offers Synthesize", async () => {
    const api = await getApi();
    await api.models.refresh();
    assert.equal(api.models.available, true);
  });

  test("loading the models shows the active profile on the CPU in the status bar", async () => {
    const api = await getApi();
    const info = await vscode.commands.executeCommand<{ profile: string; gpu: string | false; threads: number }>("gpiot.loadModels");
    assert.ok(info, "gpiot.loadModels returned the loaded models");
    assert.equal(info.profile, "tiny");
    assert.equal(info.gpu, false);
    await waitFor("the status bar to show the active profile on the CPU", () => /GPIoT: tiny · CPU/.test(api.statusBarText()));
  });
});
