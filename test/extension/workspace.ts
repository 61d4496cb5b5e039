/**
 * A fresh workspace for an extension test run: .vscode/settings.json points GPIoT at the tiny
 * test models (profile "tiny", threads 1, CPU) and at a "programs" output folder.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const ARTIFACTS_DIR = path.join(REPO_ROOT, ".test-artifacts");
export const CODE_SERVER_ENTRY = path.join(REPO_ROOT, ".tools", "code-server", "node_modules", "code-server", "out", "node", "entry.js");

export interface TestWorkspace {
  dir: string;
  dispose(): void;
}

export function gpiotTestSettings(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    "gpiot.manifestPath": path.join(REPO_ROOT, "models", "manifest.json"),
    "gpiot.profile": "tiny",
    "gpiot.threads": 1,
    "gpiot.gpu": "cpu",
    "gpiot.outputFolder": "programs",
    ...extra,
  };
}

export function createTestWorkspace(name: string, settings: Record<string, unknown> = gpiotTestSettings()): TestWorkspace {
  const dir = mkdtempSync(path.join(os.tmpdir(), `gpiot-${name}-`));
  mkdirSync(path.join(dir, ".vscode"));
  writeFileSync(path.join(dir, ".vscode", "settings.json"), JSON.stringify(settings, null, 2));
  writeFileSync(path.join(dir, "README.md"), "GPIoT extension test workspace.\n");
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true, maxRetries: 3 }) };
}

/** Exits with a clear message when code-server is not installed. */
export function requireCodeServer(): void {
  if (process.env.CODE_SERVER_ENTRY) return;
  if (!existsSync(CODE_SERVER_ENTRY)) {
    console.error(
      [
        "",
        "  The extension tests run in a real VS Code served by code-server 4.100.3, which is not installed:",
        `    ${CODE_SERVER_ENTRY} is missing.`,
        "  Install it (once, as root; needs the npm registry and Debian's apt) with:",
        "    scripts/install-code-server.sh",
        "  or point CODE_SERVER_ENTRY at another code-server's out/node/entry.js.",
        "  Where VS Code can be downloaded, the same suite also runs in desktop VS Code:",
        "    tsx test/vscode/electron.ts --extension . --tests dist/test/extension/suite/index.cjs --workspace <dir>",
        "",
      ].join("\n"),
    );
    process.exit(2);
  }
}
