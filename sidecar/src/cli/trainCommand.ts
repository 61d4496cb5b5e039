/**
 * `gpiot train`: tune the role models on training records (per-role LoRA or PECT co-tuning), then
 * export them as GGUF adapters with a profile, evaluate them on held-out records and write a report.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { defaultManifestPath, loadManifest, ManifestError, PROFILE_NAME_PATTERN } from "../models/manifest";
import { evaluateGenerations, type RunEvaluation } from "../train/evaluateRun";
import { checkGgufMatchesHfBase, exportRun, readRunFile, type ExportResult } from "../train/exportRun";
import { checkTrainingEnvironment, resolveTrainingPython, runTrainer, TrainingSetupError } from "../train/pythonTrainer";
import { buildReport, writeReport } from "../train/runReport";
import { TrainExitCode, type TrainEvent, type TrainEventOf } from "../train/trainEvents";
import { TrainProgress } from "../train/trainProgress";

export const TRAIN_USAGE = `gpiot train - tune the role models: per-role LoRA, or PECT co-tuning of TD and CG

Usage:
  gpiot train RECORDS.jsonl --base HF_MODEL_DIR --out RUN_DIR [options]   train, export, evaluate, report
  gpiot train --resume RUN_DIR [--gguf-base FILE] [--name NAME]           continue a stopped run
  gpiot train export RUN_DIR [--gguf-base FILE] [--name NAME]             export a finished run again
  gpiot train tiny-base OUT_DIR                                           a tiny random llama to try it on a CPU

Then: gpiot synthesize "<requirement>" --out DIR --profile NAME

Model and export:
      --base DIR             the base model: a Hugging Face llama folder (config.json, *.safetensors, tokenizer)
      --gguf-base FILE       the GGUF file of the same base, which the profile runs on (default: GPIoT converts
                             a small base itself; a 7B-13B base needs its published GGUF)
      --name NAME            profile name (default: the run folder's name)
      --out DIR              the run folder (must not exist or be empty)
      --profiles-dir DIR     where trained profiles go (default: $GPIOT_PROFILES_DIR or ~/.config/gpiot/profiles;
                             synthesize and the extension look there, or where GPIOT_PROFILES_DIR says)
      --manifest FILE        the models manifest whose profile names a run may not take
Tuning:
      --mode pect|lora       pect (default): TD and CG co-tuned on one base; lora: one adapter per role
      --roles td,cg          roles to train (lora default: the roles in the records; pect: td,cg)
      --rank N               rank of each role's LoRA path (16)
      --alpha A              LoRA alpha of the role paths (32)
      --targets LIST         modules with role paths (q_proj,k_proj,v_proj,o_proj; also gate_proj,up_proj,down_proj)
      --shared-rank N        rank of PECT's shared path beside W_k and W_v (16; 0: none)
      --shared-alpha A       its alpha (32)
      --lambda L             weight of the shared path for TD; CG gets 1 - L (0.5)
      --gamma G              weight of the cross-path SwiGLU projections (0: off, the default; see the README)
      --cross-dim N          inner width of each cross projection (32)
      --dropout P            LoRA dropout (0.05)
Optimisation:
      --epochs N (3)  --max-steps N  --batch-size N (4)  --grad-accum N (1)  --lr X (2e-4)  --warmup-ratio X (0.03)
      --max-length N         tokens per record; longer records are cut (2048)
      --seed N               seed of initialisation, data order and dropout (42)
      --save-every N         checkpoint every N steps as well as every epoch
Hardware:
      --device auto|cpu|cuda --dtype auto|float32|bfloat16|float16 --quantize 8bit|4bit
      --gradient-checkpointing   --threads N   --no-fit-check (skip the memory estimate)
      --python PATH          the Python interpreter with the training packages (default: training/.venv, else python3)
Evaluation and output:
      --eval-samples N       held-out records per role answered without a grammar (8)
      --eval-max-tokens N    their answer length limit (256)
      --json                 print every trainer event as one JSON line on stdout
  -q, --quiet                no progress on stderr

Exit codes: 0 done, 1 failed, 2 usage or invalid records, 4 run folder exists, 5 base model or GGUF base problem,
7 no Python training environment, 8 does not fit the device, 130 interrupted (a checkpoint is kept: --resume).
`;

class TrainUsageError extends Error {}

const numberOptions: Record<string, { key: string; integer: boolean; min?: number }> = {
  rank: { key: "rank", integer: true, min: 1 },
  alpha: { key: "alpha", integer: false, min: 0 },
  "shared-rank": { key: "shared_rank", integer: true, min: 0 },
  "shared-alpha": { key: "shared_alpha", integer: false, min: 0 },
  lambda: { key: "lam", integer: false, min: 0 },
  gamma: { key: "gamma", integer: false, min: 0 },
  "cross-dim": { key: "cross_dim", integer: true, min: 1 },
  dropout: { key: "dropout", integer: false, min: 0 },
  epochs: { key: "epochs", integer: true, min: 1 },
  "max-steps": { key: "max_steps", integer: true, min: 1 },
  "batch-size": { key: "batch_size", integer: true, min: 1 },
  "grad-accum": { key: "grad_accum", integer: true, min: 1 },
  lr: { key: "lr", integer: false, min: 0 },
  "warmup-ratio": { key: "warmup_ratio", integer: false, min: 0 },
  "max-length": { key: "max_length", integer: true, min: 16 },
  seed: { key: "seed", integer: true, min: 0 },
  "save-every": { key: "save_every", integer: true, min: 0 },
  threads: { key: "threads", integer: true, min: 1 },
  "eval-samples": { key: "eval_samples", integer: true, min: 0 },
  "eval-max-tokens": { key: "eval_max_tokens", integer: true, min: 1 },
};

const stringOptions = ["base", "gguf-base", "name", "out", "profiles-dir", "manifest", "mode", "roles", "targets", "shared-targets", "device", "dtype", "quantize", "python", "resume", "base-name"] as const;

function options() {
  const result: Record<string, { type: "string" | "boolean"; short?: string }> = { json: { type: "boolean" }, quiet: { type: "boolean", short: "q" }, "gradient-checkpointing": { type: "boolean" }, "no-fit-check": { type: "boolean" }, help: { type: "boolean", short: "h" } };
  for (const name of stringOptions) result[name] = { type: "string" };
  for (const name of Object.keys(numberOptions)) result[name] = { type: "string" };
  return result;
}

function list(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(",").map((item) => item.trim()).filter(Boolean);
}

/** The trainer's settings from the command line; unset values keep the trainer's defaults. */
export function trainerSettings(values: Record<string, string | boolean | undefined>, records: string, out: string): Record<string, unknown> {
  const settings: Record<string, unknown> = { records: path.resolve(records), base: path.resolve(String(values.base)), out: path.resolve(out) };
  for (const [name, spec] of Object.entries(numberOptions)) {
    const raw = values[name];
    if (raw === undefined) continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || (spec.integer && !Number.isInteger(value)) || (spec.min !== undefined && value < spec.min))
      throw new TrainUsageError(`--${name} expects ${spec.integer ? "a whole number" : "a number"}${spec.min !== undefined ? ` of at least ${spec.min}` : ""}, got "${raw}"`);
    settings[spec.key] = value;
  }
  if (values.lambda !== undefined && Number(values.lambda) > 1) throw new TrainUsageError(`--lambda is a weight between 0 and 1, got "${values.lambda}"`);
  const choice = (name: string, allowed: string[]) => {
    const value = values[name];
    if (value === undefined) return undefined;
    if (!allowed.includes(String(value))) throw new TrainUsageError(`--${name} expects ${allowed.join(", ")}, got "${value}"`);
    return String(value);
  };
  const mode = choice("mode", ["pect", "lora"]);
  if (mode) settings.mode = mode;
  const device = choice("device", ["auto", "cpu", "cuda"]);
  if (device) settings.device = device;
  const dtype = choice("dtype", ["auto", "float32", "bfloat16", "float16"]);
  if (dtype) settings.dtype = dtype;
  const quantize = choice("quantize", ["8bit", "4bit"]);
  if (quantize) settings.quantize = quantize;
  const roles = list(values.roles as string | undefined);
  if (roles) {
    for (const role of roles) if (!["td", "rt", "cg"].includes(role)) throw new TrainUsageError(`--roles takes td, rt and cg, got "${role}"`);
    settings.roles = roles;
  }
  const targets = list(values.targets as string | undefined);
  if (targets) settings.targets = targets;
  const sharedTargets = list(values["shared-targets"] as string | undefined);
  if (sharedTargets) settings.shared_targets = sharedTargets;
  if (values["gradient-checkpointing"]) settings.gradient_checkpointing = true;
  if (values["no-fit-check"]) settings.fit_check = false;
  if (values["base-name"]) settings.base_name = values["base-name"];
  return settings;
}

