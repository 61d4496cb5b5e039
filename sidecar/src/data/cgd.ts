/**
 * CGD: code generation pairs mined from the documentation of Python packages installed in the
 * chosen interpreter, in the paper's three sets:
 *
 * - D1 "describe <function> from <package>" -> the function's documentation (and a module that
 *   reports its signature);
 * - D2 "write code to <target> using <function> from <package>" -> a module whose run() does
 *   what an Examples block of the documentation does, and its documentation;
 * - D3 the same example rewritten as a specification with inputs (the values the example builds
 *   first become run()'s parameters) -> the module.
 *
 * The harvest is done by a small Python helper (sidecar/python/harvest_docs.py). Every code
 * sample runs in the project's sandbox through a checker (sidecar/python/check_sample.py) that
 * calls run() the way an assembled program does and reports the types of its inputs and outputs;
 * only samples that run are kept, and the types in the specification are the measured ones.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { CancelledError } from "../pipeline/structuredGeneration";
import type { CodeArtifact, Parameter, TaskSpec } from "../schemas";
import { pythonEnvironment, resolvePython } from "../verify/pythonEnv";
import { runInSandbox } from "../verify/sandbox";
import { corpusChunks, type CorpusChunk } from "./corpus";
import { DataError } from "./errors";
import type { DataProgress } from "./progress";
import type { Rejection } from "./quality";
import { cgRecord, type DraftRecord, type RecordSource } from "./records";
import type { WorkJournal } from "./workJournal";

const HarvestedSampleSchema = z.object({
  block: z.number().int(),
  skipped: z.string().nullable(),
  detail: z.string().optional(),
  narrative: z.string().optional(),
  outputs: z.array(z.string()).optional(),
  resultSource: z.string().optional(),
  requirements: z.array(z.string()).optional(),
  d2: z.object({ code: z.string() }).optional(),
  d3: z.object({ code: z.string(), setup: z.string(), inputs: z.array(z.object({ name: z.string(), source: z.string() })) }).nullable().optional(),
});
export type HarvestedSample = z.infer<typeof HarvestedSampleSchema>;

const DocParameterSchema = z.object({ name: z.string(), type: z.string(), description: z.string() });

export const HarvestedFunctionSchema = z.object({
  type: z.literal("function"),
  package: z.string(),
  module: z.string(),
  name: z.string(),
  qualname: z.string(),
  signature: z.string(),
  summary: z.string(),
  extended: z.string(),
  parameters: z.array(DocParameterSchema),
  returns: z.array(DocParameterSchema),
  notes: z.string(),
  d1: z.object({ code: z.string(), output: z.string(), requirements: z.array(z.string()) }),
  samples: z.array(HarvestedSampleSchema),
});
export type HarvestedFunction = z.infer<typeof HarvestedFunctionSchema>;

const HarvestLineSchema = z.discriminatedUnion("type", [
  HarvestedFunctionSchema,
  z.object({ type: z.literal("package"), package: z.string(), version: z.string(), python: z.string() }),
  z.object({ type: z.literal("skipped"), name: z.string(), reason: z.string(), detail: z.string().optional() }),
  z.object({ type: z.literal("error"), code: z.string(), package: z.string().optional(), message: z.string() }),
  z.object({ type: z.literal("done"), functions: z.number().int(), seconds: z.number() }),
]);

/** A file of sidecar/python/, from the source tree or next to the bundled CLI. */
export function pythonHelperPath(name: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, "sidecar", "python", name);
    if (existsSync(candidate)) return candidate;
    const sibling = path.join(dir, "python", name);
    if (existsSync(sibling)) return sibling;
    dir = path.dirname(dir);
  }
  throw new Error(`Cannot find the Python helper ${name} (sidecar/python/) next to the GPIoT installation.`);
}

export interface HarvestOptions {
  python: string;
  packages: string[];
  /** Fully qualified functions instead of every public function of the packages. */
  functions: string[];
  maxFunctions: number;
  maxExamples: number;
  signal?: AbortSignal;
}

