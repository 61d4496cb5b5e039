/**
 * The verify-repair loop: check the program (round 0), and while it fails and rounds are left,
 * send each failing sub-task back to code generation with its code and the error, reassemble,
 * and check again. Every round is reported as it happens and kept; at the end the program keeps
 * the best version (see `compareReports`), which need not be the last.
 *
 * The loop always ends: at most `repairRounds` rounds, and it stops early when the failure cannot
 * be pinned to a sub-task.
 */
import type { CodeState, ProgramSubTask } from "../protocol";
import type { CodeArtifact, SyntaxCheck } from "../schemas";
import { compareReports, type FailureKind, type SandboxProbe, type VerificationState, type VerifyAttempt, type VerifyReport } from "./report";
import { probeSandbox } from "./sandboxProbe";
import { verifyProgram, type ProgramFileLike, type VerifySettingsLike } from "./verifier";

export type VerifyLoopEvent =
  | { type: "verifyStarted"; round: number; execute: boolean; sandbox?: SandboxProbe }
  | { type: "verifyResult"; round: number; report: VerifyReport }
  | { type: "repairAttempt"; round: number; subTaskId: string; subTaskIndex: number; failureKind: FailureKind; error: string };

export interface RepairLoopHost {
  subTasks(): ProgramSubTask[];
  /** The program as it stands, assembled in memory. */
  assemble(): ProgramFileLike[];
  /** Regenerates one sub-task's code with the repair input; throws when generation fails. */
  regenerate(subTaskId: string, repair: { previousCode: string; error: string }): Promise<void>;
  emit(event: VerifyLoopEvent): void;
  signal: AbortSignal;
}

export interface RepairLoopOptions {
  execute: boolean;
  repairRounds: number;
  inputs?: Record<string, unknown>;
  dataFile?: string;
  settings: VerifySettingsLike;
}

interface SavedCode {
  artifact: CodeArtifact | null;
  syntax: SyntaxCheck | null;
  codeState: CodeState;
}

function save(subTasks: ProgramSubTask[]): Map<string, SavedCode> {
  return new Map(subTasks.map((entry) => [entry.id, { artifact: entry.artifact, syntax: entry.syntax, codeState: entry.codeState }]));
}

function restore(subTasks: ProgramSubTask[], saved: Map<string, SavedCode>): void {
  for (const entry of subTasks) {
    const code = saved.get(entry.id);
    if (!code) continue;
    entry.artifact = code.artifact;
    entry.syntax = code.syntax;
    entry.codeState = code.codeState;
  }
}

function repairText(report: VerifyReport, subTaskIndex: number, fileName: string): string {
  const failure = report.failure!;
  const ownIssues = report.staticIssues.filter((issue) => issue.severity === "error" && issue.subTaskIndex === subTaskIndex);
  if ((failure.kind === "static" || failure.kind === "import") && ownIssues.length && !report.executed)
    return `${failure.kind === "static" ? "Static check" : "Import check"} of ${fileName} failed:\n${ownIssues.map((issue) => `- ${issue.message}`).join("\n")}`;
  const heading = { static: "Static check failed", import: "Import failed", runtime: "Running the program failed", resource: "The program breaks the resource limits" }[failure.kind];
  return `${heading} (${fileName}): ${failure.message}\n${failure.detail}`;
}

export async function verifyAndRepair(host: RepairLoopHost, options: RepairLoopOptions): Promise<VerificationState> {
  const attempts: VerifyAttempt[] = [];
  const versions: Map<string, SavedCode>[] = [];
  let repairs: VerifyAttempt["repairs"] = [];
  // Said before the first run: with "auto", an unisolated run happens only after this event says so.
  const sandbox = options.execute ? await probeSandbox({ python: options.settings.python, isolation: options.settings.isolation }) : undefined;
  for (let round = 0; ; round++) {
    host.emit({ type: "verifyStarted", round, execute: options.execute, ...(sandbox ? { sandbox } : {}) });
    const { report } = await verifyProgram({
      files: host.assemble(),
      execute: options.execute,
      settings: options.settings,
      inputs: options.inputs,
      dataFile: options.dataFile,
      signal: host.signal,
    });
    if (host.signal.aborted) throw Object.assign(new Error("Cancelled by the user"), { name: "AbortError" });
    attempts.push({ round, report, repairs });
    versions.push(save(host.subTasks()));
    host.emit({ type: "verifyResult", round, report });
    if (report.ok || round >= options.repairRounds || !report.failure || report.failure.subTaskIndexes.length === 0) break;

    repairs = [];
    const subTasks = host.subTasks();
    const files = host.assemble();
    for (const index of report.failure.subTaskIndexes) {
      const entry = subTasks[index];
      if (!entry?.artifact) continue;
      // The assembler writes the modules first, in sub-task order.
      const fileName = files[index]?.path ?? `sub-task ${index + 1}`;
      const error = repairText(report, index, fileName);
      host.emit({ type: "repairAttempt", round: round + 1, subTaskId: entry.id, subTaskIndex: index, failureKind: report.failure.kind, error });
      const before = { artifact: entry.artifact, syntax: entry.syntax, codeState: entry.codeState };
      try {
        await host.regenerate(entry.id, { previousCode: entry.artifact.code, error });
        repairs.push({ subTaskId: entry.id, subTaskIndex: index, generated: true });
      } catch (generationError) {
        if (host.signal.aborted) throw generationError;
        Object.assign(entry, before);
        repairs.push({ subTaskId: entry.id, subTaskIndex: index, generated: false, error: (generationError as Error).message });
      }
    }
  }
  let best = 0;
  attempts.forEach((attempt, index) => {
    if (compareReports(attempt.report, attempts[best].report) > 0) best = index;
  });
  if (best !== attempts.length - 1) restore(host.subTasks(), versions[best]);
  return { status: attempts[best].report.ok ? "passed" : "failed", bestRound: attempts[best].round, maxRounds: options.repairRounds, attempts };
}
