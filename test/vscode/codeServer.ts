/**
 * Start and stop code-server (VS Code 1.100.3 served to a browser) for extension
 * tests that must run in a real VS Code where VS Code itself cannot be downloaded.
 *
 * code-server comes from scripts/install-code-server.sh (into <repo>/.tools/code-server);
 * CODE_SERVER_ENTRY overrides the path of its out/node/entry.js.
 *
 * Every instance is isolated: its own loopback port, its own process group, and
 * HOME/TMPDIR/XDG_* pointed at a per-run temp folder that dispose() removes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, rmSync, type WriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Path of code-server's node entry point (what `code-server` the CLI runs). */
export function codeServerEntry(): string {
  return (
    process.env.CODE_SERVER_ENTRY ??
    path.join(REPO_ROOT, ".tools", "code-server", "node_modules", "code-server", "out", "node", "entry.js")
  );
}

/** Settings written to the user settings.json unless `userSettings` overrides them. */
export const DEFAULT_USER_SETTINGS: Readonly<Record<string, unknown>> = {
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "telemetry.telemetryLevel": "off",
  "security.workspace.trust.enabled": false,
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "extensions.ignoreRecommendations": true,
  "update.mode": "none",
  "git.enabled": false,
  "npm.autoDetect": "off",
  "typescript.disableAutomaticTypeAcquisition": true,
  "chat.disableAIFeatures": true,
};

/** Workspace trust on, no prompt: an untrusted folder opens in Restricted Mode. */
const TRUST_SETTINGS: Readonly<Record<string, unknown>> = {
  "security.workspace.trust.enabled": true,
  "security.workspace.trust.startupPrompt": "never",
  "security.workspace.trust.banner": "never",
  "security.workspace.trust.emptyWindow": false,
  "security.workspace.trust.untrustedFiles": "open",
};

export interface StartCodeServerOptions {
  /** Folder opened as the workspace (also passed on code-server's command line). */
  workspace: string;
  /** Where installed extensions live; defaults to an empty folder in the run's temp dir. */
  extensionsDir?: string;
  /** Merged over DEFAULT_USER_SETTINGS into <user-data-dir>/User/settings.json. */
  userSettings?: Record<string, unknown>;
  /**
   * Extra environment for code-server. The extension host is a child of code-server
   * and inherits this environment, so this is how to hand a value (a model path, a
   * flag) to an extension under test: it reads it with process.env.NAME.
   */
  env?: Record<string, string | undefined>;
  /**
   * Keep VS Code's workspace trust on (default off): a workspace that was never trusted then opens
   * in Restricted Mode, without the trust prompt.
   */
  workspaceTrust?: boolean;
  /** Milliseconds to wait for /healthz (default 30 s). */
  startTimeoutMs?: number;
  /** Receives every line code-server prints (default: dropped; always kept in `logFile`). */
  onOutput?: (line: string) => void;
}

export interface CodeServerHandle {
  /** http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  port: number;
  /** PID of code-server, which is also its process group id. */
  pid: number;
  /** Per-run temp folder: HOME, TMPDIR, XDG_*, user data, config, default extensions dir. */
  tempDir: string;
  userDataDir: string;
  extensionsDir: string;
  /** code-server's own stdout+stderr. Extension-host logs are under <userDataDir>/logs. */
  logFile: string;
  /** Kills the whole process group (SIGTERM, then SIGKILL) and removes the temp folder. */
  dispose(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound then released; a tiny race is possible). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === "object") resolve(addr.port);
        else reject(new Error("could not get a free port"));
      });
    });
  });
}

/** Environment that keeps a child's files (sockets, caches, configs) inside `dir`. */
export async function isolatedEnv(dir: string): Promise<Record<string, string>> {
  const env = {
    HOME: path.join(dir, "home"),
    TMPDIR: path.join(dir, "tmp"),
    XDG_CONFIG_HOME: path.join(dir, "home", ".config"),
    XDG_CACHE_HOME: path.join(dir, "home", ".cache"),
    XDG_DATA_HOME: path.join(dir, "home", ".local", "share"),
    XDG_STATE_HOME: path.join(dir, "home", ".local", "state"),
    XDG_RUNTIME_DIR: path.join(dir, "runtime"),
  };
  for (const d of Object.values(env)) await mkdir(d, { recursive: true, mode: 0o700 });
  return env;
}