export interface Harvest {
  python: { executable: string; version: string };
  packages: { package: string; version: string }[];
  functions: HarvestedFunction[];
  skipped: Rejection[];
  seconds: number;
}

export async function harvestDocs(options: HarvestOptions): Promise<Harvest> {
  const python = await resolvePython(options.python);
  const args = [pythonHelperPath("harvest_docs.py"), "--packages", options.packages.join(","), "--functions", options.functions.join(","), "--max-functions", String(options.maxFunctions), "--max-examples", String(options.maxExamples)];
  const lines: string[] = [];
  let stderr = "";
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(python.executable, args, { env: pythonEnvironment(), stdio: ["ignore", "pipe", "pipe"] });
    let pending = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      lines.push(...parts.filter(Boolean));
    });
    child.stderr.on("data", (chunk) => (stderr = (stderr + chunk).slice(-4000)));
    const onAbort = () => child.kill("SIGKILL");
    options.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", reject);
    child.on("close", (exitCode) => {
      options.signal?.removeEventListener("abort", onAbort);
      if (pending.trim()) lines.push(pending);
      resolve(exitCode);
    });
  });
  if (options.signal?.aborted) throw new CancelledError();
  const harvest: Harvest = { python, packages: [], functions: [], skipped: [], seconds: 0 };
  const missing: string[] = [];
  for (const line of lines) {
    let parsed;
    try {
      parsed = HarvestLineSchema.parse(JSON.parse(line));
    } catch (error) {
      throw new DataError("HELPER_FAILED", `The documentation harvester printed a line GPIoT cannot read (${(error as Error).message.slice(0, 200)}): ${line.slice(0, 200)}`);
    }
    if (parsed.type === "function") harvest.functions.push(parsed);
    else if (parsed.type === "package") harvest.packages.push({ package: parsed.package, version: parsed.version });
    else if (parsed.type === "skipped") harvest.skipped.push({ reason: parsed.reason, item: parsed.name, ...(parsed.detail ? { detail: parsed.detail } : {}) });
    else if (parsed.type === "error" && parsed.code === "not_installed") missing.push(parsed.package ?? "?");
    else if (parsed.type === "done") harvest.seconds = parsed.seconds;
  }
  if (missing.length)
    throw new DataError(
      "PACKAGE_NOT_INSTALLED",
      `${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not installed in ${python.executable} (Python ${python.version}): install ${missing.length === 1 ? "it" : "them"} there (pip install ${missing.join(" ")}) or choose another interpreter with --python.`,
      missing.join(","),
    );
  if (code !== 0) throw new DataError("HELPER_FAILED", `The documentation harvester failed (exit code ${code}): ${stderr.trim().split("\n").slice(-5).join("\n")}`);
  return harvest;
}

const SAMPLE_MARKER = "GPIOT-SAMPLE-RESULT ";

export interface SampleCheck {
  ok: boolean;
  reason?: string;
  detail?: string;
  inputs?: Record<string, [string, string]>;
  outputs?: Record<string, [string, string]>;
  wallMs: number;
}

export interface SandboxLimits {
  python: string;
  timeoutMs: number;
  memoryMB: number;
  signal?: AbortSignal;
}

let checkerSource: string | null = null;

