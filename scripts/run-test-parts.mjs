#!/usr/bin/env node
// Runs each named npm script in turn, every one even after a failure, so that one run reports
// every failing part; then prints a summary (the last lines a CI log shows) and exits 1 if any failed.
import { spawnSync } from "node:child_process";

const parts = process.argv.slice(2);
if (parts.length === 0) {
  console.error("usage: node scripts/run-test-parts.mjs SCRIPT [SCRIPT ...]  (npm script names)");
  process.exit(2);
}

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const results = [];
for (const part of parts) {
  const started = Date.now();
  const run = spawnSync(npm, ["run", "--silent", part], { stdio: "inherit", shell: process.platform === "win32" });
  const seconds = Math.round((Date.now() - started) / 1000);
  const outcome = run.error ? `could not start (${run.error.message})` : run.status === 0 ? "passed" : `FAILED (${run.signal ? `signal ${run.signal}` : `exit ${run.status}`})`;
  results.push({ part, ok: !run.error && run.status === 0, line: `${part}: ${outcome} after ${seconds} s` });
}

console.log("\n== test parts ==");
for (const result of results) console.log(`  ${result.ok ? "PASS" : "FAIL"} ${result.line}`);
process.exit(results.every((result) => result.ok) ? 0 : 1);
