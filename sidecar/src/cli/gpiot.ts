/**
 * `gpiot`: the headless command line on the same engine the sidecar serves.
 *
 * Exit codes: 0 done; 1 the job failed (model or generation); 2 usage error (a flag, or a context
 * too small for the prompts); 3 the requirement or constraints were rejected; 4 the output folder
 * cannot be used (exists and is not GPIoT's to replace, changed files not confirmed, a forbidden
 * or unwritable folder); 5 the model could not be loaded (or the requested GPU is missing); 6 the
 * program was written but its verification failed (--verify); 130 interrupted.
 *
 * Everything that can be checked without a model (flags, requirement, context size, output
 * folder, the questions to the user) is settled before any model is loaded.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { JobEvent, OverwriteMode } from "../protocol";
import { EngineSettingsSchema, type EngineSettingsInput } from "../settings";
import { ENGINE_VERSION, SynthesisEngine, checkSynthesisRequest, toErrorInfo, type SynthesisCheck } from "../engine/engine";
import { OutputFolderError } from "../pipeline/outputFolder";
import { askYesNo } from "./askYesNo";
import { ProgressDisplay } from "./progressDisplay";
import { modelsCommand } from "./modelsCommand";
import type { VerifyRequest } from "../verify/report";
import { askRunConsent, describeVerifyEvent, parseInputPairs } from "../verify/cliSupport";
import { benchCommand } from "./benchCommand";
import { dataCommand } from "./dataCommand";
import { trainCommand } from "./trainCommand";
import { indexCommand } from "./indexCommand";
import { backendSettings, REMOTE_OPTIONS, REMOTE_USAGE } from "./remoteOptions";

const USAGE = `gpiot ${ENGINE_VERSION} - turn an IoT requirement into a Python program with local models

Usage:
  gpiot synthesize "<requirement>" --out DIR [options]
  gpiot synthesize --file REQUIREMENT.txt --out DIR [options]
  gpiot models list|pull|remove|fit|import-peft ...   (gpiot models --help)
  gpiot bench [--profile NAME | --model FILE] [--tasks a,b] [--k N] [--out DIR]   (gpiot bench --help)
  gpiot data tdd|cgd|import|stats ...   training data for the TD, RT and CG models   (gpiot data --help)
  gpiot train RECORDS.jsonl --base HF_MODEL_DIR --out RUN_DIR [options]   (gpiot train --help)
  gpiot index add|list|remove|rebuild|search ...   your documents for retrieval   (gpiot index --help)
  gpiot --help | --version

Synthesize options:
  -o, --out DIR            folder to write the program into (new or empty; never /, your home folder,
                           the current folder or a repository root)
  -c, --constraints TEXT   resource constraints, e.g. "Jetson Nano, <= 200 MB RAM, <= 10 ms per window"
  -f, --file FILE          read the requirement from FILE ("-" for standard input)
  -m, --model FILE         one GGUF model for all three roles (no adapters)
  -p, --profile NAME       a profile of the models manifest (default: the manifest's default)
      --manifest FILE      a models manifest other than the shipped models/manifest.json
      --models-dir DIR     where downloaded models live (default: ~/.cache/gpiot/models or $GPIOT_MODELS_DIR)
      --offline            never open a network connection
      --overwrite          the output folder may hold a program GPIoT wrote before: its files are
                           replaced, files you added are kept; if you changed some of GPIoT's files
                           you are asked (or pass --yes). A folder GPIoT did not write is never replaced
      --threads N          CPU threads (default: the profile's, else all available cores)
      --gpu MODE           auto | cpu | cuda | vulkan | metal (default: auto)
      --context-size N     context size per role
      --temperature T      0 = greedy and reproducible (default), higher samples
      --seed N             sampling seed
      --json               print every event as one JSON line on stdout
  -q, --quiet              no progress display on stderr
      --verify             check the program, run it in a sandbox on sample inputs, repair failing sub-tasks
      --repair-rounds N    repair rounds after a failed check (default 3; 0 = check only)
  -y, --yes                yes to the questions the other flags open: run the generated program (--verify;
                           else asked, without a terminal: static checks only) and replace GPIoT's files
                           you changed (--overwrite; else asked, without a terminal: exit 4)
      --input NAME=VALUE   a value for a program input in the check run (repeatable; JSON or text)
      --data FILE          a data file for the program's path-like inputs in the check run
      --python PATH        the Python interpreter (environment) to check and run the program with
      --no-retrieval       no passages from the retrieval index (gpiot index) in the RT and CG prompts
      --k N                passages per prompt (default 4)
      --sources A,B        retrieve only from these index sources (ids or paths; default: all)
      --index-dir DIR      the retrieval index (default: $GPIOT_INDEX_DIR or the per-user data folder)
      --embedding-model FILE  a GGUF embedding model instead of the profile's

${REMOTE_USAGE}

Exit codes: 0 done, 1 job failed, 2 usage (or --context-size too small), 3 requirement rejected,
4 output folder cannot be used, 5 model failed to load (or the GPU asked for is missing; with
--backend openai: the server cannot be reached, refuses the API key, lacks the model or adapter,
or has no JSON-schema output), 6 program written but its verification failed, 130 interrupted.
`;

class UsageError extends Error {}

const exitCodeForError: Record<string, number> = {
  REQUIREMENT_EMPTY: 3,
  REQUIREMENT_TOO_LONG: 3,
  NOTHING_TO_BUILD: 3,
  CONSTRAINTS_TOO_LONG: 3,
  CONSTRAINTS_INVALID: 3,
  CONTEXT_TOO_SMALL: 2,
  OUTPUT_EXISTS: 4,
  OUTPUT_FILES_CHANGED: 4,
  OUTPUT_FORBIDDEN: 4,
  OUTPUT_UNWRITABLE: 4,
  GPU_UNAVAILABLE: 5,
  MODEL_NOT_FOUND: 5,
  MODEL_INVALID: 5,
  ADAPTER_MISMATCH: 5,
  MODEL_LOAD_FAILED: 5,
  MANIFEST_INVALID: 5,
  REMOTE_UNREACHABLE: 5,
  REMOTE_UNAUTHORIZED: 5,
  REMOTE_MODEL_NOT_FOUND: 5,
  REMOTE_SCHEMA_UNSUPPORTED: 5,
  CANCELLED: 130,
};

/** What the job is about to load or reach: the local models, and the server of any remote role. */
function loadingNote(settings: EngineSettingsInput): string {
  const remoteRoles = Object.entries(settings.remote?.roles ?? {}).filter(([, endpoint]) => endpoint);
  const servers = [...new Set(remoteRoles.map(([, endpoint]) => endpoint!.baseUrl))].join(", ");
  if (remoteRoles.length === 3) return `Connecting to ${servers}`;
  const local = `Loading models (${settings.modelPath ? path.basename(settings.modelPath) : `profile ${settings.profile ?? "default"}`})`;
  return remoteRoles.length ? `${local}; ${remoteRoles.map(([role]) => role.toUpperCase()).join(", ")} on ${servers}` : local;
}

