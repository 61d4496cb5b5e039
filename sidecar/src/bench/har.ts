/**
 * Human activity recognition data in the layout of the UCI HAR dataset (smartphone IMU at 50 Hz,
 * 128-sample windows): `<root>/{train,test}/Inertial Signals/{body_acc,body_gyro,total_acc}_{x,y,z}_<split>.txt`
 * (one window per line, 128 numbers), `<root>/<split>/y_<split>.txt` (labels 1..6) and
 * `subject_<split>.txt`, plus `activity_labels.txt`. The real dataset in this layout is read
 * as is; the generator writes synthetic windows with known labels in the same layout, train and
 * test from different (synthetic) subjects.
 */
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { seededRandom } from "./ecgsyn";

export const HAR_ACTIVITIES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"];
const CHANNELS = ["body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x", "body_gyro_y", "body_gyro_z", "total_acc_x", "total_acc_y", "total_acc_z"];
const WINDOW = 128;
const RATE = 50;

/** A number as the UCI files print them, e.g. " 1.8085150e-004". */
function uciNumber(value: number): string {
  const [mantissa, exponent] = value.toExponential(7).split("e");
  const sign = exponent.startsWith("-") ? "-" : "+";
  return `${value < 0 ? "" : " "}${mantissa}e${sign}${exponent.replace(/^[-+]/, "").padStart(3, "0")}`;
}

function normalize(vector: number[]): number[] {
  const length = Math.hypot(...vector);
  return vector.map((value) => value / length);
}

interface Subject {
  tilt: number[];
  stepHz: number;
  gain: number;
}

/** One window of the nine channels for an activity (index 0..5). */
function window(activity: number, subject: Subject, random: ReturnType<typeof seededRandom>): number[][] {
  const gravityByActivity = [
    [1, -0.1, 0.05],
    [0.98, -0.15, 0.12],
    [0.97, -0.05, -0.05],
    [0.8, 0.15, 0.55],
    [0.99, -0.12, 0.02],
    [0.1, 0.55, 0.83],
  ];
  const gravity = normalize(gravityByActivity[activity].map((value, axis) => value + subject.tilt[axis] + 0.05 * random.normal()));
  const dynamic = activity <= 2;
  const stepHz = subject.stepHz * [1, 0.9, 1.08][Math.min(activity, 2)] * (1 + 0.04 * random.normal());
  const accAmp = [
    [0.25, 0.1, 0.12],
    [0.2, 0.16, 0.2],
    [0.4, 0.15, 0.14],
  ][Math.min(activity, 2)].map((value) => value * subject.gain);
  const harmonic = [0.4, 0.3, 0.75][Math.min(activity, 2)];
  const gyroAmp = [
    [0.3, 0.4, 0.2],
    [0.35, 0.55, 0.3],
    [0.45, 0.5, 0.35],
  ][Math.min(activity, 2)];
  const phases = Array.from({ length: 6 }, () => 2 * Math.PI * random.uniform());
  const channels = CHANNELS.map(() => new Array<number>(WINDOW));
  for (let i = 0; i < WINDOW; i++) {
    const t = i / RATE;
    for (let axis = 0; axis < 3; axis++) {
      let body: number;
      let gyro: number;
      if (dynamic) {
        const w = 2 * Math.PI * stepHz * t + phases[axis];
        body = accAmp[axis] * (Math.sin(w) + harmonic * Math.sin(2 * w + phases[3])) + 0.03 * random.normal();
        gyro = gyroAmp[axis] * Math.sin(Math.PI * stepHz * t + phases[axis + 3]) + 0.05 * random.normal();
      } else {
        body = 0.006 * random.normal() + 0.004 * Math.sin(2 * Math.PI * 0.3 * t + phases[axis]);
        gyro = 0.015 * random.normal();
      }
      channels[axis][i] = body;
      channels[3 + axis][i] = gyro;
      channels[6 + axis][i] = body + gravity[axis];
    }
  }
  return channels;
}

export interface HarGeneration {
  trainPerActivity: number;
  testPerActivity: number;
  seed: number;
  /** Write test/y_test.txt (default true); IoT Bench keeps the test labels in memory only. */
  testLabels?: boolean;
}

async function writeSplit(root: string, split: "train" | "test", rows: { activity: number; subject: number; channels: number[][] }[], labels: boolean): Promise<void> {
  const dir = path.join(root, split, "Inertial Signals");
  await mkdir(dir, { recursive: true });
  for (const [index, channel] of CHANNELS.entries()) {
    const text = rows.map((row) => `${row.channels[index].map(uciNumber).join(" ")}\n`).join("");
    await writeFile(path.join(dir, `${channel}_${split}.txt`), text);
  }
  if (labels) await writeFile(path.join(root, split, `y_${split}.txt`), rows.map((row) => `${row.activity + 1}\n`).join(""));
  await writeFile(path.join(root, split, `subject_${split}.txt`), rows.map((row) => `${row.subject}\n`).join(""));
}

/** Writes a synthetic dataset in the UCI HAR layout; returns the test labels (1..6). */
export async function generateHar(root: string, options: HarGeneration): Promise<number[]> {
  const random = seededRandom(options.seed);
  const subjects: Subject[] = Array.from({ length: 10 }, () => ({
    tilt: [0.12 * random.normal(), 0.12 * random.normal(), 0.12 * random.normal()],
    stepHz: 1.7 + 0.25 * random.uniform(),
    gain: 0.8 + 0.4 * random.uniform(),
  }));
  const make = (count: number, subjectIds: number[]) => {
    const rows: { activity: number; subject: number; channels: number[][] }[] = [];
    for (let n = 0; n < count; n++)
      for (let activity = 0; activity < HAR_ACTIVITIES.length; activity++) {
        const subject = subjectIds[(n + activity) % subjectIds.length];
        rows.push({ activity, subject: subject + 1, channels: window(activity, subjects[subject], random) });
      }
    // Shuffle so that the order says nothing about the label.
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(random.uniform() * (i + 1));
      [rows[i], rows[j]] = [rows[j], rows[i]];
    }
    return rows;
  };
  const train = make(options.trainPerActivity, [0, 1, 2, 3, 4, 5, 6]);
  const test = make(options.testPerActivity, [7, 8, 9]);
  await mkdir(root, { recursive: true });
  await writeSplit(root, "train", train, true);
  await writeSplit(root, "test", test, options.testLabels ?? true);
  await writeFile(path.join(root, "activity_labels.txt"), HAR_ACTIVITIES.map((name, index) => `${index + 1} ${name}\n`).join(""));
  await writeFile(path.join(root, "README.txt"), "Synthetic IMU windows in the UCI HAR layout, written by GPIoT's IoT Bench generator. Not real data.\n");
  return test.map((row) => row.activity + 1);
}

/** Labels of a split (`y_<split>.txt`). */
export async function readHarLabels(root: string, split: "train" | "test"): Promise<number[]> {
  const text = await readFile(path.join(root, split, `y_${split}.txt`), "utf8");
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
}

/** Copies a folder tree except the files named in `leaveOut` (used to hide the test labels). */
export async function copyTreeExcept(source: string, destination: string, leaveOut: Set<string>): Promise<void> {
  await mkdir(destination, { recursive: true });
  for (const entry of await readdir(source)) {
    if (leaveOut.has(entry)) continue;
    const from = path.join(source, entry);
    const to = path.join(destination, entry);
    if ((await stat(from)).isDirectory()) await copyTreeExcept(from, to, leaveOut);
    else await copyFile(from, to);
  }
}
