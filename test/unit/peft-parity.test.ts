/**
 * Proof that the converters are right: a tiny random Hugging Face llama and a real PEFT LoRA adapter
 * on it (test/fixtures/peft, made by scripts/make-peft-fixture.py with transformers + peft), converted
 * by our TypeScript converters, evaluated by llama.cpp through node-llama-cpp, must give the logits
 * transformers gave for the same tokens, with and without the adapter. A converter that skips the
 * Q/K row permutation (a test-only option) must not.
 *
 * Logits are compared after centring each position (llama.cpp hands out softmax probabilities, so
 * the log-probabilities equal the logits up to a per-position constant). Tolerance: 1e-3 absolute,
 * against logits with a standard deviation of about 4. The context uses F32 K/V caches and no flash
 * attention so that llama.cpp computes in F32 like the reference (with the default F16 cache the
 * differences are about 1e-2).
 */
import assert from "node:assert/strict";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { getLlama, LlamaLogLevel, readGgufFileInfo, type ControlledEvaluateInputItem, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { convertHfLlamaToGguf, ConversionError } from "../../sidecar/src/peft/hfLlamaToGguf";
import { permuteQkRows } from "../../sidecar/src/peft/llamaTensors";
import { convertPeftToGguf } from "../../sidecar/src/peft/peftToGguf";
import { decodeToF32, f16ToF32, SafetensorsFile } from "../../sidecar/src/peft/safetensors";
import { writeTinyTestModels } from "../../sidecar/src/gguf/tinyTestModels";

const fixtureDir = path.resolve(import.meta.dirname, "../fixtures/peft");
const TOLERANCE = 1e-3;

let work: string;
let llama: Llama;
let tokens: number[];
let vocab: number;
let reference: { base: Float32Array; lora: Float32Array };
const VARIANTS = ["rank-pattern", "alpha-pattern", "rslora", "rslora-patterns", "rslora-rank-pattern"] as const;
const variantLogits = new Map<string, Float32Array>();
const paths = { base: "", baseUnpermuted: "", lora: "", loraUnpermuted: "" };

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), "gpiot-peft-test-"));
  const meta = JSON.parse(readFileSync(path.join(fixtureDir, "reference.json"), "utf8"));
  tokens = meta.tokens;
  const referenceFile = await SafetensorsFile.open(path.join(fixtureDir, "reference.safetensors"));
  const base = await referenceFile.readF32("logits_base");
  vocab = base.shape[1];
  reference = { base: base.data, lora: (await referenceFile.readF32("logits_lora")).data };
  for (const variant of VARIANTS) variantLogits.set(variant, (await referenceFile.readF32(`logits_${variant}`)).data);

  paths.base = path.join(work, "base.gguf");
  paths.baseUnpermuted = path.join(work, "base-unpermuted.gguf");
  paths.lora = path.join(work, "adapter.gguf");
  paths.loraUnpermuted = path.join(work, "adapter-unpermuted.gguf");
  await convertHfLlamaToGguf({ modelDir: path.join(fixtureDir, "hf-llama"), outPath: paths.base });
  await convertHfLlamaToGguf({ modelDir: path.join(fixtureDir, "hf-llama"), outPath: paths.baseUnpermuted, permutation: "none" });
  await convertPeftToGguf({ adapterDir: path.join(fixtureDir, "adapter"), basePath: paths.base, outPath: paths.lora });
  await convertPeftToGguf({ adapterDir: path.join(fixtureDir, "adapter"), basePath: paths.base, outPath: paths.loraUnpermuted, permutation: "none" });
  llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
});

after(async () => {
  await llama?.dispose();
  await rm(work, { recursive: true, force: true });
});

