/**
 * Runs the mocha suite (dist/test/extension/suite/index.cjs) in code-server against a fresh
 * workspace. `tsx test/extension/runSuite.ts [--grep PATTERN]`; exit code = the suite's.
 */
import path from "node:path";
import { MochaFailureDigest } from "../vscode/mochaFailures";
import { runExtensionTestsInCodeServer } from "../vscode/runInCodeServer";
import { ARTIFACTS_DIR, createTestWorkspace, gpiotTestSettings, REPO_ROOT, requireCodeServer } from "./workspace";

export interface SuiteResult {
  code: number;
  /** Mocha's failing section (titles, errors, short stacks), "" when none failed. */
  failures: string;
}

export async function runSuite(options: { grep?: string; timeoutMs?: number; restricted?: boolean } = {}): Promise<SuiteResult> {
  requireCodeServer();
  // In Restricted Mode VS Code must ignore the workspace's values of the settings that name something to load or run.
  const workspace = options.restricted
    ? createTestWorkspace("ext-restricted", gpiotTestSettings({ "gpiot.modelPath": "/nonexistent/untrusted.gguf", "gpiot.pythonPath": "/nonexistent/python", "gpiot.modelsDir": "/nonexistent/models" }))
    : createTestWorkspace("ext-suite");
  const started = Date.now();
  const digest = new MochaFailureDigest();
  try {
    const code = await runExtensionTestsInCodeServer({
      extensionDevelopmentPath: REPO_ROOT,
      extensionTestsPath: path.join(REPO_ROOT, "dist", "test", "extension", "suite", "index.cjs"),
      workspace: workspace.dir,
      artifactsDir: path.join(ARTIFACTS_DIR, "extension"),
      timeoutMs: options.timeoutMs ?? 600_000,
      workspaceTrust: options.restricted,
      observeLog: (_level, message) => digest.add(message),
      env: { GPIOT_TEST_GREP: options.grep, GPIOT_REPO_ROOT: REPO_ROOT, GPIOT_TEST_SUITE: options.restricted ? "restricted" : undefined },
    });
    console.log(`[extension suite] exit ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { code, failures: digest.text };
  } finally {
    if (!process.env.GPIOT_KEEP_WORKSPACE) workspace.dispose();
    else console.log(`[extension suite] workspace kept: ${workspace.dir}`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const grepAt = process.argv.indexOf("--grep");
  const result = await runSuite({ grep: grepAt > 0 ? process.argv[grepAt + 1] : undefined, restricted: process.argv.includes("--restricted") });
  process.exit(result.code);
}
