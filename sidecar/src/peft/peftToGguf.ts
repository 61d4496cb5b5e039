/**
 * Converts a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors, F32/F16/BF16) for a
 * Hugging Face llama model into a GGUF LoRA adapter that llama.cpp loads on the matching GGUF base,
 * as llama.cpp's convert_lora_to_gguf.py does:
 * - tensors `blk.N.<target>.weight.lora_a` (ggml [n_in, r], PEFT's A as is) and `.lora_b`
 *   (ggml [r, n_out], PEFT's B), F32;
 * - `adapter.lora.alpha`: llama.cpp scales each module by alpha / r, with one alpha per adapter and
 *   the module's own rank r. PEFT scales each module by its alpha / r, or alpha / sqrt(r) with
 *   rsLoRA, where rank_pattern and alpha_pattern may give modules their own r and alpha. The stored
 *   alpha is the one that makes llama.cpp's scale right for most modules (lora_alpha when nothing
 *   varies, lora_alpha · sqrt(r) for rsLoRA with one rank); every other module's B is multiplied by
 *   the ratio of its PEFT scale to llama.cpp's, so each module's B·A is scaled as PEFT scales it;
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
  /** The largest rank; `ranks` lists them all when rank_pattern gives modules other ranks. */
  rank: number;
  ranks: number[];
  /** The alpha stored in the GGUF adapter. */
  alpha: number;
  /** Modules whose B was multiplied to carry a scale that the stored alpha cannot express. */
  rescaledModules: string[];
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
  rank_pattern?: Record<string, number> | null;
  alpha_pattern?: Record<string, number> | null;
  base_model_name_or_path?: string | null;
  lora_bias?: boolean;
  use_qalora?: boolean;
  init_lora_weights?: boolean | string;
  layer_replication?: unknown[] | null;
  target_parameters?: string[] | null;
  alora_invocation_tokens?: number[] | null;
  trainable_token_indices?: unknown;
  kasa_config?: unknown;
  monteclora_config?: unknown;
  use_bdlora?: unknown;
  arrow_config?: unknown;
}

/** A rank_pattern or alpha_pattern: its keys, in the file's order, with a matcher each. */
type ModulePatterns = { key: string; matches: RegExp; value: number }[];

/**
 * PEFT picks the first key `k` for which Python's `re.match(rf"(.*\.)?({k})$", module)` matches. The
 * same expression in JavaScript means the same for plain names and common syntax; keys that use
 * syntax the two read differently (Python-only groups and escapes) are refused rather than guessed.
 */
