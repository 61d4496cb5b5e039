/**
 * Runs an assembled program in a sandbox: a temporary working copy of its files (and of the data
 * it is given), a wall-clock timeout, an address-space cap, a file-size cap, capped output
 * capture, no capabilities, and, where Linux user namespaces allow it, no network (a fresh network
 * namespace with only loopback), a read-only view of every other mount with the folders it must
 * not see hidden, and a PID namespace with its own /proc so nothing it starts outlives it and it
 * sees no other process.
 *
 * The program runs under a supervisor (sidecar/python/sandbox_supervisor.py) that it cannot reach:
 * exit status, CPU time and peak memory come from the kernel through the supervisor, times from
 * the supervisor's clock, and the supervisor's report is signed with a per-run key. What the
 * program's process says about itself (final values, the exception, its step marks) is used only
 * when it agrees with those measurements (see sandboxReport.ts).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { cp, mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ExecutionError, Isolation } from "./report";
import { probeIsolation, pythonEnvironment, resolvePython, type IsolationSupport } from "./pythonEnv";
import { shippedPythonPath } from "./pythonFiles";
import { interpretRecords, readSupervisorReport, type ProgramView, type SelfReport } from "./sandboxReport";

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
  /** Files or folders copied into the working copy (e.g. a benchmark's visible inputs), by relative path. */
  copies?: { path: string; source: string }[];
  /** Folders and files the program must not see (empty in its view where the sandbox isolates the filesystem). */
  hidePaths?: string[];
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
  /** Wall-clock time of the whole run, measured by GPIoT. */
  wallMs: number;
  /** CPU time of the program and everything it started (kernel, through the supervisor). */
  cpuMs: number | null;
  /** Times between the preamble's marks, on the supervisor's clock. */
  importMs: number | null;
  pipelineMs: number | null;
  /** The largest resident set of the program or any process it started (kernel, through the supervisor). */
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
  /** Whether the program's own report agreed with the measurements; a rejected one's values are dropped. */
  selfReport: SelfReport;
  /** Set when the run could not be measured (the supervisor was killed, failed, or could not start the program). */
  supervisorError: string | null;
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
  constructor(reason: string, message = `The sandbox cannot isolate the program here (${reason}) and isolation is required.`) {
    super(message);
    this.name = "IsolationUnavailableError";
  }
}

/** The supervisor measures a run from outside the program with fork and wait4: POSIX only. */
export const SANDBOX_PLATFORM_PROBLEM =
  process.platform === "win32" ? "running generated programs needs Linux or macOS (the sandbox measures a run from a parent process with fork and wait4); on Windows, use WSL. Static checks still run." : null;

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
/** The most the program's report lines may take. */
const MAX_REPORT_BYTES = 64 * 1024 * 1024;
/** How long past the timeout the supervisor may take to stop the program and report. */
const SUPERVISOR_GRACE_MS = 15_000;

function insideWorkdir(workdir: string, relative: string): string {
  const destination = path.join(workdir, ...relative.split("/"));
  if (!destination.startsWith(workdir + path.sep)) throw new Error(`Refusing to write outside the working copy: ${relative}`);
  return destination;
}

/** Writes `inputs` as the working copy's inputs file and returns main.py's arguments for it. */
export function inputFiles(inputs: Record<string, unknown>): { file: SandboxFile; args: string[] } {
  return { file: { path: INPUTS_FILE, content: JSON.stringify(inputs) }, args: ["--inputs-json", INPUTS_FILE] };
}

