/**
 * UI smoke test of the harness: opens the real workbench with the sample extension,
 * presses F1, types "Hello", runs "GPIoT Sample: Hello from the GPIoT Sample" and checks
 * that its notification appears. Screenshots land in .test-artifacts/vscode/.
 *   tsx test/vscode/ui-smoke.ts [--extension <dir>] [--workspace <dir>]
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "./codeServer";
import { openWorkbench, runCommandFromPalette } from "./runInCodeServer";

const sampleDir = path.join(REPO_ROOT, "test", "vscode", "sample");
const { values } = parseArgs({
  options: { extension: { type: "string" }, workspace: { type: "string" } },
});
const artifacts = path.join(REPO_ROOT, ".test-artifacts", "vscode");
await mkdir(artifacts, { recursive: true });

const t0 = Date.now();
const ms = () => `${Date.now() - t0} ms`;
const wb = await openWorkbench({
  workspace: path.resolve(values.workspace ?? path.join(sampleDir, "workspace")),
  extensionDevelopmentPath: path.resolve(values.extension ?? sampleDir),
});
let code = 1;
try {
  console.log(`workbench painted after ${ms()}`);
  await runCommandFromPalette(wb.page, "Hello", { match: "GPIoT Sample: Hello from the GPIoT Sample" });
  console.log(`command chosen in the palette after ${ms()}`);
  const toast = wb.page
    .locator(".notifications-toasts .notification-toast")
    .filter({ hasText: "Hello from the GPIoT sample (#1)" });
  await toast.waitFor({ state: "visible", timeout: 15_000 });
  console.log(`notification visible after ${ms()}`);
  await wb.page.waitForTimeout(500); // let the toast finish sliding in before the screenshot
  // The palette lists the command for "Hello" (a second screenshot shows it).
  await wb.page.keyboard.press("F1");
  await wb.page.keyboard.type("Hello");
  await wb.page
    .locator(".quick-input-widget .monaco-list-row")
    .filter({ hasText: "GPIoT Sample: Hello from the GPIoT Sample" })
    .waitFor({ state: "visible", timeout: 10_000 });
  await wb.page.screenshot({ path: path.join(artifacts, "ui-smoke-palette.png") });
  await wb.page.keyboard.press("Escape");
  code = 0;
} catch (e) {
  console.error(`UI smoke test failed: ${(e as Error).message}`);
} finally {
  const shot = path.join(artifacts, `ui-smoke-${code === 0 ? "pass" : "failure"}.png`);
  await wb.page.screenshot({ path: shot }).catch(() => undefined);
  console.log(`screenshot: ${shot}`);
  await wb.dispose();
}
process.exit(code);
