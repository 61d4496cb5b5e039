import assert from "node:assert/strict";
import {copyFile, mkdtemp, readFile, rm, truncate, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, test} from "node:test";
import {
    ChatMLChatWrapper,
    getLlama,
    type Llama,
    LlamaChatSession,
    type LlamaContext,
    LlamaLogLevel,
    type LlamaModel,
    readGgufFileInfo
} from "node-llama-cpp";
import {GgufWriter, verifyGgufFile} from "../../sidecar/src/gguf/ggufWriter";
import {
    TINY_ADAPTER_TARGETS,
    TINY_MODEL_SHAPE,
    type TinyTestModelPaths,
    writeTinyTestModels
} from "../../sidecar/src/gguf/tinyTestModels";

let workDir: string;
let paths: TinyTestModelPaths;
let llama: Llama;
let model: LlamaModel;

before(async () => {
    workDir = await mkdtemp(path.join(os.tmpdir(), "gpiot-gguf-test-"));
    paths = await writeTinyTestModels(path.join(workDir, "models"));
    llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
    model = await llama.loadModel({modelPath: paths.base});
});

after(async () => {
    await model?.dispose();
    await llama?.dispose();
    await rm(workDir, {recursive: true, force: true});
});

async function withContext<T>(adapterPath: string | undefined, use: (context: LlamaContext) => Promise<T>): Promise<T> {
    const context = await model.createContext({
        contextSize: 512,
        threads: 1,
        ...(adapterPath != null ? {lora: {adapters: [{filePath: adapterPath}]}} : {})
    });
    try {
        return await use(context);
    } finally {
        await context.dispose();
    }
}

async function greedyTokens(adapterPath: string | undefined, prompt: string, count: number): Promise<number[]> {
    return withContext(adapterPath, async (context) => {
        const generated: number[] = [];
        for await (const token of context.getSequence().evaluate(model.tokenize(prompt), {temperature: 0, seed: 7})) {
            generated.push(token);
            if (generated.length >= count)
                break;
        }
        return generated;
    });
}

/** Byte position of the u64 data offset in the tensor info of `tensorName` (F32, so the type is the u32 before it). */
function tensorInfoOffsetPosition(file: Buffer, tensorName: string): number {
    const nameBytes = Buffer.from(tensorName, "utf8");
    const lengthPrefix = Buffer.alloc(8);
    lengthPrefix.writeBigUInt64LE(BigInt(nameBytes.length));
    const nameStart = file.indexOf(Buffer.concat([lengthPrefix, nameBytes]));
    assert.ok(nameStart >= 0, `tensor info for ${tensorName} not found`);
    let position = nameStart + 8 + nameBytes.length;
    const dimensionCount = file.readUInt32LE(position);
    position += 4 + dimensionCount * 8 + 4;
    return position;
}

describe("GgufWriter", () => {
    test("round-trips every metadata type through node-llama-cpp's reader", async () => {
        const filePath = path.join(workDir, "roundtrip.gguf");
        await new GgufWriter()
            .setString("general.architecture", "llama")
            .setUint32("test.uint32", 4000000000)
            .setInt32("test.int32", -12)
            .setFloat32("test.float32", 0.5)
            .setBool("test.bool", true)
            .setString("test.string", "h\u00e9llo \u2581world")
            .setStringArray("test.strings", ["a", "\u2581b", ""])
            .setFloat32Array("test.floats", [1.5, -2])
            .setInt32Array("test.ints", [-1, 2])
            .setUint32Array("test.uints", [3, 4])
            .addF32Tensor("a.weight", [3], new Float32Array([1, 2, 3]))
            .addF32Tensor("b.weight", [2, 5], new Float32Array(10).fill(0.25))
            .writeFile(filePath);

        const verified = await verifyGgufFile(filePath);
        assert.equal(verified.tensorCount, 2);

        const info = await readGgufFileInfo(filePath, {logWarnings: false});
        const metadata = info.metadata as unknown as Record<string, Record<string, unknown>>;
        assert.equal(metadata.general!.alignment, 32);
        assert.deepEqual(metadata.test, {
            uint32: 4000000000,
            int32: -12,
            float32: 0.5,
            bool: true,
            string: "h\u00e9llo \u2581world",
            strings: ["a", "\u2581b", ""],
            floats: [1.5, -2],
            ints: [-1, 2],
            uints: [3, 4]
        });
        assert.deepEqual(info.tensorInfo!.map((tensor) => [tensor.name, tensor.dimensions.map(Number), Number(tensor.offset)]), [
            ["a.weight", [3], 0],
            ["b.weight", [2, 5], 32]
        ]);
        const raw = await readFile(filePath);
        assert.equal(raw.readFloatLE(info.infoEndOffset! + 32 + 36), 0.25);
    });

    test("rejects tensors whose data does not match their dimensions", () => {
        assert.throws(() => new GgufWriter().addF32Tensor("x", [4, 4], new Float32Array(15)), /need 16/);
        assert.throws(() => new GgufWriter().addF32Tensor("x", [4], new Float32Array(4)).addF32Tensor("x", [4], new Float32Array(4)), /twice/);
        assert.throws(() => new GgufWriter().setUint32("k", -1), /integer/);
    });
});

