/**
 * The IoT Bench harness: for every task and every "system" (a model profile or GGUF file, or the
 * hand-written solutions), get programs (synthesize n of them, or assemble the solution), score
 * each on the task's data in the sandbox, and aggregate: format correctness, compile/run/pass
 * rates, pass@1 and pass@k (unbiased estimator), the task metric, run time and peak memory,
 * synthesis time and tokens per second.
 */
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { JobEvent } from "../protocol";
import type { EngineSettingsInput } from "../settings";
import { ENGINE_VERSION, SynthesisEngine } from "../engine/engine";
import { assembleProgram } from "../pipeline/assembleProgram";
import { parseResourceLimits } from "../pipeline/requirement";
import type { ProgramFileLike, VerifySettingsLike } from "../verify/verifier";
import { probeIsolation, resolvePython, type IsolationSupport } from "../verify/pythonEnv";
import { prepareTask, type PreparedTask } from "./data";
import { emptyEvaluation, evaluateProgram, type ProgramEvaluation } from "./evaluate";
import { passAtK } from "./scorers";
import { loadSolutions, loadTasks, type BenchTask, type Solution } from "./tasks";

export type SystemSpec = { kind: "profile"; profile: string } | { kind: "model"; modelPath: string } | { kind: "solutions" } | { kind: "remote"; label: string };

export interface BenchOptions {
  root: string;
  outDir: string;
  taskIds?: string[];
  systems: SystemSpec[];
  /** Programs per task and model. */
  n: number;
  /** k of pass@k. */
  k: number;
  /** Real data folders by task id. */
  dataPaths: Record<string, string>;
  records?: number;
  engineSettings: EngineSettingsInput;
  /** Repair rounds during synthesis (0 = the raw model, as the paper measures). */
  repairRounds: number;
  verify: VerifySettingsLike;
  /** Programs synthesized and scored at once (each on an engine of its own); more than 1 needs every role on a remote server. */
  concurrency?: number;
  log(line: string): void;
  signal?: AbortSignal;
}

export interface ProgramResult extends ProgramEvaluation {
  index: number;
  /** Solutions: the solution's name; models: the program folder. */
  name: string;
  kind?: "reference" | "broken";
  /** Synthesis finished with every stage's structured output valid. */
  formatOk: boolean;
  synthesisMs: number | null;
  tokens: number | null;
  tokensPerSecond: number | null;
  synthesisError?: string;
  verification?: { status: string; rounds: number };
}

export interface TaskResult {
  system: string;
  task: string;
  n: number;
  k: number;
  formatRate: number;
  compileRate: number;
  runRate: number;
  /** Share of the programs that ran whose measured memory and time met the task's constraints (null: none stated). */
  withinLimitsRate: number | null;
  passCount: number;
  passAt1: number;
  passAtK: number;
  /** Mean headline metric over all programs (0 for those that did not run) and the best. */
  meanScore: number;
  bestScore: number;
  /** Mean of each metric over the programs that ran. */
  metrics: Record<string, number>;
  wallMs: number | null;
  pipelineMs: number | null;
  peakMemoryMB: number | null;
  synthesisMs: number | null;
  tokensPerSecond: number | null;
  programs: ProgramResult[];
}

export interface BenchReport {
  createdAt: string;
  gpiotVersion: string;
  options: { n: number; k: number; repairRounds: number; systems: string[]; tasks: string[]; records?: number; concurrency?: number };
  environment: { python: string; pythonVersion: string; isolation: string; platform: string; /** Where the withheld answers were, as far as the programs could tell. */ answers: string };
  tasks: { id: string; title: string; source: "synthetic" | "real"; dataDir: string; items: number; metric: string; pass: Record<string, number>; constraints?: string }[];
  results: TaskResult[];
  totalMs: number;
}

function systemName(system: SystemSpec): string {
  if (system.kind === "remote") return `remote:${system.label}`;
  return system.kind === "profile" ? `profile:${system.profile}` : system.kind === "model" ? `model:${path.basename(system.modelPath)}` : "solutions";
}

