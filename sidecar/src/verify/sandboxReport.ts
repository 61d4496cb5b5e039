/**
 * What a sandboxed run reports, and how much of it is believed.
 *
 * The supervisor (sidecar/python/sandbox_supervisor.py) is the program's parent and out of its
 * reach: its report, signed with a per-run key, carries what the kernel measured (exit status,
 * CPU time, peak memory) and every line the program's preamble wrote, stamped with the
 * supervisor's clock and the program's peak memory at that moment. Those lines come from inside
 * the program's process, so the program can write them too: they are claims. Times between the
 * preamble's marks are taken from the supervisor's stamps; a report whose lines are out of order
 * or contradict the measurements (exit code, peak memory, pipeline time) is rejected, and its
 * values are not used.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { ExecutionError } from "./report";

export type ReportRecord = [stampMs: number, peakMemoryMB: number | null, line: string];

export interface SupervisorSetup {
  filesystem?: "readOnly" | "notIsolated";
  filesystemError?: string;
  readOnlyFailed?: string[];
  hidden?: string[];
  hideFailed?: string[];
  limits?: { memory?: number | null; note?: string };
  /** The program's effective capabilities after the drop (0: none). */
  capabilities?: number;
  privilegesError?: string;
  execError?: string;
}

export interface SupervisorReport {
  program: {
    exitCode: number | null;
    signal: string | null;
    timedOut: boolean;
    wallMs: number;
    cpuMs: number;
    /** The largest ru_maxrss of the program and of every process it started. */
    peakMemoryMB: number;
    /** ru_maxrss of the program's process (and the children it waited for): what its preamble can see. */
    processPeakMemoryMB: number;
  };
  setup: SupervisorSetup;
  pidNamespace: boolean;
  records: ReportRecord[];
  recordsTruncated: boolean;
  lastRecordTorn: boolean;
}

/** Checks the signature of the supervisor's report ("<json>\n<hex hmac>\n") and parses it. */
export function readSupervisorReport(data: Buffer, key: Buffer): { report: SupervisorReport } | { problem: string } {
  if (data.length === 0) return { problem: "the supervisor sent no report" };
  const text = data.toString("utf8");
  const match = /^([^\n]*)\n([0-9a-f]{64})\n$/.exec(text);
  if (!match) return { problem: "the supervisor's report is incomplete or malformed" };
  const expected = createHmac("sha256", key).update(match[1], "utf8").digest();
  if (!timingSafeEqual(expected, Buffer.from(match[2], "hex"))) return { problem: "the supervisor's report carries a wrong signature" };
  let parsed: (SupervisorReport & { supervisorError?: undefined }) | { supervisorError: string };
  try {
    parsed = JSON.parse(match[1]);
  } catch {
    return { problem: "the supervisor's report is not JSON" };
  }
  if ("supervisorError" in parsed && parsed.supervisorError) return { problem: `the supervisor failed: ${parsed.supervisorError}` };
  return { report: parsed as SupervisorReport };
}

export interface SelfReport {
  status: "accepted" | "rejected" | "missing";
  problem?: string;
}

export interface ProgramView {
  outputs: Record<string, unknown> | null;
  finalOutputs: string[];
  error: ExecutionError | null;
  lastModule: string | null;
  importMs: number | null;
  pipelineMs: number | null;
  steps: { module: string; ms: number; peakMemoryMB: number | null }[];
  selfReport: SelfReport;
}

type Mark =
  | { kind: "ready" }
  | { kind: "phase"; phase: "imports" | "pipeline" }
  | { kind: "current"; module: string | null }
  | { kind: "final"; outputs?: Record<string, unknown>; finalOutputs?: string[]; error?: ExecutionError }
  | { kind: "exit"; code: unknown; peakMemoryMB: unknown; pipelineMs: unknown };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseMark(line: string): Mark | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObject(value)) return null;
  const keys = Object.keys(value);
  if (keys.length !== 1) return null;
  const [key] = keys;
  const body = value[key];
  if (key === "ready" && body === true) return { kind: "ready" };
  if (key === "phase" && (body === "imports" || body === "pipeline")) return { kind: "phase", phase: body };
  if (key === "current" && (body === null || typeof body === "string")) return { kind: "current", module: body };
  if (key === "final" && isObject(body)) {
    const outputs = isObject(body.outputs) ? body.outputs : undefined;
    const finalOutputs = Array.isArray(body.finalOutputs) && body.finalOutputs.every((name) => typeof name === "string") ? (body.finalOutputs as string[]) : undefined;
    const error = isObject(body.error) && typeof body.error.type === "string" && typeof body.error.message === "string" ? (body.error as unknown as ExecutionError) : undefined;
    return { kind: "final", outputs, finalOutputs, error };
  }
  if (key === "exit" && isObject(body)) return { kind: "exit", code: body.code, peakMemoryMB: body.peakMemoryMB, pipelineMs: body.pipelineMs };
  return null;
}

const round = (value: number) => Math.round(value * 1000) / 1000;

