/**
 * The rules of the task tree, as plain functions of a program's state (no vscode import, so they
 * are unit-tested with node:test): whether the program can be assembled and, if not, what is
 * missing in words; whether its written files are out of date; which programs count as finished;
 * and how the engine's messages read without its internal ids.
 */
import type { CodeState } from "../../sidecar/src/protocol";
import type { SubTask, TaskSpec, CodeArtifact } from "../../sidecar/src/schemas";

export interface RuleSubTask {
  id: string;
  subTask: SubTask;
  spec: TaskSpec | null;
  specStale?: boolean;
  artifact: CodeArtifact | null;
  codeState: CodeState;
  activeStage?: "rt" | "cg";
}

export interface RuleProgram {
  programId: string;
  subTasks: RuleSubTask[];
  busy: boolean;
  phase: string;
  files: string[];
  lost: boolean;
  writtenFingerprint?: string;
}

export type MissingPart = "spec" | "specStale" | "code" | "codeStale";

export interface AssemblyReadiness {
  ready: boolean;
  /** Sub-tasks that keep the program from being assembled, in order. */
  missing: { index: number; name: string; what: MissingPart }[];
  /** Some sub-tasks can be brought up to date by "Regenerate Stale Sub-tasks". */
  regenerable: boolean;
  /** Why it cannot be assembled, in words (empty when it can). */
  reason: string;
}

export function displayName(subTask: SubTask, index: number): string {
  const name = subTask.name.replace(/\s+/g, " ").trim();
  return name ? `sub-task ${index + 1} “${name.length > 40 ? `${name.slice(0, 39)}…` : name}”` : `sub-task ${index + 1}`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** What one sub-task still needs before it can be assembled, if anything. */
export function missingPart(entry: RuleSubTask): MissingPart | undefined {
  if (!entry.spec) return "spec";
  if (entry.specStale) return "specStale";
  if (!entry.artifact) return "code";
  if (entry.codeState === "stale" || entry.codeState === "pending" || entry.codeState === "streaming" || entry.codeState === "failed") return "codeStale";
  return undefined;
}

const WHAT: Record<MissingPart, string> = {
  spec: "has no spec yet",
  specStale: "was edited: its spec and code are out of date",
  code: "has no code yet",
  codeStale: "has out-of-date code",
};

/** Assembling succeeds when every sub-task has an up-to-date spec and code (a syntax error still assembles). */
export function assemblyReadiness(program: RuleProgram): AssemblyReadiness {
  if (program.lost) return { ready: false, missing: [], regenerable: false, reason: "The engine that held this program stopped; it needs a new run (Retry)." };
  if (!program.subTasks.length) return { ready: false, missing: [], regenerable: false, reason: "The program has no sub-tasks yet." };
  const missing = program.subTasks.flatMap((entry, index) => {
    const what = missingPart(entry);
    return what ? [{ index, name: entry.subTask.name, what }] : [];
  });
  if (!missing.length) return { ready: true, missing, regenerable: false, reason: "" };
  const shown = missing.slice(0, 3).map((part) => `${displayName(program.subTasks[part.index].subTask, part.index)} ${WHAT[part.what]}`);
  const more = missing.length > shown.length ? `, and ${missing.length - shown.length} more` : "";
  return { ready: false, missing, regenerable: true, reason: `Not ready to assemble: ${capitalize(`${shown.join("; ")}${more}`)}.` };
}

/** What the written files were made from: the sub-tasks, specs and code, in order. */
export function fingerprint(program: { subTasks: RuleSubTask[] }): string {
  return JSON.stringify(program.subTasks.map((entry) => [entry.subTask, entry.spec, entry.artifact?.code ?? null]));
}

/** The program's folder no longer matches its sub-tasks (assemble again to update it). */
export function filesOutOfDate(program: RuleProgram): boolean {
  if (!program.files.length || program.writtenFingerprint === undefined) return false;
  return fingerprint(program) !== program.writtenFingerprint;
}

/** Done, failed, cancelled or lost: what "Clear Finished" removes. Programs waiting for the user are kept. */
export function isFinished(program: RuleProgram): boolean {
  if (program.busy) return false;
  if (program.lost) return true;
  return program.phase === "done" || program.phase === "failed" || program.phase === "cancelled";
}

/**
 * The engine names sub-tasks and programs by ids (`p3-st2`, `p3`) in some messages; the user
 * knows them by number and name.
 */
export function humanizeEngineMessage(message: string, program?: { programId: string; subTasks: { id: string; subTask: SubTask }[] }): string {
  let text = message;
  if (program) {
    program.subTasks.forEach((entry, index) => {
      const escaped = entry.id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const named = (match: string) => (/^S/.test(match) ? capitalize(displayName(entry.subTask, index)) : displayName(entry.subTask, index));
      text = text.replace(new RegExp(`([Ss]ub-task )?"[^"]*" \\(${escaped}\\)`, "g"), named);
      text = text.replace(new RegExp(`([Ss]ub-task )?\\b${escaped}\\b`, "g"), named);
    });
    text = text.replace(new RegExp(`\\bProgram ${program.programId}\\b`, "g"), "The program").replace(new RegExp(`\\bprogram ${program.programId}\\b`, "g"), "the program");
  }
  return text
    .replace(/\s*\(p\d+-st\d+\)/g, "")
    .replace(/\bsub-task p\d+-st\d+\b/g, "a sub-task")
    .replace(/\bp\d+-st\d+\b/g, "a sub-task")
    .replace(/\bProgram p\d+\b/g, "The program")
    .replace(/\bprogram p\d+\b/g, "the program")
    .replace(/\bJob j\d+\b/g, "A job")
    .replace(/\bjob j\d+\b/g, "a job");
}
