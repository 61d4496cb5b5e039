/**
 * `gpiot train` end to end on real parts: PyTorch training of a tiny random llama made here (no
 * download), the project's converters, node-llama-cpp loading the exported GGUF adapters, and the
 * `gpiot` CLI as a user runs it. Needs the training packages (scripts/install-training.sh); without
 * torch every test here is skipped with the reason printed.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { getLlama, LlamaChatSession, LlamaLogLevel, type ControlledEvaluateInputItem, type Llama, type Token } from "node-llama-cpp";
import { SafetensorsFile } from "../../sidecar/src/peft/safetensors";
import { renderPaperPrompt } from "../../sidecar/src/pipeline/promptFormats/paperFormat";
import { resolveTrainingPython, runTrainer } from "../../sidecar/src/train/pythonTrainer";
import type { RunReport } from "../../sidecar/src/train/runReport";
import { TrainEventSchema, type TrainEvent } from "../../sidecar/src/train/trainEvents";
import { cliPath, repoRoot } from "../helpers/testModels";
import { makeTrainingRecords, writeRecords } from "../helpers/trainingRecords";

const python = resolveTrainingPython();
const probe = spawnSync(python, ["-c", "import torch, transformers, peft, safetensors"], { encoding: "utf8" });
const skip = probe.status === 0 ? false : `no PyTorch training environment in ${python} (${(probe.stderr || probe.error?.message || "").trim().split("\n").pop()}); install it with: bash scripts/install-training.sh`;
if (skip) process.stderr.write(`\n!!! SKIPPING the gpiot train tests: ${skip}\n\n`);

/** Training loss must fall to at most this share of its start (means of the first and last fifth of the steps). */
const LOSS_DROP_MARGIN = 0.8;
const PARITY_TOLERANCE = 1e-3;
const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";

let scratch: string;
let tinyBase: string;
let profilesDir: string;
let records: string;
let smokeRun: string;

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, GPIOT_PROFILES_DIR: profilesDir, GPIOT_TRAIN_PYTHON: python, ...extra };
}

function gpiot(args: string[], extraEnv: Record<string, string> = {}, timeout = 600_000) {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", env: env(extraEnv), timeout });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function jsonEvents(stdout: string): TrainEvent[] {
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .flatMap((line) => {
      const parsed = TrainEventSchema.safeParse(JSON.parse(line));
      return parsed.success ? [parsed.data] : [];
    });
}

const common = ["--batch-size", "2", "--lr", "5e-3", "--threads", "1", "--eval-samples", "1", "--eval-max-tokens", "24", "--json"];

before(async () => {
  if (skip) return;
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-train-test-"));
  profilesDir = path.join(scratch, "profiles");
  tinyBase = path.join(scratch, "tiny-hf");
  const made = gpiot(["train", "tiny-base", tinyBase]);
  assert.equal(made.code, 0, made.stderr);
  records = writeRecords(path.join(scratch, "records.jsonl"), makeTrainingRecords({ count: 10 }));
});

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("the training package's own tests", { skip }, () => {
  test("PECT math, records, rendering, fit estimate, batch mixing (python -m unittest)", () => {
    const result = spawnSync(python, ["-m", "unittest", "discover", "-s", "tests", "-t", "."], { cwd: path.join(repoRoot, "training"), encoding: "utf8", timeout: 300_000 });
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stderr, /Ran \d+ tests/);
  });
});

