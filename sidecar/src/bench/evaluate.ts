/**
 * Scores one program on one task: static checks, then a sandboxed run per data item (an ECG
 * record, a test split) with the task's visible inputs copied into the working copy and the
 * folders holding the answers hidden, then the task metric on the values it returned.
 *
 * Binding: the bench passes the contract's inputs (e.g. record_path) by name. A model may name
 * an input differently; inputs of the program that nothing provides are bound to the contract
 * inputs left over, in order, when the counts match ("lenient binding", reported). Likewise a
 * missing contract output is taken from the last sub-task's only output when there is just one.
 */
import type { ResourceCheck } from "../verify/report";
import { externalInputs } from "../verify/sampleInputs";
import { readProgramManifest, verifyProgram, type ProgramFileLike, type VerifySettingsLike } from "../verify/verifier";
import type { BenchRun, PreparedTask } from "./data";
import { accuracy, combineBeatScores, scoreBeats, type BeatScore } from "./scorers";

export interface RunRecord {
  label: string;
  ok: boolean;
  wallMs: number | null;
  pipelineMs: number | null;
  peakMemoryMB: number | null;
  error?: string;
}

export interface ProgramEvaluation {
  /** Every module parses. */
  compiled: boolean;
  /** No static errors (imports resolve, run() signatures match). */
  staticOk: boolean;
  /** Every run exited normally with the contract's outputs. */
  ran: boolean;
  passed: boolean;
  /** precision/recall/f1 (beats) or accuracy. */
  metrics: Record<string, number>;
  /** The headline metric (beats: F1; classification: accuracy); 0 when the program did not run. */
  score: number;
  wallMs: number | null;
  pipelineMs: number | null;
  peakMemoryMB: number | null;
  resources: ResourceCheck | null;
  failure: string | null;
  binding: Record<string, string>;
  runs: RunRecord[];
}

function numbers(value: unknown): number[] | null {
  if (typeof value === "number") return [value];
  if (!Array.isArray(value)) return null;
  const out: number[] = [];
  const walk = (item: unknown) => {
    if (Array.isArray(item)) item.forEach(walk);
    else if (typeof item === "number" && Number.isFinite(item)) out.push(item);
    else if (typeof item === "string" && item.trim() !== "" && Number.isFinite(Number(item))) out.push(Number(item));
  };
  walk(value);
  return out;
}

function mean(values: (number | null)[]): number | null {
  const present = values.filter((value): value is number => value !== null);
  return present.length ? present.reduce((sum, value) => sum + value, 0) / present.length : null;
}

function bindInputs(programInputs: string[], contract: string[]): Record<string, string> {
  const binding: Record<string, string> = {};
  const unmatchedProgram = programInputs.filter((name) => !contract.includes(name));
  const unmatchedContract = contract.filter((name) => !programInputs.includes(name));
  for (const name of programInputs) if (contract.includes(name)) binding[name] = name;
  if (unmatchedProgram.length === unmatchedContract.length) unmatchedProgram.forEach((name, index) => (binding[name] = unmatchedContract[index]));
  return binding;
}

/** An evaluation of a program that has not passed any check yet. */
export function emptyEvaluation(failure: string | null): ProgramEvaluation {
  return { compiled: false, staticOk: false, ran: false, passed: false, metrics: {}, score: 0, wallMs: null, pipelineMs: null, peakMemoryMB: null, resources: null, failure, binding: {}, runs: [] };
}