function compilePatterns(name: "rank_pattern" | "alpha_pattern", patterns: Record<string, number> | null | undefined, problem: (message: string) => Error): ModulePatterns {
  if (patterns === undefined || patterns === null) return [];
  if (typeof patterns !== "object" || Array.isArray(patterns)) throw problem(`${name} is not an object of module patterns.`);
  return Object.entries(patterns).map(([key, value]) => {
    if (typeof value !== "number" || !Number.isFinite(value) || (name === "rank_pattern" && (!Number.isInteger(value) || value <= 0)))
      throw problem(`${name} gives "${key}" the value ${JSON.stringify(value)}; expected ${name === "rank_pattern" ? "a positive whole number" : "a number"}.`);
    const pythonOnly = /\(\?(?![:=!]|<[=!])|\\[^dDwWsSbBntrfv.\\^$|?*+()[\]{}\-\d/]/.exec(key);
    if (pythonOnly) throw problem(`${name} key "${key}" uses "${pythonOnly[0]}", regular-expression syntax that Python and this converter may read differently; write the module name out instead.`);
    try {
      return { key, matches: new RegExp(`^(.*\\.)?(${key})$`), value };
    } catch (error) {
      throw problem(`${name} key "${key}" is not a regular expression this converter can read (${(error as Error).message}).`);
    }
  });
}

function patternValue(patterns: ModulePatterns, module: string): { key: string; value: number } | undefined {
  return patterns.find((pattern) => pattern.matches.test(module));
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
  if (config.lora_bias) throw problem("lora_bias is set: it trains a bias on lora_B, and a GGUF LoRA adapter has no bias tensors.");
  if (config.use_qalora) throw problem("use_qalora is set: QALoRA pools the input of lora_A in groups, which llama.cpp's LoRA does not do.");
  if (config.layer_replication && config.layer_replication.length) throw problem("layer_replication is set: the adapter belongs to a model with replicated layers, not to the base.");
  if (config.target_parameters && config.target_parameters.length) throw problem(`target_parameters is set (${config.target_parameters.join(", ")}): LoRA on raw parameters cannot be carried by a GGUF LoRA adapter.`);
  if (config.alora_invocation_tokens && config.alora_invocation_tokens.length)
    throw problem("alora_invocation_tokens is set: an activated LoRA applies only after its invocation tokens, and llama.cpp would apply it to every token.");
  if (config.trainable_token_indices) throw problem("trainable_token_indices is set: it also trains token embeddings, which a GGUF LoRA adapter cannot carry.");
  for (const option of ["kasa_config", "monteclora_config", "use_bdlora", "arrow_config"] as const)
    if (config[option] !== undefined && config[option] !== null && config[option] !== false) throw problem(`${option} is set: it changes how the adapter is applied, which llama.cpp's LoRA cannot reproduce.`);
  const init = typeof config.init_lora_weights === "string" ? config.init_lora_weights : "";
  if (/^(pissa|olora|corda|loftq|lora_ga)/.test(init))
    throw problem(
      `init_lora_weights is "${init}": that initialisation changes the base model's weights, so the adapter only works on that changed base. Save it with save_pretrained(..., path_initial_model_for_weight_conversion=...) to get a plain LoRA, then convert that.`,
    );
  compilePatterns("rank_pattern", config.rank_pattern, problem);
  compilePatterns("alpha_pattern", config.alpha_pattern, problem);
  return config;
}

interface LoraPair {
  layer: number;
  target: string;
  /** The module's name in the Hugging Face model, as PEFT's patterns see it: model.layers.N.self_attn.q_proj. */
  module: string;
  a?: string;
  b?: string;
}

const peftNamePattern = /^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_([AB])(?:\.[A-Za-z0-9_]+)?\.weight$/;

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
    const [, layer, block, target, which] = match;
    if (!loraTargetToGguf.has(target))
      throw new ConversionError(`Unsupported target module "${target}" in ${adapterDir} (${name}). Supported: ${[...loraTargetToGguf.keys()].join(", ")}.`);
    const key = `${layer}.${target}`;
    const pair = pairs.get(key) ?? { layer: Number(layer), target, module: `model.layers.${Number(layer)}.${block}.${target}` };
    if (which === "A") pair.a = name;
    else pair.b = name;
    pairs.set(key, pair);
  }
  for (const pair of pairs.values())
    if (!pair.a || !pair.b) throw new ConversionError(`${adapterDir}: layer ${pair.layer} ${pair.target} has lora_${pair.a ? "B" : "A"} missing.`);
  return [...pairs.values()].sort((x, y) => x.layer - y.layer || x.target.localeCompare(y.target));
}

/**
 * The alpha to store and, for each module whose PEFT scale that alpha cannot give, the factor for its
 * B. PEFT: alpha_m / r_m, or alpha_m / sqrt(r_m) with rsLoRA. llama.cpp: alpha / r_m (or 1 when the
 * stored alpha is 0).
 */