/**
 * `{}` empties code-server's extension gallery (default: open-vsx.org), so neither the
 * server nor the workbench tries the network. Pass env.EXTENSIONS_GALLERY to override.
 */
export const NO_GALLERY = "{}";

function baseEnv(extra?: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, EXTENSIONS_GALLERY: NO_GALLERY, ...extra })) {
    if (v === undefined) continue;
    // Variables of an outer VS Code / Electron / code-server would confuse the inner one.
    if (/^(VSCODE_|ELECTRON_)/.test(k) || k === "CODE_SERVER_PARENT_PID") continue;
    out[k] = v;
  }
  return out;
}

function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Last-resort cleanup when the process exits (process.exit(), end of event loop)
 * while instances are still running: SIGKILL their process groups and remove their
 * temp dirs synchronously. Death by an unhandled signal skips 'exit' handlers, so a
 * CLI should handle SIGINT/SIGTERM itself and dispose (run-suite.ts does).
 */
const exitCleanups = new Set<() => void>();
let exitHookInstalled = false;
export function onProcessExit(fn: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const f of exitCleanups) {
        try {
          f();
        } catch {
          /* best effort */
        }
      }
    });
  }
  exitCleanups.add(fn);
  return () => exitCleanups.delete(fn);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Sends `signal` to the process group, then SIGKILL if anything in it outlives `graceMs`. */
export async function killProcessGroup(pgid: number, graceMs = 5000): Promise<void> {
  if (!isGroupAlive(pgid)) return;
  try {
    process.kill(-pgid, "SIGTERM");
  } catch {
    /* already gone */
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isGroupAlive(pgid)) await sleep(100);
  if (isGroupAlive(pgid)) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      /* already gone */
    }
    const hard = Date.now() + 5000;
    while (Date.now() < hard && isGroupAlive(pgid)) await sleep(50);
  }
}

function pipeLines(stream: NodeJS.ReadableStream | null, log: WriteStream, onLine?: (l: string) => void) {
  if (!stream) return;
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    log.write(chunk);
    if (!onLine) return;
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on("end", () => {
    if (onLine && buf) onLine(buf);
  });
}

