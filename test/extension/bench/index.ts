/**
 * extensionTestsPath module for bench/extensionBench.ts: measures, inside the real extension
 * host, the extension's activation and the time from the synthesize command to the first
 * sub-task visible in the GPIoT tree, next to the model's time to first token. Writes its
 * results as JSON to $GPIOT_BENCH_OUT.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { GpiotExtensionApi } from "../../../extension/src/extension";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";

const REQUIREMENTS = [
  "Detect heartbeats in a single-lead ECG and report the heart rate",
  "Read a temperature sensor every second and warn when it overheats",
  "Count steps from a wrist accelerometer signal",
  "Classify audio events captured by a microphone array",
  "Recognize human activities from WiFi CSI on a Jetson Nano",
];

export interface SynthesisSample {
  requirement: string;
  cold: boolean;
  /** Command → first sub-task returned by the tree's getChildren (what the view renders). */
  commandToFirstSubTaskShownMs: number;
  /** Command → the first subTaskDecomposed event in the extension host. */
  commandToFirstSubTaskEventMs: number;
  /** Command → the first token of the job in the extension host. */
  commandToFirstTokenMs: number;
  /** TD's time to first token as the sidecar measured it (from the TD stage's start). */
  modelFirstTokenMs: number;
  /** commandToFirstSubTaskShownMs / modelFirstTokenMs. */
  ratio: number;
  totalMs: number;
}

export interface ExtensionBenchSample {
  activationMs: number;
  activateCallMs: number;
  sidecarStartMs: number;
  modelLoadMs: number;
  synthesis: SynthesisSample[];
}

export async function run(): Promise<void> {
  const out = process.env.GPIOT_BENCH_OUT;
  const runs = Math.max(1, Number(process.env.GPIOT_BENCH_RUNS ?? 3));
  const extension = vscode.extensions.getExtension<GpiotExtensionApi>("gpiot.gpiot");
  if (!extension) throw new Error("gpiot.gpiot is not loaded");
  const wasActive = extension.isActive;
  const activateStarted = performance.now();
  const api = extension.isActive ? extension.exports : await extension.activate();
  const activateCallMs = wasActive ? Number.NaN : performance.now() - activateStarted;
  // The tree must be visible for "visible in the tree" to mean something.
  await vscode.commands.executeCommand("gpiot.programs.focus");
  const startBegan = performance.now();
  await api.sidecar.ensureStarted();
  const sidecarStartMs = performance.now() - startBegan;
  const synthesis: SynthesisSample[] = [];
  let modelLoadMs = Number.NaN;
  const outRoot = path.join(vscode.workspace.workspaceFolders![0].uri.fsPath, "bench-programs");
  for (let i = 0; i < runs + 1; i++) {
    const requirement = REQUIREMENTS[i % REQUIREMENTS.length];
    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement, constraints: "", outDir: path.join(outRoot, `run-${i}`), openEditors: false });
    if (result.status !== "finished") throw new Error(`bench synthesis ${i} ended ${result.status}: ${result.error?.message}`);
    const program = api.store.get(result.programUid!)!;
    const marks = program.marks;
    // On a fast model the job can end before the tree has drawn its first sub-task: wait for it.
    const waitUntil = Date.now() + 5000;
    while (marks.firstSubTaskShownAt === undefined && Date.now() < waitUntil) await new Promise((resolve) => setTimeout(resolve, 10));
    if (i === 0 && api.models.status.state === "ready") modelLoadMs = api.models.status.info.loadMs;
    const commandAt = marks.commandAt ?? marks.requestSentAt!;
    const sample: SynthesisSample = {
      requirement,
      cold: i === 0,
      commandToFirstSubTaskShownMs: (marks.firstSubTaskShownAt ?? Number.NaN) - commandAt,
      commandToFirstSubTaskEventMs: (marks.firstSubTaskEventAt ?? Number.NaN) - commandAt,
      commandToFirstTokenMs: (marks.firstTokenAt ?? Number.NaN) - commandAt,
      modelFirstTokenMs: marks.tdFirstTokenMs ?? Number.NaN,
      ratio: Number.NaN,
      totalMs: result.totalMs ?? Number.NaN,
    };
    sample.ratio = sample.commandToFirstSubTaskShownMs / sample.modelFirstTokenMs;
    synthesis.push(sample);
    console.log(`[bench] ${i === 0 ? "cold" : "warm"} run: command→first sub-task shown ${sample.commandToFirstSubTaskShownMs} ms, model TTFT ${sample.modelFirstTokenMs} ms`);
  }
  const result: ExtensionBenchSample = { activationMs: api.activationMs, activateCallMs, sidecarStartMs, modelLoadMs, synthesis };
  if (out) writeFileSync(out, JSON.stringify(result, null, 2));
  else console.log(JSON.stringify(result, null, 2));
}
