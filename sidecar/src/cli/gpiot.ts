/**
 * `gpiot`: the headless command line on the same engine the sidecar serves.
 *
 * Exit codes: 0 done; 1 the job failed (model or generation); 2 usage error; 3 the requirement
 * was rejected; 4 the output folder exists; 5 the model could not be loaded; 130 interrupted.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { JobEvent } from "../protocol";
import { EngineSettingsSchema, type EngineSettingsInput } from "../settings";
import { ENGINE_VERSION, SynthesisEngine, toErrorInfo } from "../engine/engine";
import { ProgressDisplay } from "./progressDisplay";

const USAGE = `gpiot ${ENGINE_VERSION} - turn an IoT requirement into a Python program with local models

Usage:
  gpiot synthesize "<requirement>" --out DIR [options]
  gpiot synthesize --file REQUIREMENT.txt --out DIR [options]
  gpiot models list [--manifest FILE]
  gpiot --help | --version

Synthesize options:
  -o, --out DIR            folder to write the program into (must not exist or be empty)
  -c, --constraints TEXT   resource constraints, e.g. "Jetson Nano, <= 200 MB RAM, <= 10 ms per window"
  -f, --file FILE          read the requirement from FILE ("-" for standard input)
  -m, --model FILE         one GGUF model for all three roles (no adapters)
  -p, --profile NAME       a profile of the models manifest (default: the manifest's default)
      --manifest FILE      a models manifest other than the shipped models/manifest.json
      --overwrite          replace the output folder if it exists
      --threads N          CPU threads (default: the profile's, else all available cores)
      --gpu MODE           auto | cpu | cuda | vulkan | metal (default: auto)
      --context-size N     context size per role
      --temperature T      0 = greedy and reproducible (default), higher samples
      --seed N             sampling seed
      --json               print every event as one JSON line on stdout
  -q, --quiet              no progress display on stderr

Exit codes: 0 done, 1 job failed, 2 usage, 3 requirement rejected, 4 output exists, 5 model failed to load, 130 interrupted.
`;

class UsageError extends Error {}

const exitCodeForError: Record<string, number> = {
  REQUIREMENT_EMPTY: 3,
  REQUIREMENT_TOO_LONG: 3,
  NOTHING_TO_BUILD: 3,
  CONSTRAINTS_TOO_LONG: 3,
  OUTPUT_EXISTS: 4,
  MODEL_NOT_FOUND: 5,
  MODEL_INVALID: 5,
  ADAPTER_MISMATCH: 5,
  MODEL_LOAD_FAILED: 5,
  MANIFEST_INVALID: 5,
  CANCELLED: 130,
};

function engineSettings(values: Record<string, string | boolean | undefined>): EngineSettingsInput {
  const number = (name: string) => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const parsed = Number(raw);
    if (!Number.isFinite(parsed)) throw new UsageError(`--${name} expects a number, got "${raw}"`);
    return parsed;
  };
  const gpu = values.gpu as string | undefined;
  if (gpu !== undefined && !["auto", "cpu", "cuda", "vulkan", "metal"].includes(gpu)) throw new UsageError(`--gpu expects auto, cpu, cuda, vulkan or metal, got "${gpu}"`);
  const settings = EngineSettingsSchema.safeParse({
    threads: number("threads"),
    gpu: gpu === undefined ? undefined : gpu === "cpu" ? false : gpu,
    contextSize: number("context-size"),
    temperature: number("temperature"),
    seed: number("seed"),
    manifestPath: values.manifest,
    profile: values.profile,
    modelPath: values.model,
  });
  if (!settings.success) {
    const issue = settings.error.issues[0];
    throw new UsageError(`invalid option ${issue.path.join(".")}: ${issue.message}`);
  }
  return settings.data;
}

function readRequirement(positionals: string[], file: string | undefined): string {
  if (file !== undefined) {
    if (positionals.length) throw new UsageError("give the requirement either as an argument or with --file, not both");
    try {
      return readFileSync(file === "-" ? 0 : file, "utf8");
    } catch (error) {
      throw new UsageError(`cannot read the requirement from ${file}: ${(error as Error).message}`);
    }
  }
  if (positionals.length !== 1) throw new UsageError('give the requirement as one quoted argument: gpiot synthesize "<requirement>" --out DIR');
  return positionals[0];
}

async function synthesize(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: "string", short: "o" },
      constraints: { type: "string", short: "c" },
      file: { type: "string", short: "f" },
      model: { type: "string", short: "m" },
      profile: { type: "string", short: "p" },
      manifest: { type: "string" },
      overwrite: { type: "boolean" },
      threads: { type: "string" },
      gpu: { type: "string" },
      "context-size": { type: "string" },
      temperature: { type: "string" },
      seed: { type: "string" },
      json: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
    },
  });
  if (!values.out) throw new UsageError("--out DIR is required: the folder to write the program into");
  if (values.model && values.profile) throw new UsageError("use either --model or --profile, not both");
  const requirement = readRequirement(positionals, values.file);
  const settings = engineSettings(values);
  const display = new ProgressDisplay(process.stderr, { enabled: !values.quiet });
  const engine = new SynthesisEngine(settings, { log: (level, message) => (level === "error" || level === "warn" ? display.note(message) : undefined) });
  let exitCode = 1;
  let interrupted = false;
  let jobId: string | null = null;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    display.note("Interrupted: cancelling (press Ctrl+C again to quit at once)");
    if (jobId) engine.cancel(jobId);
  };
  process.on("SIGINT", onSigint);
  try {
    engine.onModelEvent((event) => display.model(event));
    display.note(`Loading models (${settings.modelPath ? path.basename(settings.modelPath) : `profile ${settings.profile ?? "default"}`})`);
    await engine.loadModels({});
    if (interrupted) return 130;
    const done = new Promise<JobEvent>((resolve) => {
      engine.onJobEvent((event) => {
        if (values.json) process.stdout.write(`${JSON.stringify(event)}\n`);
        display.job(event);
        if ((event.type === "jobFinished" || event.type === "jobFailed") && event.jobId === jobId) resolve(event);
      });
    });
    jobId = engine.synthesize({ requirement, constraints: values.constraints, outDir: values.out, overwrite: values.overwrite ?? false }).jobId;
    const last = await done;
    if (last.type === "jobFinished") {
      if (!values.json) process.stdout.write(`${last.outDir}\n`);
      exitCode = 0;
    } else {
      exitCode = last.type === "jobFailed" ? (exitCodeForError[last.error.code] ?? 1) : 1;
    }
  } catch (error) {
    const info = toErrorInfo(error);
    display.error(info.message);
    if (values.json) process.stdout.write(`${JSON.stringify({ type: "error", error: info })}\n`);
    exitCode = exitCodeForError[info.code] ?? 1;
  } finally {
    process.off("SIGINT", onSigint);
    display.finish();
    await engine.dispose();
  }
  return exitCode;
}

async function models(args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand !== "list") throw new UsageError(`unknown models command "${subcommand ?? ""}"; try: gpiot models list`);
  const { values } = parseArgs({ args: rest, options: { manifest: { type: "string" }, json: { type: "boolean" } } });
  const engine = new SynthesisEngine(engineSettings(values));
  try {
    const list = engine.listProfiles();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    } else {
      process.stdout.write(`Manifest: ${list.manifestPath}\n`);
      for (const profile of list.profiles) {
        const mark = profile.name === list.defaultProfile ? "*" : " ";
        process.stdout.write(`${mark} ${profile.name.padEnd(12)} ${profile.available ? "ready  " : "missing"}  ${profile.description}\n`);
        for (const missing of profile.missing) process.stdout.write(`      missing: ${missing}\n`);
      }
    }
    return 0;
  } finally {
    await engine.dispose();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === "--help" || command === "-h" || command === "help") {
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command === "--version" || command === "-v") {
      process.stdout.write(`${ENGINE_VERSION}\n`);
      return 0;
    }
    if (rest.includes("--help") || rest.includes("-h")) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (command === "synthesize") return await synthesize(rest);
    if (command === "models") return await models(rest);
    throw new UsageError(`unknown command "${command}"`);
  } catch (error) {
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith?.("ERR_PARSE_ARGS")) {
      process.stderr.write(`gpiot: ${(error as Error).message}\nRun "gpiot --help" for usage.\n`);
      return 2;
    }
    const info = toErrorInfo(error);
    process.stderr.write(`gpiot: ${info.message}\n`);
    return exitCodeForError[info.code] ?? 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
