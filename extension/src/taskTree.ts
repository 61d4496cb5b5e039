/**
 * The GPIoT view: one node per program; under it its sub-tasks in order (as soon as TD writes
 * them); under each sub-task its problem, steps, spec (target, inputs, outputs) and the state of
 * its code. `contextValue`s carry flags (editable, hasSpec, hasCode, busy, awaitingReview, ...)
 * that the review commands' menus test. Sub-tasks can be reordered by drag and drop.
 *
 * Rules (programRules.ts): an edited sub-task says its spec and code are out of date, and the
 * program offers "Regenerate Stale Sub-tasks"; "Assemble" is offered only when assembling can
 * succeed, otherwise a row says what is missing, in words; the programs of one comment
 * conversation show as one entry (the newest version, the earlier ones under it); a busy
 * program's description is the progress notification's message; every tooltip is Markdown.
 */
import path from "node:path";
import * as vscode from "vscode";
import { OPEN_CITATION_COMMAND, sourcesTooltip } from "./citations";
import type { ProgramState, ProgramStore, SubTaskState } from "./programStore";
import { describePhase } from "./progress";
import { short } from "./jobs";
import { assemblyReadiness, humanizeEngineMessage, isFinished } from "./programRules";

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
  | { kind: "versions"; id: string; uid: string }
  | { kind: "file"; id: string; uid: string; file: string }
  | { kind: "message"; id: string; uid: string; text: string; icon: string };

