/**
 * `gpiot data stats FILE`: what a records file holds (counts per role, source, augmentation axis,
 * CGD set, split; prompt and answer lengths), what its run rejected and why (from the run report
 * next to it), and an HTML report with bar charts as inline SVG: one self-contained file, no
 * scripts, no external resources.
 */
import { existsSync, readFileSync } from "node:fs";
import { DataReportSchema, reportPathFor, type DataReport } from "./dataset";
import { inputError } from "./errors";
import { decodeUtf8 } from "./papers";
import { answerOf, promptOf, TrainingRecordSchema, type TrainingRecord } from "./records";

export interface LengthSummary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  max: number;
  mean: number;
  histogram: { label: string; count: number }[];
}

export interface DatasetStats {
  file: string;
  records: number;
  invalidLines: { line: number; reason: string }[];
  byRole: Record<string, number>;
  bySource: Record<string, number>;
  byAugmentation: Record<string, number>;
  byAugmentationValue: Record<string, number>;
  byCgdSet: Record<string, number>;
  bySplit: Record<string, number>;
  byFormat: Record<string, number>;
  /** Source documents (papers, functions, rows) per split. */
  documentsBySplit: Record<string, number>;
  promptChars: LengthSummary;
  answerChars: LengthSummary;
  lengthsByRole: Record<string, { prompt: LengthSummary; answer: LengthSummary }>;
  /** From the run report next to the file; null when there is none. */
  rejected: Record<string, number> | null;
  report: DataReport | null;
}

const BINS = [0, 100, 200, 500, 1000, 2000, 5000, 10000, 20000];

function binLabel(index: number): string {
  const format = (value: number) => (value >= 1000 ? `${value / 1000}k` : String(value));
  return index + 1 < BINS.length ? `${format(BINS[index])}-${format(BINS[index + 1])}` : `${format(BINS[index])}+`;
}

export function summarizeLengths(values: number[]): LengthSummary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (fraction: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] : 0);
  const histogram = BINS.map((_, index) => ({ label: binLabel(index), count: 0 }));
  for (const value of values) {
    let index = BINS.length - 1;
    while (index > 0 && value < BINS[index]) index--;
    histogram[index].count++;
  }
  return {
    count: values.length,
    min: sorted[0] ?? 0,
    p50: at(0.5),
    p90: at(0.9),
    max: sorted[sorted.length - 1] ?? 0,
    mean: values.length ? Math.round(values.reduce((sum, value) => sum + value, 0) / values.length) : 0,
    histogram,
  };
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export function computeStats(file: string): DatasetStats {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw inputError(file, `cannot be read (${(error as Error).message})`);
  }
  const text = decodeUtf8(file, bytes);
  const records: TrainingRecord[] = [];
  const invalidLines: DatasetStats["invalidLines"] = [];
  text.split("\n").forEach((line, index) => {
    if (!line.trim()) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      invalidLines.push({ line: index + 1, reason: "not JSON" });
      return;
    }
    const parsed = TrainingRecordSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      invalidLines.push({ line: index + 1, reason: `${issue.path.join(".") || "$"}: ${issue.message}` });
      return;
    }
    records.push(parsed.data);
  });
  if (!records.length && invalidLines.length) throw inputError(file, `is not a records file: none of its ${invalidLines.length} line(s) is a valid record (line ${invalidLines[0].line}: ${invalidLines[0].reason})`);

  const stats: DatasetStats = {
    file,
    records: records.length,
    invalidLines,
    byRole: {},
    bySource: {},
    byAugmentation: {},
    byAugmentationValue: {},
    byCgdSet: {},
    bySplit: {},
    byFormat: {},
    documentsBySplit: {},
    promptChars: summarizeLengths(records.map((record) => promptOf(record).length)),
    answerChars: summarizeLengths(records.map((record) => answerOf(record).length)),
    lengthsByRole: {},
    rejected: null,
    report: null,
  };
  const documents: Record<string, Set<string>> = {};
  for (const record of records) {
    increment(stats.byRole, record.role);
    increment(stats.bySource, record.source.kind);
    increment(stats.byAugmentation, record.augmentation?.axis ?? "none");
    if (record.augmentation) increment(stats.byAugmentationValue, `${record.augmentation.axis}: ${record.augmentation.value}`);
    if (record.source.kind_detail) increment(stats.byCgdSet, record.source.kind_detail);
    increment(stats.bySplit, record.split);
    increment(stats.byFormat, record.format);
    const key = record.source.function ?? record.source.file ?? record.id;
    (documents[record.split] ??= new Set()).add(key);
  }
  for (const [split, set] of Object.entries(documents)) stats.documentsBySplit[split] = set.size;
  for (const role of Object.keys(stats.byRole)) {
    const mine = records.filter((record) => record.role === role);
    stats.lengthsByRole[role] = { prompt: summarizeLengths(mine.map((record) => promptOf(record).length)), answer: summarizeLengths(mine.map((record) => answerOf(record).length)) };
  }
  const reportFile = reportPathFor(file);
  if (existsSync(reportFile)) {
    try {
      stats.report = DataReportSchema.parse(JSON.parse(readFileSync(reportFile, "utf8")));
      stats.rejected = stats.report.rejected;
    } catch {
      stats.report = null;
    }
  }
  return stats;
}

