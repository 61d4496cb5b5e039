/**
 * WFDB records, written and read without the wfdb package, after the WFDB specification
 * (header(5), signal(5), annot(5) of the WFDB Applications Guide):
 *
 * - Header (.hea): a record line `NAME NSIG FS NSAMP`, then one line per signal:
 *   `FILE FORMAT GAIN(BASELINE)/UNITS ADCRES ADCZERO INITVAL CHECKSUM BLOCKSIZE DESCRIPTION`;
 *   the checksum is the sum of the signal's samples modulo 2^16, as a signed 16-bit number.
 * - Signal format 212: two 12-bit two's-complement samples in three bytes. Sample 0 is the low 12
 *   bits of the first little-endian byte pair; the pair's high 4 bits are sample 1's high 4 bits;
 *   the third byte is sample 1's low 8 bits. Signals of one file are interleaved frame by frame.
 *   Format 16 (16-bit little-endian) is read too.
 * - Annotations (MIT format, e.g. .atr): 16-bit little-endian words, annotation type in the top 6
 *   bits, time since the previous annotation (samples) in the low 10. Type 59 (SKIP) is followed
 *   by a 32-bit interval in PDP-11 order (high 16-bit word first, each word little-endian); 60
 *   (NUM), 61 (SUB) and 62 (CHN) set fields; 63 (AUX) carries I bytes of text (padded to even);
 *   a zero word ends the file.
 */
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";

export interface WfdbSignalInfo {
  fileName: string;
  format: number;
  gain: number;
  baseline: number;
  units: string;
  adcResolution: number;
  adcZero: number;
  initialValue: number;
  checksum: number;
  blockSize: number;
  description: string;
}

export interface WfdbHeader {
  recordName: string;
  nSignals: number;
  fs: number;
  nSamples: number;
  signals: WfdbSignalInfo[];
}

export interface WfdbRecord {
  header: WfdbHeader;
  /** Digital samples (ADC units) per signal. */
  signals: Int16Array[];
}

export interface Annotation {
  sample: number;
  code: number;
  subtype?: number;
  chan?: number;
  num?: number;
  aux?: string;
}

/** Annotation codes (ecgcodes.h) that mark a beat (QRS complex). */
export const BEAT_CODES = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 25, 30, 34, 35, 38, 41]);
export const NORMAL = 1;
const SKIP = 59;
const NUM = 60;
const SUB = 61;
const CHN = 62;
const AUX = 63;

export function checksum16(samples: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum = (sum + samples[i]) & 0xffff;
  return sum >= 0x8000 ? sum - 0x10000 : sum;
}