describe("verifyGgufFile", () => {
    test("accepts every written tiny model", async () => {
        const expectedTensorCounts = new Map<string, number>([
            [paths.base, 3 + 9 * TINY_MODEL_SHAPE.blockCount],
            [paths.adapters.td, 2 * TINY_ADAPTER_TARGETS.length * TINY_MODEL_SHAPE.blockCount],
            [paths.adapters.rt, 2 * TINY_ADAPTER_TARGETS.length * TINY_MODEL_SHAPE.blockCount],
            [paths.adapters.cg, 2 * TINY_ADAPTER_TARGETS.length * TINY_MODEL_SHAPE.blockCount],
            [paths.mismatchedAdapter, 2 * TINY_ADAPTER_TARGETS.length * TINY_MODEL_SHAPE.blockCount]
        ]);
        for (const [filePath, tensorCount] of expectedTensorCounts) {
            assert.ok(path.isAbsolute(filePath));
            assert.equal((await verifyGgufFile(filePath)).tensorCount, tensorCount, filePath);
        }
    });

    test("the same seed writes identical bytes and another seed different weights", async () => {
        const again = await writeTinyTestModels(path.join(workDir, "again"));
        const reseeded = await writeTinyTestModels(path.join(workDir, "reseeded"), {seed: 99});
        const original = await readFile(paths.base);
        assert.ok(original.equals(await readFile(again.base)));
        assert.ok(!original.equals(await readFile(reseeded.base)));
        assert.ok(!(await readFile(paths.adapters.td)).equals(await readFile(paths.adapters.rt)));
    });

    test("catches a truncated file", async () => {
        const copy = path.join(workDir, "truncated.gguf");
        await copyFile(paths.base, copy);
        await truncate(copy, (await readFile(copy)).length - 100);
        await assert.rejects(verifyGgufFile(copy), /Invalid GGUF file .*(needs bytes|file size)/);
    });

    test("catches a tensor whose bytes are all zeros", async () => {
        const copy = path.join(workDir, "zeroed.gguf");
        const info = await readGgufFileInfo(paths.base, {logWarnings: false});
        const tensor = info.tensorInfo!.find((candidate) => candidate.name === "blk.1.attn_k.weight")!;
        const bytes = await readFile(paths.base);
        const byteLength = tensor.dimensions.reduce<number>((product, dim) => product * Number(dim), 4);
        bytes.fill(0, Number(tensor.fileOffset), Number(tensor.fileOffset) + byteLength);
        await writeFile(copy, bytes);
        await assert.rejects(verifyGgufFile(copy), /tensor "blk\.1\.attn_k\.weight" is all zeros/);
    });

    test("catches a tensor offset that is not the running padded total", async () => {
        const copy = path.join(workDir, "misaligned.gguf");
        const bytes = await readFile(paths.base);
        const position = tensorInfoOffsetPosition(bytes, "output.weight");
        bytes.writeBigUInt64LE(bytes.readBigUInt64LE(position) + 32n, position);
        await writeFile(copy, bytes);
        await assert.rejects(verifyGgufFile(copy), /tensor "output\.weight" is at data offset \d+, expected \d+/);
    });
});

