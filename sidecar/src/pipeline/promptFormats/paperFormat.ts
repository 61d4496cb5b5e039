/**
 * The "paper" prompt format: the GPIoT authors' Llama-2 chat prompts, reproduced byte for byte from
 * their published inference scripts (lemingshen/GPIoT: task_decomposition.py, code_generation.py):
 *
 *   "<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user.strip()}[/INST]"
 *
 * with their two system prompts, their TD request sentence, and their CG specification layout
 * (**Target** / **Input Specifications** / **Output specifications**, parameters as
 * "- `name` (type): description"). A training sample in this format is the prompt followed by
 * " {answer} </s>" (training/gpiot_training/formats.py renders the same text; a test keeps them equal).
 *
 * Answers are free text: TD writes numbered steps ("1. ...", blank line, "2. ..."), CG one Python
 * code block and its Markdown documentation. The parsers below read them into the same zod schemas
 * the JSON format fills; the renderers write the canonical form the parsers read back unchanged.
 */
import { CodeArtifactSchema, DecompositionSchema, type CodeArtifact, type Decomposition, type Parameter, type ResourceLimits, type SubTask, type TaskSpec } from "../../schemas";

export const PAPER_TD_SYSTEM_PROMPT =
  "You are a professional IoT application developer. According to the user problem, you need to decompose the problem into multiple steps with implementation details. The output must be in the format of:\n\n1. description and implementation details of step 1\n\n2. description and implementation details of step 2\n\n......";

export const PAPER_CG_SYSTEM_PROMPT =
  "You are a professional and skillful Python programmer, especially in the field of communication, signal processing, and machine learning. According to the user instruction, you need to generate one single Python function with detailed comments and documentation. The documentation should be in the Markdown format.";

const TD_REQUEST = "Decompose the following task into multiple steps and describe the implementation details for each step. The task is to ";

export class PaperFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PaperFormatError";
  }
}

// Python's str.isspace() set, so that strip() here removes exactly what the authors' .strip() removed.
const PY_SPACE = "\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

export function pythonStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PY_SPACE.includes(text[start])) start++;
  while (end > start && PY_SPACE.includes(text[end - 1])) end--;
  return text.slice(start, end);
}

export function renderPaperPrompt(system: string, user: string): string {
  return `<s>[INST] <<SYS>>\n${system}\n<</SYS>>\n\n${pythonStrip(user)}[/INST]`;
}

export function renderPaperAnswer(answer: string): string {
  return ` ${pythonStrip(answer)} </s>`;
}

/** A whole training sample, as the "data" text column of the published datasets would hold it. */
export function renderPaperSample(system: string, user: string, answer: string): string {
  return renderPaperPrompt(system, user) + renderPaperAnswer(answer);
}

export function parsePaperSample(text: string): { system: string; user: string; answer: string } {
  const match = /^<s>\[INST\] <<SYS>>\n([\s\S]*?)\n<<\/SYS>>\n\n([\s\S]*?)\[\/INST\]([\s\S]*)$/.exec(text);
  if (!match) throw new PaperFormatError('not a Llama-2 chat sample: expected "<s>[INST] <<SYS>>\\n...\\n<</SYS>>\\n\\n...[/INST] ... </s>"');
  const answer = pythonStrip(match[3].replace(/\s*<\/s>\s*$/, ""));
  return { system: match[1], user: match[2], answer };
}

// ---- TD ----

function sentence(text: string): string {
  return pythonStrip(text).replace(/[\s.]+$/, "");
}

/** "Detect heartbeats ..." -> "detect heartbeats ..." (acronyms such as "ECG" keep their case). */
function lowerFirstWord(text: string): string {
  return text.replace(/^([A-Z])([a-z][a-z'-]*)\b/, (_, first: string, rest: string) => first.toLowerCase() + rest);
}

/** The authors' TD user message for a requirement (and resource constraints, as their A3 augmentation states them). */
export function buildPaperDecompositionPrompt(input: { requirement: string; limits: ResourceLimits | null }): string {
  let task = `${lowerFirstWord(sentence(input.requirement))}.`;
  if (input.limits?.text.trim()) task += ` It must run within these resource constraints: ${sentence(input.limits.text)}.`;
  return `${TD_REQUEST}${task} `;
}

export function parsePaperDecompositionPrompt(user: string): string {
  const text = pythonStrip(user);
  if (!text.startsWith(TD_REQUEST)) throw new PaperFormatError("not a GPIoT task decomposition request");
  return text.slice(TD_REQUEST.length);
}

export function renderPaperDecomposition(decomposition: Decomposition): string {
  return decomposition.subTasks.map((subTask, index) => [`${index + 1}. ${subTask.name}: ${subTask.problem}`, ...subTask.steps.map((step) => `- ${step}`)].join("\n")).join("\n\n");
}

const HEADER = /^\s*(?:[-*]\s*)?(?:\*\*)?(?:(?:Sub-?\s?Task|Step)\s*(\d+)|(\d+)[.)])(?:\*\*)?\s*[:.\-–]?\s*(.*)$/i;
const BULLET = /^\s*(?:[-*•]|\d+[.)]|[a-z][.)])\s+/;

