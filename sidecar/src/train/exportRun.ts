/**
 * Export of a finished training run for the sidecar: the PEFT adapters the trainer wrote
 * (<run>/peft/<role>/) become GGUF LoRA adapters through the project's PEFT converter, against the
 * GGUF base the profile will run on, and a trained profile names them, so that
 * `gpiot synthesize --profile <name>` and the extension use them at once.
 *
 * Everything goes into a staging folder that replaces <run>/gguf/ only when every file converted,
 * and the profile is written (atomically) last: a failed export leaves the previous one in place.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { z } from "zod";
import { writeTrainedProfile, type Profile } from "../models/manifest";
import { convertHfLlamaToGguf, ConversionError, readHfLlamaConfig } from "../peft/hfLlamaToGguf";
import { convertPeftToGguf } from "../peft/peftToGguf";
import type { RoleName } from "../schemas";
import { TrainExitCode } from "./trainEvents";
import { TrainingSetupError } from "./pythonTrainer";

export const RunFileSchema = z.looseObject({
  records: z.string(),
  base: z.string(),
  out: z.string(),
  mode: z.enum(["lora", "pect"]),
  roles: z.array(z.enum(["td", "rt", "cg"])),
  formats: z.record(z.string(), z.enum(["json", "paper"])).optional(),
  total_steps: z.number().optional(),
  pect: z.record(z.string(), z.unknown()).optional(),
});
export type RunFile = z.infer<typeof RunFileSchema>;

export function readRunFile(runDir: string): RunFile {
  const file = path.join(runDir, "run.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new TrainingSetupError(TrainExitCode.badInput, `${runDir} is not a training run folder: cannot read ${file} (${(error as Error).message}).`);
  }
  const parsed = RunFileSchema.safeParse(raw);
  if (!parsed.success) throw new TrainingSetupError(TrainExitCode.badInput, `${file} is not a run description: ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`);
  return parsed.data;
}

/** Refuses a GGUF base that is not the model the adapters are trained on, naming the first difference. */
export async function checkGgufMatchesHfBase(ggufPath: string, hfDir: string): Promise<void> {
  if (!existsSync(ggufPath)) throw new TrainingSetupError(TrainExitCode.model, `The GGUF base ${ggufPath} does not exist.`);
  let info: Awaited<ReturnType<typeof readGgufFileInfo>>;
  try {
    info = await readGgufFileInfo(ggufPath, { readTensorInfo: false, logWarnings: false });
  } catch (error) {
    throw new TrainingSetupError(TrainExitCode.model, `${ggufPath} is not a readable GGUF model: ${(error as Error).message}`);
  }
  let config;
  try {
    config = await readHfLlamaConfig(hfDir);
  } catch (error) {
    throw new TrainingSetupError(TrainExitCode.model, (error as Error).message);
  }
  const metadata = info.metadata as {
    general?: { type?: unknown; architecture?: unknown };
    llama?: { vocab_size?: unknown; embedding_length?: unknown; block_count?: unknown; feed_forward_length?: unknown; attention?: { head_count?: unknown; head_count_kv?: unknown } };
    tokenizer?: { ggml?: { tokens?: readonly unknown[] } };
  };
  if (metadata.general?.type === "adapter") throw new TrainingSetupError(TrainExitCode.model, `${ggufPath} is a LoRA adapter, not a base model.`);
  const architecture = metadata.general?.architecture;
  const llama = metadata.llama ?? {};
  const vocab = Number(llama.vocab_size ?? metadata.tokenizer?.ggml?.tokens?.length);
  const checks: [string, number, number][] = [
    ["embedding length", Number(llama.embedding_length), config.hiddenSize],
    ["layers", Number(llama.block_count), config.layers],
    ["attention heads", Number(llama.attention?.head_count), config.heads],
    ["key/value heads", Number(llama.attention?.head_count_kv ?? llama.attention?.head_count), config.kvHeads],
    ["feed-forward length", Number(llama.feed_forward_length), config.intermediateSize],
    ["vocabulary size", vocab, config.vocabSize],
  ];
  if (architecture !== "llama") throw new TrainingSetupError(TrainExitCode.model, `The GGUF base ${ggufPath} is a "${architecture}" model; the trained base ${hfDir} is llama.`);
  for (const [what, gguf, hf] of checks)
    if (gguf !== hf)
      throw new TrainingSetupError(
        TrainExitCode.model,
        `The GGUF base ${ggufPath} is not the model the adapters are trained on: its ${what} is ${gguf}, the base ${hfDir} has ${hf}. Use the GGUF conversion of the same base model.`,
      );
}

const MAX_CONVERTED_BASE_BYTES = 2 * 1024 ** 3;

async function folderBytes(dir: string, extension: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) if (name.endsWith(extension)) total += (await stat(path.join(dir, name))).size;
  return total;
}

