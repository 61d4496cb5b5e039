/**
 * Peak memory of the three roles, on a random model large enough that its weights dominate memory
 * as they do for real models (on the 1 MB tiny model, buffers dominate and the figures say little).
 * The model is written by the project's GGUF writer into a scratch folder; the caller deletes it.
 *
 * Three processes, each measured by its peak RSS (VmHWM):
 *   - one role alone: one model, one context with its adapter (the baseline);
 *   - the sidecar with three roles on one base: one model, three contexts, three adapters;
 *   - the sidecar with three roles on three model files: three models, three contexts.
 * Every process evaluates a prompt and generates on each of its contexts before it is measured.
 * The sidecars run the review flow a user would: decompose, keep one sub-task, then specify and
 * generate its code until the code streams (one sub-task instead of several keeps the run short).
 */
import { spawn } from "node:child_process";
import { linkSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SidecarProcess } from "../sidecar/src/client/sidecarProcess";
import { writeTinyTestModels, type TestModelShape } from "../sidecar/src/gguf/tinyTestModels";
import { grammarSchemaFor } from "../sidecar/src/grammarSchema";
import { CG_SYSTEM_PROMPT } from "../sidecar/src/pipeline/codeGeneration";
import { CodeArtifactSchema } from "../sidecar/src/schemas";

const benchDir = path.dirname(fileURLToPath(import.meta.url));

/** About 280 MB of F32 weights; grouped KV heads keep the caches small beside them, as in current models. */
export const MEMORY_BENCH_SHAPE: Partial<TestModelShape> = { embeddingLength: 1024, blockCount: 6, headCount: 16, headCountKv: 4, feedForwardLength: 2816 };

export interface MemoryBenchOptions {
  /** Scratch folder for the models and the manifest. */
  dir: string;
  sidecarPath: string;
  requirement: string;
  threads: number;
  contextSize: number;
  shape?: Partial<TestModelShape>;
}

export interface MemoryFigures {
  modelFileMB: number;
  /** The context size every measured context got. */
  contextSize: number;
  oneRoleMB: number;
  threeRolesOneBaseMB: number;
  threeRolesThreeModelsMB: number;
  writeModelsMs: number;
}

function peakRssMB(pid: number): number {
  const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (hwm === undefined) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(hwm) / 1024;
}

/** Writes the models and a manifest with a shared-base profile and a three-model-files profile. */
async function writeMemoryBenchModels(dir: string, shape: Partial<TestModelShape>) {
  const models = await writeTinyTestModels(path.join(dir, "models"), { shape });
  // Hard links: three paths the engine loads as three models, without three copies on disk.
  const copies = (["td", "rt", "cg"] as const).map((role) => {
    const copy = path.join(dir, "models", `base-for-${role}.gguf`);
    linkSync(models.base, copy);
    return { role, copy };
  });
  const manifest = {
    version: 1,
    defaultProfile: "one-base",
    profiles: {
      "one-base": {
        base: { file: models.base },
        roles: Object.fromEntries((["td", "rt", "cg"] as const).map((role) => [role, { adapters: [{ file: models.adapters[role] }] }])),
      },
      "three-models": {
        base: { file: models.base },
        roles: Object.fromEntries(copies.map(({ role, copy }) => [role, { model: { file: copy }, adapters: [{ file: models.adapters[role] }] }])),
      },
    },
  };
  const manifestPath = path.join(dir, "manifest.json");
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
  return { models, manifestPath };
}

