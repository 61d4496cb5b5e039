/**
 * Model downloads against a loopback HTTP server that plays a Hugging Face mirror (never the
 * internet): progress, cancel, resume, size/checksum/GGUF checks that leave nothing where the model
 * is expected, offline mode that opens no connection, and a whole profile pull including a PEFT
 * adapter converted against the pulled base.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import { downloadVerifiedFile, ModelsError, partialPaths } from "../../sidecar/src/models/download";
import { ModelsService } from "../../sidecar/src/models/modelsService";
import { planPull, pullProfile } from "../../sidecar/src/models/modelStore";
import { convertHfLlamaToGguf } from "../../sidecar/src/peft/hfLlamaToGguf";
import { EngineSettingsSchema } from "../../sidecar/src/settings";

const fixtureDir = path.resolve(import.meta.dirname, "../fixtures/peft");

interface Served {
  body: Buffer;
  /** Bytes per write and the pause between writes: a slow file can be cancelled mid-way. */
  chunk?: number;
  delayMs?: number;
  contentType?: string;
}

/** A loopback server for `/<user>/<repo>/resolve/main/<file>`, with Range support, counting connections and bytes. */
class MirrorServer {
  readonly files = new Map<string, Served>();
  readonly requests: { path: string; range?: string }[] = [];
  connections = 0;
  bytesSent = 0;
  private server = http.createServer((req, res) => this.handle(req, res));

  async start(): Promise<string> {
    this.server.on("connection", () => (this.connections += 1));
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  reset(): void {
    this.requests.length = 0;
    this.connections = 0;
    this.bytesSent = 0;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    this.requests.push({ path: url.pathname, range: req.headers.range });
    const match = url.pathname.match(/^\/([^/]+)\/([^/]+)\/resolve\/main\/(.+)$/);
    const served = match ? this.files.get(`${match[1]}/${match[2]}/${decodeURIComponent(match[3])}`) : undefined;
    if (!served) {
      res.writeHead(404, { "content-type": "text/plain" }).end("Entry not found");
      return;
    }
    const { body } = served;
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] ? Number(range[2]) + 1 : body.length;
    res.writeHead(range ? 206 : 200, {
      "content-length": end - start,
      "accept-ranges": "bytes",
      "content-type": served.contentType ?? "application/octet-stream",
      ...(range ? { "content-range": `bytes ${start}-${end - 1}/${body.length}` } : {}),
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    let position = start;
    const pump = () => {
      if (res.destroyed) return;
      if (position >= end) {
        res.end();
        return;
      }
      const size = Math.min(served.chunk ?? 1024 * 1024, end - position);
      const piece = body.subarray(position, position + size);
      position += size;
      this.bytesSent += piece.length;
      const next = () => (served.delayMs ? setTimeout(pump, served.delayMs) : setImmediate(pump));
      // Respect backpressure, so a client that stops reading stops the transfer.
      if (res.write(piece)) next();
      else res.once("drain", next);
    };
    pump();
  }
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
/** A GGUF-looking file: the real header of the fixture base model, padded with random bytes. */
let ggufHeader: Buffer;
function fakeGguf(size: number): Buffer {
  const body = randomBytes(size);
  ggufHeader.copy(body, 0);
  return body;
}

let mirror: MirrorServer;
let endpoint: string;
let work: string;
let baseGguf: Buffer;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), "gpiot-download-test-"));
  const converted = await convertHfLlamaToGguf({ modelDir: path.join(fixtureDir, "hf-llama"), outPath: path.join(work, "fixture-base.gguf") });
  baseGguf = await readFile(converted.outPath);
  ggufHeader = baseGguf.subarray(0, (await readGgufFileInfo(converted.outPath, { logWarnings: false })).infoEndOffset!);
  mirror = new MirrorServer();
  endpoint = await mirror.start();
});

after(async () => {
  await mirror?.stop();
  await rm(work, { recursive: true, force: true });
});

