/**
 * Converts a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors, F32/F16/BF16) for a
 * Hugging Face llama model into a GGUF LoRA adapter that llama.cpp loads on the matching GGUF base,
 * as llama.cpp's convert_lora_to_gguf.py does:
 * - tensors `blk.N.<target>.weight.lora_a` (ggml [n_in, r], PEFT's A as is) and `.lora_b`
 *   (ggml [r, n_out], PEFT's B), F32;
 * - `adapter.lora.alpha` = lora_alpha (llama.cpp scales by alpha / r, as PEFT does; rsLoRA's
 *   alpha / sqrt(r) is folded into the stored alpha);
 * - the rows of B for q_proj and k_proj reordered like the base's Q/K rows (see llamaTensors.ts).
 * The base GGUF is read for its architecture, head counts and tensor shapes, so an adapter made for
 * another model is refused with a message that names the first tensor that does not fit.
 */
import { access, mkdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { GgufWriter } from "../gguf/ggufWriter";
import { ConversionError } from "./hfLlamaToGguf";
import { loraTargetToGguf, permuteQkRows, type QkPermutation } from "./llamaTensors";
import { SafetensorsFile } from "./safetensors";

export { ConversionError };

export interface PeftConversionOptions {
  /** Folder with adapter_config.json and adapter_model.safetensors. */
  adapterDir: string;
  /** The GGUF base model the adapter will be used with (llama architecture). */
  basePath: string;
  outPath: string;
  /** Test-only: "none" leaves B of q/k unpermuted, which llama.cpp then applies to the wrong rows. */
  permutation?: QkPermutation;
  name?: string;
}

export interface PeftConversionResult {
  outPath: string;
  rank: number;
  alpha: number;
  targets: string[];
  layers: number;
  tensors: number;
  sourceDtypes: string[];
  bytes: number;
}

interface PeftConfig {
  r: number;
  lora_alpha: number;
  target_modules: string[] | string | null;
  peft_type?: string;
  use_dora?: boolean;
  use_rslora?: boolean;
  bias?: string;
  modules_to_save?: string[] | null;
  fan_in_fan_out?: boolean;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
  base_model_name_or_path?: string | null;
}

async function readPeftConfig(adapterDir: string): Promise<PeftConfig> {
  const configPath = path.join(adapterDir, "adapter_config.json");
  let config: PeftConfig;
  try {
    config = JSON.parse(await readFile(configPath, "utf8"));
  } catch (error) {
    throw new ConversionError(`Cannot read the PEFT adapter config ${configPath}: ${(error as Error).message}`);
  }
  const problem = (message: string) => new ConversionError(`Unsupported PEFT adapter ${adapterDir}: ${message}`);
  if (config.peft_type !== undefined && config.peft_type !== "LORA") throw problem(`peft_type is ${config.peft_type}; only LORA adapters can be converted.`);
  if (!Number.isInteger(config.r) || config.r <= 0) throw problem(`r is ${config.r}.`);
  if (typeof config.lora_alpha !== "number") throw problem("lora_alpha is missing.");
  if (config.use_dora) throw problem("it is a DoRA adapter (use_dora); llama.cpp's LoRA format cannot express the magnitude vector.");
  if (config.bias && config.bias !== "none") throw problem(`it trains biases (bias = "${config.bias}"); a GGUF LoRA has no bias tensors.`);
  if (config.modules_to_save && config.modules_to_save.length)
    throw problem(`it also trains whole modules (modules_to_save: ${config.modules_to_save.join(", ")}), which a GGUF LoRA adapter cannot carry.`);
  if (config.fan_in_fan_out) throw problem("fan_in_fan_out is set (GPT-2 style Conv1D layers); llama uses plain linear layers.");
  if (config.alpha_pattern && Object.keys(config.alpha_pattern).length) throw problem("alpha_pattern gives layers different alphas; a GGUF adapter has one alpha.");
  return config;
}

interface LoraPair {
  layer: number;
  target: string;
  a?: string;
  b?: string;
}

const peftNamePattern = /^(?:base_model\.model\.)?model\.layers\.(\d+)\.(?:self_attn|mlp)\.([a-z_]+)\.lora_([AB])(?:\.[A-Za-z0-9_]+)?\.weight$/;

/** Groups PEFT tensor names into A/B pairs per layer and target; throws on anything else. */
export function pairLoraTensors(names: Iterable<string>, adapterDir: string): LoraPair[] {
  const pairs = new Map<string, LoraPair>();
  for (const name of names) {
    const match = name.match(peftNamePattern);
    if (!match) {
      if (/lora_embedding_[AB]|embed_tokens|lm_head/.test(name))
        throw new ConversionError(`Unsupported target in ${adapterDir}: ${name} (LoRA on the embeddings or the output head). Only q/k/v/o_proj and gate/up/down_proj can be converted.`);
      if (/lora_magnitude_vector/.test(name)) throw new ConversionError(`Unsupported tensor in ${adapterDir}: ${name} is a DoRA magnitude vector.`);
      throw new ConversionError(`Unexpected tensor in ${adapterDir}: ${name}. Expected model.layers.N.(self_attn|mlp).<target>.lora_A/lora_B.weight of a llama model.`);
    }
    const [, layer, target, which] = match;
    if (!loraTargetToGguf.has(target))
      throw new ConversionError(`Unsupported target module "${target}" in ${adapterDir} (${name}). Supported: ${[...loraTargetToGguf.keys()].join(", ")}.`);
    const key = `${layer}.${target}`;
    const pair = pairs.get(key) ?? { layer: Number(layer), target };
    if (which === "A") pair.a = name;
    else pair.b = name;
    pairs.set(key, pair);
  }
  for (const pair of pairs.values())
    if (!pair.a || !pair.b) throw new ConversionError(`${adapterDir}: layer ${pair.layer} ${pair.target} has lora_${pair.a ? "B" : "A"} missing.`);
  return [...pairs.values()].sort((x, y) => x.layer - y.layer || x.target.localeCompare(y.target));
}

export async function convertPeftToGguf(options: PeftConversionOptions): Promise<PeftConversionResult> {
  const { adapterDir, basePath } = options;
  const permutation = options.permutation ?? "llama";
  const config = await readPeftConfig(adapterDir);

  const weightsPath = path.join(adapterDir, "adapter_model.safetensors");
  try {
    await access(weightsPath);
  } catch {
    try {
      await access(path.join(adapterDir, "adapter_model.bin"));
      throw new ConversionError(`${adapterDir} holds adapter_model.bin (a PyTorch pickle); only adapter_model.safetensors can be read. Re-save it with save_pretrained(..., safe_serialization=True).`);
    } catch (error) {
      if (error instanceof ConversionError) throw error;
      throw new ConversionError(`${adapterDir} has no adapter_model.safetensors.`);
    }
  }
  const weights = await SafetensorsFile.open(weightsPath);

  let base: Awaited<ReturnType<typeof readGgufFileInfo>>;
  try {
    base = await readGgufFileInfo(basePath, { readTensorInfo: true, logWarnings: false });
  } catch (error) {
    throw new ConversionError(`Cannot read the base model ${basePath}: ${(error as Error).message}`);
  }
  const metadata = base.metadata as Record<string, any>;
  const architecture = metadata.general?.architecture;
  if (architecture !== "llama")
    throw new ConversionError(`The base model ${basePath} is "${architecture}"; the PEFT converter handles llama bases only (the Q/K permutation is llama-specific).`);
  if (metadata.general?.type === "adapter") throw new ConversionError(`${basePath} is itself an adapter, not a base model.`);
  const heads = Number(metadata.llama?.attention?.head_count);
  const kvHeads = Number(metadata.llama?.attention?.head_count_kv ?? heads);
  const blocks = Number(metadata.llama?.block_count);
  const baseShapes = new Map((base.fullTensorInfo ?? base.tensorInfo ?? []).map((tensor) => [tensor.name, tensor.dimensions.map(Number)]));

  const pairs = pairLoraTensors(weights.tensors.keys(), adapterDir);
  if (pairs.length === 0) throw new ConversionError(`${adapterDir} has no LoRA tensors.`);

  const alpha = config.use_rslora ? config.lora_alpha * Math.sqrt(config.r) : config.lora_alpha;
  const writer = new GgufWriter()
    .setString("general.architecture", "llama")
    .setString("general.type", "adapter")
    .setString("general.name", options.name ?? path.basename(path.resolve(adapterDir)))
    .setString("adapter.type", "lora")
    .setFloat32("adapter.lora.alpha", alpha);
  if (config.base_model_name_or_path) writer.setString("general.base_model.0.name", String(config.base_model_name_or_path));

  const dtypes = new Set<string>();
  let rank = 0;
  for (const pair of pairs) {
    const ggufBase = `blk.${pair.layer}.${loraTargetToGguf.get(pair.target)}.weight`;
    if (pair.layer >= blocks)
      throw new ConversionError(`The adapter has layer ${pair.layer} (${pair.target}) but the base model ${basePath} has only ${blocks} layers: it was made for another model.`);
    const baseShape = baseShapes.get(ggufBase);
    if (!baseShape) throw new ConversionError(`The adapter targets ${pair.target} in layer ${pair.layer}, but the base model ${basePath} has no ${ggufBase}.`);
    const a = await weights.readF32(pair.a!);
    const b = await weights.readF32(pair.b!);
    dtypes.add(a.dtype).add(b.dtype);
    const [r, nIn] = a.shape;
    const [nOut, rb] = b.shape;
    if (a.shape.length !== 2 || b.shape.length !== 2 || r !== rb)
      throw new ConversionError(`${adapterDir}: layer ${pair.layer} ${pair.target} has A [${a.shape.join(", ")}] and B [${b.shape.join(", ")}], which do not make a rank-r pair.`);
    const [baseIn, baseOut] = baseShape;
    if (nIn !== baseIn || nOut !== baseOut)
      throw new ConversionError(
        `The adapter does not fit the base model ${basePath}: its ${pair.target} in layer ${pair.layer} maps ${nIn} -> ${nOut} features, but the base's ${ggufBase} maps ${baseIn} -> ${baseOut}. Use the base model the adapter was trained on.`,
      );
    rank = Math.max(rank, r);
    let bData = b.data;
    if (permutation === "llama" && pair.target === "q_proj") bData = permuteQkRows(bData, nOut, r, heads);
    if (permutation === "llama" && pair.target === "k_proj") bData = permuteQkRows(bData, nOut, r, kvHeads);
    writer.addF32Tensor(`${ggufBase}.lora_a`, [nIn, r], a.data);
    writer.addF32Tensor(`${ggufBase}.lora_b`, [r, nOut], bData);
  }
  await mkdir(path.dirname(path.resolve(options.outPath)), { recursive: true });
  await writer.writeFile(options.outPath);
  return {
    outPath: path.resolve(options.outPath),
    rank,
    alpha,
    targets: [...new Set(pairs.map((pair) => pair.target))].sort(),
    layers: new Set(pairs.map((pair) => pair.layer)).size,
    tensors: pairs.length * 2,
    sourceDtypes: [...dtypes].sort(),
    bytes: (await stat(options.outPath)).size,
  };
}
