/**
 * Comments and descriptions speak about the code, not about the tickets it came from: no issue
 * numbers and no begin/end markers around the lines one change added. Checks every text file of
 * the repository (sources, tests, scripts, package.json, docs).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { repoRoot } from "../helpers/testModels";

/** Build outputs, installs, downloaded tools and data: not written by hand. */
const SKIPPED_FOLDERS = new Set([".git", "node_modules", "dist", "out", ".tools", ".test-artifacts", ".scratch", "tmp", "iotbench-results", "fixtures"]);
const SKIPPED_PATHS = new Set(["models/tiny", "models/cache", "package-lock.json"]);
const TEXT_FILE = /\.(ts|mts|cts|js|mjs|cjs|json|md|py|sh|yml|yaml|txt|html|css|svg)$|^(run|\.gitignore|\.vscodeignore)$/;

const TICKET_SCAFFOLDING: { pattern: RegExp; what: string }[] = [
  { pattern: /\bissues?\s*#\s*\d+/i, what: "an issue number" },
  { pattern: /\(\s*issues?\s+\d+\s*\)/i, what: "an issue number" },
  { pattern: /(\/\/|#|\/\*|<!--)\s*-{2,}\s*end\b/i, what: "an end-of-change marker" },
];

function textFiles(dir: string, relative = ""): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const entryPath = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (!SKIPPED_FOLDERS.has(entry.name) && !SKIPPED_PATHS.has(entryPath)) found.push(...textFiles(path.join(dir, entry.name), entryPath));
    } else if (entry.isFile() && TEXT_FILE.test(entry.name) && !SKIPPED_PATHS.has(entryPath)) {
      found.push(entryPath);
    }
  }
  return found;
}

test("no issue numbers or change markers in comments, docs or package descriptions", () => {
  const files = textFiles(repoRoot);
  assert.ok(files.includes("package.json") && files.includes("sidecar/src/protocol.ts") && files.includes("extension/src/extension.ts"), "the walk reaches the sources");
  const findings: string[] = [];
  for (const file of files) {
    const lines = readFileSync(path.join(repoRoot, file), "utf8").split("\n");
    lines.forEach((line, index) => {
      for (const { pattern, what } of TICKET_SCAFFOLDING) if (pattern.test(line)) findings.push(`${file}:${index + 1}: ${what}: ${line.trim().slice(0, 120)}`);
    });
  }
  assert.deepEqual(findings, []);
});
