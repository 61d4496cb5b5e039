/**
 * `gpiot bench`: runs IoT Bench (iotbench/) on model profiles, GGUF files, or the hand-written
 * solutions, and writes report.json and report.html. Running the bench runs the generated
 * programs (in the sandbox): invoking the command is the consent.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { runBench, type SystemSpec } from "../bench/harness";
import { formatTable, writeReports } from "../bench/report";
import { defaultBenchRoot } from "../bench/tasks";
import { EngineSettingsSchema, type EngineSettingsInput } from "../settings";
import { backendSettings, REMOTE_OPTIONS, REMOTE_USAGE } from "./remoteOptions";

const BENCH_USAGE = `gpiot bench - IoT Bench: synthesize programs for IoT tasks, run them in the sandbox, score them

Usage:
  gpiot bench [--profile NAME[,NAME] | --model FILE[,FILE]] [--solutions] [--tasks a,b] [--k N] [--out DIR]

Options:
  -p, --profile NAMES      model profile(s) of the manifest, comma-separated (default: the manifest's default)
  -m, --model FILES        GGUF model file(s) for all three roles, comma-separated
      --solutions          run the hand-written reference and broken solutions (alone, or besides models)
      --tasks IDS          tasks, comma-separated (default: all): ecg-heartbeat, imu-har, multimodal-har
      --k N                k of pass@k (default 1)
      --n N                programs per task and model (default: k; pass@k needs n >= k)
  -o, --out DIR            report folder (default: iotbench-results/<date-time>)
      --data TASK=DIR      the real dataset of a task in its own format (repeatable), e.g.
                           ecg-heartbeat=/data/mitdb, imu-har="/data/UCI HAR Dataset"
      --records N          ECG records to use (synthetic: to generate; real: the first N)
      --repair-rounds N    verify and repair each program while synthesizing (default 0: the raw model)
      --threads N          CPU threads for the models
      --temperature T      sampling temperature (default 0 for n = 1, else 0.8)
      --seed N             base seed; sample i uses seed + i (default 1000 when n > 1)
      --manifest FILE      a models manifest other than models/manifest.json
      --python PATH        the Python interpreter to run programs with (default python3)
      --bench-root DIR     an iotbench/ folder other than the shipped one
      --json               print report.json to stdout instead of the table
      --concurrency N      programs synthesized and scored at once (default 1); above 1 needs --backend openai
  -q, --quiet              no progress lines on stderr

${REMOTE_USAGE}

The bench runs generated programs in the sandbox (no network, read-only files, time and memory
limits where the OS allows it); running the command is your consent to that.
Exit codes: 0 done, 1 failed, 2 usage, 130 interrupted.
`;

class BenchUsageError extends Error {}

function positiveInteger(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new BenchUsageError(`--${name} expects a whole number >= ${min}, got "${raw}"`);
  return value;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:]/g, "").replace(/\..+$/, "").replace("T", "-");
}

export async function benchCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        profile: { type: "string", short: "p" },
        model: { type: "string", short: "m" },
        solutions: { type: "boolean" },
        tasks: { type: "string" },
        k: { type: "string" },
        n: { type: "string" },
        out: { type: "string", short: "o" },
        data: { type: "string", multiple: true },
        records: { type: "string" },
        "repair-rounds": { type: "string" },
        threads: { type: "string" },
        temperature: { type: "string" },
        seed: { type: "string" },
        manifest: { type: "string" },
        python: { type: "string" },
        "bench-root": { type: "string" },
        json: { type: "boolean" },
        quiet: { type: "boolean", short: "q" },
        help: { type: "boolean", short: "h" },
        concurrency: { type: "string" },
        ...REMOTE_OPTIONS,
      },
    }));
  } catch (error) {
    process.stderr.write(`gpiot bench: ${(error as Error).message}\nRun "gpiot bench --help" for usage.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(BENCH_USAGE);
    return 0;
  }
  const controller = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write("Interrupted: stopping after the current step (Ctrl+C again to quit at once)\n");
    controller.abort();
  };
  try {
    const k = positiveInteger("k", values.k, 1);
    const n = positiveInteger("n", values.n, k);
    if (n < k) throw new BenchUsageError(`--n (${n}) must be at least --k (${k})`);
    const records = values.records === undefined ? undefined : positiveInteger("records", values.records, 1);
    const repairRounds = positiveInteger("repair-rounds", values["repair-rounds"], 0, 0);
    const concurrency = positiveInteger("concurrency", values.concurrency, 1);
    const backend = backendSettings(values, (message) => {
      throw new BenchUsageError(message);
    });
    if (concurrency > 1 && !backend.remote) throw new BenchUsageError("--concurrency above 1 needs --backend openai: each concurrent program gets an engine of its own, and local models would be loaded once per program");
    if (values.profile && values.model) throw new BenchUsageError("use either --profile or --model, not both");
    const systems: SystemSpec[] = [];
    for (const profile of (values.profile ?? "").split(",").filter(Boolean)) systems.push({ kind: "profile", profile });
    for (const modelPath of (values.model ?? "").split(",").filter(Boolean)) systems.push({ kind: "model", modelPath: path.resolve(modelPath) });
    if (values.solutions) systems.push({ kind: "solutions" });
    const remoteEndpoints = Object.values(backend.remote?.roles ?? {}).filter((endpoint) => endpoint !== undefined);
    if (!systems.length && remoteEndpoints.length === 3) systems.push({ kind: "remote", label: `${remoteEndpoints[0].model}@${new URL(remoteEndpoints[0].baseUrl).host}` });
    if (!systems.length) systems.push({ kind: "profile", profile: "" });
    const dataPaths: Record<string, string> = {};
    for (const pair of values.data ?? []) {
      const at = pair.indexOf("=");
      if (at <= 0) throw new BenchUsageError(`--data expects TASK=DIR, got "${pair}"`);
      dataPaths[pair.slice(0, at)] = path.resolve(pair.slice(at + 1));
    }
    const temperature = values.temperature === undefined ? (n > 1 ? 0.8 : 0) : Number(values.temperature);
    const parsed = EngineSettingsSchema.safeParse({
      ...backend,
      threads: values.threads === undefined ? undefined : Number(values.threads),
      temperature,
      seed: values.seed === undefined ? undefined : Number(values.seed),
      manifestPath: values.manifest,
      python: values.python ?? "python3",
    });
    if (!parsed.success) throw new BenchUsageError(`invalid option ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`);
    const engineSettings: EngineSettingsInput = parsed.data;
    // An empty profile name means the manifest's default: resolve it through the engine.
    for (const system of systems) if (system.kind === "profile" && !system.profile) system.profile = await defaultProfile(engineSettings);
    const root = values["bench-root"] ? path.resolve(values["bench-root"]) : defaultBenchRoot();
    const outDir = path.resolve(values.out ?? path.join("iotbench-results", timestamp()));
    const log = (line: string) => {
      if (!values.quiet) process.stderr.write(`${line}\n`);
    };
    process.on("SIGINT", onSigint);
    const report = await runBench({
      root,
      outDir,
      taskIds: values.tasks?.split(",").filter(Boolean),
      systems,
      n,
      k,
      dataPaths,
      records,
      engineSettings,
      repairRounds,
      concurrency,
      verify: { python: parsed.data.verify.pythonPath ?? parsed.data.python, timeoutMs: parsed.data.verify.timeoutMs, memoryMB: parsed.data.verify.memoryMB },
      log,
      signal: controller.signal,
    });
    const written = await writeReports(report, outDir);
    if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(`${formatTable(report)}\n\nReport: ${written.html}\n        ${written.json}\n`);
    return 0;
  } catch (error) {
    if (interrupted) return 130;
    if (error instanceof BenchUsageError) {
      process.stderr.write(`gpiot bench: ${error.message}\nRun "gpiot bench --help" for usage.\n`);
      return 2;
    }
    process.stderr.write(`gpiot bench: ${(error as Error).message}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

async function defaultProfile(settings: EngineSettingsInput): Promise<string> {
  const { SynthesisEngine } = await import("../engine/engine");
  const engine = new SynthesisEngine(settings);
  try {
    return engine.listProfiles().defaultProfile;
  } finally {
    await engine.dispose();
  }
}
