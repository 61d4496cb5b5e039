/**
 * Verifies one version of an assembled program: the static checks, then (with consent) a run in
 * the sandbox on sample inputs, then the requirement's resource limits against what was
 * measured. The result names the kind of failure and the sub-tasks to repair, with the text the
 * code generator gets to repair them.
 *
 * Everything comes from the program's own files (gpiot.json holds the pipeline, the specs and the
 * limits), so a program folder on disk can be verified as well as one assembled in memory.
 */
import type { ResourceLimits, TaskSpec } from "../schemas";
import type { ExecutionReport, ResourceCheck, StaticIssue, VerifyFailure, VerifyReport } from "./report";
import { resolvePython } from "./pythonEnv";
import { deriveInputs, externalInputs, type PipelineStepInfo } from "./sampleInputs";
import { inputFiles, runInSandbox, type SandboxResult } from "./sandbox";
import { removeTemporaryProgram, staticCheckProgram, writeTemporaryProgram } from "./staticCheck";

export interface ProgramFileLike {
  path: string;
  content: string;
}

export interface VerifySettingsLike {
  python: string;
  timeoutMs: number;
  memoryMB: number;
  maxOutputKB?: number;
  isolation?: "auto" | "required" | "off";
}

export interface VerifyProgramOptions {
  files: ProgramFileLike[];
  /** Run the program (only with the user's consent). */
  execute: boolean;
  settings: VerifySettingsLike;
  /** Values for inputs by name; the rest are derived from the specs. */
  inputs?: Record<string, unknown>;
  dataFile?: string;
  /** Extra files for the working copy. */
  extraFiles?: { path: string; content: string | Buffer }[];
  /** Files or folders copied into the working copy (e.g. a benchmark's visible inputs). */
  copies?: { path: string; source: string }[];
  /** Folders and files the program must not see (e.g. a benchmark's withheld answers). */
  hidePaths?: string[];
  /** Final values to return besides the last sub-task's outputs. */
  want?: string[];
  /** Skip deriving inputs: pass exactly `inputs`. */
  exactInputs?: boolean;
  /** Skip the static checks (the caller already ran them on these files). */
  skipStatic?: boolean;
  signal?: AbortSignal;
}

export interface VerifyOutcome {
  report: VerifyReport;
  /** The sandbox run, with the final values as JSON (not part of the protocol report). */
  run: SandboxResult | null;
}

interface ProgramManifest {
  pipeline: PipelineStepInfo[];
  limits: ResourceLimits | null;
  specs: TaskSpec[];
}

export function readProgramManifest(files: ProgramFileLike[]): ProgramManifest {
  const manifest = files.find((file) => file.path === "gpiot.json");
  if (!manifest) throw new Error("The program has no gpiot.json: it was not assembled by GPIoT.");
  const parsed = JSON.parse(manifest.content) as { pipeline?: PipelineStepInfo[]; limits?: ResourceLimits | null; parts?: { spec?: TaskSpec }[] };
  if (!Array.isArray(parsed.pipeline)) throw new Error("gpiot.json has no pipeline.");
  return { pipeline: parsed.pipeline, limits: parsed.limits ?? null, specs: (parsed.parts ?? []).map((part) => part.spec ?? { target: "", inputs: [], outputs: [] }) };
}

function trimmed(text: string, max: number): string {
  return text.length <= max ? text : `...${text.slice(text.length - max)}`;
}

const IMPORT_ERRORS = new Set(["ModuleNotFoundError", "ImportError"]);

