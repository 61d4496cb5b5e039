/**
 * NumPy .npy files (format version 1.0): the magic "\x93NUMPY", version 1.0, a little-endian
 * uint16 header length, and an ASCII Python dict literal (descr, fortran_order, shape) padded
 * with spaces and a newline so the data starts on a 64-byte boundary; then the raw C-order data.
 */
import { readFile, writeFile } from "node:fs/promises";

export type NpyArray = { dtype: "<f4"; data: Float32Array; shape: number[] } | { dtype: "<i8"; data: BigInt64Array; shape: number[] } | { dtype: "<i4"; data: Int32Array; shape: number[] };

export function encodeNpy(array: NpyArray): Buffer {
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(", ")})`;
  let header = `{'descr': '${array.dtype}', 'fortran_order': False, 'shape': ${shape}, }`;
  const unpadded = 10 + header.length + 1;
  header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const prefix = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(prefix);
  prefix.writeUInt16LE(header.length, 8);
  const data = Buffer.from(array.data.buffer, array.data.byteOffset, array.data.byteLength);
  return Buffer.concat([prefix, Buffer.from(header, "latin1"), data]);
}

export function decodeNpy(buffer: Buffer): NpyArray {
  if (buffer.readUInt32BE(0) !== 0x934e554d || buffer.toString("latin1", 4, 6) !== "PY") throw new Error("not a .npy file");
  const major = buffer[6];
  const headerLength = major === 1 ? buffer.readUInt16LE(8) : buffer.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buffer.toString("latin1", start, start + headerLength);
  const descr = header.match(/'descr':\s*'([^']+)'/)?.[1];
  const shapeText = header.match(/'shape':\s*\(([^)]*)\)/)?.[1] ?? "";
  if (/'fortran_order':\s*True/.test(header)) throw new Error("Fortran-ordered .npy files are not supported");
  const shape = shapeText
    .split(",")
    .map((dim) => dim.trim())
    .filter(Boolean)
    .map(Number);
  const count = shape.reduce((product, dim) => product * dim, 1);
  const offset = start + headerLength;
  const bytes = buffer.subarray(offset);
  const aligned = new Uint8Array(bytes); // a fresh buffer at offset 0: typed arrays need aligned offsets
  if (descr === "<f4") return { dtype: "<f4", data: new Float32Array(aligned.buffer, aligned.byteOffset, count), shape };
  if (descr === "<i8") return { dtype: "<i8", data: new BigInt64Array(aligned.buffer, aligned.byteOffset, count), shape };
  if (descr === "<i4") return { dtype: "<i4", data: new Int32Array(aligned.buffer, aligned.byteOffset, count), shape };
  throw new Error(`.npy dtype ${descr} is not supported (<f4, <i4, <i8 are)`);
}

export async function writeNpy(filePath: string, array: NpyArray): Promise<void> {
  await writeFile(filePath, encodeNpy(array));
}

export async function readNpy(filePath: string): Promise<NpyArray> {
  return decodeNpy(await readFile(filePath));
}

/** The values of a 1-D integer or float array as numbers. */
export function npyNumbers(array: NpyArray): number[] {
  return Array.from(array.data as ArrayLike<number | bigint>, (value) => Number(value));
}
