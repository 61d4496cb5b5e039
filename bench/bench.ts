/**
 * `npm run bench`: speed and memory figures, each as a ratio against a baseline measured in the
 * same run (these machines are noisy; absolute numbers mean little).
 *
 * 1. Tokens/s of a synthesis streamed through the sidecar to a client, next to the same job on
 *    the engine in-process, and next to bare node-llama-cpp generating under the same grammar;
 *    sub-tasks one after another vs in parallel (several sequences of one context per role), for
 *    the tiny model's own two-sub-task decomposition and for five sub-tasks (as real models write).
 * 1b. A syntax check in the engine's long-lived checker vs one interpreter started per check.
 * 2. Peak RSS of a sidecar with three roles on one base model, next to a process holding one
 *    role alone, and next to three model files; on a random model of a few hundred MB written
 *    for the run, so that weights dominate as they do for real models (see memory.ts).
 * 3. Cancel latency: from the cancel request to the job's end, and to the last streamed token
 *    (tiny model).
 * 4. Training data (`gpiot data cgd`): documentation harvest and sandbox validation rates, next
 *    to bare `python -c` runs of the same work.
 * 5. Training (bench/trainBench.ts): PECT vs LoRA throughput, trainable shares, the cross-projection ablation.
 * 6. The remote backend through llama.cpp's llama-server (--parallel 4) serving the same tiny
 *    model and adapters: whole-job tokens/s at 1, 2 and 4 sub-tasks at once, IoT Bench programs/min
 *    at concurrency 1 vs 4, and the client's time per request vs the server's own timings.
 * 7. Retrieval (bench/retrievalBench.ts): index build and query latency at 10k and 100k chunks next to
 *    exact brute-force search, `index add` next to embedding alone, the prompt tokens retrieval adds to a job.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, LlamaChatSession, LlamaLogLevel } from "node-llama-cpp";
import { SidecarProcess } from "../sidecar/src/client/sidecarProcess";
import { runBench } from "../sidecar/src/bench/harness";
import { defaultBenchRoot } from "../sidecar/src/bench/tasks";
import { SynthesisEngine } from "../sidecar/src/engine/engine";
import { buildCodePrompt } from "../sidecar/src/pipeline/codeGeneration";
import { checkPythonSyntax, PythonSyntaxChecker } from "../sidecar/src/pipeline/pythonSyntax";
import { RemoteRoleModels } from "../sidecar/src/remote/remoteRoleModels";
import { RemoteSettingsSchema, type RemoteSettingsInput } from "../sidecar/src/shared/remoteSettings";
import { EngineSettingsSchema } from "../sidecar/src/settings";
import { grammarSchemaFor } from "../sidecar/src/grammarSchema";
import { CG_SYSTEM_PROMPT } from "../sidecar/src/pipeline/codeGeneration";
import { CodeArtifactSchema } from "../sidecar/src/schemas";
import type { JobEvent } from "../sidecar/src/protocol";
import type { SubTask } from "../sidecar/src/schemas";
import { LlamaServer, llamaServerMissingMessage, llamaServerPath } from "../test/helpers/llamaServer";
import { repoRoot, setUpTestModels, sidecarPath, type TestModelSetup } from "../test/helpers/testModels";
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

/** Real models decompose a requirement into several steps; the tiny model always writes two. */
const FIVE_SUB_TASKS: SubTask[] = ["Load the ECG record", "Band-pass filter the signal", "Detect R peaks", "Compute RR intervals", "Report the heart rate"].map((name) => ({
  name,
  problem: `${name} for a single-lead ECG`,
  steps: [name],
}));

function jobEnd(engine: SynthesisEngine, start: () => string): Promise<JobEvent> {
  return new Promise((resolve) => {
    let jobId = "";
    const stop = engine.onJobEvent((event) => {
      if (jobId && event.jobId === jobId && (event.type === "jobFinished" || event.type === "jobFailed")) {
        stop();
        resolve(event);
      }
    });
    jobId = start();
  });
}