describe("downloadVerifiedFile", () => {
  test("downloads an hf: source from the endpoint with progress, then moves the verified file into place", async () => {
    const body = fakeGguf(3 * 1024 * 1024 + 17);
    mirror.files.set("org/Model-GGUF/model.Q4_K_M.gguf", { body });
    mirror.reset();
    const destination = path.join(work, "a", "model.Q4_K_M.gguf");
    const progress: number[] = [];
    const result = await downloadVerifiedFile({
      source: "hf:org/Model-GGUF/model.Q4_K_M.gguf",
      destination,
      sizeBytes: body.length,
      sha256: sha256(body),
      endpoint,
      offline: false,
      onProgress: (p) => {
        if (p.phase === "download") {
          assert.equal(p.totalBytes, body.length);
          progress.push(p.bytes);
        }
      },
    });
    assert.equal(result.path, destination);
    assert.equal(result.sha256, sha256(body));
    assert.ok((await readFile(destination)).equals(body));
    assert.ok(progress.length >= 1 && progress.at(-1) === body.length, `progress ${progress.join(",")}`);
    assert.ok(mirror.requests.every((request) => request.path === "/org/Model-GGUF/resolve/main/model.Q4_K_M.gguf"), JSON.stringify(mirror.requests));
    assert.deepEqual(readdirSync(path.join(work, "a", ".partial")), []);
  });

  test("a checksum mismatch fails clearly and leaves no file where the model is expected", async () => {
    const body = fakeGguf(1024 * 1024);
    mirror.files.set("org/Model-GGUF/bad.gguf", { body });
    const destination = path.join(work, "b", "bad.gguf");
    await assert.rejects(
      downloadVerifiedFile({ source: "hf:org/Model-GGUF/bad.gguf", destination, sha256: "0".repeat(64), endpoint, offline: false }),
      (error: ModelsError) => error.code === "CHECKSUM_MISMATCH" && /Checksum mismatch .*SHA-256 is [0-9a-f]{64}, the manifest expects 0{64}/.test(error.message) && /deleted/.test(error.message),
    );
    assert.equal(existsSync(destination), false);
    const { staged, progress } = partialPaths(destination);
    assert.equal(existsSync(staged) || existsSync(progress), false);
  });

  test("a size other than the manifest's is refused before anything is fetched", async () => {
    mirror.files.set("org/Model-GGUF/size.gguf", { body: fakeGguf(64 * 1024) });
    const destination = path.join(work, "c", "size.gguf");
    await assert.rejects(downloadVerifiedFile({ source: "hf:org/Model-GGUF/size.gguf", destination, sizeBytes: 12345, endpoint, offline: false }), (error: ModelsError) => error.code === "CHECKSUM_MISMATCH" && /expects 12345/.test(error.message));
    assert.equal(existsSync(destination), false);
  });

  test("a file that is not a GGUF (an error page served with 200) is rejected and deleted", async () => {
    mirror.files.set("org/Model-GGUF/page.gguf", { body: Buffer.from("<html>Please log in</html>".padEnd(4096, " ")), contentType: "text/html" });
    const destination = path.join(work, "d", "page.gguf");
    await assert.rejects(downloadVerifiedFile({ source: "hf:org/Model-GGUF/page.gguf", destination, endpoint, offline: false }), (error: ModelsError) => error.code === "CHECKSUM_MISMATCH" && /not a valid GGUF/.test(error.message));
    assert.equal(existsSync(destination), false);
  });

  test("a missing file on the server is a download error, not a file", async () => {
    const destination = path.join(work, "e", "absent.gguf");
    await assert.rejects(downloadVerifiedFile({ source: "hf:org/Model-GGUF/absent.gguf", destination, endpoint, offline: false }), (error: ModelsError) => error.code === "DOWNLOAD_FAILED" && /404|absent/.test(error.message));
    assert.equal(existsSync(destination), false);
  });

  test("cancel mid-download keeps the partial file aside; the next download resumes and fetches less than the whole file", async (t) => {
    // 5 MiB is ipull's resume granularity: with 21 MiB in 5 chunks some chunks complete before the cancel.
    const body = fakeGguf(21 * 1024 * 1024);
    mirror.files.set("org/Model-GGUF/big.gguf", { body, chunk: 64 * 1024, delayMs: 4 });
    mirror.reset();
    const destination = path.join(work, "f", "big.gguf");
    const controller = new AbortController();
    let seen = 0;
    await assert.rejects(
      downloadVerifiedFile({
        source: "hf:org/Model-GGUF/big.gguf",
        destination,
        sha256: sha256(body),
        endpoint,
        offline: false,
        signal: controller.signal,
        onProgress: (p) => {
          seen = p.bytes;
          if (p.bytes >= 0.9 * body.length) controller.abort();
        },
      }),
      (error: ModelsError) => error.code === "CANCELLED" && /next pull continues/.test(error.message),
    );
    assert.ok(seen >= 0.9 * body.length && seen < body.length, `cancelled at ${seen}`);
    assert.equal(existsSync(destination), false, "nothing where the model is expected");
    assert.equal(existsSync(partialPaths(destination).progress), true, "the partial download is kept for resuming");

    const firstRunBytes = mirror.bytesSent;
    mirror.reset();
    mirror.files.set("org/Model-GGUF/big.gguf", { body });
    const resumed = await downloadVerifiedFile({ source: "hf:org/Model-GGUF/big.gguf", destination, sha256: sha256(body), endpoint, offline: false });
    assert.equal(resumed.resumed, true);
    assert.ok((await readFile(destination)).equals(body), "the resumed file is byte-identical");
    // What the second run asked for: only the ranges that were not complete (the first GET just reads the size).
    const requested = mirror.requests
      .map((request) => /bytes=(\d+)-(\d+)/.exec(request.range ?? ""))
      .filter((range) => range !== null)
      .reduce((sum, range) => sum + Number(range![2]) - Number(range![1]) + 1, 0);
    assert.ok(requested > 0 && requested < body.length, `resume asked for ${requested} of ${body.length} bytes: ${JSON.stringify(mirror.requests)}`);
    assert.ok(firstRunBytes > 0);
    t.diagnostic(`cancelled at ${seen} of ${body.length} bytes; the resumed run asked for ${requested} bytes`);
    assert.equal(existsSync(partialPaths(destination).progress), false);
  });

  test("a server that cannot be reached fails at once, naming the host (the downloader would retry for minutes)", { timeout: 30_000 }, async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const started = Date.now();
    await assert.rejects(
      downloadVerifiedFile({ source: `http://127.0.0.1:${port}/model.gguf`, destination: path.join(work, "unreachable", "model.gguf"), offline: false }),
      (error: ModelsError) => error.code === "DOWNLOAD_FAILED" && error.message.includes(`127.0.0.1:${port}`) && /offline/.test(error.message),
    );
    assert.ok(Date.now() - started < 20_000);
    await assert.rejects(
      downloadVerifiedFile({ source: "hf:someone/Repo-GGUF/model.gguf", destination: path.join(work, "unreachable", "hf.gguf"), endpoint: `http://127.0.0.1:${port}/`, offline: false }),
      (error: ModelsError) => error.code === "DOWNLOAD_FAILED" && error.message.includes(`127.0.0.1:${port}`),
    );
  });

  test("offline mode refuses without opening any connection", async () => {
    mirror.files.set("org/Model-GGUF/offline.gguf", { body: fakeGguf(1024) });
    mirror.reset();
    const destination = path.join(work, "g", "offline.gguf");
    await assert.rejects(downloadVerifiedFile({ source: "hf:org/Model-GGUF/offline.gguf", destination, endpoint, offline: true }), (error: ModelsError) => error.code === "OFFLINE" && /Offline mode is on/.test(error.message));
    assert.equal(mirror.connections, 0);
    assert.equal(mirror.requests.length, 0);
    assert.equal(existsSync(path.dirname(destination)), false, "not even the folder is created");
  });
});

