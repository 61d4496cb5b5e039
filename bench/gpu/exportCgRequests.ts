/**
 * Writes GPIoT's CG requests (system prompt, user prompts for five sub-tasks, the JSON Schema of
 * the answer) to a JSON file for bench/gpu/gpu_parallel_client.py, which runs where Node does not.
 *   tsx bench/gpu/exportCgRequests.ts OUT.json
 */
import { writeFileSync } from "node:fs";
import { grammarSchemaFor } from "../../sidecar/src/grammarSchema";
import { buildCodePrompt, CG_SYSTEM_PROMPT } from "../../sidecar/src/pipeline/codeGeneration";
import { serverJsonSchema } from "../../sidecar/src/remote/remoteRoleModels";
import { CodeArtifactSchema, type TaskSpec } from "../../sidecar/src/schemas";

const requirement = "Detect heartbeats in a single-lead ECG from the MIT-BIH database and report the heart rate";
const steps: [string, TaskSpec["inputs"], TaskSpec["outputs"]][] = [
  ["load the ECG record", [{ name: "record_path", type: "str", description: "WFDB record path" }], [{ name: "signal", type: "np.ndarray", description: "ECG samples" }, { name: "fs", type: "float", description: "sampling rate" }]],
  ["band-pass filter the signal", [{ name: "signal", type: "np.ndarray", description: "ECG samples" }, { name: "fs", type: "float", description: "sampling rate" }], [{ name: "filtered", type: "np.ndarray", description: "5-15 Hz band" }]],
  ["detect R peaks", [{ name: "filtered", type: "np.ndarray", description: "filtered ECG" }, { name: "fs", type: "float", description: "sampling rate" }], [{ name: "peaks", type: "np.ndarray", description: "R peak indices" }]],
  ["compute RR intervals", [{ name: "peaks", type: "np.ndarray", description: "R peak indices" }, { name: "fs", type: "float", description: "sampling rate" }], [{ name: "rr", type: "np.ndarray", description: "RR intervals in s" }]],
  ["report the heart rate", [{ name: "rr", type: "np.ndarray", description: "RR intervals in s" }], [{ name: "heart_rate", type: "float", description: "beats per minute" }]],
];
const specs: TaskSpec[] = steps.map(([what, inputs, outputs]) => ({ target: `Write some code and documentation to ${what}.`, inputs, outputs }));
const prompts = specs.map((spec, index) => ({ system: CG_SYSTEM_PROMPT, user: buildCodePrompt({ requirement, limits: null, spec, previousSpecs: specs.slice(0, index) }) }));
writeFileSync(process.argv[2], JSON.stringify({ schema: serverJsonSchema(grammarSchemaFor(CodeArtifactSchema)), prompts }, null, 2));
