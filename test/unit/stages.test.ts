import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { buildCodePrompt, generateCode, runSignature } from "../../sidecar/src/pipeline/codeGeneration";
import { parseResourceLimits, prepareRequirement, RequirementError } from "../../sidecar/src/pipeline/requirement";
import { buildIoPrompt, buildTargetPrompt, renderSpecMarkdown, transformSubTask } from "../../sidecar/src/pipeline/requirementTransformation";
import { parseStageOutput, StageOutputError, CancelledError, generateStructured } from "../../sidecar/src/pipeline/structuredGeneration";
import { buildDecompositionPrompt, decomposeRequirement } from "../../sidecar/src/pipeline/taskDecomposition";
import { DecompositionSchema, UserTargetSchema, type TaskSpec } from "../../sidecar/src/schemas";
import { FakeRoleModels, sampleSubTasks } from "../helpers/fakeModels";

const limits = parseResourceLimits("runs on a Jetson Nano, <= 200 MB RAM, <= 10 ms per window");
const spec: TaskSpec = {
  target: "Write some code and documentation to detect R peaks",
  inputs: [{ name: "ecg signal", type: "np.ndarray", description: "samples" }, { name: "fs", type: "float", description: "Hz" }],
  outputs: [{ name: "r_peaks", type: "np.ndarray", description: "indices" }],
};

describe("requirement", () => {
  test("rejects empty, huge and meaningless requirements with named codes", () => {
    const codeOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        assert.ok(error instanceof RequirementError);
        return error.code;
      }
      return "accepted";
    };
    assert.equal(codeOf(() => prepareRequirement("   \n ")), "REQUIREMENT_EMPTY");
    assert.equal(codeOf(() => prepareRequirement("detect heartbeats ".repeat(600))), "REQUIREMENT_TOO_LONG");
    assert.equal(codeOf(() => prepareRequirement("hello!")), "NOTHING_TO_BUILD");
    assert.equal(codeOf(() => prepareRequirement("1234 5678 ???")), "NOTHING_TO_BUILD");
    assert.equal(codeOf(() => prepareRequirement("Detect heartbeats in ECG", "x".repeat(1001))), "CONSTRAINTS_TOO_LONG");
    assert.equal(codeOf(() => prepareRequirement("Detect heartbeats in ECG")), "accepted");
  });

  test("parses memory, latency and device from constraint text", () => {
    assert.equal(limits.memoryMB, 200);
    assert.equal(limits.latencyMs, 10);
    assert.equal(limits.device, "Jetson Nano");
    assert.equal(parseResourceLimits("at most 1.5 GB and 2 s").memoryMB, 1536);
    assert.equal(parseResourceLimits("at most 1.5 GB and 2 s").latencyMs, 2000);
    assert.deepEqual(parseResourceLimits("low power please"), { text: "low power please" });
    assert.equal(parseResourceLimits("100-200 MB").memoryMB, 200, "a range is not a negative number");
  });

  test("short requirements that name something to build are accepted", () => {
    for (const requirement of ["Detect falls from a wrist IMU", "Count steps", "Pedometer", "Monitor CO2", "Log temperature", "FFT of IMU", "Hello world program"])
      assert.doesNotThrow(() => prepareRequirement(requirement), requirement);
  });

  test("only text with nothing to build is rejected, with the reason", () => {
    const reasons: [string, RegExp][] = [
      ["hi", /only greetings, test words or placeholders/],
      ["Hello world!", /only greetings/],
      ["test test", /only greetings, test words/],
      ["asdf qwer zxcv", /placeholders/],
      ["lorem ipsum", /placeholders/],
      ["...", /no words, only numbers and symbols/],
      ["42", /no words/],
    ];
    for (const [requirement, reason] of reasons) {
      assert.throws(() => prepareRequirement(requirement), (error: unknown) => {
        assert.ok(error instanceof RequirementError && error.code === "NOTHING_TO_BUILD", requirement);
        assert.match(error.message, reason);
        assert.ok(error.message.includes(`"${requirement}"`));
        return true;
      });
    }
  });

  test("negative or zero resource limits are rejected, not read as positive", () => {
    for (const constraints of ["<= -5 ms", "Jetson Nano, <= -200 MB RAM", "under −3 s", "<= 0 MB", "-1 GB and 10 ms"]) {
      assert.throws(
        () => prepareRequirement("Count steps", constraints),
        (error: unknown) => error instanceof RequirementError && error.code === "CONSTRAINTS_INVALID" && /must be more than zero/.test(error.message),
        constraints,
      );
    }
  });
});

