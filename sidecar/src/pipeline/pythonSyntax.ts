/**
 * Checks Python syntax with the user's interpreter (compile() only: nothing generated is executed).
 * Without an interpreter the check reports `checked: false` rather than guessing.
 *
 * One interpreter serves every check of an engine (sidecar/python/syntax_check.py, one JSON line in and
 * out per check): starting Python for each check cost more than generating the code on small
 * models. A cancelled or timed-out check kills the interpreter; the next check starts a new one.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import type { SyntaxCheck } from "../schemas";
import { shippedPythonPath } from "../verify/pythonFiles";
import { CancelledError } from "./structuredGeneration";

export const SYNTAX_CHECK_TIMEOUT_MS = 10_000;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

interface PendingCheck {
  source: string;
  fileName: string;
  signal?: AbortSignal;
  resolve(check: SyntaxCheck): void;
  reject(error: Error): void;
  onAbort?: () => void;
}

interface Interpreter {
  child: ChildProcessWithoutNullStreams;
  stdout: string;
  stderr: string;
  spawnError?: Error;
  exited: boolean;
}

export class PythonSyntaxChecker {
  private interpreter: Interpreter | null = null;
  private readonly queue: PendingCheck[] = [];
  private current: PendingCheck | null = null;
  private timer: NodeJS.Timeout | null = null;
  private disposed = false;

  constructor(
    readonly python = "python3",
    private readonly timeoutMs = SYNTAX_CHECK_TIMEOUT_MS,
  ) {}

  /** The interpreter's process id while one runs (tests check that dispose and cancel end it). */
  get pid(): number | undefined {
    return this.interpreter && !this.interpreter.exited ? this.interpreter.child.pid : undefined;
  }

  /** `signal` kills the interpreter and rejects with CancelledError, so a cancel never waits for Python. */
  check(source: string, fileName: string, signal?: AbortSignal): Promise<SyntaxCheck> {
    if (signal?.aborted) return Promise.reject(new CancelledError());
    if (this.disposed) return Promise.resolve({ checked: false, ok: false, message: "The syntax checker was shut down" });
    return new Promise<SyntaxCheck>((resolve, reject) => {
      const pending: PendingCheck = { source, fileName, signal, resolve, reject };
      if (signal) {
        pending.onAbort = () => this.abort(pending);
        signal.addEventListener("abort", pending.onAbort, { once: true });
      }
      this.queue.push(pending);
      this.pump();
    });
  }

  /** Starts the interpreter ahead of the first check (Python takes a while to start), unless one runs. */
  warmUp(): void {
    if (this.disposed || this.interpreter) return;
    this.interpreter = this.start();
  }

  /** Kills the interpreter; checks still waiting resolve as not checked. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.kill();
    const waiting = [...(this.current ? [this.current] : []), ...this.queue.splice(0)];
    this.current = null;
    for (const pending of waiting) this.settle(pending, { checked: false, ok: false, message: "The syntax checker was shut down" });
  }

  private settle(pending: PendingCheck, result: SyntaxCheck | Error): void {
    if (pending.onAbort) pending.signal?.removeEventListener("abort", pending.onAbort);
    if (result instanceof Error) pending.reject(result);
    else pending.resolve(result);
  }

  private abort(pending: PendingCheck): void {
    if (this.current === pending) {
      this.current = null;
      this.clearTimer();
      this.kill();
    } else {
      const index = this.queue.indexOf(pending);
      if (index < 0) return;
      this.queue.splice(index, 1);
    }
    this.settle(pending, new CancelledError());
    this.pump();
  }

  private kill(): void {
    const interpreter = this.interpreter;
    this.interpreter = null;
    if (interpreter && !interpreter.exited) interpreter.child.kill("SIGKILL");
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private start(): Interpreter {
    const child = spawn(this.python, ["-I", "-S", shippedPythonPath("syntax_check.py")], { stdio: ["pipe", "pipe", "pipe"] });
    const interpreter: Interpreter = { child, stdout: "", stderr: "", exited: false };
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      interpreter.stdout += chunk;
      this.readAnswers(interpreter);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      interpreter.stderr = (interpreter.stderr + chunk).slice(-2000);
    });
    child.stdin.on("error", () => undefined);
    child.on("error", (error) => {
      interpreter.spawnError = error;
    });
    child.on("close", () => {
      interpreter.exited = true;
      if (this.interpreter !== interpreter) return;
      this.interpreter = null;
      const pending = this.current;
      if (!pending) return;
      this.current = null;
      this.clearTimer();
      this.settle(
        pending,
        interpreter.spawnError
          ? { checked: false, ok: false, message: `No Python interpreter to check syntax (${this.python}: ${interpreter.spawnError.message})` }
          : { checked: false, ok: false, message: `The syntax check did not run: ${interpreter.stderr.trim().slice(0, 300) || "the interpreter exited"}` },
      );
      this.pump();
    });
    return interpreter;
  }

  private readAnswers(interpreter: Interpreter): void {
    let newline: number;
    while ((newline = interpreter.stdout.indexOf("\n")) >= 0) {
      const line = interpreter.stdout.slice(0, newline).trim();
      interpreter.stdout = interpreter.stdout.slice(newline + 1);
      const pending = this.current;
      if (!pending || this.interpreter !== interpreter || !line) continue;
      this.current = null;
      this.clearTimer();
      let check: SyntaxCheck;
      try {
        const answer = JSON.parse(line) as { ok: boolean; message?: string; line?: number | null; bad_request?: boolean };
        check = answer.bad_request
          ? { checked: false, ok: false, message: answer.message ?? "The syntax checker could not read the request" }
          : { checked: true, ok: answer.ok === true, ...(answer.message ? { message: answer.message } : {}), ...(typeof answer.line === "number" ? { line: answer.line } : {}) };
      } catch {
        check = { checked: false, ok: false, message: `The syntax check did not run: unexpected output ${JSON.stringify(line.slice(0, 200))}` };
      }
      this.settle(pending, check);
    }
    this.pump();
  }

  private pump(): void {
    if (this.current || this.disposed) return;
    const pending = this.queue.shift();
    if (!pending) return;
    this.current = pending;
    this.interpreter ??= this.start();
    const interpreter = this.interpreter;
    this.timer = setTimeout(() => {
      if (this.current !== pending) return;
      this.current = null;
      this.timer = null;
      this.kill();
      this.settle(pending, { checked: false, ok: false, message: `The syntax check timed out after ${Number((this.timeoutMs / 1000).toFixed(1))} s` });
      this.pump();
    }, this.timeoutMs);
    // Lone surrogates cannot be encoded for Python: they become U+FFFD, as a file on disk would have them.
    interpreter.child.stdin.write(`${JSON.stringify({ file: pending.fileName, source: pending.source.replace(LONE_SURROGATE, "\uFFFD") })}\n`);
  }
}

/** One check with an interpreter of its own (for callers without an engine, e.g. tests and scripts). */
export async function checkPythonSyntax(source: string, fileName: string, python = "python3", signal?: AbortSignal): Promise<SyntaxCheck> {
  const checker = new PythonSyntaxChecker(python);
  try {
    return await checker.check(source, fileName, signal);
  } finally {
    checker.dispose();
  }
}
