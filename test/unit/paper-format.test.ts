/**
 * The "paper" prompt format: the GPIoT authors' Llama-2 chat prompts, byte for byte, and their
 * free-text answers read back into the pipeline's schemas. Samples are in the published format
 * (the authors' scripts build "<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user.strip()}[/INST]").
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  buildPaperCodePrompt,
  buildPaperDecompositionPrompt,
  importedPackages,
  PAPER_CG_SYSTEM_PROMPT,
  PAPER_TD_SYSTEM_PROMPT,
  parsePaperCode,
  parsePaperCodePrompt,
  parsePaperDecomposition,
  parsePaperDecompositionPrompt,
  parsePaperSample,
  pythonStrip,
  renderPaperCode,
  renderPaperDecomposition,
  renderPaperPrompt,
  renderPaperSample,
  withRunEntryPoint,
} from "../../sidecar/src/pipeline/promptFormats/paperFormat";
import { decomposeRequirement } from "../../sidecar/src/pipeline/taskDecomposition";
import { generateCode } from "../../sidecar/src/pipeline/codeGeneration";
import { pythonIdentifier } from "../../sidecar/src/pipeline/pythonNames";
import type { CompletionRequest } from "../../sidecar/src/pipeline/promptFormats/promptFormat";
import type { GenerationResult, RoleModels } from "../../sidecar/src/pipeline/structuredGeneration";
import type { TaskSpec } from "../../sidecar/src/schemas";

// The authors' published example requests (task_decomposition.py, code_generation.py), as data.
const AUTHORS_TD_USER =
  "Decompose the following task into multiple steps and describe the implementation details for each step. The task is to maximize throughput by digitally compensating for wireless impairments and removing residual interference from the transmit chain. ";
const AUTHORS_TD_PROMPT =
  "<s>[INST] <<SYS>>\nYou are a professional IoT application developer. According to the user problem, you need to decompose the problem into multiple steps with implementation details. The output must be in the format of:\n\n1. description and implementation details of step 1\n\n2. description and implementation details of step 2\n\n......\n<</SYS>>\n\nDecompose the following task into multiple steps and describe the implementation details for each step. The task is to maximize throughput by digitally compensating for wireless impairments and removing residual interference from the transmit chain.[/INST]";

const TD_ANSWER = [
  "1. Channel estimation: Estimate the wireless channel from known pilot symbols.",
  "- Insert pilot symbols into every frame",
  "- Compute a least-squares channel estimate per subcarrier",
  "",
  "2. Digital predistortion: Compensate the power amplifier's nonlinearity before transmission.",
  "- Fit a memory polynomial to the amplifier's output",
  "- Apply its inverse to the transmitted samples",
  "",
  "3. Interference cancellation: Remove the residual interference from the received signal.",
  "- Reconstruct the interference from the transmit chain model",
  "- Subtract it and report the throughput",
].join("\n");

const SPEC: TaskSpec = {
  target: "Define a Python function to create a simple augmentation pipeline for image processing and provide detailed code comments.",
  inputs: [{ name: "image_path", type: "str", description: "The file path to the input image." }],
  outputs: [
    { name: "augmented", type: "np.ndarray", description: "The augmented image." },
    { name: "ops", type: "list[str]", description: "The applied operations." },
  ],
};
const CG_USER =
  "**Target**\nDefine a Python function to create a simple augmentation pipeline for image processing and provide detailed code comments.\n\n**Input Specifications**\n- `image_path` (str): The file path to the input image.\n\n**Output specifications**\n- `augmented` (np.ndarray): The augmented image.\n- `ops` (list[str]): The applied operations.";
const CG_ANSWER = [
  "```python",
  "import numpy as np",
  "from PIL import Image",
  "",
  "def augment(image_path):",
  '    """Flip and normalise an image."""',
  "    image = np.asarray(Image.open(image_path), dtype=float)",
  "    return image[:, ::-1] / 255.0, ['flip', 'normalise']",
  "```",
  "",
  "## augment",
  "",
  "Flips the image horizontally and scales it to [0, 1].",
].join("\n");

describe("paper prompts are the authors' text, byte for byte", () => {
  test("the TD prompt of the authors' example", () => {
    assert.equal(renderPaperPrompt(PAPER_TD_SYSTEM_PROMPT, AUTHORS_TD_USER), AUTHORS_TD_PROMPT);
    const ours = buildPaperDecompositionPrompt({ requirement: "Maximize throughput by digitally compensating for wireless impairments and removing residual interference from the transmit chain", limits: null });
    assert.equal(ours, AUTHORS_TD_USER, "our TD request for that requirement is the authors' request");
    assert.equal(renderPaperPrompt(PAPER_TD_SYSTEM_PROMPT, ours), AUTHORS_TD_PROMPT);
  });

  test("resource constraints join the task as a sentence; acronyms keep their case", () => {
    const user = buildPaperDecompositionPrompt({ requirement: "ECG beats must be detected.", limits: { text: "Jetson Nano, <= 200 MB RAM." } });
    assert.equal(parsePaperDecompositionPrompt(user), "ECG beats must be detected. It must run within these resource constraints: Jetson Nano, <= 200 MB RAM.");
  });

  test("the CG prompt lays out the specification as the authors do, and reads back into it", () => {
    assert.equal(buildPaperCodePrompt(SPEC), CG_USER);
    assert.deepEqual(parsePaperCodePrompt(CG_USER), SPEC);
    assert.equal(buildPaperCodePrompt({ ...SPEC, inputs: [] }).split("\n\n")[1], "**Input Specifications**\nNone");
    assert.deepEqual(parsePaperCodePrompt(buildPaperCodePrompt({ ...SPEC, inputs: [] })).inputs, []);
  });

  test("strip() removes what Python's str.strip() removes, and nothing else", () => {
    assert.equal(pythonStrip("\u001c\t x \u0085\u3000"), "x");
    assert.equal(pythonStrip("\ufeffx"), "\ufeffx", "U+FEFF is not whitespace to Python");
  });
});

describe("published-format samples round-trip", () => {
  const samples = [
    { system: PAPER_TD_SYSTEM_PROMPT, user: AUTHORS_TD_USER, answer: TD_ANSWER },
    { system: PAPER_CG_SYSTEM_PROMPT, user: CG_USER, answer: CG_ANSWER },
  ];

  test("a sample splits into system, user and answer and renders back to the same bytes", () => {
    for (const sample of samples) {
      const text = renderPaperSample(sample.system, sample.user, sample.answer);
      assert.ok(text.startsWith("<s>[INST] <<SYS>>\n") && text.endsWith(" </s>"));
      const parsed = parsePaperSample(text);
      assert.deepEqual(parsed, { system: sample.system, user: pythonStrip(sample.user), answer: sample.answer });
      assert.equal(renderPaperSample(parsed.system, parsed.user, parsed.answer), text);
    }
    assert.throws(() => parsePaperSample("[INST] hello [/INST] hi"), /not a Llama-2 chat sample/);
  });

  test("a TD answer parses into the decomposition, every field, and renders back unchanged", () => {
    const decomposition = parsePaperDecomposition(TD_ANSWER);
    assert.deepEqual(decomposition.subTasks[0], {
      name: "Channel estimation",
      problem: "Estimate the wireless channel from known pilot symbols.",
      steps: ["Insert pilot symbols into every frame", "Compute a least-squares channel estimate per subcarrier"],
    });
    assert.equal(decomposition.subTasks.length, 3);
    assert.equal(renderPaperDecomposition(decomposition), TD_ANSWER);
  });

  test("TD answers in the other published shapes parse too", () => {
    const subTaskStyle = "- Sub-Task 1 [Load ECG] - Read the record\n- Implementation step 1: read with wfdb\n\n- Sub-Task 2 [Detect R peaks] - Find QRS complexes\n- Implementation step 1: band-pass 5-15 Hz";
    const parsed = parsePaperDecomposition(subTaskStyle);
    assert.deepEqual(parsed.subTasks.map((subTask) => [subTask.name, subTask.problem]), [["Load ECG", "Read the record"], ["Detect R peaks", "Find QRS complexes"]]);
    const plain = parsePaperDecomposition("1. Load the data from the sensor. Scale it to volts.\n\n2. Filter the signal with a Butterworth band-pass.");
    assert.deepEqual(plain.subTasks[0].steps, ["Load the data from the sensor.", "Scale it to volts."]);
    assert.throws(() => parsePaperDecomposition("Sure, here is how."), /no numbered steps/);
    assert.throws(() => parsePaperDecomposition("1. Only one step"), /subTasks/);
  });

  test("a CG answer parses into code, documentation and requirements, and renders back unchanged", () => {
    const artifact = parsePaperCode(CG_ANSWER);
    assert.equal(artifact.code, CG_ANSWER.split("```python\n")[1].split("```")[0]);
    assert.equal(artifact.documentation, "## augment\n\nFlips the image horizontally and scales it to [0, 1].");
    assert.deepEqual(artifact.requirements, ["numpy", "pillow"]);
    assert.equal(renderPaperCode(artifact), CG_ANSWER);
    assert.throws(() => parsePaperCode("def f(): pass"), /no ```python code block/);
    assert.throws(() => parsePaperCode("```python\ndef f(): pass\n"), /not closed/);
  });

  test("the assembled program's run() is added around the authors' single function", () => {
    const code = withRunEntryPoint(parsePaperCode(CG_ANSWER).code, SPEC, pythonIdentifier);
    assert.match(code, /\ndef run\(image_path\):\n/);
    assert.match(code, /result = augment\(image_path\)/);
    assert.match(code, /return dict\(zip\(\["augmented","ops"\], result\)\)/);
    assert.equal(withRunEntryPoint("def run(x):\n    return {}\n", SPEC, pythonIdentifier), "def run(x):\n    return {}\n");
    assert.deepEqual(importedPackages("import os\nimport scipy.signal\nfrom sklearn.svm import SVC\nimport numpy as np"), ["scipy", "scikit-learn", "numpy"]);
  });
});

describe("stages hand over to the paper format when the role's model was trained on it", () => {
  class PaperModels implements RoleModels {
    readonly completions: CompletionRequest[] = [];
    constructor(private readonly answers: Record<string, string>) {}
    promptFormat() {
      return "paper" as const;
    }
    async generate(): Promise<GenerationResult> {
      throw new Error("the paper format must not use the JSON chat path");
    }
    async complete(request: CompletionRequest): Promise<GenerationResult> {
      this.completions.push(request);
      const text = this.answers[request.role];
      for (let i = 0; i < text.length; i += 7) request.onTextChunk?.(text.slice(i, i + 7));
      return { text, stopReason: "eogToken", tokenCount: text.length, firstTokenMs: 1, totalMs: 2 };
    }
  }

  test("TD: the authors' prompt under the TD grammar; sub-tasks reported as their blocks complete", async () => {
    const models = new PaperModels({ td: ` ${TD_ANSWER}` });
    const seen: string[] = [];
    const result = await decomposeRequirement(models, { requirement: "Maximize throughput by digitally compensating for wireless impairments and removing residual interference from the transmit chain", limits: null }, { maxTokens: 100, onSubTask: (index, subTask) => seen.push(`${index}:${subTask.name}`) });
    assert.equal(models.completions[0].prompt, AUTHORS_TD_PROMPT);
    assert.match(models.completions[0].gbnf, /^root ::= " "\? "1\. " body "\\n\\n2\. " body/);
    assert.deepEqual(seen, ["0:Channel estimation", "1:Digital predistortion", "2:Interference cancellation"]);
    assert.equal(result.value.subTasks.length, 3);
  });

  test("CG: the authors' prompt; the code streams without its fences; run() is added", async () => {
    const models = new PaperModels({ cg: ` ${CG_ANSWER}` });
    let streamed = "";
    const result = await generateCode(models, { requirement: "r", limits: null, spec: SPEC, previousSpecs: [] }, { maxTokens: 100, onCodeDelta: (text) => (streamed += text) });
    assert.equal(models.completions[0].prompt, renderPaperPrompt(PAPER_CG_SYSTEM_PROMPT, CG_USER));
    assert.equal(streamed, parsePaperCode(CG_ANSWER).code);
    assert.match(result.value.code, /def run\(image_path\)/);
  });

  test("an answer outside the format fails the stage with the reason", async () => {
    const models = new PaperModels({ td: "I cannot help with that." });
    await assert.rejects(decomposeRequirement(models, { requirement: "x y z", limits: null }, { maxTokens: 10 }), /not in the GPIoT text format: the answer has no numbered steps/);
  });
});
