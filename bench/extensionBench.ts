/**
 * Extension benchmark, in a real VS Code (code-server 4.100.3 + headless Chromium), with the
 * tiny test model: the extension's activation time, and the time from the "GPIoT: Synthesize
 * Program" command to the first sub-task visible in the GPIoT tree next to the model's time to
 * first token (TD's, as the sidecar measures it) and their ratio — what the UI adds on top of
 * the model: the request, model loading (cold run), TD writing its first sub-task, the events
 * crossing the process boundary and the tree refresh.
 *
 * `runExtensionBench()` is what `npm run bench` calls (needs `npm run build`, the tiny models,
 * and code-server from scripts/install-code-server.sh); `tsx bench/extensionBench.ts` prints it.
 * The measuring side runs inside the extension host: test/extension/bench/index.ts.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ExtensionBenchSample } from "../test/extension/bench/index";
import { runExtensionTestsInCodeServer } from "../test/vscode/runInCodeServer";
import { CODE_SERVER_ENTRY, createTestWorkspace, REPO_ROOT } from "../test/extension/workspace";

export interface ExtensionBenchResult {
  /** activate() as the extension measured it (ms). */
  activationMs: number;
  /** extension.activate() as called from the extension host (ms; includes loading the bundle). */
  activateCallMs: number;
  /** Spawn → LSP initialize answered (ms). */
  sidecarStartMs: number;
  modelLoadMs: number;
  /** The first synthesis, which also loads the model. */
  cold: { commandToFirstSubTaskShownMs: number; modelFirstTokenMs: number; ratio: number };
  /** Medians of the following runs (model already loaded). */
  warm: { commandToFirstSubTaskShownMs: number; commandToFirstSubTaskEventMs: number; commandToFirstTokenMs: number; modelFirstTokenMs: number; ratio: number; runs: number };
  samples: ExtensionBenchSample;
  /** Wall time of the whole run, code-server start included (s). */
  wallSeconds: number;
}

const median = (values: number[]) => {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : Number.NaN;
};

export async function runExtensionBench(options: { runs?: number; log?: (line: string) => void } = {}): Promise<ExtensionBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  if (!process.env.CODE_SERVER_ENTRY && !existsSync(CODE_SERVER_ENTRY)) throw new Error(`code-server is not installed (${CODE_SERVER_ENTRY}); run scripts/install-code-server.sh`);
  if (!existsSync(path.join(REPO_ROOT, "dist", "sidecar.mjs"))) throw new Error("dist/sidecar.mjs is missing; run npm run build");
  execFileSync(process.execPath, [path.join(REPO_ROOT, "test", "extension", "build.mjs")], { stdio: "inherit" });
  const workspace = createTestWorkspace("ext-bench");
  const outDir = mkdtempSync(path.join(os.tmpdir(), "gpiot-ext-bench-out-"));
  const out = path.join(outDir, "result.json");
  const started = Date.now();
  try {
    const code = await runExtensionTestsInCodeServer({
      extensionDevelopmentPath: REPO_ROOT,
      extensionTestsPath: path.join(REPO_ROOT, "dist", "test", "extension", "bench", "index.cjs"),
      workspace: workspace.dir,
      artifactsDir: path.join(REPO_ROOT, ".test-artifacts", "extension-bench"),
      timeoutMs: 300_000,
      env: { GPIOT_BENCH_OUT: out, GPIOT_BENCH_RUNS: String(options.runs ?? 5) },
      onLog: (_level, message) => {
        if (message.startsWith("[bench]")) log(message.trimEnd());
      },
    });
    if (code !== 0 || !existsSync(out)) throw new Error(`the extension benchmark failed (exit ${code})`);
    const samples = JSON.parse(readFileSync(out, "utf8")) as ExtensionBenchSample;
    const cold = samples.synthesis.find((sample) => sample.cold)!;
    const warm = samples.synthesis.filter((sample) => !sample.cold);
    const warmShown = median(warm.map((sample) => sample.commandToFirstSubTaskShownMs));
    const warmTtft = median(warm.map((sample) => sample.modelFirstTokenMs));
    return {
      activationMs: samples.activationMs,
      activateCallMs: samples.activateCallMs,
      sidecarStartMs: samples.sidecarStartMs,
      modelLoadMs: samples.modelLoadMs,
      cold: { commandToFirstSubTaskShownMs: cold.commandToFirstSubTaskShownMs, modelFirstTokenMs: cold.modelFirstTokenMs, ratio: cold.ratio },
      warm: {
        commandToFirstSubTaskShownMs: warmShown,
        commandToFirstSubTaskEventMs: median(warm.map((sample) => sample.commandToFirstSubTaskEventMs)),
        commandToFirstTokenMs: median(warm.map((sample) => sample.commandToFirstTokenMs)),
        modelFirstTokenMs: warmTtft,
        ratio: median(warm.map((sample) => sample.ratio)),
        runs: warm.length,
      },
      samples,
      wallSeconds: (Date.now() - started) / 1000,
    };
  } finally {
    workspace.dispose();
    rmSync(outDir, { recursive: true, force: true });
  }
}

export function formatExtensionBench(result: ExtensionBenchResult): string {
  const ms = (value: number) => `${Number.isFinite(value) ? value.toFixed(0) : "n/a"} ms`;
  return [
    "Extension (code-server 1.100.3, tiny model, 1 thread):",
    `  activation: activate() ${result.activationMs.toFixed(1)} ms; extension.activate() from the host ${ms(result.activateCallMs)}; sidecar start ${ms(result.sidecarStartMs)}; model load ${ms(result.modelLoadMs)}`,
    `  command → first sub-task in the tree, cold (loads the model): ${ms(result.cold.commandToFirstSubTaskShownMs)} vs model TTFT ${ms(result.cold.modelFirstTokenMs)} → ratio ${result.cold.ratio.toFixed(1)}`,
    `  command → first sub-task in the tree, warm (median of ${result.warm.runs}): ${ms(result.warm.commandToFirstSubTaskShownMs)} vs model TTFT ${ms(result.warm.modelFirstTokenMs)} → ratio ${result.warm.ratio.toFixed(1)}`,
    `    (warm: first token reaches the extension host after ${ms(result.warm.commandToFirstTokenMs)}, first sub-task event after ${ms(result.warm.commandToFirstSubTaskEventMs)})`,
  ].join("\n");
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(fileURLToPath(import.meta.url))) {
  const result = await runExtensionBench({ runs: Number(process.env.GPIOT_BENCH_RUNS ?? 5) });
  console.log(formatExtensionBench(result));
  if (process.argv.includes("--json")) console.log(JSON.stringify(result, null, 2));
}
