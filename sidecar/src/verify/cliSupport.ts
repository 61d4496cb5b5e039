/**
 * CLI helpers for verification: the consent question, `--input NAME=VALUE` parsing, and one line
 * of progress per verify/repair event. Kept here so the CLI entry point only wires them in.
 */
import { askYesNo } from "../cli/askYesNo";
import type { JobEvent } from "../protocol";

/** Asks on the terminal; false (no consent) when stdin is not a terminal. */
export const askConsent = askYesNo;

/** `NAME=VALUE` pairs; VALUE is JSON when it parses, else text (as main.py reads --input). */
export function parseInputPairs(pairs: string[]): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new Error(`--input expects NAME=VALUE, got "${pair}"`);
    const text = pair.slice(at + 1);
    try {
      values[pair.slice(0, at)] = JSON.parse(text);
    } catch {
      values[pair.slice(0, at)] = text;
    }
  }
  return values;
}

/** One progress line for a verify/repair event, or null for other events. */
export function describeVerifyEvent(event: JobEvent): string | null {
  switch (event.type) {
    case "verifyStarted":
      return event.round === 0 ? `Verifying the program (${event.execute ? "static checks and a sandboxed run" : "static checks only"})` : `Verifying again after repair round ${event.round}`;
    case "verifyResult": {
      const { report } = event;
      const run = report.execution;
      const measured = run ? `, ran in ${run.wallMs.toFixed(0)} ms wall${run.peakMemoryMB !== null ? `, peak ${run.peakMemoryMB.toFixed(1)} MB` : ""}` : "";
      const isolation = run ? ` [network ${run.isolation.network}, filesystem ${run.isolation.filesystem}]` : "";
      if (report.ok) return `  round ${event.round}: passed${report.executed ? "" : " (static checks; not run)"}${measured}${isolation}`;
      return `  round ${event.round}: ${report.failure?.kind ?? "failed"} failure: ${report.failure?.message.split("\n")[0].slice(0, 160) ?? ""}${measured}`;
    }
    case "repairAttempt":
      return `  repairing sub-task ${event.subTaskIndex + 1} (${event.failureKind} failure), round ${event.round}`;
    case "jobFinished":
      if (!event.verification) return null;
      return event.verification.status === "passed"
        ? `Verification passed (kept round ${event.verification.bestRound} of ${event.verification.rounds + 1}${event.verification.executed ? "" : "; static checks only"})`
        : `Verification failed after ${event.verification.rounds} repair round(s); kept round ${event.verification.bestRound}: ${event.verification.failure?.message.split("\n")[0].slice(0, 160) ?? ""}`;
    default:
      return null;
  }
}