/** One synthesis: the requirement as the model decomposes it, or (five) with the decomposition replaced by five sub-tasks. Returns tokens and wall time. */
async function oneJob(engine: SynthesisEngine, five: boolean): Promise<{ tokens: number; ms: number }> {
  const started = performance.now();
  if (!five) {
    const last = await jobEnd(engine, () => engine.synthesize({ requirement: REQUIREMENT }).jobId);
    if (last.type !== "jobFinished") throw new Error(`bench job failed: ${JSON.stringify(last)}`);
    return { tokens: last.tokens, ms: performance.now() - started };
  }
  const decomposed = await jobEnd(engine, () => engine.synthesize({ requirement: REQUIREMENT, review: "decomposition" }).jobId);
  if (decomposed.type !== "jobFinished") throw new Error(`bench job failed: ${JSON.stringify(decomposed)}`);
  engine.updateSubTasks({ programId: decomposed.programId, subTasks: FIVE_SUB_TASKS.map((subTask) => ({ subTask })) });
  const rest = await jobEnd(engine, () => engine.continue({ programId: decomposed.programId }).jobId);
  if (rest.type !== "jobFinished") throw new Error(`bench job failed: ${JSON.stringify(rest)}`);
  return { tokens: decomposed.tokens + rest.tokens, ms: performance.now() - started };
}

/** Milliseconds per syntax check: the engine's long-lived interpreter vs one started per check. */
async function syntaxCheckMs(): Promise<{ longLived: number; perProcess: number }> {
  const source = "import numpy as np\n\ndef run(signal):\n    return {'peaks': np.flatnonzero(signal > 0.5)}\n";
  const checker = new PythonSyntaxChecker();
  try {
    await checker.check(source, "warm.py");
    let started = performance.now();
    for (let i = 0; i < 20; i++) await checker.check(source, `m${i}.py`);
    const longLived = (performance.now() - started) / 20;
    started = performance.now();
    for (let i = 0; i < 5; i++) await checkPythonSyntax(source, `p${i}.py`);
    return { longLived, perProcess: (performance.now() - started) / 5 };
  } finally {
    checker.dispose();
  }
}

