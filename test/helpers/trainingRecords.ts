/**
 * Small training-record fixtures in the records contract (JSONL, one record per line), built with
 * the pipeline's own prompt builders so that the prompts are exactly what the stages send at
 * inference, and answers that the stages' schemas accept. Synthetic: they exercise training, not
 * teach anything.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { buildCodePrompt, CG_SYSTEM_PROMPT } from "../../sidecar/src/pipeline/codeGeneration";
import {
  buildPaperCodePrompt,
  buildPaperDecompositionPrompt,
  PAPER_CG_SYSTEM_PROMPT,
  PAPER_TD_SYSTEM_PROMPT,
  renderPaperCode,
  renderPaperDecomposition,
} from "../../sidecar/src/pipeline/promptFormats/paperFormat";
import { parseResourceLimits } from "../../sidecar/src/pipeline/requirement";
import { buildDecompositionPrompt, TD_SYSTEM_PROMPT } from "../../sidecar/src/pipeline/taskDecomposition";
import type { CodeArtifact, Decomposition, TaskSpec } from "../../sidecar/src/schemas";

export interface TrainingRecord {
  id: string;
  role: "td" | "rt" | "cg";
  messages: { role: "system" | "user" | "assistant"; content: string }[];
  format: "json" | "paper";
  source: { kind: "synthetic"; kind_detail?: "D1" | "D2" | "D3" };
  augmentation: null | { axis: "modality" | "representation" | "resources"; value: string };
  split: "train" | "validation" | "test";
}

const SENSORS = ["ECG", "accelerometer", "WiFi CSI", "radar", "microphone", "thermometer", "PPG", "gyroscope"];
const GOALS = ["detect events", "count steps", "classify activities", "estimate a rate", "find anomalies", "denoise the signal"];
const DEVICES = [null, "Jetson Nano, <= 200 MB RAM", "Raspberry Pi 4, <= 50 ms per window", null];

function recordId(role: string, messages: TrainingRecord["messages"]): string {
  return createHash("sha256").update(role).update("\n").update(JSON.stringify(messages)).digest("hex");
}

function splitFor(index: number, count: number): TrainingRecord["split"] {
  if (index >= count - 2) return "test";
  if (index >= count - 4) return "validation";
  return "train";
}

function decompositionFor(sensor: string, goal: string): Decomposition {
  return {
    subTasks: [
      { name: `Load ${sensor} data`, problem: `Read the ${sensor} samples.`, steps: ["Read the file", "Scale to units"] },
      { name: `${goal[0].toUpperCase()}${goal.slice(1)}`, problem: `Use the ${sensor} signal to ${goal}.`, steps: ["Band-pass filter", "Threshold"] },
    ],
  };
}

function specFor(sensor: string, goal: string): TaskSpec {
  return {
    target: `Write some code and documentation to ${goal} from ${sensor} samples.`,
    inputs: [{ name: "signal", type: "np.ndarray", description: `${sensor} samples` }],
    outputs: [{ name: "result", type: "float", description: `what the ${goal} step finds` }],
  };
}

function artifactFor(goal: string): CodeArtifact {
  return {
    code: `import numpy as np\n\n\ndef run(signal):\n    x = np.asarray(signal, dtype=float)\n    return {"result": float(np.mean(x))}\n`,
    documentation: `Runs the ${goal} step on the signal.`,
    requirements: ["numpy"],
  };
}

/** `count` TD and `count` CG records (the last 2 of each: test, the 2 before: validation). */
export function makeTrainingRecords(options: { count?: number; format?: "json" | "paper"; roles?: ("td" | "cg" | "rt")[] } = {}): TrainingRecord[] {
  const count = options.count ?? 12;
  const format = options.format ?? "json";
  const roles = options.roles ?? ["td", "cg"];
  const records: TrainingRecord[] = [];
  for (let i = 0; i < count; i++) {
    const sensor = SENSORS[i % SENSORS.length];
    const goal = GOALS[i % GOALS.length];
    const requirement = `Use a ${sensor} to ${goal} (case ${i + 1}).`;
    const constraints = DEVICES[i % DEVICES.length];
    const limits = constraints ? parseResourceLimits(constraints) : null;
    const augmentation = constraints ? ({ axis: "resources", value: constraints } as const) : null;
    const split = splitFor(i, count);
    const decomposition = decompositionFor(sensor, goal);
    const spec = specFor(sensor, goal);
    const artifact = artifactFor(goal);
    for (const role of roles) {
      let messages: TrainingRecord["messages"];
      if (role === "td")
        messages =
          format === "paper"
            ? [{ role: "system", content: PAPER_TD_SYSTEM_PROMPT }, { role: "user", content: buildPaperDecompositionPrompt({ requirement, limits }) }, { role: "assistant", content: renderPaperDecomposition(decomposition) }]
            : [{ role: "system", content: TD_SYSTEM_PROMPT }, { role: "user", content: buildDecompositionPrompt({ requirement, limits }) }, { role: "assistant", content: JSON.stringify(decomposition) }];
      else if (role === "cg")
        messages =
          format === "paper"
            ? [{ role: "system", content: PAPER_CG_SYSTEM_PROMPT }, { role: "user", content: buildPaperCodePrompt(spec) }, { role: "assistant", content: renderPaperCode(artifact) }]
            : [{ role: "system", content: CG_SYSTEM_PROMPT }, { role: "user", content: buildCodePrompt({ requirement, limits, spec, previousSpecs: [] }) }, { role: "assistant", content: JSON.stringify(artifact) }];
      else messages = [{ role: "user", content: `Sub-task: ${decomposition.subTasks[1].name}` }, { role: "assistant", content: JSON.stringify({ target: spec.target }) }];
      records.push({ id: recordId(role, messages), role, messages, format, source: { kind: "synthetic" }, augmentation, split });
    }
  }
  return records;
}

export function writeRecords(file: string, records: object[]): string {
  writeFileSync(file, records.map((record) => JSON.stringify(record)).join("\n") + "\n");
  return file;
}
