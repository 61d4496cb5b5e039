/**
 * `npm run test:extension` (after `npm run build` and `npm run models:tiny`):
 *   1. bundles the extension and its test modules (test/extension/build.mjs),
 *   2. unit tests of the extension's pure modules (node:test),
 *   3. the mocha suite in a real VS Code (code-server 4.100.3 + Chromium) against the real sidecar
 *      and the tiny test models,
 *   4. the Restricted Mode suite (the same, with workspace trust on and the workspace untrusted),
 *   5. the UI journey (drives the workbench like a user, from no model to an undone insertion) with
 *      a screenshot at each step,
 *   6. the packaging test (.vsix built, installed with --install-extension, its commands run, a
 *      GPU runtime fetched from a loopback registry).
 * Options: --only unit|suite|restricted|ui|vsix (repeatable), --grep PATTERN (suite), --skip-vsix.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { parseArgs } from "node:util";
import { runSuite } from "./runSuite";
import { runUiTest } from "./ui";
import { runVsixTest } from "./vsix";
import { REPO_ROOT, requireCodeServer } from "./workspace";

const { values } = parseArgs({ options: { only: { type: "string", multiple: true }, grep: { type: "string" }, "skip-vsix": { type: "boolean" } } });
const wanted = (part: string) => (values.only ? values.only.includes(part) : !(part === "vsix" && values["skip-vsix"]));

requireCodeServer();
const results: { part: string; ok: boolean; seconds: number; failures?: string }[] = [];
type PartOutcome = number | { code: number; failures: string };
async function part(name: string, body: () => Promise<PartOutcome> | PartOutcome): Promise<void> {
  if (!wanted(name)) return;
  const started = Date.now();
  console.log(`\n=== extension tests: ${name} ===`);
  let outcome: PartOutcome;
  try {
    outcome = await body();
  } catch (error) {
    console.error(error);
    outcome = 1;
  }
  const { code, failures } = typeof outcome === "number" ? { code: outcome, failures: undefined } : outcome;
  results.push({ part: name, ok: code === 0, seconds: (Date.now() - started) / 1000, failures: failures || undefined });
}

execFileSync(process.execPath, [path.join(REPO_ROOT, "test", "extension", "build.mjs")], { stdio: "inherit" });
await part("unit", () => {
  try {
    execFileSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", "test/extension/unit/commentParsing.test.ts", "test/extension/unit/outputFolders.test.ts", "test/extension/unit/programRules.test.ts", "test/extension/unit/gpuRuntimeInstaller.test.ts", "test/extension/unit/manifest.test.ts"], { cwd: REPO_ROOT, stdio: "inherit" });
    return 0;
  } catch {
    return 1;
  }
});
await part("suite", () => runSuite({ grep: values.grep }));
await part("restricted", () => runSuite({ restricted: true }));
await part("ui", () => runUiTest());
await part("vsix", () => runVsixTest());

// Repeated here because a CI log is often read from its tail.
for (const result of results.filter((r) => !r.ok && r.failures)) console.log(`\n--- ${result.part}: what failed ---\n${result.failures}`);
console.log("\n=== extension tests: summary ===");
for (const result of results) console.log(`  ${result.ok ? "PASS" : "FAIL"}  ${result.part.padEnd(6)} ${result.seconds.toFixed(1)} s`);
console.log("  screenshots: .test-artifacts/extension-ui/, .test-artifacts/extension-vsix/ (failures: .test-artifacts/extension/)");
const passedParts = results.filter((result) => result.ok).length;
console.log(`extension: ${passedParts} passed, ${results.length - passedParts} failed`);
process.exit(results.every((result) => result.ok) ? 0 : 1);
