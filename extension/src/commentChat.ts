/**
 * Inline chat on a requirement comment, with the Comments API (present in every VS Code build):
 * "GPIoT: Synthesize from Comment" opens a conversation thread at the comment, streams the
 * decomposition and the code into it, takes replies that refine the requirement (each reply
 * re-synthesizes the original requirement plus every refinement so far; the GPIoT view shows the
 * conversation as one entry with its earlier versions under it), and offers "Insert Below" and
 * "Create Files": both open what they would change as a diff, with Accept and Discard in the
 * editor, and change nothing until Accept (an inserted block is one Undo step).
 *
 * A code action and a CodeLens offer the command on comments: on a selected comment, on one that
 * starts with "GPIoT:", and (setting gpiot.codeLens "requirements", the default) on comments that
 * read like requirements. None of this is offered in an untrusted workspace.
 *
 *   executeCommand("gpiot.synthesizeFromComment", { uri, line?, endLine?, requirement?, wait? })
 *   executeCommand("gpiot.comment.refine", { thread | threadId, text })
 *   executeCommand("gpiot.comment.insertBelow", { threadId, confirm?: true })      (confirm: no diff first)
 *   executeCommand("gpiot.comment.createFiles", { threadId, outDir?, overwrite?, confirm? })
 */
import path from "node:path";
import * as vscode from "vscode";
import { codeLensMode } from "./config";
import { findCommentBlock, findMarkedBlocks, findRequirementBlocks, insertionText, parseRequirement, supportsLanguage, type CommentBlock } from "./commentParsing";
import type { Jobs } from "./jobs";
import { short } from "./jobs";
import { previewProgramWrite } from "./programPreview";
import type { JobResult, ProgramState } from "./programStore";
import { applyInsertion, withInsertion, type ProposalReviews } from "./proposedEdit";
import { errorInfoOf } from "./sidecar";
import { chooseProgramFolder, openProgramMain, presentWriteOutcome, type SynthesisContext, type SynthesizeResult } from "./synthesizeCommand";
import { withJobProgress } from "./progress";
import type { Ui } from "./ui";

export const COMMENT_LANGUAGES = ["python", "c", "cpp"];
const UPDATE_MS = 150;

interface ThreadState {
  id: number;
  thread: vscode.CommentThread;
  uri: vscode.Uri;
  languageId: string;
  block: CommentBlock;
  requirement: string;
  constraints?: string;
  refinements: string[];
  program?: ProgramState;
  status: "busy" | "ready" | "failed";
  answer?: vscode.Comment;
  lastResult?: JobResult;
  done?: Promise<JobResult>;
}

export interface CommentThreadInfo {
  id: number;
  uri: string;
  startLine: number;
  endLine: number;
  requirement: string;
  refinements: string[];
  status: ThreadState["status"];
  programUid?: string;
  contextValue?: string;
  comments: { author: string; body: string }[];
}

export interface FromCommentArgs {
  uri?: string;
  line?: number;
  endLine?: number;
  /** Skip reading the comment: use this requirement (the thread still opens at `line`). */
  requirement?: string;
  /** false: resolve once the job is queued. */
  wait?: boolean;
}

type ThreadArg = { threadId?: number; thread?: vscode.CommentThread; confirm?: boolean; outDir?: string; overwrite?: boolean; text?: string } | vscode.CommentThread | vscode.CommentReply | undefined;

const groupOf = (threadId: number) => `thread-${threadId}`;