function checkName(name: string, manifestPath: string): void {
  if (!PROFILE_NAME_PATTERN.test(name)) throw new TrainUsageError(`"${name}" cannot be a profile name: use letters, digits, ".", "_" and "-" (set one with --name)`);
  const manifest = loadManifest(manifestPath, { profilesDir: false });
  if (manifest.profiles.has(name)) throw new TrainUsageError(`the profile name "${name}" is taken by ${manifestPath}; choose another with --name`);
}

interface Session {
  progress: TrainProgress;
  json: boolean;
  start?: TrainEventOf<"start">;
  fit?: string;
}

function onTrainerEvent(session: Session) {
  return (event: TrainEvent) => {
    if (session.json) process.stdout.write(`${JSON.stringify(event)}\n`);
    if (event.event === "start") session.start = event;
    if (event.event === "fit") session.fit = event.summary;
    session.progress.event(event);
  };
}

async function finishRun(runDir: string, session: Session, values: Record<string, string | boolean | undefined>, manifestPath: string): Promise<number> {
  const startFile = path.join(runDir, "start.json");
  if (session.start) writeFileSync(startFile, `${JSON.stringify({ ...session.start, fit: session.fit }, null, 2)}\n`);
  else if (existsSync(startFile)) {
    const saved = JSON.parse(readFileSync(startFile, "utf8"));
    session.start = saved;
    session.fit = saved.fit;
  }
  const run = readRunFile(runDir);
  const name = (values.name as string | undefined) ?? path.basename(runDir);
  checkName(name, manifestPath);
  const exported: ExportResult = await exportRun({
    runDir,
    ggufBase: values["gguf-base"] as string | undefined,
    name,
    profilesDir: values["profiles-dir"] as string | undefined,
    manifestPath,
    reportPath: path.join(runDir, "report.html"),
    onNote: (message) => session.progress.note(message),
  });
  let evaluation: RunEvaluation | undefined;
  const generations = path.join(runDir, "eval", "generations.json");
  if (existsSync(generations)) evaluation = await evaluateGenerations(generations);
  if (!session.start) throw new TrainingSetupError(TrainExitCode.failed, `${runDir} has no record of its start (start.json); train it with gpiot train first.`);
  const report = buildReport(runDir, session.start, run as Record<string, unknown>, session.fit, evaluation, exported);
  const files = writeReport(runDir, report);
  const { progress } = session;
  if (report.lossDrop) progress.note(`Training loss ${report.lossDrop.firstMean.toFixed(4)} → ${report.lossDrop.lastMean.toFixed(4)} (×${report.lossDrop.ratio.toFixed(3)})`);
  if (report.crossAblation) progress.note(`Validation loss ${report.crossAblation.withCross.toFixed(4)} with the cross projections, ${report.crossAblation.withoutCross.toFixed(4)} without (as exported)`);
  for (const [variant, roles] of Object.entries(evaluation?.variants ?? {}))
    for (const [role, value] of Object.entries(roles))
      progress.note(
        `Held-out ${role.toUpperCase()} (${variant}), no grammar: ${value!.formatCorrect}/${value!.samples} format-correct${value!.bleu !== undefined ? `, BLEU ${value!.bleu.toFixed(3)}` : ""}${value!.compiles !== undefined ? `, ${value!.compiles} compile` : ""}`,
      );
  progress.note(`Profile "${exported.profile}" written to ${exported.profilePath}`);
  progress.note(`Report: ${files.html}`);
  progress.note(`Use it: gpiot synthesize "<requirement>" --out DIR --profile ${exported.profile}`);
  if (session.json) process.stdout.write(`${JSON.stringify({ event: "exportedProfile", ...exported, report: files.json })}\n`);
  else process.stdout.write(`${exported.profile}\n`);
  return TrainExitCode.ok;
}

