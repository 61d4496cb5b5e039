/**
 * Prepares a task's data for the programs: synthetic data from the generators (exact ground
 * truth), or the real dataset from a folder the user names, in its own format. The program sees
 * only a copy of the visible inputs (no .atr next to the ECG records, no test labels), copied
 * into its sandbox's working copy. The answers stay with the harness: synthetic ones are never
 * written to disk, and the folders that hold real ones (and the bench's data folder) are hidden
 * from the program where the sandbox can hide folders.
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { ecgOptionsFor, generateEcg } from "./ecgsyn";
import { copyTreeExcept, generateHar, readHarLabels } from "./har";
import { generateMultimodal } from "./multimodal";
import { npyNumbers, readNpy } from "./npy";
import type { BenchTask } from "./tasks";
import { parseHeader, readBeatSamples, writeRecord } from "./wfdb";

export type Truth = { kind: "beats"; beats: number[]; fs: number; nSamples: number } | { kind: "labels"; labels: number[] };

export interface BenchRun {
  /** e.g. the record name. */
  label: string;
  /** Contract input values: absolute paths of the visible copies (what a repair run during synthesis gets). */
  inputs: Record<string, string>;
  /** Contract input values inside the sandbox's working copy, where `copies` put the visible inputs. */
  sandboxInputs: Record<string, string>;
  /** The visible inputs to copy into the working copy (relative path there, absolute source). */
  copies: { path: string; source: string }[];
  truth: Truth;
}

export interface PreparedTask {
  task: BenchTask;
  source: "synthetic" | "real";
  dataDir: string;
  runs: BenchRun[];
  /** Folders the program must not see: the bench's data folder and the real dataset's. */
  hidePaths: string[];
}

/** Where the program finds its inputs in its working copy. */
const SANDBOX_DATA = "data";

async function prepareEcg(task: BenchTask, dir: string, realPath: string | undefined, records: number | undefined): Promise<BenchRun[]> {
  const visible = path.join(dir, "visible");
  await rm(visible, { recursive: true, force: true });
  await mkdir(visible, { recursive: true });
  const runs: BenchRun[] = [];
  const run = (name: string, files: string[], truth: Truth): BenchRun => ({
    label: name,
    inputs: { record_path: path.join(visible, name) },
    sandboxInputs: { record_path: `${SANDBOX_DATA}/${name}` },
    copies: files.map((file) => ({ path: `${SANDBOX_DATA}/${file}`, source: path.join(visible, file) })),
    truth,
  });
  if (!realPath) {
    const count = records ?? task.synthetic.records ?? 2;
    for (let i = 1; i <= count; i++) {
      const name = `syn${String(i).padStart(3, "0")}`;
      const ecg = generateEcg(ecgOptionsFor((task.synthetic.seed ?? 100) + i, task.synthetic.durationS ?? 60, task.synthetic.fs ?? 360));
      await writeRecord(visible, name, ecg.fs, [{ values: ecg.signal, description: "MLII" }]);
      const header = parseHeader(await readFile(path.join(visible, `${name}.hea`), "utf8"));
      const beats = [...ecg.rPeaks].sort((a, b) => a - b);
      runs.push(run(name, [`${name}.hea`, ...new Set(header.signals.map((signal) => signal.fileName))], { kind: "beats", beats, fs: header.fs, nSamples: header.nSamples }));
    }
    return runs;
  }
  const names = (await readdir(realPath))
    .filter((file) => file.endsWith(".hea") && existsSync(path.join(realPath, file.replace(/\.hea$/, ".atr"))))
    .map((file) => file.replace(/\.hea$/, ""))
    .sort();
  if (!names.length) throw new Error(`${realPath} holds no WFDB records with .atr annotations`);
  for (const name of records ? names.slice(0, records) : names) {
    const header = parseHeader(await readFile(path.join(realPath, `${name}.hea`), "utf8"));
    const files = [`${name}.hea`, ...new Set(header.signals.map((signal) => signal.fileName))];
    for (const file of files) await copyFile(path.join(realPath, file), path.join(visible, file));
    runs.push(run(name, files, { kind: "beats", beats: await readBeatSamples(path.join(realPath, `${name}.atr`)), fs: header.fs, nSamples: header.nSamples }));
  }
  return runs;
}

function splitRun(visible: string, labels: number[]): BenchRun {
  return {
    label: "test",
    inputs: { train_dir: path.join(visible, "train"), test_dir: path.join(visible, "test") },
    sandboxInputs: { train_dir: `${SANDBOX_DATA}/train`, test_dir: `${SANDBOX_DATA}/test` },
    copies: [
      { path: `${SANDBOX_DATA}/train`, source: path.join(visible, "train") },
      { path: `${SANDBOX_DATA}/test`, source: path.join(visible, "test") },
    ],
    truth: { kind: "labels", labels },
  };
}

async function prepareHar(task: BenchTask, dir: string, realPath: string | undefined): Promise<BenchRun[]> {
  const visible = path.join(dir, "visible");
  await rm(visible, { recursive: true, force: true });
  if (!realPath) {
    const labels = await generateHar(visible, { trainPerActivity: task.synthetic.trainPerActivity ?? 30, testPerActivity: task.synthetic.testPerActivity ?? 15, seed: task.synthetic.seed ?? 200, testLabels: false });
    return [splitRun(visible, labels)];
  }
  await copyTreeExcept(path.join(realPath, "train"), path.join(visible, "train"), new Set());
  await copyTreeExcept(path.join(realPath, "test"), path.join(visible, "test"), new Set(["y_test.txt"]));
  return [splitRun(visible, await readHarLabels(realPath, "test"))];
}

async function prepareMultimodal(task: BenchTask, dir: string, realPath: string | undefined): Promise<BenchRun[]> {
  const visible = path.join(dir, "visible");
  await rm(visible, { recursive: true, force: true });
  if (!realPath) {
    const labels = await generateMultimodal(visible, { trainPerClass: task.synthetic.trainPerClass ?? 30, testPerClass: task.synthetic.testPerClass ?? 15, seed: task.synthetic.seed ?? 300, testLabels: false });
    return [splitRun(visible, labels)];
  }
  await copyTreeExcept(path.join(realPath, "train"), path.join(visible, "train"), new Set());
  await copyTreeExcept(path.join(realPath, "test"), path.join(visible, "test"), new Set(["labels.npy"]));
  return [splitRun(visible, npyNumbers(await readNpy(path.join(realPath, "test", "labels.npy"))))];
}

export async function prepareTask(task: BenchTask, dataRoot: string, options: { realPath?: string; records?: number } = {}): Promise<PreparedTask> {
  const dir = path.join(dataRoot, task.id);
  await mkdir(dir, { recursive: true });
  const realPath = options.realPath ? path.resolve(options.realPath) : undefined;
  if (realPath && !existsSync(realPath)) throw new Error(`${task.id}: the data folder ${realPath} does not exist`);
  const runs =
    task.kind === "ecg-beats" ? await prepareEcg(task, dir, realPath, options.records) : task.kind === "har-imu" ? await prepareHar(task, dir, realPath) : await prepareMultimodal(task, dir, realPath);
  return { task, source: realPath ? "real" : "synthetic", dataDir: dir, runs, hidePaths: [path.resolve(dataRoot), ...(realPath ? [realPath] : [])] };
}
