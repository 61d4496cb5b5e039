/**
 * UI test: drives the real workbench (code-server + Chromium) like a user. F1, "GPIoT: Synthesize
 * Program", type a requirement and constraints, Enter; then checks the GPIoT tree and the files
 * on disk; then opens a Python file, starts the inline conversation from the CodeLens on its
 * requirement comment, replies to refine it and applies Insert Below through the diff preview.
 * Screenshots go to .test-artifacts/extension-ui/.
 *   tsx test/extension/ui.ts      (exit 0 on success)
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Page } from "playwright-core";
import { openWorkbench, runCommandFromPalette, type Workbench } from "../vscode/runInCodeServer";
import { ARTIFACTS_DIR, createTestWorkspace, REPO_ROOT, requireCodeServer } from "./workspace";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";
const CONSTRAINTS = "Raspberry Pi 4, <= 200 MB RAM";
export const UI_ARTIFACTS = path.join(ARTIFACTS_DIR, "extension-ui");

async function waitFor<T>(what: string, check: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The rows of the GPIoT view as the user sees them (label and description). */
async function treeRows(page: Page): Promise<string[]> {
  return page.locator("#workbench\\.parts\\.sidebar .monaco-list-row").evaluateAll((rows) =>
    rows.map((row) => [row.querySelector(".label-name")?.textContent, row.querySelector(".label-description")?.textContent].filter(Boolean).join(" ").replace(/\s+/g, " ").trim()),
  );
}