async function train(values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number> {
  const session: Session = { progress: new TrainProgress(process.stderr, !values.quiet), json: Boolean(values.json) };
  const manifestPath = path.resolve((values.manifest as string | undefined) ?? defaultManifestPath());
  const resume = values.resume as string | undefined;
  const python = resolveTrainingPython(values.python as string | undefined);
  let runDir: string;
  let args: string[];
  let createdRunDir = false;
  if (resume) {
    if (positionals.length) throw new TrainUsageError("--resume RUN_DIR continues a run with its own settings: give no records file");
    runDir = path.resolve(resume);
    const run = readRunFile(runDir);
    if (values["gguf-base"]) await checkGgufMatchesHfBase(path.resolve(String(values["gguf-base"])), run.base);
    await checkTrainingEnvironment(python);
    const config = path.join(runDir, "resume-config.json");
    writeFileSync(config, JSON.stringify({ out: runDir, ...(values.threads ? { threads: Number(values.threads) } : {}) }));
    args = ["train", "--config", config, "--resume"];
  } else {
    if (positionals.length !== 1) throw new TrainUsageError("give one records file: gpiot train RECORDS.jsonl --base HF_MODEL_DIR --out RUN_DIR");
    if (!values.base) throw new TrainUsageError("--base HF_MODEL_DIR is required: the Hugging Face llama folder to tune");
    if (!values.out) throw new TrainUsageError("--out RUN_DIR is required: the folder the run is written into");
    const records = path.resolve(positionals[0]);
    if (!existsSync(records)) throw new TrainingSetupError(TrainExitCode.badInput, `The records file ${records} does not exist.`);
    const base = path.resolve(String(values.base));
    if (!existsSync(path.join(base, "config.json"))) throw new TrainingSetupError(TrainExitCode.model, `${base} is not a Hugging Face model folder (no config.json).`);
    runDir = path.resolve(String(values.out));
    if (existsSync(runDir) && readdirSync(runDir).length) throw new TrainingSetupError(TrainExitCode.outputExists, `The run folder ${runDir} already exists and is not empty: continue it with gpiot train --resume ${runDir}, or choose another --out.`);
    checkName((values.name as string | undefined) ?? path.basename(runDir), manifestPath);
    if (values["gguf-base"]) await checkGgufMatchesHfBase(path.resolve(String(values["gguf-base"])), base);
    const settings = trainerSettings(values, records, runDir);
    await checkTrainingEnvironment(python);
    createdRunDir = !existsSync(runDir);
    mkdirSync(runDir, { recursive: true });
    const config = path.join(runDir, "train-config.json");
    writeFileSync(config, `${JSON.stringify(settings, null, 2)}\n`);
    args = ["train", "--config", config];
  }
  const controller = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(TrainExitCode.interrupted);
    interrupted = true;
    session.progress.note("Interrupted: saving a checkpoint after this step (press Ctrl+C again to quit at once)");
    controller.abort();
  };
  process.on("SIGINT", onSigint);
  try {
    const result = await runTrainer(args, {
      python,
      signal: controller.signal,
      detached: true,
      onEvent: onTrainerEvent(session),
      onStderr: (line) => {
        if (/Traceback|Error|error:/.test(line)) session.progress.note(`trainer: ${line}`);
      },
    });
    session.progress.finish();
    if (result.exitCode !== 0) {
      if (result.error) session.progress.error(result.error.message);
      else if (result.exitCode !== TrainExitCode.interrupted) session.progress.error(`the trainer stopped with exit code ${result.exitCode}.\n${result.stderrTail.slice(-1500)}`);
      // A run that never started (bad records, no space, does not fit) leaves no folder behind.
      if (!existsSync(path.join(runDir, "run.json"))) {
        if (createdRunDir) rmSync(runDir, { recursive: true, force: true });
        else rmSync(path.join(runDir, "train-config.json"), { force: true });
      }
      return result.exitCode;
    }
    return await finishRun(runDir, session, values, manifestPath);
  } finally {
    process.off("SIGINT", onSigint);
    session.progress.finish();
  }
}

