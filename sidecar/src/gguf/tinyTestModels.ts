import {mkdir} from "node:fs/promises";
import path from "node:path";
import {GgufWriter, verifyGgufFile} from "./ggufWriter";

export type TinyTestModelPaths = {
    base: string;
    adapters: {td: string; rt: string; cg: string};
    mismatchedAdapter: string;
    /** A tiny embedding model (mean pooling) for retrieval tests. */
    embedding: string;
};

export type TinyTestModelOptions = {
    /** Seed for every random weight; the same seed gives byte-identical files. */
    seed?: number;
    /**
     * Extra logit (in nats, roughly) given to the bare `"` token at every position. Random weights alone
     * almost never close a JSON string under a grammar, so every string would run to its length cap.
     */
    stringEndBias?: number;
    /**
     * Extra logits for more tokens, by piece (`"<0x0A>"` is the newline byte token, `"<|im_end|>"` the
     * end of turn): steers a random model through grammars of free text, whose lines and blocks would
     * otherwise run to their length caps.
     */
    tokenBiases?: Record<string, number>;
    /**
     * A larger shape than the tiny default, for figures where the weights must dominate memory as in
     * real models (the benchmark). Weight scales follow the width so that the logits keep the tiny
     * model's statistics; the vocabulary and tokenizer stay the same.
     */
    shape?: Partial<TestModelShape>;
};

export type TestModelShape = {
    embeddingLength: number;
    blockCount: number;
    headCount: number;
    headCountKv: number;
    feedForwardLength: number;
    contextLength: number;
};

export const DEFAULT_TINY_MODEL_SEED = 20240611;
export const DEFAULT_STRING_END_BIAS = 4.5;

export const TINY_MODEL_SHAPE: Readonly<TestModelShape> = {
    embeddingLength: 64,
    blockCount: 2,
    headCount: 4,
    headCountKv: 4,
    feedForwardLength: 128,
    contextLength: 8192
} as const;

export const TINY_ADAPTER_RANK = 8;
export const TINY_ADAPTER_TARGETS = ["attn_q", "attn_v", "ffn_down"] as const;

/** Residual dimension that carries a constant through the network; the `"` output row reads it. */
const BIAS_CARRIER_DIMENSION = 0;
const EMBEDDING_STD = 1;
const LAYER_WEIGHT_STD = 0.08;
const OUTPUT_WEIGHT_STD = 0.25;
const ADAPTER_FACTOR_STD = 0.15;

const TokenType = {normal: 1, unknown: 2, control: 3, byte: 6} as const;

const CHATML_TEMPLATE =
    "{% for message in messages %}" +
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
    "{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export async function writeTinyTestModels(dir: string, options: TinyTestModelOptions = {}): Promise<TinyTestModelPaths> {
    const seed = options.seed ?? DEFAULT_TINY_MODEL_SEED;
    const stringEndBias = options.stringEndBias ?? DEFAULT_STRING_END_BIAS;
    const folder = path.resolve(dir);
    await mkdir(folder, {recursive: true});

    const paths: TinyTestModelPaths = {
        base: path.join(folder, "tiny-base.gguf"),
        adapters: {
            td: path.join(folder, "tiny-td.lora.gguf"),
            rt: path.join(folder, "tiny-rt.lora.gguf"),
            cg: path.join(folder, "tiny-cg.lora.gguf")
        },
        mismatchedAdapter: path.join(folder, "tiny-mismatched.lora.gguf"),
        embedding: path.join(folder, "tiny-embed.gguf")
    };

    const vocabulary = buildVocabulary();
    const shape: TestModelShape = {...TINY_MODEL_SHAPE, ...options.shape};
    if (shape.embeddingLength % shape.headCount !== 0 || shape.headCount % shape.headCountKv !== 0)
        throw new Error(`Test model shape: the embedding length must divide into heads and the heads into KV heads (${JSON.stringify(shape)})`);
    // An adapter for a model of another width: loading it on the base must fail.
    const mismatchedShape = {...shape, embeddingLength: shape.embeddingLength + 32, feedForwardLength: shape.feedForwardLength + 64};
    const writes: Array<[string, () => GgufWriter]> = [
        [paths.base, () => buildBaseModel(vocabulary, shape, seed, stringEndBias, options.tokenBiases ?? {})],
        [paths.adapters.td, () => buildLoraAdapter("gpiot-tiny-td", shape, seed + 1)],
        [paths.adapters.rt, () => buildLoraAdapter("gpiot-tiny-rt", shape, seed + 2)],
        [paths.adapters.cg, () => buildLoraAdapter("gpiot-tiny-cg", shape, seed + 3)],
        [paths.mismatchedAdapter, () => buildLoraAdapter("gpiot-tiny-mismatched", mismatchedShape, seed + 4, shape)],
        [paths.embedding, () => buildEmbeddingModel(vocabulary, seed + 5)]
    ];

    // One file at a time: a large shape holds its tensors and the serialized file in memory at once.
    for (const [filePath, build] of writes) {
        await build().writeFile(filePath);
        await verifyGgufFile(filePath);
    }
    return paths;
}