async function readProgramFolder(dir: string): Promise<ProgramFileLike[]> {
  const files: ProgramFileLike[] = [];
  for (const name of await readdir(dir)) {
    const full = path.join(dir, name);
    if ((await stat(full)).isFile() && /\.(py|txt|json|md)$/.test(name)) files.push({ path: name, content: await readFile(full, "utf8") });
  }
  return files;
}

async function solutionFiles(solution: Solution, task: BenchTask): Promise<ProgramFileLike[]> {
  const parts = await Promise.all(
    solution.parts.map(async (part) => ({
      subTask: { name: part.name, problem: solution.description, steps: [part.name] },
      spec: { target: `Write some code and documentation to ${part.name.toLowerCase()}`, inputs: part.inputs, outputs: part.outputs },
      artifact: { code: await readFile(path.resolve(solution.dir, part.file), "utf8"), documentation: solution.description, requirements: part.requirements },
    })),
  );
  return assembleProgram({ requirement: task.requirement, limits: task.constraints ? parseResourceLimits(task.constraints) : null, parts, generator: { profile: `solution:${solution.name}`, createdAt: new Date().toISOString() } });
}

function aggregate(system: string, task: BenchTask, k: number, programs: ProgramResult[]): TaskResult {
  const n = programs.length;
  const share = (predicate: (program: ProgramResult) => boolean) => (n ? programs.filter(predicate).length / n : 0);
  const avg = (values: (number | null)[]) => {
    const present = values.filter((value): value is number => value !== null && Number.isFinite(value));
    return present.length ? present.reduce((sum, value) => sum + value, 0) / present.length : null;
  };
  const ran = programs.filter((program) => program.ran);
  const metricNames = [...new Set(ran.flatMap((program) => Object.keys(program.metrics)))];
  const passCount = programs.filter((program) => program.passed).length;
  return {
    system,
    task: task.id,
    n,
    k,
    formatRate: share((program) => program.formatOk),
    compileRate: share((program) => program.compiled),
    runRate: share((program) => program.ran),
    withinLimitsRate: ran.some((program) => program.resources) ? ran.filter((program) => program.resources?.ok).length / ran.length : null,
    passCount,
    passAt1: passAtK(n, passCount, 1),
    passAtK: passAtK(n, passCount, k),
    meanScore: avg(programs.map((program) => program.score)) ?? 0,
    bestScore: Math.max(0, ...programs.map((program) => program.score)),
    metrics: Object.fromEntries(metricNames.map((name) => [name, avg(ran.map((program) => program.metrics[name] ?? null)) ?? 0])),
    wallMs: avg(ran.map((program) => program.wallMs)),
    pipelineMs: avg(ran.map((program) => program.pipelineMs)),
    peakMemoryMB: avg(ran.map((program) => program.peakMemoryMB)),
    synthesisMs: avg(programs.map((program) => program.synthesisMs)),
    tokensPerSecond: avg(programs.map((program) => program.tokensPerSecond)),
    programs,
  };
}

