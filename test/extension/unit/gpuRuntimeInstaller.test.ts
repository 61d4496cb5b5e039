/**
 * The GPU runtime installer against a loopback npm registry: the package is fetched, its SHA-512
 * checked, unpacked and linked so that Node's module resolution finds it from beside
 * node-llama-cpp; a corrupt download is refused and nothing is linked; a stopped download
 * continues with a Range request; an unreachable registry is reported as offline.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { installGpuRuntime, relinkInstalled, RuntimeInstallError, unpackTarball, type InstallProgress } from "../../../extension/src/gpuRuntimeInstaller";

const VERSION = "3.21.1";
const NAME = "linux-x64-vulkan";
let scratch: string;
let tarball: Buffer;
let server: http.Server;
let registry: string;
const requests: { url: string; range?: string }[] = [];
let corrupt = false;
let dropAfter: number | undefined;

function makePackage(dir: string): void {
  const root = path.join(dir, "package");
  mkdirSync(path.join(root, "dist"), { recursive: true });
  mkdirSync(path.join(root, "bins", NAME, "deep", "a-folder-whose-name-is-long-enough-to-need-more-than-a-hundred-bytes-of-path-in-the-archive"), { recursive: true });
  writeFileSync(path.join(root, "package.json"), JSON.stringify({ name: `@node-llama-cpp/${NAME}`, version: VERSION, type: "module", exports: { ".": "./dist/index.js" } }));
  writeFileSync(path.join(root, "dist", "index.js"), 'import path from "node:path"; import { fileURLToPath } from "node:url";\nexport function getBinsDir() { return { binsDir: path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "bins"), packageVersion: "3.21.1" }; }\n');
  writeFileSync(path.join(root, "bins", NAME, "llama-addon.node"), randomBytes(300_000));
  writeFileSync(path.join(root, "bins", NAME, "deep", "a-folder-whose-name-is-long-enough-to-need-more-than-a-hundred-bytes-of-path-in-the-archive", "libggml-vulkan.so"), "x");
}

before(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-gpu-runtime-"));
  makePackage(path.join(scratch, "src"));
  execFileSync("tar", ["-czf", path.join(scratch, "pkg.tgz"), "-C", path.join(scratch, "src"), "package"]);
  tarball = readFileSync(path.join(scratch, "pkg.tgz"));
  const integrity = `sha512-${createHash("sha512").update(tarball).digest("base64")}`;
  server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? "", range: req.headers.range });
    const port = (server.address() as AddressInfo).port;
    if (req.url === `/@node-llama-cpp%2F${NAME}/${VERSION}`) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name: `@node-llama-cpp/${NAME}`, version: VERSION, dist: { tarball: `http://127.0.0.1:${port}/tarballs/${NAME}.tgz`, integrity } }));
      return;
    }
    if (req.url === `/tarballs/${NAME}.tgz`) {
      const body = corrupt ? Buffer.concat([tarball.subarray(0, 100), Buffer.from("x"), tarball.subarray(101)]) : tarball;
      const range = /bytes=(\d+)-/.exec(req.headers.range ?? "");
      const start = range ? Number(range[1]) : 0;
      res.writeHead(range ? 206 : 200, { "content-length": body.length - start, ...(range ? { "content-range": `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
      if (dropAfter !== undefined) {
        res.write(body.subarray(start, start + dropAfter));
        setTimeout(() => res.destroy(), 50);
        return;
      }
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(scratch, { recursive: true, force: true });
});

function layout(name: string) {
  const root = path.join(scratch, name);
  // An "extension": node_modules/@node-llama-cpp/ beside where node-llama-cpp would be, and a module that imports the package.
  const linkDir = path.join(root, "ext", "node_modules", "@node-llama-cpp");
  mkdirSync(path.join(root, "ext", "dist"), { recursive: true });
  writeFileSync(path.join(root, "ext", "dist", "probe.mjs"), `const m = await import("@node-llama-cpp/${NAME}"); console.log(JSON.stringify(m.getBinsDir()));\n`);
  return { root, storeDir: path.join(root, "store"), linkDir, probe: path.join(root, "ext", "dist", "probe.mjs") };
}

test("fetches, verifies, unpacks and links the package where module resolution finds it", async () => {
  const paths = layout("ok");
  const progress: InstallProgress[] = [];
  const result = await installGpuRuntime({ registry, packages: [NAME], version: VERSION, storeDir: paths.storeDir, linkDir: paths.linkDir, onProgress: (event) => progress.push(event) });
  assert.equal(result.packages[0].downloaded, true);
  assert.ok(progress.some((event) => event.phase === "download" && event.totalBytes === tarball.length && event.bytes === tarball.length), "bytes and total reported");
  assert.ok(progress.some((event) => event.phase === "verify"));
  const installed = path.join(paths.storeDir, VERSION, NAME);
  assert.equal(readFileSync(path.join(installed, "bins", NAME, "llama-addon.node")).length, 300_000);
  assert.ok(existsSync(path.join(installed, "bins", NAME, "deep", "a-folder-whose-name-is-long-enough-to-need-more-than-a-hundred-bytes-of-path-in-the-archive", "libggml-vulkan.so")), "long paths unpack");
  assert.equal(realpathSync(path.join(paths.linkDir, NAME)), realpathSync(installed));
  const seen = JSON.parse(execFileSync(process.execPath, [paths.probe], { encoding: "utf8" }));
  assert.equal(seen.packageVersion, VERSION, "node resolves the linked package from the extension's dist/");
  assert.equal(existsSync(path.join(paths.storeDir, VERSION, `${NAME}.tgz.partial`)), false, "the tarball is removed once unpacked");

  // A second install (an extension update: a new link folder) links without downloading.
  requests.length = 0;
  const otherLinks = path.join(paths.root, "ext2", "node_modules", "@node-llama-cpp");
  assert.deepEqual(await relinkInstalled(paths.storeDir, otherLinks, [NAME, "linux-x64-cuda"], VERSION), [NAME]);
  assert.equal(requests.length, 0);
  assert.ok(existsSync(path.join(otherLinks, NAME, "package.json")));
});

test("a tarball that does not match the registry's SHA-512 is deleted and nothing is linked", async () => {
  const paths = layout("corrupt");
  corrupt = true;
  try {
    await assert.rejects(installGpuRuntime({ registry, packages: [NAME], version: VERSION, storeDir: paths.storeDir, linkDir: paths.linkDir }), (error: RuntimeInstallError) => error.code === "INTEGRITY_MISMATCH" && /SHA-512/.test(error.message));
  } finally {
    corrupt = false;
  }
  assert.equal(existsSync(path.join(paths.linkDir, NAME)), false);
  assert.equal(existsSync(path.join(paths.storeDir, VERSION, NAME)), false);
  assert.equal(existsSync(path.join(paths.storeDir, VERSION, `${NAME}.tgz.partial`)), false);
});

test("a download that breaks off continues where it stopped (HTTP Range)", async () => {
  const paths = layout("resume");
  dropAfter = 50_000;
  try {
    await assert.rejects(installGpuRuntime({ registry, packages: [NAME], version: VERSION, storeDir: paths.storeDir, linkDir: paths.linkDir }), (error: RuntimeInstallError) => error.code === "DOWNLOAD_FAILED");
  } finally {
    dropAfter = undefined;
  }
  assert.equal(readFileSync(path.join(paths.storeDir, VERSION, `${NAME}.tgz.partial`)).length, 50_000, "what was fetched is kept");
  requests.length = 0;
  const result = await installGpuRuntime({ registry, packages: [NAME], version: VERSION, storeDir: paths.storeDir, linkDir: paths.linkDir });
  assert.equal(result.packages[0].resumed, true);
  assert.equal(requests.find((request) => request.url.endsWith(".tgz"))?.range, "bytes=50000-");
  assert.ok(existsSync(path.join(paths.linkDir, NAME, "dist", "index.js")));
});

test("an unreachable registry is reported as offline; a cancelled download says so", async () => {
  const paths = layout("offline");
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await assert.rejects(installGpuRuntime({ registry: `http://127.0.0.1:${port}/`, packages: [NAME], version: VERSION, storeDir: paths.storeDir, linkDir: paths.linkDir }), (error: RuntimeInstallError) => error.code === "OFFLINE");
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(installGpuRuntime({ registry, packages: [NAME], version: VERSION, storeDir: paths.storeDir, linkDir: paths.linkDir, signal: controller.signal }), (error: RuntimeInstallError) => error.code === "CANCELLED");
});

test("an archive entry that climbs out of the package is refused", async () => {
  const evil = path.join(scratch, "evil");
  mkdirSync(path.join(evil, "x"), { recursive: true });
  writeFileSync(path.join(evil, "x", "y"), "z");
  execFileSync("tar", ["-czf", path.join(scratch, "evil.tgz"), "-C", path.join(evil, "x"), "--transform", "s,^,../../,", "y"]);
  await assert.rejects(unpackTarball(path.join(scratch, "evil.tgz"), path.join(scratch, "evil-out")), /unsafe path/);
});