type Vocabulary = {tokens: string[]; scores: number[]; types: number[]; quoteTokenId: number};

function buildVocabulary(): Vocabulary {
    const tokens: string[] = [];
    const scores: number[] = [];
    const types: number[] = [];
    const seen = new Set<string>();
    const add = (piece: string, type: number, score: number) => {
        if (seen.has(piece))
            return;
        seen.add(piece);
        tokens.push(piece);
        scores.push(score);
        types.push(type);
    };

    add("<unk>", TokenType.unknown, 0);
    add("<s>", TokenType.control, 0);
    add("</s>", TokenType.control, 0);
    add("<|im_start|>", TokenType.control, 0);
    add("<|im_end|>", TokenType.control, 0);
    for (let byte = 0; byte < 256; byte++)
        add(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`, TokenType.byte, 0);

    // SentencePiece only merges two adjacent symbols when their concatenation is a token, so every
    // prefix of a piece must be in the vocabulary for the piece to be reachable.
    const pieces = new Set<string>();
    for (const piece of normalPieces()) {
        const characters = Array.from(piece);
        for (let end = 1; end <= characters.length; end++)
            pieces.add(characters.slice(0, end).join(""));
    }
    const ordered = [...pieces].sort((a, b) => Array.from(a).length - Array.from(b).length || (a < b ? -1 : a > b ? 1 : 0));
    for (const piece of ordered)
        add(piece, TokenType.normal, Array.from(piece).length);

    return {tokens, scores, types, quoteTokenId: tokens.indexOf("\"")};
}

function normalPieces(): string[] {
    const space = "\u2581";
    const characters = [
        ..."abcdefghijklmnopqrstuvwxyz",
        ..."ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        ..."0123456789",
        ..."{}[]()\"':,.;_-+*/=<>!?#@$%&|\\^~`",
        space
    ];
    const words = [
        "the", "a", "an", "and", "or", "of", "to", "in", "is", "it", "for", "on", "with", "as", "by", "at",
        "from", "that", "this", "be", "are", "was", "not", "if", "each", "every", "when", "then", "use", "using",
        "data", "sensor", "sensors", "temperature", "humidity", "pressure", "light", "motion", "value", "values",
        "time", "read", "reading", "write", "send", "device", "devices", "program", "python", "code", "task",
        "tasks", "step", "steps", "input", "output", "result", "file", "files", "signal", "filter", "model",
        "train", "test", "error", "message", "json", "requirement", "description", "name", "type", "list",
        "number", "string", "array", "object", "second", "seconds", "minute", "rate", "average", "mean", "max",
        "min", "threshold", "alert", "window", "sample", "samples", "feature", "features", "csv", "mqtt", "http",
        "def", "import", "class", "self", "return", "elif", "else", "while", "None", "True", "False", "print",
        "try", "except", "open", "lambda", "yield", "raise", "pass", "break", "continue", "numpy", "np", "pandas",
        "pd", "scipy", "os", "sys", "range", "len", "dict", "str", "int", "float", "bool", "main", "args",
        "__init__", "__name__", "__main__", "true", "false", "null", "np.array", "np.mean", "len(", "range(",
        "print(", "self.", "return▁"
    ];
    const symbols = [
        "\":", "\",", "{\"", "\"}", "\":\"", "[\"", "\"]", "\",\"", "\":▁\"", "\",▁\"", "▁\"", "▁{", "▁[", "▁}",
        "▁]", "▁=", "▁==", "▁!=", "▁+", "▁-", "▁*", "▁/", "▁<", "▁>", "▁<=", "▁>=", "▁+=", "▁->", "()", "():",
        "):", "(self", "),", "])", "[]", "{}", "0.", "00", "10", "100", "1000", "▁0", "▁1", "▁2", "▁10", "▁#",
        "▁▁", "▁▁▁▁", "▁▁▁▁▁▁▁▁", "...", ".py", "_data", "_value", "_time", "ing", "ed", "er", "es", "ly", "tion"
    ];
    return [
        ...characters,
        ...words,
        ...words.map((word) => space + word),
        ...symbols
    ];
}