export async function runUiTest(): Promise<number> {
  requireCodeServer();
  mkdirSync(UI_ARTIFACTS, { recursive: true });
  const workspace = createTestWorkspace("ext-ui");
  writeFileSync(
    path.join(workspace.dir, "sensor.py"),
    ["import time", "", "# GPIoT: Read a temperature sensor every second and warn when it overheats", "# Constraints: Raspberry Pi Zero, <= 64 MB RAM", "", "def main():", "    pass", ""].join("\n"),
  );
  let workbench: Workbench | undefined;
  const started = Date.now();
  const step = (text: string) => console.log(`[ui] +${((Date.now() - started) / 1000).toFixed(1)} s ${text}`);
  try {
    workbench = await openWorkbench({ workspace: workspace.dir, extensionDevelopmentPath: REPO_ROOT });
    const { page } = workbench;
    step("workbench painted");
    await runCommandFromPalette(page, "GPIoT: Synthesize Program", { timeoutMs: 90_000 });
    step("command chosen from the palette");
    const quickInput = page.locator(".quick-input-widget");
    const input = quickInput.locator(".quick-input-box input");
    await quickInput.filter({ hasText: "Synthesize Program (1/2)" }).waitFor({ state: "visible", timeout: 30_000 });
    await input.pressSequentially(REQUIREMENT, { delay: 5 });
    await page.screenshot({ path: path.join(UI_ARTIFACTS, "1-requirement.png") });
    await page.keyboard.press("Enter");
    await quickInput.filter({ hasText: "Synthesize Program (2/2)" }).waitFor({ state: "visible", timeout: 10_000 });
    await input.pressSequentially(CONSTRAINTS, { delay: 5 });
    await page.keyboard.press("Enter");
    step("requirement and constraints typed");

    // Sub-tasks appear in the tree while the job runs (screenshot as soon as one shows).
    let duringShot = false;
    const watchTree = (async () => {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !duringShot) {
        const current = await treeRows(page).catch(() => [] as string[]);
        if (current.some((row) => /^1\. /.test(row)) && !current.some((row) => /^Files/.test(row))) {
          await page.screenshot({ path: path.join(UI_ARTIFACTS, "2-generating.png") });
          duringShot = true;
          step(`while generating: ${current.join(" | ")}`);
        }
        await page.waitForTimeout(50);
      }
    })();
    // The files land in programs/<name>.
    const programs = path.join(workspace.dir, "programs");
    const outDir = await waitFor(
      "the program's files",
      () => {
        if (!existsSync(programs)) return undefined;
        // Not the hidden staging folder the sidecar writes into before renaming it into place.
        const folder = readdirSync(programs).filter((name) => !name.startsWith(".")).map((name) => path.join(programs, name)).find((dir) => existsSync(path.join(dir, "gpiot.json")));
        return folder;
      },
      90_000,
    );
    step(`files written to ${path.relative(workspace.dir, outDir)}`);
    duringShot = true;
    await watchTree;
    const files = readdirSync(outDir).sort();
    for (const expected of ["README.md", "gpiot.json", "main.py", "requirements.txt"]) assert.ok(files.includes(expected), `${expected} written (${files.join(", ")})`);
    assert.ok(files.some((file) => /^task_01.*\.py$/.test(file)));

    const rows = await waitFor(
      "the program and its sub-tasks in the GPIoT view",
      async () => {
        const current = await treeRows(page);
        return current.some((row) => row.startsWith("Detect heartbeats")) && current.some((row) => /^1\. /.test(row)) && current.some((row) => /files/.test(row)) ? current : undefined;
      },
      30_000,
    );
    step(`tree: ${rows.join(" | ")}`);
    const programRow = rows.find((row) => row.startsWith("Detect heartbeats"))!;
    assert.match(programRow, /\d+ files/, "the program row says how many files were written");
    // Expand the first sub-task to show its spec and code state.
    await page.locator("#workbench\\.parts\\.sidebar .monaco-list-row").filter({ hasText: /^1\. / }).first().click();
    await page.keyboard.press("ArrowRight");
    const expanded = await waitFor("the first sub-task's details", async () => {
      const current = await treeRows(page);
      return current.some((row) => row.startsWith("Target")) && current.some((row) => row.startsWith("Code")) ? current : undefined;
    }, 10_000);
    assert.ok(expanded.some((row) => /^Code (done|syntax error)/.test(row)), `code state shown: ${expanded.join(" | ")}`);
    // main.py is open in an editor tab.
    await page.locator(".tabs-container .tab").filter({ hasText: "main.py" }).first().waitFor({ state: "visible", timeout: 10_000 });
    // The status bar shows the model.
    const status = await page.locator("#workbench\\.parts\\.statusbar").innerText();
    assert.match(status, /GPIoT: ready \(CPU\)/, `status bar: ${status.replace(/\s+/g, " ")}`);
    await page.waitForTimeout(500);
    // The stream editor shows the final code (not the last streamed state).
    await page.locator(".tabs-container .tab").filter({ hasText: "code.py" }).first().click();
    await waitFor("the code stream's final text", async () => {
      const text = (await page.locator(".editor-group-container").last().locator(".view-lines").innerText().catch(() => "")).replace(/\u00a0/g, " ");
      return /Sub-task 1: .*\((done|syntax error)/.test(text) && !/being written|queued/.test(text);
    }, 10_000);
    const shot = path.join(UI_ARTIFACTS, "3-synthesized.png");
    await page.screenshot({ path: shot });
    step(`screenshot ${path.relative(REPO_ROOT, shot)}`);

    // Inline chat on a requirement comment: CodeLens, streamed answer, a refining reply, Insert Below.
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+P");
    await quickInput.locator(".quick-input-box input").waitFor({ state: "visible", timeout: 10_000 });
    await page.keyboard.type("sensor.py");
    await quickInput.locator(".monaco-list-row").filter({ hasText: "sensor.py" }).first().waitFor({ state: "visible", timeout: 10_000 });
    await page.keyboard.press("Enter");
    const lens = page.locator(".codelens-decoration a").filter({ hasText: "Synthesize from comment" }).first();
    await lens.waitFor({ state: "visible", timeout: 30_000 });
    await lens.click();
    const widget = page.locator(".review-widget").first();
    await widget.filter({ hasText: "Done" }).waitFor({ state: "visible", timeout: 60_000 });
    step("comment conversation answered");
    const form = widget.locator(".comment-form").first();
    await form.scrollIntoViewIfNeeded();
    await form.click();
    await page.keyboard.type("Smooth the readings with a moving average");
    await page.keyboard.press("Control+Enter"); // submits the reply with the thread's first action, Refine
    await waitFor("the refined answer", async () => {
      const text = await widget.innerText();
      return (text.match(/Done/g) ?? []).length >= 2 && text.includes("Smooth the readings with a moving average");
    }, 60_000);
    step("refinement answered");
    // The thread's title bar is scrolled out of the editor's view by now: dispatch the click.
    await widget.locator(".head .review-actions a[aria-label='Insert Below']").first().dispatchEvent("click");
    const apply = page.locator(".monaco-dialog-box .monaco-button").filter({ hasText: "Apply" });
    await apply.waitFor({ state: "visible", timeout: 20_000 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(UI_ARTIFACTS, "4-insert-diff.png") });
    assert.ok((await page.locator(".tabs-container .tab").allInnerTexts()).some((tab) => /sensor\.py ↔ sensor\.py|sensor\.py/.test(tab)), "the diff editor opened");
    await apply.click();
    // The edit leaves sensor.py modified in its editor (undoable); save it and read it from disk.
    await page.locator(".tabs-container .tab.active").filter({ hasText: "sensor.py" }).first().waitFor({ state: "visible", timeout: 15_000 });
    await page.waitForTimeout(300);
    await page.keyboard.press("Control+S");
    const sensor = await waitFor("the inserted code saved in sensor.py", () => {
      const text = readFileSync(path.join(workspace.dir, "sensor.py"), "utf8");
      return text.includes("# Generated by GPIoT from the comment above and your refinements.") ? text : undefined;
    }, 15_000);
    const lines = sensor.split("\n");
    assert.equal(lines[3], "# Constraints: Raspberry Pi Zero, <= 64 MB RAM");
    assert.equal(lines[4], "# Generated by GPIoT from the comment above and your refinements.", "inserted right below the comment");
    await widget.locator(".head .review-actions a[aria-label='Collapse']").first().dispatchEvent("click");
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(UI_ARTIFACTS, "5-inserted.png") });
    step("Insert Below applied after the diff preview");
    console.log(`[ui] PASS in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (error) {
    console.error(`[ui] FAIL: ${(error as Error).stack ?? error}`);
    if (workbench) await workbench.page.screenshot({ path: path.join(UI_ARTIFACTS, "failure.png") }).catch(() => undefined);
    return 1;
  } finally {
    await workbench?.dispose();
    workspace.dispose();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  process.exit(await runUiTest());
}
