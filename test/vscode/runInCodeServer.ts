/**
 * Runs an @vscode/test-electron style suite (a module exporting `run()`, given as
 * `extensionTestsPath`) inside a real VS Code workbench: code-server serves VS Code
 * 1.100.3, Debian's Chromium (headless, via playwright-core) renders it, and the
 * extension under development runs in code-server's Node extension host.
 *
 * The web workbench takes extensionDevelopmentPath/extensionTestsPath from the URL
 * `payload` (code-server refuses them as flags) and, when run() settles, calls
 * `window.codeAutomationExit(code, logs)`; in that mode it also forwards
 * extension-host console output to `window.codeAutomationLog(level, message)`.
 */
import { mkdir, mkdtemp, rm, writeFile, cp } from "node:fs/promises";
import { existsSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { isolatedEnv, onProcessExit, startCodeServer, type CodeServerHandle } from "./codeServer";

export const CHROMIUM_PATH = process.env.GPIOT_CHROMIUM ?? "/usr/bin/chromium";

/** Flags that let Debian's Chromium run headless as root in a container, offline. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** Exit code returned when the suite does not finish within timeoutMs. */
export const EXIT_TIMEOUT = 124;
/** Exit code returned when the harness itself fails (code-server, browser, navigation). */
export const EXIT_HARNESS_ERROR = 125;
/** Exit code returned when `signal` aborted the run. */
export const EXIT_ABORTED = 130;

export interface RunExtensionTestsOptions {
  /** Folder holding the extension's package.json. */
  extensionDevelopmentPath: string;
  /** Compiled CommonJS module (or folder with index.js) exporting `run(): Promise<void>`. */
  extensionTestsPath: string;
  /** Folder opened in the workbench. */
  workspace: string;
  /** Screenshot, workbench logs and code-server output land here on failure/timeout. */
  artifactsDir: string;
  timeoutMs: number;
  /** Extra env for code-server and thus the extension host (read with process.env.X). */
  env?: Record<string, string | undefined>;
  /** Merged over DEFAULT_USER_SETTINGS into the user settings.json. */
  userSettings?: Record<string, unknown>;
  /** Pre-installed extensions (e.g. from installVsixIntoCodeServer). */
  extensionsDir?: string;
  /** Workspace trust on: the (never trusted) workspace opens in Restricted Mode. */
  workspaceTrust?: boolean;
  /** Receives each extension-host/workbench log line (default: written to stdout). */
  onLog?: (level: string, message: string) => void;
  /** Also receives each log line, whichever printer prints it (e.g. to keep mocha's failures for a summary). */
  observeLog?: (level: string, message: string) => void;
  /** Also print browser console messages and code-server output (or set GPIOT_VSCODE_VERBOSE=1). */
  verbose?: boolean;
  /** Aborting stops the run early (exit code EXIT_ABORTED), still cleaning up. */
  signal?: AbortSignal;
}

interface LogFile {
  relativePath: string;
  contents: string;
}

/** `vscode-remote://127.0.0.1:PORT/abs/path`, the form the web workbench resolves on the server. */
export function remoteUri(port: number, absPath: string): string {
  const p = path.resolve(absPath).split(path.sep).map(encodeURIComponent).join("/");
  return `vscode-remote://127.0.0.1:${port}${p}`;
}

/** Workbench URL opening `workspace` with the given payload entries. */
export function workbenchUrl(server: CodeServerHandle, workspace: string, payload: [string, string][]): string {
  const q = new URLSearchParams({ folder: path.resolve(workspace), payload: JSON.stringify(payload) });
  return `${server.url}/?${q.toString()}`;
}

interface Browser {
  context: BrowserContext;
  page: Page;
  dispose(): Promise<void>;
}

async function launchBrowser(verbose: boolean): Promise<Browser> {
  const tempDir = await mkdtemp(path.join(os.tmpdir(), "gpiot-chromium-"));
  try {
    const env = await isolatedEnv(tempDir);
    const profile = path.join(tempDir, "profile");
    await mkdir(profile);
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS],
      env: { ...(process.env as Record<string, string>), ...env },
      viewport: { width: 1400, height: 900 },
      timeout: 60_000,
      // Playwright's own handlers would process.exit(130) on Ctrl-C before our cleanup
      // stops code-server; callers dispose() instead (and Playwright still kills
      // Chromium on process exit).
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
    const unregister = onProcessExit(() => rmSync(tempDir, { recursive: true, force: true }));
    const page = context.pages()[0] ?? (await context.newPage());
    if (verbose) {
      page.on("console", (m) => console.log(`[browser:${m.type()}] ${m.text()}`));
      page.on("pageerror", (e) => console.log(`[browser:pageerror] ${e.message}`));
    }
    let disposed: Promise<void> | undefined;
    return {
      context,
      page,
      dispose() {
        disposed ??= (async () => {
          await context.close().catch(() => undefined);
          await rm(tempDir, { recursive: true, force: true, maxRetries: 3 });
          unregister();
        })();
        return disposed;
      },
    };
  } catch (e) {
    await rm(tempDir, { recursive: true, force: true, maxRetries: 3 });
    throw e;
  }
}