/** Runs one code sample in the sandbox the way an assembled program calls a sub-task. */
export async function checkSample(sample: { code: string; setup: string; inputs: string[]; outputs: string[] }, limits: SandboxLimits): Promise<SampleCheck> {
  checkerSource ??= readFileSync(pythonHelperPath("check_sample.py"), "utf8");
  const result = await runInSandbox({
    files: [
      { path: "main.py", content: checkerSource },
      { path: "sample.py", content: sample.code },
      { path: "sample.json", content: JSON.stringify({ setup: sample.setup, inputs: sample.inputs, outputs: sample.outputs }) },
    ],
    args: [],
    python: limits.python,
    timeoutMs: limits.timeoutMs,
    memoryMB: limits.memoryMB,
    signal: limits.signal,
  });
  if (result.cancelled || limits.signal?.aborted) throw new CancelledError();
  const wallMs = result.wallMs;
  if (result.timedOut) return { ok: false, reason: "sample-timeout", detail: `did not finish within ${limits.timeoutMs} ms`, wallMs };
  if (result.outputLimitExceeded) return { ok: false, reason: "sample-output-limit", detail: "printed too much", wallMs };
  const marker = result.stdout.lastIndexOf(SAMPLE_MARKER);
  if (result.exitCode !== 0 || marker < 0) {
    const error = result.error ? `${result.error.type}: ${result.error.message}` : result.stderr.trim().split("\n").slice(-1)[0] || `exit code ${result.exitCode}`;
    return { ok: false, reason: "sample-failed", detail: error.slice(0, 400), wallMs };
  }
  try {
    const report = JSON.parse(result.stdout.slice(marker + SAMPLE_MARKER.length).split("\n")[0]) as { inputs: Record<string, [string, string]>; outputs: Record<string, [string, string]> };
    return { ok: true, inputs: report.inputs, outputs: report.outputs, wallMs };
  } catch {
    return { ok: false, reason: "sample-failed", detail: "the checker's report was cut short", wallMs };
  }
}

function clip(text: string, max: number): string {
  const clean = text.replace(/\s+/g, " ").trim();
  return clean.length <= max ? clean : `${clean.slice(0, max - 1).trimEnd()}…`;
}

function capitalize(text: string): string {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

const baseForms: Record<string, string> = {
  returns: "return", computes: "compute", calculates: "calculate", finds: "find", creates: "create", generates: "generate", estimates: "estimate",
  applies: "apply", performs: "perform", gets: "get", makes: "make", builds: "build", converts: "convert", constructs: "construct",
  evaluates: "evaluate", determines: "determine", filters: "filter", counts: "count", designs: "design", detects: "detect",
};

/** The summary line as a verb phrase: "Compute the FFT." -> "compute the FFT"; "Returns x." -> "return x". */
export function summaryPhrase(summary: string, name: string): string {
  const phrase = clip(summary, 240).replace(/[.:]+$/, "");
  if (!phrase) return `use ${name}`;
  const [first, ...rest] = phrase.split(" ");
  const verb = baseForms[first.toLowerCase()] ?? first[0].toLowerCase() + first.slice(1);
  return [verb, ...rest].join(" ");
}

/** The function's documentation as Markdown, within `max` characters. */
export function formatDocumentation(fn: HarvestedFunction, extra: string[] = [], max = 3900): string {
  const head = [`# \`${fn.qualname}\``, "", `\`${clip(fn.signature, 400)}\``, "", fn.summary, ...(fn.extended ? ["", clip(fn.extended, 800)] : []), ...(extra.length ? ["", ...extra] : [])];
  const parameters = fn.parameters.map((parameter) => `- **${parameter.name}**${parameter.type ? ` (${clip(parameter.type, 80)})` : ""}: ${clip(parameter.description, 240)}`);
  const returns = fn.returns.map((parameter) => `- **${parameter.name}**${parameter.type ? ` (${clip(parameter.type, 80)})` : ""}: ${clip(parameter.description, 240)}`);
  const parts = [...head];
  const add = (title: string, items: string[]) => {
    if (!items.length) return;
    parts.push("", `## ${title}`, "");
    for (const item of items) {
      if (parts.join("\n").length + item.length + 1 > max) {
        parts.push("- ...");
        break;
      }
      parts.push(item);
    }
  };
  add("Parameters", parameters);
  add("Returns", returns);
  const text = parts.join("\n");
  return text.length <= max ? text : `${text.slice(0, max - 4)}\n...`;
}

/**
 * The documentation of one D2/D3 module: what it does, its inputs and outputs, and the parts of
 * the documented function's reference it uses (its summary and the parameters the code passes).
 */
export function moduleDocumentation(fn: HarvestedFunction, code: string, phrase: string, spec: TaskSpec, max = 3900): string {
  const list = (parameters: Parameter[]) => (parameters.length ? parameters.map((parameter) => `- \`${parameter.name}\` (${parameter.type}): ${parameter.description}`) : ["- (none)"]);
  const used = fn.parameters.filter((parameter) => parameter.name.split(/,\s*/).some((name) => new RegExp(`\\b${name.replace(/[^\w]/g, "")}\\s*=`).test(code)));
  const lines = [
    `# ${capitalize(clip(phrase, 300))}`,
    "",
    `\`run(${spec.inputs.map((input) => input.name).join(", ")})\` does this with \`${fn.qualname}\` and returns ${spec.outputs.map((output) => `\`${output.name}\``).join(", ")}.`,
    "",
    "## Inputs",
    "",
    ...list(spec.inputs),
    "",
    "## Outputs",
    "",
    ...list(spec.outputs),
    "",
    `## \`${fn.qualname}\``,
    "",
    `\`${clip(fn.signature, 300)}\`: ${fn.summary}`,
    ...(used.length ? ["", "Parameters set here:", "", ...used.map((parameter) => `- **${parameter.name}**${parameter.type ? ` (${clip(parameter.type, 80)})` : ""}: ${clip(parameter.description, 240)}`)] : []),
  ];
  const text = lines.join("\n");
  return text.length <= max ? text : `${text.slice(0, max - 4)}\n...`;
}

