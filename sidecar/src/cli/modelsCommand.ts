/**
 * `gpiot models ...`: list profiles and their files, pull (download with confirmation, progress,
 * resume and verification), remove, GPU fit, and PEFT → GGUF adapter conversion.
 */
import path from "node:path";
import { askYesNo } from "./askYesNo";
import { parseArgs } from "node:util";
import { SynthesisEngine, toErrorInfo } from "../engine/engine";
import { formatBytes } from "../models/gpuFit";
import { defaultManifestPath, defaultModelsDir, loadManifest, profileFiles } from "../models/manifest";
import type { PullPlan } from "../models/modelStore";
import { convertPeftToGguf } from "../peft/peftToGguf";
import { EngineSettingsSchema, type EngineSettings } from "../settings";

const MODELS_USAGE = `gpiot models - the model files of GPIoT's profiles

Usage:
  gpiot models list [PROFILE]             profiles, their files and whether they are on disk
  gpiot models pull [PROFILE] [--yes]     download (and convert) what a profile needs; asks first
  gpiot models remove PROFILE [--yes]     delete the profile's downloaded files
  gpiot models fit [PROFILE]              GPU fit: layers on the GPU and context per role, and why
  gpiot models import-peft DIR --base BASE.gguf --out ADAPTER.gguf
                                          convert a PEFT LoRA adapter (adapter_config.json +
                                          adapter_model.safetensors) for a llama base to GGUF

Options:
      --manifest FILE      a models manifest other than the shipped models/manifest.json
      --models-dir DIR     where downloads go (default: $GPIOT_MODELS_DIR or ${defaultModelsDir()})
      --endpoint URL       a Hugging Face mirror for hf: sources (default: https://huggingface.co/)
      --offline            never open a network connection (also: GPIOT_OFFLINE=1 or HF_HUB_OFFLINE=1)
      --timeout SECONDS    give up when the server sends nothing for this long (default 30;
                           connecting may take at most 10 s of it)
  -y, --yes                do not ask before downloading or deleting
      --gpu MODE           auto | cpu | cuda | vulkan | metal (fit)
      --gpu-layers N       fixed GPU layers instead of the planned ones (fit)
      --context-size N     fixed context size per role (fit)
      --json               machine-readable output on stdout
  -q, --quiet              no progress on stderr

A Hugging Face token for gated models is read from HF_TOKEN or ~/.cache/huggingface/token.
Interrupted downloads continue where they stopped on the next pull; Ctrl+C stops a pull at once.

Exit codes: 0 done, 1 failed (download, checksum, conversion), 2 usage or not confirmed,
5 model files missing, 9 refused because offline, 130 interrupted.
`;

class ModelsUsageError extends Error {}

const exitCodes = new Map<string, number>([
  ["INVALID_PARAMS", 2],
  ["MODEL_NOT_FOUND", 5],
  ["MODEL_INVALID", 5],
  ["MANIFEST_INVALID", 5],
  ["OFFLINE", 9],
  ["CANCELLED", 130],
]);

function envOffline(): boolean {
  return ["1", "true", "yes"].includes((process.env.GPIOT_OFFLINE ?? process.env.HF_HUB_OFFLINE ?? "").toLowerCase());
}

/** Option values as parseArgs returns them. */
type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