/** Keeps activations and logits of a wider model at the tiny model's scale. */
function widthScale(shape: TestModelShape): number {
    return Math.sqrt(TINY_MODEL_SHAPE.embeddingLength / shape.embeddingLength);
}

function buildBaseModel(vocabulary: Vocabulary, shape: TestModelShape, seed: number, stringEndBias: number, tokenBiases: Record<string, number>): GgufWriter {
    const embd = shape.embeddingLength;
    const kvDim = (embd / shape.headCount) * shape.headCountKv;
    const layerStd = LAYER_WEIGHT_STD * widthScale(shape);
    const outputStd = OUTPUT_WEIGHT_STD * widthScale(shape);
    const vocabSize = vocabulary.tokens.length;
    const random = new SeededRandom(seed);
    const writer = new GgufWriter();

    writer
        .setString("general.architecture", "llama")
        .setString("general.name", "gpiot-tiny")
        .setUint32("general.file_type", 0)
        .setUint32("llama.vocab_size", vocabSize)
        .setUint32("llama.context_length", shape.contextLength)
        .setUint32("llama.embedding_length", embd)
        .setUint32("llama.block_count", shape.blockCount)
        .setUint32("llama.feed_forward_length", shape.feedForwardLength)
        .setUint32("llama.attention.head_count", shape.headCount)
        .setUint32("llama.attention.head_count_kv", shape.headCountKv)
        .setUint32("llama.rope.dimension_count", embd / shape.headCount)
        .setFloat32("llama.rope.freq_base", 10000)
        .setFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .setString("tokenizer.ggml.model", "llama")
        .setStringArray("tokenizer.ggml.tokens", vocabulary.tokens)
        .setFloat32Array("tokenizer.ggml.scores", vocabulary.scores)
        .setInt32Array("tokenizer.ggml.token_type", vocabulary.types)
        .setUint32("tokenizer.ggml.unknown_token_id", vocabulary.tokens.indexOf("<unk>"))
        .setUint32("tokenizer.ggml.bos_token_id", vocabulary.tokens.indexOf("<s>"))
        .setUint32("tokenizer.ggml.eos_token_id", vocabulary.tokens.indexOf("<|im_end|>"))
        .setBool("tokenizer.ggml.add_bos_token", true)
        .setBool("tokenizer.ggml.add_eos_token", false)
        .setString("tokenizer.chat_template", CHATML_TEMPLATE);

    const tokenEmbedding = random.normalArray(embd * vocabSize, EMBEDDING_STD);
    for (let token = 0; token < vocabSize; token++)
        tokenEmbedding[token * embd + BIAS_CARRIER_DIMENSION] = EMBEDDING_STD;
    writer.addF32Tensor("token_embd.weight", [embd, vocabSize], tokenEmbedding);

    for (let layer = 0; layer < shape.blockCount; layer++) {
        const block = `blk.${layer}`;
        const ff = shape.feedForwardLength;
        writer
            .addF32Tensor(`${block}.attn_norm.weight`, [embd], ones(embd))
            .addF32Tensor(`${block}.attn_q.weight`, [embd, embd], random.normalArray(embd * embd, layerStd))
            .addF32Tensor(`${block}.attn_k.weight`, [embd, kvDim], random.normalArray(embd * kvDim, layerStd))
            .addF32Tensor(`${block}.attn_v.weight`, [embd, kvDim], random.normalArray(embd * kvDim, layerStd))
            .addF32Tensor(`${block}.attn_output.weight`, [embd, embd], random.normalArray(embd * embd, layerStd))
            .addF32Tensor(`${block}.ffn_norm.weight`, [embd], ones(embd))
            .addF32Tensor(`${block}.ffn_gate.weight`, [embd, ff], random.normalArray(embd * ff, layerStd))
            .addF32Tensor(`${block}.ffn_up.weight`, [embd, ff], random.normalArray(embd * ff, layerStd))
            .addF32Tensor(`${block}.ffn_down.weight`, [ff, embd], random.normalArray(ff * embd, layerStd));
    }

    writer.addF32Tensor("output_norm.weight", [embd], ones(embd));

    const output = random.normalArray(embd * vocabSize, outputStd);
    for (let token = 0; token < vocabSize; token++)
        output[token * embd + BIAS_CARRIER_DIMENSION] = token === vocabulary.quoteTokenId ? stringEndBias : 0;
    for (const [piece, bias] of Object.entries(tokenBiases)) {
        const token = vocabulary.tokens.indexOf(piece);
        if (token < 0)
            throw new Error(`tokenBiases: "${piece}" is not a token of the tiny vocabulary`);
        output[token * embd + BIAS_CARRIER_DIMENSION] = bias;
    }
    for (const [piece, bias] of Object.entries(tokenBiases)) {
        const token = vocabulary.tokens.indexOf(piece);
        if (token < 0)
            throw new Error(`tokenBiases: "${piece}" is not a token of the tiny vocabulary`);
        output[token * embd + BIAS_CARRIER_DIMENSION] = bias;
    }
    writer.addF32Tensor("output.weight", [embd, vocabSize], output);

    return writer;
}