function table(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return entries.length ? entries.map(([key, value]) => `${key} ${value}`).join(", ") : "none";
}

function lengths(summary: LengthSummary): string {
  return `min ${summary.min}, median ${summary.p50}, p90 ${summary.p90}, max ${summary.max}, mean ${summary.mean}`;
}

export function formatStats(stats: DatasetStats): string {
  const lines = [
    `${stats.file}: ${stats.records} records${stats.invalidLines.length ? `, ${stats.invalidLines.length} invalid line(s) (first: line ${stats.invalidLines[0].line}, ${stats.invalidLines[0].reason})` : ""}`,
    `  role:          ${table(stats.byRole)}`,
    `  source:        ${table(stats.bySource)}`,
    `  augmentation:  ${table(stats.byAugmentation)}`,
    ...(Object.keys(stats.byCgdSet).length ? [`  CGD set:       ${table(stats.byCgdSet)}`] : []),
    `  split:         ${table(stats.bySplit)} (documents: ${table(stats.documentsBySplit)})`,
    `  format:        ${table(stats.byFormat)}`,
    `  prompt chars:  ${lengths(stats.promptChars)}`,
    `  answer chars:  ${lengths(stats.answerChars)}`,
    `  rejected:      ${stats.rejected ? table(stats.rejected) : "no run report next to the file"}`,
  ];
  return lines.join("\n");
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

const COLORS = ["#3465a4", "#4e9a06", "#c4a000", "#ce5c00", "#75507b", "#cc0000", "#06989a", "#555753"];

/** A horizontal bar chart as inline SVG. */
export function barChart(title: string, entries: [string, number][], options: { sort?: boolean } = {}): string {
  const rows = options.sort === false ? entries : [...entries].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const labelWidth = 220;
  const barWidth = 360;
  const rowHeight = 22;
  const height = 30 + Math.max(1, rows.length) * rowHeight;
  const max = Math.max(1, ...rows.map(([, value]) => value));
  const bars = rows.map(([label, value], index) => {
    const y = 26 + index * rowHeight;
    const width = Math.round((value / max) * barWidth);
    const shown = label.length > 34 ? `${label.slice(0, 33)}…` : label;
    return [
      `<text x="${labelWidth - 6}" y="${y + 14}" text-anchor="end">${escapeHtml(shown)}</text>`,
      `<rect x="${labelWidth}" y="${y + 2}" width="${Math.max(width, value > 0 ? 2 : 0)}" height="${rowHeight - 6}" fill="${COLORS[index % COLORS.length]}"><title>${escapeHtml(`${label}: ${value}`)}</title></rect>`,
      `<text x="${labelWidth + width + 6}" y="${y + 14}">${value}</text>`,
    ].join("");
  });
  if (!rows.length) bars.push(`<text x="${labelWidth}" y="40">none</text>`);
  return `<figure><svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + barWidth + 70}" height="${height}" role="img" aria-label="${escapeHtml(title)}"><text x="0" y="16" font-weight="bold">${escapeHtml(title)}</text>${bars.join("")}</svg></figure>`;
}

function lengthTable(summary: LengthSummary): string {
  return `<td>${summary.min}</td><td>${summary.p50}</td><td>${summary.p90}</td><td>${summary.max}</td><td>${summary.mean}</td>`;
}

export function renderStatsHtml(stats: DatasetStats): string {
  const entries = (counts: Record<string, number>) => Object.entries(counts) as [string, number][];
  const histogram = (summary: LengthSummary) => summary.histogram.map((bin): [string, number] => [bin.label, bin.count]);
  const rejectionRows = (stats.report?.rejections ?? [])
    .slice(0, 200)
    .map((rejection) => `<tr><td>${escapeHtml(rejection.reason)}</td><td>${escapeHtml(rejection.item)}</td><td>${escapeHtml(rejection.detail ?? "")}</td></tr>`)
    .join("");
  const sections = [
    `<h1>GPIoT training data: ${escapeHtml(stats.file)}</h1>`,
    `<p>${stats.records} records${stats.invalidLines.length ? `; ${stats.invalidLines.length} invalid line(s) in the file` : ""}.${stats.report ? ` Made by <code>gpiot data ${escapeHtml(stats.report.command)}</code> on ${escapeHtml(stats.report.createdAt)}.` : ""}</p>`,
    "<h2>Records</h2>",
    barChart("Records per role", entries(stats.byRole)),
    barChart("Records per source", entries(stats.bySource)),
    barChart("Records per augmentation axis", entries(stats.byAugmentation)),
    ...(Object.keys(stats.byAugmentationValue).length ? [barChart("Records per augmentation value", entries(stats.byAugmentationValue))] : []),
    ...(Object.keys(stats.byCgdSet).length ? [barChart("CGD records per set (D1 describe, D2 code for a target, D3 spec to code)", entries(stats.byCgdSet))] : []),
    barChart("Records per split", entries(stats.bySplit)),
    barChart("Source documents per split", entries(stats.documentsBySplit)),
    "<h2>Lengths (characters)</h2>",
    "<table><tr><th></th><th>min</th><th>median</th><th>p90</th><th>max</th><th>mean</th></tr>",
    `<tr><th>prompt</th>${lengthTable(stats.promptChars)}</tr><tr><th>answer</th>${lengthTable(stats.answerChars)}</tr>`,
    ...Object.entries(stats.lengthsByRole).map(([role, summary]) => `<tr><th>${escapeHtml(role)} prompt</th>${lengthTable(summary.prompt)}</tr><tr><th>${escapeHtml(role)} answer</th>${lengthTable(summary.answer)}</tr>`),
    "</table>",
    barChart("Prompt length distribution", histogram(stats.promptChars), { sort: false }),
    barChart("Answer length distribution", histogram(stats.answerChars), { sort: false }),
    "<h2>Rejected</h2>",
    stats.rejected ? barChart("Rejected rows and samples by reason", entries(stats.rejected)) : "<p>No run report next to the file, so no rejection counts.</p>",
    ...(stats.report
      ? [
          `<p>Exact duplicates: ${escapeHtml(stats.report.methods.exactDuplicates)}. Near duplicates: ${escapeHtml(stats.report.methods.nearDuplicates)}, threshold ${stats.report.methods.nearDuplicateThreshold}. Leakage: ${escapeHtml(stats.report.methods.leakage)} (${escapeHtml(stats.report.methods.heldOutTasks.join(", ") || "no tasks")}). Splits: ${escapeHtml(stats.report.methods.splits)}.</p>`,
          rejectionRows ? `<table><tr><th>reason</th><th>what</th><th>detail</th></tr>${rejectionRows}</table>` : "",
        ]
      : []),
    ...(stats.invalidLines.length ? ["<h2>Invalid lines</h2>", `<table><tr><th>line</th><th>problem</th></tr>${stats.invalidLines.slice(0, 200).map((line) => `<tr><td>${line.line}</td><td>${escapeHtml(line.reason)}</td></tr>`).join("")}</table>`] : []),
  ];
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>GPIoT data: ${escapeHtml(stats.file)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}svg{font-size:12px;font-family:inherit}figure{margin:1em 0}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}code{background:#eee;padding:0 3px}</style>
</head><body>
${sections.join("\n")}
</body></html>
`;
}
