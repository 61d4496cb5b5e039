/**
 * Converts a small Hugging Face llama checkpoint (config.json + *.safetensors in F32/F16/BF16) to an
 * F32 GGUF base model that llama.cpp loads: the same tensor names and Q/K permutation as llama.cpp's
 * convert_hf_to_gguf.py, written with our own GgufWriter.
 *
 * It exists to prove the PEFT converter against transformers on a tiny fixture, and for small
 * experiments (the tiny bases `gpiot train` tests on). The checkpoint's tokenizer is carried over
 * when llama.cpp can tokenize exactly like it: a tokenizer.json BPE vocabulary with byte fallback
 * and no merges, spaces written as U+2581 and nothing else normalised (one token per character,
 * UTF-8 bytes for the rest), with its special tokens, BOS/EOS and chat template. Any other tokenizer
 * gets a placeholder llama/SPM vocabulary of the right size (<unk>, <s>, </s>, the 256 byte tokens,
 * then filler pieces): the model loads and evaluates token ids, but text tokenization is
 * meaningless. For real models use a published GGUF or llama.cpp's own converter. Everything is
 * held in memory, so keep it to small models.
 */
import { mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { GgufWriter, verifyGgufFile } from "../gguf/ggufWriter";
import { ggmlDimensions, hfGlobalToGguf, hfLayerModuleToGguf, permuteQkRows, type QkPermutation } from "./llamaTensors";
import { SafetensorsFile } from "./safetensors";

export class ConversionError extends Error {
  readonly code = "CONVERSION_FAILED";
  constructor(message: string) {
    super(message);
    this.name = "ConversionError";
  }
}

export interface HfLlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  contextLength: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
}

type RopeScalingJson = { rope_type?: unknown; type?: unknown; rope_theta?: unknown } | null;

/** The fields of an HF config.json read here, with whatever JSON values a file may hold. */
interface HfConfigJson {
  architectures?: unknown;
  model_type?: unknown;
  rope_scaling?: RopeScalingJson;
  rope_parameters?: RopeScalingJson;
  attention_bias?: unknown;
  mlp_bias?: unknown;
  num_attention_heads?: unknown;
  hidden_size?: unknown;
  head_dim?: unknown;
  vocab_size?: unknown;
  intermediate_size?: unknown;
  num_hidden_layers?: unknown;
  num_key_value_heads?: unknown;
  max_position_embeddings?: unknown;
  rms_norm_eps?: unknown;
  rope_theta?: unknown;
  tie_word_embeddings?: unknown;
}

