/**
 * `npm run bench`: speed and memory figures on the tiny model, each as a ratio against a
 * baseline measured in the same run (these machines are noisy; absolute numbers mean little).
 *
 * 1. Tokens/s of a synthesis streamed through the sidecar to a client, next to the same job on
 *    the engine in-process, and next to bare node-llama-cpp generating under the same grammar.
 * 2. Peak RSS of a sidecar with three roles on one base model, next to a process holding one
 *    role alone, and next to three separate model copies.
 * 3. Cancel latency: from the cancel request to the job's end, and to the last streamed token.
 * 4. Training (bench/trainBench.ts): PECT vs LoRA throughput, trainable shares, the cross-projection ablation.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, LlamaChatSession, LlamaLogLevel } from "node-llama-cpp";
import { SidecarProcess } from "../sidecar/src/client/sidecarProcess";
import { SynthesisEngine } from "../sidecar/src/engine/engine";
import { grammarSchemaFor } from "../sidecar/src/grammarSchema";
import { CG_SYSTEM_PROMPT } from "../sidecar/src/pipeline/codeGeneration";
import { CodeArtifactSchema } from "../sidecar/src/schemas";
import type { JobEvent } from "../sidecar/src/protocol";
import { setUpTestModels, sidecarPath } from "../test/helpers/testModels";
import { formatExtensionBench, runExtensionBench } from "./extensionBench";
import { runTrainBench } from "./trainBench";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG from the MIT-BIH database and report the heart rate";
const RUNS = Number(process.env.GPIOT_BENCH_RUNS ?? 5);
const THREADS = 1;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const fmt = (value: number, digits = 1) => value.toFixed(digits);

function peakRssMB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}

async function sidecarTokensPerSecond(manifestPath: string): Promise<{ tokensPerSecond: number; firstTokenMs: number }> {
  const sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath, threads: THREADS, profile: "tiny" } });
  try {
    await sidecar.client.request("loadModels", { profile: "tiny" });
    const rates: number[] = [];
    const firsts: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      let firstDelta = -1;
      const { jobId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
      const watch = setInterval(() => {
        if (firstDelta < 0 && sidecar.eventsOf(jobId).some((event) => event.type === "textDelta")) firstDelta = performance.now() - started;
      }, 1);
      const last = await sidecar.waitForJob(jobId);
      clearInterval(watch);
      if (last.type !== "jobFinished") throw new Error(`bench job failed: ${JSON.stringify(last)}`);
      rates.push(last.tokens / ((performance.now() - started) / 1000));
      firsts.push(firstDelta);
    }
    return { tokensPerSecond: median(rates), firstTokenMs: median(firsts) };
  } finally {
    await sidecar.dispose();
  }
}

async function inProcessTokensPerSecond(manifestPath: string): Promise<number> {
  const engine = new SynthesisEngine({ manifestPath, threads: THREADS, profile: "tiny" });
  try {
    await engine.loadModels({ profile: "tiny" });
    const rates: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      const last = await new Promise<JobEvent>((resolve) => {
        const stop = engine.onJobEvent((event) => {
          if (event.type === "jobFinished" || event.type === "jobFailed") {
            stop();
            resolve(event);
          }
        });
        engine.synthesize({ requirement: REQUIREMENT });
      });
      if (last.type !== "jobFinished") throw new Error(`bench job failed: ${JSON.stringify(last)}`);
      rates.push(last.tokens / ((performance.now() - started) / 1000));
    }
    return median(rates);
  } finally {
    await engine.dispose();
  }
}

async function bareLlamaTokensPerSecond(basePath: string, adapterPath: string): Promise<number> {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: basePath });
  const context = await model.createContext({ contextSize: 4096, threads: THREADS, lora: { adapters: [{ filePath: adapterPath }] } });
  const grammar = await llama.createGrammarForJsonSchema(grammarSchemaFor(CodeArtifactSchema) as never);
  const sequence = context.getSequence();
  const rates: number[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const session = new LlamaChatSession({ contextSequence: sequence, systemPrompt: CG_SYSTEM_PROMPT, autoDisposeSequence: false });
      let tokens = 0;
      let first = 0;
      const started = performance.now();
      await session.prompt(`Write the module for: ${REQUIREMENT} (run ${i})`, {
        grammar,
        maxTokens: 2048,
        onToken(chunk) {
          if (tokens === 0) first = performance.now();
          tokens += chunk.length;
        },
      });
      rates.push(tokens / ((performance.now() - (first || started)) / 1000));
      session.dispose({ disposeSequence: false });
    }
    return median(rates);
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

/** Peak RSS of a fresh process that loads `roles` contexts (each with its own adapter) on one base, or on separate copies. */
async function peakRssOfSidecar(manifestPath: string, profile: string): Promise<number> {
  const sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath, threads: THREADS } });
  try {
    await sidecar.client.request("loadModels", { profile });
    const { jobId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
    await sidecar.waitForJob(jobId);
    return peakRssMB(sidecar.pid);
  } finally {
    await sidecar.dispose();
  }
}

