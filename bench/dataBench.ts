/**
 * `gpiot data cgd` figures for `npm run bench`, each next to a bare `python -c` run of the same
 * work measured in the same run:
 *
 * - harvest rate (functions/s): the documentation harvester on a fixed list of numpy/scipy
 *   functions, next to a `python -c` that imports the same functions and reads their docstrings;
 * - sandbox validation rate (samples/s): the harvested D2 code samples run one by one through the
 *   sandbox checker, next to `python -c "<sample>; run()"` for the same samples.
 */
import { spawnSync } from "node:child_process";
import { checkSample, harvestDocs, pythonHelperPath } from "../sidecar/src/data/cgd";

export const BENCH_FUNCTIONS = [
  "numpy.convolve",
  "numpy.interp",
  "numpy.fft.rfft",
  "numpy.fft.rfftfreq",
  "numpy.diff",
  "numpy.cumsum",
  "numpy.clip",
  "numpy.linspace",
  "numpy.percentile",
  "numpy.histogram",
  "scipy.signal.detrend",
  "scipy.signal.lfilter",
  "scipy.signal.butter",
  "scipy.signal.welch",
  "scipy.signal.medfilt",
  "scipy.signal.sosfiltfilt",
  "scipy.fft.fft",
  "scipy.fft.fftfreq",
  "scipy.interpolate.interp1d",
  "scipy.stats.zscore",
];

export interface DataBenchResult {
  functions: number;
  harvestFunctionsPerSecond: number;
  bareDocFunctionsPerSecond: number;
  samples: number;
  sandboxPassed: number;
  barePassed: number;
  sandboxSamplesPerSecond: number;
  bareSamplesPerSecond: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

function timed(command: string, args: string[]): { seconds: number; status: number | null } {
  const started = performance.now();
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return { seconds: (performance.now() - started) / 1000, status: result.status };
}

export async function runDataBench(options: { python?: string; runs?: number; maxSamples?: number } = {}): Promise<DataBenchResult> {
  const python = options.python ?? "python3";
  const runs = options.runs ?? 3;
  const pairs = BENCH_FUNCTIONS.map((name) => [name.slice(0, name.lastIndexOf(".")), name.slice(name.lastIndexOf(".") + 1)]);
  const bareDocs = `import importlib\nfor module, name in ${JSON.stringify(pairs)}:\n    getattr(importlib.import_module(module), name).__doc__`;
  const helper = pythonHelperPath("harvest_docs.py");
  const harvestTimes: number[] = [];
  const bareTimes: number[] = [];
  for (let i = 0; i < runs; i++) {
    const harvest = timed(python, [helper, "--functions", BENCH_FUNCTIONS.join(","), "--max-examples", "3"]);
    if (harvest.status !== 0) throw new Error(`the harvester failed (exit ${harvest.status})`);
    harvestTimes.push(harvest.seconds);
    const bare = timed(python, ["-c", bareDocs]);
    if (bare.status !== 0) throw new Error(`the bare docstring run failed (exit ${bare.status})`);
    bareTimes.push(bare.seconds);
  }

  const harvest = await harvestDocs({ python, packages: [], functions: BENCH_FUNCTIONS, maxFunctions: 0, maxExamples: 3 });
  const samples = harvest.functions
    .flatMap((fn) => fn.samples)
    .filter((sample) => !sample.skipped && sample.d2 && sample.outputs)
    .slice(0, options.maxSamples ?? 12);
  let sandboxPassed = 0;
  const sandboxStarted = performance.now();
  for (const sample of samples) if ((await checkSample({ code: sample.d2!.code, setup: "", inputs: [], outputs: sample.outputs! }, { python, timeoutMs: 60_000, memoryMB: 2048 })).ok) sandboxPassed++;
  const sandboxSeconds = (performance.now() - sandboxStarted) / 1000;
  let barePassed = 0;
  const bareStarted = performance.now();
  for (const sample of samples) if (timed(python, ["-c", `${sample.d2!.code}\nrun()\n`]).status === 0) barePassed++;
  const bareSeconds = (performance.now() - bareStarted) / 1000;

  return {
    functions: BENCH_FUNCTIONS.length,
    harvestFunctionsPerSecond: BENCH_FUNCTIONS.length / median(harvestTimes),
    bareDocFunctionsPerSecond: BENCH_FUNCTIONS.length / median(bareTimes),
    samples: samples.length,
    sandboxPassed,
    barePassed,
    sandboxSamplesPerSecond: samples.length / sandboxSeconds,
    bareSamplesPerSecond: samples.length / bareSeconds,
  };
}

export function formatDataBench(result: DataBenchResult): string {
  const fmt = (value: number, digits = 2) => value.toFixed(digits);
  return [
    `  harvest, ${result.functions} numpy/scipy functions (signatures, docs, examples -> samples): ${fmt(result.harvestFunctionsPerSecond)} functions/s`,
    `  bare python -c reading the same docstrings:                         ${fmt(result.bareDocFunctionsPerSecond)} functions/s`,
    `  ratio harvest / bare python -c: ${fmt(result.harvestFunctionsPerSecond / result.bareDocFunctionsPerSecond)}`,
    `  sandbox validation, ${result.samples} D2 samples one by one (${result.sandboxPassed} ran): ${fmt(result.sandboxSamplesPerSecond)} samples/s`,
    `  bare python -c of the same samples (${result.barePassed} ran):              ${fmt(result.bareSamplesPerSecond)} samples/s`,
    `  ratio sandbox / bare python -c: ${fmt(result.sandboxSamplesPerSecond / result.bareSamplesPerSecond)}`,
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log("gpiot data cgd (median of 3 harvests; samples run one at a time)");
  console.log(formatDataBench(await runDataBench()));
}