/** A claimed peak may differ from the kernel's figure by this much (allocation after the claim). */
export const PEAK_TOLERANCE = (measuredMB: number) => 8 + 0.05 * measuredMB;
/** A claimed pipeline time may differ from the supervisor's stamps by this much (pipe and scheduling delays). */
export const PIPELINE_TOLERANCE = (measuredMs: number) => 150 + 0.25 * measuredMs;

/** Reads the program's lines as the supervisor stamped them, and checks them against its measurements. */
export function interpretRecords(report: SupervisorReport): ProgramView {
  const view: ProgramView = { outputs: null, finalOutputs: [], error: null, lastModule: null, importMs: null, pipelineMs: null, steps: [], selfReport: { status: "missing" } };
  const reject = (problem: string): ProgramView => ({ ...view, outputs: null, finalOutputs: [], selfReport: { status: "rejected", problem } });
  const killed = report.program.signal !== null || report.program.timedOut;
  const records = report.lastRecordTorn && killed ? report.records.slice(0, -1) : report.records;
  if (report.recordsTruncated) return reject("the program wrote more than the report channel takes");
  if (records.length === 0) return view;

  let importsAt: number | null = null;
  let pipelineAt: number | null = null;
  let pipelineEnd: number | null = null;
  let final: Extract<Mark, { kind: "final" }> | null = null;
  let exit: Extract<Mark, { kind: "exit" }> | null = null;
  let open: { module: string; at: number } | null = null;
  for (const [index, [at, peak, line]] of records.entries()) {
    const mark = parseMark(line);
    if (!mark) return reject(`a line on the report channel is not the preamble's: ${JSON.stringify(line.slice(0, 80))}`);
    if (index === 0 && mark.kind !== "ready") return reject("the report does not start where the preamble starts");
    if (index > 0 && mark.kind === "ready") return reject("the report starts twice");
    if (exit) return reject("lines follow the preamble's closing record");
    if (final && mark.kind !== "exit") return reject("lines follow the final values");
    switch (mark.kind) {
      case "phase":
        if (mark.phase === "imports") {
          if (importsAt !== null || pipelineAt !== null) return reject("the import phase is reported out of order");
          importsAt = at;
        } else {
          if (pipelineAt !== null) return reject("the pipeline starts twice");
          pipelineAt = at;
        }
        break;
      case "current":
        if (open && pipelineAt !== null && open.at >= pipelineAt && pipelineEnd === null) view.steps.push({ module: open.module, ms: round(at - open.at), peakMemoryMB: peak });
        if (mark.module !== null) {
          view.lastModule = mark.module;
          open = { module: mark.module, at };
        } else {
          open = null;
          if (pipelineAt !== null && pipelineEnd === null) pipelineEnd = at;
        }
        break;
      case "final":
        final = mark;
        break;
      case "exit":
        if (!final) return reject("the closing record comes without final values");
        exit = mark;
        break;
    }
  }
  if (importsAt !== null && pipelineAt !== null) view.importMs = round(pipelineAt - importsAt);
  if (pipelineAt !== null && pipelineEnd !== null) view.pipelineMs = round(pipelineEnd - pipelineAt);
  else if (pipelineAt !== null) {
    // The process ended inside the pipeline: it ran until then.
    view.pipelineMs = round(Math.max(0, report.program.wallMs - pipelineAt));
    if (open) view.steps.push({ module: open.module, ms: round(Math.max(0, report.program.wallMs - open.at)), peakMemoryMB: report.program.processPeakMemoryMB });
  }
  if (final && !exit && !killed) return reject("the final values come without the preamble's closing record");
  if (exit) {
    const { program } = report;
    if (program.exitCode !== null && exit.code !== program.exitCode) return reject(`it claims exit code ${JSON.stringify(exit.code)}; the process exited with ${program.exitCode}`);
    if (typeof exit.peakMemoryMB === "number" && Math.abs(exit.peakMemoryMB - program.processPeakMemoryMB) > PEAK_TOLERANCE(program.processPeakMemoryMB))
      return reject(`it claims a peak of ${exit.peakMemoryMB} MB; the kernel measured ${program.processPeakMemoryMB} MB`);
    if (exit.pipelineMs !== null && exit.pipelineMs !== undefined) {
      if (typeof exit.pipelineMs !== "number") return reject("its pipeline time is not a number");
      if (view.pipelineMs === null) return reject(`it claims a pipeline time of ${exit.pipelineMs} ms but never marked its pipeline`);
      if (Math.abs(exit.pipelineMs - view.pipelineMs) > PIPELINE_TOLERANCE(view.pipelineMs))
        return reject(`it claims a pipeline time of ${exit.pipelineMs} ms; the supervisor timed ${view.pipelineMs} ms`);
    }
  }
  if (final) {
    view.outputs = final.outputs ?? null;
    view.finalOutputs = final.finalOutputs ?? [];
    view.error = final.error ? { type: final.error.type, message: final.error.message, traceback: String(final.error.traceback ?? ""), module: typeof final.error.module === "string" ? final.error.module : null, line: Number.isInteger(final.error.line) ? final.error.line : null } : null;
    view.selfReport = { status: "accepted" };
  }
  return view;
}