function describeValue(name: string, kind: [string, string] | undefined, how: string): Parameter {
  const type = clip(kind?.[0] ?? "object", 60);
  const detail = kind?.[1] ? ` (${kind[1]})` : "";
  return { name, type, description: clip(`${how}${detail}`, 300) };
}

export interface CgdFunctionResult {
  records: DraftRecord[];
  rejected: Rejection[];
  /** Samples run in the sandbox, and how many ran. */
  runs: number;
  passed: number;
}

/** Builds and checks every sample of one documented function. */
export async function buildFunctionRecords(fn: HarvestedFunction, limits: SandboxLimits & { jobs: number }): Promise<CgdFunctionResult> {
  const records: DraftRecord[] = [];
  const rejected: Rejection[] = [];
  const base: RecordSource = { kind: "package", package: fn.package, function: fn.qualname };
  const where = `\`${fn.name}\` from ${fn.module}`;
  interface Job {
    kind: "D1" | "D2" | "D3";
    item: string;
    code: string;
    setup: string;
    inputs: { name: string; source: string }[];
    outputs: string[];
    phrase: string;
    narrative: string;
    resultSource: string;
    requirements: string[];
  }
  const jobs: Job[] = [
    { kind: "D1", item: `${fn.qualname} D1`, code: fn.d1.code, setup: "", inputs: [], outputs: [fn.d1.output], phrase: "", narrative: "", resultSource: "", requirements: fn.d1.requirements },
  ];
  for (const sample of fn.samples) {
    const item = `${fn.qualname} example ${sample.block + 1}`;
    if (sample.skipped || !sample.d2 || !sample.outputs) {
      rejected.push({ reason: `example-${(sample.skipped ?? "unusable").replace(/^example-/, "")}`, item, ...(sample.detail ? { detail: sample.detail } : {}) });
      continue;
    }
    const phrase = sample.narrative || summaryPhrase(fn.summary, fn.name);
    const common = { phrase, narrative: sample.narrative ?? "", resultSource: sample.resultSource ?? "", requirements: sample.requirements ?? [], outputs: sample.outputs };
    jobs.push({ kind: "D2", item: `${item} D2`, code: sample.d2.code, setup: "", inputs: [], ...common });
    if (sample.d3) jobs.push({ kind: "D3", item: `${item} D3`, code: sample.d3.code, setup: sample.d3.setup, inputs: sample.d3.inputs, ...common });
  }

  const checks = await mapLimited(jobs, limits.jobs, (job) => checkSample({ code: job.code, setup: job.setup, inputs: job.inputs.map((input) => input.name), outputs: job.outputs }, limits));
  let passed = 0;
  for (const [index, job] of jobs.entries()) {
    const check = checks[index];
    if (!check.ok) {
      rejected.push({ reason: check.reason ?? "sample-failed", item: job.item, ...(check.detail ? { detail: check.detail } : {}) });
      continue;
    }
    passed++;
    const outputs = job.outputs.map((name) =>
      describeValue(name, check.outputs?.[name], job.kind === "D1" ? `the ${name} of ${fn.name}` : name === "result" ? `the value of \`${job.resultSource}\`` : `${name} as computed by \`${job.resultSource}\``),
    );
    if (outputs.some((output) => output.type === "None")) {
      rejected.push({ reason: "result-is-none", item: job.item, detail: "the example's last value is None" });
      continue;
    }
    let spec: TaskSpec;
    let requirement: string;
    let documentation: string;
    if (job.kind === "D1") {
      requirement = `Describe ${fn.name} from ${fn.module}: what it computes, its parameters and what it returns.`;
      spec = { target: `Write some code and documentation to describe ${where}: what it computes, its parameters and what it returns`, inputs: [], outputs };
      documentation = formatDocumentation(fn);
    } else {
      const phrase = clip(job.phrase, 300);
      requirement = `${capitalize(phrase)} using ${fn.name} from ${fn.module}.`;
      spec = {
        target: clip(`Write some code and documentation to ${phrase} using ${where}`, 400),
        inputs: job.inputs.map((input) => describeValue(input.name, check.inputs?.[input.name], `as the example builds it: \`${input.source}\``)),
        outputs,
      };
      documentation = moduleDocumentation(fn, job.code, phrase, spec);
    }
    const artifact: CodeArtifact = { code: job.code, documentation, requirements: job.requirements.slice(0, 8) };
    records.push(cgRecord({ requirement, limits: null, spec }, artifact, { ...base, kind_detail: job.kind }));
  }
  return { records, rejected, runs: jobs.length, passed };
}