export async function readHfLlamaConfig(modelDir: string): Promise<HfLlamaConfig> {
  const configPath = path.join(modelDir, "config.json");
  let raw: HfConfigJson;
  try {
    raw = JSON.parse(await readFile(configPath, "utf8")) as HfConfigJson;
  } catch (error) {
    throw new ConversionError(`Cannot read ${configPath}: ${(error as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConversionError(`${configPath} is not a JSON object.`);
  const architectures = Array.isArray(raw.architectures) ? raw.architectures.map(String) : [];
  const modelType = typeof raw.model_type === "string" ? raw.model_type : undefined;
  if (modelType !== "llama" && !architectures.includes("LlamaForCausalLM"))
    throw new ConversionError(`${configPath} describes a "${modelType ?? architectures.join(", ")}" model; only llama checkpoints can be converted.`);
  const ropeScaling = raw.rope_scaling ?? raw.rope_parameters;
  const ropeType = ropeScaling?.rope_type ?? ropeScaling?.type ?? "default";
  if (ropeType !== "default") throw new ConversionError(`${configPath} uses RoPE scaling ${JSON.stringify(ropeType)}, which this converter does not support.`);
  if (raw.attention_bias || raw.mlp_bias) throw new ConversionError(`${configPath} has attention or MLP biases, which llama models do not have.`);
  const heads = Number(raw.num_attention_heads);
  const hiddenSize = Number(raw.hidden_size);
  const headDim = Number(raw.head_dim ?? hiddenSize / heads);
  if (headDim * heads !== hiddenSize) throw new ConversionError(`${configPath}: head_dim ${headDim} x ${heads} heads is not hidden_size ${hiddenSize}; not supported.`);
  return {
    vocabSize: Number(raw.vocab_size),
    hiddenSize,
    intermediateSize: Number(raw.intermediate_size),
    layers: Number(raw.num_hidden_layers),
    heads,
    kvHeads: Number(raw.num_key_value_heads ?? heads),
    headDim,
    contextLength: Number(raw.max_position_embeddings ?? 2048),
    rmsNormEps: Number(raw.rms_norm_eps ?? 1e-6),
    ropeTheta: Number(raw.rope_theta ?? ropeScaling?.rope_theta ?? 10000),
    tieWordEmbeddings: Boolean(raw.tie_word_embeddings ?? false),
  };
}

/** Maps an HF llama tensor name to its GGUF name; null for tensors llama.cpp does not use, undefined for unknown ones. */
export function ggufNameForHfTensor(name: string): string | null | undefined {
  if (name.endsWith("rotary_emb.inv_freq")) return null;
  const weight = name.match(/^(.*)\.weight$/);
  if (!weight) return undefined;
  const base = weight[1];
  const global = hfGlobalToGguf.get(base);
  if (global) return `${global}.weight`;
  const layer = base.match(/^model\.layers\.(\d+)\.(.+)$/);
  const module = layer ? hfLayerModuleToGguf.get(layer[2]) : undefined;
  if (layer && module) return `blk.${layer[1]}.${module}.weight`;
  return undefined;
}

export interface HfLlamaConversionOptions {
  modelDir: string;
  outPath: string;
  /** Test-only: "none" skips the Q/K permutation llama.cpp needs, to prove that it matters. */
  permutation?: QkPermutation;
  name?: string;
}

export interface HfLlamaConversionResult {
  outPath: string;
  tensors: number;
  config: HfLlamaConfig;
}

export async function convertHfLlamaToGguf(options: HfLlamaConversionOptions): Promise<HfLlamaConversionResult> {
  const config = await readHfLlamaConfig(options.modelDir);
  const permutation = options.permutation ?? "llama";
  const files = (await readdir(options.modelDir)).filter((file) => file.endsWith(".safetensors")).sort();
  if (files.length === 0) throw new ConversionError(`${options.modelDir} has no .safetensors weights (PyTorch .bin checkpoints are not supported).`);

  const sources = new Map<string, SafetensorsFile>();
  for (const file of files) {
    const opened = await SafetensorsFile.open(path.join(options.modelDir, file));
    for (const name of opened.tensors.keys()) sources.set(name, opened);
  }

  const writer = new GgufWriter();
  const tokenizer = await readExactTokenizer(options.modelDir, config.vocabSize);
  const vocabulary = tokenizer ?? { ...placeholderVocabulary(config.vocabSize), unk: 0, bos: 1, eos: 2, addBos: true, chatTemplate: undefined, pad: undefined };
  writer
    .setString("general.architecture", "llama")
    .setString("general.name", options.name ?? path.basename(path.resolve(options.modelDir)))
    .setUint32("general.file_type", 0)
    .setUint32("llama.vocab_size", config.vocabSize)
    .setUint32("llama.context_length", config.contextLength)
    .setUint32("llama.embedding_length", config.hiddenSize)
    .setUint32("llama.block_count", config.layers)
    .setUint32("llama.feed_forward_length", config.intermediateSize)
    .setUint32("llama.attention.head_count", config.heads)
    .setUint32("llama.attention.head_count_kv", config.kvHeads)
    .setUint32("llama.rope.dimension_count", config.headDim)
    .setFloat32("llama.rope.freq_base", config.ropeTheta)
    .setFloat32("llama.attention.layer_norm_rms_epsilon", config.rmsNormEps)
    .setString("tokenizer.ggml.model", "llama")
    .setStringArray("tokenizer.ggml.tokens", vocabulary.tokens)
    .setFloat32Array("tokenizer.ggml.scores", vocabulary.scores)
    .setInt32Array("tokenizer.ggml.token_type", vocabulary.types)
    .setUint32("tokenizer.ggml.unknown_token_id", vocabulary.unk)
    .setUint32("tokenizer.ggml.bos_token_id", vocabulary.bos)
    .setUint32("tokenizer.ggml.eos_token_id", vocabulary.eos)
    .setBool("tokenizer.ggml.add_bos_token", vocabulary.addBos)
    .setBool("tokenizer.ggml.add_eos_token", false);
  if (tokenizer) writer.setBool("tokenizer.ggml.add_space_prefix", false);
  if (vocabulary.pad !== undefined) writer.setUint32("tokenizer.ggml.padding_token_id", vocabulary.pad);
  if (vocabulary.chatTemplate) writer.setString("tokenizer.chat_template", vocabulary.chatTemplate);

  const expected = expectedShapes(config);
  const seen = new Set<string>();
  const order = [...sources.keys()].sort(compareTensorOrder);
  for (const hfName of order) {
    const ggufName = ggufNameForHfTensor(hfName);
    if (ggufName === null) continue;
    if (ggufName === undefined) throw new ConversionError(`Unexpected tensor "${hfName}" in ${options.modelDir}: not part of a llama model.`);
    const tensor = await sources.get(hfName)!.readF32(hfName);
    const want = expected.get(ggufName);
    if (!want || want.join("x") !== tensor.shape.join("x"))
      throw new ConversionError(`Tensor ${hfName} has shape [${tensor.shape.join(", ")}], but config.json implies [${want?.join(", ") ?? "none"}].`);
    let data = tensor.data;
    if (permutation === "llama" && /\.attn_q\.weight$/.test(ggufName)) data = permuteQkRows(data, tensor.shape[0], tensor.shape[1] ?? 1, config.heads);
    if (permutation === "llama" && /\.attn_k\.weight$/.test(ggufName)) data = permuteQkRows(data, tensor.shape[0], tensor.shape[1] ?? 1, config.kvHeads);
    writer.addF32Tensor(ggufName, ggmlDimensions(tensor.shape), data);
    seen.add(ggufName);
  }
  for (const name of expected.keys()) {
    if (seen.has(name)) continue;
    if (name === "output.weight" && config.tieWordEmbeddings) continue;
    throw new ConversionError(`${options.modelDir} has no tensor for ${name}.`);
  }
  await mkdir(path.dirname(path.resolve(options.outPath)), { recursive: true });
  await writer.writeFile(options.outPath);
  const verified = await verifyGgufFile(options.outPath);
  return { outPath: path.resolve(options.outPath), tensors: verified.tensorCount, config };
}

function expectedShapes(config: HfLlamaConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const { hiddenSize: h, intermediateSize: ff, vocabSize: v, headDim, kvHeads } = config;
  shapes.set("token_embd.weight", [v, h]);
  shapes.set("output_norm.weight", [h]);
  shapes.set("output.weight", [v, h]);
  for (let layer = 0; layer < config.layers; layer++) {
    const block = `blk.${layer}`;
    shapes.set(`${block}.attn_norm.weight`, [h]);
    shapes.set(`${block}.ffn_norm.weight`, [h]);
    shapes.set(`${block}.attn_q.weight`, [h, h]);
    shapes.set(`${block}.attn_k.weight`, [kvHeads * headDim, h]);
    shapes.set(`${block}.attn_v.weight`, [kvHeads * headDim, h]);
    shapes.set(`${block}.attn_output.weight`, [h, h]);
    shapes.set(`${block}.ffn_gate.weight`, [ff, h]);
    shapes.set(`${block}.ffn_up.weight`, [ff, h]);
    shapes.set(`${block}.ffn_down.weight`, [h, ff]);
  }
  return shapes;
}

/** Globals first, then layers in numeric order: the order llama.cpp's converter writes. */
function compareTensorOrder(a: string, b: string): number {
  const key = (name: string) => {
    const layer = name.match(/^model\.layers\.(\d+)\./);
    if (name.startsWith("model.embed_tokens")) return [-1, name] as const;
    if (layer) return [Number(layer[1]), name] as const;
    return [1e9, name] as const;
  };
  const [la, na] = key(a);
  const [lb, nb] = key(b);
  return la - lb || (na < nb ? -1 : na > nb ? 1 : 0);
}

const TokenType = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

/** <unk>, <s>, </s>, <0x00>..<0xFF>, then unique filler pieces up to `size`. */
export function placeholderVocabulary(size: number): { tokens: string[]; scores: number[]; types: number[] } {
  if (size < 259) throw new ConversionError(`vocab_size ${size} is too small: a llama vocabulary needs at least 259 tokens (<unk>, <s>, </s> and 256 byte tokens).`);
  const tokens = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TokenType.unknown, TokenType.control, TokenType.control];
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TokenType.byte);
  }
  for (let index = 0; tokens.length < size; index++) {
    tokens.push(`\u2581t${index}`);
    types.push(TokenType.normal);
  }
  return { tokens, scores: tokens.map((_, index) => -index), types };
}

interface ExactTokenizer {
  tokens: string[];
  scores: number[];
  types: number[];
  unk: number;
  bos: number;
  eos: number;
  pad?: number;
  addBos: boolean;
  chatTemplate?: string;
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * The checkpoint's tokenizer as GGUF metadata, when llama.cpp's SPM tokenizer (with no space
 * prefix) splits every text into the same ids: a BPE model with byte fallback and no merges, a
 * normaliser that only writes spaces as U+2581, no pre-tokenizer. Undefined for anything else.
 */
/** The fields of a Hugging Face tokenizer.json this converter reads; anything may be missing. */
interface HfTokenizerJson {
  model?: { type?: string; byte_fallback?: boolean; merges?: unknown[]; vocab?: Record<string, number>; unk_token?: unknown };
  pre_tokenizer?: unknown;
  normalizer?: { type?: string; pattern?: { String?: string }; content?: string };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  post_processor?: { type?: string; single?: { SpecialToken?: { id?: string } }[] };
}

/** The fields of a Hugging Face tokenizer_config.json this converter reads. */
interface HfTokenizerConfig {
  unk_token?: unknown;
  bos_token?: unknown;
  eos_token?: unknown;
  pad_token?: unknown;
  chat_template?: unknown;
}

async function readExactTokenizer(modelDir: string, vocabSize: number): Promise<ExactTokenizer | undefined> {
  const json = (await readJson(path.join(modelDir, "tokenizer.json"))) as HfTokenizerJson | undefined;
  const model = json?.model;
  if (!model || model.type !== "BPE" || !model.byte_fallback || (model.merges ?? []).length !== 0 || json.pre_tokenizer) return undefined;
  const normalizer = json.normalizer;
  if (!normalizer || normalizer.type !== "Replace" || normalizer.pattern?.String !== " " || normalizer.content !== "\u2581") return undefined;
  const byId = new Map<number, string>();
  for (const [piece, id] of Object.entries(model.vocab ?? {})) byId.set(id, piece);
  const special = new Set<number>();
  for (const added of json.added_tokens ?? []) {
    byId.set(added.id, added.content);
    if (added.special) special.add(added.id);
  }
  if (byId.size !== vocabSize || ![...byId.keys()].every((id) => id >= 0 && id < vocabSize)) return undefined;
  const tokens = Array.from({ length: vocabSize }, (_, id) => byId.get(id)!);
  const idOf = (value: unknown) => {
    const content = typeof value === "string" ? value : (value as { content?: string } | undefined)?.content;
    const id = content === undefined ? -1 : tokens.indexOf(content);
    return id >= 0 ? id : undefined;
  };
  const config = ((await readJson(path.join(modelDir, "tokenizer_config.json"))) ?? {}) as HfTokenizerConfig;
  const unk = idOf(model.unk_token ?? config.unk_token) ?? 0;
  const bos = idOf(config.bos_token);
  const eos = idOf(config.eos_token);
  if (bos === undefined || eos === undefined) return undefined;
  const single = json.post_processor?.type === "TemplateProcessing" ? json.post_processor.single : undefined;
  const addBos = Array.isArray(single) && single[0]?.SpecialToken?.id === tokens[bos];
  let chatTemplate: string | undefined = typeof config.chat_template === "string" ? config.chat_template : undefined;
  if (!chatTemplate) {
    try {
      chatTemplate = await readFile(path.join(modelDir, "chat_template.jinja"), "utf8");
    } catch {
      chatTemplate = undefined;
    }
  }
  const types = tokens.map((token, id) => (id === unk ? TokenType.unknown : special.has(id) ? TokenType.control : /^<0x[0-9A-F]{2}>$/.test(token) ? TokenType.byte : TokenType.normal));
  return { tokens, scores: tokens.map(() => 0), types, unk, bos, eos, pad: idOf(config.pad_token), addBos, chatTemplate };
}