describe("pulling a profile", () => {
  let manifestPath: string;
  let modelsDir: string;

  before(async () => {
    // The mirror serves the fixture base GGUF and the fixture PEFT adapter, like the paper profile's sources.
    mirror.files.set("test/Fixture-GGUF/fixture-base.f32.gguf", { body: baseGguf });
    for (const file of ["adapter_config.json", "adapter_model.safetensors"]) mirror.files.set(`test/Fixture-Adapter/${file}`, { body: readFileSync(path.join(fixtureDir, "adapter", file)) });
    const dir = path.join(work, "profile");
    await mkdir(dir, { recursive: true });
    modelsDir = path.join(dir, "models");
    manifestPath = path.join(dir, "manifest.json");
    writeFileSync(
      manifestPath,
      JSON.stringify({
        version: 1,
        defaultProfile: "fixture",
        profiles: {
          fixture: {
            base: { source: "hf:test/Fixture-GGUF/fixture-base.f32.gguf", sizeBytes: baseGguf.length, sha256: sha256(baseGguf) },
            roles: { td: { adapters: [{ file: "fixture/td.lora.gguf", peft: { source: "hf:test/Fixture-Adapter" } }] } },
            contextSize: 256,
          },
          other: { base: { source: "hf:test/Fixture-GGUF/fixture-base.f32.gguf" } },
        },
      }),
    );
  });

  test("the plan lists what is missing and opens no connection; offline pulls are refused", async () => {
    mirror.reset();
    const plan = planPull("fixture", { manifestPath, modelsDir });
    assert.deepEqual(
      plan.items.map((item) => [item.kind, item.action, path.relative(modelsDir, item.path)]),
      [
        ["model", "download", "fixture-base.f32.gguf"],
        ["adapter", "convert", path.join("fixture", "td.lora.gguf")],
      ],
    );
    assert.equal(plan.downloadBytes, baseGguf.length);
    assert.equal(plan.needsNetwork, true);
    await assert.rejects(pullProfile(plan, { offline: true, endpoint }), (error: ModelsError) => error.code === "OFFLINE");
    assert.equal(mirror.connections, 0);
  });

  test("pull downloads the base, converts the PEFT adapter against it, and reports progress by pullId", async () => {
    const settings = EngineSettingsSchema.parse({ manifestPath, modelsDir, downloadEndpoint: endpoint });
    const service = new ModelsService(settings, () => manifestPath, () => Promise.reject(new Error("no llama needed")));
    const events: { pullId: string; phase: string; path: string }[] = [];
    service.onPullProgress((event) => events.push(event));
    const result = await service.pull({ profile: "fixture", pullId: "p-1" });
    assert.equal(result.pullId, "p-1");
    assert.deepEqual(result.files.map((file) => file.action), ["download", "convert"]);
    const adapter = path.join(modelsDir, "fixture", "td.lora.gguf");
    const info = await readGgufFileInfo(adapter, { logWarnings: false });
    assert.equal((info.metadata as any).adapter.type, "lora");
    assert.ok(events.every((event) => event.pullId === "p-1"));
    assert.ok(events.some((event) => event.phase === "convert" && event.path === adapter));
    assert.equal(events.filter((event) => event.phase === "done").length, 2);

    // Pulling again fetches nothing; removing keeps the base that profile "other" also uses.
    mirror.reset();
    const again = await service.pull({ profile: "fixture" });
    assert.deepEqual(again.files.map((file) => file.action), ["present", "present"]);
    assert.equal(mirror.connections, 0);
    const removed = await service.remove("fixture");
    assert.ok(removed.removed.includes(adapter));
    assert.deepEqual(removed.kept.map((kept) => kept.reason), ['also used by profile "other"']);
    assert.equal(existsSync(path.join(modelsDir, "fixture-base.f32.gguf")), true);
  });

  test("a running pull can be cancelled by its id", async () => {
    mirror.files.set("test/Slow-GGUF/slow.gguf", { body: fakeGguf(8 * 1024 * 1024), chunk: 16 * 1024, delayMs: 5 });
    writeFileSync(manifestPath, JSON.stringify({ version: 1, defaultProfile: "slow", profiles: { slow: { base: { source: "hf:test/Slow-GGUF/slow.gguf" } } } }));
    const settings = EngineSettingsSchema.parse({ manifestPath, modelsDir, downloadEndpoint: endpoint });
    const service = new ModelsService(settings, () => manifestPath, () => Promise.reject(new Error("no llama needed")));
    service.onPullProgress((event) => {
      if (event.bytes > 1024 * 1024) service.cancelPull("slow-1");
    });
    await assert.rejects(service.pull({ profile: "slow", pullId: "slow-1" }), (error: ModelsError) => error.code === "CANCELLED");
    assert.equal(existsSync(path.join(modelsDir, "slow.gguf")), false);
    assert.deepEqual(service.cancelPull("slow-1"), { cancelled: false });
  });
});