async function replaceDir(staging: string, final: string): Promise<void> {
  const old = `${final}.old`;
  await rm(old, { recursive: true, force: true });
  if (existsSync(final)) await rename(final, old);
  await rename(staging, final);
  await rm(old, { recursive: true, force: true });
}

export interface ExportOptions {
  runDir: string;
  /** The GGUF base the profile runs on; default: a conversion of the run's (small) Hugging Face base. */
  ggufBase?: string;
  /** Profile name; default: the run folder's name. */
  name?: string;
  profilesDir?: string;
  manifestPath?: string;
  reportPath?: string;
  onNote?(message: string): void;
}

export interface ExportResult {
  profile: string;
  profilePath: string;
  base: string;
  adapters: Partial<Record<RoleName, string>>;
  formats: Partial<Record<RoleName, "json" | "paper">>;
  conversions: Partial<Record<RoleName, { rank: number; targets: string[]; bytes: number }>>;
}

export async function exportRun(options: ExportOptions): Promise<ExportResult> {
  const runDir = path.resolve(options.runDir);
  const run = readRunFile(runDir);
  const name = options.name ?? path.basename(runDir);
  for (const role of run.roles)
    if (!existsSync(path.join(runDir, "peft", role, "adapter_model.safetensors")))
      throw new TrainingSetupError(TrainExitCode.badInput, `The run ${runDir} has no exported ${role.toUpperCase()} adapter (peft/${role}/): it has not finished. Continue it with gpiot train --resume ${runDir}.`);

  const staging = path.join(runDir, "gguf.staging");
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const finalDir = path.join(runDir, "gguf");
  try {
    let stagedBase: string;
    let basePath: string;
    if (options.ggufBase) {
      basePath = path.resolve(options.ggufBase);
      await checkGgufMatchesHfBase(basePath, run.base);
      stagedBase = basePath;
    } else {
      const bytes = await folderBytes(run.base, ".safetensors");
      if (bytes > MAX_CONVERTED_BASE_BYTES)
        throw new TrainingSetupError(TrainExitCode.badInput, `The base ${run.base} is ${(bytes / 1024 ** 3).toFixed(1)} GiB: give the GGUF file of the same model with --gguf-base (GPIoT converts only small bases itself).`);
      options.onNote?.(`Converting the base ${run.base} to GGUF`);
      stagedBase = path.join(staging, "base.gguf");
      await convertHfLlamaToGguf({ modelDir: run.base, outPath: stagedBase, name: path.basename(run.base) });
      basePath = path.join(finalDir, "base.gguf");
    }
    const adapters: ExportResult["adapters"] = {};
    const conversions: ExportResult["conversions"] = {};
    for (const role of run.roles) {
      const out = path.join(staging, `${role}.lora.gguf`);
      const result = await convertPeftToGguf({ adapterDir: path.join(runDir, "peft", role), basePath: stagedBase, outPath: out, name: `${name}-${role}` });
      conversions[role] = { rank: result.rank, targets: result.targets, bytes: result.bytes };
      adapters[role] = path.join(finalDir, `${role}.lora.gguf`);
      options.onNote?.(`${role.toUpperCase()} adapter: rank ${result.rank} on ${result.targets.join(", ")}, ${(result.bytes / 1024 ** 2).toFixed(1)} MiB`);
    }
    await replaceDir(staging, finalDir);

    const formats: ExportResult["formats"] = {};
    const roles: Profile["roles"] = {};
    for (const role of run.roles) {
      formats[role] = run.formats?.[role] ?? "json";
      roles[role] = { adapters: [{ file: adapters[role]!, scale: 1 }], promptFormat: formats[role] };
    }
    let contextLength = 4096;
    try {
      contextLength = Math.min(4096, (await readHfLlamaConfig(run.base)).contextLength);
    } catch {
      // the default is fine
    }
    const profile: Profile = {
      description: `Tuned by gpiot train (${run.mode.toUpperCase()}) on ${path.basename(run.records)}: ${run.roles.map((role) => role.toUpperCase()).join(" and ")} adapters on ${path.basename(run.base)}${run.roles.includes("rt") ? "" : "; RT on the bare base"}.`,
      base: { file: basePath },
      roles,
      contextSize: contextLength,
      minContextSize: Math.min(2048, contextLength),
      chatTemplate: Object.values(formats).includes("paper") ? "llama2-chat" : undefined,
      training: { run: runDir, mode: run.mode, createdAt: new Date().toISOString(), ...(options.reportPath ? { report: options.reportPath } : {}) },
    };
    const profilePath = writeTrainedProfile(name, profile, { dir: options.profilesDir, manifestPath: options.manifestPath });
    return { profile: name, profilePath, base: basePath, adapters, formats, conversions };
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    if (error instanceof ConversionError) throw new TrainingSetupError(TrainExitCode.model, error.message);
    throw error;
  }
}