interface RawBlock {
  title: string;
  details: string[];
}

/** Numbered blocks of a TD answer; text before the first number is ignored. */
export function paperBlocks(text: string): RawBlock[] {
  const blocks: RawBlock[] = [];
  for (const line of text.split("\n")) {
    const header = HEADER.exec(line);
    const isTopLevel = header && !/^\s{2,}/.test(line);
    if (header && isTopLevel) {
      blocks.push({ title: unbold(header[3] ?? ""), details: [] });
    } else if (blocks.length && line.trim()) {
      blocks.at(-1)!.details.push(unbold(line.replace(BULLET, "").trim()));
    }
  }
  return blocks.filter((block) => block.title || block.details.length);
}

function unbold(text: string): string {
  return text.replace(/\*\*/g, "").trim();
}

function shortName(title: string): string {
  const words = title.replace(/[.:;,]+$/, "").split(/\s+/);
  let name = "";
  for (const word of words) {
    if ((name ? name.length + 1 : 0) + word.length > 80) break;
    name = name ? `${name} ${word}` : word;
  }
  return name || title.slice(0, 80);
}

export function blockToSubTask(block: RawBlock): SubTask {
  let title = block.title;
  const details = [...block.details];
  if (!title && details.length) title = details.shift()!;
  const bracketed = /^\[([^\]]{1,80})\]\s*[-–:]?\s*(.*)$/.exec(title);
  const named = /^(.{1,80}?):\s+(.+)$/.exec(title);
  let name: string;
  let problem: string;
  if (bracketed) {
    name = bracketed[1].trim();
    problem = bracketed[2].replace(/^\[|\]$/g, "").trim() || (details.shift() ?? name);
  } else if (named) {
    name = named[1].trim();
    problem = named[2].trim();
  } else {
    name = shortName(title);
    problem = title;
  }
  const steps = details.length ? details : splitSentences(problem);
  return { name, problem, steps };
}

function splitSentences(text: string): string[] {
  const sentences = text.split(/(?<=[.;!?])\s+(?=[A-Z0-9])/).map((part) => part.trim()).filter(Boolean);
  return sentences.length ? sentences : [text];
}

/** A TD answer -> the decomposition; throws PaperFormatError naming what does not fit. */
export function parsePaperDecomposition(text: string): Decomposition {
  const blocks = paperBlocks(text);
  if (blocks.length === 0) throw new PaperFormatError('the answer has no numbered steps ("1. ...")');
  const parsed = DecompositionSchema.safeParse({ subTasks: blocks.map(blockToSubTask) });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PaperFormatError(`the steps do not fit the decomposition at ${issue.path.join(".") || "$"}: ${issue.message}`);
  }
  return parsed.data;
}

// ---- CG ----

function renderParameters(parameters: Parameter[]): string {
  if (parameters.length === 0) return "None";
  return parameters.map((parameter) => `- \`${parameter.name}\` (${parameter.type}): ${parameter.description}`).join("\n");
}

/** The authors' CG user message for a task specification. */
export function buildPaperCodePrompt(spec: TaskSpec): string {
  return `**Target**\n${spec.target}\n\n**Input Specifications**\n${renderParameters(spec.inputs)}\n\n**Output specifications**\n${renderParameters(spec.outputs)}`;
}

function parseParameters(section: string): Parameter[] {
  if (pythonStrip(section) === "None") return [];
  return section
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => {
      const match = /^- `([^`]+)` \(([^)]*(?:\([^)]*\)[^)]*)*)\): ([\s\S]*)$/.exec(line);
      if (!match) throw new PaperFormatError(`not a parameter line: "${line.slice(0, 80)}"`);
      return { name: match[1], type: match[2], description: match[3] };
    });
}

export function parsePaperCodePrompt(user: string): TaskSpec {
  const match = /^\*\*Target\*\*\n([\s\S]*?)\n\n\*\*Input Specifications\*\*\n([\s\S]*?)\n\n\*\*Output specifications\*\*\n([\s\S]*)$/.exec(pythonStrip(user));
  if (!match) throw new PaperFormatError("not a GPIoT code generation request (**Target** / **Input Specifications** / **Output specifications**)");
  return { target: match[1], inputs: parseParameters(match[2]), outputs: parseParameters(match[3]) };
}

export function renderPaperCode(artifact: Pick<CodeArtifact, "code" | "documentation">): string {
  const code = artifact.code.endsWith("\n") ? artifact.code : `${artifact.code}\n`;
  return `\`\`\`python\n${code}\`\`\`\n\n${artifact.documentation}`;
}