/** llama.cpp's log-probabilities for the next token after each prefix of `tokens`. */
async function llamaLogits(basePath: string, adapterPath?: string): Promise<Float64Array[]> {
  const model: LlamaModel = await llama.loadModel({ modelPath: basePath });
  try {
    const context = await model.createContext({
      contextSize: 64,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
      ...(adapterPath ? { lora: { adapters: [{ filePath: adapterPath }] } } : {}),
    });
    try {
      const outputs = await context.getSequence().controlledEvaluate(tokens.map((token): ControlledEvaluateInputItem => [token as Token, { generateNext: { probabilities: true } }]));
      return outputs.map((output, position) => {
        const probabilities = output?.next.probabilities;
        assert.ok(probabilities && probabilities.size === vocab, `position ${position}: expected ${vocab} probabilities, got ${probabilities?.size}`);
        const row = new Float64Array(vocab);
        for (const [token, probability] of probabilities) row[token] = Math.log(probability);
        return row;
      });
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Max over positions and tokens of |centred ours - centred reference|. */
function maxCentredDiff(ours: Float64Array[], expected: Float32Array): number {
  let max = 0;
  ours.forEach((row, position) => {
    const ref = expected.subarray(position * vocab, (position + 1) * vocab);
    const meanOurs = row.reduce((sum, value) => sum + value, 0) / vocab;
    const meanRef = ref.reduce((sum, value) => sum + value, 0) / vocab;
    for (let token = 0; token < vocab; token++) max = Math.max(max, Math.abs(row[token] - meanOurs - (ref[token] - meanRef)));
  });
  return max;
}

describe("PEFT and HF llama conversion parity with transformers", () => {
  test("base model: llama.cpp reproduces the reference logits; without the Q/K permutation it does not", async (t) => {
    const right = maxCentredDiff(await llamaLogits(paths.base), reference.base);
    const wrong = maxCentredDiff(await llamaLogits(paths.baseUnpermuted), reference.base);
    t.diagnostic(`base: max |logit diff| ${right.toExponential(2)} with the permutation, ${wrong.toFixed(2)} without`);
    assert.ok(right < TOLERANCE, `base logits differ by ${right}`);
    assert.ok(wrong > 100 * TOLERANCE, `an unpermuted base should not match (diff ${wrong})`);
  });

  test("LoRA adapter: base + converted adapter reproduce the PEFT logits; an unpermuted lora_b does not", async (t) => {
    const right = maxCentredDiff(await llamaLogits(paths.base, paths.lora), reference.lora);
    const wrong = maxCentredDiff(await llamaLogits(paths.base, paths.loraUnpermuted), reference.lora);
    const ignored = maxCentredDiff(await llamaLogits(paths.base), reference.lora);
    t.diagnostic(`adapter: max |logit diff| ${right.toExponential(2)} with the permutation, ${wrong.toFixed(2)} without, ${ignored.toFixed(2)} with no adapter`);
    assert.ok(right < TOLERANCE, `adapter logits differ by ${right}`);
    assert.ok(wrong > 100 * TOLERANCE, `an unpermuted adapter should not match (diff ${wrong})`);
    assert.ok(ignored > 100 * TOLERANCE, "the adapter must change the logits, else the fixture proves nothing");
  });

  test("the converted adapter has llama.cpp's names, shapes and alpha", async () => {
    const info = await readGgufFileInfo(paths.lora, { readTensorInfo: true, logWarnings: false });
    const metadata = info.metadata as any;
    assert.equal(metadata.general.architecture, "llama");
    assert.equal(metadata.general.type, "adapter");
    assert.equal(metadata.adapter.type, "lora");
    assert.equal(metadata.adapter.lora.alpha, 16);
    const shapes = Object.fromEntries(info.tensorInfo!.map((tensor) => [tensor.name, tensor.dimensions.map(Number)]));
    assert.deepEqual(shapes["blk.0.attn_q.weight.lora_a"], [64, 8]);
    assert.deepEqual(shapes["blk.0.attn_q.weight.lora_b"], [8, 64]);
    assert.deepEqual(shapes["blk.1.attn_k.weight.lora_b"], [8, 32]);
    assert.deepEqual(shapes["blk.1.ffn_down.weight.lora_a"], [128, 8]);
    assert.equal(Object.keys(shapes).length, 20);
  });
});

describe("PEFT options that change the scale per module", () => {
  for (const variant of VARIANTS) {
    test(`${variant}: base + converted adapter reproduce the PEFT logits`, async (t) => {
      const out = path.join(work, `adapter-${variant}.gguf`);
      const converted = await convertPeftToGguf({ adapterDir: path.join(fixtureDir, `adapter-${variant}`), basePath: paths.base, outPath: out });
      const right = maxCentredDiff(await llamaLogits(paths.base, out), variantLogits.get(variant)!);
      const ignored = maxCentredDiff(await llamaLogits(paths.base), variantLogits.get(variant)!);
      t.diagnostic(`${variant}: max |logit diff| ${right.toExponential(2)}; alpha ${converted.alpha}, ranks ${converted.ranks.join("/")}, rescaled ${converted.rescaledModules.join(", ") || "none"}`);
      assert.ok(right < TOLERANCE, `${variant} logits differ by ${right}`);
      assert.ok(ignored > 100 * TOLERANCE, "the adapter must change the logits, else the fixture proves nothing");
    });
  }

  test("the stored alpha and the rescaled modules follow the config", async () => {
    const convert = (variant: string) => convertPeftToGguf({ adapterDir: path.join(fixtureDir, `adapter-${variant}`), basePath: paths.base, outPath: path.join(work, `info-${variant}.gguf`) });
    const rankPattern = await convert("rank-pattern");
    assert.deepEqual([rankPattern.alpha, rankPattern.ranks, rankPattern.rescaledModules], [16, [4, 8, 12], []], "alpha / r per module is what llama.cpp does anyway");
    const alphaPattern = await convert("alpha-pattern");
    assert.equal(alphaPattern.alpha, 16);
    assert.deepEqual(alphaPattern.rescaledModules.sort(), ["model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"]);
    const rslora = await convert("rslora");
    assert.ok(Math.abs(rslora.alpha - 16 * Math.sqrt(8)) < 1e-9);
    assert.deepEqual(rslora.rescaledModules, [], "one rank: rsLoRA fits in the stored alpha");
    const combined = await convert("rslora-patterns");
    assert.deepEqual(combined.ranks, [2, 8, 16]);
    assert.ok(combined.rescaledModules.includes("model.layers.0.self_attn.k_proj") && combined.rescaledModules.includes("model.layers.1.self_attn.v_proj"));
    const rsloraRanks = await convert("rslora-rank-pattern");
    assert.deepEqual(rsloraRanks.ranks, [2, 8, 32]);
    assert.deepEqual(rsloraRanks.rescaledModules.sort(), ["model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.o_proj", "model.layers.1.self_attn.v_proj"], "alpha / sqrt(r) differs from alpha' / r wherever r is not 8");
  });

  test("options that change how an adapter is applied are refused by name", async () => {
    const dir = path.join(work, "refused-options");
    cpSync(path.join(fixtureDir, "adapter"), dir, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(dir, "adapter_config.json"), "utf8"));
    const convert = (changes: object) => {
      writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ ...config, ...changes }));
      return convertPeftToGguf({ adapterDir: dir, basePath: paths.base, outPath: path.join(work, "refused.gguf") });
    };
    const cases: [object, RegExp][] = [
      [{ lora_bias: true }, /lora_bias is set/],
      [{ use_qalora: true }, /use_qalora is set/],
      [{ init_lora_weights: "pissa_niter_4" }, /init_lora_weights is "pissa_niter_4": that initialisation changes the base model's weights/],
      [{ init_lora_weights: "olora" }, /init_lora_weights is "olora"/],
      [{ alora_invocation_tokens: [5, 6] }, /alora_invocation_tokens is set/],
      [{ target_parameters: ["mlp.experts.down_proj"] }, /target_parameters is set \(mlp\.experts\.down_proj\)/],
      [{ layer_replication: [[0, 2], [1, 2]] }, /layer_replication is set/],
      [{ trainable_token_indices: [1, 2] }, /trainable_token_indices is set/],
      [{ kasa_config: {} }, /kasa_config is set/],
      [{ rank_pattern: { q_proj: 4 } }, /model\.layers\.0\.self_attn\.q_proj has rank 8, but the adapter config gives it 4 \(rank_pattern "q_proj"\)/],
      [{ rank_pattern: { q_proj: 2.5 } }, /rank_pattern gives "q_proj" the value 2\.5; expected a positive whole number/],
      [{ alpha_pattern: { "(?P<m>q_proj)": 4 } }, /alpha_pattern key "\(\?P<m>q_proj\)" uses "\(\?"/],
      [{ alpha_pattern: { "\\Aq_proj": 4 } }, /alpha_pattern key "\\Aq_proj" uses "\\A"/],
    ];
    for (const [changes, message] of cases) await assert.rejects(convert(changes), (error: Error) => error instanceof ConversionError && message.test(error.message), JSON.stringify(changes));
    await convert({ init_lora_weights: "gaussian", rank_pattern: { "layers\\.[01]\\.self_attn\\.(q|k)_proj": 8 } });
  });
});

