/**
 * Read-only virtual documents that show a program as the models write it: the decomposition,
 * the specifications and the code, updated as tokens arrive (a TextDocumentContentProvider whose
 * onDidChange fires at most every UPDATE_MS per document).
 *
 *   gpiot-stream:/<uid>/<name>.decomposition.md   TD: the requirement and its sub-tasks
 *   gpiot-stream:/<uid>/<name>.specs.md           RT: every sub-task's Target / Input / Output
 *   gpiot-stream:/<uid>/<name>.code.py            CG: the code of every sub-task
 *   gpiot-stream:/<uid>/<subTaskId>/<name>.spec.md and .../<name>.code.py: one sub-task
 *
 * <name> is a few words of the requirement and the program's number, so that the editors of two
 * programs have different titles (e.g. "detect-heartbeats-ecg-2.code.py").
 */
import * as vscode from "vscode";
import { sourcesMarkdown } from "./citations";
import { programFolderName } from "./config";
import type { ProgramState, ProgramStore, SubTaskState } from "./programStore";

export const STREAM_SCHEME = "gpiot-stream";
const UPDATE_MS = 80;

export type StreamKind = "decomposition" | "specs" | "code";

/** A short name that tells this program's editors from another program's. */
export function streamName(program: ProgramState): string {
  const words = programFolderName(program.group?.title ?? program.requirement).split("-").slice(0, 3).join("-");
  return program.group ? `${words}-${program.number}-v${program.group.version}` : `${words}-${program.number}`;
}

export function streamUri(program: ProgramState, kind: StreamKind, subTaskId?: string): vscode.Uri {
  const file = `${streamName(program)}.${kind === "code" ? "code.py" : kind === "specs" ? (subTaskId ? "spec.md" : "specs.md") : "decomposition.md"}`;
  return vscode.Uri.from({ scheme: STREAM_SCHEME, path: subTaskId ? `/${program.uid}/${subTaskId}/${file}` : `/${program.uid}/${file}` });
}

function subTaskCode(entry: SubTaskState): string {
  return entry.artifact?.code ?? entry.codeStream;
}

function codeStateLabel(entry: SubTaskState): string {
  switch (entry.codeState) {
    case "pending":
      return "queued";
    case "streaming":
      return "being written…";
    case "syntaxError":
      return `syntax error${entry.syntax?.line ? ` at line ${entry.syntax.line}` : ""}`;
    default:
      return entry.codeState;
  }
}

export function renderDecomposition(program: ProgramState): string {
  const lines = [`# Decomposition`, "", `**Requirement:** ${program.requirement || "…"}`, ""];
  if (program.constraints) lines.push(`**Resource constraints:** ${program.constraints}`, "");
  const subTasks = program.subTasks.length ? program.subTasks.map((entry) => entry.subTask) : program.draftSubTasks.filter(Boolean);
  subTasks.forEach((subTask, index) => {
    lines.push(`## ${index + 1}. ${subTask.name}`, "", subTask.problem, "");
    for (const step of subTask.steps) lines.push(`- ${step}`);
    lines.push("");
  });
  if (program.phase === "decomposing") {
    lines.push("---", "", "_The task decomposition model is writing:_", "", "```json", program.tdText.slice(-4000), "```", "");
  } else if (!subTasks.length) lines.push(program.busy ? "_Waiting for the models…_" : "_No sub-tasks._");
  return lines.join("\n");
}

export function renderSpec(entry: SubTaskState, index: number): string {
  const lines = [`## ${index + 1}. ${entry.subTask.name}`, ""];
  if (entry.specMarkdown) lines.push(entry.specMarkdown.trim(), "", ...sourcesMarkdown(entry));
  else if (entry.activeStage === "rt") lines.push("_The requirement transformation model is writing:_", "", "```json", entry.specStream.slice(-4000), "```", "");
  else lines.push("_No specification yet._", "");
  return lines.join("\n");
}

