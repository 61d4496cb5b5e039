/**
 * The remote backend against a real OpenAI-compatible server: llama.cpp's llama-server, built from
 * the llama.cpp source node-llama-cpp ships (scripts/build-llama-server.sh), serving the tiny base
 * model with the three tiny LoRA adapters on 127.0.0.1, each role's adapter selected per request.
 *
 * A whole synthesis through `gpiot synthesize --backend openai`, each role's adapter, cancel (the
 * server's slot goes idle), the server killed mid-job, a wrong API key, a wrong model or adapter,
 * connection refused, and IoT Bench with --concurrency.
 *
 * Without the binary these tests fail with how to build it, unless GPIOT_SKIP_LLAMA_SERVER=1.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import type { BenchReport } from "../../sidecar/src/bench/harness";
import { SynthesisEngine } from "../../sidecar/src/engine/engine";
import { writeTinyTestModels, type TinyTestModelPaths } from "../../sidecar/src/gguf/tinyTestModels";
import type { JobEvent } from "../../sidecar/src/protocol";
import type { RemoteSettingsInput } from "../../sidecar/src/shared/remoteSettings";
import type { EngineSettingsInput } from "../../sidecar/src/settings";
import { freePort, LlamaServer, requireLlamaServer } from "../helpers/llamaServer";
import { cliPath, repoRoot } from "../helpers/testModels";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";
const API_KEY = `gpiot-test-${process.pid}-key`;
const ROLES = ["td", "rt", "cg"] as const;

let binary: string | null = null;
let skipReason = "";
let scratch: string;
let models: TinyTestModelPaths;
/** Random weights that (almost) never close a JSON string: every answer runs long, so a cancel lands mid-generation. */
let longModels: TinyTestModelPaths;
let server: LlamaServer;

before(async () => {
  binary = requireLlamaServer(repoRoot, (reason) => (skipReason = reason));
  if (!binary) return;
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-remote-"));
  models = await writeTinyTestModels(path.join(scratch, "models"));
  longModels = await writeTinyTestModels(path.join(scratch, "long-models"), { stringEndBias: 0 });
  server = await startServer(models);
});

