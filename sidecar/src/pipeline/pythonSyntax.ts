/**
 * Checks Python syntax with the user's interpreter (compile() only: nothing generated is executed).
 * Without an interpreter the check reports `checked: false` rather than guessing.
 */
import { spawn } from "node:child_process";
import type { SyntaxCheck } from "../schemas";
import { shippedPythonPath } from "../verify/pythonFiles";
import { CancelledError } from "./structuredGeneration";

/** `signal` kills the check and rejects with CancelledError, so a cancel never waits for Python. */
export async function checkPythonSyntax(source: string, fileName: string, python = "python3", signal?: AbortSignal): Promise<SyntaxCheck> {
  if (signal?.aborted) throw new CancelledError();
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    let settled = false;
    const onAbort = () => {
      child.kill("SIGKILL");
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new CancelledError());
    };
    const finish = (check: SyntaxCheck) => {
      signal?.removeEventListener("abort", onAbort);
      if (!settled) {
        settled = true;
        resolve(check);
      }
    };
    const child = spawn(python, ["-I", "-S", shippedPythonPath("syntax_check.py"), fileName], { stdio: ["pipe", "pipe", "pipe"] });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish({ checked: false, ok: false, message: "The syntax check timed out after 10 s" });
    }, 10_000);
    signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (error) => {
      clearTimeout(timer);
      finish({ checked: false, ok: false, message: `No Python interpreter to check syntax (${python}: ${error.message})` });
    });
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", () => {
      clearTimeout(timer);
      try {
        const result = JSON.parse(stdout.trim()) as { ok: boolean; message?: string; line?: number | null };
        finish({ checked: true, ok: result.ok, ...(result.message ? { message: result.message } : {}), ...(typeof result.line === "number" ? { line: result.line } : {}) });
      } catch {
        finish({ checked: false, ok: false, message: `The syntax check did not run: ${stderr.trim().slice(0, 300) || "no output"}` });
      }
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(source);
  });
}
