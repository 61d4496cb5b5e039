/**
 * The Python environment the user chose (the `verify.pythonPath` or `python` setting), resolved
 * once to its real interpreter, and what the operating system offers to isolate a run:
 * user + network + mount + PID namespaces through util-linux `unshare` (Linux, where
 * unprivileged user namespaces are allowed). Both are probed, never assumed.
 */
import { spawn } from "node:child_process";
import { shippedPythonPath } from "./pythonFiles";

export interface PythonInfo {
  executable: string;
  version: string;
}

export class PythonUnavailableError extends Error {
  readonly code = "VERIFY_UNAVAILABLE";
  constructor(message: string) {
    super(message);
    this.name = "PythonUnavailableError";
  }
}

interface Captured {
  code: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/** Runs a short helper command (never generated code) and captures its output. */
export function capture(command: string, args: string[], options: { input?: string; timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Captured> {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let done = false;
    const finish = (result: Captured) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(result);
    };
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], cwd: options.cwd, env: options.env });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish({ code: null, stdout, stderr, error: new Error(`${command} timed out after ${options.timeoutMs ?? 20_000} ms`) });
    }, options.timeoutMs ?? 20_000);
    child.on("error", (error) => finish({ code: null, stdout, stderr, error }));
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => finish({ code, stdout, stderr }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

/** Environment variables that select the user's Python environment; everything else is dropped. */
const ENVIRONMENT_KEYS = ["PATH", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH", "SYSTEMROOT", "PYENV_ROOT", "PYENV_VERSION"];

export function pythonEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ENVIRONMENT_KEYS) if (process.env[key] !== undefined) env[key] = process.env[key];
  return {
    ...env,
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    PYTHONDONTWRITEBYTECODE: "1",
    PYTHONUNBUFFERED: "1",
    PYTHONHASHSEED: "0",
    PYTHONIOENCODING: "utf-8",
    // One BLAS/OpenMP thread: reproducible timings, and OpenBLAS reserves far less address space.
    OPENBLAS_NUM_THREADS: "1",
    OMP_NUM_THREADS: "1",
    MKL_NUM_THREADS: "1",
    MPLBACKEND: "Agg",
    ...extra,
  };
}

const pythonCache = new Map<string, Promise<PythonInfo>>();

/** The real interpreter behind `python` (a name on PATH, a shim or a venv path). */
export function resolvePython(python: string): Promise<PythonInfo> {
  let cached = pythonCache.get(python);
  if (!cached) {
    cached = (async () => {
      const result = await capture(python, ["-B", shippedPythonPath("python_info.py")], {
        env: pythonEnvironment(),
        timeoutMs: 20_000,
      });
      try {
        const info = JSON.parse(result.stdout.trim()) as PythonInfo;
        if (!info.executable) throw new Error("no executable");
        return info;
      } catch {
        throw new PythonUnavailableError(
          `No usable Python interpreter "${python}" to check and run the program (${result.error?.message ?? (result.stderr.trim().slice(0, 300) || `exit code ${result.code}`)}). Set the verify.pythonPath setting.`,
        );
      }
    })();
    pythonCache.set(python, cached);
    cached.catch(() => pythonCache.delete(python));
  }
  return cached;
}

export interface IsolationSupport {
  available: boolean;
  /** The command prefix that puts a process into fresh user, network, mount and PID namespaces. */
  prefix: string[];
  /** Why isolation is unavailable, in words. */
  reason?: string;
  /** What the probe found, one item per check, in words. */
  probed: string[];
  /** A limitation of the isolation that is available. */
  note?: string;
}

const NAMESPACES = ["--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child"];
const isolationCache = new Map<string, Promise<IsolationSupport>>();

interface ProbeReport {
  interfaces: string[];
  connect: number;
  pid: number;
  readOnly?: boolean;
  mountError?: string | null;
  capabilitiesDropped?: boolean;
}

async function runProbe(pythonExecutable: string, unshareArgs: string[]): Promise<{ report: ProbeReport } | { problem: string }> {
  const result = await capture("unshare", [...unshareArgs, "--", pythonExecutable, "-B", "-S", shippedPythonPath("isolation_probe.py")], { env: pythonEnvironment(), timeoutMs: 15_000 });
  if (result.error) return { problem: `unshare is not usable here (${result.error.message})` };
  try {
    return { report: JSON.parse(result.stdout.trim()) as ProbeReport };
  } catch {
    return { problem: `user namespaces are not available (unshare: ${result.stderr.trim().split("\n").pop()?.slice(0, 200) || `exit code ${result.code}`})` };
  }
}

/**
 * Runs sidecar/python/isolation_probe.py under `unshare` in the namespaces a program would get,
 * and says what it found: only loopback and a failing connection in the network namespace, PID 1
 * of a PID namespace (with its own /proc where the system allows it), a read-only remount in the
 * mount namespace, and a child that could drop every capability. Linux only; elsewhere (or where
 * user namespaces are disabled, e.g. some containers) runs are not isolated and the report says so.
 */
export function probeIsolation(pythonExecutable: string): Promise<IsolationSupport> {
  let cached = isolationCache.get(pythonExecutable);
  if (!cached) {
    cached = (async (): Promise<IsolationSupport> => {
      if (process.platform !== "linux") return { available: false, prefix: [], reason: `network and filesystem isolation need Linux namespaces; not available on ${process.platform}`, probed: [] };
      let args = [...NAMESPACES, "--mount-proc"];
      let probe = await runProbe(pythonExecutable, args);
      let ownProc = true;
      if (!("report" in probe)) {
        // Some containers refuse a new /proc; the namespaces still work without it.
        const fallback = await runProbe(pythonExecutable, NAMESPACES);
        if ("report" in fallback) {
          args = NAMESPACES;
          probe = fallback;
          ownProc = false;
        }
      }
      if (!("report" in probe)) return { available: false, prefix: [], reason: probe.problem, probed: [] };
      const report = probe.report;
      const probed = [
        `network: interfaces ${report.interfaces.join(", ") || "none"}; a connection to 192.0.2.1 ${report.connect === 0 ? "succeeded" : "failed"}`,
        `processes: ${report.pid === 1 ? "a PID namespace of its own" : "no PID namespace"}${ownProc ? " with its own /proc" : " (the system's /proc stays visible)"}`,
        `filesystem: ${report.readOnly ? "read-only remounts work" : `read-only remounts failed${report.mountError ? ` (${report.mountError})` : ""}`}`,
        `privileges: ${report.capabilitiesDropped ? "every capability can be dropped" : "capabilities could not be dropped"}`,
      ];
      const unavailable = (reason: string): IsolationSupport => ({ available: false, prefix: [], reason, probed });
      if (report.interfaces.some((name) => name !== "lo")) return unavailable(`the new network namespace still has interfaces ${report.interfaces.join(", ")}`);
      if (report.connect === 0) return unavailable("a connection succeeded inside the new network namespace");
      if (report.pid !== 1) return unavailable("the program would not get a PID namespace of its own");
      if (!report.readOnly) return unavailable(`the filesystem cannot be made read-only (${report.mountError ?? "remount failed"})`);
      if (!report.capabilitiesDropped) return unavailable("the program's capabilities could not be dropped");
      return { available: true, prefix: ["unshare", ...args, "--"], probed, ...(ownProc ? {} : { note: "the system's /proc stays visible to the program: it can see other processes" }) };
    })();
    isolationCache.set(pythonExecutable, cached);
  }
  return cached;
}
