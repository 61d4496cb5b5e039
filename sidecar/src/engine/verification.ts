/**
 * Verification as the engine runs it: what a request may do (consent and workspace trust are
 * checked when it is made, not when it runs) and one verify-and-repair pass over a program.
 */
import type { ErrorInfo, JobEvent } from "../protocol";
import type { EngineSettings } from "../settings";
import { assembleProgram } from "../pipeline/assembleProgram";
import { PythonUnavailableError } from "../verify/pythonEnv";
import { verifyAndRepair, type VerifyLoopEvent } from "../verify/repairLoop";
import { VerifyRequestSchema, type VerifyRequest } from "../verify/report";
import { IsolationUnavailableError } from "../verify/sandbox";
import { EngineError, toErrorInfo } from "./errors";
import type { Program } from "./program";

export type VerificationSummary = NonNullable<Extract<JobEvent, { type: "jobFinished" }>["verification"]>;

/** What one verification may do, fixed when it is requested. */
export interface VerifyPlan {
  execute: boolean;
  repairRounds: number;
  inputs?: Record<string, unknown>;
  dataFile?: string;
  /** Fail the job when verification cannot run (gpiot/verify) rather than skip it (after synthesis). */
  required: boolean;
}

/**
 * An explicit request that runs the program needs consent (in the request or the verify.consent
 * setting) and a trusted workspace, else it is refused; the verify.enabled setting alone runs the
 * program only with consent and trust, else checks it statically. Null: no verification.
 */
export function planVerification(settings: EngineSettings["verify"], request: VerifyRequest | undefined, workspaceTrusted: boolean | undefined, required: boolean): VerifyPlan | null {
  if (!request && !settings.enabled) return null;
  const parsed = VerifyRequestSchema.parse(request ?? { execute: settings.consent && workspaceTrusted !== false });
  const consent = parsed.consent ?? settings.consent;
  if (parsed.execute && workspaceTrusted === false)
    throw new EngineError("WORKSPACE_UNTRUSTED", "This workspace is not trusted: GPIoT never runs generated code in it. Trust the workspace, or verify with execute: false (static checks only).");
  if (parsed.execute && !consent)
    throw new EngineError("CONSENT_REQUIRED", "Running the generated program needs your consent: pass consent: true (CLI: --yes), set verify.consent, or verify with execute: false (static checks only).");
  return { execute: parsed.execute, repairRounds: parsed.repairRounds ?? settings.repairRounds, inputs: parsed.inputs, dataFile: parsed.dataFile, required };
}

export interface VerificationContext {
  program: Program;
  settings: EngineSettings;
  profile: string;
  signal: AbortSignal;
  emit(event: VerifyLoopEvent | { type: "stageFailed"; stage: "verify"; error: ErrorInfo }): void;
  regenerate(subTaskId: string, repair: { previousCode: string; error: string }): Promise<void>;
}

/** Runs the verify/repair loop; the program keeps its best round. Undefined: skipped (it could not run). */
export async function runVerification(context: VerificationContext, plan: VerifyPlan): Promise<{ summary: VerificationSummary; ms: number } | undefined> {
  const { program, settings, signal } = context;
  try {
    const state = await verifyAndRepair(
      {
        subTasks: () => program.subTasks,
        assemble: () => {
          const ready = program.parts();
          if ("missing" in ready) throw new EngineError("NOTHING_TO_ASSEMBLE", `Sub-task "${ready.missing.subTask.name}" (${ready.missing.id}) has no up-to-date code.`);
          return assembleProgram({ requirement: program.requirement, limits: program.limits, parts: ready.parts, generator: { profile: context.profile, createdAt: new Date().toISOString() }, programId: program.uid });
        },
        regenerate: context.regenerate,
        emit: context.emit,
        signal,
      },
      {
        execute: plan.execute,
        repairRounds: plan.repairRounds,
        inputs: plan.inputs,
        dataFile: plan.dataFile,
        settings: { python: settings.verify.pythonPath ?? settings.python, timeoutMs: settings.verify.timeoutMs, memoryMB: settings.verify.memoryMB, isolation: settings.verify.isolation },
      },
    );
    program.verification = state;
    const best = state.attempts.find((attempt) => attempt.round === state.bestRound)!;
    return {
      summary: { status: state.status, bestRound: state.bestRound, rounds: state.attempts.length - 1, executed: best.report.executed, failure: best.report.failure },
      ms: state.attempts.reduce((sum, attempt) => sum + attempt.report.ms, 0),
    };
  } catch (error) {
    if (plan.required || signal.aborted || !(error instanceof PythonUnavailableError || error instanceof IsolationUnavailableError)) throw error;
    context.emit({ type: "stageFailed", stage: "verify", error: toErrorInfo(error) });
    return undefined;
  }
}