export async function evaluateProgram(files: ProgramFileLike[], prepared: PreparedTask, settings: VerifySettingsLike, signal?: AbortSignal): Promise<ProgramEvaluation> {
  const { task } = prepared;
  const result = emptyEvaluation(null);
  let manifest;
  try {
    manifest = readProgramManifest(files);
  } catch (error) {
    result.failure = (error as Error).message;
    return result;
  }
  const checked = await verifyProgram({ files, execute: false, settings });
  result.compiled = !checked.report.staticIssues.some((issue) => issue.kind === "syntax");
  result.staticOk = checked.report.ok;
  if (!result.staticOk) {
    result.failure = checked.report.failure?.message ?? "static checks failed";
    return result;
  }
  const contractInputs = Object.keys(task.contract.inputs);
  const contractOutputs = Object.keys(task.contract.outputs);
  const programInputs = externalInputs(manifest.pipeline).map((input) => input.name);
  result.binding = bindInputs(programInputs, contractInputs);
  const finalOutputs = manifest.pipeline.at(-1)?.outputs ?? [];
  const primary = contractOutputs[0];

  const outputsPerRun: unknown[] = [];
  for (const run of prepared.runs) {
    const inputs: Record<string, unknown> = {};
    for (const [programName, contractName] of Object.entries(result.binding)) inputs[programName] = (run as BenchRun).sandboxInputs[contractName];
    for (const name of contractInputs) if (!(name in inputs)) inputs[name] = run.sandboxInputs[name];
    const outcome = await verifyProgram({
      files,
      execute: true,
      exactInputs: true,
      skipStatic: true,
      inputs,
      copies: run.copies,
      hidePaths: prepared.hidePaths,
      want: contractOutputs,
      settings: { ...settings, timeoutMs: task.timeoutMs, memoryMB: task.memoryMB },
      signal,
    });
    const execution = outcome.report.execution;
    const failed = outcome.report.failure && outcome.report.failure.kind !== "resource";
    let value = outcome.run?.outputs?.[primary];
    if (value === undefined && outcome.run?.outputs) {
      const extra = finalOutputs.filter((name) => !contractOutputs.includes(name));
      if (extra.length === 1) value = outcome.run.outputs[extra[0]];
    }
    const ok = !failed && value !== undefined && value !== null;
    outputsPerRun.push(ok ? value : undefined);
    if (outcome.report.resources) result.resources = outcome.report.resources;
    result.runs.push({
      label: run.label,
      ok,
      wallMs: execution?.wallMs ?? null,
      pipelineMs: execution?.pipelineMs ?? null,
      peakMemoryMB: execution?.peakMemoryMB ?? null,
      ...(ok ? {} : { error: failed ? outcome.report.failure!.message : `the program returned no ${primary}` }),
    });
    if (signal?.aborted) break;
  }
  result.ran = result.runs.length === prepared.runs.length && result.runs.every((run) => run.ok);
  result.wallMs = mean(result.runs.map((run) => run.wallMs));
  result.pipelineMs = mean(result.runs.map((run) => run.pipelineMs));
  const peaks = result.runs.map((run) => run.peakMemoryMB).filter((value): value is number => value !== null);
  result.peakMemoryMB = peaks.length ? Math.max(...peaks) : null;
  result.failure = result.runs.find((run) => !run.ok)?.error ?? null;

  if (task.kind === "ecg-beats") {
    const scores: BeatScore[] = prepared.runs.map((run, index) => {
      const truth = run.truth as Extract<BenchRun["truth"], { kind: "beats" }>;
      const tolerance = Math.round(((task.scoring.toleranceMs ?? 150) / 1000) * truth.fs);
      // Beats within one tolerance of the record's edges are not scored (either way).
      const inside = (sample: number) => sample >= tolerance && sample < truth.nSamples - tolerance;
      const detected = numbers(outputsPerRun[index]) ?? [];
      return scoreBeats(truth.beats.filter(inside), detected.filter(inside), tolerance);
    });
    const total = combineBeatScores(scores);
    result.metrics = { precision: total.precision, recall: total.recall, f1: total.f1 };
    result.score = result.ran ? total.f1 : 0;
  } else {
    const run = prepared.runs[0];
    const truth = (run.truth as Extract<BenchRun["truth"], { kind: "labels" }>).labels;
    const predicted = numbers(outputsPerRun[0]) ?? [];
    result.metrics = { accuracy: accuracy(predicted, truth) };
    if (predicted.length !== truth.length && result.ran) result.failure = `returned ${predicted.length} labels for ${truth.length} test samples`;
    result.score = result.ran ? result.metrics.accuracy : 0;
  }
  result.passed = result.ran && Object.entries(task.scoring.pass).every(([metric, threshold]) => (result.metrics[metric] ?? 0) >= threshold);
  return result;
}
