/**
 * `gpiot models ...` end to end, as a shell user runs it, against a loopback mirror (never the
 * internet): list, pull (confirmation, progress on stderr, offline refusal), fit, import-peft, remove.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { convertHfLlamaToGguf } from "../../sidecar/src/peft/hfLlamaToGguf";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const cliPath = path.join(repoRoot, "bin", "gpiot.mjs");
const fixtureDir = path.join(repoRoot, "test", "fixtures", "peft");

let scratch: string;
let base: Buffer;
let server: http.Server;
let endpoint: string;
let connections = 0;

function gpiot(args: string[], env: NodeJS.ProcessEnv = {}, onStart?: (child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, GPIOT_OFFLINE: "", HF_HUB_OFFLINE: "", ...env } });
    let stdout = "";
    let stderr = "";
    onStart?.(child);
    child.stdout!.on("data", (chunk) => (stdout += chunk));
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

before(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-models-cli-"));
  const converted = await convertHfLlamaToGguf({ modelDir: path.join(fixtureDir, "hf-llama"), outPath: path.join(scratch, "fixture-base.gguf") });
  base = readFileSync(converted.outPath);
  server = http.createServer((req, res) => {
    if (!req.url?.startsWith("/test/Fixture-GGUF/resolve/main/fixture.gguf")) {
      res.writeHead(404).end();
      return;
    }
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] ? Number(range[2]) + 1 : base.length;
    res.writeHead(range ? 206 : 200, { "content-length": end - start, "accept-ranges": "bytes", ...(range ? { "content-range": `bytes ${start}-${end - 1}/${base.length}` } : {}) });
    res.end(req.method === "HEAD" ? undefined : base.subarray(start, end));
  });
  server.on("connection", () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  writeFileSync(
    path.join(scratch, "manifest.json"),
    JSON.stringify({
      version: 1,
      defaultProfile: "fixture",
      profiles: { fixture: { description: "fixture served by the loopback mirror", base: { source: "hf:test/Fixture-GGUF/fixture.gguf", sizeBytes: base.length }, contextSize: 256, threads: 1, chatTemplate: "none" } },
    }),
  );
});

after(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  rmSync(scratch, { recursive: true, force: true });
});

describe("gpiot models", () => {
  const common = () => ["--manifest", path.join(scratch, "manifest.json"), "--models-dir", path.join(scratch, "models")];

  test("--help lists the subcommands", async () => {
    const { code, stdout } = await gpiot(["models", "--help"]);
    assert.equal(code, 0);
    for (const command of ["list", "pull", "remove", "fit", "import-peft"]) assert.match(stdout, new RegExp(`gpiot models ${command}`));
  });

  test("list shows the shipped profiles with their sources; default is the default", async () => {
    const { code, stdout, stderr } = await gpiot(["models", "list", "--json", "--models-dir", path.join(scratch, "empty")]);
    assert.equal(code, 0, stderr);
    const list = JSON.parse(stdout);
    assert.equal(list.defaultProfile, "default");
    const byName = Object.fromEntries(list.profiles.map((profile: { name: string }) => [profile.name, profile]));
    for (const name of ["default", "small", "paper", "tiny"]) assert.ok(byName[name], name);
    assert.match(byName.default.files[0].source, /^hf:.*Qwen2\.5-Coder-7B-Instruct.*\.gguf$/);
    assert.equal(byName.default.files[0].path, path.join(scratch, "empty", "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"));
    assert.deepEqual(byName.paper.files.map((file: { kind: string; roles: string[] }) => `${file.kind}:${file.roles.join("/")}`), ["model:td/rt/cg", "adapter:td", "adapter:cg", "embedding:"]);
    assert.match(byName.paper.files[3].path, /bge-small-en-v1\.5-q8_0\.gguf$/, "the document index's embedding model comes with the profile");
  });

  test("pull without --yes and without a terminal asks nothing, downloads nothing, exits 2", async () => {
    connections = 0;
    const { code, stderr } = await gpiot(["models", "pull", "fixture", ...common(), "--endpoint", endpoint]);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /pass --yes/);
    assert.equal(connections, 0);
    assert.equal(existsSync(path.join(scratch, "models", "fixture.gguf")), false);
  });

  test("offline: pull refuses (exit 9) without a connection", async () => {
    connections = 0;
    const flag = await gpiot(["models", "pull", "fixture", ...common(), "--endpoint", endpoint, "--yes", "--offline"]);
    assert.equal(flag.code, 9, flag.stderr);
    assert.match(flag.stderr, /offline/i);
    const env = await gpiot(["models", "pull", "fixture", ...common(), "--endpoint", endpoint, "--yes"], { GPIOT_OFFLINE: "1" });
    assert.equal(env.code, 9, env.stderr);
    assert.equal(connections, 0);
  });

  test("pull --yes downloads with progress on stderr, then fit and remove", async () => {
    const pulled = await gpiot(["models", "pull", "fixture", ...common(), "--endpoint", endpoint, "--yes"]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stderr, /model TD\/RT\/CG: .*fixture\.gguf/);
    assert.match(pulled.stderr, /fixture\.gguf: \d+% of/);
    assert.match(pulled.stderr, /Profile "fixture" is ready/);
    assert.ok(readFileSync(path.join(scratch, "models", "fixture.gguf")).equals(base));

    const again = await gpiot(["models", "pull", "fixture", ...common(), "--endpoint", endpoint]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Everything is already there/);

    const fit = await gpiot(["models", "fit", "fixture", ...common(), "--json"]);
    assert.equal(fit.code, 0, fit.stderr);
    const plan = JSON.parse(fit.stdout);
    assert.equal(plan.backend, "cpu");
    assert.equal(plan.contextSize, 256);
    assert.match(plan.summary, /fixture\.gguf \(TD\/RT\/CG\): 0\/\d+ layers on the GPU; context 256 tokens per role/);

    const removed = await gpiot(["models", "remove", "fixture", ...common(), "--yes"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /1 file\(s\) removed/);
    assert.equal(existsSync(path.join(scratch, "models", "fixture.gguf")), false);
  });

  test("fit names what to pull when the files are not there", async () => {
    const { code, stderr } = await gpiot(["models", "fit", "default", "--models-dir", path.join(scratch, "empty")]);
    assert.equal(code, 5, stderr);
    assert.match(stderr, /not downloaded yet: run `gpiot models pull default` first/);
  });

  test("import-peft converts the fixture adapter; a wrong base is a clear error", async () => {
    const out = path.join(scratch, "adapter.gguf");
    const ok = await gpiot(["models", "import-peft", path.join(fixtureDir, "adapter"), "--base", path.join(scratch, "fixture-base.gguf"), "--out", out]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /LoRA r=8, alpha 16, targets down_proj, k_proj, o_proj, q_proj, v_proj in 2 layers/);
    assert.ok(existsSync(out));
    const bad = await gpiot(["models", "import-peft", path.join(fixtureDir, "adapter"), "--base", path.join(scratch, "nope.gguf"), "--out", path.join(scratch, "bad.gguf")]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Cannot read the base model .*nope\.gguf/);
    const usage = await gpiot(["models", "import-peft", path.join(fixtureDir, "adapter")]);
    assert.equal(usage.code, 2);
  });

  test("import-peft: per-module scales convert and are reported; an option it cannot carry is named", async () => {
    const patterned = await gpiot(["models", "import-peft", path.join(fixtureDir, "adapter-rslora-patterns"), "--base", path.join(scratch, "fixture-base.gguf"), "--out", path.join(scratch, "patterned.gguf")]);
    assert.equal(patterned.code, 0, patterned.stderr);
    assert.match(patterned.stdout, /LoRA r=2\/8\/16, alpha 45\.25/);
    assert.match(patterned.stdout, /6 module\(s\) have their own scale/);
    const dir = path.join(scratch, "lora-bias-adapter");
    cpSync(path.join(fixtureDir, "adapter"), dir, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(dir, "adapter_config.json"), "utf8"));
    writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ ...config, lora_bias: true }));
    const refused = await gpiot(["models", "import-peft", dir, "--base", path.join(scratch, "fixture-base.gguf"), "--out", path.join(scratch, "refused.gguf")]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /lora_bias is set/);
    assert.equal(existsSync(path.join(scratch, "refused.gguf")), false);
  });
});

describe("gpiot models pull when the network fails", () => {
  let silent: net.Server;
  let silentConnections = 0;
  const silentSockets = new Set<net.Socket>();
  let refusedPort: number;
  let manifest: string;

  before(async () => {
    silent = net.createServer((socket) => {
      silentConnections += 1;
      silentSockets.add(socket);
      socket.on("close", () => silentSockets.delete(socket));
      socket.on("error", () => undefined);
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    refusedPort = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    manifest = path.join(scratch, "network-manifest.json");
    const profile = (source: string) => ({ base: { source }, contextSize: 256 });
    writeFileSync(
      manifest,
      JSON.stringify({
        version: 1,
        defaultProfile: "refused",
        profiles: { refused: profile(`http://127.0.0.1:${refusedPort}/m.gguf`), silent: profile(`http://127.0.0.1:${(silent.address() as AddressInfo).port}/m.gguf`) },
      }),
    );
  });

  after(async () => {
    for (const socket of silentSockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  const pull = (profile: string, ...extra: string[]) => ["models", "pull", profile, "--manifest", manifest, "--models-dir", path.join(scratch, "network-models"), "--yes", ...extra];

  test("a server that refuses: a clear message within seconds, exit 1", async () => {
    const started = performance.now();
    const { code, stderr } = await gpiot(pull("refused"));
    const seconds = (performance.now() - started) / 1000;
    assert.equal(code, 1, stderr);
    assert.match(stderr, new RegExp(`Cannot download http://127\\.0\\.0\\.1:${refusedPort}/m\\.gguf: 127\\.0\\.0\\.1:${refusedPort} refused the connection`));
    assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
    assert.ok(seconds < 20, `took ${seconds.toFixed(1)} s`);
  });

  test("a server that accepts and stalls: the read timeout ends the pull with a clear message, exit 1", async () => {
    const { code, stderr } = await gpiot(pull("silent", "--timeout", "1"));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /sent nothing for 1 s \(read timeout\)\. Run the pull again to continue where it stopped/);
    const usage = await gpiot(pull("silent", "--timeout=-3"));
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--timeout expects seconds/);
  });

  test("the first Ctrl+C stops a stalled pull at once, exit 130", async () => {
    silentConnections = 0;
    let sentAt = 0;
    const result = await gpiot(pull("silent"), {}, (child) => {
      const poll = setInterval(() => {
        if (silentConnections === 0) return;
        clearInterval(poll);
        sentAt = performance.now();
        child.kill("SIGINT");
      }, 20);
      child.once("exit", () => clearInterval(poll));
    });
    const seconds = (performance.now() - sentAt) / 1000;
    assert.equal(result.code, 130, `${result.signal} ${result.stderr}`);
    assert.match(result.stderr, /Interrupted: stopping the download/);
    assert.match(result.stderr, /cancelled; the part already fetched is kept/);
    assert.ok(sentAt > 0 && seconds < 10, `exited ${seconds.toFixed(1)} s after Ctrl+C`);
  });
});
