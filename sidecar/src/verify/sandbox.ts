/**
 * Runs an assembled program in a sandbox: a temporary working copy of its files, a wall-clock
 * timeout, an address-space cap, a file-size cap, capped output capture, and, where Linux user
 * namespaces allow it, no network (a fresh network namespace with only loopback), a read-only
 * view of every other mount, and a PID namespace so nothing it starts outlives it.
 *
 * What it measures: exit code, wall time, time in the sub-tasks' imports and run() calls, peak
 * resident memory (ru_maxrss of the program and its children), stdout, stderr, and the final
 * values as JSON (reported by the preamble on file descriptor 3).
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ExecutionError, Isolation } from "./report";
import { probeIsolation, pythonEnvironment, resolvePython } from "./pythonEnv";
import { SANDBOX_PREAMBLE } from "./sandboxPreamble";

export interface SandboxFile {
  /** Relative, "/"-separated. */
  path: string;
  content: string | Buffer;
}

export interface SandboxOptions {
  files: SandboxFile[];
  /** main.py's command line (e.g. ["--inputs-json", ".gpiot-inputs.json"]). */
  args: string[];
  /** The Python interpreter the user chose. */
  python: string;
  timeoutMs: number;
  /** Address-space cap (RLIMIT_AS); 0 = none. */
  memoryMB: number;
  /** Largest file the program may write (RLIMIT_FSIZE). */
  fileSizeMB?: number;
  /** The run is killed once stdout + stderr exceed this. */
  maxOutputBytes?: number;
  /** Kept per stream: the first half and the last half of this many bytes. */
  captureBytes?: number;
  /** "auto": isolate where possible; "required": refuse to run without isolation; "off": never. */
  isolation?: "auto" | "required" | "off";
  /** Names of values to return from the final state (besides the last sub-task's outputs). */
  want?: string[];
  signal?: AbortSignal;
  /** Keep the working copy (for debugging); its path is in the result. */
  keepWorkdir?: boolean;
}

export interface SandboxResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  outputLimitExceeded: boolean;
  cancelled: boolean;
  wallMs: number;
  importMs: number | null;
  pipelineMs: number | null;
  peakMemoryMB: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: number;
  stderrBytes: number;
  error: ExecutionError | null;
  /** Final values by name, as JSON; null when the run produced none. */
  outputs: Record<string, unknown> | null;
  finalOutputs: string[];
  /** Each sub-task's run() time and the peak memory once it returned, in order. */
  steps: SandboxStep[];
  /** The module whose step was running last (where a timeout or kill hit). */
  lastModule: string | null;
  isolation: Isolation;
  python: { executable: string; version: string };
  workdir: string | null;
}

export interface SandboxStep {
  module: string;
  ms: number;
  peakMemoryMB: number | null;
}

export class IsolationUnavailableError extends Error {
  readonly code = "VERIFY_UNAVAILABLE";
  constructor(reason: string) {
    super(`The sandbox cannot isolate the program here (${reason}) and isolation is required.`);
    this.name = "IsolationUnavailableError";
  }
}

/** Keeps the head and the tail of a stream, counting every byte. */
class BoundedCapture {
  private head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer = Buffer.alloc(0);
  total = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    const half = Math.floor(this.limit / 2);
    if (this.headBytes < half) {
      const take = chunk.subarray(0, half - this.headBytes);
      this.head.push(take);
      this.headBytes += take.length;
      chunk = chunk.subarray(take.length);
    }
    if (chunk.length) {
      this.tail = Buffer.concat([this.tail, chunk]);
      if (this.tail.length > half) this.tail = this.tail.subarray(this.tail.length - half);
    }
  }

  text(): string {
    const head = Buffer.concat(this.head).toString("utf8");
    const skipped = this.total - this.headBytes - this.tail.length;
    return skipped > 0 ? `${head}\n[... ${skipped} bytes left out ...]\n${this.tail.toString("utf8")}` : head + this.tail.toString("utf8");
  }
}

const INPUTS_FILE = ".gpiot-inputs.json";

/** Writes `inputs` as the working copy's inputs file and returns main.py's arguments for it. */
export function inputFiles(inputs: Record<string, unknown>): { file: SandboxFile; args: string[] } {
  return { file: { path: INPUTS_FILE, content: JSON.stringify(inputs) }, args: ["--inputs-json", INPUTS_FILE] };
}