describe("converter errors", () => {
  test("an adapter for a base of another shape is refused, naming the tensor", async () => {
    const tiny = await writeTinyTestModels(path.join(work, "tiny"));
    await assert.rejects(
      convertPeftToGguf({ adapterDir: path.join(fixtureDir, "adapter"), basePath: tiny.base, outPath: path.join(work, "x.gguf") }),
      (error: ConversionError) => error instanceof ConversionError && /does not fit the base model .*k_proj in layer 0 maps 64 -> 32 features, but the base's blk\.0\.attn_k\.weight maps 64 -> 64/.test(error.message),
    );
  });

  test("unsupported targets and adapter kinds are named", async () => {
    const dir = path.join(work, "bad-adapter");
    cpSync(path.join(fixtureDir, "adapter"), dir, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(dir, "adapter_config.json"), "utf8"));
    const writeConfig = (changes: object) => writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ ...config, ...changes }));
    const convert = () => convertPeftToGguf({ adapterDir: dir, basePath: paths.base, outPath: path.join(work, "y.gguf") });
    writeConfig({ use_dora: true });
    await assert.rejects(convert(), /DoRA/);
    writeConfig({ modules_to_save: ["lm_head"] });
    await assert.rejects(convert(), /modules_to_save: lm_head/);
    writeConfig({ peft_type: "IA3" });
    await assert.rejects(convert(), /only LORA/);
    writeConfig({});
    // A LoRA on the embeddings: rename one tensor in the safetensors header (same length keeps offsets valid).
    const weights = readFileSync(path.join(dir, "adapter_model.safetensors"));
    const from = "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight";
    const to = "base_model.model.model.embed_tokens.down_proj.lora_A.weight".padEnd(from.length, "x").slice(0, from.length);
    writeFileSync(path.join(dir, "adapter_model.safetensors"), Buffer.from(weights.toString("latin1").replace(from, to), "latin1"));
    await assert.rejects(convert(), /Unsupported target .*embed_tokens/);
  });

  test("a non-llama base is refused", async () => {
    const config = JSON.parse(readFileSync(path.join(fixtureDir, "hf-llama", "config.json"), "utf8"));
    const dir = path.join(work, "qwen");
    cpSync(path.join(fixtureDir, "hf-llama"), dir, { recursive: true });
    writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, model_type: "qwen2", architectures: ["Qwen2ForCausalLM"] }));
    await assert.rejects(convertHfLlamaToGguf({ modelDir: dir, outPath: path.join(work, "q.gguf") }), /only llama checkpoints/);
  });
});

describe("safetensors and permutation helpers", () => {
  test("f16 and bf16 decode exactly", () => {
    assert.equal(f16ToF32(0x3c00), 1);
    assert.equal(f16ToF32(0xc000), -2);
    assert.equal(f16ToF32(0x0001), 2 ** -24);
    assert.equal(f16ToF32(0x7c00), Infinity);
    const bf16 = Buffer.alloc(4);
    bf16.writeUInt16LE(0x3f80, 0); // 1.0
    bf16.writeUInt16LE(0xc040, 2); // -3.0
    assert.deepEqual([...decodeToF32(bf16, "BF16")], [1, -3]);
  });

  test("the Q/K permutation interleaves the two halves of each head", () => {
    // 2 heads of 4 rows, 1 column: head rows [a0 a1 b0 b1] become [a0 b0 a1 b1].
    const permuted = permuteQkRows(new Float32Array([0, 1, 2, 3, 10, 11, 12, 13]), 8, 1, 2);
    assert.deepEqual([...permuted], [0, 2, 1, 3, 10, 12, 11, 13]);
  });
});
