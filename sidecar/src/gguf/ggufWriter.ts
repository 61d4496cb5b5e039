import {randomBytes} from "node:crypto";
import {open, rename, rm, stat, writeFile} from "node:fs/promises";
import path from "node:path";
import {GgmlType, readGgufFileInfo} from "node-llama-cpp";

export const GGUF_ALIGNMENT = 32;

const GGUF_MAGIC = "GGUF";
const GGUF_VERSION = 3;

/** Value type ids from the GGUF specification. */
enum GgufValueType {
    Uint32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9
}

export type GgufMetadataEntry =
    | {type: "uint32"; value: number}
    | {type: "int32"; value: number}
    | {type: "float32"; value: number}
    | {type: "bool"; value: boolean}
    | {type: "string"; value: string}
    | {type: "stringArray"; value: readonly string[]}
    | {type: "float32Array"; value: ArrayLike<number>}
    | {type: "int32Array"; value: ArrayLike<number>}
    | {type: "uint32Array"; value: ArrayLike<number>};

export type GgufF32Tensor = {
    name: string;
    /** ggml order: the first dimension is the contiguous one, so a weight matrix is `[nIn, nOut]`. */
    dimensions: readonly number[];
    data: Float32Array;
};

export type VerifiedGgufFile = {
    fileSize: number;
    dataSectionOffset: number;
    tensorCount: number;
    metadataKeyCount: number;
};

export function paddedSize(size: number, alignment: number = GGUF_ALIGNMENT): number {
    return Math.ceil(size / alignment) * alignment;
}

/**
 * Collects metadata and F32 tensors in insertion order and serialises them as a GGUF v3 file.
 * `general.alignment` is always written (32), as the first key.
 */
export class GgufWriter {
    private readonly metadata = new Map<string, GgufMetadataEntry>();
    private readonly tensors: GgufF32Tensor[] = [];
    private readonly tensorNames = new Set<string>();

    public constructor() {
        this.setUint32("general.alignment", GGUF_ALIGNMENT);
    }

    public setUint32(key: string, value: number): this {
        assertIntegerInRange(key, value, 0, 0xffffffff);
        return this.set(key, {type: "uint32", value});
    }

    public setInt32(key: string, value: number): this {
        assertIntegerInRange(key, value, -0x80000000, 0x7fffffff);
        return this.set(key, {type: "int32", value});
    }

    public setFloat32(key: string, value: number): this {
        return this.set(key, {type: "float32", value});
    }

    public setBool(key: string, value: boolean): this {
        return this.set(key, {type: "bool", value});
    }

    public setString(key: string, value: string): this {
        return this.set(key, {type: "string", value});
    }

    public setStringArray(key: string, value: readonly string[]): this {
        return this.set(key, {type: "stringArray", value});
    }

    public setFloat32Array(key: string, value: ArrayLike<number>): this {
        return this.set(key, {type: "float32Array", value});
    }

    public setInt32Array(key: string, value: ArrayLike<number>): this {
        for (let i = 0; i < value.length; i++)
            assertIntegerInRange(`${key}[${i}]`, value[i]!, -0x80000000, 0x7fffffff);
        return this.set(key, {type: "int32Array", value});
    }

    public setUint32Array(key: string, value: ArrayLike<number>): this {
        for (let i = 0; i < value.length; i++)
            assertIntegerInRange(`${key}[${i}]`, value[i]!, 0, 0xffffffff);
        return this.set(key, {type: "uint32Array", value});
    }

    public addF32Tensor(name: string, dimensions: readonly number[], data: Float32Array): this {
        if (this.tensorNames.has(name))
            throw new Error(`GGUF tensor "${name}" was added twice`);
        if (dimensions.length < 1 || dimensions.length > 4 || dimensions.some((dim) => !Number.isInteger(dim) || dim < 1))
            throw new Error(`GGUF tensor "${name}" has invalid dimensions [${dimensions.join(", ")}]`);
        const elementCount = dimensions.reduce((product, dim) => product * dim, 1);
        if (elementCount !== data.length)
            throw new Error(`GGUF tensor "${name}" has ${data.length} values but dimensions [${dimensions.join(", ")}] need ${elementCount}`);

        this.tensorNames.add(name);
        this.tensors.push({name, dimensions: [...dimensions], data});
        return this;
    }