/** Shape of the tiny embedding model: its vectors have EMBEDDING_LENGTH dimensions. */
export const TINY_EMBEDDING_SHAPE: Readonly<TestModelShape> = {
    embeddingLength: 32,
    blockCount: 1,
    headCount: 2,
    headCountKv: 2,
    feedForwardLength: 64,
    contextLength: 512
} as const;

/**
 * A random llama model with mean pooling: llama.cpp averages the last hidden states over the
 * tokens, as sentence embedding models do. Random weights give no meaning, but the same text always
 * gives the same vector, and different texts different ones.
 */
function buildEmbeddingModel(vocabulary: Vocabulary, seed: number): GgufWriter {
    const writer = buildBaseModel(vocabulary, TINY_EMBEDDING_SHAPE, seed, 0, {});
    return writer
        .setString("general.name", "gpiot-tiny-embed")
        .setUint32("llama.pooling_type", 1);
}

/** `baseShape`: the model the adapter is meant for, which sets the weight scale. */
function buildLoraAdapter(name: string, shape: TestModelShape, seed: number, baseShape = shape): GgufWriter {
    const random = new SeededRandom(seed);
    const rank = TINY_ADAPTER_RANK;
    const writer = new GgufWriter()
        .setString("general.architecture", "llama")
        .setString("general.type", "adapter")
        .setString("general.name", name)
        .setString("adapter.type", "lora")
        .setFloat32("adapter.lora.alpha", rank);

    const kvDim = Math.floor(shape.embeddingLength / shape.headCount) * shape.headCountKv;
    const factorAStd = ADAPTER_FACTOR_STD * widthScale(baseShape);
    const targetSizes: Record<(typeof TINY_ADAPTER_TARGETS)[number], {nIn: number; nOut: number}> = {
        attn_q: {nIn: shape.embeddingLength, nOut: shape.embeddingLength},
        attn_v: {nIn: shape.embeddingLength, nOut: kvDim},
        ffn_down: {nIn: shape.feedForwardLength, nOut: shape.embeddingLength}
    };

    for (let layer = 0; layer < shape.blockCount; layer++) {
        for (const target of TINY_ADAPTER_TARGETS) {
            const {nIn, nOut} = targetSizes[target];
            const loraB = random.normalArray(rank * nOut, ADAPTER_FACTOR_STD);
            // Leave the bias-carrying residual dimension alone so adapters keep strings short under a grammar.
            if (target === "ffn_down")
                loraB.fill(0, BIAS_CARRIER_DIMENSION * rank, (BIAS_CARRIER_DIMENSION + 1) * rank);
            writer
                .addF32Tensor(`blk.${layer}.${target}.weight.lora_a`, [nIn, rank], random.normalArray(nIn * rank, factorAStd))
                .addF32Tensor(`blk.${layer}.${target}.weight.lora_b`, [rank, nOut], loraB);
        }
    }
    return writer;
}

function ones(length: number): Float32Array {
    return new Float32Array(length).fill(1);
}

/** mulberry32 for uniforms, Box-Muller for normals. */
class SeededRandom {
    private state: number;
    private spareNormal: number | undefined;

    public constructor(seed: number) {
        this.state = seed >>> 0;
    }

    public uniform(): number {
        this.state = (this.state + 0x6d2b79f5) >>> 0;
        let t = this.state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    }

    public normal(): number {
        if (this.spareNormal !== undefined) {
            const spare = this.spareNormal;
            this.spareNormal = undefined;
            return spare;
        }
        const u1 = 1 - this.uniform();
        const u2 = this.uniform();
        const radius = Math.sqrt(-2 * Math.log(u1));
        this.spareNormal = radius * Math.sin(2 * Math.PI * u2);
        return radius * Math.cos(2 * Math.PI * u2);
    }

    public normalArray(length: number, std: number): Float32Array {
        const values = new Float32Array(length);
        for (let i = 0; i < length; i++)
            values[i] = this.normal() * std;
        return values;
    }
}