function engineSettings(values: Record<string, string | boolean | string[] | undefined>): EngineSettingsInput {
  const number = (name: string) => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const parsed = Number(raw);
    if (!Number.isFinite(parsed)) throw new UsageError(`--${name} expects a number, got "${raw}"`);
    return parsed;
  };
  const gpu = values.gpu as string | undefined;
  if (gpu !== undefined && !["auto", "cpu", "cuda", "vulkan", "metal"].includes(gpu)) throw new UsageError(`--gpu expects auto, cpu, cuda, vulkan or metal, got "${gpu}"`);
  const backend = backendSettings(values, (message) => {
    throw new UsageError(message);
  });
  const settings = EngineSettingsSchema.safeParse({
    ...backend,
    threads: number("threads"),
    gpu: gpu === undefined ? undefined : gpu === "cpu" ? false : gpu,
    contextSize: number("context-size"),
    temperature: number("temperature"),
    seed: number("seed"),
    manifestPath: values.manifest,
    ...(values.offline ? { offline: true } : {}),
    ...(values["models-dir"] ? { modelsDir: values["models-dir"] } : {}),
    profile: values.profile,
    modelPath: values.model,
    retrieval: {
      ...(values["no-retrieval"] ? { enabled: false } : {}),
      ...(values.k !== undefined ? { k: number("k") } : {}),
      ...(typeof values.sources === "string" ? { sources: values.sources.split(",").map((source) => source.trim()).filter(Boolean) } : {}),
      ...(typeof values["index-dir"] === "string" ? { indexDir: path.resolve(values["index-dir"]) } : {}),
      ...(typeof values["embedding-model"] === "string" ? { embeddingModelPath: path.resolve(values["embedding-model"]) } : {}),
      // Sources added as a workspace are used when synthesizing inside that folder.
      workspaceFolders: [process.cwd()],
    },
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
      offline: { type: "boolean" },
      "models-dir": { type: "string" },
      overwrite: { type: "boolean" },
      threads: { type: "string" },
      gpu: { type: "string" },
      "context-size": { type: "string" },
      temperature: { type: "string" },
      seed: { type: "string" },
      json: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
      verify: { type: "boolean" },
      "repair-rounds": { type: "string" },
      yes: { type: "boolean", short: "y" },
      input: { type: "string", multiple: true },
      data: { type: "string" },
      python: { type: "string" },
      "no-retrieval": { type: "boolean" },
      k: { type: "string" },
      sources: { type: "string" },
      "index-dir": { type: "string" },
      "embedding-model": { type: "string" },
      ...REMOTE_OPTIONS,
    },
  });
  if (!values.out) throw new UsageError("--out DIR is required: the folder to write the program into");
  if (values.model && values.profile) throw new UsageError("use either --model or --profile, not both");
  const requirement = readRequirement(positionals, values.file);
  const settings = engineSettings(values as Record<string, string | boolean | string[] | undefined>);
  let overwrite: OverwriteMode;
  try {
    overwrite = await settleOutputFolder(settings, { requirement, constraints: values.constraints, outDir: values.out, overwrite: values.overwrite ? "ownFiles" : "never" }, values.yes === true);
  } catch (error) {
    if (values.json) process.stdout.write(`${JSON.stringify({ type: "error", error: toErrorInfo(error) })}\n`);
    throw error;
  }
  const verifyRequest = await verifyOptions(values, settings);
  const display = new ProgressDisplay(process.stderr, { enabled: !values.quiet });
  const engine = new SynthesisEngine(settings, { log: (level, message) => (level === "error" || level === "warn" ? display.note(message) : undefined) });
  let exitCode: number;
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
    const done = new Promise<JobEvent>((resolve) => {
      engine.onJobEvent((event) => {
        if (values.json) process.stdout.write(`${JSON.stringify(event)}\n`);
        display.job(event);
        const verifyLine = describeVerifyEvent(event);
        if (verifyLine && !values.json) display.note(verifyLine);
        if ((event.type === "jobFinished" || event.type === "jobFailed") && event.jobId === jobId) resolve(event);
      });
    });
    // The job loads the models (Ctrl+C cancels the load too) once the request has passed its checks.
    jobId = engine.synthesize({ requirement, constraints: values.constraints, outDir: values.out, overwrite, ...(verifyRequest ? { verify: verifyRequest } : {}) }).jobId;
    display.note(loadingNote(settings));
    const last = await done;
    if (last.type === "jobFinished") {
      if (!values.json) process.stdout.write(`${last.outDir}\n`);
      exitCode = last.verification?.status === "failed" ? 6 : 0;
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

/**
 * Checks the request as the engine will, and asks the questions the output folder raises: whether
 * to replace a program GPIoT wrote before (asked unless --overwrite), and whether to replace GPIoT's
 * files the user changed (asked unless --overwrite --yes). Returns the overwrite answer; throws the
 * check's error when the answer is no or cannot be asked.
 */
async function settleOutputFolder(settings: EngineSettingsInput, request: SynthesisCheck & { overwrite: OverwriteMode }, yes: boolean): Promise<OverwriteMode> {
  let overwrite = request.overwrite;
  for (;;) {
    try {
      checkSynthesisRequest(settings, { ...request, overwrite });
      return overwrite;
    } catch (error) {
      const allowWith = error instanceof OutputFolderError ? error.output.allowWith : undefined;
      if (!allowWith || allowWith === overwrite) throw error;
      if (allowWith === "all" && overwrite === "ownFiles" && yes) {
        overwrite = "all";
        continue;
      }
      const folder = path.resolve(request.outDir!);
      const question =
        allowWith === "ownFiles"
          ? `${folder} holds a program GPIoT wrote before. Replace GPIoT's files in it with the new program (files you added are kept)?`
          : `You changed files GPIoT wrote in ${folder}: ${(error as OutputFolderError).output.changedFiles?.join(", ")}. Replace them with the new program's (files you added are kept)?`;
      if (!(await askYesNo(question))) throw error;
      overwrite = allowWith;
    }
  }
}

/** The verify request of `--verify` and its options; asks for consent to run the program unless `--yes`. */
async function verifyOptions(values: Record<string, string | boolean | string[] | undefined>, settings: EngineSettingsInput): Promise<VerifyRequest | undefined> {
  if (!values.verify) {
    const stray = ["repair-rounds", "yes", "input", "data", "python"].find((name) => values[name] !== undefined && !(name === "yes" && values.overwrite));
    if (stray) throw new UsageError(`--${stray} goes with --verify${stray === "yes" ? " or --overwrite" : ""}`);
    return undefined;
  }
  let repairRounds: number | undefined;
  if (values["repair-rounds"] !== undefined) {
    repairRounds = Number(values["repair-rounds"]);
    if (!Number.isInteger(repairRounds) || repairRounds < 0 || repairRounds > 10) throw new UsageError(`--repair-rounds expects a whole number from 0 to 10, got "${values["repair-rounds"]}"`);
  }
  let inputs: Record<string, unknown> | undefined;
  try {
    inputs = values.input ? parseInputPairs(values.input as string[]) : undefined;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (typeof values.python === "string") settings.verify = { ...settings.verify, pythonPath: values.python };
  const consent = await askRunConsent({ python: settings.verify?.pythonPath ?? settings.python ?? "python3", isolation: settings.verify?.isolation, assumeYes: values.yes === true, quiet: values.quiet === true, write: (text) => process.stderr.write(text) });
  return { execute: consent, consent, ...(repairRounds !== undefined ? { repairRounds } : {}), ...(inputs ? { inputs } : {}), ...(typeof values.data === "string" ? { dataFile: path.resolve(values.data) } : {}) };
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
    // `gpiot bench`, `gpiot models`, `gpiot data` and `gpiot train` have their own --help.
    if (command === "bench") return await benchCommand(rest);
    if (command === "models") return await modelsCommand(rest);
    if (command === "data") return await dataCommand(rest);
    if (command === "train") return await trainCommand(rest);
    if (command === "index") return await indexCommand(rest);
    if (rest.includes("--help") || rest.includes("-h")) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (command === "synthesize") return await synthesize(rest);
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
