/**
 * `gpiot data tdd|cgd|import|stats`: the offline phase's data step. Builds training records for
 * the TD, RT and CG roles from IoT papers (with a teacher model), from installed Python packages'
 * documentation (every code sample run in the sandbox), or from the published GPIoT datasets, and
 * reports on a records file.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { parseAxes, type AugmentationAxis } from "../data/augmentation";
import { harvestDocs, runCgd, type CgdFunctionResult } from "../data/cgd";
import { checkOutputFree, heldOutRequirements, siblingPath, writeDataset, type WriteDatasetResult } from "../data/dataset";
import { DataError } from "../data/errors";
import { readPapers } from "../data/papers";
import { DataProgress } from "../data/progress";
import { importPublished, type ImportRole } from "../data/publishedImport";
import { defaultQualityOptions, type QualityOptions } from "../data/quality";
import { computeStats, formatStats, renderStatsHtml } from "../data/stats";
import { papersFingerprint, runTdd, type TddUnit } from "../data/tdd";
import { loadTeacher, type Teacher } from "../data/teacher";
import { WorkJournal, writeFileAtomic } from "../data/workJournal";
import { defaultBenchRoot } from "../bench/tasks";
import { toErrorInfo } from "../engine/engine";
import { EngineSettingsSchema } from "../settings";

export const DATA_USAGE = `gpiot data - build training data for the TD, RT and CG models (the offline phase)

Usage:
  gpiot data tdd --papers DIR --out FILE (--model FILE | --profile NAME) [--augment A1,A2,A3] [--per-record N] [--rt]
  gpiot data cgd --packages numpy,scipy --out FILE [--functions a.b.f,...] [--python PATH]
  gpiot data import PATH... --out FILE [--role td|cg|auto]
  gpiot data stats FILE [--html REPORT.html] [--json]

tdd: task decomposition pairs from IoT papers (PDF, Markdown, text) written by a teacher model
  --papers DIR             folder of papers (.pdf, .md, .txt; sub-folders too)
  -m, --model FILE         the teacher: one GGUF model file
  -p, --profile NAME       the teacher: a profile of the models manifest
      --manifest FILE, --models-dir DIR, --offline, --threads N, --gpu MODE, --context-size N,
      --temperature T, --seed N     as for gpiot synthesize
      --augment AXES       A1 sensor modality, A2 data representation, A3 system resources (comma-separated)
      --per-record N       rewrites per axis for each pair (default 1)
      --rt                 also write RT records: the teacher runs the RT prompt chain on every sub-task
      --max-modules N      modules per part of a paper (default 8)
      --max-tokens N       longest teacher answer in tokens (default 2048)

cgd: code generation pairs (D1 describe, D2 code for a target, D3 spec to code) from package docs
      --packages LIST      installed packages whose public functions to harvest
      --functions LIST     fully qualified functions instead (e.g. scipy.signal.find_peaks)
      --max-functions N    stop after N functions (default: all)
      --max-examples N     example blocks per function (default 3)
      --python PATH        the interpreter whose packages are harvested and that runs the samples (default python3)
      --jobs N             samples run in parallel (default: CPU cores, at most 4)
      --timeout-ms N       time limit of one sample run (default 30000)
      --memory-mb N        address-space cap of one sample run (default 2048)

import: the published GPIoT datasets (Hugging Face save_to_disk folders, .arrow, .jsonl, .parquet)
      --role ROLE          td, cg, or auto (default: from the dataset's name, else from each answer)

Output and quality (tdd, cgd, import):
  -o, --out FILE           records file (JSON Lines); FILE.report.json and the corpus go next to it
      --overwrite          replace FILE if it exists
      --restart            discard the work of an unfinished earlier run instead of resuming it
      --corpus FILE        retrieval corpus (default: <FILE without .jsonl>.corpus.jsonl; tdd and cgd)
      --no-corpus          write no corpus
      --split A,B,C        train/validation/test shares of source documents (default 80,10,10)
      --near-duplicate T   Jaccard similarity that makes two records near duplicates (default 0.8; 1.01 = off)
      --min-prompt-chars N, --max-prompt-chars N, --min-answer-chars N, --max-answer-chars N   length filters
      --bench-root DIR     IoT Bench folder whose task requirements must not leak (default: the shipped iotbench/)
      --no-leakage-check   keep records that overlap IoT Bench requirements
  -q, --quiet              no progress on stderr

stats:
      --html FILE          the HTML report (default: <FILE without .jsonl>.stats.html)
      --json               print the figures as JSON

Long runs resume: interrupted (Ctrl+C, a crash, a kill), the same command continues where it stopped.
Exit codes: 0 done, 1 failed, 2 usage, 4 output file exists, 5 teacher model failed to load,
7 unusable input (missing or empty folder, encrypted or corrupt PDF, text that is not UTF-8,
package not installed, dataset without a data column), 130 interrupted.
`;

class DataUsageError extends Error {}

const exitCodes: Record<string, number> = {
  OUTPUT_EXISTS: 4,
  DATA_INPUT_INVALID: 7,
  PACKAGE_NOT_INSTALLED: 7,
  VERIFY_UNAVAILABLE: 7,
  RESUME_CONFLICT: 2,
  MODEL_NOT_FOUND: 5,
  MODEL_INVALID: 5,
  ADAPTER_MISMATCH: 5,
  MODEL_LOAD_FAILED: 5,
  MANIFEST_INVALID: 5,
  CANCELLED: 130,
};

const outputOptions = {
  out: { type: "string", short: "o" },
  overwrite: { type: "boolean" },
  restart: { type: "boolean" },
  corpus: { type: "string" },
  "no-corpus": { type: "boolean" },
  split: { type: "string" },
  "near-duplicate": { type: "string" },
  "min-prompt-chars": { type: "string" },
  "max-prompt-chars": { type: "string" },
  "min-answer-chars": { type: "string" },
  "max-answer-chars": { type: "string" },
  "bench-root": { type: "string" },
  "no-leakage-check": { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = Record<string, string | boolean | string[] | undefined>;

function integer(values: Values, name: string, fallback: number, min = 0): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new DataUsageError(`--${name} expects a whole number >= ${min}, got "${raw}"`);
  return value;
}

function list(raw: unknown): string[] {
  return typeof raw === "string" ? raw.split(",").map((item) => item.trim()).filter(Boolean) : [];
}

async function qualityOptions(values: Values): Promise<QualityOptions> {
  const quality: QualityOptions = { ...defaultQualityOptions, heldOut: [] };
  quality.minPromptChars = integer(values, "min-prompt-chars", quality.minPromptChars);
  quality.maxPromptChars = integer(values, "max-prompt-chars", quality.maxPromptChars, 1);
  quality.minAnswerChars = integer(values, "min-answer-chars", quality.minAnswerChars);
  quality.maxAnswerChars = integer(values, "max-answer-chars", quality.maxAnswerChars, 1);
  if (values["near-duplicate"] !== undefined) {
    const threshold = Number(values["near-duplicate"]);
    if (!Number.isFinite(threshold) || threshold <= 0) throw new DataUsageError(`--near-duplicate expects a similarity above 0 (1.01 turns it off), got "${values["near-duplicate"]}"`);
    quality.nearDuplicateThreshold = threshold;
  }
  if (values.split !== undefined) {
    const parts = String(values.split).split(",").map(Number);
    if (parts.length !== 3 || parts.some((part) => !Number.isFinite(part) || part < 0) || parts[0] + parts[1] + parts[2] <= 0)
      throw new DataUsageError(`--split expects three shares for train,validation,test, e.g. 80,10,10; got "${values.split}"`);
    const total = parts[0] + parts[1] + parts[2];
    quality.split = [parts[0] / total, parts[1] / total, parts[2] / total];
  }
  if (!values["no-leakage-check"]) quality.heldOut = await heldOutRequirements(typeof values["bench-root"] === "string" ? path.resolve(values["bench-root"]) : defaultBenchRoot());
  return quality;
}

function requireOut(values: Values): string {
  if (typeof values.out !== "string" || !values.out) throw new DataUsageError("--out FILE is required: the records file to write");
  return path.resolve(values.out);
}

function corpusFile(values: Values, outFile: string): string | null {
  if (values["no-corpus"]) return null;
  return typeof values.corpus === "string" ? path.resolve(values.corpus) : siblingPath(outFile, ".corpus.jsonl");
}

function summary(result: WriteDatasetResult, outFile: string): string {
  const byRole: Record<string, number> = {};
  for (const record of result.records) byRole[record.role] = (byRole[record.role] ?? 0) + 1;
  const rejected = Object.entries(result.report.rejected)
    .map(([reason, count]) => `${reason} ${count}`)
    .join(", ");
  return [
    `Wrote ${result.records.length} records (${Object.entries(byRole).map(([role, count]) => `${role} ${count}`).join(", ") || "none"}) to ${outFile}`,
    `  splits: train ${result.report.splits.train}, validation ${result.report.splits.validation}, test ${result.report.splits.test}`,
    `  rejected: ${rejected || "none"}`,
    ...(result.report.corpus ? [`  corpus: ${result.report.corpus.chunks} chunks in ${result.report.corpus.file}`] : []),
    `  report: ${result.reportFile}`,
  ].join("\n");
}

interface RunContext {
  signal: AbortSignal;
  interrupted: () => boolean;
  log: (line: string) => void;
  progress: DataProgress;
}

async function tdd(values: Values, context: RunContext): Promise<number> {
  if (typeof values.papers !== "string") throw new DataUsageError("--papers DIR is required: the folder of IoT papers");
  if (!values.model && !values.profile) throw new DataUsageError("choose the teacher with --model FILE or --profile NAME");
  if (values.model && values.profile) throw new DataUsageError("use either --model or --profile, not both");
  const outFile = requireOut(values);
  let axes: AugmentationAxis[];
  try {
    axes = values.augment ? parseAxes(String(values.augment)) : [];
  } catch (error) {
    throw new DataUsageError((error as Error).message);
  }
  const perRecord = integer(values, "per-record", 1, 1);
  const maxModules = integer(values, "max-modules", 8, 1);
  const maxTokens = integer(values, "max-tokens", 2048, 64);
  const number = (name: string) => (values[name] === undefined ? undefined : Number(values[name]));
  const settings = EngineSettingsSchema.safeParse({
    modelPath: typeof values.model === "string" ? path.resolve(values.model) : undefined,
    profile: values.profile,
    manifestPath: values.manifest,
    ...(values["models-dir"] ? { modelsDir: values["models-dir"] } : {}),
    ...(values.offline ? { offline: true } : {}),
    threads: number("threads"),
    gpu: values.gpu === undefined ? undefined : values.gpu === "cpu" ? false : values.gpu,
    contextSize: number("context-size"),
    temperature: number("temperature"),
    seed: number("seed"),
  });
  if (!settings.success) throw new DataUsageError(`invalid option ${settings.error.issues[0].path.join(".")}: ${settings.error.issues[0].message}`);
  const quality = await qualityOptions(values);
  checkOutputFree(outFile, values.overwrite === true);
  const { papers, skipped } = await readPapers(path.resolve(values.papers));
  for (const file of skipped) context.log(`Skipping ${file}: not a PDF, Markdown or text file`);
  context.log(`Read ${papers.length} paper(s): ${papers.map((paper) => `${paper.file} (${paper.sections.length} sections)`).join(", ")}`);
  let teacher: Teacher | null = null;
  try {
    context.log(`Loading the teacher (${settings.data.modelPath ? path.basename(settings.data.modelPath) : `profile ${settings.data.profile}`})`);
    teacher = await loadTeacher(settings.data);
    const journal = WorkJournal.open<TddUnit>(
      outFile,
      { command: "tdd", papers: papersFingerprint(papers), teacher: teacher.description, axes, perRecord, rt: values.rt === true, maxModules, maxTokens, temperature: settings.data.temperature, seed: settings.data.seed ?? null, contextSize: settings.data.contextSize ?? null },
      { restart: values.restart === true },
    );
    const result = await runTdd({ papers, teacher, journal, progress: context.progress, axes, perRecord, withRt: values.rt === true, maxModules, maxTokens, signal: context.signal });
    context.progress.finish();
    const corpus = corpusFile(values, outFile);
    const written = writeDataset({
      command: "tdd",
      outFile,
      drafts: result.drafts,
      rejected: result.rejected,
      quality,
      corpus: corpus ? { file: corpus, chunks: result.corpus } : null,
      inputs: { papers: papers.map((paper) => paper.file), teacher: teacher.description, augment: axes, perRecord, rt: values.rt === true, modules: result.modules },
      notes: skipped.map((file) => `skipped ${file}: not a paper file`),
    });
    journal.remove();
    context.log(summary(written, outFile));
    process.stdout.write(`${outFile}\n`);
    return 0;
  } finally {
    await teacher?.dispose();
  }
}

async function cgd(values: Values, context: RunContext): Promise<number> {
  const packages = list(values.packages);
  const functions = list(values.functions);
  if (!packages.length && !functions.length) throw new DataUsageError("name what to harvest: --packages numpy,scipy or --functions scipy.signal.find_peaks,...");
  const outFile = requireOut(values);
  const python = typeof values.python === "string" ? values.python : "python3";
  const limits = {
    python,
    jobs: integer(values, "jobs", Math.min(4, Math.max(1, (await import("node:os")).availableParallelism())), 1),
    timeoutMs: integer(values, "timeout-ms", 30_000, 100),
    memoryMB: integer(values, "memory-mb", 2048, 64),
    signal: context.signal,
  };
  const maxFunctions = integer(values, "max-functions", 0);
  const maxExamples = integer(values, "max-examples", 3);
  const quality = await qualityOptions(values);
  checkOutputFree(outFile, values.overwrite === true);
  context.log(`Harvesting the documentation of ${[...packages, ...functions].join(", ")} with ${python}`);
  const harvest = await harvestDocs({ python, packages, functions, maxFunctions, maxExamples, signal: context.signal });
  context.log(`Harvested ${harvest.functions.length} function(s) in ${harvest.seconds.toFixed(1)} s (${harvest.packages.map((item) => (item.version ? `${item.package} ${item.version}` : item.package)).join(", ")}, Python ${harvest.python.version}); running their code samples in the sandbox`);
  const journal = WorkJournal.open<CgdFunctionResult>(
    outFile,
    { command: "cgd", python: harvest.python.executable, packages: harvest.packages, functions, requested: packages, maxFunctions, maxExamples, timeoutMs: limits.timeoutMs, memoryMB: limits.memoryMB },
    { restart: values.restart === true },
  );
  const result = await runCgd({ harvest, journal, progress: context.progress, limits });
  context.progress.finish();
  const corpus = corpusFile(values, outFile);
  const written = writeDataset({
    command: "cgd",
    outFile,
    drafts: result.drafts,
    rejected: result.rejected,
    quality,
    corpus: corpus ? { file: corpus, chunks: result.corpus } : null,
    inputs: { packages: harvest.packages, functions: harvest.functions.length, python: harvest.python, samplesRun: result.runs, samplesPassed: result.passed },
    notes: [`${result.passed} of ${result.runs} code samples ran in the sandbox and were kept; ${result.runs - result.passed} failed and were dropped`],
  });
  journal.remove();
  context.log(`Samples: ${result.passed} of ${result.runs} ran in the sandbox; ${result.runs - result.passed} failed and were dropped`);
  context.log(summary(written, outFile));
  process.stdout.write(`${outFile}\n`);
  return 0;
}

async function importCommand(values: Values, positionals: string[], context: RunContext): Promise<number> {
  if (!positionals.length) throw new DataUsageError("name the dataset(s) to import: gpiot data import PATH... --out FILE");
  const role = (values.role ?? "auto") as ImportRole;
  if (!["td", "rt", "cg", "auto"].includes(role)) throw new DataUsageError(`--role expects td, cg or auto, got "${values.role}"`);
  const outFile = requireOut(values);
  const quality = await qualityOptions(values);
  checkOutputFree(outFile, values.overwrite === true);
  const result = await importPublished(positionals.map((input) => path.resolve(input)), role);
  const unparseable = result.rejected.filter((rejection) => rejection.reason === "unparseable");
  context.log(`Read ${result.rows} row(s) from ${result.sources.length} file(s); ${unparseable.length} could not be parsed${unparseable.length ? ` (first: ${unparseable[0].item}: ${unparseable[0].detail})` : ""}`);
  const written = writeDataset({
    command: "import",
    outFile,
    drafts: result.drafts,
    rejected: result.rejected,
    quality,
    corpus: null,
    inputs: { sources: result.sources.map((source) => ({ file: source.label, format: source.format, split: source.split })), rows: result.rows, role },
    notes: [],
    presetSplits: result.presetSplits,
  });
  context.log(summary(written, outFile));
  process.stdout.write(`${outFile}\n`);
  return 0;
}

function stats(values: Values, positionals: string[]): number {
  if (positionals.length !== 1) throw new DataUsageError("give one records file: gpiot data stats FILE");
  const file = path.resolve(positionals[0]);
  const computed = computeStats(file);
  const html = typeof values.html === "string" ? path.resolve(values.html) : siblingPath(file, ".stats.html");
  writeFileAtomic(html, renderStatsHtml(computed));
  if (values.json) process.stdout.write(`${JSON.stringify({ ...computed, report: undefined, html }, null, 2)}\n`);
  else process.stdout.write(`${formatStats(computed)}\n  HTML report: ${html}\n`);
  return 0;
}

export async function dataCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    process.stdout.write(DATA_USAGE);
    return sub === undefined ? 2 : 0;
  }
  const controller = new AbortController();
  let interrupted = false;
  let progress: DataProgress | null = null;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write("\nInterrupted: stopping; finished work is kept for the next run (Ctrl+C again to quit at once)\n");
    controller.abort();
  };
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...outputOptions,
          papers: { type: "string" },
          model: { type: "string", short: "m" },
          profile: { type: "string", short: "p" },
          manifest: { type: "string" },
          "models-dir": { type: "string" },
          offline: { type: "boolean" },
          threads: { type: "string" },
          gpu: { type: "string" },
          "context-size": { type: "string" },
          temperature: { type: "string" },
          seed: { type: "string" },
          augment: { type: "string" },
          "per-record": { type: "string" },
          rt: { type: "boolean" },
          "max-modules": { type: "string" },
          "max-tokens": { type: "string" },
          packages: { type: "string" },
          functions: { type: "string" },
          "max-functions": { type: "string" },
          "max-examples": { type: "string" },
          python: { type: "string" },
          jobs: { type: "string" },
          "timeout-ms": { type: "string" },
          "memory-mb": { type: "string" },
          role: { type: "string" },
          html: { type: "string" },
          json: { type: "boolean" },
        },
      });
    } catch (error) {
      throw new DataUsageError((error as Error).message);
    }
    const values = parsed.values as Values;
    if (values.help) {
      process.stdout.write(DATA_USAGE);
      return 0;
    }
    const allowed: Record<string, string[]> = {
      tdd: ["papers", "model", "profile", "manifest", "models-dir", "offline", "threads", "gpu", "context-size", "temperature", "seed", "augment", "per-record", "rt", "max-modules", "max-tokens"],
      cgd: ["packages", "functions", "max-functions", "max-examples", "python", "jobs", "timeout-ms", "memory-mb"],
      import: ["role"],
      stats: ["html", "json"],
    };
    if (!allowed[sub]) throw new DataUsageError(`unknown data command "${sub}": use tdd, cgd, import or stats`);
    const common = sub === "stats" ? [] : Object.keys(outputOptions);
    const stray = Object.keys(values).find((name) => values[name] !== undefined && !allowed[sub].includes(name) && !common.includes(name) && name !== "help");
    if (stray) throw new DataUsageError(`--${stray} does not go with gpiot data ${sub}`);
    if (sub === "stats") return stats(values, parsed.positionals);
    if (sub !== "import" && parsed.positionals.length) throw new DataUsageError(`unexpected argument "${parsed.positionals[0]}"`);
    progress = new DataProgress(process.stderr, { enabled: !values.quiet, unit: sub === "cgd" ? "functions" : "steps" });
    const context: RunContext = {
      signal: controller.signal,
      interrupted: () => interrupted,
      log: (line) => {
        if (!values.quiet) progress?.note(line);
      },
      progress,
    };
    process.on("SIGINT", onSigint);
    if (sub === "tdd") return await tdd(values, context);
    if (sub === "cgd") return await cgd(values, context);
    return await importCommand(values, parsed.positionals, context);
  } catch (error) {
    progress?.finish();
    if (error instanceof DataUsageError) {
      process.stderr.write(`gpiot data: ${error.message}\nRun "gpiot data --help" for usage.\n`);
      return 2;
    }
    const info = error instanceof DataError ? { code: error.code, message: error.message } : toErrorInfo(error);
    if (interrupted || info.code === "CANCELLED") {
      process.stderr.write("gpiot data: interrupted; run the same command again to resume (finished work was kept).\n");
      return 130;
    }
    process.stderr.write(`gpiot data: ${info.message}\n`);
    return exitCodes[info.code] ?? 1;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