describe("prompts carry the requirement and the resource constraints through every stage", () => {
  const requirement = "Detect heartbeats in a single-lead ECG";
  test("TD, RT and CG prompts", () => {
    const prompts = [
      buildDecompositionPrompt({ requirement, limits }),
      buildTargetPrompt({ requirement, limits, subTask: sampleSubTasks[1], previousSpecs: [] }),
      buildIoPrompt({ requirement, limits, subTask: sampleSubTasks[1], previousSpecs: [spec] }, spec.target),
      buildCodePrompt({ requirement, limits, spec, previousSpecs: [spec] }),
    ];
    for (const prompt of prompts) {
      assert.match(prompt, /Detect heartbeats in a single-lead ECG/);
      assert.match(prompt, /200 MB/);
      assert.match(prompt, /Jetson Nano/);
    }
    assert.match(prompts[1], /Pan-Tompkins thresholds/);
    assert.match(prompts[2], new RegExp(spec.target));
    assert.match(prompts[2], /r_peaks \(np.ndarray\)/, "earlier outputs are offered as inputs");
    assert.match(prompts[3], /def run\(ecg_signal, fs\) -> dict/);
  });

  test("a repair prompt carries the previous code and the error", () => {
    const prompt = buildCodePrompt({ requirement, limits: null, spec, previousSpecs: [], repair: { previousCode: "def run(:", error: "SyntaxError: invalid syntax" } });
    assert.match(prompt, /def run\(:/);
    assert.match(prompt, /SyntaxError: invalid syntax/);
    assert.match(prompt, /No resource constraints/);
  });

  test("run signature uses Python identifiers", () => {
    assert.equal(runSignature({ ...spec, inputs: [{ name: "class", type: "str", description: "x" }, { name: "2nd value", type: "int", description: "y" }] }), "def run(class_, value_2nd_value) -> dict");
  });

  test("spec Markdown has GPIoT's three headings", () => {
    const markdown = renderSpecMarkdown(spec);
    assert.match(markdown, /\*\*Target\*\*\nWrite some code/);
    assert.match(markdown, /\*\*Input Specification\*\*\n- ecg signal \(np.ndarray\): samples\n- fs \(float\): Hz/);
    assert.match(markdown, /\*\*Output Specification\*\*\n- r_peaks/);
  });
});

describe("stage output parsing", () => {
  test("a truncated answer names the token limit", () => {
    assert.throws(() => parseStageOutput("TD", DecompositionSchema, '{"subTasks": [', "maxTokens"), (error: unknown) => error instanceof StageOutputError && /token limit/.test(error.message));
  });
  test("invalid JSON and wrong shapes are named", () => {
    assert.throws(() => parseStageOutput("TD", DecompositionSchema, "{nope", "eogToken"), /not valid JSON/);
    assert.throws(() => parseStageOutput("TD", DecompositionSchema, '{"subTasks": []}', "eogToken"), /expected shape at subTasks/);
  });
  test("an aborted generation is a cancellation, not a parse error", async () => {
    const models = { generate: async () => ({ text: '{"tar', stopReason: "abort" as const, tokenCount: 2, firstTokenMs: 0, totalMs: 1 }) };
    await assert.rejects(generateStructured(models, { stage: "RT", role: "rt", schema: UserTargetSchema, systemPrompt: "", userPrompt: "", maxTokens: 10 }), CancelledError);
  });
});

describe("stages on a scripted model", () => {
  test("TD reports each sub-task as soon as it is complete, then the whole decomposition", async () => {
    const text = JSON.stringify({ subTasks: sampleSubTasks }, null, 2);
    const models = new FakeRoleModels(() => ({ text }));
    const streamed: { index: number; name: string; at: number }[] = [];
    let received = "";
    const result = await decomposeRequirement(models, { requirement: "Detect heartbeats", limits: null }, {
      maxTokens: 100,
      onTextChunk: (chunk) => (received += chunk),
      onSubTask: (index, subTask) => streamed.push({ index, name: subTask.name, at: received.length }),
    });
    assert.deepEqual(result.value.subTasks, sampleSubTasks);
    assert.deepEqual(streamed.map((entry) => [entry.index, entry.name]), sampleSubTasks.map((subTask, index) => [index, subTask.name]));
    assert.ok(streamed[0].at < text.length / 2, "the first sub-task arrives before the answer is half written");
    assert.equal(models.requests[0].role, "td");
    assert.equal((models.requests[0].jsonSchema as { type?: string }).type, "object");
  });

  test("RT chains the target prompt into the I/O prompt", async () => {
    const models = new FakeRoleModels((request) =>
      request.userPrompt.includes("State the user target")
        ? { text: JSON.stringify({ target: "Write some code and documentation to find peaks" }) }
        : { text: JSON.stringify({ inputs: spec.inputs, outputs: spec.outputs }) },
    );
    const result = await transformSubTask(models, { requirement: "Detect heartbeats", limits: null, subTask: sampleSubTasks[1], previousSpecs: [] }, { maxTokens: { target: 50, io: 50 } });
    assert.equal(models.requests.length, 2);
    assert.ok(models.requests.every((request) => request.role === "rt"));
    assert.match(models.requests[1].userPrompt, /Target: Write some code and documentation to find peaks/);
    assert.deepEqual(result.spec, { target: "Write some code and documentation to find peaks", inputs: spec.inputs, outputs: spec.outputs });
  });

  test("CG streams the decoded code while the JSON is written", async () => {
    const code = 'import numpy as np\n\ndef run(ecg_signal, fs):\n    """Find "peaks"."""\n    return {"r_peaks": np.array([])}\n';
    const models = new FakeRoleModels(() => ({ text: JSON.stringify({ code, documentation: "# Peaks", requirements: ["numpy"] }) }));
    let streamedCode = "";
    const result = await generateCode(models, { requirement: "x", limits: null, spec, previousSpecs: [] }, { maxTokens: 500, onCodeDelta: (delta) => (streamedCode += delta) });
    assert.equal(streamedCode, code);
    assert.equal(result.value.code, code);
    assert.equal(models.requests[0].role, "cg");
  });
});
