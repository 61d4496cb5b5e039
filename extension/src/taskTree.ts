/**
 * The GPIoT view: one node per program; under it its sub-tasks in order (as soon as TD writes
 * them); under each sub-task its problem, steps, spec (target, inputs, outputs) and the state of
 * its code. `contextValue`s carry flags (editable, hasSpec, hasCode, busy, awaitingReview, ...)
 * that the review commands' menus test. Sub-tasks can be reordered by drag and drop.
 */
import path from "node:path";
import * as vscode from "vscode";
import { OPEN_CITATION_COMMAND, sourcesTooltip } from "./citations";
import type { ProgramState, ProgramStore, SubTaskState } from "./programStore";
import { describePhase } from "./progress";
import { short } from "./jobs";

export type TreeNode =
  | { kind: "program"; id: string; uid: string }
  | { kind: "draft"; id: string; uid: string; index: number }
  | { kind: "subTask"; id: string; uid: string; subTaskId: string }
  | { kind: "problem"; id: string; uid: string; subTaskId: string }
  | { kind: "steps"; id: string; uid: string; subTaskId: string }
  | { kind: "step"; id: string; uid: string; subTaskId: string; index: number }
  | { kind: "target"; id: string; uid: string; subTaskId: string }
  | { kind: "noSpec"; id: string; uid: string; subTaskId: string }
  | { kind: "params"; id: string; uid: string; subTaskId: string; which: "inputs" | "outputs" }
  | { kind: "param"; id: string; uid: string; subTaskId: string; which: "inputs" | "outputs"; index: number }
  | { kind: "code"; id: string; uid: string; subTaskId: string }
  | { kind: "files"; id: string; uid: string }
  | { kind: "file"; id: string; uid: string; file: string }
  | { kind: "message"; id: string; uid: string; text: string; icon: string };

export interface TreeSnapshotNode {
  label: string;
  description?: string;
  contextValue?: string;
  /** The tooltip's text (Markdown source for a MarkdownString). */
  tooltip?: string;
  kind: TreeNode["kind"];
  children: TreeSnapshotNode[];
}

const TREE_MIME = "application/vnd.code.tree.gpiot.programs";
const COALESCE_MS = 10;
const REFRESH_SPACING_MS = 210;

export interface TaskTreeHooks {
  canUndo(program: ProgramState): boolean;
  /** Moves a sub-task before `beforeSubTaskId` (undefined: to the end). */
  moveSubTask(program: ProgramState, subTaskId: string, beforeSubTaskId: string | undefined): Promise<void>;
  isCurrentGeneration(program: ProgramState): boolean;
}

export class TaskTree implements vscode.TreeDataProvider<TreeNode>, vscode.TreeDragAndDropController<TreeNode>, vscode.Disposable {
  readonly dropMimeTypes = [TREE_MIME];
  readonly dragMimeTypes = [TREE_MIME];
  private readonly changeEmitter = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changeEmitter.event;
  private readonly nodes = new Map<string, TreeNode>();
  private readonly disposables: vscode.Disposable[] = [];
  private refreshTimer: NodeJS.Timeout | undefined;
  private lastRefreshAt = 0;
  view: vscode.TreeView<TreeNode> | undefined;

  constructor(
    private readonly store: ProgramStore,
    private readonly hooks: TaskTreeHooks,
  ) {
    this.disposables.push(
      store.onDidChangeProgram(({ structural }) => {
        if (structural) this.scheduleRefresh();
      }),
      store.onDidRemoveProgram(() => this.scheduleRefresh()),
    );
  }

  attach(view: vscode.TreeView<TreeNode>): void {
    this.view = view;
  }

