/**
 * A small reader for the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then
 * the raw little-endian data. Reads F32, F16 and BF16 tensors into Float32Arrays (exactly: every
 * F16 and BF16 value is representable in F32); other dtypes are named in a clear error.
 */
import { open, stat } from "node:fs/promises";

export type SafetensorsDtype = "F32" | "F16" | "BF16";
const supportedDtypes: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

export interface SafetensorsTensorInfo {
  name: string;
  dtype: string;
  /** Row-major, as torch writes it: a linear layer's weight is [out, in]. */
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

/** Header length limit from the format's reference implementation (100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsFile {
  private constructor(
    readonly filePath: string,
    readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>,
    readonly metadata: Record<string, string>,
    private readonly dataStart: number,
  ) {}

  static async open(filePath: string): Promise<SafetensorsFile> {
    const fail = (problem: string) => new SafetensorsError(`${filePath} is not a valid safetensors file: ${problem}`);
    const size = (await stat(filePath)).size;
    if (size < 8) throw fail("it is shorter than 8 bytes");
    const handle = await open(filePath, "r");
    try {
      const lengthBytes = Buffer.alloc(8);
      await handle.read(lengthBytes, 0, 8, 0);
      const headerLength = Number(lengthBytes.readBigUInt64LE(0));
      if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) throw fail(`its header length ${headerLength} does not fit the file (${size} bytes)`);
      const headerBytes = Buffer.alloc(headerLength);
      await handle.read(headerBytes, 0, headerLength, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBytes.toString("utf8"));
      } catch (error) {
        throw fail(`its header is not JSON (${(error as Error).message})`);
      }
      if (header === null || typeof header !== "object" || Array.isArray(header)) throw fail("its header is not a JSON object");
      const dataStart = 8 + headerLength;
      const dataLength = size - dataStart;
      const tensors = new Map<string, SafetensorsTensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, entry] of Object.entries(header)) {
        if (name === "__metadata__") {
          metadata = (entry ?? {}) as Record<string, string>;
          continue;
        }
        const value = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        if (typeof value?.dtype !== "string" || !Array.isArray(value.shape) || !Array.isArray(value.data_offsets) || value.data_offsets.length !== 2)
          throw fail(`tensor "${name}" has no dtype, shape or data_offsets`);
        const shape = value.shape.map(Number);
        const [begin, end] = value.data_offsets.map(Number);
        if (shape.some((dim) => !Number.isInteger(dim) || dim < 0)) throw fail(`tensor "${name}" has an invalid shape ${JSON.stringify(value.shape)}`);
        if (!(begin >= 0 && end >= begin && end <= dataLength)) throw fail(`tensor "${name}" has data offsets ${begin}..${end} outside the ${dataLength}-byte data section`);
        const elementSize = supportedDtypes[value.dtype as SafetensorsDtype];
        if (elementSize !== undefined) {
          const elements = shape.reduce((product, dim) => product * dim, 1);
          if (elements * elementSize !== end - begin) throw fail(`tensor "${name}" (${value.dtype} ${JSON.stringify(shape)}) needs ${elements * elementSize} bytes but has ${end - begin}`);
        }
        tensors.set(name, { name, dtype: value.dtype, shape, begin, end });
      }
      return new SafetensorsFile(filePath, tensors, metadata, dataStart);
    } finally {
      await handle.close();
    }
  }

  /** The tensor's values as float32, row-major in `shape`. */
  async readF32(name: string): Promise<{ shape: number[]; data: Float32Array; dtype: SafetensorsDtype }> {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(`${this.filePath} has no tensor "${name}"`);
    if (!(info.dtype in supportedDtypes))
      throw new SafetensorsError(`${this.filePath}: tensor "${name}" is ${info.dtype}; only F32, F16 and BF16 tensors can be read (quantized or integer adapters are not supported)`);
    const bytes = Buffer.alloc(info.end - info.begin);
    const handle = await open(this.filePath, "r");
    try {
      await handle.read(bytes, 0, bytes.length, this.dataStart + info.begin);
    } finally {
      await handle.close();
    }
    return { shape: info.shape, data: decodeToF32(bytes, info.dtype as SafetensorsDtype), dtype: info.dtype as SafetensorsDtype };
  }
}

export function decodeToF32(bytes: Buffer, dtype: SafetensorsDtype): Float32Array {
  if (dtype === "F32") {
    if (isLittleEndianHost) return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    const out = new Float32Array(bytes.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
    return out;
  }
  const count = bytes.length / 2;
  if (dtype === "BF16") {
    // bfloat16 is the upper half of a float32.
    const bits = new Uint32Array(count);
    for (let i = 0; i < count; i++) bits[i] = (bytes.readUInt16LE(i * 2) << 16) >>> 0;
    return new Float32Array(bits.buffer);
  }
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = f16ToF32(bytes.readUInt16LE(i * 2));
  return out;
}

const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function f16ToF32(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >> 10) & 0x1f;
  const fraction = half & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}