/**
 * Routine workbench chatter that arrives through the same channel as the extension
 * host's console output; the default printer drops it unless verbose.
 */
export const WORKBENCH_NOISE: readonly RegExp[] = [
  /^Resolving connection token /,
  /^Resolved connection token /,
  /^Creating a socket \(/,
  /^Ignoring fetching additional builtin extensions from gallery/,
  /^Updating additional builtin extensions cache/,
  /^\[Service Worker\] registered/,
  /^ChatSessionStore: Migrating/,
];

function defaultLog(level: string, message: string): void {
  // Mocha's reporters and console.log in the extension host arrive here line by line;
  // keep the text as-is (no prefix) so the output reads like a local mocha run.
  const text = message.endsWith("\n") ? message : `${message}\n`;
  if (level === "error" || level === "warn") process.stderr.write(text);
  else process.stdout.write(text);
}

async function saveArtifacts(
  artifactsDir: string,
  label: string,
  page: Page | undefined,
  server: CodeServerHandle | undefined,
  logs: LogFile[] | undefined,
): Promise<void> {
  await mkdir(artifactsDir, { recursive: true });
  const saved: string[] = [];
  if (page) {
    const shot = path.join(artifactsDir, `${label}.png`);
    try {
      await page.screenshot({ path: shot, timeout: 10_000 });
      saved.push(shot);
    } catch (e) {
      console.error(`[vscode-test] screenshot failed: ${(e as Error).message}`);
    }
  }
  const logsDir = path.join(artifactsDir, `${label}-logs`);
  if (logs?.length) {
    for (const l of logs) {
      const dest = path.join(logsDir, "workbench", l.relativePath);
      if (!dest.startsWith(logsDir + path.sep)) continue;
      await mkdir(path.dirname(dest), { recursive: true });
      await writeFile(dest, l.contents);
    }
    saved.push(logsDir);
  }
  if (server) {
    // Server-side logs: code-server's output and the remote extension host's log files.
    try {
      await mkdir(logsDir, { recursive: true });
      if (existsSync(server.logFile)) await cp(server.logFile, path.join(logsDir, "code-server.log"));
      const serverLogs = path.join(server.userDataDir, "logs");
      if (existsSync(serverLogs)) await cp(serverLogs, path.join(logsDir, "server"), { recursive: true });
      saved.push(logsDir);
    } catch (e) {
      console.error(`[vscode-test] copying logs failed: ${(e as Error).message}`);
    }
  }
  if (saved.length) console.error(`[vscode-test] artifacts: ${[...new Set(saved)].join(", ")}`);
}

/**
 * Runs the suite and resolves with its exit code: 0 when run() resolved, 1 when it
 * rejected (e.g. failing tests), EXIT_TIMEOUT (124) on timeout, EXIT_HARNESS_ERROR
 * (125) when code-server/Chromium could not be started. Never rejects; always cleans up.
 */
export async function runExtensionTestsInCodeServer(opts: RunExtensionTestsOptions): Promise<number> {
  const verbose = opts.verbose ?? process.env.GPIOT_VSCODE_VERBOSE === "1";
  const print =
    opts.onLog ??
    ((level: string, message: string) => {
      if (!verbose && WORKBENCH_NOISE.some((re) => re.test(message))) return;
      defaultLog(level, message);
    });
  const onLog = (level: string, message: string) => {
    opts.observeLog?.(level, message);
    print(level, message);
  };
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  let server: CodeServerHandle | undefined;
  let browser: Browser | undefined;
  let exitCode = EXIT_HARNESS_ERROR;
  let exitLogs: LogFile[] | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    for (const [name, p] of [
      ["extensionDevelopmentPath", path.join(opts.extensionDevelopmentPath, "package.json")],
      ["extensionTestsPath", opts.extensionTestsPath],
      ["workspace", opts.workspace],
    ] as const) {
      if (!existsSync(p)) throw new Error(`${name}: ${p} does not exist`);
    }
    server = await startCodeServer({
      workspace: opts.workspace,
      extensionsDir: opts.extensionsDir,
      userSettings: opts.userSettings,
      workspaceTrust: opts.workspaceTrust,
      env: opts.env,
      onOutput: verbose ? (l) => console.log(`[code-server] ${l}`) : undefined,
    });
    console.log(`[vscode-test] code-server ${server.url} (pid ${server.pid}) up after ${elapsed()}`);
    browser = await launchBrowser(verbose);
    const { page } = browser;

    let settle: (code: number) => void = () => undefined;
    const done = new Promise<number>((resolve) => {
      settle = resolve;
      timer = setTimeout(() => resolve(EXIT_TIMEOUT), opts.timeoutMs);
      if (opts.signal?.aborted) resolve(EXIT_ABORTED);
      opts.signal?.addEventListener("abort", () => resolve(EXIT_ABORTED), { once: true });
    });
    // Both must exist before the workbench script runs, hence before page.goto.
    await page.exposeFunction("codeAutomationLog", (level: string, message: unknown) => {
      onLog(String(level), Array.isArray(message) ? message.map(String).join(" ") : String(message));
    });
    await page.exposeFunction("codeAutomationExit", (code: number, logs?: LogFile[]) => {
      exitLogs = logs;
      settle(typeof code === "number" ? code : 1);
    });
    const url = workbenchUrl(server, opts.workspace, [
      ["extensionDevelopmentPath", remoteUri(server.port, opts.extensionDevelopmentPath)],
      ["extensionTestsPath", remoteUri(server.port, opts.extensionTestsPath)],
      ["skipWelcome", "true"],
    ]);
    if (verbose) console.log(`[vscode-test] opening ${url}`);
    await Promise.race([page.goto(url, { waitUntil: "domcontentloaded", timeout: 60_000 }), done]);
    exitCode = await done;
    if (exitCode === EXIT_TIMEOUT) {
      console.error(`[vscode-test] timed out after ${opts.timeoutMs} ms`);
    }
    console.log(`[vscode-test] suite finished with exit code ${exitCode} after ${elapsed()}`);
  } catch (e) {
    console.error(`[vscode-test] harness error after ${elapsed()}: ${(e as Error).stack ?? e}`);
    exitCode = EXIT_HARNESS_ERROR;
  } finally {
    if (timer) clearTimeout(timer);
    if (exitCode !== 0) {
      const kind = exitCode === EXIT_TIMEOUT ? "timeout" : exitCode === EXIT_ABORTED ? "aborted" : "failure";
      const label = `code-server-${kind}-${new Date().toISOString().replace(/[:.]/g, "-")}`;
      await saveArtifacts(opts.artifactsDir, label, browser?.page, server, exitLogs).catch((e) =>
        console.error(`[vscode-test] saving artifacts failed: ${(e as Error).message}`),
      );
    }
    await browser?.dispose();
    await server?.dispose();
  }
  return exitCode;
}

