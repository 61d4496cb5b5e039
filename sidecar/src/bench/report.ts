/**
 * IoT Bench reports: a table for the terminal, report.json, and report.html: one self-contained
 * page (inline CSS and SVG bar charts, no scripts, nothing fetched).
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { BenchReport, TaskResult } from "./harness";

const percent = (value: number) => `${(value * 100).toFixed(0)}%`;
const fixed = (value: number | null, digits = 0) => (value === null ? "-" : value.toFixed(digits));

function metricText(result: TaskResult): string {
  const entries = Object.entries(result.metrics);
  if (!entries.length) return "-";
  return entries
    .filter(([name]) => name !== "f1")
    .map(([name, value]) => `${name.slice(0, 4)} ${value.toFixed(3)}`)
    .join(" ");
}

export function formatTable(report: BenchReport): string {
  const header = ["task", "system", "n", "format", "compile", "run", "pass@1", "pass@k", "metric (programs that ran)", "run ms", "peak MB", "limits", "synth s", "tok/s"];
  const rows = report.results.map((result) => [
    result.task,
    result.system,
    String(result.n),
    percent(result.formatRate),
    percent(result.compileRate),
    percent(result.runRate),
    result.passAt1.toFixed(2),
    result.passAtK.toFixed(2),
    metricText(result),
    fixed(result.wallMs),
    fixed(result.peakMemoryMB, 1),
    result.withinLimitsRate === null ? "-" : percent(result.withinLimitsRate),
    result.synthesisMs === null ? "-" : (result.synthesisMs / 1000).toFixed(1),
    fixed(result.tokensPerSecond),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column <= 1 || column === 8 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join("  ");
  return [line(header), widths.map((width) => "-".repeat(width)).join("  "), ...rows.map(line)].join("\n");
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[char]!);
}

const COLORS = ["#3b6fb6", "#e08a2c", "#4a9a5b", "#b04a4a", "#7d5ba6", "#8a7250", "#c45e9c", "#6b6b6b"];

/** Grouped horizontal bars: one group per system, one bar per measure (0..1). */
function barChart(title: string, results: TaskResult[], measures: { label: string; value(result: TaskResult): number }[]): string {
  const barHeight = 14;
  const gap = 4;
  const groupGap = 14;
  const labelWidth = 220;
  const chartWidth = 420;
  const groupHeight = measures.length * (barHeight + gap) + groupGap;
  const legendRows = Math.ceil(measures.length / 4);
  const legendHeight = legendRows * 16;
  const height = 30 + legendHeight + results.length * groupHeight + 12;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + chartWidth + 80}" height="${height}" role="img" aria-label="${escapeHtml(title)}">`];
  parts.push(`<text x="0" y="16" font-size="14" font-weight="bold">${escapeHtml(title)}</text>`);
  measures.forEach((measure, index) => {
    const x = labelWidth + (index % 4) * 110;
    const y = 24 + Math.floor(index / 4) * 16;
    parts.push(`<rect x="${x}" y="${y}" width="10" height="10" fill="${COLORS[index % COLORS.length]}"/><text x="${x + 14}" y="${y + 9}" font-size="11">${escapeHtml(measure.label)}</text>`);
  });
  results.forEach((result, group) => {
    const top = 30 + legendHeight + group * groupHeight;
    parts.push(`<text x="0" y="${top + (measures.length * (barHeight + gap)) / 2 + 4}" font-size="12">${escapeHtml(result.system)}</text>`);
    measures.forEach((measure, index) => {
      const value = Math.max(0, Math.min(1, measure.value(result)));
      const y = top + index * (barHeight + gap);
      parts.push(`<rect x="${labelWidth}" y="${y}" width="${chartWidth}" height="${barHeight}" fill="#eee"/>`);
      parts.push(`<rect x="${labelWidth}" y="${y}" width="${(value * chartWidth).toFixed(1)}" height="${barHeight}" fill="${COLORS[index % COLORS.length]}"/>`);
      parts.push(`<text x="${labelWidth + chartWidth + 6}" y="${y + barHeight - 3}" font-size="11">${value.toFixed(3)}</text>`);
    });
  });
  parts.push("</svg>");
  return parts.join("");
}