export interface TreeSnapshotNode {
  label: string;
  description?: string;
  contextValue?: string;
  tooltip?: { markdown: boolean; value: string };
  uid: string;
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
    this.view.badge = waiting ? { value: waiting, tooltip: vscode.l10n.t("{0} program(s) waiting for your review", waiting) } : undefined;
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
    return !program.busy && !program.lost && !program.detached && this.hooks.isCurrentGeneration(program);
  }

  /** The programs of a conversation, oldest first; a program outside any conversation alone. */
  private versions(program: ProgramState): ProgramState[] {
    if (!program.group) return [program];
    const id = program.group.id;
    return this.store
      .programs()
      .filter((candidate) => candidate.group?.id === id)
      .sort((a, b) => a.group!.version - b.group!.version || a.createdAt - b.createdAt);
  }

  /** The top-level programs: each conversation once (its newest version), newest first. */
  private roots(): ProgramState[] {
    const roots = this.store.programs().filter((program) => {
      const versions = this.versions(program);
      return versions[versions.length - 1] === program;
    });
    return roots.sort((a, b) => this.versions(b)[0].createdAt - this.versions(a)[0].createdAt || b.createdAt - a.createdAt);
  }

  getChildren(node?: TreeNode): TreeNode[] {
    if (!node) return this.roots().map((program) => this.programNode(program));
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
          children.push(this.node({ kind: "message", id: `${program.uid}/error`, uid: program.uid, text: humanizeEngineMessage(program.lastError.message, program), icon: "error" }));
        else if (this.showsReadiness(program))
          children.push(this.node({ kind: "message", id: `${program.uid}/readiness`, uid: program.uid, text: assemblyReadiness(program).reason, icon: "info" }));
        if (program.files.length) children.push(this.node({ kind: "files", id: `${program.uid}/files`, uid: program.uid }));
        const versions = this.versions(program);
        if (versions.length > 1 && versions[versions.length - 1] === program) children.push(this.node({ kind: "versions", id: `${program.uid}/versions`, uid: program.uid }));
        return children;
      }
      case "versions":
        return this.versions(program)
          .slice(0, -1)
          .reverse()
          .map((version) => this.programNode(version));
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
    if (node.kind === "program") {
      const program = this.store.get(node.uid);
      if (!program) return undefined;
      const versions = this.versions(program);
      const newest = versions[versions.length - 1];
      return newest === program ? undefined : this.node({ kind: "versions", id: `${newest.uid}/versions`, uid: newest.uid });
    }
    const parentId = node.id.includes("/") ? node.id.slice(0, node.id.lastIndexOf("/")) : undefined;
    if (!parentId) return undefined;
    if (node.kind === "file") return this.nodes.get(`${node.uid}/files`);
    return this.nodes.get(parentId);
  }

  /** Says what keeps an idle program from being assembled (nothing while it waits for a review or runs). */
  private showsReadiness(program: ProgramState): boolean {
    if (program.busy || program.lost || program.detached || program.phase === "awaitingReview" || !program.subTasks.length) return false;
    return !assemblyReadiness(program).ready;
  }

  /** Assembling would succeed now and would change something (no files yet, or out of date). */
  canAssemble(program: ProgramState): boolean {
    return this.editable(program) && program.phase !== "awaitingReview" && assemblyReadiness(program).ready && (!program.files.length || program.filesStale);
  }

  /** Some specs or code are out of date and regenerating them would make the program assemblable. */
  canRegenerateStale(program: ProgramState): boolean {
    return this.editable(program) && program.phase !== "awaitingReview" && assemblyReadiness(program).regenerable;
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    const program = this.store.get(node.uid);
    if (!program) return new vscode.TreeItem("(removed)");
    const editable = this.editable(program);
    const flag = (name: string, on: boolean) => (on ? ` ${name}` : "");
    switch (node.kind) {
      case "program": {
        const versions = this.versions(program);
        const isNewest = versions[versions.length - 1] === program;
        const title = program.group && isNewest ? program.group.title : program.requirement;
        const label = program.group && !isNewest ? vscode.l10n.t("Version {0}: {1}", program.group.version, short(title || "…", 60)) : short(title || vscode.l10n.t("(requirement)"), 70);
        const item = new vscode.TreeItem(label, isNewest ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed);
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
          flag("assemblable", this.canAssemble(program)) +
          flag("staleParts", this.canRegenerateStale(program)) +
          flag("retryable", !program.busy && !program.detached && (program.lost || program.phase === "failed" || program.phase === "cancelled")) +
          flag("hasFiles", program.files.length > 0) +
          flag("finished", isFinished(program)) +
          flag("undoable", editable && this.hooks.canUndo(program));
        return item;
      }
      case "versions": {
        const count = this.versions(program).length - 1;
        const item = new vscode.TreeItem(vscode.l10n.t("Earlier versions ({0})", count), vscode.TreeItemCollapsibleState.Collapsed);
        item.id = node.id;
        item.iconPath = new vscode.ThemeIcon("history");
        item.tooltip = new vscode.MarkdownString(vscode.l10n.t("What this conversation produced before each refinement."));
        item.contextValue = "versions";
        return item;
      }
      case "draft": {
        const subTask = program.draftSubTasks[node.index];
        const item = new vscode.TreeItem(`${node.index + 1}. ${subTask?.name ?? ""}`, vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = vscode.l10n.t("decomposing…");
        item.tooltip = subTask ? subTaskTooltip(subTask) : undefined;
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
        item.tooltip = subTaskTooltip(entry.subTask, entry);
        item.iconPath = subTaskIcon(entry);
        item.contextValue = "subTask" + flag("editable", editable) + flag("hasSpec", !!entry.spec) + flag("hasCode", !!entry.artifact || !!entry.codeStream) + flag("stale", !!entry.specStale || entry.codeState === "stale");
        return item;
      }
      case "problem": {
        const found = this.entry(node);
        const item = new vscode.TreeItem(vscode.l10n.t("Problem"), vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = oneLine(found?.entry.subTask.problem ?? "");
        item.tooltip = markdownText(found?.entry.subTask.problem);
        item.iconPath = new vscode.ThemeIcon("question");
        item.contextValue = "field problem" + flag("editable", editable);
        return item;
      }
      case "steps": {
        const found = this.entry(node);
        const item = new vscode.TreeItem(vscode.l10n.t("Steps ({0})", found?.entry.subTask.steps.length ?? 0), vscode.TreeItemCollapsibleState.Collapsed);
        item.id = node.id;
        item.iconPath = new vscode.ThemeIcon("list-ordered");
        item.contextValue = "steps" + flag("editable", editable && (found?.entry.subTask.steps.length ?? 0) < 6);
        return item;
      }
      case "step": {
        const found = this.entry(node);
        const item = new vscode.TreeItem(`${node.index + 1}. ${oneLine(found?.entry.subTask.steps[node.index] ?? "")}`, vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.tooltip = markdownText(found?.entry.subTask.steps[node.index]);
        item.contextValue = "field step" + flag("editable", editable) + flag("deletable", editable && (found?.entry.subTask.steps.length ?? 0) > 1);
        return item;
      }
      case "noSpec": {
        const found = this.entry(node);
        const item = new vscode.TreeItem(vscode.l10n.t("Spec"), vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = found?.entry.activeStage === "rt" ? vscode.l10n.t("being written…") : vscode.l10n.t("not written yet");
        item.iconPath = new vscode.ThemeIcon(found?.entry.activeStage === "rt" ? "loading~spin" : "circle-outline");
        item.contextValue = "noSpec";
        return item;
      }
      case "target": {
        const found = this.entry(node);
        const item = new vscode.TreeItem(vscode.l10n.t("Target"), vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = (found?.entry.specStale ? vscode.l10n.t("(out of date) ") : "") + oneLine(found?.entry.spec?.target ?? "");
        item.tooltip = markdownText(found?.entry.spec?.target);
        item.iconPath = new vscode.ThemeIcon("target");
        item.contextValue = "field target" + flag("editable", editable);
        return item;
      }
      case "params": {
        const found = this.entry(node);
        const count = found?.entry.spec?.[node.which].length ?? 0;
        const item = new vscode.TreeItem(node.which === "inputs" ? vscode.l10n.t("Inputs ({0})", count) : vscode.l10n.t("Outputs ({0})", count), count ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
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
        item.tooltip = parameter ? new vscode.MarkdownString(`\`${parameter.name.replace(/`/g, "'")}\` (${escapeMarkdown(parameter.type)}): ${escapeMarkdown(parameter.description)}`) : undefined;
        item.iconPath = new vscode.ThemeIcon("symbol-parameter");
        const deletable = node.which === "inputs" || (found?.entry.spec?.outputs.length ?? 0) > 1;
        item.contextValue = `field param ${node.which}` + flag("editable", editable) + flag("deletable", editable && deletable);
        return item;
      }
      case "code": {
        const found = this.entry(node);
        const item = new vscode.TreeItem(vscode.l10n.t("Code"), vscode.TreeItemCollapsibleState.None);
        item.id = node.id;
        item.description = found ? codeStateText(found.entry) : "";
        item.tooltip = found?.entry.syntax && !found.entry.syntax.ok && found.entry.syntax.checked ? markdownText(found.entry.syntax.message) : undefined;
        item.iconPath = found ? subTaskIcon(found.entry) : undefined;
        const hasCode = !!found && (!!found.entry.artifact || !!found.entry.codeStream);
        item.contextValue = "code" + flag("hasCode", hasCode);
        if (hasCode) item.command = { command: "gpiot.openCode", title: "Open Code", arguments: [node] };
        return item;
      }
      case "files": {
        const item = new vscode.TreeItem(vscode.l10n.t("Files ({0})", program.files.length), vscode.TreeItemCollapsibleState.Collapsed);
        item.id = node.id;
        item.description = program.outDir ? vscode.workspace.asRelativePath(program.outDir) + (program.filesStale ? vscode.l10n.t(" — out of date") : "") : undefined;
        item.tooltip = program.outDir ? new vscode.MarkdownString(`\`${program.outDir.replace(/`/g, "'")}\``) : undefined;
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
        item.tooltip = markdownText(node.text);
        item.contextValue = node.id.endsWith("/readiness") ? "message readiness" : "message";
        if (node.id.endsWith("/readiness") && this.canRegenerateStale(program))
          item.command = { command: "gpiot.regenerateStale", title: vscode.l10n.t("Regenerate Stale Sub-tasks"), arguments: [{ programUid: program.uid }] };
        return item;
      }
    }
  }

  private programDescription(program: ProgramState): string {
    const prefix = program.group && program.group.version > 1 && this.versions(program).at(-1) === program ? vscode.l10n.t("refined ×{0} · ", program.group.version - 1) : "";
    return prefix + this.programState(program);
  }

  private programState(program: ProgramState): string {
    if (program.lost) return vscode.l10n.t("needs a new run — Retry");
    if (program.detached) return vscode.l10n.t("waiting for the restarted engine…");
    if (program.busy) return describePhase(program);
    switch (program.phase) {
      case "awaitingReview":
        return program.awaitingReview === "specs" ? vscode.l10n.t("review the specs, then Continue") : vscode.l10n.t("review the sub-tasks, then Continue");
      case "failed":
        return program.lastError?.code === "ENGINE_STOPPED" ? vscode.l10n.t("stopped: the engine stopped — Retry") : vscode.l10n.t("failed — Retry");
      case "cancelled":
        return vscode.l10n.t("cancelled");
    }
    const readiness = assemblyReadiness(program);
    if (!readiness.ready) return vscode.l10n.t("edited — Regenerate Stale Sub-tasks");
    if (program.files.length) return program.filesStale ? vscode.l10n.t("files out of date — Assemble") : vscode.l10n.t("{0} files", program.files.length);
    return program.origin === "palette" ? vscode.l10n.t("ready to assemble") : vscode.l10n.t("generated (not written)");
  }

  private programTooltip(program: ProgramState): vscode.MarkdownString {
    const lines = [`**${escapeMarkdown(program.requirement)}**`, ""];
    if (program.constraints) lines.push(`${vscode.l10n.t("Constraints")}: ${escapeMarkdown(program.constraints)}`, "");
    lines.push(`${vscode.l10n.t("State")}: ${escapeMarkdown(this.programState(program))}`);
    if (program.outDir) lines.push("", `${vscode.l10n.t("Folder")}: \`${program.outDir.replace(/`/g, "'")}\``);
    if (program.lastError) lines.push("", `${vscode.l10n.t("Last error")}: ${escapeMarkdown(humanizeEngineMessage(program.lastError.message, program))}`);
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
        tooltip: item.tooltip instanceof vscode.MarkdownString ? { markdown: true, value: item.tooltip.value } : item.tooltip === undefined ? undefined : { markdown: false, value: String(item.tooltip) },
        uid: child.uid,
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

function markdownText(text: string | undefined): vscode.MarkdownString | undefined {
  return text === undefined ? undefined : new vscode.MarkdownString(escapeMarkdown(text).replace(/\n/g, "  \n"));
}

function subTaskTooltip(subTask: { name: string; problem: string; steps: string[] }, entry?: SubTaskState): vscode.MarkdownString {
  const lines = [`**${escapeMarkdown(subTask.name)}**`, "", escapeMarkdown(subTask.problem), "", ...subTask.steps.map((step) => `- ${escapeMarkdown(step)}`)];
  if (entry?.specStale) lines.push("", `_${vscode.l10n.t("Edited after its spec was written: the spec and code below are out of date until you regenerate them.")}_`);
  else if (entry?.codeState === "stale") lines.push("", `_${vscode.l10n.t("The code is out of date: regenerate it.")}_`);
  const tooltip = new vscode.MarkdownString(lines.join("\n") + (entry ? sourcesTooltip(entry) : ""));
  // Only the command that opens a cited source runs from the tooltip's links.
  tooltip.isTrusted = { enabledCommands: [OPEN_CITATION_COMMAND] };
  return tooltip;
}

function codeStateText(entry: SubTaskState): string {
  if (entry.activeStage === "rt") return vscode.l10n.t("waiting for the spec");
  switch (entry.codeState) {
    case "pending":
      return vscode.l10n.t("queued");
    case "streaming":
      return vscode.l10n.t("streaming… {0} lines", entry.codeStream.split("\n").length);
    case "done":
      return entry.syntax?.checked === false ? vscode.l10n.t("done (syntax not checked)") : vscode.l10n.t("done");
    case "syntaxError":
      return entry.syntax?.line ? vscode.l10n.t("syntax error (line {0})", entry.syntax.line) : vscode.l10n.t("syntax error");
    case "failed":
      return vscode.l10n.t("failed");
    case "stale":
      return vscode.l10n.t("out of date: regenerate");
  }
}

function subTaskDescription(entry: SubTaskState): string {
  if (entry.activeStage === "rt") return vscode.l10n.t("writing the spec…");
  if (entry.codeState === "streaming") return vscode.l10n.t("writing the code…");
  if (!entry.spec) return vscode.l10n.t("no spec yet");
  if (entry.specStale) return vscode.l10n.t("edited: spec and code out of date");
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
  if (program.detached) return new vscode.ThemeIcon("sync~spin");
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
