/**
 * Packaging test: builds the .vsix (the default CPU package for the host platform unless
 * GPIOT_VSIX names one), checks what is in it, installs it into code-server with
 * --install-extension, opens the workbench with no development extension, and runs the installed
 * extension's commands from the palette: "GPIoT: Show Engine Status" (the sidecar starts from the
 * .vsix, node-llama-cpp resolves from its node_modules), "GPIoT: Load Models" (the native binaries
 * load the tiny model), and, on linux-x64, "GPIoT: Download GPU Runtime…" against a loopback npm
 * registry this test starts (the runtime is fetched, checked, unpacked into the global storage and
 * linked beside the installed node-llama-cpp, and the restarted engine finds it).
 *   tsx test/extension/vsix.ts        (exit 0 on success)
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
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

/** A loopback npm registry with one package: a stand-in for node-llama-cpp's Vulkan runtime (the CPU binding under the Vulkan name). */
async function startRegistry(version: string, scratch: string): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const name = "linux-x64-vulkan";
  const root = path.join(scratch, "package");
  mkdirSync(path.join(root, "dist"), { recursive: true });
  mkdirSync(path.join(root, "bins", name), { recursive: true });
  writeFileSync(path.join(root, "package.json"), JSON.stringify({ name: `@node-llama-cpp/${name}`, version, type: "module", main: "dist/index.js", exports: { ".": { import: "./dist/index.js", node: "./dist/index.js", default: "./dist/index.js" } } }));
  writeFileSync(
    path.join(root, "dist", "index.js"),
    `import path from "path";\nimport { fileURLToPath } from "url";\nconst binsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "bins");\nexport function getBinsDir() { return { binsDir, packageVersion: ${JSON.stringify(version)} }; }\n`,
  );
  copyFileSync(path.join(REPO_ROOT, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "llama-addon.node"), path.join(root, "bins", name, "llama-addon.node"));
  execFileSync("tar", ["-czf", path.join(scratch, "runtime.tgz"), "-C", scratch, "package"]);
  const tarball = readFileSync(path.join(scratch, "runtime.tgz"));
  const integrity = `sha512-${createHash("sha512").update(tarball).digest("base64")}`;
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? "");
    const port = (server.address() as AddressInfo).port;
    if (req.url === `/@node-llama-cpp%2F${name}/${version}`)
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name: `@node-llama-cpp/${name}`, version, dist: { tarball: `http://127.0.0.1:${port}/runtime.tgz`, integrity } }));
    if (req.url === "/runtime.tgz") return void res.writeHead(200, { "content-length": tarball.length }).end(tarball);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
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
  const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-vsix-registry-"));
  const runtimeVersion: string = JSON.parse(readFileSync(path.join(REPO_ROOT, "node_modules", "node-llama-cpp", "package.json"), "utf8")).version;
  const withGpuRuntime = hostTarget() === "linux-x64";
  const registry = withGpuRuntime ? await startRegistry(runtimeVersion, scratch) : undefined;
  const workspace = createTestWorkspace("ext-vsix", gpiotTestSettings(registry ? { "gpiot.gpuRuntimeRegistry": registry.url } : {}));
  let workbench: Workbench | undefined;
  try {
    const vsix = process.env.GPIOT_VSIX ?? packageExtension({ targets: [hostTarget()], outDir: path.join(REPO_ROOT, "out", "vsix"), variant: "cpu" })[0];
    step(`packaged ${path.relative(REPO_ROOT, vsix)}`);

    // What is in it: the bundles, node-llama-cpp with this platform's binaries; no dev dependencies, no models.
    const entries = listVsix(vsix);
    const has = (prefix: string) => entries.some((entry) => entry.startsWith(prefix));
    for (const required of [
      "extension/package.json",
      "extension/package.nls.json",
      "extension/l10n/bundle.l10n.json",
      "extension/license",
      "extension/changelog.md",
      "extension/readme.md",
      "extension/dist/extension.cjs",
      "extension/dist/sidecar.mjs",
      "extension/dist/python/sandbox_supervisor.py",
      "extension/dist/python/sandbox_preamble.py",
      "extension/dist/python/main_template.py",
      "extension/dist/python/static_check.py",
      "extension/media/gpiot.svg",
      "extension/media/icon.png",
      "extension/media/walkthrough/model.md",
      "extension/models/manifest.json",
      "extension/node_modules/node-llama-cpp/package.json",
      `extension/node_modules/@node-llama-cpp/${hostTarget() === "linux-x64" ? "linux-x64" : ""}`,
    ])
      assert.ok(entries.some((entry) => entry.toLowerCase().startsWith(required.toLowerCase())), `${required} is in the .vsix`);
    for (const forbidden of ["extension/models/tiny", "extension/node_modules/mocha", "extension/node_modules/typescript", "extension/node_modules/esbuild", "extension/node_modules/@vscode/vsce", "extension/node_modules/vscode-languageclient", "extension/node_modules/playwright-core", "extension/sidecar/", "extension/test/", "extension/node_modules/node-llama-cpp/llama/llama.cpp/", "extension/node_modules/node-llama-cpp/llama/gitRelease.bundle", "extension/node_modules/@node-llama-cpp/linux-x64-cuda", "extension/node_modules/@node-llama-cpp/linux-x64-vulkan"])
      assert.ok(!has(forbidden), `${forbidden} is not in the .vsix`);
    const manifest = JSON.parse(execFileSync("python3", ["-c", "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read('extension/package.json').decode())", vsix], { encoding: "utf8" }));
    assert.equal(manifest.devDependencies, undefined);
    assert.deepEqual(manifest.extensionKind, ["workspace"]);
    assert.equal(manifest.l10n, "./l10n");
    assert.ok(readFileSync(vsix).length < 30 * 1024 * 1024, `the .vsix is small: ${(readFileSync(vsix).length / 1024 / 1024).toFixed(1)} MB`);
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
    await waitFor("the status bar to show the profile on the CPU", async () => /GPIoT: tiny · CPU/.test(await statusBar.innerText()), 60_000);
    step("GPIoT: Load Models loaded the tiny model with the packaged native binaries");
    await runCommandFromPalette(page, "GPIoT: Show Log", { timeoutMs: 30_000 });
    const panel = page.locator("#workbench\\.parts\\.panel");
    await waitFor("the GPIoT log in the output panel", async () => /GPIoT activated in/.test((await panel.innerText().catch(() => "")).replace(/\u00a0/g, " ")), 20_000);
    const shot = path.join(VSIX_ARTIFACTS, "installed.png");
    await page.screenshot({ path: shot });
    step(`screenshot ${path.relative(REPO_ROOT, shot)}`);

    if (registry) {
      // The GPU runtime on first use: fetched from the registry, checked, unpacked into the global storage, linked, found by the engine.
      await runCommandFromPalette(page, "GPIoT: Download GPU Runtime", { timeoutMs: 30_000 });
      const quickInput = page.locator(".quick-input-widget");
      const vulkan = quickInput.locator(".monaco-list-row").filter({ hasText: "Vulkan" }).first();
      await vulkan.waitFor({ state: "visible", timeout: 30_000 });
      await vulkan.click();
      const download = page.locator(".monaco-dialog-box .monaco-button").filter({ hasText: /^Download$/ });
      await download.waitFor({ state: "visible", timeout: 30_000 });
      await download.click();
      const linked = path.join(extensionsDir, installed, "node_modules", "@node-llama-cpp", "linux-x64-vulkan");
      await waitFor("the runtime linked beside node-llama-cpp", () => existsSync(path.join(linked, "package.json")), 60_000);
      assert.ok(lstatSync(linked).isSymbolicLink());
      assert.match(realpathSync(linked), new RegExp(`globalStorage/gpiot[.]gpiot/gpu-runtime/${runtimeVersion.replace(/\./g, "\\.")}/linux-x64-vulkan$`));
      assert.deepEqual(registry.requests, [`/@node-llama-cpp%2Flinux-x64-vulkan/${runtimeVersion}`, "/runtime.tgz"]);
      await waitFor("the engine to find the runtime", async () => /Vulkan runtime is installed/.test(await statusBar.innerText()), 60_000);
      await page.locator(".notifications-toasts .notification-toast .codicon-notifications-clear, .notifications-toasts .notification-toast .codicon-close").first().click().catch(() => undefined);
      await runCommandFromPalette(page, "GPIoT: Show Engine Status", { timeoutMs: 30_000 });
      await toasts.filter({ hasText: /GPU runtimes installed: vulkan/ }).waitFor({ state: "visible", timeout: 30_000 });
      const gpuShot = path.join(VSIX_ARTIFACTS, "gpu-runtime.png");
      await page.screenshot({ path: gpuShot });
      step(`GPU runtime fetched, verified, linked and found by the engine; screenshot ${path.relative(REPO_ROOT, gpuShot)}`);
    }
    console.log(`[vsix] PASS in ${((Date.now() - started) / 1000).toFixed(1)} s (${readFileSync(vsix).length} bytes)`);
    return 0;
  } catch (error) {
    console.error(`[vsix] FAIL: ${(error as Error).stack ?? error}`);
    if (workbench) await workbench.page.screenshot({ path: path.join(VSIX_ARTIFACTS, "failure.png") }).catch(() => undefined);
    return 1;
  } finally {
    await workbench?.dispose();
    await registry?.close();
    workspace.dispose();
    rmSync(extensionsDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  process.exit(await runVsixTest());
}