async function waitForHealthz(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`code-server exited early (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      lastError = `HTTP ${res.status}`;
    } catch (e) {
      lastError = (e as Error).message;
    }
    await sleep(150);
  }
  throw new Error(`code-server did not answer ${url}/healthz within ${timeoutMs} ms (${lastError})`);
}

/**
 * Starts code-server on a free loopback port with no auth, telemetry, update checks
 * or workspace trust, and resolves once /healthz answers.
 */
export async function startCodeServer(opts: StartCodeServerOptions): Promise<CodeServerHandle> {
  const entry = codeServerEntry();
  if (!existsSync(entry)) {
    throw new Error(`code-server not found at ${entry}; run scripts/install-code-server.sh (or set CODE_SERVER_ENTRY)`);
  }
  const workspace = path.resolve(opts.workspace);
  const tempDir = await mkdtemp(path.join(os.tmpdir(), "gpiot-code-server-"));
  let child: ChildProcess | undefined;
  let log: WriteStream | undefined;
  const cleanupTemp = () => rm(tempDir, { recursive: true, force: true, maxRetries: 3 });
  try {
    const isoEnv = await isolatedEnv(tempDir);
    const userDataDir = path.join(tempDir, "user-data");
    const extensionsDir = path.resolve(opts.extensionsDir ?? path.join(tempDir, "extensions"));
    const configDir = path.join(tempDir, "config");
    await mkdir(path.join(userDataDir, "User"), { recursive: true });
    await mkdir(extensionsDir, { recursive: true });
    await mkdir(configDir, { recursive: true });
    await writeFile(
      path.join(userDataDir, "User", "settings.json"),
      JSON.stringify({ ...DEFAULT_USER_SETTINGS, ...(opts.workspaceTrust ? TRUST_SETTINGS : {}), ...opts.userSettings }, null, 2),
    );
    const configFile = path.join(configDir, "config.yaml");
    // Flags on the command line win; the file only stops code-server from writing ~/.config.
    await writeFile(configFile, "auth: none\ncert: false\n");

    const port = await freeLoopbackPort();
    const url = `http://127.0.0.1:${port}`;
    const logFile = path.join(tempDir, "code-server.log");
    log = createWriteStream(logFile);
    const args = [
      entry,
      "--bind-addr", `127.0.0.1:${port}`,
      "--auth", "none",
      "--disable-telemetry",
      "--disable-update-check",
      ...(opts.workspaceTrust ? [] : ["--disable-workspace-trust"]),
      "--disable-getting-started-override",
      "--extensions-dir", extensionsDir,
      "--user-data-dir", userDataDir,
      "--config", configFile,
      workspace,
    ];
    child = spawn(process.execPath, args, {
      cwd: workspace,
      detached: true, // own process group: dispose() kills code-server and all its children
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...baseEnv(opts.env), ...isoEnv },
    });
    pipeLines(child.stdout, log, opts.onOutput);
    pipeLines(child.stderr, log, opts.onOutput);
    const pid = child.pid;
    if (pid === undefined) throw new Error("could not spawn code-server");
    const unregister = onProcessExit(() => {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        /* gone */
      }
      rmSync(tempDir, { recursive: true, force: true });
    });
    try {
      await waitForHealthz(url, child, opts.startTimeoutMs ?? 30_000);
    } catch (e) {
      unregister();
      throw e;
    }

    let disposed: Promise<void> | undefined;
    const proc = child;
    const logStream = log;
    return {
      url,
      port,
      pid,
      tempDir,
      userDataDir,
      extensionsDir,
      logFile,
      dispose() {
        disposed ??= (async () => {
          await killProcessGroup(pid);
          proc.stdout?.destroy();
          proc.stderr?.destroy();
          await new Promise<void>((r) => logStream.end(r));
          await cleanupTemp();
          unregister();
        })();
        return disposed;
      },
    };
  } catch (e) {
    if (child?.pid !== undefined) await killProcessGroup(child.pid);
    child?.stdout?.destroy();
    child?.stderr?.destroy();
    log?.end();
    await cleanupTemp();
    throw e;
  }
}

/**
 * Installs a .vsix into `extensionsDir` with `code-server --install-extension`
 * (a later startCodeServer({extensionsDir}) then loads it). Rejects on failure.
 */
export async function installVsixIntoCodeServer(vsixPath: string, extensionsDir: string): Promise<void> {
  const entry = codeServerEntry();
  if (!existsSync(entry)) throw new Error(`code-server not found at ${entry}; run scripts/install-code-server.sh`);
  const tempDir = await mkdtemp(path.join(os.tmpdir(), "gpiot-code-server-install-"));
  try {
    const isoEnv = await isolatedEnv(tempDir);
    await mkdir(extensionsDir, { recursive: true });
    const child = spawn(
      process.execPath,
      [
        entry,
        "--extensions-dir", path.resolve(extensionsDir),
        "--user-data-dir", path.join(tempDir, "user-data"),
        "--config", path.join(tempDir, "config.yaml"),
        "--install-extension", path.resolve(vsixPath),
        "--force",
      ],
      { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...baseEnv(), ...isoEnv } },
    );
    let output = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (output += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (output += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (c) => resolve(c));
    });
    if (child.pid !== undefined) await killProcessGroup(child.pid, 1000);
    if (code !== 0 || /\bfailed\b|\berror\b/i.test(output)) {
      throw new Error(`code-server --install-extension ${vsixPath} failed (exit ${code}):\n${output}`);
    }
  } finally {
    await rm(tempDir, { recursive: true, force: true, maxRetries: 3 });
  }
}
