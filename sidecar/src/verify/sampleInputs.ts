/**
 * Sample inputs for a verification run, derived from the specs: every input a sub-task needs that
 * no earlier sub-task produces gets a value of its declared type and shape (free text such as
 * "np.ndarray of shape (N, 3)", "float", "str: path to a CSV file"). Values the user gives win;
 * a data file the user names goes to inputs that look like paths. Arrays are deterministic
 * (a sine plus a pseudo-random ripple), so runs are reproducible.
 */
import { pythonIdentifier } from "../pipeline/pythonNames";
import type { Parameter } from "../schemas";
import type { SampleInput } from "./report";
import type { SandboxFile } from "./sandbox";
import { seededRandom as random } from "../shared/seededRandom";

export interface PipelineStepInfo {
  module: string;
  name: string;
  inputs: string[];
  outputs: string[];
}

export interface ExternalInput {
  name: string;
  /** The spec's parameter, when its name maps to this identifier. */
  parameter: Parameter | null;
  stepIndex: number;
}

/** Inputs some step needs that no earlier step outputs, in order of first use. */
export function externalInputs(pipeline: PipelineStepInfo[], parameters: Parameter[][] = []): ExternalInput[] {
  const available = new Set<string>();
  const found: ExternalInput[] = [];
  pipeline.forEach((step, stepIndex) => {
    for (const name of step.inputs) {
      if (available.has(name) || found.some((input) => input.name === name)) continue;
      const parameter = (parameters[stepIndex] ?? []).find((candidate) => pythonIdentifier(candidate.name) === name) ?? null;
      found.push({ name, parameter, stepIndex });
    }
    for (const name of step.outputs) available.add(name);
  });
  return found;
}

const PATH_WORDS = /(^|_)(path|file|filename|dir|directory|folder|record|csv|dataset)(_|$)/i;
const DEFAULT_LENGTH = 512;

function parseShape(text: string): (number | null)[] | null {
  const match = text.match(/\(\s*([A-Za-z0-9_]+(?:\s*,\s*[A-Za-z0-9_]*)*)\s*,?\s*\)/);
  if (!match) return null;
  const dims = match[1]
    .split(",")
    .map((dim) => dim.trim())
    .filter(Boolean)
    .map((dim) => (/^\d+$/.test(dim) ? Number(dim) : null));
  return dims.length ? dims : null;
}

function scalarFor(name: string, kind: "int" | "float"): number {
  const lower = name.toLowerCase();
  if (/(^|_)(fs|sampling_rate|sample_rate|sampling_frequency|sample_frequency|rate|frequency|freq|hz)(_|$)/.test(lower)) return kind === "int" ? 100 : 100.0;
  if (/window|size|length|samples|n_/.test(lower)) return 64;
  if (/threshold|alpha|ratio|overlap|probability|fraction/.test(lower)) return 0.5;
  if (/order|classes|k$|n$/.test(lower)) return 3;
  return kind === "int" ? 4 : 1.5;
}

function arrayOf(dims: number[], element: "int" | "float" | "bool", next: () => number, offset = 0): unknown {
  if (dims.length === 1) {
    return Array.from({ length: dims[0] }, (_, index) => {
      const value = Math.sin((2 * Math.PI * (index + offset)) / 32) + 0.2 * (next() - 0.5);
      if (element === "int") return Math.round(value * 100);
      if (element === "bool") return value > 0;
      return Math.round(value * 1e6) / 1e6;
    });
  }
  return Array.from({ length: dims[0] }, (_, index) => arrayOf(dims.slice(1), element, next, offset + index * 7));
}

export interface DerivedInputs {
  values: Record<string, unknown>;
  described: SampleInput[];
  /** Extra files for the working copy (sample data for path-like inputs). */
  files: SandboxFile[];
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) {
    const dims: number[] = [];
    let cursor: unknown = value;
    while (Array.isArray(cursor)) {
      dims.push(cursor.length);
      cursor = cursor[0];
    }
    return `array of shape (${dims.join(", ")}) of ${typeof cursor === "number" ? (Number.isInteger(cursor) ? "ints" : "floats") : typeof cursor}`;
  }
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function deriveInputs(options: { inputs: ExternalInput[]; user?: Record<string, unknown>; dataFile?: string; seed?: number }): DerivedInputs {
  const next = random(options.seed ?? 1234);
  const values: Record<string, unknown> = {};
  const described: SampleInput[] = [];
  const files: SandboxFile[] = [];
  for (const input of options.inputs) {
    const { name, parameter } = input;
    if (options.user && Object.hasOwn(options.user, name)) {
      values[name] = options.user[name];
      described.push({ name, source: "user", description: describeValue(values[name]) });
      continue;
    }
    const type = (parameter?.type ?? "").toLowerCase();
    const text = `${type} ${(parameter?.description ?? "").toLowerCase()}`;
    const pathLike = PATH_WORDS.test(name) || /\bpath\b|\bfile\b|\.csv|\.dat|\.txt|\.npy|directory|folder/.test(type);
    if (pathLike && options.dataFile) {
      values[name] = options.dataFile;
      described.push({ name, source: "dataFile", description: options.dataFile });
      continue;
    }
    let value: unknown;
    if (pathLike || /\b(str|string|text)\b/.test(type)) {
      if (pathLike) {
        const file = `sample_${name}.csv`;
        const rows = Array.from({ length: DEFAULT_LENGTH }, (_, index) => (Math.sin((2 * Math.PI * index) / 32) + 0.2 * (next() - 0.5)).toFixed(6));
        files.push({ path: file, content: `${rows.join("\n")}\n` });
        value = file;
      } else {
        value = "sample";
      }
    } else if (/\bbool(ean)?\b/.test(type)) {
      value = true;
    } else if (/\bdict\b|mapping|json object/.test(type)) {
      value = {};
    } else if (/ndarray|array|list|sequence|tensor|vector|matrix|series|\[/.test(type) || !type.trim()) {
      const shape = parseShape(text) ?? [null];
      const dims = shape.map((dim, index) => dim ?? (index === 0 ? DEFAULT_LENGTH : 3));
      const element = /\bint/.test(type) ? "int" : /\bbool/.test(type) ? "bool" : "float";
      value = arrayOf(dims, element, next);
    } else if (/\bint(eger)?\b/.test(type)) {
      value = scalarFor(name, "int");
    } else if (/float|double|number|real|scalar/.test(type)) {
      value = scalarFor(name, "float");
    } else {
      value = arrayOf([DEFAULT_LENGTH], "float", next);
    }
    values[name] = value;
    described.push({ name, source: "derived", description: `${describeValue(value)} (from "${parameter?.type ?? "no declared type"}")` });
  }
  return { values, described, files };
}