/** Peak RSS of a sidecar after TD, RT and CG each generated: a decomposition, one sub-task's spec, the start of its code. */
async function peakRssOfSidecar(options: MemoryBenchOptions, manifestPath: string, profile: string): Promise<{ peakMB: number; contextSizes: number[] }> {
  const sidecar = await SidecarProcess.start({ sidecarPath: options.sidecarPath, settings: { manifestPath, threads: options.threads, contextSize: options.contextSize } });
  const request = sidecar.client.request.bind(sidecar.client);
  try {
    const info = await request("loadModels", { profile });
    const decomposition = await request("synthesize", { requirement: options.requirement, review: "decomposition" });
    const decomposed = await sidecar.waitForJob(decomposition.jobId, 600_000);
    if (decomposed.type !== "jobFinished") throw new Error(`memory bench decomposition failed: ${JSON.stringify(decomposed)}`);
    const { programId } = decomposition;
    const [first] = (await request("getProgram", { programId })).subTasks;
    await request("updateSubTasks", { programId, subTasks: [{ id: first.id, subTask: first.subTask }] });
    const { jobId } = await request("continue", { programId });
    const codeStreamed = new Promise<void>((resolve) => {
      const subscription = sidecar.client.onJobEvent((event) => {
        if (event.jobId === jobId && (event.type === "codeDelta" || event.type === "jobFinished" || event.type === "jobFailed")) {
          subscription.dispose();
          resolve();
        }
      });
    });
    await codeStreamed;
    await request("cancel", { jobId });
    const last = await sidecar.waitForJob(jobId, 600_000);
    if (last.type === "jobFailed" && !last.cancelled) throw new Error(`memory bench job failed: ${JSON.stringify(last.error)}`);
    if (!sidecar.eventsOf(jobId).some((event) => event.type === "codeDelta")) throw new Error("memory bench job ended before code generation streamed");
    return { peakMB: peakRssMB(sidecar.pid), contextSizes: Object.values(info.roles).map((role) => role.contextSize) };
  } finally {
    await sidecar.dispose();
  }
}

/** Peak RSS of a process holding one role alone; see oneRoleProcess.mjs. */
function peakRssOfOneRole(options: MemoryBenchOptions, basePath: string, adapterPath: string, contextSize: number): Promise<number> {
  const args = JSON.stringify({
    basePath,
    adapterPath,
    contextSize,
    threads: options.threads,
    systemPrompt: CG_SYSTEM_PROMPT,
    prompt: options.requirement,
    grammarSchema: grammarSchemaFor(CodeArtifactSchema),
    maxTokens: 64,
  });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(benchDir, "oneRoleProcess.mjs"), args], { cwd: benchDir, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      const peakMB = Number(out);
      if (code === 0 && Number.isFinite(peakMB) && peakMB > 0) resolve(peakMB);
      else reject(new Error(`the one-role process exited with ${signal ?? code} and printed ${JSON.stringify(out)}: ${err.trim().split("\n").slice(-5).join("\n")}`));
    });
  });
}

export async function measureRoleMemory(options: MemoryBenchOptions): Promise<MemoryFigures> {
  const started = performance.now();
  const { models, manifestPath } = await writeMemoryBenchModels(options.dir, options.shape ?? MEMORY_BENCH_SHAPE);
  const writeModelsMs = performance.now() - started;
  const oneBase = await peakRssOfSidecar(options, manifestPath, "one-base");
  const threeModels = await peakRssOfSidecar(options, manifestPath, "three-models");
  const contextSizes = new Set([...oneBase.contextSizes, ...threeModels.contextSizes]);
  if (contextSizes.size !== 1) throw new Error(`the sidecars' contexts got different sizes (${[...contextSizes].join(", ")}): the figures would not compare`);
  const [contextSize] = contextSizes;
  const oneRoleMB = await peakRssOfOneRole(options, models.base, models.adapters.cg, contextSize);
  return {
    modelFileMB: statSync(models.base).size / 2 ** 20,
    contextSize,
    oneRoleMB,
    threeRolesOneBaseMB: oneBase.peakMB,
    threeRolesThreeModelsMB: threeModels.peakMB,
    writeModelsMs,
  };
}

export function formatMemoryFigures(figures: MemoryFigures): string {
  const fmt = (value: number, digits = 0) => value.toFixed(digits);
  return [
    `Peak RSS (MB) on a ${fmt(figures.modelFileMB)} MB random F32 model (written in ${fmt(figures.writeModelsMs / 1000, 1)} s), contexts of ${figures.contextSize} tokens`,
    `  one role alone (one model, one context + adapter): ${fmt(figures.oneRoleMB)}   (baseline)`,
    `  sidecar, three roles on one base:                  ${fmt(figures.threeRolesOneBaseMB)}`,
    `  sidecar, three roles on three model files:         ${fmt(figures.threeRolesThreeModelsMB)}`,
    `  ratio three roles on one base / one role:          ${fmt(figures.threeRolesOneBaseMB / figures.oneRoleMB, 2)}`,
    `  ratio three model files / one role:                ${fmt(figures.threeRolesThreeModelsMB / figures.oneRoleMB, 2)}`,
    `  ratio one base / three model files:                ${fmt(figures.threeRolesOneBaseMB / figures.threeRolesThreeModelsMB, 2)}`,
  ].join("\n");
}