    public toBuffer(): Buffer {
        const header = new ByteSink();
        header.writeAscii(GGUF_MAGIC);
        header.writeUint32(GGUF_VERSION);
        header.writeUint64(this.tensors.length);
        header.writeUint64(this.metadata.size);

        for (const [key, entry] of this.metadata) {
            header.writeString(key);
            writeMetadataValue(header, entry);
        }

        let dataOffset = 0;
        for (const tensor of this.tensors) {
            header.writeString(tensor.name);
            header.writeUint32(tensor.dimensions.length);
            for (const dim of tensor.dimensions)
                header.writeUint64(dim);
            header.writeUint32(GgmlType.F32);
            header.writeUint64(dataOffset);
            dataOffset += paddedSize(tensor.data.byteLength);
        }

        const headerBytes = header.toBuffer();
        const dataSectionOffset = paddedSize(headerBytes.length);
        const file = Buffer.alloc(dataSectionOffset + dataOffset);
        headerBytes.copy(file, 0);

        let position = dataSectionOffset;
        for (const tensor of this.tensors) {
            const bytes = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
            if (isLittleEndianHost)
                bytes.copy(file, position);
            else
                for (let i = 0; i < tensor.data.length; i++)
                    file.writeFloatLE(tensor.data[i]!, position + i * 4);
            position += paddedSize(tensor.data.byteLength);
        }
        return file;
    }

    /** Writes to a temporary file in the same folder and renames it, so `filePath` is never half-written. */
    public async writeFile(filePath: string): Promise<void> {
        const absolutePath = path.resolve(filePath);
        const tempPath = path.join(
            path.dirname(absolutePath),
            `.${path.basename(absolutePath)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`
        );
        try {
            await writeFile(tempPath, this.toBuffer());
            await rename(tempPath, absolutePath);
        } catch (error) {
            await rm(tempPath, {force: true});
            throw error;
        }
    }

    private set(key: string, entry: GgufMetadataEntry): this {
        if (key.length === 0)
            throw new Error("GGUF metadata key must not be empty");
        this.metadata.set(key, entry);
        return this;
    }
}

/**
 * Reads a GGUF file back and throws if its layout is not what llama.cpp needs: tensor offsets must be the
 * running padded totals, the file must end exactly after the last padded tensor, and no F32 tensor may be
 * all zeros or hold non-finite values (a truncated buffer loads without complaint but gives uniform logits).
 */
export async function verifyGgufFile(filePath: string): Promise<VerifiedGgufFile> {
    const absolutePath = path.resolve(filePath);
    const describe = (problem: string) => new Error(`Invalid GGUF file ${absolutePath}: ${problem}`);

    const fileSize = (await stat(absolutePath)).size;
    const handle = await open(absolutePath, "r");
    try {
        const start = Buffer.alloc(8);
        await handle.read(start, 0, 8, 0);
        if (start.toString("latin1", 0, 4) !== GGUF_MAGIC)
            throw describe("it does not start with the GGUF magic");
        if (start.readUInt32LE(4) !== GGUF_VERSION)
            throw describe(`expected version ${GGUF_VERSION}, found ${start.readUInt32LE(4)}`);

        let info: Awaited<ReturnType<typeof readGgufFileInfo>>;
        try {
            info = await readGgufFileInfo(absolutePath, {sourceType: "filesystem", logWarnings: false});
        } catch (error) {
            throw describe(`its header cannot be parsed (${error instanceof Error ? error.message : String(error)})`);
        }

        const metadata = info.metadata as unknown as {general?: {alignment?: number}};
        const alignment = Number(metadata.general?.alignment ?? GGUF_ALIGNMENT);
        const dataSectionOffset = info.infoEndOffset;
        if (dataSectionOffset == null || info.tensorInfo == null)
            throw describe("its tensor infos could not be read");
        if (dataSectionOffset % alignment !== 0)
            throw describe(`the data section starts at ${dataSectionOffset}, which is not a multiple of the alignment ${alignment}`);

        let expectedOffset = 0;
        for (const tensor of info.tensorInfo) {
            const offset = Number(tensor.offset);
            if (offset !== expectedOffset)
                throw describe(`tensor "${tensor.name}" is at data offset ${offset}, expected ${expectedOffset}`);
            if (tensor.ggmlType !== GgmlType.F32)
                throw describe(`tensor "${tensor.name}" has ggml type ${tensor.ggmlType}; only F32 can be verified`);

            const elementCount = tensor.dimensions.reduce<number>((product, dim) => product * Number(dim), 1);
            const byteLength = elementCount * 4;
            const fileOffset = dataSectionOffset + offset;
            if (fileOffset + byteLength > fileSize)
                throw describe(`tensor "${tensor.name}" needs bytes ${fileOffset}..${fileOffset + byteLength} but the file has ${fileSize}`);

            const bytes = Buffer.alloc(byteLength);
            await handle.read(bytes, 0, byteLength, fileOffset);
            checkTensorValues(tensor.name, bytes, describe);
            expectedOffset += paddedSize(byteLength, alignment);
        }

        const expectedSize = dataSectionOffset + expectedOffset;
        if (fileSize !== expectedSize)
            throw describe(`file size is ${fileSize} bytes, expected ${expectedSize}`);

        return {
            fileSize,
            dataSectionOffset,
            tensorCount: info.tensorInfo.length,
            metadataKeyCount: countMetadataKeys(info.metadata)
        };
    } finally {
        await handle.close();
    }
}

