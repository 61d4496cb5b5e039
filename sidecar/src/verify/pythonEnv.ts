/**
 * The Python environment the user chose (the `verify.pythonPath` or `python` setting), resolved
 * once to its real interpreter, and what the operating system offers to isolate a run:
 * user + network + mount + PID namespaces through util-linux `unshare` (Linux, where
 * unprivileged user namespaces are allowed). Both are probed, never assumed.
 */
import { spawn } from "node:child_process";

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
      const result = await capture(python, ["-c", "import sys, json; print(json.dumps({'executable': sys.executable, 'version': sys.version.split()[0]}))"], {
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
}

const UNSHARE_ARGS = ["--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child", "--"];
const isolationCache = new Map<string, Promise<IsolationSupport>>();

/**
 * Checks that `unshare` can start the interpreter in new namespaces and that the network there
 * has nothing but loopback. Linux only; elsewhere (or where user namespaces are disabled, e.g.
 * some containers) runs are not network-isolated and the report says so.
 */
export function probeIsolation(pythonExecutable: string): Promise<IsolationSupport> {
  let cached = isolationCache.get(pythonExecutable);
  if (!cached) {
    cached = (async () => {
      if (process.platform !== "linux") return { available: false, prefix: [], reason: `network and filesystem isolation need Linux namespaces; not available on ${process.platform}` };
      const probe = [
        "import socket, json",
        "names = [name for _, name in socket.if_nameindex()]",
        "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
        "s.settimeout(2)",
        "code = s.connect_ex(('192.0.2.1', 9))",
        "print(json.dumps({'interfaces': names, 'connect': code}))",
      ].join("\n");
      const result = await capture("unshare", [...UNSHARE_ARGS, pythonExecutable, "-c", probe], { env: pythonEnvironment(), timeoutMs: 15_000 });
      if (result.error) return { available: false, prefix: [], reason: `unshare is not usable here (${result.error.message})` };
      try {
        const report = JSON.parse(result.stdout.trim()) as { interfaces: string[]; connect: number };
        if (report.interfaces.some((name) => name !== "lo")) return { available: false, prefix: [], reason: `the new network namespace still has interfaces ${report.interfaces.join(", ")}` };
        if (report.connect === 0) return { available: false, prefix: [], reason: "a connection succeeded inside the new network namespace" };
        return { available: true, prefix: ["unshare", ...UNSHARE_ARGS] };
      } catch {
        return { available: false, prefix: [], reason: `user namespaces are not available (unshare: ${result.stderr.trim().split("\n").pop()?.slice(0, 200) || `exit code ${result.code}`})` };
      }
    })();
    isolationCache.set(pythonExecutable, cached);
  }
  return cached;
}