export function renderSpecs(program: ProgramState): string {
  const lines = [`# Specifications`, "", `**Requirement:** ${program.requirement || "…"}`, ""];
  program.subTasks.forEach((entry, index) => lines.push(renderSpec(entry, index)));
  if (!program.subTasks.length) lines.push("_Waiting for the decomposition…_");
  return lines.join("\n");
}

export function renderSubTaskCode(entry: SubTaskState, index: number): string {
  const code = subTaskCode(entry);
  return [`# --- Sub-task ${index + 1}: ${entry.subTask.name.replace(/\n/g, " ")} (${codeStateLabel(entry)}) ---`, code || "# (no code yet)", ""].join("\n");
}

export function renderCode(program: ProgramState): string {
  const header = [`# GPIoT: ${program.requirement.replace(/\n/g, " ") || "…"}`, "# Code as the code generation model writes it; the assembled program is written to files at the end.", ""];
  return [...header, ...program.subTasks.map((entry, index) => renderSubTaskCode(entry, index))].join("\n");
}

export class StreamDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changeEmitter = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changeEmitter.event;
  private readonly pending = new Map<string, vscode.Uri>();
  private timer: NodeJS.Timeout | undefined;
  private readonly subscription: vscode.Disposable;

  constructor(private readonly store: ProgramStore) {
    const changes = store.onDidChangeProgram(({ program }) => this.schedule(program));
    // Once more after a job's end, so that the editors surely show the final text.
    const ends = store.onDidEndJob((result) => {
      setTimeout(() => {
        const program = store.get(result.programUid);
        if (program) this.schedule(program);
      }, 300);
    });
    // VS Code asks for the content before the document joins workspace.textDocuments; a change in
    // between would find no open document to refresh, so render once more when it has joined.
    const opens = vscode.workspace.onDidOpenTextDocument((document) => {
      if (document.uri.scheme !== STREAM_SCHEME) return;
      const program = store.get(document.uri.path.split("/")[1]);
      if (program) this.schedule(program);
    });
    this.subscription = vscode.Disposable.from(changes, ends, opens);
  }

  /** Which stream documents of this program are open in VS Code. */
  private openUris(program: ProgramState): vscode.Uri[] {
    return vscode.workspace.textDocuments.filter((document) => document.uri.scheme === STREAM_SCHEME && document.uri.path.startsWith(`/${program.uid}/`)).map((document) => document.uri);
  }

  private schedule(program: ProgramState): void {
    for (const uri of this.openUris(program)) this.pending.set(uri.toString(), uri);
    if (!this.pending.size || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const uris = [...this.pending.values()];
      this.pending.clear();
      for (const uri of uris) this.changeEmitter.fire(uri);
    }, UPDATE_MS);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    const [, uid, second, third] = uri.path.split("/");
    const program = this.store.get(uid);
    if (!program) return vscode.l10n.t("The GPIoT program of this document is no longer available.");
    if (third) {
      const index = program.subTasks.findIndex((entry) => entry.id === second);
      const entry = program.subTasks[index];
      if (!entry) return vscode.l10n.t("This sub-task no longer exists.");
      return third.endsWith(".code.py") ? renderSubTaskCode(entry, index) : renderSpec(entry, index);
    }
    if (second.endsWith(".code.py")) return renderCode(program);
    if (second.endsWith(".specs.md")) return renderSpecs(program);
    return renderDecomposition(program);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.subscription.dispose();
    this.changeEmitter.dispose();
  }
}

/** Opens a stream document beside the current editor without taking the focus. */
export async function showStream(program: ProgramState, kind: StreamKind, subTaskId?: string, options: { preserveFocus?: boolean; column?: vscode.ViewColumn } = {}): Promise<vscode.TextEditor> {
  const document = await vscode.workspace.openTextDocument(streamUri(program, kind, subTaskId));
  return vscode.window.showTextDocument(document, { viewColumn: options.column ?? vscode.ViewColumn.Beside, preserveFocus: options.preserveFocus ?? true, preview: false });
}
