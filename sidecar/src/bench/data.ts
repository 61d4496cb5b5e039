/**
 * Prepares a task's data for the programs: synthetic data from the generators (exact ground
 * truth), or the real dataset from a folder the user names, in its own format. Either way the
 * program sees a copy without the answers (no .atr next to the ECG records, no test labels), and
 * the harness keeps the truth.
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { ecgOptionsFor, generateEcg } from "./ecgsyn";
import { copyTreeExcept, generateHar, readHarLabels } from "./har";
import { generateMultimodal } from "./multimodal";
import { npyNumbers, readNpy } from "./npy";
import type { BenchTask } from "./tasks";
import { NORMAL, parseHeader, readBeatSamples, writeAnnotations, writeRecord } from "./wfdb";

export type Truth = { kind: "beats"; beats: number[]; fs: number; nSamples: number } | { kind: "labels"; labels: number[] };

export interface BenchRun {
  /** e.g. the record name. */
  label: string;
  /** Contract input values (absolute paths). */
  inputs: Record<string, string>;
  truth: Truth;
}

export interface PreparedTask {
  task: BenchTask;
  source: "synthetic" | "real";
  dataDir: string;
  runs: BenchRun[];
}

async function prepareEcg(task: BenchTask, dir: string, realPath: string | undefined, records: number | undefined): Promise<BenchRun[]> {
  const source = realPath ?? path.join(dir, "records");
  if (!realPath) {
    await mkdir(source, { recursive: true });
    const count = records ?? task.synthetic.records ?? 2;
    for (let i = 1; i <= count; i++) {
      const name = `syn${String(i).padStart(3, "0")}`;
      const ecg = generateEcg(ecgOptionsFor((task.synthetic.seed ?? 100) + i, task.synthetic.durationS ?? 60, task.synthetic.fs ?? 360));
      await writeRecord(source, name, ecg.fs, [{ values: ecg.signal, description: "MLII" }]);
      await writeAnnotations(path.join(source, `${name}.atr`), ecg.rPeaks.map((sample) => ({ sample, code: NORMAL })));
    }
  }
  const names = (await readdir(source))
    .filter((file) => file.endsWith(".hea") && existsSync(path.join(source, file.replace(/\.hea$/, ".atr"))))
    .map((file) => file.replace(/\.hea$/, ""))
    .sort();
  if (!names.length) throw new Error(`${source} holds no WFDB records with .atr annotations`);
  const chosen = realPath && records ? names.slice(0, records) : names;
  const visible = path.join(dir, "visible");
  await rm(visible, { recursive: true, force: true });
  await mkdir(visible, { recursive: true });
  const runs: BenchRun[] = [];
  for (const name of chosen) {
    const headerText = await readFile(path.join(source, `${name}.hea`), "utf8");
    const header = parseHeader(headerText);
    await copyFile(path.join(source, `${name}.hea`), path.join(visible, `${name}.hea`));
    for (const file of new Set(header.signals.map((signal) => signal.fileName))) await copyFile(path.join(source, file), path.join(visible, file));
    runs.push({
      label: name,
      inputs: { record_path: path.join(visible, name) },
      truth: { kind: "beats", beats: await readBeatSamples(path.join(source, `${name}.atr`)), fs: header.fs, nSamples: header.nSamples },
    });
  }
  return runs;
}

async function prepareHar(task: BenchTask, dir: string, realPath: string | undefined): Promise<BenchRun[]> {
  const source = realPath ?? path.join(dir, "dataset");
  if (!realPath) await generateHar(source, { trainPerActivity: task.synthetic.trainPerActivity ?? 30, testPerActivity: task.synthetic.testPerActivity ?? 15, seed: task.synthetic.seed ?? 200 });
  const visible = path.join(dir, "visible");
  await rm(visible, { recursive: true, force: true });
  await copyTreeExcept(path.join(source, "test"), path.join(visible, "test"), new Set(["y_test.txt"]));
  return [{ label: "test", inputs: { train_dir: path.join(source, "train"), test_dir: path.join(visible, "test") }, truth: { kind: "labels", labels: await readHarLabels(source, "test") } }];
}

async function prepareMultimodal(task: BenchTask, dir: string, realPath: string | undefined): Promise<BenchRun[]> {
  const source = realPath ?? path.join(dir, "dataset");
  if (!realPath) await generateMultimodal(source, { trainPerClass: task.synthetic.trainPerClass ?? 30, testPerClass: task.synthetic.testPerClass ?? 15, seed: task.synthetic.seed ?? 300 });
  const visible = path.join(dir, "visible");
  await rm(visible, { recursive: true, force: true });
  await copyTreeExcept(path.join(source, "test"), path.join(visible, "test"), new Set(["labels.npy"]));
  const labels = npyNumbers(await readNpy(path.join(source, "test", "labels.npy")));
  return [{ label: "test", inputs: { train_dir: path.join(source, "train"), test_dir: path.join(visible, "test") }, truth: { kind: "labels", labels } }];
}

export async function prepareTask(task: BenchTask, dataRoot: string, options: { realPath?: string; records?: number } = {}): Promise<PreparedTask> {
  const dir = path.join(dataRoot, task.id);
  await mkdir(dir, { recursive: true });
  const realPath = options.realPath ? path.resolve(options.realPath) : undefined;
  if (realPath && !existsSync(realPath)) throw new Error(`${task.id}: the data folder ${realPath} does not exist`);
  const runs =
    task.kind === "ecg-beats" ? await prepareEcg(task, dir, realPath, options.records) : task.kind === "har-imu" ? await prepareHar(task, dir, realPath) : await prepareMultimodal(task, dir, realPath);
  return { task, source: realPath ? "real" : "synthetic", dataDir: dir, runs };
}