describe("gpiot train --mode pect, smoke test", { skip }, () => {
  let report: RunReport;
  let events: TrainEvent[];

  before(() => {
    if (skip) return;
    smokeRun = path.join(scratch, "smoke");
    const result = gpiot(["train", records, "--base", tinyBase, "--out", smokeRun, "--mode", "pect", "--gamma", "0.5", "--max-steps", "20", ...common]);
    assert.equal(result.code, 0, result.stderr);
    events = jsonEvents(result.stdout);
    report = JSON.parse(readFileSync(path.join(smokeRun, "report.json"), "utf8"));
  });

  test(`training loss falls to at most ${LOSS_DROP_MARGIN} of its start; every step and epoch is reported`, (t) => {
    const steps = events.filter((event) => event.event === "step");
    assert.equal(steps.length, 20);
    const start = events.find((event) => event.event === "start")!;
    assert.ok(start.event === "start" && start.trainable_share > 0 && start.trainable_share < 1);
    const validations = events.filter((event) => event.event === "validation");
    assert.ok(validations.length >= 2, "a validation loss per epoch");
    for (const validation of validations) assert.ok(validation.event === "validation" && validation.loss_without_cross !== undefined, "PECT with cross projections reports the loss without them");
    t.diagnostic(`loss ${report.lossDrop!.firstMean.toFixed(3)} -> ${report.lossDrop!.lastMean.toFixed(3)} (x${report.lossDrop!.ratio.toFixed(3)}); validation ${report.crossAblation!.withCross.toFixed(3)} with cross, ${report.crossAblation!.withoutCross.toFixed(3)} without`);
    assert.ok(report.lossDrop!.ratio <= LOSS_DROP_MARGIN, `loss fell only to x${report.lossDrop!.ratio}`);
  });

  test("exports PEFT folders, GGUF adapters, a profile and a report", () => {
    for (const role of ["td", "cg"]) {
      assert.ok(existsSync(path.join(smokeRun, "peft", role, "adapter_config.json")));
      assert.ok(existsSync(path.join(smokeRun, "gguf", `${role}.lora.gguf`)));
    }
    const profile = JSON.parse(readFileSync(path.join(profilesDir, "smoke.json"), "utf8"));
    assert.equal(profile.roles.td.promptFormat, "json");
    assert.equal(profile.training.mode, "pect");
    assert.equal(profile.base.file, path.join(smokeRun, "gguf", "base.gguf"));
    const html = readFileSync(path.join(smokeRun, "report.html"), "utf8");
    assert.match(html, /<svg[^>]*aria-label="Loss per step"/);
    assert.doesNotMatch(html, /<script/);
    assert.ok(report.evaluation?.variants.exported?.td && report.evaluation.variants.with_cross?.cg, "held-out answers of both roles, with and without the cross projections");
    assert.deepEqual(readdirSync(smokeRun).filter((name) => /\.(tmp|old|staging)$/.test(name)), []);
  });

  test("gpiot train export writes the run's profile again under another name", () => {
    const result = gpiot(["train", "export", smokeRun, "--name", "smoke-again"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "smoke-again");
    const profile = JSON.parse(readFileSync(path.join(profilesDir, "smoke-again.json"), "utf8"));
    assert.equal(profile.roles.cg.adapters[0].file, path.join(smokeRun, "gguf", "cg.lora.gguf"));
  });

  test("gpiot synthesize --profile <run> runs on the tuned adapters", () => {
    const out = path.join(scratch, "program");
    const result = gpiot(["synthesize", REQUIREMENT, "--out", out, "--profile", "smoke", "--threads", "1"], {}, 300_000);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Models ready: profile smoke/);
    const manifest = JSON.parse(readFileSync(path.join(out, "gpiot.json"), "utf8"));
    assert.equal(manifest.generator.profile, "smoke");
    assert.ok(existsSync(path.join(out, "main.py")));
  });
});

