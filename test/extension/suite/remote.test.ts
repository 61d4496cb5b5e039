import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import { LlamaServer, llamaServerMissingMessage, llamaServerPath } from "../../helpers/llamaServer";
import { getApi, REQUIREMENTS, waitFor } from "./helpers";

const ROLES = ["td", "rt", "cg"] as const;
const REMOTE_SETTINGS = ["backend.td", "backend.rt", "backend.cg", "remote.baseUrl", "remote.model", "remote.adapterSelection", "remote.adapters"];

suite("roles on an OpenAI-compatible server (llama.cpp's llama-server)", () => {
  test("every role on the server, each with its adapter, the API key from VS Code's secret storage", async function () {
    this.timeout(240_000);
    const root = process.env.GPIOT_REPO_ROOT;
    assert.ok(root, "GPIOT_REPO_ROOT is set by the test runner");
    const binary = llamaServerPath(root);
    if (!existsSync(binary)) {
      if (process.env.GPIOT_SKIP_LLAMA_SERVER === "1") return this.skip();
      throw new Error(llamaServerMissingMessage(binary));
    }
    const tiny = path.join(root, "models", "tiny");
    const key = `gpiot-extension-test-${process.pid}`;
    const server = await LlamaServer.start({ binary, model: path.join(tiny, "tiny-base.gguf"), adapters: ROLES.map((role) => path.join(tiny, `tiny-${role}.lora.gguf`)), apiKey: key, parallel: 4 });
    const api = await getApi();
    const config = vscode.workspace.getConfiguration("gpiot");
    try {
      assert.equal(await vscode.commands.executeCommand("gpiot.setRemoteApiKey", key), true);
      await config.update("remote.baseUrl", server.baseUrl, vscode.ConfigurationTarget.Workspace);
      await config.update("remote.model", "tiny-base", vscode.ConfigurationTarget.Workspace);
      await config.update("remote.adapterSelection", "lora", vscode.ConfigurationTarget.Workspace);
      await config.update("remote.adapters", Object.fromEntries(ROLES.map((role) => [role, `tiny-${role}.lora.gguf`])), vscode.ConfigurationTarget.Workspace);
      for (const role of ROLES) await config.update(`backend.${role}`, "remote", vscode.ConfigurationTarget.Workspace);

      // The engine restarts with the settings and the key; loading the models probes the server.
      const info = await waitFor(
        "the engine to load the remote roles",
        async () => {
          try {
            const loaded = await api.sidecar.request((rpc) => rpc.request("loadModels", {}));
            return ROLES.every((role) => loaded.roles[role]?.remote?.baseUrl === server.baseUrl) && loaded;
          } catch {
            return undefined;
          }
        },
        60_000,
      );
      assert.deepEqual(
        ROLES.map((role) => info.roles[role].remote?.adapter),
        ROLES.map((role) => `tiny-${role}.lora.gguf`),
      );
      const settingsFile = path.join(vscode.workspace.workspaceFolders![0].uri.fsPath, ".vscode", "settings.json");
      assert.equal((await vscode.workspace.fs.readFile(vscode.Uri.file(settingsFile))).toString().includes(key), false, "the key is not in the settings");

      const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.ecg });
      assert.equal(result.status, "finished", `status ${result.status}: ${result.error?.message ?? ""}`);
      assert.ok(result.outDir && readdirSync(result.outDir).includes("main.py"));
      const program = api.store.get(result.programUid!)!;
      assert.ok(program.subTasks.length >= 2);
      for (const entry of program.subTasks) assert.equal(entry.codeStream, entry.artifact?.code, "each sub-task's code streamed into its own place");
      const slots = await server.slots();
      assert.ok(slots.length === 4, "the server's four slots");
    } finally {
      for (const setting of REMOTE_SETTINGS) await config.update(setting, undefined, vscode.ConfigurationTarget.Workspace);
      await vscode.commands.executeCommand("gpiot.clearRemoteApiKey");
      await server.stop();
      await waitFor("the local models again", async () => {
        try {
          const loaded = await api.sidecar.request((rpc) => rpc.request("loadModels", {}));
          return !loaded.roles.td?.remote && loaded;
        } catch {
          return undefined;
        }
      }, 60_000);
    }
  });
});