export interface OpenWorkbenchOptions {
  workspace: string;
  workspaceTrust?: boolean;
  /** Extension loaded in development mode (optional: installed extensions still load). */
  extensionDevelopmentPath?: string;
  extensionsDir?: string;
  env?: Record<string, string | undefined>;
  userSettings?: Record<string, unknown>;
  /** Print browser console and code-server output (or set GPIOT_VSCODE_VERBOSE=1). */
  verbose?: boolean;
}

export interface Workbench {
  page: Page;
  context: BrowserContext;
  server: CodeServerHandle;
  /** Closes the browser, stops code-server, removes all temp dirs. Idempotent. */
  dispose(): Promise<void>;
}

/**
 * Opens the real workbench for a UI test driven with the keyboard/mouse. Resolves
 * when the workbench has painted; the extension host starts a few seconds later,
 * so use runCommandFromPalette (which retries) or wait for what you expect.
 */
export async function openWorkbench(opts: OpenWorkbenchOptions): Promise<Workbench> {
  const verbose = opts.verbose ?? process.env.GPIOT_VSCODE_VERBOSE === "1";
  const server = await startCodeServer({
    workspace: opts.workspace,
    extensionsDir: opts.extensionsDir,
    userSettings: opts.userSettings,
    workspaceTrust: opts.workspaceTrust,
    env: opts.env,
    onOutput: verbose ? (l) => console.log(`[code-server] ${l}`) : undefined,
  });
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser(verbose);
    const payload: [string, string][] = [["skipWelcome", "true"]];
    if (opts.extensionDevelopmentPath) {
      payload.unshift(["extensionDevelopmentPath", remoteUri(server.port, opts.extensionDevelopmentPath)]);
    }
    await browser.page.goto(workbenchUrl(server, opts.workspace, payload), {
      waitUntil: "domcontentloaded",
      timeout: 60_000,
    });
    await browser.page.locator(".monaco-workbench").waitFor({ state: "visible", timeout: 60_000 });
    const b = browser;
    let disposed: Promise<void> | undefined;
    return {
      page: b.page,
      context: b.context,
      server,
      dispose() {
        disposed ??= (async () => {
          await b.dispose();
          await server.dispose();
        })();
        return disposed;
      },
    };
  } catch (e) {
    await browser?.dispose();
    await server.dispose();
    throw e;
  }
}