export async function runInSandbox(options: SandboxOptions): Promise<SandboxResult> {
  if (SANDBOX_PLATFORM_PROBLEM) throw new IsolationUnavailableError(SANDBOX_PLATFORM_PROBLEM, `The sandbox cannot run the program here: ${SANDBOX_PLATFORM_PROBLEM}`);
  const python = await resolvePython(options.python);
  const mode = options.isolation ?? "auto";
  const support: IsolationSupport = mode === "off" ? { available: false, prefix: [], reason: "isolation turned off", probed: [] } : await probeIsolation(python.executable);
  if (mode === "required" && !support.available) throw new IsolationUnavailableError(support.reason ?? "unknown reason");

  const workdir = await realpath(await mkdtemp(path.join(os.tmpdir(), "gpiot-run-")));
  const started = performance.now();
  try {
    for (const file of options.files) {
      const destination = insideWorkdir(workdir, file.path);
      await mkdir(path.dirname(destination), { recursive: true });
      await writeFile(destination, file.content);
    }
    for (const copy of options.copies ?? []) {
      const destination = insideWorkdir(workdir, copy.path);
      await mkdir(path.dirname(destination), { recursive: true });
      await cp(copy.source, destination, { recursive: true, mode: constants.COPYFILE_FICLONE });
    }
    await mkdir(path.join(workdir, ".tmp"), { recursive: true });
    const key = randomBytes(32);
    const hide: string[] = [];
    for (const hidden of options.hidePaths ?? []) hide.push(await realpath(hidden).catch(() => path.resolve(hidden)));
    const config = {
      key: key.toString("hex"),
      python: python.executable,
      preamble: shippedPythonPath("sandbox_preamble.py"),
      workdir,
      isolateFs: support.available,
      hide,
      memoryMB: options.memoryMB > 0 ? options.memoryMB : null,
      fileSizeMB: options.fileSizeMB ?? 256,
      timeoutMs: options.timeoutMs,
      maxHintBytes: MAX_REPORT_BYTES,
      program: { workdir, args: options.args, want: options.want ?? [] },
    };
    // The supervisor needs only the standard library: no site-packages to start (-S), nothing from the environment (-I).
    const command = [...support.prefix, python.executable, "-I", "-S", "-B", shippedPythonPath("sandbox_supervisor.py")];
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
      const child = spawn(command[0], command.slice(1), { cwd: workdir, env, stdio: ["pipe", "pipe", "pipe", "pipe"], detached: true });
      const killGroup = () => {
        try {
          if (child.pid) process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      };
      // The supervisor enforces the timeout and reports; this is the backstop if it cannot.
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup();
      }, options.timeoutMs + SUPERVISOR_GRACE_MS);
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
        if (reportBytes <= MAX_REPORT_BYTES * 2) reportChunks.push(chunk);
      });
      report.on("error", () => undefined);
      child.stdin!.on("error", () => undefined);
      child.stdin!.end(JSON.stringify(config));
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

    const read = reportBytes > MAX_REPORT_BYTES * 2 ? { problem: "the supervisor's report is too large" } : readSupervisorReport(Buffer.concat(reportChunks), key);
    const trusted = "report" in read ? read.report : null;
    let supervisorError: string | null = null;
    if ("problem" in read) {
      const how = outcome.signal ? `killed by ${outcome.signal}` : `exit code ${outcome.code}`;
      supervisorError = `${read.problem} (${how})`;
    } else if (trusted?.setup.execError) {
      supervisorError = `the program could not be started: ${trusted.setup.execError}`;
    }
    const view: ProgramView = trusted
      ? interpretRecords(trusted)
      : { outputs: null, finalOutputs: [], error: null, lastModule: null, importMs: null, pipelineMs: null, steps: [], selfReport: { status: "missing" } };
    const setup = trusted?.setup ?? {};
    const notes: string[] = [];
    if (!support.available) notes.push(`not isolated: ${support.reason}`);
    if (support.available && support.note) notes.push(support.note);
    if (setup.filesystemError) notes.push(`filesystem not isolated: ${setup.filesystemError}`);
    if (setup.readOnlyFailed?.length) notes.push(`mounts left writable: ${setup.readOnlyFailed.join(", ")}`);
    if (setup.hidden?.length) notes.push(`hidden from the program: ${setup.hidden.join(", ")}`);
    if (setup.hideFailed?.length) notes.push(`could not hide: ${setup.hideFailed.join(", ")}`);
    if (setup.privilegesError) notes.push(`capabilities not dropped: ${setup.privilegesError}`);
    if (setup.limits?.note) notes.push(setup.limits.note);
    if (view.selfReport.status === "rejected") notes.push(`the program's own report was rejected: ${view.selfReport.problem}`);
    const isolation: Isolation = {
      network: support.available ? "blocked" : "notIsolated",
      filesystem: support.available && setup.filesystem === "readOnly" && !setup.readOnlyFailed?.length ? "readOnly" : "notIsolated",
      processes: support.available ? "pidNamespace" : "processGroup",
      memoryCapMB: setup.limits?.memory ?? null,
      ...(hide.length ? { hidden: setup.hidden?.length === hide.length ? "all" : "notAll" } : {}),
      ...(notes.length ? { note: notes.join("; ") } : {}),
    };
    const program = trusted?.program;
    return {
      exitCode: program ? program.exitCode : null,
      signal: program ? program.signal : outcome.signal,
      timedOut: timedOut || (program?.timedOut ?? false),
      outputLimitExceeded,
      cancelled,
      wallMs,
      cpuMs: program?.cpuMs ?? null,
      importMs: view.importMs,
      pipelineMs: view.pipelineMs,
      peakMemoryMB: program?.peakMemoryMB ?? null,
      stdout: stdout.text(),
      stderr: stderr.text(),
      stdoutBytes: stdout.total,
      stderrBytes: stderr.total,
      error: view.error,
      outputs: view.outputs,
      finalOutputs: view.finalOutputs,
      steps: view.steps,
      lastModule: view.lastModule,
      selfReport: view.selfReport,
      supervisorError,
      isolation,
      python,
      workdir: options.keepWorkdir ? workdir : null,
    };
  } finally {
    if (!options.keepWorkdir) await rm(workdir, { recursive: true, force: true }).catch(() => undefined);
  }
}
