/**
 * The model requests over the real sidecar process: pullPlan, pullModel with
 * gpiot/pullProgress notifications (bytes and total, for a percentage), cancelPull, offline refusal,
 * modelFit, removeModel; against a loopback mirror, never the internet.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { SidecarProcess } from "../../sidecar/src/client/sidecarProcess";
import type { PullProgress } from "../../sidecar/src/protocol";
import { convertHfLlamaToGguf } from "../../sidecar/src/peft/hfLlamaToGguf";
import { sidecarPath } from "../helpers/testModels";
import { rpcError } from "../helpers/rpcError";

const fixtureDir = path.resolve(import.meta.dirname, "../fixtures/peft");
let scratch: string;
let server: http.Server;
let connections = 0;
let slow = false;
let base: Buffer;
let big: Buffer;
const sidecars: SidecarProcess[] = [];

async function start(settings: object): Promise<SidecarProcess> {
  const sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath: path.join(scratch, "manifest.json"), modelsDir: path.join(scratch, "models"), threads: 1, ...settings } });
  sidecars.push(sidecar);
  return sidecar;
}

before(async () => {
  assert.ok(existsSync(sidecarPath), "run `npm run build` first");
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-models-sidecar-"));
  base = readFileSync((await convertHfLlamaToGguf({ modelDir: path.join(fixtureDir, "hf-llama"), outPath: path.join(scratch, "base.gguf") })).outPath);
  big = Buffer.concat([base, Buffer.alloc(26 * 1024 * 1024, 1)]);
  server = http.createServer((req, res) => {
    const body = req.url?.includes("/big.gguf") ? big : req.url?.includes("/base.gguf") ? base : null;
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? "");
    const startAt = range ? Number(range[1]) : 0;
    const end = range && range[2] ? Number(range[2]) + 1 : body.length;
    res.writeHead(range ? 206 : 200, { "content-length": end - startAt, "accept-ranges": "bytes", ...(range ? { "content-range": `bytes ${startAt}-${end - 1}/${body.length}` } : {}) });
    let position = startAt;
    const pump = () => {
      if (res.destroyed) return;
      if (position >= end) return void res.end();
      const piece = body.subarray(position, Math.min(end, position + 64 * 1024));
      position += piece.length;
      const next = () => setTimeout(pump, slow ? 20 : 0);
      if (res.write(piece)) next();
      else res.once("drain", next);
    };
    pump();
  });
  server.on("connection", () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  writeFileSync(
    path.join(scratch, "manifest.json"),
    JSON.stringify({
      version: 1,
      defaultProfile: "fixture",
      profiles: {
        fixture: { base: { source: "hf:test/Fixture-GGUF/base.gguf", sizeBytes: base.length }, contextSize: 256, threads: 1 },
        big: { base: { source: "hf:test/Fixture-GGUF/big.gguf" }, contextSize: 256 },
      },
    }),
  );
});

after(async () => {
  for (const sidecar of sidecars) await sidecar.dispose();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  rmSync(scratch, { recursive: true, force: true });
});

describe("model requests over the sidecar", () => {
  test("offline: the plan is served, the pull is refused with OFFLINE, and no connection is opened", async () => {
    const sidecar = await start({ offline: true, downloadEndpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` });
    connections = 0;
    const plan = await sidecar.client.request("pullPlan", { profile: "fixture" });
    assert.equal(plan.items[0].action, "download");
    assert.equal(plan.downloadBytes, base.length);
    const error = await rpcError(sidecar.client.request("pullModel", { profile: "fixture" }));
    assert.equal(error.data?.code, "OFFLINE");
    assert.equal(connections, 0);
  });

  test("pullModel streams progress with bytes and total, then loadModels reports the GPU fit", async () => {
    const sidecar = await start({ downloadEndpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` });
    const progress: PullProgress[] = [];
    sidecar.client.onPullProgress((event) => progress.push(event));
    const result = await sidecar.client.request("pullModel", { profile: "fixture", pullId: "ui-1" });
    assert.deepEqual(result.files.map((file) => file.action), ["download"]);
    const done = progress.filter((event) => event.phase === "done");
    assert.equal(done.length, 1);
    assert.equal(done[0].bytes, base.length);
    assert.ok(progress.every((event) => event.pullId === "ui-1" && event.profile === "fixture"));
    assert.ok(progress.some((event) => event.phase === "download" && event.totalBytes === base.length));

    const fit = await sidecar.client.request("modelFit", { profile: "fixture" });
    assert.equal(fit.backend, "cpu");
    assert.equal(fit.fits, true);
    const loaded = await sidecar.client.request("loadModels", { profile: "fixture" });
    assert.equal(loaded.fit?.contextSize, 256);
    assert.match(loaded.fit!.summary, /layers on the GPU; context 256 tokens per role/);
    await sidecar.client.request("unloadModels");

    const removed = await sidecar.client.request("removeModel", { profile: "fixture" });
    assert.equal(removed.removed.length, 1);
    assert.equal(existsSync(path.join(scratch, "models", "base.gguf")), false);
  });

  test("cancelPull stops a running pull; the next pull finishes it", async () => {
    const sidecar = await start({ downloadEndpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` });
    slow = true;
    const cancelRequests: Promise<unknown>[] = [];
    sidecar.client.onPullProgress((event) => {
      if (cancelRequests.length === 0 && event.phase === "download" && event.bytes > 0.75 * big.length) cancelRequests.push(sidecar.client.request("cancelPull", { pullId: "slow" }));
    });
    const error = await rpcError(sidecar.client.request("pullModel", { profile: "big", pullId: "slow" }));
    assert.equal(error.data?.code, "CANCELLED");
    assert.equal(cancelRequests.length, 1, "cancelPull was sent while the pull downloaded");
    assert.deepEqual(await cancelRequests[0], { cancelled: true });
    assert.equal(existsSync(path.join(scratch, "models", "big.gguf")), false);
    slow = false;
    const plan = await sidecar.client.request("pullPlan", { profile: "big" });
    assert.equal(plan.items[0].resumable, true);
    await sidecar.client.request("pullModel", { profile: "big" });
    assert.ok(readFileSync(path.join(scratch, "models", "big.gguf")).equals(big));
  });
});

describe("model requests when the network fails", () => {
  test("a refused connection and a silent server fail with named errors in seconds; cancelPull stops a stalled pull at once", async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => undefined);
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const refusedPort = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const manifestPath = path.join(scratch, "network-manifest.json");
    writeFileSync(
      manifestPath,
      JSON.stringify({
        version: 1,
        defaultProfile: "refused",
        profiles: {
          refused: { base: { source: `http://127.0.0.1:${refusedPort}/m.gguf` } },
          silent: { base: { source: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/m.gguf` } },
        },
      }),
    );
    try {
      const sidecar = await start({ manifestPath, downloadTimeoutMs: 1000 });
      let started = performance.now();
      const refused = await rpcError(sidecar.client.request("pullModel", { profile: "refused" }));
      assert.equal(refused.data?.code, "DOWNLOAD_FAILED");
      assert.match(refused.message, /refused the connection/);
      assert.ok(performance.now() - started < 10_000);

      started = performance.now();
      const stalled = await rpcError(sidecar.client.request("pullModel", { profile: "silent" }));
      assert.equal(stalled.data?.code, "DOWNLOAD_FAILED");
      assert.match(stalled.message, /sent nothing for 1 s \(read timeout\)/);
      assert.ok(performance.now() - started < 10_000);

      const patient = await start({ manifestPath });
      const pulling = rpcError(patient.client.request("pullModel", { profile: "silent", pullId: "stuck" }));
      while (sockets.size === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      started = performance.now();
      assert.deepEqual(await patient.client.request("cancelPull", { pullId: "stuck" }), { cancelled: true });
      const cancelled = await pulling;
      assert.equal(cancelled.data?.code, "CANCELLED");
      assert.ok(performance.now() - started < 5000, `the pull ended ${performance.now() - started} ms after the cancel`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