/** Synthesizes one program with the engine and waits for its job. */
function synthesizeOne(engine: SynthesisEngine, task: BenchTask, outDir: string, prepared: PreparedTask, repairRounds: number): Promise<JobEvent> {
  return new Promise((resolve, reject) => {
    let jobId: string | null = null;
    const early: JobEvent[] = [];
    const stop = engine.onJobEvent((event) => {
      if (event.type !== "jobFinished" && event.type !== "jobFailed") return;
      if (jobId === null) early.push(event);
      else if (event.jobId === jobId) {
        stop();
        resolve(event);
      }
    });
    try {
      jobId = engine.synthesize({
        requirement: task.requirement,
        constraints: task.constraints,
        outDir,
        overwrite: "ownFiles",
        ...(repairRounds > 0 ? { verify: { execute: true, consent: true, repairRounds, inputs: prepared.runs[0]?.inputs } } : {}),
      }).jobId;
      const done = early.find((event) => event.jobId === jobId);
      if (done) {
        stop();
        resolve(done);
      }
    } catch (error) {
      stop();
      reject(error);
    }
  });
}

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const started = performance.now();
  const tasks = await loadTasks(options.root, options.taskIds);
  await mkdir(options.outDir, { recursive: true });
  const python = await resolvePython(options.verify.python);
  const isolation: IsolationSupport = options.verify.isolation === "off" ? { available: false, prefix: [], reason: "isolation turned off", probed: [] } : await probeIsolation(python.executable);
  options.log(
    `Python ${python.version} (${python.executable}); sandbox: ${isolation.available ? `isolated (${isolation.probed.join("; ")})` : `NOT isolated (${isolation.reason}): programs run with your user's rights and network access`}`,
  );
  const prepared: PreparedTask[] = [];
  const answers: string[] = [];
  for (const task of tasks) {
    const item = await prepareTask(task, path.join(options.outDir, "data"), { realPath: options.dataPaths[task.id], records: options.records });
    options.log(`${task.id}: ${item.source} data, ${item.runs.length} item(s) in ${item.dataDir}`);
    const where = answersStatement(item, isolation);
    if (item.source === "real" && !isolation.available) options.log(`WARNING ${task.id}: ${where}`);
    answers.push(`${task.id}: ${where}`);
    prepared.push(item);
  }
  const results: TaskResult[] = [];
  for (const system of options.systems) {
    const name = systemName(system);
    if (system.kind === "solutions") {
      for (const item of prepared) {
        for (const solution of await loadSolutions(options.root, item.task.id)) {
          if (options.signal?.aborted) throw new Error("Cancelled");
          const evaluation = await evaluateProgram(await solutionFiles(solution, item.task), item, options.verify, options.signal);
          const program: ProgramResult = { ...evaluation, index: 0, name: solution.name, kind: solution.kind, formatOk: true, synthesisMs: null, tokens: null, tokensPerSecond: null };
          results.push(aggregate(`solution:${solution.name}`, item.task, 1, [program]));
          options.log(`${item.task.id} / solution:${solution.name}: ${describeProgram(program)}`);
        }
      }
      continue;
    }
    const concurrency = Math.max(1, options.concurrency ?? 1);
    const engineSettings = {
      ...options.engineSettings,
      ...(system.kind === "profile" ? { profile: system.profile, modelPath: undefined } : system.kind === "model" ? { modelPath: system.modelPath } : {}),
    };
    const remoteRoles = Object.values(options.engineSettings.remote?.roles ?? {}).filter(Boolean).length;
    if (concurrency > 1 && remoteRoles < 3)
      throw new Error(`--concurrency ${concurrency} needs every role on a remote server (each concurrent program has an engine of its own; local models would be loaded ${concurrency} times). Locally, sub-tasks already run in parallel (--parallel).`);
    const engines: SynthesisEngine[] = [];
    try {
      options.log(`${name}: loading models${concurrency > 1 ? ` (${concurrency} programs at once)` : ""}`);
      for (let i = 0; i < concurrency; i++) {
        const engine = new SynthesisEngine(engineSettings);
        engines.push(engine);
        await engine.loadModels(system.kind === "profile" ? { profile: system.profile } : system.kind === "model" ? { modelPath: system.modelPath } : {});
      }
      const work = prepared.flatMap((item) => Array.from({ length: options.n }, (_, index) => ({ item, index })));
      const done = new Map<PreparedTask, ProgramResult[]>(prepared.map((item) => [item, []]));
      const runOne = async (engine: SynthesisEngine, { item, index }: { item: PreparedTask; index: number }): Promise<void> => {
        // Each sample gets its own seed (the model host reads the live settings), so samples differ yet reproduce.
        if (options.engineSettings.seed !== undefined || options.n > 1) engine.settings.seed = (options.engineSettings.seed ?? 1000) + index;
        const programDir = path.join(options.outDir, "programs", name.replace(/[^A-Za-z0-9._-]+/g, "_"), item.task.id, String(index + 1).padStart(2, "0"));
        const event = await synthesizeOne(engine, item.task, programDir, item, options.repairRounds);
        let program: ProgramResult;
        if (event.type === "jobFinished") {
          const evaluation = await evaluateProgram(await readProgramFolder(programDir), item, options.verify, options.signal);
          program = {
            ...evaluation,
            index,
            name: programDir,
            formatOk: true,
            synthesisMs: event.totalMs,
            tokens: event.tokens,
            tokensPerSecond: event.totalMs > 0 ? event.tokens / (event.totalMs / 1000) : null,
            ...(event.verification ? { verification: { status: event.verification.status, rounds: event.verification.rounds } } : {}),
          };
        } else {
          program = {
            index,
            name: programDir,
            // A failed synthesis made no program, whatever the reason: its format counts as wrong.
            formatOk: false,
            synthesisMs: event.type === "jobFailed" ? event.totalMs : null,
            tokens: null,
            tokensPerSecond: null,
            synthesisError: event.type === "jobFailed" ? `${event.error.code}: ${event.error.message}` : "no result",
            ...emptyEvaluation(event.type === "jobFailed" ? event.error.message : "synthesis failed"),
          };
        }
        done.get(item)!.push(program);
        options.log(`${item.task.id} / ${name} #${index + 1}: ${describeProgram(program)}`);
      };
      let next = 0;
      await Promise.all(
        engines.map(async (engine) => {
          while (next < work.length) {
            if (options.signal?.aborted) throw new Error("Cancelled");
            await runOne(engine, work[next++]);
          }
        }),
      );
      for (const item of prepared) results.push(aggregate(name, item.task, options.k, done.get(item)!.sort((a, b) => a.index - b.index)));
    } finally {
      for (const engine of engines) await engine.dispose();
    }
  }
  return {
    createdAt: new Date().toISOString(),
    gpiotVersion: ENGINE_VERSION,
    options: {
      n: options.n,
      k: options.k,
      repairRounds: options.repairRounds,
      systems: options.systems.map(systemName),
      tasks: tasks.map((task) => task.id),
      ...(options.records ? { records: options.records } : {}),
      ...((options.concurrency ?? 1) > 1 ? { concurrency: options.concurrency } : {}),
    },
    environment: {
      python: python.executable,
      pythonVersion: python.version,
      isolation: isolation.available ? "user+network+mount+pid namespaces" : `none (${isolation.reason})`,
      platform: `${process.platform}-${process.arch}`,
      answers: answers.join("; "),
    },
    tasks: prepared.map((item) => ({
      id: item.task.id,
      title: item.task.title,
      source: item.source,
      dataDir: item.dataDir,
      items: item.runs.length,
      metric: item.task.scoring.metric,
      pass: item.task.scoring.pass,
      ...(item.task.constraints ? { constraints: item.task.constraints } : {}),
    })),
    results,
    totalMs: Math.round(performance.now() - started),
  };
}

/** Whether a task's withheld answers were within the programs' reach, in words. */
function answersStatement(item: PreparedTask, isolation: IsolationSupport): string {
  if (item.source === "synthetic") return isolation.available ? "never written to disk (held by the harness); the data folder is hidden from the programs" : "never written to disk (held by the harness)";
  if (isolation.available) return "hidden from the programs (the dataset's folder is empty in their view)";
  return `READABLE by the programs: the dataset's folder holds them and the sandbox cannot hide folders here (${isolation.reason}); scores on this data are not protected against a program that looks for them`;
}

export function describeProgram(program: ProgramResult): string {
  if (program.synthesisError) return `synthesis failed (${program.synthesisError.slice(0, 120)})`;
  const metrics = Object.entries(program.metrics)
    .map(([name, value]) => `${name} ${value.toFixed(3)}`)
    .join(", ");
  const state = program.passed ? "PASS" : program.ran ? "ran, below threshold" : program.staticOk ? "failed to run" : program.compiled ? "static check failed" : "does not compile";
  return `${state}${metrics ? `; ${metrics}` : ""}${program.failure && !program.passed ? `; ${program.failure.split("\n")[0].slice(0, 140)}` : ""}`;
}
