/**
 * `npm run bench`: speed and memory figures, each as a ratio against a baseline measured in the
 * same run (these machines are noisy; absolute numbers mean little).
 *
 * 1. Tokens/s of a synthesis streamed through the sidecar to a client, next to the same job on
 *    the engine in-process, and next to bare node-llama-cpp generating under the same grammar
 *    (tiny model).
 * 2. Peak RSS of a sidecar with three roles on one base model, next to a process holding one
 *    role alone, and next to three model files; on a random model of a few hundred MB written
 *    for the run, so that weights dominate as they do for real models (see memory.ts).
 * 3. Cancel latency: from the cancel request to the job's end, and to the last streamed token
 *    (tiny model).
 * 4. Training data (`gpiot data cgd`): documentation harvest and sandbox validation rates, next
 *    to bare `python -c` runs of the same work.
 * 5. Training (bench/trainBench.ts): PECT vs LoRA throughput, trainable shares, the cross-projection ablation.
 * 6. Retrieval (bench/retrievalBench.ts): index build and query latency at 10k and 100k chunks next to
 *    exact brute-force search, `index add` next to embedding alone, the prompt tokens retrieval adds to a job.
 */
import { mkdtempSync, rmSync } from "node:fs";
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
import { formatDataBench, runDataBench } from "./dataBench";
import { formatExtensionBench, runExtensionBench } from "./extensionBench";
import { formatMemoryFigures, measureRoleMemory } from "./memory";
import { runRetrievalBench } from "./retrievalBench";
import { runTrainBench } from "./trainBench";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG from the MIT-BIH database and report the heart rate";
const RUNS = Number(process.env.GPIOT_BENCH_RUNS ?? 5);
const THREADS = 1;
const MEMORY_CONTEXT_SIZE = 2048;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const fmt = (value: number, digits = 1) => value.toFixed(digits);

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
    console.log(`GPIoT benchmark (${os.cpus().length} CPUs, threads ${THREADS}, median of ${RUNS} runs)\n`);

    const bare = await bareLlamaTokensPerSecond(setup.models.base, setup.models.adapters.cg);
    const inProcess = await inProcessTokensPerSecond(setup.manifestPath);
    const viaSidecar = await sidecarTokensPerSecond(setup.manifestPath);
    console.log("Throughput (tokens/s; whole jobs include prompt evaluation, syntax checks and file writes)");
    console.log(`  bare node-llama-cpp, CG grammar, generation only: ${fmt(bare)}`);
    console.log(`  engine in-process, whole synthesis job:           ${fmt(inProcess)}`);
    console.log(`  sidecar -> JSON-RPC client, whole synthesis job:  ${fmt(viaSidecar.tokensPerSecond)}   (first streamed token after ${fmt(viaSidecar.firstTokenMs)} ms)`);
    console.log(`  ratio sidecar / in-process engine:   ${fmt(viaSidecar.tokensPerSecond / inProcess, 2)}`);
    console.log(`  ratio sidecar / bare node-llama-cpp: ${fmt(viaSidecar.tokensPerSecond / bare, 2)}\n`);

    const memory = await measureRoleMemory({ dir: scratch, sidecarPath, requirement: REQUIREMENT, threads: THREADS, contextSize: MEMORY_CONTEXT_SIZE });
    rmSync(path.join(scratch, "models"), { recursive: true, force: true });
    console.log(`${formatMemoryFigures(memory)}\n`);

    const cancel = await cancelLatency(setup.manifestPath);
    console.log("Cancel latency (ms, from the cancel request)");
    console.log(`  until the job's end event reaches the client: ${fmt(cancel.toJobEndMs)}`);
    console.log(`  until the last streamed token:                ${fmt(cancel.toLastTokenMs)}\n`);

    console.log("Training data: gpiot data cgd on the installed numpy/scipy (ratios to bare python -c runs of the same work)");
    try {
      console.log(`${formatDataBench(await runDataBench({ runs: Math.min(RUNS, 3) }))}\n`);
    } catch (error) {
      console.log(`  skipped: ${(error as Error).message}\n`);
    }

    console.log("VS Code extension (code-server 4.100.3, real sidecar, tiny model)");
    try {
      console.log(formatExtensionBench(await runExtensionBench({ runs: RUNS, log: () => undefined })));
    } catch (error) {
      console.log(`  skipped: ${(error as Error).message}`);
    }

    console.log("");
    console.log((await runTrainBench()).join("\n"));

    console.log("");
    console.log((await runRetrievalBench({ setup, scratch })).join("\n"));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(setup.dir, { recursive: true, force: true });
  }
}

await main();
