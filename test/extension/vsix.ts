/**
 * Packaging test: builds the .vsix (`--cpu-only` for the host platform unless GPIOT_VSIX names
 * one), checks what is in it, installs it into code-server with --install-extension, opens the
 * workbench with no development extension, and runs the installed extension's commands from the
 * palette: "GPIoT: Show Engine Status" (the sidecar starts from the .vsix, node-llama-cpp resolves
 * from its node_modules) and "GPIoT: Load Models" (the native binaries load the tiny model).
 *   tsx test/extension/vsix.ts        (exit 0 on success)
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { installVsixIntoCodeServer } from "../vscode/codeServer";
import { openWorkbench, runCommandFromPalette, type Workbench } from "../vscode/runInCodeServer";
import { hostTarget, packageExtension } from "../../extension/scripts/package";
import { SidecarProcess } from "../../sidecar/src/client/sidecarProcess";
import { ARTIFACTS_DIR, createTestWorkspace, gpiotTestSettings, REPO_ROOT, requireCodeServer } from "./workspace";

const VSIX_ARTIFACTS = path.join(ARTIFACTS_DIR, "extension-vsix");

async function waitFor<T>(what: string, check: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function listVsix(vsix: string): string[] {
  const script = "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))";
  return execFileSync("python3", ["-c", script, vsix], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }).split("\n").filter(Boolean);
}

export async function runVsixTest(): Promise<number> {
  requireCodeServer();
  mkdirSync(VSIX_ARTIFACTS, { recursive: true });
  const started = Date.now();
  const step = (text: string) => console.log(`[vsix] +${((Date.now() - started) / 1000).toFixed(1)} s ${text}`);
  const extensionsDir = mkdtempSync(path.join(os.tmpdir(), "gpiot-vsix-extensions-"));
  const workspace = createTestWorkspace("ext-vsix", gpiotTestSettings());
  let workbench: Workbench | undefined;
  try {
    const vsix = process.env.GPIOT_VSIX ?? packageExtension({ targets: [hostTarget()], outDir: path.join(REPO_ROOT, "out", "vsix"), variant: "cpu" })[0];
    step(`packaged ${path.relative(REPO_ROOT, vsix)}`);

    // What is in it: the bundles, node-llama-cpp with this platform's binaries; no dev dependencies, no models.
    const entries = listVsix(vsix);
    const has = (prefix: string) => entries.some((entry) => entry.startsWith(prefix));
    for (const required of ["extension/package.json", "extension/dist/extension.cjs", "extension/dist/sidecar.mjs", "extension/dist/python/sandbox_supervisor.py", "extension/dist/python/sandbox_preamble.py", "extension/dist/python/main_template.py", "extension/dist/python/static_check.py", "extension/media/gpiot.svg", "extension/media/icon.png", "extension/models/manifest.json", "extension/node_modules/node-llama-cpp/package.json", `extension/node_modules/@node-llama-cpp/${hostTarget() === "linux-x64" ? "linux-x64" : ""}`])
      assert.ok(has(required), `${required} is in the .vsix`);
    for (const forbidden of ["extension/models/tiny", "extension/node_modules/mocha", "extension/node_modules/typescript", "extension/node_modules/esbuild", "extension/node_modules/@vscode/vsce", "extension/node_modules/vscode-languageclient", "extension/node_modules/playwright-core", "extension/sidecar/", "extension/test/", "extension/node_modules/node-llama-cpp/llama/llama.cpp/", "extension/node_modules/node-llama-cpp/llama/gitRelease.bundle"])
      assert.ok(!has(forbidden), `${forbidden} is not in the .vsix`);
    const manifest = JSON.parse(execFileSync("python3", ["-c", "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read('extension/package.json').decode())", vsix], { encoding: "utf8" }));
    assert.equal(manifest.devDependencies, undefined);
    assert.deepEqual(Object.keys(manifest.dependencies).filter((name) => !name.startsWith("@node-llama-cpp/")), ["node-llama-cpp"]);
    step(`${entries.length} entries checked`);

    await installVsixIntoCodeServer(vsix, extensionsDir);
    const installed = readdirSync(extensionsDir).find((name) => name.startsWith("gpiot.gpiot-"));
    assert.ok(installed, `installed into ${extensionsDir}: ${readdirSync(extensionsDir).join(", ")}`);
    assert.ok(existsSync(path.join(extensionsDir, installed, "node_modules", "node-llama-cpp", "package.json")));
    step(`installed with --install-extension as ${installed}`);

    // The installed sidecar finds the Python it ships (dist/python/): the sandbox probe runs it.
    const installedSidecar = await SidecarProcess.start({ sidecarPath: path.join(extensionsDir, installed, "dist", "sidecar.mjs") });
    try {
      const probe = await installedSidecar.client.request("sandboxProbe");
      assert.ok(probe.python, probe.summary);
      assert.ok(probe.outcome === "isolated" ? probe.probed.length === 4 : /isolate/i.test(probe.summary), probe.summary);
    } finally {
      await installedSidecar.dispose();
    }
    step("the installed sidecar ran its shipped Python (sandbox probe)");

    workbench = await openWorkbench({ workspace: workspace.dir, extensionsDir });
    const { page } = workbench;
    step("workbench painted (no development extension)");
    await runCommandFromPalette(page, "GPIoT: Show Engine Status", { timeoutMs: 90_000 });
    const toasts = page.locator(".notifications-toasts");
    await toasts.filter({ hasText: /GPIoT engine \d+\.\d+\.\d+ \(protocol 1/ }).waitFor({ state: "visible", timeout: 30_000 });
    step("GPIoT: Show Engine Status answered from the installed sidecar");
    await runCommandFromPalette(page, "GPIoT: Load Models", { timeoutMs: 30_000 });
    const statusBar = page.locator("#workbench\\.parts\\.statusbar");
    await waitFor("the status bar to say ready (CPU)", async () => /GPIoT: ready \(CPU\)/.test(await statusBar.innerText()), 60_000);
    step("GPIoT: Load Models loaded the tiny model with the packaged native binaries");
    await runCommandFromPalette(page, "GPIoT: Show Log", { timeoutMs: 30_000 });
    const panel = page.locator("#workbench\\.parts\\.panel");
    await waitFor("the GPIoT log in the output panel", async () => /GPIoT activated in/.test((await panel.innerText().catch(() => "")).replace(/\u00a0/g, " ")), 20_000);
    const shot = path.join(VSIX_ARTIFACTS, "installed.png");
    await page.screenshot({ path: shot });
    step(`screenshot ${path.relative(REPO_ROOT, shot)}`);
    console.log(`[vsix] PASS in ${((Date.now() - started) / 1000).toFixed(1)} s (${readFileSync(vsix).length} bytes)`);
    return 0;
  } catch (error) {
    console.error(`[vsix] FAIL: ${(error as Error).stack ?? error}`);
    if (workbench) await workbench.page.screenshot({ path: path.join(VSIX_ARTIFACTS, "failure.png") }).catch(() => undefined);
    return 1;
  } finally {
    await workbench?.dispose();
    workspace.dispose();
    rmSync(extensionsDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  process.exit(await runVsixTest());
}