/** Where the run failed, from the traceback, main.py's messages, or the step that was running. */
export function locateRunFailure(run: Pick<SandboxResult, "error" | "stderr" | "lastModule">, pipeline: PipelineStepInfo[]): number[] {
  const indexOf = (module: string | null | undefined) => (module ? pipeline.findIndex((step) => step.module === module) : -1);
  let index = indexOf(run.error?.module);
  if (index < 0) {
    const text = `${run.error?.message ?? ""}\n${run.stderr}`;
    const named = text.match(/sub-task (\d+) \(/);
    if (named) index = Number(named[1]) - 1;
    else {
      const file = [...text.matchAll(/File "[^"]*?([A-Za-z0-9_]+)\.py", line \d+/g)].map((match) => indexOf(match[1])).filter((found) => found >= 0).pop();
      if (file !== undefined) index = file;
    }
  }
  if (index < 0) index = indexOf(run.lastModule);
  return index >= 0 && index < pipeline.length ? [index] : [];
}

function classifyRun(run: SandboxResult, pipeline: PipelineStepInfo[], settings: VerifySettingsLike): VerifyFailure | null {
  const where = (indexes: number[]) => (indexes.length ? ` in sub-task ${indexes[0] + 1} (${pipeline[indexes[0]].module}.py)` : "");
  const output = trimmed(run.stderr.trim() || run.stdout.trim(), 3000);
  if (run.timedOut) {
    const indexes = locateRunFailure({ error: null, stderr: "", lastModule: run.lastModule }, pipeline);
    return { kind: "runtime", message: `The program did not finish within ${settings.timeoutMs} ms${where(indexes)}`, subTaskIndexes: indexes, detail: `The program was stopped after ${settings.timeoutMs} ms${where(indexes)}: it must finish quickly on small inputs (no waiting, no endless loops, no servers).\n${output}` };
  }
  if (run.outputLimitExceeded) {
    const indexes = locateRunFailure({ error: null, stderr: "", lastModule: run.lastModule }, pipeline);
    return { kind: "runtime", message: `The program printed more than the sandbox allows${where(indexes)}`, subTaskIndexes: indexes, detail: `The program printed ${run.stdoutBytes + run.stderrBytes} bytes and was stopped${where(indexes)}; do not print large data.` };
  }
  if (run.supervisorError) {
    const indexes = locateRunFailure({ error: null, stderr: "", lastModule: run.lastModule }, pipeline);
    return {
      kind: "runtime",
      message: `The sandbox could not measure the run: ${run.supervisorError}`.slice(0, 300),
      subTaskIndexes: indexes,
      detail: `The sandbox could not measure the run (${run.supervisorError}); a program must not signal, trace or stop other processes.\n${output}`,
    };
  }
  if (run.selfReport.status === "rejected") {
    const indexes = locateRunFailure({ error: null, stderr: "", lastModule: run.lastModule }, pipeline);
    return {
      kind: "runtime",
      message: `The program's report contradicts the sandbox's measurements: ${run.selfReport.problem}`.slice(0, 300),
      subTaskIndexes: indexes,
      detail: `The sandbox rejected the run: ${run.selfReport.problem}. A program must not write to file descriptor 3 or replace os._exit; return the values from run().`,
    };
  }
  if (run.exitCode !== 0 || run.error) {
    const indexes = locateRunFailure(run, pipeline);
    const error = run.error;
    const memoryCap = error !== null && /MemoryError$/.test(error.type);
    const importFailure = error !== null && (IMPORT_ERRORS.has(error.type) || /^cannot import sub-task/.test(error.message) || /\n(ModuleNotFoundError|ImportError): /.test(error.message));
    const headline = error ? `${error.type}: ${error.message.split("\n").filter(Boolean).pop() ?? ""}` : run.signal ? `killed by ${run.signal}` : `exit code ${run.exitCode}`;
    const detail = [
      memoryCap ? `The program hit the sandbox memory cap of ${settings.memoryMB} MB.` : "",
      error ? trimmed(error.traceback || `${error.type}: ${error.message}`, 3500) : output,
    ]
      .filter(Boolean)
      .join("\n");
    return { kind: importFailure ? "import" : "runtime", message: `${headline.slice(0, 300)}${where(indexes)}`, subTaskIndexes: indexes, detail };
  }
  const final = pipeline.at(-1)?.outputs ?? [];
  const missing = final.filter((name) => !run.outputs || !(name in run.outputs) || run.outputs[name] === null);
  if (missing.length) {
    const index = pipeline.length - 1;
    return {
      kind: "runtime",
      message: `The program finished without the output${missing.length > 1 ? "s" : ""} ${missing.join(", ")} (sub-task ${index + 1})`,
      subTaskIndexes: [index],
      detail: `run() must return a dict with the keys ${final.join(", ")}; these were missing or None: ${missing.join(", ")}.`,
    };
  }
  return null;
}

function checkResources(run: SandboxResult, limits: ResourceLimits | null, pipeline: PipelineStepInfo[]): { check: ResourceCheck | null; failure: VerifyFailure | null } {
  if (!limits || (limits.memoryMB === undefined && limits.latencyMs === undefined)) return { check: null, failure: null };
  const check: ResourceCheck = { ok: true };
  const problems: string[] = [];
  let culprit = -1;
  const indexOf = (module: string) => pipeline.findIndex((step) => step.module === module);
  if (limits.memoryMB !== undefined) {
    const ok = run.peakMemoryMB !== null && run.peakMemoryMB <= limits.memoryMB;
    check.memory = { limitMB: limits.memoryMB, measuredMB: run.peakMemoryMB, ok };
    if (!ok) {
      problems.push(`peak memory ${run.peakMemoryMB ?? "unknown"} MB exceeds the limit of ${limits.memoryMB} MB`);
      // The step after which the peak grew the most.
      let previous = 0;
      let growth = -1;
      for (const step of run.steps) {
        const grew = (step.peakMemoryMB ?? previous) - previous;
        if (grew > growth) {
          growth = grew;
          culprit = indexOf(step.module);
        }
        previous = step.peakMemoryMB ?? previous;
      }
    }
  }
  if (limits.latencyMs !== undefined) {
    const ok = run.pipelineMs !== null && run.pipelineMs <= limits.latencyMs;
    check.latency = { limitMs: limits.latencyMs, measuredMs: run.pipelineMs, ok };
    if (!ok) {
      problems.push(`processing took ${run.pipelineMs?.toFixed(1) ?? "unknown"} ms, over the limit of ${limits.latencyMs} ms`);
      if (culprit < 0) {
        const slowest = [...run.steps].sort((a, b) => b.ms - a.ms)[0];
        if (slowest) culprit = indexOf(slowest.module);
      }
    }
  }
  check.ok = problems.length === 0;
  if (check.ok) return { check, failure: null };
  const indexes = culprit >= 0 ? [culprit] : [];
  const perStep = run.steps.map((step) => `${step.module}: ${step.ms.toFixed(1)} ms, peak ${step.peakMemoryMB ?? "?"} MB`).join("; ");
  return {
    check,
    failure: {
      kind: "resource",
      message: `The program breaks the resource limits: ${problems.join("; ")}`,
      subTaskIndexes: indexes,
      detail: `The program runs but breaks the resource constraints (${limits.text}): ${problems.join("; ")}. Measured per sub-task: ${perStep}. Use less memory and time (smaller dtypes, streaming, fewer copies, lighter models).`,
    },
  };
}

function executionReport(run: SandboxResult, described: ExecutionReport["inputs"]): ExecutionReport {
  const preview = run.outputs
    ? Object.entries(run.outputs)
        .map(([name, value]) => {
          const text = JSON.stringify(value) ?? "null";
          return `${name}: ${text.length > 120 ? `${text.slice(0, 117)}...` : text}`;
        })
        .join("\n")
    : "";
  return {
    exitCode: run.exitCode,
    signal: run.signal,
    timedOut: run.timedOut,
    outputLimitExceeded: run.outputLimitExceeded,
    memoryCapHit: run.error !== null && /MemoryError$/.test(run.error.type),
    wallMs: run.wallMs,
    cpuMs: run.cpuMs,
    importMs: run.importMs,
    pipelineMs: run.pipelineMs,
    peakMemoryMB: run.peakMemoryMB,
    selfReport: run.selfReport,
    stdout: run.stdout,
    stderr: run.stderr,
    stdoutBytes: run.stdoutBytes,
    stderrBytes: run.stderrBytes,
    error: run.error,
    outputNames: run.outputs ? Object.keys(run.outputs) : [],
    outputPreview: preview.slice(0, 2000),
    inputs: described,
    isolation: run.isolation,
  };
}

function staticFailure(issues: StaticIssue[]): VerifyFailure | null {
  const errors = issues.filter((issue) => issue.severity === "error");
  if (!errors.length) return null;
  const kind = errors.some((issue) => issue.kind !== "import") ? "static" : "import";
  const indexes = [...new Set(errors.map((issue) => issue.subTaskIndex).filter((index): index is number => index !== null))].sort((a, b) => a - b);
  return {
    kind,
    message: errors.length === 1 ? errors[0].message : `${errors.length} problems, first: ${errors[0].message}`,
    subTaskIndexes: indexes,
    detail: errors.map((issue) => `- ${issue.message}`).join("\n"),
  };
}

export async function verifyProgram(options: VerifyProgramOptions): Promise<VerifyOutcome> {
  const started = performance.now();
  const manifest = readProgramManifest(options.files);
  const python = await resolvePython(options.settings.python);
  const modules = manifest.pipeline.map((step, subTaskIndex) => ({ file: `${step.module}.py`, subTaskIndex, inputs: step.inputs }));
  let issues: StaticIssue[] = [];
  if (!options.skipStatic) {
    const checkDir = await writeTemporaryProgram(options.files);
    try {
      issues = (await staticCheckProgram({ workdir: checkDir, modules, requirementsTxt: options.files.find((file) => file.path === "requirements.txt")?.content ?? "", python: python.executable })).issues;
    } finally {
      await removeTemporaryProgram(checkDir);
    }
  }
  const report = (fields: Partial<VerifyReport>): VerifyReport => ({
    ok: false,
    executed: false,
    failure: null,
    staticIssues: issues,
    execution: null,
    resources: null,
    python,
    ms: Math.round(performance.now() - started),
    ...fields,
  });
  const failure = staticFailure(issues);
  if (failure) return { report: report({ failure }), run: null };
  if (!options.execute) return { report: report({ ok: true }), run: null };

  const derived = options.exactInputs
    ? { values: options.inputs ?? {}, described: Object.keys(options.inputs ?? {}).map((name) => ({ name, source: "user" as const, description: "given" })), files: [] }
    : deriveInputs({ inputs: externalInputs(manifest.pipeline, manifest.specs.map((spec) => spec.inputs)), user: options.inputs, dataFile: options.dataFile });
  const inputs = inputFiles(derived.values);
  const run = await runInSandbox({
    files: [...options.files, ...derived.files, ...(options.extraFiles ?? []), inputs.file],
    args: inputs.args,
    python: python.executable,
    timeoutMs: options.settings.timeoutMs,
    memoryMB: options.settings.memoryMB,
    maxOutputBytes: (options.settings.maxOutputKB ?? 8192) * 1024,
    isolation: options.settings.isolation ?? "auto",
    want: options.want,
    copies: options.copies,
    hidePaths: options.hidePaths,
    signal: options.signal,
  });
  const execution = executionReport(run, derived.described);
  if (run.cancelled) return { report: report({ executed: true, execution, failure: { kind: "runtime", message: "Cancelled", subTaskIndexes: [], detail: "Cancelled" } }), run };
  const runFailure = classifyRun(run, manifest.pipeline, options.settings);
  if (runFailure) return { report: report({ executed: true, execution, failure: runFailure }), run };
  const resources = checkResources(run, manifest.limits, manifest.pipeline);
  return { report: report({ ok: resources.failure === null, executed: true, execution, resources: resources.check, failure: resources.failure }), run };
}
