/**
 * The run report: report.json (everything a later comparison needs) and report.html (one
 * self-contained page: inline CSS and an inline SVG loss chart, no scripts, nothing fetched).
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { ExportResult } from "./exportRun";
import type { RunEvaluation } from "./evaluateRun";
import type { TrainEventOf } from "./trainEvents";

export interface StepPoint {
  step: number;
  loss: number;
  role_loss: Record<string, number>;
  tokens_per_s: number;
}

export interface ValidationPoint {
  epoch: number;
  step: number;
  loss: number;
  role_loss: Record<string, number>;
  loss_without_cross?: number;
  role_loss_without_cross?: Record<string, number>;
}

export interface RunReport {
  run: string;
  createdAt: string;
  mode: "lora" | "pect";
  roles: string[];
  formats: Record<string, string>;
  seed: number;
  settings: Record<string, unknown>;
  parameters: { total: number; trainable: number; share: number };
  device: string;
  fit?: string;
  steps: number;
  trainLoss: StepPoint[];
  validation: ValidationPoint[];
  lossDrop?: { firstMean: number; lastMean: number; ratio: number; window: number };
  tokensPerSecond?: number;
  crossAblation?: { withCross: number; withoutCross: number; cost: number; roleWithCross: Record<string, number>; roleWithoutCross: Record<string, number> };
  evaluation?: RunEvaluation;
  export?: ExportResult;
}

export function readMetrics(runDir: string): { steps: StepPoint[]; validation: ValidationPoint[] } {
  const steps: StepPoint[] = [];
  const validation: ValidationPoint[] = [];
  let text: string;
  try {
    text = readFileSync(path.join(runDir, "metrics.jsonl"), "utf8");
  } catch {
    return { steps, validation };
  }
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const record = JSON.parse(line);
    if (record.event === "step") steps.push({ step: record.step, loss: record.loss, role_loss: record.role_loss, tokens_per_s: record.tokens_per_s });
    else if (record.event === "validation") validation.push(record);
  }
  return { steps, validation };
}

const median = (values: number[]) => (values.length ? [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] : undefined);
const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

/** Mean training loss of the first and the last `window` steps (window: a fifth of the run, 1 to 10 steps). */
export function lossDrop(steps: StepPoint[]): RunReport["lossDrop"] {
  if (steps.length < 2) return undefined;
  const window = Math.max(1, Math.min(10, Math.floor(steps.length / 5)));
  const firstMean = mean(steps.slice(0, window).map((point) => point.loss));
  const lastMean = mean(steps.slice(-window).map((point) => point.loss));
  return { firstMean, lastMean, ratio: lastMean / firstMean, window };
}

export function buildReport(runDir: string, start: TrainEventOf<"start">, settings: Record<string, unknown>, fit: string | undefined, evaluation?: RunEvaluation, exported?: ExportResult): RunReport {
  const { steps, validation } = readMetrics(runDir);
  const last = validation.at(-1);
  return {
    run: runDir,
    createdAt: new Date().toISOString(),
    mode: start.mode,
    roles: start.roles,
    formats: start.formats,
    seed: start.seed,
    settings,
    parameters: { total: start.parameters.total, trainable: start.parameters.trainable, share: start.trainable_share },
    device: start.device,
    fit,
    steps: start.steps,
    trainLoss: steps,
    validation,
    lossDrop: lossDrop(steps),
    tokensPerSecond: median(steps.map((point) => point.tokens_per_s)),
    crossAblation:
      last?.loss_without_cross !== undefined
        ? { withCross: last.loss, withoutCross: last.loss_without_cross, cost: last.loss_without_cross - last.loss, roleWithCross: last.role_loss, roleWithoutCross: last.role_loss_without_cross ?? {} }
        : undefined,
    evaluation,
    export: exported,
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[char]!);
}

export function lossChartSvg(report: RunReport, width = 720, height = 320): string {
  const pad = { left: 56, right: 16, top: 16, bottom: 40 };
  const points = report.trainLoss;
  const values = [...points.map((point) => point.loss), ...report.validation.flatMap((point) => [point.loss, point.loss_without_cross ?? point.loss])];
  if (!points.length || !values.length) return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="60"><text x="8" y="30">No steps recorded.</text></svg>`;
  const maxStep = Math.max(...points.map((point) => point.step), 1);
  const low = Math.min(...values);
  const high = Math.max(...values);
  const span = high - low || 1;
  const x = (step: number) => pad.left + (step / maxStep) * (width - pad.left - pad.right);
  const y = (loss: number) => pad.top + (1 - (loss - low) / span) * (height - pad.top - pad.bottom);
  const ticks = Array.from({ length: 5 }, (_, i) => low + (span * i) / 4);
  const stepTicks = Array.from({ length: 5 }, (_, i) => Math.round((maxStep * i) / 4));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Loss per step">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`,
    ...ticks.map((tick) => `<line x1="${pad.left}" x2="${width - pad.right}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#eee"/><text x="${pad.left - 6}" y="${(y(tick) + 4).toFixed(1)}" font-size="11" text-anchor="end">${tick.toFixed(2)}</text>`),
    ...stepTicks.map((tick) => `<text x="${x(tick).toFixed(1)}" y="${height - pad.bottom + 16}" font-size="11" text-anchor="middle">${tick}</text>`),
    `<text x="${(pad.left + width - pad.right) / 2}" y="${height - 6}" font-size="12" text-anchor="middle">optimizer step</text>`,
    `<text x="14" y="${(pad.top + height - pad.bottom) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${(pad.top + height - pad.bottom) / 2})">loss (answer tokens)</text>`,
    `<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="${points.map((point) => `${x(point.step).toFixed(1)},${y(point.loss).toFixed(1)}`).join(" ")}"/>`,
    ...report.validation.map((point) => `<circle cx="${x(point.step).toFixed(1)}" cy="${y(point.loss).toFixed(1)}" r="4" fill="#dc2626"><title>validation, epoch ${point.epoch}: ${point.loss.toFixed(4)}</title></circle>`),
    ...report.validation
      .filter((point) => point.loss_without_cross !== undefined)
      .map((point) => `<rect x="${(x(point.step) - 4).toFixed(1)}" y="${(y(point.loss_without_cross!) - 4).toFixed(1)}" width="8" height="8" fill="#f59e0b"><title>validation without cross projections, epoch ${point.epoch}: ${point.loss_without_cross!.toFixed(4)}</title></rect>`),
    `<g font-size="11"><line x1="${width - 250}" x2="${width - 230}" y1="${pad.top + 8}" y2="${pad.top + 8}" stroke="#2563eb" stroke-width="2"/><text x="${width - 226}" y="${pad.top + 12}">training</text>`,
    `<circle cx="${width - 165}" cy="${pad.top + 8}" r="4" fill="#dc2626"/><text x="${width - 158}" y="${pad.top + 12}">validation</text>`,
    report.validation.some((point) => point.loss_without_cross !== undefined) ? `<rect x="${width - 90}" y="${pad.top + 4}" width="8" height="8" fill="#f59e0b"/><text x="${width - 78}" y="${pad.top + 12}">no cross</text>` : "",
    `</g></svg>`,
  ];
  return parts.join("\n");
}

