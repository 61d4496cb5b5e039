import assert from "node:assert/strict";
import * as vscode from "vscode";
import { getApi, waitFor } from "./helpers";

suite("settings and the model state", () => {
  test("a profile whose files are missing means no model: the welcome view offers a choice", async () => {
    const api = await getApi();
    assert.ok((await api.treeSnapshot()).length > 0, "the programs of the earlier suites are still listed (the tree is not empty)");
    const generation = api.sidecar.generation;
    const config = vscode.workspace.getConfiguration("gpiot");
    await config.update("profile", "no-such-profile", vscode.ConfigurationTarget.Workspace);
    try {
      await waitFor("the engine to restart with the new settings", () => api.sidecar.generation > generation && api.sidecar.state === "running", 30_000);
      await waitFor("the model to be reported missing", () => api.models.available === false, 30_000);
      await waitFor("the status bar to say no model", () => /GPIoT: no model/.test(api.statusBarText()), 10_000);
      const status = await api.sidecar.request((rpc) => rpc.request("status"));
      assert.equal(status.models, null, "the restarted engine has no models loaded");
    } finally {
      await config.update("profile", "tiny", vscode.ConfigurationTarget.Workspace);
    }
    await waitFor("the model to be available again", () => api.models.available === true, 30_000);
    const info = await vscode.commands.executeCommand<{ profile: string }>("gpiot.chooseProfile", "tiny");
    assert.equal(info?.profile, "tiny");
    await waitFor("the profile, loaded, in the status bar", () => /GPIoT: tiny · CPU/.test(api.statusBarText()));
  });
});