const STANDARD_LIBRARY = new Set(
  (
    "abc argparse array ast asyncio base64 bisect collections concurrent contextlib copy csv dataclasses datetime decimal enum functools glob gzip " +
    "hashlib heapq io itertools json logging math multiprocessing operator os pathlib pickle pprint queue random re shutil signal socket sqlite3 " +
    "statistics string struct subprocess sys tempfile textwrap threading time timeit traceback typing unittest uuid warnings wave zipfile __future__"
  ).split(" "),
);
const IMPORT_TO_PACKAGE: Record<string, string> = { sklearn: "scikit-learn", cv2: "opencv-python", yaml: "pyyaml", PIL: "pillow", serial: "pyserial", skimage: "scikit-image" };

/** Third-party packages a module imports (pip names), in order of first import. */
export function importedPackages(code: string): string[] {
  const packages: string[] = [];
  for (const match of code.matchAll(/^\s*(?:import\s+([A-Za-z_][\w.]*)|from\s+([A-Za-z_][\w.]*)\s+import\b)/gm)) {
    const top = (match[1] ?? match[2]).split(".")[0];
    if (STANDARD_LIBRARY.has(top)) continue;
    const name = IMPORT_TO_PACKAGE[top] ?? top;
    if (!packages.includes(name)) packages.push(name);
  }
  return packages.slice(0, 8);
}

const FENCE_OPEN = /^[ \t]*```[ \t]*(?:python|py|python3)?[ \t]*$/im;

/** A CG answer -> code, documentation and requirements; throws PaperFormatError when there is no closed code block. */
export function parsePaperCode(text: string): CodeArtifact {
  const open = FENCE_OPEN.exec(text);
  if (!open) throw new PaperFormatError("the answer has no ```python code block");
  const bodyStart = open.index + open[0].length + 1;
  const rest = text.slice(bodyStart);
  const close = /^[ \t]*```[ \t]*$/m.exec(rest);
  if (!close) throw new PaperFormatError("the answer's code block is not closed with ```");
  const code = rest.slice(0, close.index);
  const documentation = [text.slice(0, open.index), rest.slice(close.index + close[0].length)].map((part) => pythonStrip(part)).filter(Boolean).join("\n\n");
  const artifact = { code, documentation, requirements: importedPackages(code) };
  const parsed = CodeArtifactSchema.safeParse(artifact);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PaperFormatError(`the answer does not fit the code artifact at ${issue.path.join(".") || "$"}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * The authors' CG writes "one single Python function" under a name of its choosing; the assembled
 * program calls `run(<spec inputs>)` and reads a dict of the spec's outputs. When the code has no
 * top-level run(), this appends one that calls the code's last top-level function with the inputs
 * in spec order and names its result.
 */
export function withRunEntryPoint(code: string, spec: TaskSpec, identifier: (name: string) => string): string {
  if (/^def run\s*\(/m.test(code)) return code;
  const functions = [...code.matchAll(/^def ([A-Za-z_]\w*)\s*\(/gm)].map((match) => match[1]);
  const target = functions.at(-1);
  if (!target) return code;
  const inputs = spec.inputs.map((input) => identifier(input.name));
  const outputs = spec.outputs.map((output) => identifier(output.name));
  const body = [
    "",
    "",
    `def run(${inputs.join(", ")}):`,
    `    """Entry point of the assembled program: ${target}() with the specification's inputs, its result under the output names."""`,
    `    result = ${target}(${inputs.join(", ")})`,
    "    if isinstance(result, dict):",
    "        return result",
  ];
  if (outputs.length > 1) body.push(`    if isinstance(result, tuple) and len(result) == ${outputs.length}:`, `        return dict(zip(${JSON.stringify(outputs)}, result))`);
  body.push(`    return {${JSON.stringify(outputs[0] ?? "result")}: result}`, "");
  return `${code.replace(/\s+$/, "")}\n${body.join("\n")}`;
}
