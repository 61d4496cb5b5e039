/**
 * CLI helpers for verification: the consent question, `--input NAME=VALUE` parsing, and one line
 * of progress per verify/repair event. Kept here so the CLI entry point only wires them in.
 */
import { askYesNo } from "../cli/askYesNo";
import type { JobEvent } from "../protocol";
import type { SandboxProbe } from "./report";
import { probeSandbox } from "./sandboxProbe";

export interface RunConsentOptions {
  python: string;
  isolation?: "auto" | "required" | "off";
  /** --yes: consent given on the command line; what the sandbox is is still said. */
  assumeYes: boolean;
  /** --quiet: say nothing when the sandbox isolates and the answer is yes. */
  quiet?: boolean;
  /** Where the findings and the question go (stderr). */
  write(text: string): void;
  /** Asks a yes/no question; default: on the terminal, false without one. */
  ask?(question: string): Promise<boolean>;
}

/** The question, after what the probe found: never a promise the sandbox cannot keep here. */
export function consentQuestion(probe: SandboxProbe): string {
  if (probe.outcome === "isolated") return "Run the generated program in this sandbox to check and repair it?";
  return "Run the generated program WITHOUT isolation to check and repair it?";
}

/**
 * Probes the sandbox, says what it found, and only then asks (or, with --yes, goes ahead). When
 * the program would not run (no interpreter, isolation required but unavailable) it says why and
 * returns false: the checks stay static.
 */
export async function askRunConsent(options: RunConsentOptions): Promise<boolean> {
  const probe = await probeSandbox({ python: options.python, isolation: options.isolation });
  if (!(options.quiet && options.assumeYes && probe.outcome === "isolated")) options.write(`Sandbox: ${probe.summary}\n`);
  if (probe.outcome === "refused") {
    options.write("Not running the generated program: static checks only.\n");
    return false;
  }
  if (options.assumeYes) {
    if (probe.outcome === "notIsolated") options.write("Running it without isolation (--yes).\n");
    return true;
  }
  const consent = await (options.ask ?? askYesNo)(consentQuestion(probe));
  if (!consent) options.write("Not running the generated program (no consent; pass --yes to allow it): static checks only.\n");
  return consent;
}

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
    case "verifyStarted": {
      if (event.round > 0) return `Verifying again after repair round ${event.round}`;
      const sandbox = event.sandbox && event.sandbox.outcome !== "isolated" ? ` [sandbox ${event.sandbox.outcome === "notIsolated" ? "NOT isolated" : "refused"}: ${event.sandbox.reason ?? ""}]` : "";
      return `Verifying the program (${event.execute ? "static checks and a sandboxed run" : "static checks only"})${sandbox}`;
    }
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