const percent = (value: number | undefined) => (value === undefined ? "–" : `${(100 * value).toFixed(1)}%`);
const num = (value: number | undefined, digits = 4) => (value === undefined ? "–" : value.toFixed(digits));

export function reportHtml(report: RunReport): string {
  const rows: [string, string][] = [
    ["Mode", report.mode.toUpperCase()],
    ["Roles (prompt format)", report.roles.map((role) => `${role.toUpperCase()} (${report.formats[role] ?? "json"})`).join(", ")],
    ["Trainable parameters", `${report.parameters.trainable.toLocaleString("en")} of ${report.parameters.total.toLocaleString("en")} (${percent(report.parameters.share)})`],
    ["Device", report.device],
    ["Steps, seed", `${report.steps}, ${report.seed}`],
    ["Training loss, first → last", report.lossDrop ? `${num(report.lossDrop.firstMean)} → ${num(report.lossDrop.lastMean)} (×${num(report.lossDrop.ratio, 3)}, means of ${report.lossDrop.window} steps)` : "–"],
    ["Throughput (median)", report.tokensPerSecond ? `${Math.round(report.tokensPerSecond)} tokens/s` : "–"],
  ];
  if (report.validation.length) rows.push(["Validation loss, last epoch", num(report.validation.at(-1)!.loss)]);
  if (report.crossAblation) rows.push(["Validation loss without the cross projections (as exported)", `${num(report.crossAblation.withoutCross)} (cost ${num(report.crossAblation.cost)})`]);
  if (report.fit) rows.push(["Fit estimate", report.fit]);
  const evaluationRows = Object.entries(report.evaluation?.variants ?? {}).flatMap(([variant, roles]) =>
    Object.entries(roles).map(
      ([role, value]) =>
        `<tr><td>${escapeHtml(variant)}</td><td>${role.toUpperCase()}</td><td>${value!.samples}</td><td>${percent(value!.formatRate)}</td><td>${value!.bleu === undefined ? "–" : num(value!.bleu, 3)}</td><td>${value!.compileRate === undefined ? "–" : percent(value!.compileRate)}</td></tr>`,
    ),
  );
  const exportRows = Object.entries(report.export?.adapters ?? {}).map(([role, file]) => `<tr><td>${role.toUpperCase()}</td><td><code>${escapeHtml(file!)}</code></td><td>${report.export?.formats[role as "td"] ?? "json"}</td></tr>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GPIoT training run ${escapeHtml(path.basename(report.run))}</title>
<style>body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#111;max-width:900px}table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f5f5f5}code{font-size:12px}</style></head>
<body><h1>Training run <code>${escapeHtml(path.basename(report.run))}</code></h1>
<p>${escapeHtml(report.run)} — ${escapeHtml(report.createdAt)}</p>
<table>${rows.map(([key, value]) => `<tr><th>${escapeHtml(key)}</th><td>${escapeHtml(value)}</td></tr>`).join("")}</table>
<h2>Loss</h2>
${lossChartSvg(report)}
<h2>Held-out answers without a grammar (${escapeHtml(report.evaluation?.split ?? "–")} split)</h2>
<table><tr><th>model</th><th>role</th><th>samples</th><th>format-correct</th><th>BLEU</th><th>compiles</th></tr>${evaluationRows.join("") || "<tr><td colspan=6>none</td></tr>"}</table>
<h2>Export</h2>
${report.export ? `<p>Profile <code>${escapeHtml(report.export.profile)}</code> (${escapeHtml(report.export.profilePath)}) on <code>${escapeHtml(report.export.base)}</code>.</p><table><tr><th>role</th><th>GGUF adapter</th><th>prompt format</th></tr>${exportRows.join("")}</table>` : "<p>Not exported.</p>"}
</body></html>
`;
}

function writeAtomic(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, content);
    renameSync(tmp, file);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}

export function writeReport(runDir: string, report: RunReport): { json: string; html: string } {
  const json = path.join(runDir, "report.json");
  const html = path.join(runDir, "report.html");
  writeAtomic(json, `${JSON.stringify(report, null, 2)}\n`);
  writeAtomic(html, reportHtml(report));
  return { json, html };
}