async function peakRssOfOneRole(basePath: string, adapterPath: string): Promise<number> {
  const script = `
    import { getLlama, LlamaChatSession, LlamaLogLevel } from "node-llama-cpp";
    import { readFileSync } from "node:fs";
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: ${JSON.stringify(basePath)} });
    const context = await model.createContext({ contextSize: 4096, threads: ${THREADS}, lora: { adapters: [{ filePath: ${JSON.stringify(adapterPath)} }] } });
    const session = new LlamaChatSession({ contextSequence: context.getSequence() });
    await session.prompt(${JSON.stringify(REQUIREMENT)}, { maxTokens: 64 });
    const hwm = /VmHWM:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1];
    process.stdout.write(String(Number(hwm) / 1024));
    await context.dispose(); await model.dispose(); await llama.dispose();
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: path.dirname(sidecarPath), stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.on("exit", (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`one-role process exited ${code}`))));
  });
}

async function cancelLatency(manifestPath: string): Promise<{ toJobEndMs: number; toLastTokenMs: number }> {
  const sidecar = await SidecarProcess.start({ sidecarPath, settings: { manifestPath, threads: THREADS } });
  try {
    await sidecar.client.request("loadModels", { profile: "tiny" });
    const toEnd: number[] = [];
    const toLastToken: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const { jobId } = await sidecar.client.request("synthesize", { requirement: REQUIREMENT });
      while (!sidecar.eventsOf(jobId).some((event) => event.type === "codeDelta")) await new Promise((resolve) => setTimeout(resolve, 1));
      const deltaTimes: number[] = [];
      const stop = sidecar.client.onJobEvent((event) => event.jobId === jobId && event.type.endsWith("Delta") && deltaTimes.push(performance.now()));
      const cancelledAt = performance.now();
      await sidecar.client.request("cancel", { jobId });
      const last = await sidecar.waitForJob(jobId);
      const endedAt = performance.now();
      stop.dispose();
      if (last.type !== "jobFailed" || !last.cancelled) continue;
      toEnd.push(endedAt - cancelledAt);
      toLastToken.push(Math.max(0, (deltaTimes.at(-1) ?? cancelledAt) - cancelledAt));
    }
    return { toJobEndMs: median(toEnd), toLastTokenMs: median(toLastToken) };
  } finally {
    await sidecar.dispose();
  }
}

async function main(): Promise<void> {
  const setup = await setUpTestModels();
  const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-bench-"));
  try {
    console.log(`GPIoT benchmark on the tiny model (${os.cpus().length} CPUs, threads ${THREADS}, median of ${RUNS} runs)\n`);

    const bare = await bareLlamaTokensPerSecond(setup.models.base, setup.models.adapters.cg);
    const inProcess = await inProcessTokensPerSecond(setup.manifestPath);
    const viaSidecar = await sidecarTokensPerSecond(setup.manifestPath);
    console.log("Throughput (tokens/s; whole jobs include prompt evaluation, syntax checks and file writes)");
    console.log(`  bare node-llama-cpp, CG grammar, generation only: ${fmt(bare)}`);
    console.log(`  engine in-process, whole synthesis job:           ${fmt(inProcess)}`);
    console.log(`  sidecar -> JSON-RPC client, whole synthesis job:  ${fmt(viaSidecar.tokensPerSecond)}   (first streamed token after ${fmt(viaSidecar.firstTokenMs)} ms)`);
    console.log(`  ratio sidecar / in-process engine:   ${fmt(viaSidecar.tokensPerSecond / inProcess, 2)}`);
    console.log(`  ratio sidecar / bare node-llama-cpp: ${fmt(viaSidecar.tokensPerSecond / bare, 2)}\n`);

    const oneRole = await peakRssOfOneRole(setup.models.base, setup.models.adapters.cg);
    const threeRolesShared = await peakRssOfSidecar(setup.manifestPath, "tiny-all-adapters");
    const threeSeparate = await peakRssOfSidecar(setup.manifestPath, "tiny-separate");
    console.log("Peak RSS (MB)");
    console.log(`  one role alone (one model, one context):      ${fmt(oneRole)}`);
    console.log(`  three roles on one base (3 contexts+adapters): ${fmt(threeRolesShared)}`);
    console.log(`  three roles on three model copies:             ${fmt(threeSeparate)}`);
    console.log(`  ratio three-on-one-base / one role:    ${fmt(threeRolesShared / oneRole, 2)}`);
    console.log(`  ratio three-on-one-base / three copies: ${fmt(threeRolesShared / threeSeparate, 2)}\n`);

    const cancel = await cancelLatency(setup.manifestPath);
    console.log("Cancel latency (ms, from the cancel request)");
    console.log(`  until the job's end event reaches the client: ${fmt(cancel.toJobEndMs)}`);
    console.log(`  until the last streamed token:                ${fmt(cancel.toLastTokenMs)}\n`);

    console.log("VS Code extension (code-server 4.100.3, real sidecar, tiny model)");
    try {
      console.log(formatExtensionBench(await runExtensionBench({ runs: RUNS, log: () => undefined })));
    } catch (error) {
      console.log(`  skipped: ${(error as Error).message}`);
    }

    console.log("");
    console.log((await runTrainBench()).join("\n"));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(setup.dir, { recursive: true, force: true });
  }
}

await main();
