/**
 * The UI journey: drives the real workbench (code-server + Chromium) like a new user, with a
 * screenshot at each step (.test-artifacts/extension-ui/):
 *
 *   first run with no model → Download a Model (from a loopback HTTP server this test starts) →
 *   synthesize → rename a sub-task → regenerate stale → assemble (read the files as a diff,
 *   Accept) → synthesize from a comment → Insert Below: read the diff → Accept → Undo.
 *
 *   tsx test/extension/ui.ts      (exit 0 on success)
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Locator, Page } from "playwright-core";
import { openWorkbench, runCommandFromPalette, type Workbench } from "../vscode/runInCodeServer";
import { ARTIFACTS_DIR, createTestWorkspace, gpiotTestSettings, REPO_ROOT, requireCodeServer } from "./workspace";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";
const CONSTRAINTS = "Raspberry Pi 4, <= 200 MB RAM";
const RENAMED = "Band-pass filter the ECG";
const PROFILE = "tiny-download";
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

function treeRow(page: Page, text: RegExp | string): Locator {
  return page.locator("#workbench\\.parts\\.sidebar .monaco-list-row").filter({ hasText: text }).first();
}

/** Serves the tiny test models like a model hub would, a little slowly so that the progress shows. */
async function startModelServer(): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const tiny = path.join(REPO_ROOT, "models", "tiny");
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const name = path.basename(req.url ?? "");
    const file = path.join(tiny, name);
    requests.push(req.url ?? "");
    if (!/^tiny-(base|td\.lora|cg\.lora)\.gguf$/.test(name) || !existsSync(file)) return void res.writeHead(404).end();
    const body = readFileSync(file);
    res.writeHead(200, { "content-length": body.length, "accept-ranges": "bytes" });
    let at = 0;
    const pump = () => {
      if (res.destroyed) return;
      if (at >= body.length) return void res.end();
      const piece = body.subarray(at, at + 32 * 1024);
      at += piece.length;
      res.write(piece);
      setTimeout(pump, 60);
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function runUiTest(): Promise<number> {
  requireCodeServer();
  rmSync(UI_ARTIFACTS, { recursive: true, force: true });
  mkdirSync(UI_ARTIFACTS, { recursive: true });
  const models = await startModelServer();
  const settings = gpiotTestSettings({ "gpiot.profile": PROFILE });
  const workspace = createTestWorkspace("ext-ui", settings);
  const manifestPath = path.join(workspace.dir, ".vscode", "models.json");
  writeFileSync(
    manifestPath,
    JSON.stringify({
      version: 1,
      defaultProfile: PROFILE,
      profiles: {
        [PROFILE]: {
          description: "The tiny random-weight test model, served by the test",
          base: { file: "tiny-download/tiny-base.gguf", source: `${models.url}/tiny-base.gguf` },
          roles: { td: { adapters: [{ file: "tiny-download/tiny-td.lora.gguf", source: `${models.url}/tiny-td.lora.gguf` }] }, cg: { adapters: [{ file: "tiny-download/tiny-cg.lora.gguf", source: `${models.url}/tiny-cg.lora.gguf` }] } },
          contextSize: 2048,
          threads: 1,
        },
      },
    }),
  );
  writeFileSync(path.join(workspace.dir, ".vscode", "settings.json"), JSON.stringify({ ...settings, "gpiot.manifestPath": manifestPath }, null, 2));
  // A requirement written as an ordinary comment (no "GPIoT:" marker): the CodeLens finds it anyway.
  writeFileSync(
    path.join(workspace.dir, "sensor.py"),
    ["import time", "", "# Read a temperature sensor every second and warn when it overheats", "# Constraints: Raspberry Pi Zero, <= 64 MB RAM", "", "def main():", "    pass", ""].join("\n"),
  );
  let workbench: Workbench | undefined;
  const started = Date.now();
  let shots = 0;
  const step = (text: string) => console.log(`[ui] +${((Date.now() - started) / 1000).toFixed(1)} s ${text}`);
  const shot = async (name: string) => {
    shots += 1;
    const file = path.join(UI_ARTIFACTS, `${String(shots).padStart(2, "0")}-${name}.png`);
    await workbench!.page.screenshot({ path: file });
    step(`screenshot ${path.relative(REPO_ROOT, file)}`);
  };
  try {
    workbench = await openWorkbench({ workspace: workspace.dir, extensionDevelopmentPath: REPO_ROOT });
    const { page } = workbench;
    const quickInput = page.locator(".quick-input-widget");
    const input = quickInput.locator(".quick-input-box input");
    const toasts = page.locator(".notifications-toasts");
    const statusBar = page.locator("#workbench\\.parts\\.statusbar");
    step("workbench painted");

    // 1. First run: the GPIoT view says there is no model and offers to download one.
    await waitFor(
      "the GPIoT icon in the activity bar",
      async () => {
        const icon = page.locator(".activitybar .action-item a.action-label[aria-label^='GPIoT']").first();
        if (!(await icon.isVisible().catch(() => false))) return false;
        await icon.click();
        return true;
      },
      90_000,
    );
    const downloadButton = page.locator("#workbench\\.parts\\.sidebar .welcome-view-content .monaco-button").filter({ hasText: "Download a Model" }).first();
    await downloadButton.waitFor({ state: "visible", timeout: 60_000 });
    await waitFor("the status bar to say no model", async () => /GPIoT: no model/.test(await statusBar.innerText()), 30_000);
    await shot("first-run-no-model");

    // 2. Download a profile: pick it, confirm, follow the progress.
    await downloadButton.click();
    await quickInput.filter({ hasText: "Download Model" }).waitFor({ state: "visible", timeout: 30_000 });
    const profileRow = quickInput.locator(".monaco-list-row").filter({ hasText: PROFILE }).first();
    await profileRow.waitFor({ state: "visible", timeout: 30_000 });
    assert.match(await profileRow.innerText(), /active/, "the picker marks the active profile");
    await shot("pick-a-profile");
    await profileRow.click();
    const confirm = page.locator(".monaco-dialog-box .monaco-button").filter({ hasText: /^Download$/ });
    await confirm.waitFor({ state: "visible", timeout: 30_000 });
    assert.match(await page.locator(".monaco-dialog-box").innerText(), /tiny-download/);
    await shot("confirm-the-download");
    await confirm.click();
    await toasts.filter({ hasText: /downloading tiny-download/ }).waitFor({ state: "visible", timeout: 30_000 });
    await waitFor("bytes in the progress notification", async () => /\d+ KB( of [\d.]+ KB)?/.test(await toasts.innerText().catch(() => "")), 30_000);
    await shot("downloading");
    await page.locator("#workbench\\.parts\\.sidebar .welcome-view-content .monaco-button").filter({ hasText: "Synthesize Program" }).first().waitFor({ state: "visible", timeout: 90_000 });
    const storage = path.join(workbench.server.userDataDir, "User", "globalStorage", "gpiot.gpiot", "models", "tiny-download");
    for (const name of ["tiny-base.gguf", "tiny-td.lora.gguf", "tiny-cg.lora.gguf"]) assert.ok(existsSync(path.join(storage, name)), `${name} downloaded into the extension's global storage`);
    assert.ok(models.requests.length >= 3);
    await waitFor("the status bar to show the profile", async () => /GPIoT: tiny-download/.test(await statusBar.innerText()), 30_000);
    await shot("model-ready");

    // 3. Synthesize a program from the palette.
    await runCommandFromPalette(page, "GPIoT: Synthesize Program", { timeoutMs: 60_000 });
    await quickInput.filter({ hasText: "Synthesize Program (1/2)" }).waitFor({ state: "visible", timeout: 30_000 });
    await input.pressSequentially(REQUIREMENT, { delay: 5 });
    await page.keyboard.press("Enter");
    await quickInput.filter({ hasText: "Synthesize Program (2/2)" }).waitFor({ state: "visible", timeout: 10_000 });
    await input.pressSequentially(CONSTRAINTS, { delay: 5 });
    await page.keyboard.press("Enter");
    const programs = path.join(workspace.dir, "programs");
    const outDir = await waitFor(
      "the program's files",
      () => (existsSync(programs) ? readdirSync(programs).filter((name) => !name.startsWith(".")).map((name) => path.join(programs, name)).find((dir) => existsSync(path.join(dir, "gpiot.json"))) : undefined),
      120_000,
    );
    await waitFor("the program and its sub-tasks in the GPIoT view", async () => {
      const rows = await treeRows(page);
      return rows.some((row) => row.startsWith("Detect heartbeats") && /\d+ files/.test(row)) && rows.some((row) => /^1\. /.test(row));
    }, 30_000);
    await page.locator(".tabs-container .tab").filter({ hasText: "main.py" }).first().waitFor({ state: "visible", timeout: 20_000 });
    step(`files written to ${path.relative(workspace.dir, outDir)}`);
    await shot("synthesized");

    // 4. Rename a sub-task with its ✎ button: its spec and code are kept, marked out of date.
    const firstSubTask = treeRow(page, /^1\. /);
    await firstSubTask.hover();
    await firstSubTask.locator(".action-label[aria-label^='Edit Sub-Task']").first().click();
    await quickInput.filter({ hasText: "Edit sub-task 1" }).waitFor({ state: "visible", timeout: 20_000 });
    await quickInput.locator(".monaco-list-row").filter({ hasText: /^Name/ }).first().click();
    await quickInput.filter({ hasText: "Name" }).locator(".quick-input-box input").waitFor({ state: "visible", timeout: 10_000 });
    await page.keyboard.press("Control+A");
    await input.pressSequentially(RENAMED, { delay: 5 });
    await page.keyboard.press("Enter");
    await waitFor("the renamed sub-task, out of date", async () => (await treeRows(page)).some((row) => row === `1. ${RENAMED} edited: spec and code out of date`), 30_000);
    const notReady = (await treeRows(page)).find((row) => row.startsWith("Not ready to assemble"));
    assert.ok(notReady && !/p\d+-st\d+/.test(notReady), `the tree says what is missing, in words: ${notReady}`);
    await shot("renamed-sub-task-out-of-date");

    // 5. Regenerate the stale sub-tasks (the "Not ready" row runs it), then Assemble is offered.
    await treeRow(page, /^Not ready to assemble/).click();
    const assembleToast = toasts.locator(".notification-toast").filter({ hasText: "The stale sub-tasks were regenerated" });
    await assembleToast.waitFor({ state: "visible", timeout: 90_000 });
    await waitFor("the sub-task up to date", async () => (await treeRows(page)).some((row) => row.startsWith(`1. ${RENAMED}`) && !/out of date/.test(row)), 30_000);
    await shot("regenerated-stale");

    // 6. Assemble: the files open as a diff against the folder; Accept writes them.
    const readmeBefore = readFileSync(path.join(outDir, "README.md"), "utf8");
    await assembleToast.locator(".monaco-button").filter({ hasText: /^Assemble$/ }).click();
    await page.locator(".tabs-container .tab").filter({ hasText: "GPIoT: update" }).first().waitFor({ state: "visible", timeout: 30_000 });
    const accept = page.locator(".editor-actions .action-label[aria-label='Accept']").first();
    await accept.waitFor({ state: "visible", timeout: 20_000 });
    await page.waitForTimeout(500);
    assert.equal(readFileSync(path.join(outDir, "README.md"), "utf8"), readmeBefore, "nothing is written while the diff is open");
    await shot("assemble-diff");
    await accept.click();
    await waitFor("the files rewritten", () => readFileSync(path.join(outDir, "README.md"), "utf8").includes(RENAMED), 60_000);
    await waitFor("the program up to date", async () => (await treeRows(page)).some((row) => row.startsWith("Detect heartbeats") && /\d+ files$/.test(row)), 30_000);
    await shot("assembled");

    // 7. Synthesize from a comment: the CodeLens sits on a comment that reads like a requirement.
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+P");
    await input.waitFor({ state: "visible", timeout: 10_000 });
    await page.keyboard.type("sensor.py");
    await quickInput.locator(".monaco-list-row").filter({ hasText: "sensor.py" }).first().waitFor({ state: "visible", timeout: 10_000 });
    await page.keyboard.press("Enter");
    const lens = page.locator(".codelens-decoration a").filter({ hasText: "Synthesize from comment" }).first();
    await lens.waitFor({ state: "visible", timeout: 30_000 });
    await lens.click();
    const widget = page.locator(".review-widget").first();
    await widget.filter({ hasText: "Done" }).waitFor({ state: "visible", timeout: 90_000 });
    await shot("comment-thread");

    // 8. Insert Below: read the change as a diff, with Accept and Discard in the editor.
    await widget.locator(".head .review-actions a[aria-label='Insert Below']").first().dispatchEvent("click");
    const diffTab = page.locator(".tabs-container .tab").filter({ hasText: "insert the generated code below the comment" }).first();
    await diffTab.waitFor({ state: "visible", timeout: 30_000 });
    await accept.waitFor({ state: "visible", timeout: 20_000 });
    assert.equal(await page.locator(".monaco-dialog-box").count(), 0, "no modal dialog over the diff");
    await page.locator(".editor-actions .action-label[aria-label='Discard']").first().waitFor({ state: "visible", timeout: 5000 });
    await page.waitForTimeout(500);
    await shot("insert-below-diff");

    // 9. Accept: the code lands below the comment (the conversation is folded away to show it).
    await accept.click();
    await page.locator(".tabs-container .tab.active").filter({ hasText: /^sensor\.py/ }).first().waitFor({ state: "visible", timeout: 15_000 });
    await widget.locator(".head .review-actions a[aria-label='Collapse']").first().dispatchEvent("click");
    await page.waitForTimeout(300);
    const editorText = async () => (await page.locator(".editor-group-container .view-lines").first().innerText().catch(() => "")).replace(/\u00a0/g, " ");
    await waitFor("the inserted code in sensor.py", async () => (await editorText()).includes("# Generated by GPIoT from the comment above"), 30_000);
    const lines = (await editorText()).split("\n");
    assert.equal(lines.indexOf("# Generated by GPIoT from the comment above."), lines.indexOf("# Constraints: Raspberry Pi Zero, <= 64 MB RAM") + 1, "right below the comment");
    await shot("accepted");

    // 10. Undo: one step takes the whole insertion back.
    await page.locator(".editor-group-container .view-lines").first().click();
    await page.keyboard.press("Control+Z");
    await waitFor("the whole insertion undone in one step", async () => {
      const text = await editorText();
      return !text.includes("Generated by GPIoT") && text.includes("def main():");
    }, 15_000);
    // Whether or not the editor saves by itself, the file ends as it began.
    await waitFor("sensor.py as it was", () => !readFileSync(path.join(workspace.dir, "sensor.py"), "utf8").includes("Generated by GPIoT"), 15_000);
    await shot("undone");
    console.log(`[ui] PASS in ${((Date.now() - started) / 1000).toFixed(1)} s, ${shots} screenshots in ${path.relative(REPO_ROOT, UI_ARTIFACTS)}/`);
    return 0;
  } catch (error) {
    console.error(`[ui] FAIL: ${(error as Error).stack ?? error}`);
    if (workbench) await workbench.page.screenshot({ path: path.join(UI_ARTIFACTS, "failure.png") }).catch(() => undefined);
    return 1;
  } finally {
    await workbench?.dispose();
    await models.close();
    workspace.dispose();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  process.exit(await runUiTest());
}