function moduleScaling(config: PeftConfig, pairs: LoraPair[], weights: SafetensorsFile, adapterDir: string): { alpha: number; factors: Map<string, number>; ranks: number[] } {
  const problem = (message: string) => new ConversionError(`Unsupported PEFT adapter ${adapterDir}: ${message}`);
  const rankPatterns = compilePatterns("rank_pattern", config.rank_pattern, problem);
  const alphaPatterns = compilePatterns("alpha_pattern", config.alpha_pattern, problem);
  const modules = pairs.map((pair) => {
    const rank = weights.tensors.get(pair.a!)!.shape[0];
    const rankRule = patternValue(rankPatterns, pair.module);
    const expectedRank = rankRule?.value ?? config.r;
    if (rank !== expectedRank)
      throw new ConversionError(
        `${adapterDir}: ${pair.module} has rank ${rank}, but the adapter config gives it ${expectedRank} (${rankRule ? `rank_pattern "${rankRule.key}"` : "r"}); the config does not describe these weights.`,
      );
    const moduleAlpha = patternValue(alphaPatterns, pair.module)?.value ?? config.lora_alpha;
    const scale = config.use_rslora ? moduleAlpha / Math.sqrt(rank) : moduleAlpha / rank;
    return { module: pair.module, rank, scale, alphaForLlama: scale * rank };
  });
  // The alpha most modules agree on, so that as few B matrices as possible are rescaled.
  const votes = new Map<string, { alpha: number; count: number }>();
  for (const { alphaForLlama } of modules) {
    if (alphaForLlama === 0) continue;
    const key = alphaForLlama.toPrecision(12);
    const vote = votes.get(key) ?? { alpha: alphaForLlama, count: 0 };
    vote.count += 1;
    votes.set(key, vote);
  }
  const alpha = [...votes.values()].reduce<{ alpha: number; count: number } | null>((best, vote) => (best === null || vote.count > best.count ? vote : best), null)?.alpha ?? 0;
  const factors = new Map<string, number>();
  for (const { module, rank, scale } of modules) {
    const llamaScale = alpha === 0 ? 1 : Math.fround(alpha) / rank;
    const factor = scale / llamaScale;
    // Differences below float32 precision of the stored alpha are no scale of their own.
    if (Math.abs(factor - 1) > 1e-6) factors.set(module, factor);
  }
  return { alpha, factors, ranks: [...new Set(modules.map((entry) => entry.rank))].sort((x, y) => x - y) };
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
  // node-llama-cpp's metadata type has no `general.type` (which adapters set).
  const metadata = base.metadata as {
    general?: { architecture?: string; type?: string };
    llama?: { attention?: { head_count?: number; head_count_kv?: number }; block_count?: number };
  };
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

  const scaling = moduleScaling(config, pairs, weights, adapterDir);
  const alpha = scaling.alpha;
  const writer = new GgufWriter()
    .setString("general.architecture", "llama")
    .setString("general.type", "adapter")
    .setString("general.name", options.name ?? path.basename(path.resolve(adapterDir)))
    .setString("adapter.type", "lora")
    .setFloat32("adapter.lora.alpha", alpha);
  if (config.base_model_name_or_path) writer.setString("general.base_model.0.name", String(config.base_model_name_or_path));

  const dtypes = new Set<string>();
  const rescaledModules: string[] = [];
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
    let bData = b.data;
    const factor = scaling.factors.get(pair.module) ?? 1;
    if (factor !== 1) {
      bData = bData.map((value) => value * factor);
      rescaledModules.push(pair.module);
    }
    if (permutation === "llama" && pair.target === "q_proj") bData = permuteQkRows(bData, nOut, r, heads);
    if (permutation === "llama" && pair.target === "k_proj") bData = permuteQkRows(bData, nOut, r, kvHeads);
    writer.addF32Tensor(`${ggufBase}.lora_a`, [nIn, r], a.data);
    writer.addF32Tensor(`${ggufBase}.lora_b`, [r, nOut], bData);
  }
  await mkdir(path.dirname(path.resolve(options.outPath)), { recursive: true });
  await writer.writeFile(options.outPath);
  return {
    outPath: path.resolve(options.outPath),
    rank: Math.max(...scaling.ranks),
    ranks: scaling.ranks,
    alpha,
    rescaledModules,
    targets: [...new Set(pairs.map((pair) => pair.target))].sort(),
    layers: new Set(pairs.map((pair) => pair.layer)).size,
    tensors: pairs.length * 2,
    sourceDtypes: [...dtypes].sort(),
    bytes: (await stat(options.outPath)).size,
  };
}
