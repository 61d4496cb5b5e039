/**
 * The same suite in desktop VS Code (Electron) via @vscode/test-electron, for machines
 * that can download VS Code from Microsoft's update server (not this sandbox; there use
 * run-suite.ts). Same flags as run-suite.ts:
 *   tsx test/vscode/electron.ts --extension <dir> --tests <compiled index.js> --workspace <dir>
 * On a Linux machine without a display run it under `xvfb-run -a`.
 * @vscode/test-electron 2.5.x runs on Node >= 16 (3.x needs Node >= 22).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runTests, TestRunFailedError } from "@vscode/test-electron";
import { parseSuiteArgs } from "./args";
import { DEFAULT_USER_SETTINGS, REPO_ROOT } from "./codeServer";

export interface ElectronRunOptions {
  extensionDevelopmentPath: string;
  extensionTestsPath: string;
  workspace: string;
  /** Env for the extension host (test-electron's extensionTestsEnv). */
  env?: Record<string, string | undefined>;
  userSettings?: Record<string, unknown>;
  /** Pre-installed extensions; when absent every other extension is disabled. */
  extensionsDir?: string;
  /** "stable" (default), "insiders" or e.g. "1.100.3". */
  vscodeVersion?: string;
}

/** Resolves with VS Code's exit code (0 when run() resolved). */
export async function runExtensionTestsInElectron(opts: ElectronRunOptions): Promise<number> {
  const tempDir = await mkdtemp(path.join(os.tmpdir(), "gpiot-vscode-electron-"));
  try {
    const userDataDir = path.join(tempDir, "user-data");
    await mkdir(path.join(userDataDir, "User"), { recursive: true });
    await writeFile(
      path.join(userDataDir, "User", "settings.json"),
      JSON.stringify({ ...DEFAULT_USER_SETTINGS, ...opts.userSettings }, null, 2),
    );
    const launchArgs = [
      path.resolve(opts.workspace),
      "--user-data-dir", userDataDir,
      "--extensions-dir", opts.extensionsDir ? path.resolve(opts.extensionsDir) : path.join(tempDir, "extensions"),
      "--disable-workspace-trust",
      "--skip-welcome",
      "--skip-release-notes",
      "--disable-telemetry",
      "--disable-updates",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
    ];
    if (!opts.extensionsDir) launchArgs.push("--disable-extensions");
    return await runTests({
      version: opts.vscodeVersion,
      cachePath: path.join(REPO_ROOT, ".tools", "vscode-test"),
      extensionDevelopmentPath: path.resolve(opts.extensionDevelopmentPath),
      extensionTestsPath: path.resolve(opts.extensionTestsPath),
      extensionTestsEnv: opts.env,
      launchArgs,
    });
  } catch (e) {
    if (e instanceof TestRunFailedError) return e.code ?? 1;
    throw e;
  } finally {
    await rm(tempDir, { recursive: true, force: true, maxRetries: 3 });
  }
}

// CLI entry (only when run directly, not when imported).
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const args = parseSuiteArgs(process.argv.slice(2));
  try {
    const code = await runExtensionTestsInElectron({
      extensionDevelopmentPath: args.extension,
      extensionTestsPath: args.tests,
      workspace: args.workspace,
      env: args.env,
      userSettings: args.userSettings,
      extensionsDir: args.extensionsDir,
      vscodeVersion: args.vscodeVersion,
    });
    process.exit(code);
  } catch (e) {
    console.error(`[vscode-test] could not run VS Code: ${(e as Error).stack ?? e}`);
    process.exit(125);
  }
}
