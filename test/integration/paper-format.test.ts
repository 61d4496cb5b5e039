/**
 * A profile whose TD and CG declare the "paper" prompt format, end to end through the CLI and the
 * real node-llama-cpp: raw Llama-2 chat prompts completed under the GBNF grammars of the authors'
 * answer text, parsed into the same schemas, assembled into a program.
 *
 * The tiny model's output row biases (newline, backtick, end of turn) steer its random weights
 * through free-text grammars, as the `"` bias does for the JSON ones.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { writeTinyTestModels } from "../../sidecar/src/gguf/tinyTestModels";
import { PAPER_CG_GRAMMAR, PAPER_TD_GRAMMAR } from "../../sidecar/src/pipeline/promptFormats/paperGrammar";
import { JobEventSchema } from "../../sidecar/src/protocol";
import { cliPath } from "../helpers/testModels";

let dir: string;
let manifestPath: string;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "gpiot-paper-format-"));
  const models = await writeTinyTestModels(dir, { tokenBiases: { "<0x0A>": 6, "`": 5.5, "<|im_end|>": 7 } });
  manifestPath = path.join(dir, "manifest.json");
  const roles = { td: { adapters: [{ file: models.adapters.td }], promptFormat: "paper" }, cg: { adapters: [{ file: models.adapters.cg }], promptFormat: "paper" } };
  writeFileSync(manifestPath, JSON.stringify({ version: 1, defaultProfile: "paper-tiny", profiles: { "paper-tiny": { base: { file: models.base }, roles, threads: 1 } } }));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("llama.cpp accepts both answer grammars", async () => {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  try {
    await llama.createGrammar({ grammar: PAPER_TD_GRAMMAR });
    await llama.createGrammar({ grammar: PAPER_CG_GRAMMAR });
  } finally {
    await llama.dispose();
  }
});

test("gpiot synthesize with a paper-format profile: free-text answers under their grammars become a program", () => {
  const out = path.join(dir, "program");
  const result = spawnSync(process.execPath, [cliPath, "synthesize", "Detect heartbeats in a single-lead ECG", "--out", out, "--manifest", manifestPath, "--profile", "paper-tiny", "--threads", "1", "--json", "--quiet"], {
    encoding: "utf8",
    env: { ...process.env, GPIOT_PROFILES_DIR: path.join(dir, "no-profiles") },
    timeout: 300_000,
  });
  assert.equal(result.status, 0, result.stderr);
  const events = result.stdout.trim().split("\n").map((line) => JobEventSchema.parse(JSON.parse(line)));
  const text = (stage: string) => events.flatMap((event) => (event.type === "textDelta" && event.stage === stage ? [event.text] : [])).join("");
  assert.match(text("td"), /^ ?1\. [^\n]+(\n- [^\n]+)*\n\n2\. /, "TD answers in numbered blocks, not JSON");
  assert.match(text("cg"), /^ ?```python\n/, "CG answers with a code block, not JSON");
  assert.match(text("rt"), /^\{/, "RT keeps the JSON format");
  const decomposed = events.find((event) => event.type === "decomposed");
  assert.ok(decomposed && decomposed.type === "decomposed" && decomposed.subTasks.length >= 2);
  assert.equal(events.at(-1)!.type, "jobFinished");
  assert.ok(existsSync(path.join(out, "main.py")));
  assert.match(readFileSync(path.join(out, "README.md"), "utf8"), /Detect heartbeats/);
});
