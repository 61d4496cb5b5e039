/**
 * IoT Bench formats and scorers: WFDB (format 212 bit layout from the spec, headers with
 * checksums, MIT annotations with SKIP/AUX/NUM/CHN) written and read back, cross-checked with
 * the independent Python reader of the reference solution; .npy read by NumPy; beat matching,
 * accuracy and pass@k on known answers; the synthetic ECG's ground truth.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { ecgOptionsFor, generateEcg } from "../../sidecar/src/bench/ecgsyn";
import { decodeNpy, encodeNpy, npyNumbers } from "../../sidecar/src/bench/npy";
import { accuracy, combineBeatScores, passAtK, scoreBeats } from "../../sidecar/src/bench/scorers";
import { defaultBenchRoot } from "../../sidecar/src/bench/tasks";
import {
  checksum16,
  decode212,
  decodeAnnotations,
  encode212,
  encodeAnnotations,
  formatHeader,
  parseHeader,
  readBeatSamples,
  readRecord,
  toPhysical,
  writeAnnotations,
  writeRecord,
} from "../../sidecar/src/bench/wfdb";

const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-bench-formats-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("WFDB", () => {
  test("format 212 packs two 12-bit samples in three bytes as the spec lays them out", () => {
    // Sample 0 = low 12 bits of the little-endian first byte pair; sample 1 = high nibble of byte 1, then byte 2.
    assert.deepEqual([...encode212([1, 2])], [0x01, 0x00, 0x02]);
    assert.deepEqual([...encode212([0x123, 0x456])], [0x23, 0x41, 0x56]);
    assert.deepEqual([...encode212([-1, -2048])], [0xff, 0x8f, 0x00]);
    assert.deepEqual([...encode212([2047, -2, 5])], [0xff, 0xf7, 0xfe, 0x05, 0x00], "an odd count ends with two bytes");
    assert.deepEqual([...decode212(Uint8Array.from([0x23, 0x41, 0x56]), 2)], [0x123, 0x456]);
    assert.deepEqual([...decode212(Uint8Array.from([0xff, 0x8f, 0x00]), 2)], [-1, -2048]);
    const samples = Int16Array.from({ length: 1001 }, (_, i) => ((i * 37) % 4096) - 2048);
    assert.deepEqual([...decode212(encode212(samples), samples.length)], [...samples]);
    assert.throws(() => encode212([2048]), RangeError);
  });

  test("headers: format, parse, gain with baseline and units, checksum as signed 16 bits", () => {
    const text = "100 2 360 650000\n100.dat 212 200(1024)/mV 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n";
    const header = parseHeader(text);
    assert.equal(header.fs, 360);
    assert.equal(header.nSamples, 650000);
    assert.equal(header.signals[0].baseline, 1024);
    assert.equal(header.signals[1].baseline, 1024, "no baseline in parentheses: ADC zero");
    assert.equal(header.signals[0].checksum, -22131);
    assert.equal(header.signals[1].description, "V5");
    assert.deepEqual(parseHeader(formatHeader(header)), header);
    assert.equal(checksum16([30000, 30000]), 60000 - 65536);
  });

  test("a record round trip keeps every sample; a damaged file fails its checksum", async () => {
    const values = Float64Array.from({ length: 3601 }, (_, i) => Math.sin(i / 20) * 1.5);
    const other = Float64Array.from({ length: 3601 }, (_, i) => Math.cos(i / 7) * 0.5);
    await writeRecord(scratch, "rt", 360, [{ values, description: "MLII" }, { values: other, description: "V5" }]);
    const record = await readRecord(path.join(scratch, "rt"));
    assert.equal(record.header.nSignals, 2);
    const physical = toPhysical(record, 0);
    for (let i = 0; i < values.length; i++) assert.ok(Math.abs(physical[i] - values[i]) <= 0.5 / 200 + 1e-12);
    assert.ok(Math.abs(toPhysical(record, 1)[100] - other[100]) <= 0.5 / 200 + 1e-12);
    const dat = path.join(scratch, "rt.dat");
    const bytes = readFileSync(dat);
    bytes[30] ^= 0x11;
    writeFileSync(dat, bytes);
    await assert.rejects(readRecord(path.join(scratch, "rt")), /checksum mismatch/);
  });

  test("MIT annotations: long gaps (SKIP), aux text, num and chan fields", async () => {
    const annotations = [
      { sample: 5, code: 28, aux: "(N" },
      { sample: 100, code: 1 },
      { sample: 1500, code: 5, num: 2 },
      { sample: 70_000, code: 1, chan: 1 },
      { sample: 70_300, code: 1, subtype: 3 },
    ];
    const buffer = encodeAnnotations(annotations);
    assert.equal(buffer.readUInt16LE(buffer.length - 2), 0, "ends with a zero word");
    const decoded = decodeAnnotations(buffer);
    assert.deepEqual(
      decoded.map((annotation) => [annotation.sample, annotation.code]),
      annotations.map((annotation) => [annotation.sample, annotation.code]),
    );
    assert.equal(decoded[0].aux, "(N");
    assert.equal(decoded[2].num, 2);
    assert.equal(decoded[3].chan, 1);
    assert.equal(decoded[4].subtype, 3);
    // SKIP: type 59, then the interval as PDP-11 long (high word first).
    const skip = encodeAnnotations([{ sample: 0x12345, code: 1 }]);
    assert.deepEqual([...skip.subarray(0, 8)], [0x00, 59 << 2, 0x01, 0x00, 0x45, 0x23, 0x00, 1 << 2]);
    await writeAnnotations(path.join(scratch, "ann.atr"), annotations);
    assert.deepEqual(await readBeatSamples(path.join(scratch, "ann.atr")), [100, 1500, 70_000, 70_300], "rhythm annotations are not beats");
  });

  test("the reference solution's own Python reader reads what the TypeScript writer wrote", async () => {
    const ecg = generateEcg(ecgOptionsFor(3, 20));
    await writeRecord(scratch, "py", ecg.fs, [{ values: ecg.signal, description: "MLII" }]);
    const reader = path.join(defaultBenchRoot(), "solutions", "ecg-heartbeat", "reference");
    const script = `import sys, json\nsys.path.insert(0, ${JSON.stringify(reader)})\nimport load_record\nr = load_record.run(${JSON.stringify(path.join(scratch, "py"))})\nprint(json.dumps({'fs': r['fs'], 'n': len(r['signal']), 'head': [round(float(v), 4) for v in r['signal'][:50]]}))`;
    const result = JSON.parse(execFileSync("python3", ["-c", script], { encoding: "utf8" }));
    const record = await readRecord(path.join(scratch, "py"));
    assert.equal(result.fs, 360);
    assert.equal(result.n, record.header.nSamples);
    assert.deepEqual(result.head, [...toPhysical(record, 0).subarray(0, 50)].map((value) => Math.round(value * 1e4) / 1e4));
  });
});

describe("synthetic ECG", () => {
  test("beats at the heart rate, one truth per R peak, at the local maximum", () => {
    const options = ecgOptionsFor(7, 30);
    const ecg = generateEcg({ ...options, noiseMv: 0, humMv: 0, wanderMv: 0, burstMv: 0 });
    const expected = (30 * options.meanHr) / 60;
    assert.ok(Math.abs(ecg.rPeaks.length - expected) <= 2, `${ecg.rPeaks.length} beats for ${expected.toFixed(1)}`);
    for (const peak of ecg.rPeaks.slice(1, -1)) {
      const around = ecg.signal.subarray(peak - 20, peak + 21);
      assert.equal(Math.max(...around), ecg.signal[peak]);
    }
    const intervals = ecg.rPeaks.slice(1).map((peak, i) => peak - ecg.rPeaks[i]);
    assert.ok(Math.min(...intervals) > 0.3 * ecg.fs);
    assert.deepEqual(generateEcg(options).rPeaks, generateEcg(options).rPeaks, "seeded");
  });
});

describe("scorers", () => {
  test("beats: one-to-one matching within the tolerance", () => {
    const score = scoreBeats([100, 200, 300, 400], [102, 150, 195, 205, 330, 700], 10);
    assert.deepEqual({ tp: score.tp, fp: score.fp, fn: score.fn }, { tp: 2, fp: 4, fn: 2 });
    assert.equal(score.precision, 2 / 6);
    assert.equal(score.recall, 0.5);
    assert.equal(scoreBeats([100, 200], [100, 200], 0).f1, 1);
    assert.equal(scoreBeats([100], [154], 54).tp, 1, "the window is inclusive");
    assert.equal(scoreBeats([100], [155], 54).tp, 0);
    assert.equal(scoreBeats([100, 110], [105], 10).tp, 1, "a detection matches one beat only");
    assert.deepEqual(scoreBeats([], [], 5), { tp: 0, fp: 0, fn: 0, precision: 0, recall: 0, f1: 0 });
    const total = combineBeatScores([scoreBeats([1, 2], [1, 2], 0), scoreBeats([10], [50], 1)]);
    assert.equal(total.precision, 2 / 3);
    assert.equal(total.recall, 2 / 3);
  });

  test("accuracy counts missing or unreadable predictions as wrong", () => {
    assert.equal(accuracy([1, 2, 3, 4], [1, 2, 0, 4]), 0.75);
    assert.equal(accuracy([1, "2"], [1, 2, 3, 4]), 0.5);
    assert.equal(accuracy([], []), 0);
  });

  test("pass@k: the unbiased estimator", () => {
    assert.ok(Math.abs(passAtK(5, 1, 1) - 0.2) < 1e-12);
    assert.equal(passAtK(5, 1, 5), 1);
    assert.equal(passAtK(5, 0, 3), 0);
    assert.ok(Math.abs(passAtK(10, 3, 5) - (1 - 21 / 252)) < 1e-12);
    assert.ok(Math.abs(passAtK(20, 10, 1) - 0.5) < 1e-12);
    assert.equal(passAtK(3, 1, 5), 1, "k above n is clamped to n");
  });
});

describe(".npy", () => {
  test("NumPy reads what we write, and we read it back", () => {
    const file = path.join(scratch, "a.npy");
    writeFileSync(file, encodeNpy({ dtype: "<f4", data: Float32Array.from([1.5, -2, 3.25, 0, 7, 8]), shape: [2, 3] }));
    const seen = JSON.parse(execFileSync("python3", ["-c", `import numpy as np, json\na = np.load(${JSON.stringify(file)})\nprint(json.dumps([list(a.shape), str(a.dtype), a.tolist()]))`], { encoding: "utf8" }));
    assert.deepEqual(seen, [[2, 3], "float32", [[1.5, -2, 3.25], [0, 7, 8]]]);
    const labels = path.join(scratch, "l.npy");
    execFileSync("python3", ["-c", `import numpy as np\nnp.save(${JSON.stringify(labels)}, np.array([3, 1, 4, 1, 5], dtype=np.int64))`]);
    const decoded = decodeNpy(readFileSync(labels));
    assert.deepEqual(decoded.shape, [5]);
    assert.deepEqual(npyNumbers(decoded), [3, 1, 4, 1, 5]);
    assert.deepEqual([...(decodeNpy(readFileSync(file)).data as Float32Array)], [1.5, -2, 3.25, 0, 7, 8]);
  });
});
