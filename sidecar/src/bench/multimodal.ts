/**
 * Multimodal activity recognition data: per split, `audio.npy` (N x 32 x 16 log-mel
 * spectrogram frames), `depth.npy` (N x 16 x 16 depth images, metres / 4), `radar.npy`
 * (N x 32 x 16 Doppler-time maps) as float32, and `labels.npy` (int64, 0..5); `classes.json`
 * names the classes. The bench hides the test split's labels from the program. The synthetic generator makes every modality
 * ambiguous on its own (audio cannot tell sitting from standing, depth cannot tell standing from
 * walking, radar cannot tell sitting from standing), so only a fused model scores high.
 *
 * Harmony (the paper's dataset) is not distributed in this layout: convert it to these files to
 * bench on it.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { seededRandom } from "./ecgsyn";
import { writeNpy } from "./npy";

export const MULTIMODAL_CLASSES = ["sitting", "standing", "walking", "waving", "clapping", "falling"];
const BANDS = 32;
const FRAMES = 16;
const SIDE = 16;
const BINS = 32;

type Random = ReturnType<typeof seededRandom>;

function audio(label: number, random: Random): Float32Array {
  const out = new Float32Array(BANDS * FRAMES);
  const phase = Math.floor(random.uniform() * 4);
  const impulse = Math.floor(random.uniform() * FRAMES);
  const loud = 0.7 + 0.6 * random.uniform();
  for (let band = 0; band < BANDS; band++)
    for (let frame = 0; frame < FRAMES; frame++) {
      let value = 1.0 * random.normal() - 0.02 * band;
      if (label === 2 && (frame + phase) % 4 === 0 && band < 14) value += 2 * loud;
      if (label === 4 && (frame + phase) % 2 === 0 && band >= 10) value += 2.5 * loud;
      if (label === 3 && band >= 20) value += 0.35 * loud;
      if (label === 5 && Math.abs(frame - impulse) <= 1 && band < 20) value += 3 * loud;
      out[band * FRAMES + frame] = value;
    }
  return out;
}

function depth(label: number, random: Random): Float32Array {
  const out = new Float32Array(SIDE * SIDE);
  const dx = Math.round(2 * random.normal());
  const dy = Math.round(random.normal());
  const distance = 0.45 + 0.15 * random.uniform();
  // Body ellipse: centre row, centre column, half-height, half-width.
  const body = label === 0 ? [10, 8, 4, 3.2] : label === 5 ? [13, 8, 2, 6] : [8, 8, 6, 2.2];
  for (let row = 0; row < SIDE; row++)
    for (let col = 0; col < SIDE; col++) {
      const r = (row - body[0] - dy) / body[2];
      const c = (col - body[1] - dx) / body[3];
      let value = 1 + 0.2 * random.normal();
      if (r * r + c * c <= 1) value = distance + 0.05 * random.normal();
      if (label === 3 && row >= 1 + dy && row <= 4 + dy && col >= 10 + dx && col <= 12 + dx && random.uniform() < 0.6) value = distance + 0.05 * random.normal();
      if (label === 4 && row >= 6 + dy && row <= 7 + dy && col >= 5 + dx && col <= 11 + dx && random.uniform() < 0.6) value = distance - 0.1 + 0.05 * random.normal();
      out[row * SIDE + col] = value;
    }
  return out;
}

function radar(label: number, random: Random): Float32Array {
  const out = new Float32Array(BINS * FRAMES);
  const phase = 2 * Math.PI * random.uniform();
  const onset = Math.floor(random.uniform() * (FRAMES - 5));
  const strength = 0.8 + 0.4 * random.uniform();
  for (let frame = 0; frame < FRAMES; frame++) {
    let centre = 16;
    let spread = 1;
    let power = strength;
    if (label === 2) {
      centre = 22 + 5 * Math.sin((2 * Math.PI * frame) / 8 + phase);
      spread = 2;
    } else if (label === 3) {
      centre = 16 + 4 * Math.sin((2 * Math.PI * frame) / 4 + phase);
      power *= 0.6;
    } else if (label === 4) {
      centre = 16 + ((frame % 2) * 2 - 1) * 2;
      power *= 0.7;
    } else if (label === 5) {
      const t = frame - onset;
      centre = t >= 0 && t < 4 ? 16 - 3 * (t + 1) : 16;
    }
    for (let bin = 0; bin < BINS; bin++) {
      const d = (bin - centre) / spread;
      out[bin * FRAMES + frame] = power * Math.exp(-0.5 * d * d) + 0.4 * random.normal();
    }
  }
  return out;
}

export interface MultimodalGeneration {
  trainPerClass: number;
  testPerClass: number;
  seed: number;
  /** Write test/labels.npy (default true); IoT Bench keeps the test labels in memory only. */
  testLabels?: boolean;
}

async function writeSplit(dir: string, labels: number[], random: Random, writeLabels: boolean): Promise<void> {
  await mkdir(dir, { recursive: true });
  const n = labels.length;
  const stack = (size: number, make: (label: number) => Float32Array) => {
    const data = new Float32Array(n * size);
    labels.forEach((label, index) => data.set(make(label), index * size));
    return data;
  };
  await writeNpy(path.join(dir, "audio.npy"), { dtype: "<f4", data: stack(BANDS * FRAMES, (label) => audio(label, random)), shape: [n, BANDS, FRAMES] });
  await writeNpy(path.join(dir, "depth.npy"), { dtype: "<f4", data: stack(SIDE * SIDE, (label) => depth(label, random)), shape: [n, SIDE, SIDE] });
  await writeNpy(path.join(dir, "radar.npy"), { dtype: "<f4", data: stack(BINS * FRAMES, (label) => radar(label, random)), shape: [n, BINS, FRAMES] });
  if (writeLabels) await writeNpy(path.join(dir, "labels.npy"), { dtype: "<i8", data: BigInt64Array.from(labels.map(BigInt)), shape: [n] });
}

function shuffledLabels(perClass: number, random: Random): number[] {
  const labels = Array.from({ length: perClass * MULTIMODAL_CLASSES.length }, (_, index) => index % MULTIMODAL_CLASSES.length);
  for (let i = labels.length - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1));
    [labels[i], labels[j]] = [labels[j], labels[i]];
  }
  return labels;
}

/** Writes `<root>/train` and `<root>/test` (both with labels.npy unless `testLabels` is false) and returns the test labels. */
export async function generateMultimodal(root: string, options: MultimodalGeneration): Promise<number[]> {
  const random = seededRandom(options.seed);
  const train = shuffledLabels(options.trainPerClass, random);
  const test = shuffledLabels(options.testPerClass, random);
  await writeSplit(path.join(root, "train"), train, random, true);
  await writeSplit(path.join(root, "test"), test, random, options.testLabels ?? true);
  await writeFile(path.join(root, "classes.json"), `${JSON.stringify(MULTIMODAL_CLASSES)}\n`);
  await writeFile(path.join(root, "README.txt"), "Synthetic audio/depth/radar activity data written by GPIoT's IoT Bench generator. Not real data.\n");
  return test;
}