async function mapLimited<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]);
    }
  });
  await Promise.all(workers);
  return results;
}

export interface CgdOptions {
  harvest: Harvest;
  journal: WorkJournal<CgdFunctionResult>;
  progress: DataProgress;
  limits: SandboxLimits & { jobs: number };
}

export interface CgdResult {
  drafts: DraftRecord[];
  rejected: Rejection[];
  corpus: CorpusChunk[];
  runs: number;
  passed: number;
}

export async function runCgd(options: CgdOptions): Promise<CgdResult> {
  const { harvest, journal, progress } = options;
  progress.setTotal(harvest.functions.length);
  const resumed = harvest.functions.filter((fn) => journal.has(fn.qualname));
  progress.addResumed(resumed.length, resumed.reduce((sum, fn) => sum + (journal.get(fn.qualname)?.records.length ?? 0), 0));
  if (resumed.length) progress.note(`Resuming: ${resumed.length} of ${harvest.functions.length} functions were finished by an earlier run.`);
  for (const fn of harvest.functions) {
    if (journal.has(fn.qualname)) continue;
    const result = await buildFunctionRecords(fn, options.limits);
    journal.add(fn.qualname, result);
    progress.unitDone(result.records.length, `${fn.qualname}: ${result.passed}/${result.runs} samples ran`);
  }
  const drafts: DraftRecord[] = [];
  const rejected: Rejection[] = [...harvest.skipped];
  let runs = 0;
  let passed = 0;
  for (const fn of harvest.functions) {
    const result = journal.get(fn.qualname)!;
    drafts.push(...result.records);
    rejected.push(...result.rejected);
    runs += result.runs;
    passed += result.passed;
  }
  const corpus = harvest.functions.flatMap((fn) =>
    corpusChunks(
      [
        `${fn.qualname}: ${fn.signature}`,
        fn.summary,
        fn.extended,
        fn.parameters.length ? `Parameters:\n${fn.parameters.map((parameter) => `- ${parameter.name} (${parameter.type}): ${parameter.description.replace(/\s+/g, " ")}`).join("\n")}` : "",
        fn.returns.length ? `Returns:\n${fn.returns.map((parameter) => `- ${parameter.name} (${parameter.type}): ${parameter.description.replace(/\s+/g, " ")}`).join("\n")}` : "",
        fn.notes,
      ]
        .filter(Boolean)
        .join("\n\n"),
      { kind: "package", package: fn.package, function: fn.qualname },
    ),
  );
  return { drafts, rejected, corpus, runs, passed };
}
