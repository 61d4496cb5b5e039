/**
 * What one requirement has become so far: its sub-tasks in order, each with its spec, code and
 * syntax check. The engine's jobs fill it in; the user's edits replace parts of it.
 */
import { randomUUID } from "node:crypto";
import type { CodeState, OverwriteMode, ProgramSnapshot, ProgramSubTask } from "../protocol";
import type { Citation, CodeArtifact, ResourceLimits, SubTask, SyntaxCheck, TaskSpec } from "../schemas";
import { renderSpecMarkdown } from "../pipeline/requirementTransformation";
import type { ProgramPart } from "../pipeline/assembleProgram";
import type { VerificationState } from "../verify/report";

export class Program {
  /** Written into the program's gpiot.json: a folder with this id is the program's own to rewrite. */
  readonly uid: string;
  subTasks: ProgramSubTask[] = [];
  outDir: string | null = null;
  /** Where the user asked the program to go, kept across review pauses. */
  requestedOutput: { outDir: string; overwrite: OverwriteMode } | null = null;
  files: string[] = [];
  busyJobs = 0;
  /** The last verification's rounds and the version kept. */
  verification: VerificationState | null = null;
  private nextSubTaskNumber = 1;

  constructor(
    readonly id: string,
    readonly requirement: string,
    readonly limits: ResourceLimits | null,
    uid: string = randomUUID(),
  ) {
    this.uid = uid;
  }

  private newSubTaskId(): string {
    return `${this.id}-st${this.nextSubTaskNumber++}`;
  }

  setDecomposition(subTasks: SubTask[]): ProgramSubTask[] {
    this.subTasks = subTasks.map((subTask) => ({ id: this.newSubTaskId(), subTask, spec: null, specMarkdown: null, artifact: null, syntax: null, codeState: "pending" }));
    return this.subTasks;
  }

  find(subTaskId: string): ProgramSubTask | undefined {
    return this.subTasks.find((entry) => entry.id === subTaskId);
  }

  /**
   * Replaces the list. Known sub-tasks keep their spec and code; one whose text changed keeps them
   * too, marked out of date (`specStale`, code "stale") until they are regenerated.
   */
  replaceSubTasks(entries: { id?: string; subTask: SubTask }[]): void {
    const unknown = entries.find((entry) => entry.id !== undefined && !this.find(entry.id));
    if (unknown) throw new Error(`unknown sub-task id ${unknown.id}`);
    const previousOrder = this.subTasks.map((entry) => entry.id);
    const kept = entries.map((entry): ProgramSubTask => {
      const existing = entry.id ? this.find(entry.id) : undefined;
      if (existing && JSON.stringify(existing.subTask) === JSON.stringify(entry.subTask)) return existing;
      if (existing) {
        const edited: ProgramSubTask = { ...existing, subTask: entry.subTask };
        if (edited.spec) edited.specStale = true;
        if (edited.artifact) edited.codeState = "stale";
        return edited;
      }
      return { id: this.newSubTaskId(), subTask: entry.subTask, spec: null, specMarkdown: null, artifact: null, syntax: null, codeState: "pending" as CodeState };
    });
    // Code is written against the outputs of the sub-tasks before it: once that set changes, it is stale.
    const newOrder = kept.map((entry) => entry.id);
    const setKey = (ids: string[]) => [...ids].sort().join();
    kept.forEach((entry, index) => {
      const before = previousOrder.indexOf(entry.id);
      const earlierChanged = before < 0 || setKey(newOrder.slice(0, index)) !== setKey(previousOrder.slice(0, before));
      if (earlierChanged && entry.artifact) entry.codeState = "stale";
    });
    this.subTasks = kept;
  }

  /** Puts sub-tasks back exactly as given (spec, code and states included); streaming code counts as not finished. */
  restore(entries: ProgramSubTask[]): void {
    const ids = new Set(entries.map((entry) => entry.id));
    if (ids.size !== entries.length) throw new Error("sub-task ids must be unique");
    this.subTasks = entries.map((entry) => {
      const copy = structuredClone(entry);
      if (copy.codeState === "streaming") copy.codeState = copy.artifact ? "stale" : "pending";
      if (!copy.spec) delete copy.specStale;
      return copy;
    });
    const own = new RegExp(`^${this.id}-st(\\d+)$`);
    const highest = Math.max(0, ...entries.map((entry) => Number(own.exec(entry.id)?.[1] ?? 0)));
    this.nextSubTaskNumber = Math.max(this.nextSubTaskNumber, highest + 1);
  }

  /** A new spec; `citations`: the passages its prompts held (none for the user's own edit). */
  setSpec(subTaskId: string, spec: TaskSpec, citations: Citation[] = []): void {
    const entry = this.find(subTaskId)!;
    delete entry.specStale;
    entry.spec = spec;
    entry.specMarkdown = renderSpecMarkdown(spec);
    entry.specCitations = citations;
    if (entry.artifact) entry.codeState = "stale";
  }

  setCode(subTaskId: string, artifact: CodeArtifact, syntax: SyntaxCheck, citations: Citation[] = []): void {
    const entry = this.find(subTaskId)!;
    entry.artifact = artifact;
    entry.codeCitations = citations;
    entry.syntax = syntax;
    entry.codeState = syntax.checked && !syntax.ok ? "syntaxError" : "done";
  }

  specsBefore(subTaskId: string): TaskSpec[] {
    const index = this.subTasks.findIndex((entry) => entry.id === subTaskId);
    return this.subTasks.slice(0, index).flatMap((entry) => (entry.spec ? [entry.spec] : []));
  }

  /** No spec yet, or one written for an earlier text of the sub-task. */
  needsSpec(entry: ProgramSubTask): boolean {
    return !entry.spec || entry.specStale === true;
  }

  needsCode(entry: ProgramSubTask): boolean {
    return entry.artifact === null || entry.codeState === "stale" || entry.codeState === "pending" || entry.codeState === "failed";
  }

  /** The parts ready to assemble, or the first sub-task that is not. */
  parts(): { parts: ProgramPart[] } | { missing: ProgramSubTask } {
    const parts: ProgramPart[] = [];
    for (const entry of this.subTasks) {
      if (!entry.spec || entry.specStale || !entry.artifact || entry.codeState === "stale") return { missing: entry };
      parts.push({ subTask: entry.subTask, spec: entry.spec, artifact: entry.artifact, citations: { spec: entry.specCitations ?? [], code: entry.codeCitations ?? [] } });
    }
    return { parts };
  }

  snapshot(): ProgramSnapshot {
    return {
      programId: this.id,
      ownerId: this.uid,
      requirement: this.requirement,
      limits: this.limits,
      subTasks: structuredClone(this.subTasks),
      outDir: this.outDir,
      files: [...this.files],
      busy: this.busyJobs > 0,
      verification: this.verification ? structuredClone(this.verification) : null,
    };
  }
}