async function exportOnly(values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number> {
  if (positionals.length !== 1) throw new TrainUsageError("give the run folder: gpiot train export RUN_DIR");
  const session: Session = { progress: new TrainProgress(process.stderr, !values.quiet), json: Boolean(values.json) };
  const manifestPath = path.resolve((values.manifest as string | undefined) ?? defaultManifestPath());
  return finishRun(path.resolve(positionals[0]), session, values, manifestPath);
}

async function tinyBase(values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number> {
  if (positionals.length !== 1) throw new TrainUsageError("give the folder to write the tiny model into: gpiot train tiny-base OUT_DIR");
  const python = resolveTrainingPython(values.python as string | undefined);
  await checkTrainingEnvironment(python);
  const result = await runTrainer(["tiny-base", path.resolve(positionals[0])], { python });
  const made = result.events.find((event) => event.event === "tiny_base");
  if (result.exitCode !== 0 || !made) {
    process.stderr.write(`error: ${result.error?.message ?? result.stderrTail.slice(-1000)}\n`);
    return result.exitCode || TrainExitCode.failed;
  }
  process.stdout.write(`${path.resolve(positionals[0])}\n`);
  return TrainExitCode.ok;
}

export async function trainCommand(args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: options() as never });
    const flags = values as Record<string, string | boolean | undefined>;
    if (flags.help) {
      process.stdout.write(TRAIN_USAGE);
      return 0;
    }
    if (positionals[0] === "export") return await exportOnly(flags, positionals.slice(1));
    if (positionals[0] === "tiny-base") return await tinyBase(flags, positionals.slice(1));
    return await train(flags, positionals);
  } catch (error) {
    if (error instanceof TrainUsageError || (error as NodeJS.ErrnoException).code?.startsWith?.("ERR_PARSE_ARGS")) {
      process.stderr.write(`gpiot train: ${(error as Error).message}\nRun "gpiot train --help" for usage.\n`);
      return TrainExitCode.badInput;
    }
    if (error instanceof TrainingSetupError) {
      process.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof ManifestError) {
      process.stderr.write(`error: ${error.message}\n`);
      return TrainExitCode.badInput;
    }
    throw error;
  }
}