export function formatHeader(header: WfdbHeader): string {
  const lines = [`${header.recordName} ${header.nSignals} ${header.fs} ${header.nSamples}`];
  for (const signal of header.signals) {
    lines.push(
      `${signal.fileName} ${signal.format} ${signal.gain}(${signal.baseline})/${signal.units} ${signal.adcResolution} ${signal.adcZero} ${signal.initialValue} ${signal.checksum} ${signal.blockSize} ${signal.description}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export function parseHeader(text: string): WfdbHeader {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  if (!lines.length) throw new Error("empty WFDB header");
  const record = lines[0].split(/\s+/);
  const recordName = record[0].split("/")[0];
  if (record[0].includes("/")) throw new Error("multi-segment WFDB records are not supported");
  const nSignals = Number(record[1]);
  const fs = record[2] ? Number(record[2].split("/")[0].split("(")[0]) : 250;
  const nSamples = record[3] ? Number(record[3]) : 0;
  const signals: WfdbSignalInfo[] = [];
  for (let i = 0; i < nSignals; i++) {
    const fields = (lines[1 + i] ?? "").split(/\s+/);
    if (fields.length < 2) throw new Error(`the header has no line for signal ${i}`);
    const format = Number(fields[1].split(/[x:+]/)[0]);
    const gainField = fields[2] ?? "200";
    const gainMatch = gainField.match(/^([-+0-9.eE]+)(?:\(([-+0-9]+)\))?(?:\/(\S+))?$/);
    const adcZero = fields[4] !== undefined ? Number(fields[4]) : 0;
    const gain = gainMatch ? Number(gainMatch[1]) || 200 : 200;
    signals.push({
      fileName: fields[0],
      format,
      gain,
      baseline: gainMatch?.[2] !== undefined ? Number(gainMatch[2]) : adcZero,
      units: gainMatch?.[3] ?? "mV",
      adcResolution: fields[3] !== undefined ? Number(fields[3]) : 12,
      adcZero,
      initialValue: fields[5] !== undefined ? Number(fields[5]) : 0,
      checksum: fields[6] !== undefined ? Number(fields[6]) : 0,
      blockSize: fields[7] !== undefined ? Number(fields[7]) : 0,
      description: fields.slice(8).join(" "),
    });
  }
  return { recordName, nSignals, fs, nSamples, signals };
}

/** Packs interleaved samples in format 212; an odd count ends with two bytes. */
export function encode212(samples: ArrayLike<number>): Buffer {
  const out = Buffer.alloc(Math.ceil((samples.length * 3) / 2));
  let o = 0;
  for (let i = 0; i < samples.length; i += 2) {
    if (samples[i] < -2048 || samples[i] > 2047) throw new RangeError(`sample ${samples[i]} does not fit 12 bits`);
    const a = samples[i] & 0xfff;
    out[o++] = a & 0xff;
    if (i + 1 < samples.length) {
      if (samples[i + 1] < -2048 || samples[i + 1] > 2047) throw new RangeError(`sample ${samples[i + 1]} does not fit 12 bits`);
      const b = samples[i + 1] & 0xfff;
      out[o++] = ((b >> 8) << 4) | (a >> 8);
      out[o++] = b & 0xff;
    } else {
      out[o++] = a >> 8;
    }
  }
  return out;
}

export function decode212(buffer: Uint8Array, count: number): Int16Array {
  const out = new Int16Array(count);
  let o = 0;
  for (let i = 0; o < count && i + 1 < buffer.length; i += 3) {
    const pair = buffer[i] | (buffer[i + 1] << 8);
    const a = pair & 0xfff;
    out[o++] = a >= 0x800 ? a - 0x1000 : a;
    if (o >= count || i + 2 >= buffer.length) break;
    const b = ((pair >> 12) << 8) | buffer[i + 2];
    out[o++] = b >= 0x800 ? b - 0x1000 : b;
  }
  return out;
}

export interface SignalToWrite {
  /** Physical values (e.g. mV). */
  values: ArrayLike<number>;
  gain?: number;
  units?: string;
  description?: string;
}

/** Writes `<dir>/<name>.hea` and `<name>.dat` (format 212, all signals in one file). */
export async function writeRecord(dir: string, name: string, fs: number, signals: SignalToWrite[]): Promise<WfdbHeader> {
  const nSamples = signals[0]?.values.length ?? 0;
  const digital = signals.map((signal) => {
    const gain = signal.gain ?? 200;
    const samples = new Int16Array(nSamples);
    for (let i = 0; i < nSamples; i++) samples[i] = Math.max(-2047, Math.min(2047, Math.round(signal.values[i] * gain)));
    return samples;
  });
  const interleaved = new Int16Array(nSamples * signals.length);
  for (let i = 0; i < nSamples; i++) for (let s = 0; s < signals.length; s++) interleaved[i * signals.length + s] = digital[s][i];
  const header: WfdbHeader = {
    recordName: name,
    nSignals: signals.length,
    fs,
    nSamples,
    signals: signals.map((signal, s) => ({
      fileName: `${name}.dat`,
      format: 212,
      gain: signal.gain ?? 200,
      baseline: 0,
      units: signal.units ?? "mV",
      adcResolution: 12,
      adcZero: 0,
      initialValue: digital[s][0] ?? 0,
      checksum: checksum16(digital[s]),
      blockSize: 0,
      description: signal.description ?? `ECG${s}`,
    })),
  };
  await writeFile(path.join(dir, `${name}.dat`), encode212(interleaved));
  await writeFile(path.join(dir, `${name}.hea`), formatHeader(header));
  return header;
}

/** Reads a record by its path without extension; checks the samples against the header's checksums. */
export async function readRecord(recordPath: string): Promise<WfdbRecord> {
  const header = parseHeader(await readFile(`${recordPath}.hea`, "utf8"));
  const dir = path.dirname(recordPath);
  const byFile = new Map<string, number[]>();
  header.signals.forEach((signal, index) => byFile.set(signal.fileName, [...(byFile.get(signal.fileName) ?? []), index]));
  const signals: Int16Array[] = header.signals.map(() => new Int16Array(header.nSamples));
  for (const [fileName, indexes] of byFile) {
    const format = header.signals[indexes[0]].format;
    const bytes = await readFile(path.join(dir, fileName));
    const total = header.nSamples * indexes.length;
    let interleaved: Int16Array;
    if (format === 212) interleaved = decode212(bytes, total);
    else if (format === 16) {
      interleaved = new Int16Array(total);
      for (let i = 0; i < total && 2 * i + 1 < bytes.length; i++) interleaved[i] = bytes.readInt16LE(2 * i);
    } else throw new Error(`WFDB signal format ${format} is not supported (212 and 16 are)`);
    for (let i = 0; i < header.nSamples; i++) indexes.forEach((signalIndex, k) => (signals[signalIndex][i] = interleaved[i * indexes.length + k]));
  }
  header.signals.forEach((signal, index) => {
    if (signal.checksum !== 0 && checksum16(signals[index]) !== signal.checksum)
      throw new Error(`checksum mismatch in ${recordPath} signal ${index}: header ${signal.checksum}, data ${checksum16(signals[index])}`);
  });
  return { header, signals };
}

/** Physical values of one signal: (digital - baseline) / gain. */
export function toPhysical(record: WfdbRecord, index: number): Float64Array {
  const { gain, baseline } = record.header.signals[index];
  const digital = record.signals[index];
  const out = new Float64Array(digital.length);
  for (let i = 0; i < digital.length; i++) out[i] = (digital[i] - baseline) / gain;
  return out;
}

export function encodeAnnotations(annotations: Annotation[]): Buffer {
  const bytes: number[] = [];
  const pushWord = (word: number) => bytes.push(word & 0xff, (word >> 8) & 0xff);
  let previous = 0;
  let chan = 0;
  let num = 0;
  for (const annotation of [...annotations].sort((a, b) => a.sample - b.sample)) {
    const interval = annotation.sample - previous;
    if (interval < 0) throw new RangeError("annotations must not go back in time");
    if (interval > 1023) {
      pushWord(SKIP << 10);
      pushWord((interval >>> 16) & 0xffff);
      pushWord(interval & 0xffff);
      pushWord((annotation.code << 10) | 0);
    } else {
      pushWord((annotation.code << 10) | interval);
    }
    if (annotation.subtype) pushWord((SUB << 10) | (annotation.subtype & 0x3ff));
    if ((annotation.chan ?? 0) !== chan) {
      chan = annotation.chan ?? 0;
      pushWord((CHN << 10) | (chan & 0x3ff));
    }
    if ((annotation.num ?? 0) !== num) {
      num = annotation.num ?? 0;
      pushWord((NUM << 10) | (num & 0x3ff));
    }
    if (annotation.aux) {
      const text = Buffer.from(annotation.aux, "latin1");
      pushWord((AUX << 10) | text.length);
      bytes.push(...text);
      if (text.length % 2) bytes.push(0);
    }
    previous = annotation.sample;
  }
  pushWord(0);
  return Buffer.from(bytes);
}

export function decodeAnnotations(buffer: Uint8Array): Annotation[] {
  const annotations: Annotation[] = [];
  let time = 0;
  let chan = 0;
  let num = 0;
  let i = 0;
  const word = (at: number) => buffer[at] | (buffer[at + 1] << 8);
  while (i + 1 < buffer.length) {
    const value = word(i);
    i += 2;
    const code = value >> 10;
    const field = value & 0x3ff;
    if (code === 0 && field === 0) break;
    if (code === SKIP) {
      if (i + 3 >= buffer.length) break;
      const interval = ((word(i) << 16) | word(i + 2)) | 0;
      time += interval;
      i += 4;
      continue;
    }
    const last = annotations[annotations.length - 1];
    if (code === NUM) {
      num = field;
      if (last && last.sample === time) last.num = num;
      continue;
    }
    if (code === SUB) {
      if (last) last.subtype = field;
      continue;
    }
    if (code === CHN) {
      chan = field;
      if (last && last.sample === time) last.chan = chan;
      continue;
    }
    if (code === AUX) {
      if (last) last.aux = Buffer.from(buffer.subarray(i, i + field)).toString("latin1").replace(/\0+$/, "");
      i += field + (field % 2);
      continue;
    }
    time += field;
    annotations.push({ sample: time, code, ...(chan ? { chan } : {}), ...(num ? { num } : {}) });
  }
  return annotations;
}

export async function writeAnnotations(filePath: string, annotations: Annotation[]): Promise<void> {
  await writeFile(filePath, encodeAnnotations(annotations));
}

export async function readAnnotations(filePath: string): Promise<Annotation[]> {
  return decodeAnnotations(await readFile(filePath));
}

/** Sample indexes of the beat annotations of a record (e.g. `<record>.atr`). */
export async function readBeatSamples(annotationPath: string): Promise<number[]> {
  return (await readAnnotations(annotationPath)).filter((annotation) => BEAT_CODES.has(annotation.code)).map((annotation) => annotation.sample);
}