  /**
   * VS Code debounces a tree's refresh events (200 ms, leading edge) in the extension host: events
   * closer together than that keep postponing the refresh, so a job streaming several changes a
   * second would show nothing until it ends. Refreshes are therefore spaced REFRESH_SPACING_MS
   * apart (each one is then a leading edge, shown at once), the first after a short coalescing delay.
   */
  private scheduleRefresh(): void {
    if (this.refreshTimer) return;
    const wait = Math.max(COALESCE_MS, this.lastRefreshAt + REFRESH_SPACING_MS - Date.now());
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.lastRefreshAt = Date.now();
      this.changeEmitter.fire(undefined);
      this.updateBadge();
    }, wait);
  }

  private updateBadge(): void {
    if (!this.view) return;
    const waiting = this.store.programs().filter((program) => program.phase === "awaitingReview" && !program.lost).length;
    this.view.badge = waiting ? { value: waiting, tooltip: `${waiting} program(s) waiting for your review` } : undefined;
  }

  /** One node object per id, so that VS Code's reveal/refresh find the same element again. */
  private node<T extends TreeNode>(node: T): T {
    const known = this.nodes.get(node.id);
    if (known && JSON.stringify(known) === JSON.stringify(node)) return known as T;
    this.nodes.set(node.id, node);
    return node;
  }

  programNode(program: ProgramState): TreeNode {
    return this.node({ kind: "program", id: program.uid, uid: program.uid });
  }

  subTaskNode(program: ProgramState, subTaskId: string): TreeNode {
    return this.node({ kind: "subTask", id: `${program.uid}/${subTaskId}`, uid: program.uid, subTaskId });
  }

  private entry(node: { uid: string; subTaskId: string }): { program: ProgramState; entry: SubTaskState; index: number } | undefined {
    const program = this.store.get(node.uid);
    if (!program) return undefined;
    const index = program.subTasks.findIndex((candidate) => candidate.id === node.subTaskId);
    return index >= 0 ? { program, entry: program.subTasks[index], index } : undefined;
  }

  editable(program: ProgramState): boolean {
    return !program.busy && !program.lost && this.hooks.isCurrentGeneration(program);
  }

  getChildren(node?: TreeNode): TreeNode[] {
    if (!node) return this.store.programs().sort((a, b) => b.createdAt - a.createdAt).map((program) => this.programNode(program));
    const program = this.store.get(node.uid);
    if (!program) return [];
    switch (node.kind) {
      case "program": {
        const children: TreeNode[] = [];
        if (program.subTasks.length) children.push(...program.subTasks.map((entry) => this.subTaskNode(program, entry.id)));
        else
          program.draftSubTasks.forEach((subTask, index) => {
            if (subTask) children.push(this.node({ kind: "draft", id: `${program.uid}/draft${index}`, uid: program.uid, index }));
          });
        if (children.length) this.store.markSubTaskShown(program);
        if (program.lastError && (program.phase === "failed" || program.lost))
          children.push(this.node({ kind: "message", id: `${program.uid}/error`, uid: program.uid, text: program.lastError.message, icon: "error" }));
        if (program.files.length) children.push(this.node({ kind: "files", id: `${program.uid}/files`, uid: program.uid }));
        return children;
      }
      case "subTask": {
        const found = this.entry(node);
        if (!found) return [];
        const { entry } = found;
        const base = { uid: node.uid, subTaskId: node.subTaskId };
        const children: TreeNode[] = [
          this.node({ kind: "problem", id: `${node.id}/problem`, ...base }),
          this.node({ kind: "steps", id: `${node.id}/steps`, ...base }),
        ];
        if (entry.spec) {
          children.push(
            this.node({ kind: "target", id: `${node.id}/target`, ...base }),
            this.node({ kind: "params", id: `${node.id}/inputs`, ...base, which: "inputs" }),
            this.node({ kind: "params", id: `${node.id}/outputs`, ...base, which: "outputs" }),
          );
        } else children.push(this.node({ kind: "noSpec", id: `${node.id}/nospec`, ...base }));
        children.push(this.node({ kind: "code", id: `${node.id}/code`, ...base }));
        return children;
      }
      case "steps": {
        const found = this.entry(node);
        return found ? found.entry.subTask.steps.map((_, index) => this.node({ kind: "step", id: `${node.id}/${index}`, uid: node.uid, subTaskId: node.subTaskId, index })) : [];
      }
      case "params": {
        const found = this.entry(node);
        return found?.entry.spec ? found.entry.spec[node.which].map((_, index) => this.node({ kind: "param", id: `${node.id}/${index}`, uid: node.uid, subTaskId: node.subTaskId, which: node.which, index })) : [];
      }
      case "files":
        return program.files.map((file) => this.node({ kind: "file", id: `${node.uid}/file:${file}`, uid: node.uid, file }));
      default:
        return [];
    }
  }

  getParent(node: TreeNode): TreeNode | undefined {
    const parentId = node.id.includes("/") ? node.id.slice(0, node.id.lastIndexOf("/")) : undefined;
    if (!parentId) return undefined;
    if (node.kind === "file") return this.nodes.get(`${node.uid}/files`);
    return this.nodes.get(parentId);
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    const program = this.store.get(node.uid);
    if (!program) return new vscode.TreeItem("(removed)");
    const editable = this.editable(program);
    const flag = (name: string, on: boolean) => (on ? ` ${name}` : "");
    switch (node.kind) {
      case "program": {
        const item = new vscode.TreeItem(short(program.requirement || "(requirement)", 70), vscode.TreeItemCollapsibleState.Expanded);
        item.id = node.id;
        item.description = this.programDescription(program);
        item.tooltip = this.programTooltip(program);
        item.iconPath = programIcon(program);
        item.contextValue =
          "program" +
          flag("busy", program.busy) +
          flag("idle", !program.busy) +
          flag("awaitingReview", program.phase === "awaitingReview" && editable) +
          flag("editable", editable && program.subTasks.length > 0) +
          flag("assemblable", editable && program.subTasks.length > 0 && program.phase !== "awaitingReview" && program.subTasks.every((entry) => entry.artifact && entry.spec) && (program.filesStale || !program.files.length || program.phase === "ready")) +
          flag("retryable", !program.busy && (program.lost || program.phase === "failed" || program.phase === "cancelled")) +
          flag("hasFiles", program.files.length > 0) +
          flag("undoable", editable && this.hooks.canUndo(program));
        return item;
      }
      case "draft": {
        const subTask = program.draftSubTasks[node.index];
        const item = new vscode.TreeItem(`${node.index + 1}. ${subTask?.name ?? ""}`, vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = "decomposing…";
        item.tooltip = subTask ? `${subTask.problem}\n\n${subTask.steps.map((step) => `- ${step}`).join("\n")}` : undefined;
        item.iconPath = new vscode.ThemeIcon("loading~spin");
        item.contextValue = "draft";
        return item;
      }
      case "subTask": {
        const found = this.entry(node);
        if (!found) return new vscode.TreeItem("(removed)");
        const { entry, index } = found;
        const item = new vscode.TreeItem(`${index + 1}. ${oneLine(entry.subTask.name)}`, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = node.id;
        item.description = subTaskDescription(entry);
        const tooltip = new vscode.MarkdownString(`**${escapeMarkdown(entry.subTask.name)}**\n\n${escapeMarkdown(entry.subTask.problem)}\n\n${entry.subTask.steps.map((step) => `- ${escapeMarkdown(step)}`).join("\n")}${sourcesTooltip(entry)}`);
        tooltip.isTrusted = { enabledCommands: [OPEN_CITATION_COMMAND] };
        item.tooltip = tooltip;
        item.iconPath = subTaskIcon(entry);
        item.contextValue = "subTask" + flag("editable", editable) + flag("hasSpec", !!entry.spec) + flag("hasCode", !!entry.artifact || !!entry.codeStream);
        return item;
      }
      case "problem": {
        const found = this.entry(node);
        const item = new vscode.TreeItem("Problem", vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = oneLine(found?.entry.subTask.problem ?? "");
        item.tooltip = found?.entry.subTask.problem;
        item.iconPath = new vscode.ThemeIcon("question");
        item.contextValue = "field problem" + flag("editable", editable);
        return item;
      }
      case "steps": {
        const found = this.entry(node);
        const item = new vscode.TreeItem(`Steps (${found?.entry.subTask.steps.length ?? 0})`, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = node.id;
        item.iconPath = new vscode.ThemeIcon("list-ordered");
        item.contextValue = "steps" + flag("editable", editable && (found?.entry.subTask.steps.length ?? 0) < 6);
        return item;
      }
      case "step": {
        const found = this.entry(node);
        const item = new vscode.TreeItem(`${node.index + 1}. ${oneLine(found?.entry.subTask.steps[node.index] ?? "")}`, vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.tooltip = found?.entry.subTask.steps[node.index];
        item.contextValue = "field step" + flag("editable", editable) + flag("deletable", editable && (found?.entry.subTask.steps.length ?? 0) > 1);
        return item;
      }
      case "noSpec": {
        const found = this.entry(node);
        const item = new vscode.TreeItem("Spec", vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = found?.entry.activeStage === "rt" ? "being written…" : "not written yet";
        item.iconPath = new vscode.ThemeIcon(found?.entry.activeStage === "rt" ? "loading~spin" : "circle-outline");
        item.contextValue = "noSpec";
        return item;
      }
      case "target": {
        const found = this.entry(node);
        const item = new vscode.TreeItem("Target", vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = oneLine(found?.entry.spec?.target ?? "");
        item.tooltip = found?.entry.spec?.target;
        item.iconPath = new vscode.ThemeIcon("target");
        item.contextValue = "field target" + flag("editable", editable);
        return item;
      }
      case "params": {
        const found = this.entry(node);
        const count = found?.entry.spec?.[node.which].length ?? 0;
        const item = new vscode.TreeItem(`${node.which === "inputs" ? "Inputs" : "Outputs"} (${count})`, count ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.iconPath = new vscode.ThemeIcon(node.which === "inputs" ? "arrow-right" : "arrow-left");
        item.contextValue = `params ${node.which}` + flag("editable", editable && count < 6);
        return item;
      }
      case "param": {
        const found = this.entry(node);
        const parameter = found?.entry.spec?.[node.which][node.index];
        const item = new vscode.TreeItem(parameter ? `${oneLine(parameter.name)} (${oneLine(parameter.type)})` : "", vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = oneLine(parameter?.description ?? "");
        item.tooltip = parameter ? `${parameter.name} (${parameter.type}): ${parameter.description}` : undefined;
        item.iconPath = new vscode.ThemeIcon("symbol-parameter");
        const deletable = node.which === "inputs" || (found?.entry.spec?.outputs.length ?? 0) > 1;
        item.contextValue = `field param ${node.which}` + flag("editable", editable) + flag("deletable", editable && deletable);
        return item;
      }
      case "code": {
        const found = this.entry(node);
        const item = new vscode.TreeItem("Code", vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = found ? codeStateText(found.entry) : "";
        item.tooltip = found?.entry.syntax && !found.entry.syntax.ok && found.entry.syntax.checked ? found.entry.syntax.message : undefined;
        item.iconPath = found ? subTaskIcon(found.entry) : undefined;
        const hasCode = !!found && (!!found.entry.artifact || !!found.entry.codeStream);
        item.contextValue = "code" + flag("hasCode", hasCode);
        if (hasCode) item.command = { command: "gpiot.openCode", title: "Open Code", arguments: [node] };
        return item;
      }
      case "files": {
        const item = new vscode.TreeItem(`Files (${program.files.length})`, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = node.id;
        item.description = program.outDir ? vscode.workspace.asRelativePath(program.outDir) + (program.filesStale ? " — out of date: assemble again" : "") : undefined;
        item.iconPath = new vscode.ThemeIcon(program.filesStale ? "warning" : "folder");
        item.contextValue = "files";
        return item;
      }
      case "file": {
        const item = new vscode.TreeItem(vscode.Uri.file(node.file), vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.label = path.basename(node.file);
        item.command = { command: "vscode.open", title: "Open", arguments: [vscode.Uri.file(node.file)] };
        item.contextValue = "file";
        return item;
      }
      case "message": {
        const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.iconPath = new vscode.ThemeIcon(node.icon);
        item.tooltip = node.text;
        item.contextValue = "message";
        return item;
      }
    }
  }

  private programDescription(program: ProgramState): string {
    if (program.lost) return "engine restarted — retry";
    if (program.busy) return describePhase(program).replace(/…$/, "…");
    switch (program.phase) {
      case "awaitingReview":
        return program.awaitingReview === "specs" ? "review the specs, then Continue" : "review the sub-tasks, then Continue";
      case "done":
        return `${program.files.length} files`;
      case "ready":
        return program.files.length ? "files out of date — assemble again" : program.origin === "palette" ? "ready to assemble" : "generated (not written)";
      case "failed":
        return `failed: ${program.lastError?.code ?? "error"}`;
      case "cancelled":
        return "cancelled";
      default:
        return describePhase(program);
    }
  }

  private programTooltip(program: ProgramState): vscode.MarkdownString {
    const lines = [`**${escapeMarkdown(program.requirement)}**`, ""];
    if (program.constraints) lines.push(`Constraints: ${escapeMarkdown(program.constraints)}`, "");
    lines.push(`State: ${describePhase(program)}`);
    if (program.outDir) lines.push("", `Folder: \`${program.outDir}\``);
    if (program.lastError) lines.push("", `Last error (${program.lastError.code}): ${escapeMarkdown(program.lastError.message)}`);
    return new vscode.MarkdownString(lines.join("\n"));
  }

  // ---- drag and drop: reorder sub-tasks within a program ----

  handleDrag(source: readonly TreeNode[], data: vscode.DataTransfer): void {
    const subTasks = source.filter((node) => node.kind === "subTask");
    if (subTasks.length === 1) data.set(TREE_MIME, new vscode.DataTransferItem(subTasks[0].id));
  }

  async handleDrop(target: TreeNode | undefined, data: vscode.DataTransfer): Promise<void> {
    const id = await data.get(TREE_MIME)?.asString();
    const dragged = id ? this.nodes.get(id) : undefined;
    if (!dragged || dragged.kind !== "subTask" || !target || target.uid !== dragged.uid) return;
    const program = this.store.get(dragged.uid);
    if (!program || !this.editable(program)) return;
    const before = target.kind === "subTask" ? target.subTaskId : target.kind === "program" ? undefined : "subTaskId" in target ? target.subTaskId : undefined;
    if (before === dragged.subTaskId) return;
    await this.hooks.moveSubTask(program, dragged.subTaskId, before);
  }

  /** The tree as shown (expanding everything), for tests and the benchmark. */
  async snapshot(node?: TreeNode, depth = 0): Promise<TreeSnapshotNode[]> {
    const children = this.getChildren(node);
    const result: TreeSnapshotNode[] = [];
    for (const child of children) {
      const item = this.getTreeItem(child);
      const label = typeof item.label === "string" ? item.label : (item.label?.label ?? "");
      result.push({
        label,
        description: typeof item.description === "string" ? item.description : undefined,
        contextValue: item.contextValue,
        tooltip: typeof item.tooltip === "string" ? item.tooltip : item.tooltip?.value,
        kind: child.kind,
        children: depth < 6 ? await this.snapshot(child, depth + 1) : [],
      });
    }
    return result;
  }

  async reveal(program: ProgramState, options: { focus?: boolean } = {}): Promise<void> {
    if (!this.view) return;
    await this.view.reveal(this.programNode(program), { select: true, focus: options.focus ?? false, expand: true });
  }

  dispose(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
    this.changeEmitter.dispose();
  }
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, "\\$&");
}

function codeStateText(entry: SubTaskState): string {
  if (entry.activeStage === "rt") return "waiting for the spec";
  switch (entry.codeState) {
    case "pending":
      return "queued";
    case "streaming":
      return `streaming… ${entry.codeStream.split("\n").length} lines`;
    case "done":
      return entry.syntax?.checked === false ? "done (syntax not checked)" : "done";
    case "syntaxError":
      return `syntax error${entry.syntax?.line ? ` (line ${entry.syntax.line})` : ""}`;
    case "failed":
      return "failed";
    case "stale":
      return "stale: regenerate";
  }
}

function subTaskDescription(entry: SubTaskState): string {
  if (entry.activeStage === "rt") return "writing the spec…";
  if (entry.codeState === "streaming") return "writing the code…";
  if (!entry.spec) return "no spec yet";
  return codeStateText(entry);
}

function subTaskIcon(entry: SubTaskState): vscode.ThemeIcon {
  if (entry.activeStage || entry.codeState === "streaming") return new vscode.ThemeIcon("loading~spin");
  switch (entry.codeState) {
    case "done":
      return new vscode.ThemeIcon("pass", new vscode.ThemeColor("testing.iconPassed"));
    case "syntaxError":
      return new vscode.ThemeIcon("warning", new vscode.ThemeColor("list.warningForeground"));
    case "failed":
      return new vscode.ThemeIcon("error", new vscode.ThemeColor("list.errorForeground"));
    case "stale":
      return new vscode.ThemeIcon("history");
    default:
      return new vscode.ThemeIcon(entry.spec ? "circle-outline" : "circle-large-outline");
  }
}

function programIcon(program: ProgramState): vscode.ThemeIcon {
  if (program.lost) return new vscode.ThemeIcon("debug-disconnect");
  if (program.busy) return new vscode.ThemeIcon("sync~spin");
  switch (program.phase) {
    case "awaitingReview":
      return new vscode.ThemeIcon("eye", new vscode.ThemeColor("notificationsInfoIcon.foreground"));
    case "done":
      return new vscode.ThemeIcon("check", new vscode.ThemeColor("testing.iconPassed"));
    case "failed":
      return new vscode.ThemeIcon("error", new vscode.ThemeColor("list.errorForeground"));
    case "cancelled":
      return new vscode.ThemeIcon("circle-slash");
    default:
      return new vscode.ThemeIcon("symbol-event");
  }
}