after(async () => {
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function skipped(context: TestContext): boolean {
  if (binary) return false;
  context.skip(skipReason);
  return true;
}

function startServer(set: TinyTestModelPaths, options: { port?: number; parallel?: number; contextPerSlot?: number } = {}): Promise<LlamaServer> {
  return LlamaServer.start({ binary: binary!, model: set.base, adapters: [set.adapters.td, set.adapters.rt, set.adapters.cg], apiKey: API_KEY, parallel: options.parallel ?? 4, contextPerSlot: options.contextPerSlot, port: options.port });
}

function remote(target: LlamaServer | string, overrides: Partial<{ model: string; adapter: (role: string) => string }> = {}): RemoteSettingsInput {
  const baseUrl = typeof target === "string" ? target : target.baseUrl;
  const endpoint = (role: string) => ({ baseUrl, model: overrides.model ?? "tiny-base", adapterSelection: "lora" as const, adapter: overrides.adapter?.(role) ?? `tiny-${role}.lora.gguf` });
  return { roles: { td: endpoint("td"), rt: endpoint("rt"), cg: endpoint("cg") }, retries: 1, retryBaseDelayMs: 50 };
}

function adapterFlags(): string[] {
  return ROLES.flatMap((role) => ["--adapter", `${role}=tiny-${role}.lora.gguf`]);
}

/** Runs an engine with the API key in its environment (the CLI and the extension put it there); null: no key. */
async function withEngine<T>(settings: EngineSettingsInput, body: (engine: SynthesisEngine) => Promise<T>, apiKey: string | null = API_KEY): Promise<T> {
  const previous = process.env.GPIOT_API_KEY;
  if (apiKey === null) delete process.env.GPIOT_API_KEY;
  else process.env.GPIOT_API_KEY = apiKey;
  const engine = new SynthesisEngine(settings);
  try {
    return await body(engine);
  } finally {
    await engine.dispose();
    if (previous === undefined) delete process.env.GPIOT_API_KEY;
    else process.env.GPIOT_API_KEY = previous;
  }
}

function runJob(engine: SynthesisEngine, start: () => string, onEvent: (event: JobEvent, jobId: string) => void = () => undefined): Promise<{ end: JobEvent; events: JobEvent[] }> {
  return new Promise((resolve) => {
    const events: JobEvent[] = [];
    let jobId = "";
    const stop = engine.onJobEvent((event) => {
      if (event.jobId !== jobId) return;
      events.push(event);
      onEvent(event, jobId);
      if (event.type === "jobFinished" || event.type === "jobFailed") {
        stop();
        resolve({ end: event, events });
      }
    });
    jobId = start();
  });
}

function cli(args: string[], env: Record<string, string | undefined>, timeoutMs = 240_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, GPIOT_API_KEY: undefined, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

type Slot = Awaited<ReturnType<LlamaServer["slots"]>>[number] & { id_task?: number; params?: { lora?: { id: number; scale: number }[] } };
const decoded = (slot: Slot) => (Array.isArray(slot.next_token) ? slot.next_token[0]?.n_decoded : slot.next_token?.n_decoded) ?? 0;

describe("the remote backend on llama.cpp's llama-server", () => {
  test("gpiot synthesize --backend openai: a whole program, every sub-task streamed to its own place", async (context) => {
    if (skipped(context)) return;
    const out = path.join(scratch, "cli-program");
    const result = await cli(
      ["synthesize", REQUIREMENT, "--out", out, "--json", "--backend", "openai", "--base-url", server.baseUrl, "--remote-model", "tiny-base", "--adapter-selection", "lora", ...adapterFlags()],
      { GPIOT_API_KEY: API_KEY },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`Connecting to ${server.baseUrl.replace(/[.]/g, "\\.")}`));
    assert.equal(result.stderr.includes(API_KEY), false, "the key is never printed");
    const events = result.stdout.trim().split("\n").map((line) => JSON.parse(line) as JobEvent);
    const end = events.at(-1)!;
    assert.equal(end.type, "jobFinished", JSON.stringify(end));
    const files = readdirSync(out);
    for (const file of ["main.py", "README.md", "requirements.txt", "gpiot.json"]) assert.ok(files.includes(file), `${file} in ${files.join(", ")}`);
    const ready = events.filter((event): event is Extract<JobEvent, { type: "codeReady" }> => event.type === "codeReady");
    assert.ok(ready.length >= 2, "code for every sub-task");
    for (const code of ready) {
      const streamed = events.filter((event) => event.type === "codeDelta" && event.subTaskId === code.subTaskId).map((event) => (event as { text: string }).text).join("");
      assert.equal(streamed, code.artifact.code, `the code stream of ${code.subTaskId}`);
      assert.ok(readFileSync(path.join(out, files.find((file) => file.startsWith(`task_0${ready.indexOf(code) + 1}`))!), "utf8").includes(code.artifact.code.slice(0, 20)));
    }
    assert.ok(end.type === "jobFinished" && end.tokens > 0);
  });

  test("each role's requests select that role's adapter (llama.cpp's per-request lora)", async (context) => {
    if (skipped(context)) return;
    await withEngine({ remote: remote(server) }, async (engine) => {
      const info = await engine.loadModels();
      assert.deepEqual(
        ROLES.map((role) => info.roles[role].remote),
        ROLES.map((role) => ({ baseUrl: server.baseUrl, model: "tiny-base", adapter: `tiny-${role}.lora.gguf` })),
      );
      const lastLora = async () => {
        const slots = (await server.slots()) as Slot[];
        const last = slots.filter((slot) => slot.id_task !== undefined).sort((a, b) => b.id_task! - a.id_task!)[0];
        return (last.params?.lora ?? []).filter((adapter) => adapter.scale > 0).map((adapter) => adapter.id);
      };
      const decomposed = await runJob(engine, () => engine.synthesize({ requirement: REQUIREMENT, review: "decomposition" }).jobId);
      assert.equal(decomposed.end.type, "jobFinished");
      assert.deepEqual(await lastLora(), [0], "TD: adapter 0 (tiny-td)");
      const specs = await runJob(engine, () => engine.continue({ programId: decomposed.end.programId, review: "specs" }).jobId);
      assert.equal(specs.end.type, "jobFinished");
      assert.deepEqual(await lastLora(), [1], "RT: adapter 1 (tiny-rt)");
      const code = await runJob(engine, () => engine.continue({ programId: decomposed.end.programId }).jobId);
      assert.equal(code.end.type, "jobFinished");
      assert.deepEqual(await lastLora(), [2], "CG: adapter 2 (tiny-cg)");
    });
  });

  test("cancel closes the stream and the server stops generating: its slot goes idle", async (context) => {
    if (skipped(context)) return;
    const long = await startServer(longModels, { parallel: 1, contextPerSlot: 32768 });
    try {
      await withEngine({ remote: remote(long), maxTokens: { td: 30_000 } }, async (engine) => {
        await engine.loadModels();
        let atCancel: Slot | undefined;
        let cancelledAt = 0;
        let cancelling: Promise<void> | undefined;
        const { end } = await runJob(
          engine,
          () => engine.synthesize({ requirement: REQUIREMENT }).jobId,
          (event, jobId) => {
            if (event.type !== "textDelta" || cancelling) return;
            cancelling = (async () => {
              // Generating: the slot decodes more and more tokens.
              const first = await waitFor("the slot to be decoding", async () => ((await long.slots()) as Slot[]).find((slot) => slot.is_processing && decoded(slot) > 0));
              atCancel = await waitFor("the slot to decode further", async () => ((await long.slots()) as Slot[]).find((slot) => slot.is_processing && decoded(slot) > decoded(first)));
              cancelledAt = performance.now();
              engine.cancel(jobId);
            })();
          },
        );
        await cancelling;
        assert.equal(end.type === "jobFailed" && end.cancelled, true, JSON.stringify(end));
        const idle = await waitFor("every slot idle", async () => {
          const slots = (await long.slots()) as Slot[];
          return slots.every((slot) => !slot.is_processing) && slots;
        });
        const idleMs = performance.now() - cancelledAt;
        assert.ok(idleMs < 5000, `idle ${idleMs.toFixed(0)} ms after the cancel`);
        // The server itself says why: the client closed the connection, so it cancelled the task mid-generation.
        await long.waitForLog(new RegExp(`stop: cancel task, id_task = ${atCancel!.id_task}\\b`));
        await long.waitForLog(new RegExp(`task ${atCancel!.id_task} \\| stop processing`));
        assert.ok(idle.length === 1);
      });
    } finally {
      await long.stop();
    }
  });

  test("a server killed mid-job: the job fails with the reason, the engine keeps serving and recovers when the server is back", async (context) => {
    if (skipped(context)) return;
    const port = await freePort();
    let doomed = await startServer(longModels, { port, parallel: 1, contextPerSlot: 32768 });
    try {
      await withEngine({ remote: remote(doomed), maxTokens: { td: 30_000 } }, async (engine) => {
        await engine.loadModels();
        let killing: Promise<void> | undefined;
        const failed = await runJob(
          engine,
          () => engine.synthesize({ requirement: REQUIREMENT }).jobId,
          (event) => {
            if (event.type === "textDelta" && !killing) killing = doomed.kill();
          },
        );
        await killing;
        assert.equal(failed.end.type, "jobFailed");
        const error = (failed.end as Extract<JobEvent, { type: "jobFailed" }>).error;
        assert.equal(error.code, "REMOTE_FAILED", error.message);
        assert.match(error.message, new RegExp(`connection to ${doomed.baseUrl.replace(/[.]/g, "\\.")} broke while streaming`));
        assert.ok(failed.events.some((event) => event.type === "stageFailed" && event.stage === "td"), "the stage says it failed");

        const refused = await runJob(engine, () => engine.synthesize({ requirement: REQUIREMENT }).jobId);
        assert.equal(refused.end.type, "jobFailed");
        const refusedError = (refused.end as Extract<JobEvent, { type: "jobFailed" }>).error;
        assert.equal(refusedError.code, "REMOTE_UNREACHABLE");
        assert.match(refusedError.message, /Cannot connect to .* \(connection refused\)/);

        // The same server again (normal weights): the engine's next job just works.
        doomed = await startServer(models, { port });
        const recovered = await runJob(engine, () => engine.synthesize({ requirement: REQUIREMENT }).jobId);
        assert.equal(recovered.end.type, "jobFinished", JSON.stringify(recovered.end));
      });
    } finally {
      await doomed.stop();
    }
  });

  test("a wrong or missing API key, a model or adapter the server lacks, and no server each get one clear error", async (context) => {
    if (skipped(context)) return;
    const loadError = (settings: EngineSettingsInput, key: string | null = API_KEY) =>
      withEngine(
        settings,
        async (engine) => {
          try {
            await engine.loadModels();
          } catch (error) {
            return error as Error & { code: string };
          }
          throw new Error("loadModels should have failed");
        },
        key,
      );
    const wrongKey = await loadError({ remote: remote(server) }, "not-the-key");
    assert.equal(wrongKey.code, "REMOTE_UNAUTHORIZED");
    assert.match(wrongKey.message, /refused the API key \(HTTP 401.*GPIOT_API_KEY/);
    assert.equal(wrongKey.message.includes("not-the-key"), false);
    assert.equal((await loadError({ remote: remote(server) }, null)).code, "REMOTE_UNAUTHORIZED", "no key at all");

    const model = await loadError({ remote: remote(server, { model: "gpt-4o" }) });
    assert.equal(model.code, "REMOTE_MODEL_NOT_FOUND");
    assert.match(model.message, /does not serve "gpt-4o" .* It serves: "tiny-base"/);
    const adapter = await loadError({ remote: remote(server, { adapter: (role) => (role === "cg" ? "nope.gguf" : `tiny-${role}.lora.gguf`) }) });
    assert.equal(adapter.code, "REMOTE_MODEL_NOT_FOUND");
    assert.match(adapter.message, /no LoRA adapter "nope\.gguf" for CG\. Its adapters .*0: tiny-td\.lora\.gguf, 1: tiny-rt\.lora\.gguf, 2: tiny-cg\.lora\.gguf/);

    const closedPort = await freePort();
    const unreachable = await loadError({ remote: remote(`http://127.0.0.1:${closedPort}/v1`) });
    assert.equal(unreachable.code, "REMOTE_UNREACHABLE");
    assert.match(unreachable.message, new RegExp(`Cannot connect to http://127\\.0\\.0\\.1:${closedPort}/v1 \\(connection refused\\)`));

    // The CLI: exit code 5 and the same message, never the key.
    const out = path.join(scratch, "wrong-key");
    const result = await cli(["synthesize", REQUIREMENT, "--out", out, "--backend", "openai", "--base-url", server.baseUrl, "--remote-model", "tiny-base", "--adapter-selection", "lora", ...adapterFlags()], {
      GPIOT_API_KEY: "not-the-key",
    });
    assert.equal(result.code, 5, result.stderr);
    assert.match(result.stderr, /refused the API key/);
    assert.equal(result.stderr.includes("not-the-key"), false);
    assert.equal(existsSync(out), false, "nothing written");
  });

  test("IoT Bench through the server with --concurrency", async (context) => {
    if (skipped(context)) return;
    const out = path.join(scratch, "bench");
    const result = await cli(
      // Greedy: sampled random weights write invalid UTF-8 that llama-server refuses to parse.
      ["bench", "--tasks", "imu-har", "--n", "2", "--temperature", "0", "--concurrency", "2", "--out", out, "--json", "-q", "--backend", "openai", "--base-url", server.baseUrl, "--remote-model", "tiny-base", "--adapter-selection", "lora", ...adapterFlags()],
      { GPIOT_API_KEY: API_KEY },
    );
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as BenchReport;
    assert.equal(report.options.concurrency, 2);
    assert.equal(report.results.length, 1);
    const [imu] = report.results;
    assert.equal(imu.system, `remote:tiny-base@127.0.0.1:${server.port}`);
    assert.equal(imu.programs.length, 2);
    assert.deepEqual(imu.programs.map((program) => program.index), [0, 1]);
    for (const program of imu.programs) {
      assert.equal(program.formatOk, true, program.synthesisError);
      assert.ok(program.tokens! > 0);
      assert.equal(program.passed, false, "random weights write noise");
    }
    const local = await cli(["bench", "--tasks", "imu-har", "--concurrency", "2", "--out", path.join(scratch, "bench-local")], {});
    assert.equal(local.code, 2);
    assert.match(local.stderr, /--concurrency above 1 needs --backend openai/);
  });
});