export interface PaletteOptions {
  /** Text the chosen entry must contain (default: what was typed). E.g. type "Hello", match "GPIoT: Hello". */
  match?: string;
  /** Give up after this long (default 60 s). */
  timeoutMs?: number;
  /** Wait this long for the entry after typing, and between attempts (default 1 s). */
  retryEveryMs?: number;
}

/**
 * Opens the command palette with F1, types `text` and presses Enter on the first entry
 * containing `match` (default `text`). Retries (closing the palette in between) until
 * the entry is listed, because commands contributed by extensions appear only once the
 * extension host is up, a few seconds after the workbench paints.
 */
export async function runCommandFromPalette(page: Page, text: string, opts: PaletteOptions = {}): Promise<void> {
  const { match = text, timeoutMs = 60_000, retryEveryMs = 1000 } = opts;
  const deadline = Date.now() + timeoutMs;
  const input = page.locator(".quick-input-widget .quick-input-box input");
  const row = page
    .locator(".quick-input-widget .quick-input-list .monaco-list-row")
    .filter({ hasText: match })
    .first();
  for (;;) {
    await page.locator(".monaco-workbench").click({ position: { x: 700, y: 450 }, force: true }).catch(() => undefined);
    await page.keyboard.press("F1");
    await input.waitFor({ state: "visible", timeout: 10_000 });
    await input.fill(`>${text}`);
    try {
      await row.waitFor({ state: "visible", timeout: retryEveryMs });
      // Enter runs the focused (first) entry; click the matching one instead when it is not first.
      const first = page.locator(".quick-input-widget .quick-input-list .monaco-list-row").first();
      if ((await first.textContent())?.includes(match)) await page.keyboard.press("Enter");
      else await row.click();
      return;
    } catch {
      await page.keyboard.press("Escape");
      if (Date.now() > deadline) {
        throw new Error(`"${match}" did not appear in the command palette within ${timeoutMs} ms`);
      }
      await page.waitForTimeout(retryEveryMs);
    }
  }
}