export function renderHtml(report: BenchReport): string {
  const sections = report.tasks.map((task) => {
    const results = report.results.filter((result) => result.task === task.id);
    const metricNames = [...new Set(results.flatMap((result) => Object.keys(result.metrics)))];
    const chart = barChart(`${task.title}`, results, [
      { label: "pass@1", value: (result) => result.passAt1 },
      ...(report.options.k > 1 ? [{ label: `pass@${report.options.k}`, value: (result: TaskResult) => result.passAtK }] : []),
      { label: "run rate", value: (result) => result.runRate },
      ...metricNames.map((name) => ({ label: name, value: (result: TaskResult) => result.metrics[name] ?? 0 })),
    ]);
    const rows = results
      .map(
        (result) =>
          `<tr><td>${escapeHtml(result.system)}</td><td>${result.n}</td><td>${percent(result.formatRate)}</td><td>${percent(result.compileRate)}</td><td>${percent(result.runRate)}</td><td>${result.passAt1.toFixed(2)}</td><td>${result.passAtK.toFixed(2)}</td><td>${escapeHtml(metricText(result))}</td><td>${fixed(result.wallMs)}</td><td>${fixed(result.pipelineMs, 1)}</td><td>${fixed(result.peakMemoryMB, 1)}</td><td>${result.withinLimitsRate === null ? "-" : percent(result.withinLimitsRate)}</td><td>${result.synthesisMs === null ? "-" : (result.synthesisMs / 1000).toFixed(1)}</td><td>${fixed(result.tokensPerSecond)}</td></tr>`,
      )
      .join("\n");
    const failures = results
      .flatMap((result) => result.programs.filter((program) => !program.passed).map((program) => `<li><b>${escapeHtml(result.system)}</b> ${escapeHtml(path.basename(program.name))}: ${escapeHtml((program.synthesisError ?? program.failure ?? "below threshold").split("\n")[0].slice(0, 200))}</li>`))
      .slice(0, 20)
      .join("\n");
    return `<section>
<h2>${escapeHtml(task.title)} <small>(${escapeHtml(task.id)}, ${task.source} data, ${task.items} item(s))</small></h2>
<p>Metric: ${escapeHtml(task.metric)}; pass: ${escapeHtml(Object.entries(task.pass).map(([name, value]) => `${name} ≥ ${value}`).join(", "))}${task.constraints ? `; constraints: ${escapeHtml(task.constraints)}` : ""}</p>
${chart}
<table><thead><tr><th>system</th><th>n</th><th>format</th><th>compile</th><th>run</th><th>pass@1</th><th>pass@k (k=${report.options.k})</th><th>metric</th><th>run ms</th><th>pipeline ms</th><th>peak MB</th><th>within limits</th><th>synth s</th><th>tok/s</th></tr></thead>
<tbody>${rows}</tbody></table>
${failures ? `<details><summary>Failures</summary><ul>${failures}</ul></details>` : ""}
</section>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IoT Bench report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
small{color:#666;font-weight:normal}
section{margin-bottom:2.5em}
</style></head><body>
<h1>IoT Bench report</h1>
<p>GPIoT ${escapeHtml(report.gpiotVersion)}, ${escapeHtml(report.createdAt)}; n = ${report.options.n}, k = ${report.options.k}, repair rounds ${report.options.repairRounds}; Python ${escapeHtml(report.environment.pythonVersion)}; sandbox: ${escapeHtml(report.environment.isolation)}; answers: ${escapeHtml(report.environment.answers)}; ${(report.totalMs / 1000).toFixed(1)} s.</p>
<p>format: synthesis produced a valid program; compile: every module parses; run: it ran to the end on every item with the contract's outputs; pass@k: unbiased estimator over n programs (pass@1 and pass@k agree when k = 1); metric: mean over programs that ran; run ms: wall time per run (interpreter start included); pipeline ms: time in the sub-tasks' run() calls; peak MB: peak resident memory; within limits: share of the programs that ran whose peak memory and pipeline time met the task's stated constraints.</p>
${sections.join("\n")}
</body></html>
`;
}

export async function writeReports(report: BenchReport, outDir: string): Promise<{ json: string; html: string }> {
  const json = path.join(outDir, "report.json");
  const html = path.join(outDir, "report.html");
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(html, renderHtml(report));
  return { json, html };
}