function markdownCode(code: string, language = "python"): string {
  const longest = Math.max(2, ...[...code.matchAll(/`+/g)].map((match) => match[0].length));
  const fence = "`".repeat(longest + 1);
  return `${fence}${language}\n${code}\n${fence}`;
}

function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, "\\$&");
}

export class CommentChat implements vscode.Disposable {
  readonly controller: vscode.CommentController;
  private readonly threads = new Map<number, ThreadState>();
  private nextId = 1;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly lensEmitter = new vscode.EventEmitter<void>();
  private readonly author = { name: "You" };
  private readonly bot: vscode.CommentAuthorInformation;

  constructor(
    private readonly context: SynthesisContext & { jobs: Jobs; ui: Ui; proposals: ProposalReviews },
    extensionUri: vscode.Uri,
  ) {
    this.controller = vscode.comments.createCommentController("gpiot.chat", "GPIoT");
    this.controller.options = {
      prompt: vscode.l10n.t("Refine the requirement…"),
      placeHolder: vscode.l10n.t('e.g. "use a Butterworth band-pass filter" — your reply is added to the requirement and the program is generated again'),
    };
    // No commentingRangeProvider: threads are only opened by the command, never from the gutter.
    this.bot = { name: "GPIoT", iconPath: vscode.Uri.joinPath(extensionUri, "media", "icon.png") };
    this.disposables.push(this.controller, this.lensEmitter);
  }

  register(): vscode.Disposable[] {
    // Files on disk and new files only: not GPIoT's own stream documents, diffs or other virtual documents.
    const selector = COMMENT_LANGUAGES.flatMap((language) => [
      { language, scheme: "file" },
      { language, scheme: "untitled" },
    ]);
    return [
      vscode.commands.registerCommand("gpiot.synthesizeFromComment", (args?: FromCommentArgs | vscode.Uri) => this.synthesizeFromComment(args instanceof vscode.Uri ? { uri: args.toString() } : args)),
      vscode.commands.registerCommand("gpiot.comment.refine", (arg: ThreadArg) => this.refine(arg)),
      vscode.commands.registerCommand("gpiot.comment.insertBelow", (arg: ThreadArg, options?: { confirm?: boolean }) => this.insertBelow(arg, options)),
      vscode.commands.registerCommand("gpiot.comment.createFiles", (arg: ThreadArg, options?: { outDir?: string; overwrite?: boolean; confirm?: boolean }) => this.createFiles(arg, options)),
      vscode.commands.registerCommand("gpiot.comment.stop", (arg: ThreadArg) => this.stop(arg)),
      vscode.commands.registerCommand("gpiot.comment.close", (arg: ThreadArg) => this.close(arg)),
      vscode.commands.registerCommand("gpiot.comment.retry", (arg: { groupId?: string; threadId?: number }) => this.retry(arg)),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.lensEmitter.fire()),
      vscode.languages.registerCodeActionsProvider(selector, this, { providedCodeActionKinds: [vscode.CodeActionKind.RefactorRewrite.append("gpiot")] }),
      vscode.languages.registerCodeLensProvider(selector, this),
      vscode.window.onDidChangeTextEditorSelection(() => this.lensEmitter.fire()),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (event.affectsConfiguration("gpiot.codeLens")) this.lensEmitter.fire();
      }),
    ];
  }

  // ---- offering the command: code action and CodeLens ----

  provideCodeActions(document: vscode.TextDocument, range: vscode.Range | vscode.Selection): vscode.CodeAction[] {
    if (!vscode.workspace.isTrusted || !supportsLanguage(document.languageId)) return [];
    const block = findCommentBlock(document.getText(), document.languageId, range.start.line, range.end.line);
    if (!block || !parseRequirement(block.text).requirement) return [];
    const title = vscode.l10n.t("GPIoT: Synthesize from comment");
    const action = new vscode.CodeAction(title, vscode.CodeActionKind.RefactorRewrite.append("gpiot"));
    action.command = { command: "gpiot.synthesizeFromComment", title, arguments: [{ uri: document.uri.toString(), line: block.startLine, endLine: block.endLine }] };
    return [action];
  }

  readonly onDidChangeCodeLenses = this.lensEmitter.event;

  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    const mode = codeLensMode();
    if (mode === "off" || !vscode.workspace.isTrusted || !supportsLanguage(document.languageId)) return [];
    const text = document.getText();
    const blocks = mode === "requirements" ? findRequirementBlocks(text, document.languageId) : findMarkedBlocks(text, document.languageId);
    const editor = vscode.window.activeTextEditor;
    if (editor?.document === document && !editor.selection.isEmpty) {
      const selected = findCommentBlock(text, document.languageId, editor.selection.start.line, editor.selection.end.line);
      if (selected && !blocks.some((block) => block.startLine === selected.startLine)) blocks.push(selected);
    }
    return blocks
      .filter((block) => ![...this.threads.values()].some((state) => state.uri.toString() === document.uri.toString() && state.block.startLine === block.startLine))
      .map(
        (block) =>
          new vscode.CodeLens(new vscode.Range(block.startLine, 0, block.startLine, 0), {
            title: `$(sparkle) ${vscode.l10n.t("GPIoT: Synthesize from comment")}`,
            command: "gpiot.synthesizeFromComment",
            arguments: [{ uri: document.uri.toString(), line: block.startLine, endLine: block.endLine }],
          }),
      );
  }

  // ---- the conversation ----

  private thread(arg: ThreadArg): ThreadState | undefined {
    if (!arg) return this.threads.size === 1 ? [...this.threads.values()][0] : undefined;
    const thread = "thread" in arg && arg.thread ? arg.thread : "comments" in arg && "uri" in arg ? (arg as vscode.CommentThread) : undefined;
    if (thread) return [...this.threads.values()].find((state) => state.thread === thread);
    if ("threadId" in arg && arg.threadId !== undefined) return this.threads.get(arg.threadId);
    return undefined;
  }

  private setComments(state: ThreadState, comments: vscode.Comment[]): void {
    state.thread.comments = comments;
  }

  private botComment(body: string): vscode.Comment {
    const markdown = new vscode.MarkdownString(body);
    markdown.supportThemeIcons = true;
    return { body: markdown, mode: vscode.CommentMode.Preview, author: this.bot, contextValue: "gpiot.answer" };
  }

  private setStatus(state: ThreadState, status: ThreadState["status"]): void {
    state.status = status;
    const insertable = state.languageId === "python" && status === "ready";
    state.thread.contextValue = `${status}${insertable ? " insertable" : ""}`;
    state.thread.label =
      status === "busy"
        ? vscode.l10n.t("GPIoT — generating…")
        : status === "ready"
          ? insertable
            ? vscode.l10n.t("GPIoT — ready: Insert Below or Create Files")
            : vscode.l10n.t("GPIoT — ready: Create Files")
          : "GPIoT";
    state.thread.canReply = status !== "busy";
  }

  private render(state: ThreadState): string {
    const program = state.program;
    if (!program) return "$(loading~spin) Starting…";
    const lines: string[] = [];
    const subTasks = program.subTasks.length ? program.subTasks.map((entry) => entry.subTask) : program.draftSubTasks.filter(Boolean);
    if (subTasks.length) {
      lines.push("**Sub-tasks**", "");
      subTasks.forEach((subTask, index) => {
        const spec = program.subTasks[index]?.spec;
        lines.push(`${index + 1}. **${escapeMarkdown(subTask.name.replace(/\s+/g, " "))}** — ${escapeMarkdown(short(subTask.problem, 200))}${spec ? `  \n   _Target:_ ${escapeMarkdown(short(spec.target, 200))}` : ""}`);
      });
      lines.push("");
    }
    const code = program.subTasks
      .filter((entry) => entry.artifact || entry.codeStream)
      .map((entry) => `# --- ${program.subTasks.indexOf(entry) + 1}. ${entry.subTask.name.replace(/\s+/g, " ")} ---\n${entry.artifact?.code ?? entry.codeStream}`)
      .join("\n\n");
    if (code) lines.push("**Code**", "", markdownCode(code.slice(-12000)), "");
    if (program.busy) lines.push(`$(loading~spin) _${describe(program)}_`);
    else if (state.status === "failed" || program.phase === "failed") lines.push(`$(error) ${escapeMarkdown(program.lastError?.message ?? "The generation failed.")}`);
    else if (program.phase === "cancelled") lines.push("$(circle-slash) _Stopped._");
    else {
      const syntax = program.subTasks.filter((entry) => entry.codeState === "syntaxError").length;
      lines.push(`$(check) _Done${syntax ? ` — ${syntax} sub-task(s) with a syntax error` : ""}. ${state.languageId === "python" ? "Insert Below or Create Files" : "Create Files"} (buttons above), or reply to refine._`);
    }
    return lines.join("\n");
  }

  private update(state: ThreadState): void {
    const fresh = this.botComment(this.render(state));
    const comments = [...state.thread.comments];
    const at = state.answer ? comments.indexOf(state.answer) : -1;
    if (at >= 0) comments[at] = fresh;
    else comments.push(fresh);
    state.answer = fresh;
    this.setComments(state, comments);
  }

  /** Starts (or restarts, for a refinement) the synthesis of a thread and streams it in. */
  private async generate(state: ThreadState): Promise<JobResult> {
    const requirement = [state.requirement, ...state.refinements.map((text) => `Refinement: ${text}`)].join("\n\n");
    this.setStatus(state, "busy");
    state.answer = undefined;
    state.program = undefined;
    this.update(state);
    let started;
    try {
      started = await this.context.jobs.synthesize({
        requirement,
        constraints: state.constraints,
        review: "none",
        origin: "comment",
        group: { id: groupOf(state.id), title: state.requirement, version: state.refinements.length + 1 },
      });
    } catch (error) {
      const info = errorInfoOf(error);
      this.setStatus(state, "failed");
      this.setComments(state, [...state.thread.comments.filter((comment) => comment !== state.answer), this.botComment(`$(error) ${escapeMarkdown(info.message)}`)]);
      return { jobId: "", programId: "", programUid: "", generation: 0, kind: "synthesize", status: "failed", files: [], error: info };
    }
    state.program = started.program;
    let timer: NodeJS.Timeout | undefined;
    const subscription = this.context.jobs.store.onDidChangeProgram(({ program }) => {
      if (program !== state.program || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        this.update(state);
      }, UPDATE_MS);
    });
    const result = await started.done;
    subscription.dispose();
    if (timer) clearTimeout(timer);
    state.lastResult = result;
    this.setStatus(state, result.status === "finished" ? "ready" : "failed");
    this.update(state);
    if (result.error?.code === "ENGINE_STOPPED") {
      const retry = vscode.l10n.t("Retry");
      void this.context.ui.error(vscode.l10n.t("The GPIoT engine stopped during the generation; it has been restarted."), retry).then((choice) => {
        if (choice === retry) void this.generate(state);
      });
    }
    return result;
  }

  /** Runs the conversation's synthesis again (Retry from the tree or a message). */
  async retry(arg: { groupId?: string; threadId?: number }): Promise<(JobResult & { threadId: number }) | undefined> {
    const state = arg.threadId !== undefined ? this.threads.get(arg.threadId) : [...this.threads.values()].find((candidate) => groupOf(candidate.id) === arg.groupId);
    if (!state || state.status === "busy") return undefined;
    state.done = this.generate(state);
    return { ...(await state.done), threadId: state.id };
  }

  async synthesizeFromComment(args: FromCommentArgs = {}): Promise<(JobResult & { threadId: number }) | { status: "aborted"; message: string; threadId?: undefined }> {
    if (!vscode.workspace.isTrusted) {
      void this.context.ui.warn(vscode.l10n.t("GPIoT does not synthesize from comments in Restricted Mode: trust this workspace first, or use GPIoT: Synthesize Program."));
      return { status: "aborted", message: "Untrusted workspace." };
    }
    const editor = vscode.window.activeTextEditor;
    const document = args.uri ? await vscode.workspace.openTextDocument(vscode.Uri.parse(args.uri)) : editor?.document;
    if (!document) {
      void this.context.ui.warn(vscode.l10n.t("Open a file and select a comment that states a requirement first."));
      return { status: "aborted", message: "No document." };
    }
    const selection = args.line !== undefined ? new vscode.Range(args.line, 0, args.endLine ?? args.line, 0) : editor?.document === document ? editor.selection : undefined;
    const text = document.getText();
    let block = selection ? findCommentBlock(text, document.languageId, selection.start.line, selection.end.line) : undefined;
    if (!block && selection && !selection.isEmpty) {
      // Not a comment: the selected text is the requirement.
      const selected = document.getText(selection);
      block = { startLine: selection.start.line, endLine: selection.end.line, style: "hash", indent: /^\s*/.exec(document.lineAt(selection.start.line).text)![0], text: selected };
    }
    if (!block && args.requirement && args.line !== undefined) block = { startLine: args.line, endLine: args.endLine ?? args.line, style: "hash", indent: "", text: args.requirement };
    if (!block) {
      void this.context.ui.warn(vscode.l10n.t("Put the cursor in (or select) a comment that states a requirement, e.g. # GPIoT: detect heartbeats in an ECG and report the heart rate."));
      return { status: "aborted", message: "No comment at the selection." };
    }
    const parsed = args.requirement ? { requirement: args.requirement } : parseRequirement(block.text);
    if (!parsed.requirement.trim()) {
      void this.context.ui.warn(vscode.l10n.t("That comment is empty."));
      return { status: "aborted", message: "Empty comment." };
    }
    const range = new vscode.Range(block.startLine, 0, block.endLine, document.lineAt(block.endLine).text.length);
    const thread = this.controller.createCommentThread(document.uri, range, []);
    thread.collapsibleState = vscode.CommentThreadCollapsibleState.Expanded;
    const state: ThreadState = {
      id: this.nextId++,
      thread,
      uri: document.uri,
      languageId: document.languageId,
      block,
      requirement: parsed.requirement,
      constraints: "constraints" in parsed ? parsed.constraints : undefined,
      refinements: [],
      status: "busy",
    };
    this.threads.set(state.id, state);
    this.lensEmitter.fire();
    const userBody = new vscode.MarkdownString(`${escapeMarkdown(parsed.requirement)}${state.constraints ? `\n\n_Constraints:_ ${escapeMarkdown(state.constraints)}` : ""}`);
    this.setComments(state, [{ body: userBody, mode: vscode.CommentMode.Preview, author: this.author }]);
    state.done = this.generate(state);
    if (args.wait === false) return { jobId: "", programId: "", programUid: "", generation: 0, kind: "synthesize", status: "finished", files: [], threadId: state.id };
    const result = await state.done;
    return { ...result, threadId: state.id };
  }

  async refine(arg: ThreadArg): Promise<(JobResult & { threadId: number }) | undefined> {
    const state = this.thread(arg);
    const text = (arg && "text" in arg ? arg.text : undefined)?.trim();
    if (!state || !text) return undefined;
    if (state.status === "busy") {
      void this.context.ui.info(vscode.l10n.t("GPIoT is still generating; wait for it or stop it first."));
      return undefined;
    }
    state.refinements.push(text);
    this.setComments(state, [...state.thread.comments, { body: new vscode.MarkdownString(escapeMarkdown(text)), mode: vscode.CommentMode.Preview, author: this.author }]);
    state.answer = undefined;
    state.done = this.generate(state);
    const result = await state.done;
    return { ...result, threadId: state.id };
  }

  private code(state: ThreadState): string | undefined {
    const program = state.program;
    if (!program || !program.subTasks.length || program.subTasks.some((entry) => !entry.artifact)) return undefined;
    const header = `# Generated by GPIoT from the comment above${state.refinements.length ? " and your refinements" : ""}.`;
    const parts = program.subTasks.map((entry, index) => `# --- Sub-task ${index + 1}: ${entry.subTask.name.replace(/\s+/g, " ")} ---\n${entry.artifact!.code.replace(/\s+$/, "")}`);
    return [header, ...parts].join("\n\n");
  }

  /** Where the code goes: below the comment, found again where the thread is now (the file may have changed). */
  private insertionPoint(state: ThreadState, document: vscode.TextDocument, code: string): { position: vscode.Position; text: string; endLine: number } {
    const threadLine = state.thread.range?.start.line ?? state.block.startLine;
    const block = findCommentBlock(document.getText(), document.languageId, threadLine) ?? state.block;
    const endLine = Math.min(block.endLine, document.lineCount - 1);
    const eol = document.eol === vscode.EndOfLine.CRLF ? "\r\n" : "\n";
    return { position: document.lineAt(endLine).range.end, text: insertionText(block, code, eol), endLine };
  }

  /**
   * Shows the file with the code inserted below the comment as a diff, and inserts it (one
   * undoable edit) only when the user accepts; `confirm: true` inserts without the diff.
   */
  async insertBelow(arg: ThreadArg, options: { confirm?: boolean } = {}): Promise<{ applied: boolean; line?: number }> {
    const state = this.thread(arg);
    const confirm = options.confirm ?? (arg && "confirm" in arg ? arg.confirm : undefined);
    if (!state) return { applied: false };
    const code = this.code(state);
    if (!code || state.status !== "ready") {
      void this.context.ui.warn(vscode.l10n.t("There is no finished code in this conversation yet."));
      return { applied: false };
    }
    const document = await vscode.workspace.openTextDocument(state.uri);
    const title = vscode.l10n.t("GPIoT: insert the generated code below the comment");
    if (!confirm) {
      const preview = this.insertionPoint(state, document, code);
      this.setComments(state, [...state.thread.comments, this.botComment(vscode.l10n.t("$(diff) Review the change in the diff editor, then **Accept** or **Discard** it (buttons in the editor's title bar)."))]);
      const decision = await this.context.proposals.propose(title, [{ target: document.uri, original: document.uri, proposed: withInsertion(document, preview.position, preview.text) }]);
      if (decision !== "accepted") {
        this.setComments(state, [...state.thread.comments, this.botComment(vscode.l10n.t("$(close) Discarded: the file was not changed."))]);
        return { applied: false };
      }
    }
    const { position, text, endLine } = this.insertionPoint(state, document, code);
    const applied = await applyInsertion(document, position, text, title);
    if (applied) this.setComments(state, [...state.thread.comments, this.botComment(vscode.l10n.t("$(check) Inserted below line {0}. Undo (Ctrl+Z) in the editor reverts it.", endLine + 1))]);
    return { applied, line: applied ? endLine + 1 : undefined };
  }

  /** Writes the assembled program into a new folder, after the user read its files as a diff and accepted (unless `confirm: true`). */
  async createFiles(arg: ThreadArg, options: { outDir?: string; overwrite?: boolean; confirm?: boolean } = {}): Promise<SynthesizeResult> {
    const state = this.thread(arg);
    const outDirArg = options.outDir ?? (arg && "outDir" in arg ? arg.outDir : undefined);
    const overwriteArg = options.overwrite ?? (arg && "overwrite" in arg ? arg.overwrite : undefined);
    const confirm = options.confirm ?? (arg && "confirm" in arg ? arg.confirm : undefined);
    if (!state?.program || state.status !== "ready") {
      void this.context.ui.warn(vscode.l10n.t("There is no finished program in this conversation yet."));
      return { status: "aborted" };
    }
    const program = state.program;
    if (program.lost) {
      const retry = vscode.l10n.t("Retry");
      void this.context.ui.warn(vscode.l10n.t("The GPIoT engine stopped and could not take this program over; it needs a new run."), retry).then((choice) => {
        if (choice === retry) void this.retry({ threadId: state.id });
      });
      return { status: "aborted" };
    }
    const folder = await chooseProgramFolder(this.context.ui, program.requirement, outDirArg, overwriteArg);
    if (!folder) return { status: "aborted" };
    if (!confirm) {
      const decision = await previewProgramWrite(this.context, program, folder.outDir);
      if (decision !== "accepted") return { status: "aborted", message: decision };
      folder.overwrite = true;
    }
    let started;
    try {
      started = await this.context.jobs.assemble(program, { outDir: folder.outDir, overwrite: folder.overwrite });
    } catch (error) {
      const info = errorInfoOf(error);
      void this.context.ui.error(vscode.l10n.t("GPIoT could not write the program: {0}", info.message));
      return { status: "failed", error: info };
    }
    const result = await withJobProgress(this.context.jobs, this.context.ui, started, vscode.l10n.t("GPIoT: writing the program"));
    const outcome = await presentWriteOutcome(this.context, started, result, { openEditors: true });
    if (outcome.status === "finished" && program.outDir) {
      this.setComments(state, [
        ...state.thread.comments,
        this.botComment(vscode.l10n.t("$(new-folder) Wrote {0} files to `{1}` ({2}).", program.files.length, vscode.workspace.asRelativePath(program.outDir), program.files.map((file) => path.basename(file)).join(", "))),
      ]);
      await openProgramMain(program).catch(() => undefined);
    }
    return outcome;
  }

  async stop(arg: ThreadArg): Promise<boolean> {
    const state = this.thread(arg);
    if (!state?.program) return false;
    return this.context.jobs.cancel(state.program);
  }

  close(arg: ThreadArg): void {
    const state = this.thread(arg);
    if (!state) return;
    if (state.program?.busy) void this.context.jobs.cancel(state.program).catch(() => undefined);
    state.thread.dispose();
    this.threads.delete(state.id);
    this.lensEmitter.fire();
  }

  info(): CommentThreadInfo[] {
    return [...this.threads.values()].map((state) => ({
      id: state.id,
      uri: state.uri.toString(),
      startLine: state.block.startLine,
      endLine: state.block.endLine,
      requirement: state.requirement,
      refinements: [...state.refinements],
      status: state.status,
      programUid: state.program?.uid,
      contextValue: state.thread.contextValue,
      comments: state.thread.comments.map((comment) => ({ author: comment.author.name, body: typeof comment.body === "string" ? comment.body : comment.body.value })),
    }));
  }

  dispose(): void {
    for (const state of this.threads.values()) state.thread.dispose();
    this.threads.clear();
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }
}

function describe(program: ProgramState): string {
  switch (program.phase) {
    case "decomposing":
      return "Decomposing the requirement…";
    case "specifying":
      return "Writing the specifications…";
    case "coding":
      return "Writing the code…";
    case "starting":
    case "queued":
      return "Loading the models…";
    default:
      return "Working…";
  }
}