export async function runInSandbox(options: SandboxOptions): Promise<SandboxResult> {
  const python = await resolvePython(options.python);
  const mode = options.isolation ?? "auto";
  const support = mode === "off" ? { available: false, prefix: [] as string[], reason: "isolation turned off" } : await probeIsolation(python.executable);
  if (mode === "required" && !support.available) throw new IsolationUnavailableError(support.reason ?? "unknown reason");

  const workdir = await mkdtemp(path.join(os.tmpdir(), "gpiot-run-"));
  const started = performance.now();
  try {
    for (const file of options.files) {
      const destination = path.join(workdir, ...file.path.split("/"));
      if (!destination.startsWith(workdir + path.sep)) throw new Error(`Refusing to write outside the working copy: ${file.path}`);
      await mkdir(path.dirname(destination), { recursive: true });
      await writeFile(destination, file.content);
    }
    await mkdir(path.join(workdir, ".tmp"), { recursive: true });
    const config = {
      workdir,
      args: options.args,
      memoryMB: options.memoryMB > 0 ? options.memoryMB : null,
      fileSizeMB: options.fileSizeMB ?? 256,
      isolateFs: support.available,
      want: options.want ?? [],
    };
    const command = [...support.prefix, python.executable, "-B", "-c", SANDBOX_PREAMBLE, JSON.stringify(config)];
    const env = pythonEnvironment({ HOME: workdir, TMPDIR: path.join(workdir, ".tmp"), TMP: path.join(workdir, ".tmp"), TEMP: path.join(workdir, ".tmp") });
    const captureBytes = options.captureBytes ?? 64 * 1024;
    const maxOutputBytes = options.maxOutputBytes ?? 8 * 1024 * 1024;
    const stdout = new BoundedCapture(captureBytes);
    const stderr = new BoundedCapture(captureBytes);
    const reportChunks: Buffer[] = [];
    let reportBytes = 0;
    let timedOut = false;
    let outputLimitExceeded = false;
    let cancelled = false;

    const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
      const child = spawn(command[0], command.slice(1), { cwd: workdir, env, stdio: ["ignore", "pipe", "pipe", "pipe"], detached: true });
      const killGroup = () => {
        try {
          if (child.pid) process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup();
      }, options.timeoutMs);
      const onAbort = () => {
        cancelled = true;
        killGroup();
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const checkOutput = () => {
        if (!outputLimitExceeded && stdout.total + stderr.total > maxOutputBytes) {
          outputLimitExceeded = true;
          killGroup();
        }
      };
      child.stdout!.on("data", (chunk: Buffer) => {
        stdout.push(chunk);
        checkOutput();
      });
      child.stderr!.on("data", (chunk: Buffer) => {
        stderr.push(chunk);
        checkOutput();
      });
      const report = child.stdio[3] as NodeJS.ReadableStream;
      report.on("data", (chunk: Buffer) => {
        reportBytes += chunk.length;
        if (reportBytes <= 64 * 1024 * 1024) reportChunks.push(chunk);
      });
      report.on("error", () => undefined);
      // Whatever the program left running dies with it.
      child.on("exit", () => killGroup());
      child.on("error", (spawnError) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        resolve({ code: null, signal: null, spawnError });
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        resolve({ code, signal });
      });
      if (options.signal?.aborted) onAbort();
    });
    const wallMs = Math.round((performance.now() - started) * 10) / 10;
    if (outcome.spawnError) throw new Error(`Could not start ${command[0]}: ${outcome.spawnError.message}`);

    let report: {
      exitCode?: number;
      importMs?: number;
      pipelineMs?: number;
      peakMemoryMB?: number | null;
      error?: ExecutionError;
      outputs?: Record<string, unknown>;
      finalOutputs?: string[];
      steps?: SandboxStep[];
      setup?: { filesystem?: string; readOnlyFailed?: string[]; filesystemError?: string; limits?: { memory?: number | null; note?: string } };
    } = {};
    let lastModule: string | null = null;
    for (const line of Buffer.concat(reportChunks).toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      try {
        const message = JSON.parse(line) as { current?: string | null; final?: typeof report };
        if (message.final) report = message.final;
        else if (message.current) lastModule = message.current;
      } catch {
        // a torn last line (the run was killed mid-write)
      }
    }
    const notes: string[] = [];
    if (!support.available) notes.push(`not isolated: ${support.reason}`);
    if (report.setup?.filesystemError) notes.push(`filesystem not isolated: ${report.setup.filesystemError}`);
    if (report.setup?.readOnlyFailed?.length) notes.push(`mounts left writable: ${report.setup.readOnlyFailed.join(", ")}`);
    if (report.setup?.limits?.note) notes.push(report.setup.limits.note);
    const isolation: Isolation = {
      network: support.available ? "blocked" : "notIsolated",
      filesystem: support.available && report.setup?.filesystem === "readOnly" && !report.setup.readOnlyFailed?.length ? "readOnly" : "notIsolated",
      processes: support.available ? "pidNamespace" : "processGroup",
      memoryCapMB: report.setup?.limits?.memory ?? (report.setup ? null : options.memoryMB || null),
      ...(notes.length ? { note: notes.join("; ") } : {}),
    };
    return {
      exitCode: outcome.code,
      signal: outcome.signal,
      timedOut,
      outputLimitExceeded,
      cancelled,
      wallMs,
      importMs: typeof report.importMs === "number" ? report.importMs : null,
      pipelineMs: typeof report.pipelineMs === "number" ? report.pipelineMs : null,
      peakMemoryMB: typeof report.peakMemoryMB === "number" ? report.peakMemoryMB : null,
      stdout: stdout.text(),
      stderr: stderr.text(),
      stdoutBytes: stdout.total,
      stderrBytes: stderr.total,
      error: report.error ?? null,
      outputs: report.outputs ?? null,
      finalOutputs: report.finalOutputs ?? [],
      steps: report.steps ?? [],
      lastModule,
      isolation,
      python,
      workdir: options.keepWorkdir ? workdir : null,
    };
  } finally {
    if (!options.keepWorkdir) await rm(workdir, { recursive: true, force: true }).catch(() => undefined);
  }
}
