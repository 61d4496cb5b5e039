/**
 * Comments and descriptions speak about the code, not about the tickets it came from: no issue
 * numbers and no begin/end markers around the lines one change added. Checks every text file of
 * the repository (sources, tests, scripts, package.json, docs).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { repoRoot } from "../helpers/testModels";

/** Data and generated files inside the tracked tree: not written by hand. */
const SKIPPED_FOLDERS = new Set(["fixtures", "iotbench-results"]);
const SKIPPED_PATHS = new Set(["package-lock.json"]);
const TEXT_FILE = /\.(ts|mts|cts|js|mjs|cjs|json|md|py|sh|yml|yaml|txt|html|css|svg)$|^(run|\.gitignore|\.vscodeignore)$/;

const TICKET_SCAFFOLDING: { pattern: RegExp; what: string }[] = [
  { pattern: /\bissues?\s*#\s*\d+/i, what: "an issue number" },
  { pattern: /\(\s*issues?\s+\d+\s*\)/i, what: "an issue number" },
  { pattern: /(\/\/|#|\/\*|<!--)\s*-{2,}\s*end\b/i, what: "an end-of-change marker" },
];

/**
 * The files git tracks or would track: what .gitignore leaves out (installs such as .venv and
 * node_modules, build outputs, downloaded tools) was not written by hand.
 */
function handWrittenTextFiles(): string[] {
  const listed = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: repoRoot, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return listed
    .split("\0")
    .filter((file) => file && TEXT_FILE.test(path.basename(file)) && !SKIPPED_PATHS.has(file))
    .filter((file) => !file.split("/").slice(0, -1).some((folder) => SKIPPED_FOLDERS.has(folder)))
    .filter((file) => existsSync(path.join(repoRoot, file)));
}

test("no issue numbers or change markers in comments, docs or package descriptions", () => {
  const files = handWrittenTextFiles();
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
