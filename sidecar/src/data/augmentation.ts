/**
 * IoT-oriented augmentation of TDD (the paper's A1-A3): the teacher rewrites a problem and its
 * sub-tasks for another sensor modality (A1), another data representation (A2), or tighter
 * system resources (A3). The axis and the value are kept on every record; an A3 record carries
 * the value as the resource constraints of its TD prompt, as a user's constraints arrive at
 * inference time.
 */
import { createHash } from "node:crypto";
import type { Augmentation } from "./records";

export type AugmentationAxis = "modality" | "representation" | "resources";

export const axisByCode: Record<string, AugmentationAxis> = { A1: "modality", A2: "representation", A3: "resources" };

interface AxisValue {
  value: string;
  /** The problem already uses this value: rewriting to it would change nothing. */
  present: RegExp;
}

export const augmentationValues: Record<AugmentationAxis, AxisValue[]> = {
  modality: [
    { value: "WiFi channel state information (CSI)", present: /\bwi-?fi\b|\bcsi\b/i },
    { value: "IMU (3-axis accelerometer and gyroscope)", present: /\bimu\b|accelerometer|gyroscope/i },
    { value: "mmWave FMCW radar", present: /mm-?wave|\bfmcw\b/i },
    { value: "single-lead ECG", present: /\becg\b|electrocardiogra/i },
    { value: "PPG (photoplethysmography)", present: /\bppg\b|photoplethysmogra/i },
    { value: "acoustic signals from a microphone", present: /acoustic|microphone|ultrasound|audio/i },
    { value: "UWB radar", present: /\buwb\b|ultra-?wideband/i },
    { value: "EEG", present: /\beeg\b|electroencephalogra/i },
  ],
  representation: [
    { value: "the raw time series", present: /raw (?:time series|signal|samples)/i },
    { value: "a spectrogram (short-time Fourier transform)", present: /spectrogram|\bstft\b|short-time fourier/i },
    { value: "a Doppler profile", present: /doppler/i },
    { value: "CSI amplitude", present: /csi amplitude|amplitude of (?:the )?csi/i },
    { value: "CSI phase (sanitised)", present: /csi phase|phase of (?:the )?csi/i },
    { value: "MFCC features", present: /\bmfcc/i },
    { value: "a wavelet scalogram", present: /wavelet|scalogram/i },
    { value: "a range-Doppler map", present: /range-doppler/i },
  ],
  resources: [
    { value: "Jetson Nano, <= 200 MB RAM", present: /jetson/i },
    { value: "ESP32 with 520 KB RAM", present: /esp32/i },
    { value: "Raspberry Pi 4, <= 100 ms per window", present: /raspberry/i },
    { value: "Arm Cortex-M4 with 256 KB RAM, <= 10 ms per window", present: /cortex-?m|microcontroller/i },
    { value: "Coral Dev Board, <= 50 MB RAM", present: /coral/i },
    { value: "smartphone, <= 20 ms per window", present: /smartphone|phone/i },
  ],
};

/** Parses `--augment A1,A2,A3` (also accepts the axis names). */
export function parseAxes(text: string): AugmentationAxis[] {
  const axes: AugmentationAxis[] = [];
  for (const part of text.split(",").map((item) => item.trim()).filter(Boolean)) {
    const axis = axisByCode[part.toUpperCase()] ?? (Object.values(axisByCode).includes(part as AugmentationAxis) ? (part as AugmentationAxis) : undefined);
    if (!axis) throw new Error(`--augment takes A1 (modality), A2 (representation) and A3 (resources), comma-separated; got "${part}"`);
    if (!axes.includes(axis)) axes.push(axis);
  }
  return axes;
}

/** `count` values of `axis` for a problem, chosen deterministically from its id, skipping what it already uses. */
export function chooseValues(axis: AugmentationAxis, problem: string, seed: string, count: number): string[] {
  return augmentationValues[axis]
    .filter((candidate) => !candidate.present.test(problem))
    .map((candidate) => ({ value: candidate.value, order: createHash("sha256").update(`${seed}\u0000${axis}\u0000${candidate.value}`).digest("hex") }))
    .sort((a, b) => (a.order < b.order ? -1 : 1))
    .slice(0, count)
    .map((candidate) => candidate.value);
}

const axisInstructions: Record<AugmentationAxis, (value: string) => string> = {
  modality: (value) =>
    `Rewrite both for another sensing modality: ${value}. Replace the sensor and its data with ${value}, and change the preprocessing, features and algorithms of the sub-tasks so that they suit ${value}.`,
  representation: (value) =>
    `Rewrite both so that the program works on another data representation: ${value}. Add or change the sub-tasks that compute this representation and the algorithms that use it.`,
  resources: (value) =>
    `Rewrite both for tighter system resources: the program must run within "${value}". Keep the goal, but choose lighter models and algorithms (smaller windows, fixed-point arithmetic, quantization, pruning) so that every sub-task respects the limit, and say how in the steps.`,
};

export function buildAugmentationPrompt(problem: string, subTasks: unknown, augmentation: NonNullable<Augmentation>): string {
  return [
    "An IoT programming problem and its decomposition into sub-tasks:",
    `Problem: ${problem}`,
    `Sub-tasks: ${JSON.stringify(subTasks)}`,
    axisInstructions[augmentation.axis](augmentation.value),
    "The new problem must be self-contained: a developer reads only it. Keep 2 to 6 sub-tasks in execution order, each with a short name, a problem statement and concrete implementation steps.",
    'Answer as JSON: {"problem": "...", "subTasks": [{"name": "...", "problem": "...", "steps": ["..."]}]}',
  ].join("\n");
}