function checkTensorValues(name: string, bytes: Buffer, describe: (problem: string) => Error): void {
    let hasNonZero = false;
    for (let position = 0; position < bytes.length; position += 4) {
        const value = bytes.readFloatLE(position);
        if (!Number.isFinite(value))
            throw describe(`tensor "${name}" holds a non-finite value at element ${position / 4}`);
        if (value !== 0)
            hasNonZero = true;
    }
    if (!hasNonZero)
        throw describe(`tensor "${name}" is all zeros (was its buffer sized with length instead of byteLength?)`);
}

function countMetadataKeys(value: unknown): number {
    if (value == null || typeof value !== "object" || Array.isArray(value))
        return 1;
    return Object.values(value).reduce<number>((count, child) => count + countMetadataKeys(child), 0);
}

function writeMetadataValue(sink: ByteSink, entry: GgufMetadataEntry): void {
    switch (entry.type) {
        case "uint32":
            sink.writeUint32(GgufValueType.Uint32);
            sink.writeUint32(entry.value);
            return;
        case "int32":
            sink.writeUint32(GgufValueType.Int32);
            sink.writeInt32(entry.value);
            return;
        case "float32":
            sink.writeUint32(GgufValueType.Float32);
            sink.writeFloat32(entry.value);
            return;
        case "bool":
            sink.writeUint32(GgufValueType.Bool);
            sink.writeUint8(entry.value ? 1 : 0);
            return;
        case "string":
            sink.writeUint32(GgufValueType.String);
            sink.writeString(entry.value);
            return;
        case "stringArray":
            writeArrayHeader(sink, GgufValueType.String, entry.value.length);
            for (const item of entry.value)
                sink.writeString(item);
            return;
        case "float32Array":
            writeArrayHeader(sink, GgufValueType.Float32, entry.value.length);
            for (let i = 0; i < entry.value.length; i++)
                sink.writeFloat32(entry.value[i]!);
            return;
        case "int32Array":
            writeArrayHeader(sink, GgufValueType.Int32, entry.value.length);
            for (let i = 0; i < entry.value.length; i++)
                sink.writeInt32(entry.value[i]!);
            return;
        case "uint32Array":
            writeArrayHeader(sink, GgufValueType.Uint32, entry.value.length);
            for (let i = 0; i < entry.value.length; i++)
                sink.writeUint32(entry.value[i]!);
            return;
    }
}

function writeArrayHeader(sink: ByteSink, elementType: GgufValueType, length: number): void {
    sink.writeUint32(GgufValueType.Array);
    sink.writeUint32(elementType);
    sink.writeUint64(length);
}

function assertIntegerInRange(key: string, value: number, min: number, max: number): void {
    if (!Number.isInteger(value) || value < min || value > max)
        throw new Error(`GGUF metadata "${key}" must be an integer in [${min}, ${max}], got ${value}`);
}

const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Growable little-endian byte buffer for the header part of the file. */
class ByteSink {
    private buffer = Buffer.alloc(64 * 1024);
    private length = 0;

    public writeAscii(text: string): void {
        this.ensure(text.length);
        this.length += this.buffer.write(text, this.length, "latin1");
    }

    public writeUint8(value: number): void {
        this.ensure(1);
        this.length = this.buffer.writeUInt8(value, this.length);
    }

    public writeUint32(value: number): void {
        this.ensure(4);
        this.length = this.buffer.writeUInt32LE(value, this.length);
    }

    public writeInt32(value: number): void {
        this.ensure(4);
        this.length = this.buffer.writeInt32LE(value, this.length);
    }

    public writeFloat32(value: number): void {
        this.ensure(4);
        this.length = this.buffer.writeFloatLE(value, this.length);
    }

    public writeUint64(value: number): void {
        this.ensure(8);
        this.length = this.buffer.writeBigUInt64LE(BigInt(value), this.length);
    }

    public writeString(text: string): void {
        const byteLength = Buffer.byteLength(text, "utf8");
        this.writeUint64(byteLength);
        this.ensure(byteLength);
        this.length += this.buffer.write(text, this.length, "utf8");
    }

    public toBuffer(): Buffer {
        return this.buffer.subarray(0, this.length);
    }

    private ensure(extra: number): void {
        if (this.length + extra <= this.buffer.length)
            return;
        const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + extra));
        this.buffer.copy(grown, 0, 0, this.length);
        this.buffer = grown;
    }
}