/** Bare node-llama-cpp generating CG's JSON under its grammar: tokens/s from the first token, one generation per call. */
async function openBareLlama(basePath: string, adapterPath: string): Promise<{ once(run: number): Promise<number>; dispose(): Promise<void> }> {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: basePath });
  const context = await model.createContext({ contextSize: 4096, threads: THREADS, lora: { adapters: [{ filePath: adapterPath }] } });
  const grammar = await llama.createGrammarForJsonSchema(grammarSchemaFor(CodeArtifactSchema) as never);
  const sequence = context.getSequence();
  return {
    async once(run) {
      const session = new LlamaChatSession({ contextSequence: sequence, systemPrompt: CG_SYSTEM_PROMPT, autoDisposeSequence: false });
      let tokens = 0;
      let first = 0;
      const started = performance.now();
      await session.prompt(`Write the module for: ${REQUIREMENT} (run ${run})`, {
        grammar,
        maxTokens: 2048,
        onToken(chunk) {
          if (tokens === 0) first = performance.now();
          tokens += chunk.length;
        },
      });
      session.dispose({ disposeSequence: false });
      return tokens / ((performance.now() - (first || started)) / 1000);
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

interface ThroughputFigures {
  bare: number;
  sequential: number;
  parallel: number;
  sequentialFive: number;
  parallelFive: number;
  /** Medians of the ratios measured round by round (a busy machine drifts; each round's ratio compares neighbours). */
  ratios: { sequentialBare: number; parallelBare: number; parallelSequential: number; sequentialFiveBare: number; parallelFiveBare: number; parallelFiveSequentialFive: number };
}

/** Bare decode and whole jobs (two and five sub-tasks, one after another and in parallel), interleaved round by round. */
async function throughput(manifestPath: string, basePath: string, adapterPath: string): Promise<ThroughputFigures> {
  const bare = await openBareLlama(basePath, adapterPath);
  const engine = (profile: string, parallelSubTasks: number) => new SynthesisEngine({ manifestPath, threads: THREADS, profile, parallelSubTasks });
  const engines = { sequential: engine("tiny", 1), parallel: engine("tiny", 4), sequentialFive: engine("tiny-all-adapters", 1), parallelFive: engine("tiny-all-adapters", 4) };
  const five = (name: keyof typeof engines) => name.endsWith("Five");
  const rates: Record<keyof typeof engines | "bare", number[]> = { bare: [], sequential: [], parallel: [], sequentialFive: [], parallelFive: [] };
  try {
    for (const [name, each] of Object.entries(engines) as [keyof typeof engines, SynthesisEngine][]) {
      await each.loadModels();
      await oneJob(each, five(name));
    }
    await bare.once(-1);
    for (let round = 0; round < RUNS; round++) {
      rates.bare.push(await bare.once(round));
      for (const [name, each] of Object.entries(engines) as [keyof typeof engines, SynthesisEngine][]) {
        const { tokens, ms } = await oneJob(each, five(name));
        rates[name].push(tokens / (ms / 1000));
      }
    }
  } finally {
    await bare.dispose();
    for (const each of Object.values(engines)) await each.dispose();
  }
  const ratio = (a: number[], b: number[]) => median(a.map((value, index) => value / b[index]));
  return {
    bare: median(rates.bare),
    sequential: median(rates.sequential),
    parallel: median(rates.parallel),
    sequentialFive: median(rates.sequentialFive),
    parallelFive: median(rates.parallelFive),
    ratios: {
      sequentialBare: ratio(rates.sequential, rates.bare),
      parallelBare: ratio(rates.parallel, rates.bare),
      parallelSequential: ratio(rates.parallel, rates.sequential),
      sequentialFiveBare: ratio(rates.sequentialFive, rates.bare),
      parallelFiveBare: ratio(rates.parallelFive, rates.bare),
      parallelFiveSequentialFive: ratio(rates.parallelFive, rates.sequentialFive),
    },
  };
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

/** Every role on the llama-server, each with its tiny adapter (selected per request by file name). */
function remoteSettings(server: LlamaServer, maxConcurrentRequests = 8): RemoteSettingsInput {
  const endpoint = (role: "td" | "rt" | "cg") => ({ baseUrl: server.baseUrl, model: "tiny-base", adapter: `tiny-${role}.lora.gguf`, adapterSelection: "lora" as const });
  return { roles: { td: endpoint("td"), rt: endpoint("rt"), cg: endpoint("cg") }, maxConcurrentRequests };
}

async function remoteBench(setup: TestModelSetup): Promise<void> {
  const binary = llamaServerPath(repoRoot);
  if (!existsSync(binary)) {
    console.log(`  skipped: ${llamaServerMissingMessage(binary).split("\n")[0]} Build it with bash scripts/build-llama-server.sh.`);
    return;
  }
  const { base, adapters } = setup.models;
  const server = await LlamaServer.start({ binary, model: base, adapters: [adapters.td, adapters.rt, adapters.cg], parallel: 4, threads: THREADS });
  try {
    // One engine per setting, measured round by round.
    const engines = new Map([1, 2, 4].map((parallel) => [parallel, new SynthesisEngine({ parallelSubTasks: parallel, remote: remoteSettings(server) })]));
    const rates = new Map<number, number[]>([...engines.keys()].map((parallel) => [parallel, []]));
    try {
      for (const engine of engines.values()) {
        await engine.loadModels();
        await oneJob(engine, true);
      }
      for (let round = 0; round < RUNS; round++) {
        for (const [parallel, engine] of engines) {
          const { tokens, ms } = await oneJob(engine, true);
          rates.get(parallel)!.push(tokens / (ms / 1000));
        }
      }
    } finally {
      for (const engine of engines.values()) await engine.dispose();
    }
    const at = (parallel: number) => median(rates.get(parallel)!);
    const ratioTo1 = (parallel: number) => median(rates.get(parallel)!.map((rate, round) => rate / rates.get(1)![round]));
    console.log(`  whole job, five sub-tasks, tokens/s at 1, 2, 4 at once: ${fmt(at(1))}, ${fmt(at(2))}, ${fmt(at(4))}`);
    console.log(`  ratio 2 / 1 at once: ${fmt(ratioTo1(2), 2)}   ratio 4 / 1 at once: ${fmt(ratioTo1(4), 2)}`);

    const programsPerMinute: Record<number, number> = {};
    const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-bench-remote-"));
    try {
      for (const concurrency of [1, 4]) {
        const started = performance.now();
        const report = await runBench({
          root: defaultBenchRoot(),
          outDir: path.join(scratch, `c${concurrency}`),
          taskIds: ["imu-har"],
          systems: [{ kind: "remote", label: "tiny-base@llama-server" }],
          n: 8,
          k: 1,
          dataPaths: {},
          // Greedy: sampled random weights write invalid UTF-8 that llama-server refuses to parse.
          engineSettings: { remote: remoteSettings(server), temperature: 0 },
          repairRounds: 0,
          concurrency,
          verify: { python: "python3", timeoutMs: 60_000, memoryMB: 4096 },
          log: () => undefined,
        });
        const programs = report.results.reduce((sum, result) => sum + result.programs.length, 0);
        programsPerMinute[concurrency] = programs / ((performance.now() - started) / 60_000);
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    console.log(`  IoT Bench (imu-har, 8 programs, synthesis + scoring) programs/min at concurrency 1, 4: ${fmt(programsPerMinute[1])}, ${fmt(programsPerMinute[4])}`);
    console.log(`  ratio concurrency 4 / 1: ${fmt(programsPerMinute[4] / programsPerMinute[1], 2)}`);

    // The client's view of one CG request (request to last streamed chunk) vs the server's own prompt + generation time.
    const settings = EngineSettingsSchema.parse({ remote: remoteSettings(server) });
    const models = await RemoteRoleModels.connect(settings, RemoteSettingsSchema.parse(settings.remote));
    const clientMs: number[] = [];
    const serverMs: number[] = [];
    for (let i = 0; i < RUNS * 4; i++) {
      const spec = { target: `Write some code and documentation to detect R peaks (${i})`, inputs: [{ name: "signal", type: "np.ndarray", description: "the ECG" }], outputs: [{ name: "peaks", type: "np.ndarray", description: "R peak indices" }] };
      const result = await models.generate({ role: "cg", systemPrompt: CG_SYSTEM_PROMPT, userPrompt: buildCodePrompt({ requirement: REQUIREMENT, limits: null, spec, previousSpecs: [] }), jsonSchema: grammarSchemaFor(CodeArtifactSchema), maxTokens: 2048, onTextChunk: () => undefined });
      if (!result.serverTimings?.predictedMs) continue;
      clientMs.push(result.totalMs);
      serverMs.push((result.serverTimings.promptMs ?? 0) + result.serverTimings.predictedMs);
    }
    if (clientMs.length) {
      console.log(`  one CG request, ms (median): client ${fmt(median(clientMs))}, server's own timings ${fmt(median(serverMs))}`);
      console.log(`  ratio client / server (streaming, HTTP and parsing overhead): ${fmt(median(clientMs) / median(serverMs), 2)}`);
    } else console.log("  the server sent no timings with its streamed answers");
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const setup = await setUpTestModels();
  const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-bench-"));
  try {
    console.log(`GPIoT benchmark (${os.cpus().length} CPUs, threads ${THREADS}, median of ${RUNS} runs)\n`);

    const figures = await throughput(setup.manifestPath, setup.models.base, setup.models.adapters.cg);
    const viaSidecar = await sidecarTokensPerSecond(setup.manifestPath);
    const { ratios } = figures;
    console.log("Throughput (tokens/s; whole jobs include prompt evaluation, syntax checks and file writes; measured round by round)");
    console.log(`  bare node-llama-cpp, CG grammar, generation only:            ${fmt(figures.bare)}`);
    console.log(`  engine in-process, whole job, sub-tasks one after another:   ${fmt(figures.sequential)}`);
    console.log(`  engine in-process, whole job, sub-tasks in parallel (4):     ${fmt(figures.parallel)}`);
    console.log(`  the same with five sub-tasks, one after another / parallel:  ${fmt(figures.sequentialFive)} / ${fmt(figures.parallelFive)}`);
    console.log(`  sidecar -> JSON-RPC client, whole job (default: parallel):   ${fmt(viaSidecar.tokensPerSecond)}   (first streamed token after ${fmt(viaSidecar.firstTokenMs)} ms)`);
    console.log(`  ratio sequential job / bare node-llama-cpp:  ${fmt(ratios.sequentialBare, 2)}   (five sub-tasks: ${fmt(ratios.sequentialFiveBare, 2)})`);
    console.log(`  ratio parallel job / bare node-llama-cpp:    ${fmt(ratios.parallelBare, 2)}   (five sub-tasks: ${fmt(ratios.parallelFiveBare, 2)})`);
    console.log(`  ratio parallel / sequential job:             ${fmt(ratios.parallelSequential, 2)}   (five sub-tasks: ${fmt(ratios.parallelFiveSequentialFive, 2)})`);
    console.log(`  ratio sidecar / in-process engine:           ${fmt(viaSidecar.tokensPerSecond / figures.parallel, 2)}`);
    console.log(`  ratio sidecar / bare node-llama-cpp:         ${fmt(viaSidecar.tokensPerSecond / figures.bare, 2)}\n`);

    const syntax = await syntaxCheckMs();
    console.log("Python syntax check (ms per module)");
    console.log(`  the engine's long-lived checker: ${fmt(syntax.longLived, 2)}   one interpreter per check: ${fmt(syntax.perProcess)}`);
    console.log(`  ratio per-check interpreter / long-lived: ${fmt(syntax.perProcess / syntax.longLived, 0)}\n`);

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
    console.log("Remote backend: llama.cpp llama-server --parallel 4, the same tiny model and adapters, 127.0.0.1");
    await remoteBench(setup);
    console.log("");

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
