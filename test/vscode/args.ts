/** Command-line parsing shared by run-suite.ts (code-server) and electron.ts (VS Code). */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

export interface SuiteArgs {
  extension: string;
  tests: string;
  workspace: string;
  artifacts: string;
  timeoutMs: number;
  env: Record<string, string>;
  userSettings?: Record<string, unknown>;
  extensionsDir?: string;
  vscodeVersion?: string;
  verbose: boolean;
}

export const USAGE = `usage: tsx test/vscode/<runner>.ts --extension <dir> --tests <compiled index.js> --workspace <dir>
  [--artifacts <dir>]        screenshot and logs on failure (default .test-artifacts/vscode)
  [--timeout <ms>]           default 180000
  [--env NAME=VALUE]...      environment for the extension host (process.env.NAME)
  [--settings <file.json>]   user settings merged over the defaults
  [--extensions-dir <dir>]   pre-installed extensions (code-server only)
  [--vscode-version <v>]     VS Code version to download (electron only; default stable)
  [--verbose]                browser console and code-server output too`;

export function parseSuiteArgs(argv: string[]): SuiteArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      extension: { type: "string" },
      tests: { type: "string" },
      workspace: { type: "string" },
      artifacts: { type: "string" },
      timeout: { type: "string" },
      env: { type: "string", multiple: true },
      settings: { type: "string" },
      "extensions-dir": { type: "string" },
      "vscode-version": { type: "string" },
      verbose: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (!values.extension || !values.tests || !values.workspace) {
    console.error(USAGE);
    process.exit(2);
  }
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new Error(`--env expects NAME=VALUE, got "${kv}"`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const timeoutMs = Number(values.timeout ?? 180_000);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`bad --timeout ${values.timeout}`);
  return {
    extension: path.resolve(values.extension),
    tests: path.resolve(values.tests),
    workspace: path.resolve(values.workspace),
    artifacts: path.resolve(values.artifacts ?? ".test-artifacts/vscode"),
    timeoutMs,
    env,
    userSettings: values.settings ? JSON.parse(readFileSync(values.settings, "utf8")) : undefined,
    extensionsDir: values["extensions-dir"] ? path.resolve(values["extensions-dir"]) : undefined,
    vscodeVersion: values["vscode-version"],
    verbose: values.verbose ?? false,
  };
}
