/**
 * "GPIoT: Download Model…" over the real engine, from a loopback HTTP server this test starts
 * (never the internet): no model → the status bar says so; the download shows bytes and speed,
 * puts the files in the extension's global storage and makes the profile the active one; Cancel
 * keeps what was fetched and the next download continues it (a Range request); offline mode and
 * an unreachable server are said in words; an engine crash mid-download is offered for resuming.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import * as vscode from "vscode";
import type { DownloadResult } from "../../../extension/src/downloadModel";
import { answer, changeEngineSetting, getApi, repoRoot, waitFor, workspaceDir } from "./helpers";

suite("Download Model…", () => {
  let server: http.Server;
  let port: number;
  const ranges: string[] = [];
  let connections = 0;
  let delayMs = 0;
  const files = new Map<string, Buffer>();
  let closedPort: number;

  suiteSetup(async () => {
    const tiny = path.join(repoRoot(), "models", "tiny");
    for (const name of ["tiny-base.gguf", "tiny-td.lora.gguf", "tiny-cg.lora.gguf"]) files.set(`/${name}`, readFileSync(path.join(tiny, name)));
    // A bigger, still valid GGUF (the tiny base with padding after it), served slowly: room to cancel and to crash.
    files.set("/slow/padded-base.gguf", Buffer.concat([files.get("/tiny-base.gguf")!, Buffer.alloc(26 * 1024 * 1024, 1)]));
    server = http.createServer((req, res) => {
      const body = files.get(req.url ?? "");
      if (!body) return void res.writeHead(404).end();
      if (req.headers.range) ranges.push(`${req.url} ${req.headers.range}`);
      const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? "");
      const start = range ? Number(range[1]) : 0;
      const end = range && range[2] ? Number(range[2]) + 1 : body.length;
      res.writeHead(range ? 206 : 200, { "content-length": end - start, "accept-ranges": "bytes", ...(range ? { "content-range": `bytes ${start}-${end - 1}/${body.length}` } : {}) });
      let at = start;
      const pump = () => {
        if (res.destroyed) return;
        if (at >= end) return void res.end();
        const piece = body.subarray(at, Math.min(end, at + 64 * 1024));
        at += piece.length;
        const next = () => (req.url?.startsWith("/slow/") && delayMs ? setTimeout(pump, delayMs) : setImmediate(pump));
        if (res.write(piece)) next();
        else res.once("drain", next);
      };
      pump();
    });
    server.on("connection", () => (connections += 1));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const url = (file: string) => `http://127.0.0.1:${port}${file}`;
    writeFileSync(
      path.join(workspaceDir(), "download-manifest.json"),
      JSON.stringify({
        version: 1,
        defaultProfile: "tiny-dl",
        profiles: {
          "tiny-dl": {
            description: "The tiny test model, from a loopback server",
            base: { file: "tiny-dl/tiny-base.gguf", source: url("/tiny-base.gguf"), sizeBytes: files.get("/tiny-base.gguf")!.length },
            roles: { td: { adapters: [{ file: "tiny-dl/tiny-td.lora.gguf", source: url("/tiny-td.lora.gguf") }] }, cg: { adapters: [{ file: "tiny-dl/tiny-cg.lora.gguf", source: url("/tiny-cg.lora.gguf") }] } },
            contextSize: 1024,
            threads: 1,
          },
          "slow-dl": { description: "A bigger file, served slowly", base: { file: "slow-dl/padded-base.gguf", source: url("/slow/padded-base.gguf") }, contextSize: 512, threads: 1 },
          "never-dl": { description: "Asked for in offline mode only", base: { file: "never-dl/base.gguf", source: url("/tiny-base.gguf") }, threads: 1 },
          unreachable: { description: "A server that is not there", base: { file: "unreachable/base.gguf", source: `http://127.0.0.1:${closedPort}/base.gguf` }, threads: 1 },
        },
      }),
    );
  });

  suiteTeardown(async () => {
    const api = await getApi();
    api.ui.setResponder(undefined);
    const config = vscode.workspace.getConfiguration("gpiot");
    // Back to the test workspace's own settings (the tiny profile of the shipped manifest).
    await config.update("offline", undefined, vscode.ConfigurationTarget.Workspace);
    await config.update("manifestPath", path.join(repoRoot(), "models", "manifest.json"), vscode.ConfigurationTarget.Workspace);
    await changeEngineSetting(api, "profile", "tiny");
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  test("with a profile that is not downloaded, the status bar says there is no model", async () => {
    const api = await getApi();
    await vscode.workspace.getConfiguration("gpiot").update("manifestPath", path.join(workspaceDir(), "download-manifest.json"), vscode.ConfigurationTarget.Workspace);
    await changeEngineSetting(api, "profile", "tiny-dl");
    await waitFor("no model", () => api.models.available === false, 30_000);
    await waitFor("the status bar to say no model", () => /GPIoT: no model/.test(api.statusBarText()));
  });

  test("the download shows bytes, puts the files in the extension's storage and makes the profile the active model", async () => {
    const api = await getApi();
    const progressBefore = api.ui.progress.length;
    const result = await vscode.commands.executeCommand<DownloadResult>("gpiot.downloadModel", { profile: "tiny-dl", confirm: true });
    assert.equal(result.status, "downloaded", result.message);
    assert.deepEqual(result.files?.map((file) => file.action), ["download", "download", "download"]);
    for (const name of ["tiny-base.gguf", "tiny-td.lora.gguf", "tiny-cg.lora.gguf"]) assert.ok(existsSync(path.join(api.defaultModelsDir, "tiny-dl", name)), `${name} is in the global storage`);
    assert.ok(api.defaultModelsDir.includes("globalStorage"), api.defaultModelsDir);
    const progress = api.ui.progress.slice(progressBefore).find((record) => record.title === "GPIoT: downloading tiny-dl")!;
    assert.ok(progress.messages.some((message) => /^file \d of 3: tiny-[\w.-]+\.gguf: [\d.]+ [KM]?B( of [\d.]+ [KM]?B)?/.test(message)), progress.messages.join(" | "));
    await waitFor("the model to be available", () => api.models.available === true, 30_000);
    const info = await vscode.commands.executeCommand<{ profile: string }>("gpiot.loadModels");
    assert.equal(info?.profile, "tiny-dl");
    await waitFor("the status bar to show the profile", () => /GPIoT: tiny-dl · CPU/.test(api.statusBarText()));
  });

  test("Cancel keeps what was fetched; the next download continues it with a Range request and shows the speed", async () => {
    const api = await getApi();
    delayMs = 15;
    ranges.length = 0;
    const running = vscode.commands.executeCommand<DownloadResult>("gpiot.downloadModel", { profile: "slow-dl", confirm: true });
    const progressRecord = await waitFor("the progress notification", () => api.ui.progress.find((record) => record.title === "GPIoT: downloading slow-dl" && !record.ended));
    // ipull records finished 5 MiB chunks, three streams at a time: cancel once each has finished one, so that there is something to continue.
    await waitFor("three quarters of the file", () => progressRecord.messages.some((message) => /: (2[1-9])\.\d MB of/.test(message)), 60_000);
    assert.ok(progressRecord.messages.some((message) => / [\d.]+ [KM]?B\/s$/.test(message)), `the speed is shown: ${progressRecord.messages.slice(-3).join(" | ")}`);
    assert.equal(await api.downloads.cancel(), true);
    const cancelled = await running;
    assert.equal(cancelled.status, "cancelled");
    assert.match(api.ui.messages.at(-1)!.message, /stopped; what was fetched is kept/);
    const plan = await api.sidecar.request((rpc) => rpc.request("pullPlan", { profile: "slow-dl" }));
    assert.equal(plan.items[0].resumable, true);
    delayMs = 0;
    const resumed = await vscode.commands.executeCommand<DownloadResult>("gpiot.downloadModel", { profile: "slow-dl", confirm: true });
    assert.equal(resumed.status, "downloaded", resumed.message);
    assert.ok(ranges.some((range) => range.startsWith("/slow/padded-base.gguf bytes=") && !range.endsWith("bytes=0-")), `continued: ${ranges.join(", ")}`);
    assert.ok(readFileSync(path.join(api.defaultModelsDir, "slow-dl", "padded-base.gguf")).equals(files.get("/slow/padded-base.gguf")!));
  });

  test("offline mode refuses without opening a connection; an unreachable server is said to be offline, with Retry", async () => {
    const api = await getApi();
    await changeEngineSetting(api, "offline", true);
    connections = 0;
    answer(api, [[/offline/, undefined]]);
    const refused = await vscode.commands.executeCommand<DownloadResult>("gpiot.downloadModel", { profile: "never-dl", confirm: true });
    assert.equal(refused.status, "offline");
    const message = api.ui.messages.at(-1)!;
    assert.match(message.message, /offline mode \(setting gpiot\.offline\)/);
    assert.deepEqual(message.items, ["Turn Off Offline Mode", "Choose Model File"]);
    assert.equal(connections, 0);
    await changeEngineSetting(api, "offline", undefined);
    const unreachable = await vscode.commands.executeCommand<DownloadResult>("gpiot.downloadModel", { profile: "unreachable", confirm: true });
    assert.equal(unreachable.status, "offline", unreachable.message);
    const error = await waitFor("the message", () => api.ui.messages.find((candidate) => candidate.kind === "error" && /seems to be offline/.test(candidate.message)));
    assert.deepEqual(error.items, ["Retry", "Choose Model File"]);
  });

  test("after an engine crash in the middle of a download, GPIoT offers to resume it and it completes", async () => {
    const api = await getApi();
    await api.sidecar.request((rpc) => rpc.request("removeModel", { profile: "slow-dl" }));
    delayMs = 15;
    let resumeAsked = false;
    answer(api, [
      [
        /did not finish\. Resume it\?/,
        () => {
          resumeAsked = true;
          delayMs = 0;
          return "Resume";
        },
      ],
    ]);
    const generation = api.sidecar.generation;
    const running = vscode.commands.executeCommand<DownloadResult>("gpiot.downloadModel", { profile: "slow-dl", confirm: true });
    const record = await waitFor("the progress notification", () => api.ui.progress.find((candidate) => candidate.title === "GPIoT: downloading slow-dl" && !candidate.ended && candidate.started > Date.now() - 30_000));
    await waitFor("a part of the file", () => record.messages.some((message) => /: [2-9]\.\d MB of/.test(message)), 60_000);
    process.kill(api.sidecar.pid!, "SIGKILL");
    const failed = await running;
    assert.equal(failed.errorCode, "ENGINE_STOPPED");
    await waitFor("the engine to come back", () => api.sidecar.generation > generation && api.sidecar.state === "running", 30_000);
    await waitFor("the question to resume", () => resumeAsked, 30_000);
    await waitFor("the resumed download to finish", () => existsSync(path.join(api.defaultModelsDir, "slow-dl", "padded-base.gguf")) && !api.downloads.current, 60_000);
    assert.equal(api.ui.messages.filter((message) => message.kind === "error" && message.at > record.started).length, 0, "one notification: the question, not an error as well");
  });
});