describe("tiny models in node-llama-cpp", () => {
    test("the base loads as a ChatML llama model with an 8192-token context", async () => {
        assert.equal(model.trainContextSize, TINY_MODEL_SHAPE.contextLength);
        assert.equal(model.tokens.bosString, "<s>");
        assert.equal(model.tokens.eosString, "<|im_end|>");
        const tokens = model.tokenize("import numpy as np");
        assert.ok(tokens.length <= 6, `"import numpy as np" took ${tokens.length} tokens`);
        await withContext(undefined, async (context) => {
            const session = new LlamaChatSession({contextSequence: context.getSequence()});
            assert.ok(session.chatWrapper instanceof ChatMLChatWrapper, session.chatWrapper.constructor.name);
            session.dispose();
        });
    });

    test("greedy generation is deterministic and every adapter changes it", async () => {
        const prompt = "import numpy as np";
        const base = await greedyTokens(undefined, prompt, 6);
        assert.deepEqual(await greedyTokens(undefined, prompt, 6), base);

        const adapterOutputs = [];
        for (const adapterPath of Object.values(paths.adapters)) {
            const withAdapter = await greedyTokens(adapterPath, prompt, 6);
            assert.deepEqual(await greedyTokens(adapterPath, prompt, 6), withAdapter, adapterPath);
            assert.notDeepEqual(withAdapter, base, adapterPath);
            adapterOutputs.push(withAdapter.join(","));
        }
        assert.equal(new Set(adapterOutputs).size, adapterOutputs.length, "adapters should differ from each other");
    });

    test("JSON under a grammar completes with short strings", async () => {
        const grammar = await llama.createGrammarForJsonSchema({
            type: "object",
            properties: {
                a: {type: "string"},
                b: {type: "array", items: {type: "string"}, maxItems: 4}
            }
        } as const);
        for (const adapterPath of [undefined, paths.adapters.cg]) {
            await withContext(adapterPath, async (context) => {
                const session = new LlamaChatSession({contextSequence: context.getSequence()});
                for (const temperature of [0, 0.8]) {
                    session.resetChatHistory();
                    const text = await session.prompt("Read a DHT22 every 5 seconds and alert over MQTT above 30 degrees.", {
                        grammar,
                        maxTokens: 400,
                        temperature,
                        seed: 3
                    });
                    const parsed = grammar.parse(text);
                    for (const value of [parsed.a, ...(parsed.b ?? [])])
                        assert.ok(value == null || value.length < 300, `string too long: ${JSON.stringify(value)}`);
                }
                session.dispose();
            });
        }
    });

    test("an adapter made for another shape fails to load", async () => {
        await assert.rejects(
            withContext(paths.mismatchedAdapter, async () => undefined),
            /Failed to initialize LoRA adapter/
        );
    });

    test("a truncated base model fails to load", async () => {
        const copy = path.join(workDir, "truncated-base.gguf");
        await copyFile(paths.base, copy);
        await truncate(copy, Math.floor((await readFile(copy)).length / 2));
        await assert.rejects(async () => {
            const broken = await llama.loadModel({modelPath: copy});
            await broken.dispose();
        }, /Failed to load model/);
    });
});

describe("a wider test model (the benchmark's memory figures)", () => {
    test("a custom shape with grouped KV heads writes, loads with its adapters and finishes JSON under a grammar", async () => {
        const shape = {embeddingLength: 256, blockCount: 3, headCount: 8, headCountKv: 2, feedForwardLength: 512};
        const wide = await writeTinyTestModels(path.join(workDir, "wide"), {shape});
        const info = await readGgufFileInfo(wide.base, {logWarnings: false});
        const dimensions = (name: string) => info.tensorInfo!.find((tensor) => tensor.name === name)?.dimensions.map(Number);
        assert.deepEqual(dimensions("blk.2.attn_k.weight"), [256, 64]);
        assert.deepEqual(dimensions("blk.2.ffn_down.weight"), [512, 256]);
        assert.equal((await verifyGgufFile(wide.base)).tensorCount, 3 + 9 * shape.blockCount);

        const wideModel = await llama.loadModel({modelPath: wide.base});
        try {
            const grammar = await llama.createGrammarForJsonSchema({type: "object", properties: {a: {type: "string"}}} as const);
            for (const adapterPath of Object.values(wide.adapters)) {
                const context = await wideModel.createContext({contextSize: 512, threads: 1, lora: {adapters: [{filePath: adapterPath}]}});
                try {
                    const session = new LlamaChatSession({contextSequence: context.getSequence()});
                    const text = await session.prompt("Read a DHT22 every 5 seconds.", {grammar, maxTokens: 200, temperature: 0});
                    const parsed = grammar.parse(text);
                    assert.ok(parsed.a == null || parsed.a.length < 150, `string too long: ${JSON.stringify(parsed.a)}`);
                    session.dispose();
                } finally {
                    await context.dispose();
                }
            }
            await assert.rejects(wideModel.createContext({contextSize: 512, lora: {adapters: [{filePath: wide.mismatchedAdapter}]}}), /Failed to initialize LoRA adapter/);
        } finally {
            await wideModel.dispose();
        }
    });
});