describe("export parity and prompt parity with llama.cpp", { skip }, () => {
  let llama: Llama;
  before(async () => {
    if (skip) return;
    llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  });
  after(async () => llama?.dispose());

  async function ggufLogProbs(adapter: string, tokens: number[]): Promise<Float64Array[]> {
    const model = await llama.loadModel({ modelPath: path.join(smokeRun, "gguf", "base.gguf") });
    try {
      const context = await model.createContext({ contextSize: 256, threads: 1, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", lora: { adapters: [{ filePath: adapter }] } });
      const outputs = await context.getSequence().controlledEvaluate(tokens.map((token): ControlledEvaluateInputItem => [token as Token, { generateNext: { probabilities: true } }]));
      await context.dispose();
      return outputs.map((output) => {
        const row = new Float64Array(output!.next.probabilities!.size);
        for (const [token, probability] of output!.next.probabilities!) row[token] = Math.log(probability);
        return row;
      });
    } finally {
      await model.dispose();
    }
  }

  test("the exported GGUF adapters reproduce the PyTorch model's log-probs (cross projections off) within 1e-3, F32 KV cache", async (t) => {
    const tokens = [1, 3, 344, 350, 344, 345, 330, 338, 15, 312, 261, 350, 4, 15, 3, 326, 344, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220, 240, 300, 320, 340];
    const out = path.join(scratch, "logprobs.safetensors");
    const run = await runTrainer(["logprobs", "--run", smokeRun, "--role", "td,cg", "--tokens", JSON.stringify(tokens), "--out", out], { python });
    assert.equal(run.exitCode, 0, run.stderrTail);
    const file = await SafetensorsFile.open(out);
    const reference: Record<string, Float32Array> = { td: (await file.readF32("td")).data, cg: (await file.readF32("cg")).data };
    const vocab = reference.td.length / tokens.length;
    const maxDiff = (ours: Float64Array[], expected: Float32Array) => {
      let max = 0;
      ours.forEach((row, position) => {
        for (let token = 0; token < vocab; token++) if (expected[position * vocab + token] > -30) max = Math.max(max, Math.abs(row[token] - expected[position * vocab + token]));
      });
      return max;
    };
    for (const role of ["td", "cg"]) {
      const ours = await ggufLogProbs(path.join(smokeRun, "gguf", `${role}.lora.gguf`), tokens);
      const right = maxDiff(ours, reference[role]);
      const other = maxDiff(ours, reference[role === "td" ? "cg" : "td"]);
      t.diagnostic(`${role}: max |log-prob diff| ${right.toExponential(2)} against its own PyTorch path, ${other.toFixed(3)} against the other role's`);
      assert.ok(right < PARITY_TOLERANCE, `${role} log-probs differ by ${right}`);
      assert.ok(other > 10 * PARITY_TOLERANCE, "the two roles' adapters must differ, else parity proves nothing");
    }
  });

  test("the trainer tokenizes a record exactly as the pipeline prompts it (chat template and paper format)", async () => {
    const paperRecords = writeRecords(path.join(scratch, "paper-one.jsonl"), makeTrainingRecords({ count: 3, format: "paper" }));
    const model = await llama.loadModel({ modelPath: path.join(smokeRun, "gguf", "base.gguf") });
    try {
      const context = await model.createContext({ contextSize: 4096, threads: 1 });
      const session = new LlamaChatSession({ contextSequence: context.getSequence() });
      for (const file of [records, paperRecords]) {
        const run = await runTrainer(["render", "--base", tinyBase, "--records", file, "--index", "0", "--index", "1"], { python });
        const rendered = run.events.filter((event) => event.event === "rendered");
        assert.equal(rendered.length, 2, run.stderrTail);
        for (const item of rendered) {
          assert.ok(item.event === "rendered");
          const record = JSON.parse(readFileSync(file, "utf8").split("\n")[item.index]);
          const [system, user] = record.messages;
          let ours: number[];
          if (record.format === "paper") {
            assert.equal(item.prompt_text, renderPaperPrompt(system.content, user.content), "TypeScript and Python render the same paper prompt text");
            ours = [model.tokens.bos!, ...model.tokenize(renderPaperPrompt(system.content, user.content), true)];
          } else {
            const state = session.chatWrapper.generateContextState({ chatHistory: [{ type: "system", text: system.content }, { type: "user", text: user.content }, { type: "model", response: [] }] });
            ours = state.contextText.tokenize(model.tokenizer);
          }
          assert.deepEqual(ours, item.prompt_ids, `${record.role} ${record.format}: llama.cpp's prompt tokens differ from the trainer's`);
        }
      }
      await context.dispose();
    } finally {
      await model.dispose();
    }
  });
});

describe("runs a user can trust", { skip }, () => {
  test("Ctrl+C checkpoints; --resume continues to exactly the weights of an uninterrupted run", async (t) => {
    const paperRecords = writeRecords(path.join(scratch, "paper.jsonl"), makeTrainingRecords({ count: 8, format: "paper" }));
    const args = (out: string) => ["train", paperRecords, "--base", tinyBase, "--out", out, "--mode", "lora", "--max-steps", "8", "--save-every", "2", ...common, "--eval-samples", "0"];
    const straight = path.join(scratch, "straight");
    assert.equal(gpiot(args(straight)).code, 0);

    const interrupted = path.join(scratch, "interrupted");
    const child = spawn(process.execPath, [cliPath, ...args(interrupted)], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let sent = false;
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (!sent && /"event":"step","step":3,/.test(stdout)) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    assert.equal(code, 130, stderr);
    const stoppedAt = jsonEvents(stdout).find((event) => event.event === "interrupted");
    assert.ok(stoppedAt && stoppedAt.event === "interrupted" && stoppedAt.step < 8, stderr);
    assert.match(stderr, /gpiot train --resume/);
    assert.equal(existsSync(path.join(profilesDir, "interrupted.json")), false, "no profile from an unfinished run");

    const resumed = gpiot(["train", "--resume", interrupted, "--json"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.ok(jsonEvents(resumed.stdout).some((event) => event.event === "resumed"));
    const weights = async (run: string) => {
      const file = await SafetensorsFile.open(path.join(run, "final", "trainable.safetensors"));
      return Promise.all([...file.tensors.keys()].sort().map(async (name) => [name, (await file.readF32(name)).data] as const));
    };
    const a = await weights(straight);
    const b = await weights(interrupted);
    assert.deepEqual(a.map(([name]) => name), b.map(([name]) => name));
    let max = 0;
    a.forEach(([, values], index) => values.forEach((value, i) => (max = Math.max(max, Math.abs(value - b[index][1][i])))));
    t.diagnostic(`stopped after step ${stoppedAt.step}; max |weight difference| after resuming: ${max}`);
    assert.ok(max < 1e-6, `resumed weights differ by ${max}`);
    const profile = JSON.parse(readFileSync(path.join(profilesDir, "interrupted.json"), "utf8"));
    assert.equal(profile.roles.td.promptFormat, "paper", "a run trained on paper records records that format");

    writeFileSync(paperRecords, readFileSync(paperRecords, "utf8") + readFileSync(paperRecords, "utf8").split("\n")[0] + "\n");
    const changed = gpiot(["train", "--resume", interrupted]);
    assert.equal(changed.code, 2, changed.stderr);
    assert.match(changed.stderr, /records file .*paper\.jsonl changed since this run started/);
  });
});

describe("bad input gets a clear error and leaves nothing half-written", { skip }, () => {
  test("wrong role, empty records, base/adapter mismatch, existing run folder, not a run", () => {
    const wrong = writeRecords(path.join(scratch, "wrong.jsonl"), makeTrainingRecords({ count: 6, roles: ["td", "rt", "cg"] }));
    const empty = path.join(scratch, "empty.jsonl");
    writeFileSync(empty, "\n");
    const cases: [string[], number, RegExp][] = [
      [["train", wrong, "--base", tinyBase, "--out", path.join(scratch, "bad1"), "--mode", "pect"], 2, /line 2: a record for role "rt", but this run trains td, cg/],
      [["train", empty, "--base", tinyBase, "--out", path.join(scratch, "bad2")], 2, /holds no records/],
      [["train", records, "--base", tinyBase, "--out", path.join(scratch, "bad3"), "--gguf-base", path.join(repoRoot, "models", "tiny", "tiny-base.gguf")], 5, /is not the model the adapters are trained on: its key\/value heads is 4, the base .* has 2/],
      [["train", records, "--base", tinyBase, "--out", smokeRun], 4, /already exists and is not empty: continue it with gpiot train --resume/],
      [["train", "--resume", scratch], 2, /not a training run folder/],
      [["train", records, "--base", tinyBase, "--out", path.join(scratch, "bad4"), "--name", "default"], 2, /profile name "default" is taken/],
      [["train", records, "--base", tinyBase, "--out", path.join(scratch, "bad5"), "--lambda", "2"], 2, /--lambda is a weight between 0 and 1/],
    ];
    for (const [args, expected, message] of cases) {
      const result = gpiot(args);
      assert.equal(result.code, expected, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
    for (const name of ["bad1", "bad2", "bad3", "bad4", "bad5"]) assert.equal(existsSync(path.join(scratch, name)), false, `${name}: a run refused before it started leaves no folder behind`);
  });

  test("no space left for checkpoints: refused before training, no checkpoint or profile written", () => {
    const out = path.join(scratch, "nospace");
    const result = gpiot(["train", records, "--base", tinyBase, "--out", out, "--max-steps", "2", ...common], { GPIOT_TRAIN_DISK_FREE_BYTES: "4096" });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /No space left for checkpoints and the exported adapters in .*nospace: it needs about [\d.]+ MiB and 0\.0 MiB are free/);
    assert.equal(existsSync(out), false, "nothing of the refused run is left");
    assert.equal(existsSync(path.join(profilesDir, "nospace.json")), false);
  });

  test("a base that does not fit the device is refused before it is loaded", () => {
    const huge = path.join(scratch, "llama-70b-shape");
    rmSync(huge, { recursive: true, force: true });
    spawnSync("mkdir", ["-p", huge]);
    writeFileSync(path.join(huge, "config.json"), JSON.stringify({ model_type: "llama", architectures: ["LlamaForCausalLM"], hidden_size: 8192, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, intermediate_size: 28672, vocab_size: 32000 }));
    const result = gpiot(["train", records, "--base", huge, "--out", path.join(scratch, "huge-run"), "--threads", "1"], { GPIOT_TRAIN_DEVICE_FREE_BYTES: String(16 * 1024 ** 3) });
    assert.equal(result.code, 8, result.stderr);
    assert.match(result.stderr, /does not fit this device for training\. Training needs about [\d.]+ GiB .* 16\.0 GiB is free/);
  });

  test("an interpreter without the training packages is named, with what to install", () => {
    const venv = path.join(scratch, "bare-venv");
    spawnSync("python3", ["-m", "venv", "--without-pip", venv]);
    const result = gpiot(["train", records, "--base", tinyBase, "--out", path.join(scratch, "nopy"), "--python", path.join(venv, "bin", "python")]);
    assert.equal(result.code, 7, result.stderr);
    assert.match(result.stderr, /cannot train: the packages? "torch"[^\n]* not installed[^\n]*\n.*pip install -r .*training\/requirements\.txt/);
  });
});