function settingsFrom(values: OptionValues): EngineSettings {
  const number = (name: string) => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const parsed = Number(raw);
    if (!Number.isInteger(parsed)) throw new ModelsUsageError(`--${name} expects a whole number, got "${raw}"`);
    return parsed;
  };
  let downloadTimeoutMs: number | undefined;
  if (values.timeout !== undefined) {
    const seconds = Number(values.timeout);
    if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 600) throw new ModelsUsageError(`--timeout expects seconds between 0.1 and 600, got "${values.timeout}"`);
    downloadTimeoutMs = Math.round(seconds * 1000);
  }
  const gpu = values.gpu as string | undefined;
  if (gpu !== undefined && !["auto", "cpu", "cuda", "vulkan", "metal"].includes(gpu)) throw new ModelsUsageError(`--gpu expects auto, cpu, cuda, vulkan or metal, got "${gpu}"`);
  const parsed = EngineSettingsSchema.safeParse({
    manifestPath: values.manifest,
    modelsDir: values["models-dir"] === undefined ? undefined : path.resolve(String(values["models-dir"])),
    downloadEndpoint: values.endpoint,
    downloadTimeoutMs,
    offline: values.offline === true || envOffline(),
    gpu: gpu === undefined ? undefined : gpu === "cpu" ? false : gpu,
    gpuLayers: number("gpu-layers"),
    contextSize: number("context-size"),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelsUsageError(`invalid option ${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

/** A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise. */
export class DownloadProgressBar {
  private lastStep = -1;
  private lastFile = "";
  private started = performance.now();
  private startBytes = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly enabled: boolean,
  ) {}

  update(file: string, phase: string, bytes: number, total: number): void {
    if (!this.enabled) return;
    const name = path.basename(file);
    if (name !== this.lastFile || phase !== "download") {
      if (name !== this.lastFile) {
        this.started = performance.now();
        this.startBytes = bytes;
      }
      this.lastFile = name;
    }
    const fraction = total > 0 ? Math.min(1, bytes / total) : 0;
    const seconds = (performance.now() - this.started) / 1000;
    const speed = seconds > 0.5 ? (bytes - this.startBytes) / seconds : 0;
    const label = phase === "verify" ? "checking" : phase === "convert" ? "converting" : "";
    if (this.stream.isTTY) {
      const width = 24;
      const filled = Math.round(fraction * width);
      const bar = `[${"=".repeat(filled)}${filled < width ? ">" : ""}${" ".repeat(Math.max(0, width - filled - 1))}]`;
      const sizes = total > 0 ? `${formatBytes(bytes)} / ${formatBytes(total)}` : formatBytes(bytes);
      const line = `${name} ${label || bar} ${label ? "" : `${Math.floor(fraction * 100)}% ${sizes}${speed ? ` ${formatBytes(speed)}/s` : ""}`}`;
      this.stream.write(`\r\x1b[K${line.slice(0, (this.stream.columns || 100) - 1)}`);
    } else {
      const step = phase === "download" ? Math.floor(fraction * 10) : -2;
      if (step === this.lastStep && phase === "download") return;
      this.lastStep = step;
      this.stream.write(label ? `${name}: ${label}\n` : `${name}: ${step * 10}% of ${total > 0 ? formatBytes(total) : "?"}\n`);
    }
  }

  done(message: string): void {
    if (!this.enabled) return;
    if (this.stream.isTTY) this.stream.write("\r\x1b[K");
    this.stream.write(`${message}\n`);
    this.lastStep = -1;
  }
}

function describePlan(plan: PullPlan): string[] {
  const lines: string[] = [];
  for (const item of plan.items) {
    const size = item.sizeBytes ?? item.approxSizeBytes;
    const sizeText = size ? `${item.sizeBytes ? "" : "about "}${formatBytes(size)}` : "size unknown";
    const what = item.action === "present" ? "present" : item.action === "download" ? `download ${item.source} (${sizeText}${item.sha256 ? ", SHA-256 checked" : ""}${item.resumable ? ", continues an interrupted download" : ""})` : `download PEFT adapter ${item.peft!.source} (${sizeText}) and convert it`;
    lines.push(`  ${item.kind}${item.roles.length ? ` ${item.roles.join("/")}` : ""}: ${item.path}\n      ${what}`);
  }
  return lines;
}

async function list(rest: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { manifest: { type: "string" }, "models-dir": { type: "string" }, json: { type: "boolean" } } });
  const settings = settingsFrom(values);
  const manifestPath = settings.manifestPath ? path.resolve(settings.manifestPath) : defaultManifestPath();
  const manifest = loadManifest(manifestPath);
  const modelsDir = settings.modelsDir ?? defaultModelsDir();
  const names = positionals.length ? positionals : [...manifest.profiles.keys()];
  const profiles = names.map((name) => {
    const { profile, files } = profileFiles(manifest, manifestPath, name, { modelsDir });
    return {
      name,
      default: name === manifest.defaultProfile,
      description: profile.description,
      available: files.every((file) => file.present),
      contextSize: profile.contextSize,
      minContextSize: profile.minContextSize,
      chatTemplate: profile.chatTemplate,
      notes: profile.notes,
      files: files.map((file) => ({ kind: file.kind, roles: file.roles, path: file.path, present: file.present, source: file.source ?? file.peft?.source, sizeBytes: file.sizeBytes, approxSizeBytes: file.approxSizeBytes, sha256: file.sha256 })),
    };
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ manifestPath, modelsDir, defaultProfile: manifest.defaultProfile, profiles }, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`Manifest: ${manifestPath}\nModels folder: ${modelsDir}\n`);
  for (const profile of profiles) {
    process.stdout.write(`${profile.default ? "*" : " "} ${profile.name.padEnd(10)} ${profile.available ? "ready  " : "missing"}  ${profile.description}\n`);
    const details = [profile.chatTemplate && `chat template ${profile.chatTemplate}`, profile.contextSize && `context ${profile.contextSize}${profile.minContextSize ? ` (at least ${profile.minContextSize})` : ""} per role`].filter(Boolean);
    if (details.length) process.stdout.write(`      ${details.join(", ")}\n`);
    for (const file of profile.files) {
      const size = file.sizeBytes ?? file.approxSizeBytes;
      process.stdout.write(`      ${file.present ? "[x]" : "[ ]"} ${file.kind}${file.roles.length ? ` ${file.roles.map((role) => role.toUpperCase()).join("/")}` : ""}: ${file.path}${!file.present && size ? ` (${file.sizeBytes ? "" : "about "}${formatBytes(size)})` : ""}\n`);
    }
    if (!profile.available) process.stdout.write(`      get it with: gpiot models pull ${profile.name}\n`);
  }
  return 0;
}

async function pull(rest: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      manifest: { type: "string" },
      "models-dir": { type: "string" },
      endpoint: { type: "string" },
      offline: { type: "boolean" },
      timeout: { type: "string" },
      yes: { type: "boolean", short: "y" },
      json: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
    },
  });
  if (positionals.length > 1) throw new ModelsUsageError("pull takes one profile name");
  const settings = settingsFrom(values);
  const engine = new SynthesisEngine(settings);
  const bar = new DownloadProgressBar(process.stderr, !values.quiet);
  let pullId: string | null = null;
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    bar.done("Interrupted: stopping the download; the next pull continues from here.");
    if (pullId) engine.modelManager.cancelPull(pullId);
  };
  try {
    const plan = engine.modelManager.plan(positionals[0]);
    const todo = plan.items.filter((item) => item.action !== "present");
    if (!values.quiet) {
      process.stderr.write(`Profile "${plan.profile}" into ${plan.modelsDir}:\n${describePlan(plan).join("\n")}\n`);
    }
    if (todo.length === 0) {
      if (!values.quiet) process.stderr.write("Everything is already there.\n");
      if (values.json) process.stdout.write(`${JSON.stringify({ profile: plan.profile, files: [] })}\n`);
      return 0;
    }
    if (settings.offline) {
      process.stderr.write(`gpiot: offline mode is on, so nothing is downloaded (${todo.length} file(s) missing).\n`);
      return exitCodes.get("OFFLINE")!;
    }
    const total = `${plan.approximate ? "about " : ""}${formatBytes(plan.downloadBytes)}`;
    if (!values.yes) {
      const agreed = await askYesNo(`Download ${todo.length} file(s), ${total}, into ${plan.modelsDir}?`);
      if (!agreed) {
        process.stderr.write(process.stdin.isTTY ? "Nothing downloaded.\n" : "gpiot: not downloading without confirmation; pass --yes to download without asking.\n");
        return 2;
      }
    }
    process.on("SIGINT", onSigint);
    pullId = `cli${process.pid}`;
    engine.modelManager.onPullProgress((event) => {
      bar.update(event.path, event.phase, event.bytes, event.totalBytes);
      if (event.phase === "done") bar.done(`${path.basename(event.path)}: ready (${formatBytes(event.totalBytes)})`);
    });
    const result = await engine.modelManager.pull({ profile: plan.profile, pullId });
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stderr.write(`Profile "${plan.profile}" is ready.\n`);
    return 0;
  } finally {
    process.off("SIGINT", onSigint);
    await engine.dispose();
  }
}

async function remove(rest: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { manifest: { type: "string" }, "models-dir": { type: "string" }, yes: { type: "boolean", short: "y" }, json: { type: "boolean" } } });
  if (positionals.length !== 1) throw new ModelsUsageError("remove takes one profile name: gpiot models remove PROFILE");
  const settings = settingsFrom(values);
  const engine = new SynthesisEngine(settings);
  try {
    if (!values.yes && !(await askYesNo(`Delete the downloaded files of profile "${positionals[0]}"?`))) {
      process.stderr.write(process.stdin.isTTY ? "Nothing deleted.\n" : "gpiot: not deleting without confirmation; pass --yes.\n");
      return 2;
    }
    const result = await engine.modelManager.remove(positionals[0]);
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      for (const file of result.removed) process.stdout.write(`removed ${file}\n`);
      for (const kept of result.kept) process.stdout.write(`kept ${kept.path} (${kept.reason})\n`);
      process.stdout.write(`${result.removed.length} file(s) removed, ${formatBytes(result.freedBytes)} freed.\n`);
    }
    return 0;
  } finally {
    await engine.dispose();
  }
}

async function fit(rest: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { manifest: { type: "string" }, "models-dir": { type: "string" }, model: { type: "string", short: "m" }, gpu: { type: "string" }, "gpu-layers": { type: "string" }, "context-size": { type: "string" }, json: { type: "boolean" } },
  });
  const settings = settingsFrom(values);
  const engine = new SynthesisEngine(settings);
  try {
    const plan = await engine.modelManager.fit({ profile: positionals[0], modelPath: values.model });
    if (values.json) process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    else {
      process.stdout.write(`Profile ${plan.profile}: ${plan.fits ? "fits" : "DOES NOT FIT"}\n${plan.summary}\n`);
      if (plan.advice) process.stdout.write(`${plan.advice}\n`);
    }
    return plan.fits ? 0 : 1;
  } finally {
    await engine.dispose();
  }
}

async function importPeft(rest: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { base: { type: "string" }, out: { type: "string", short: "o" }, name: { type: "string" }, json: { type: "boolean" } } });
  if (positionals.length !== 1 || !values.base || !values.out) throw new ModelsUsageError("usage: gpiot models import-peft ADAPTER_DIR --base BASE.gguf --out ADAPTER.gguf");
  const result = await convertPeftToGguf({ adapterDir: path.resolve(positionals[0]), basePath: path.resolve(values.base), outPath: path.resolve(values.out), name: values.name });
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else
    process.stdout.write(
      `Wrote ${result.outPath}: LoRA r=${result.ranks.join("/")}, alpha ${result.alpha}, targets ${result.targets.join(", ")} in ${result.layers} layers (${result.tensors} tensors from ${result.sourceDtypes.join("/")}), ${formatBytes(result.bytes)}.\n` +
        (result.rescaledModules.length ? `${result.rescaledModules.length} module(s) have their own scale (rank_pattern, alpha_pattern or rsLoRA); their lora_b carries it.\n` : "") +
        `Use it in a profile: "adapters": [{ "file": "${result.outPath}", "scale": 1 }]\n`,
    );
  return 0;
}

export async function modelsCommand(args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  try {
    if (subcommand === undefined || subcommand === "--help" || subcommand === "-h" || subcommand === "help" || rest.includes("--help") || rest.includes("-h")) {
      process.stdout.write(MODELS_USAGE);
      return subcommand === undefined ? 2 : 0;
    }
    switch (subcommand) {
      case "list":
        return await list(rest);
      case "pull":
        return await pull(rest);
      case "remove":
        return await remove(rest);
      case "fit":
        return await fit(rest);
      case "import-peft":
        return await importPeft(rest);
      default:
        throw new ModelsUsageError(`unknown models command "${subcommand}"; try: gpiot models --help`);
    }
  } catch (error) {
    if (error instanceof ModelsUsageError || (error as NodeJS.ErrnoException).code?.startsWith?.("ERR_PARSE_ARGS")) {
      process.stderr.write(`gpiot: ${(error as Error).message}\nRun "gpiot models --help" for usage.\n`);
      return 2;
    }
    const info = toErrorInfo(error);
    process.stderr.write(`\ngpiot: ${info.message}\n`);
    return exitCodes.get(info.code) ?? 1;
  }
}
