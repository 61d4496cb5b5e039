/**
 * See before it lands: every change GPIoT would make to a file opens first as a diff (one file:
 * a diff editor; a program's files: a multi-file diff editor), which the user can scroll and read
 * for as long as they like, with **Accept** and **Discard** in the editor's title bar. Nothing
 * blocks the window meanwhile. Accept applies the change (an edit in a document is one
 * WorkspaceEdit, so one Undo reverts it); Discard, or closing the diff, changes nothing.
 *
 *   executeCommand("gpiot.proposal.accept" | "gpiot.proposal.discard", { id }?)   (no id: the one in the active editor, else the newest)
 */
import * as vscode from "vscode";

export const PROPOSAL_SCHEME = "gpiot-proposal";

export type ProposalDecision = "accepted" | "discarded";

export interface ProposedChange {
  /** The file the change is for (it may not exist yet). */
  target: vscode.Uri;
  /** The current content to compare with (undefined: a new file). */
  original?: vscode.Uri;
  /** The content after the change (null: the file is deleted). */
  proposed: string | null;
}

export interface PendingProposal {
  id: number;
  title: string;
  files: string[];
  /** The proposal documents (right side of the diffs). */
  uris: string[];
  openedAt: number;
}

interface Entry extends PendingProposal {
  resolve: (decision: ProposalDecision) => void;
}

export class ProposalReviews implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly contents = new Map<string, string>();
  private readonly pending = new Map<number, Entry>();
  private next = 1;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly changeEmitter = new vscode.EventEmitter<PendingProposal[]>();
  /** Fires when a proposal opens or is decided. */
  readonly onDidChangeProposals = this.changeEmitter.event;

  constructor() {
    this.disposables.push(
      this.changeEmitter,
      vscode.window.tabGroups.onDidChangeTabs((event) => {
        for (const tab of event.closed) {
          const entry = this.entryOfTab(tab);
          // Closing the diff without deciding discards the change.
          if (entry && !this.isOpen(entry)) this.settle(entry, "discarded", false);
        }
      }),
    );
  }

  register(): vscode.Disposable[] {
    return [
      vscode.workspace.registerTextDocumentContentProvider(PROPOSAL_SCHEME, this),
      vscode.commands.registerCommand("gpiot.proposal.accept", (arg?: { id?: number } | vscode.Uri) => this.decide(arg, "accepted")),
      vscode.commands.registerCommand("gpiot.proposal.discard", (arg?: { id?: number } | vscode.Uri) => this.decide(arg, "discarded")),
    ];
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.contents.get(uri.toString()) ?? "";
  }

  /** The proposals waiting for Accept or Discard. */
  list(): PendingProposal[] {
    return [...this.pending.values()].map(({ resolve: _resolve, ...info }) => info);
  }

  /**
   * Opens the change as a diff and resolves once the user accepts or discards it (or closes the
   * diff). The caller applies an accepted change.
   */
  async propose(title: string, changes: ProposedChange[]): Promise<ProposalDecision> {
    const id = this.next++;
    const uris = changes.map((change) => {
      if (change.proposed === null) return undefined;
      const name = change.target.path.split("/").pop() ?? "proposal";
      const uri = vscode.Uri.from({ scheme: PROPOSAL_SCHEME, path: `/${id}/${name}`, query: change.target.toString() });
      this.contents.set(uri.toString(), change.proposed);
      return uri;
    });
    const decision = new Promise<ProposalDecision>((resolve) => {
      this.pending.set(id, { id, title, files: changes.map((change) => change.target.fsPath), uris: uris.filter((uri) => uri !== undefined).map(String), openedAt: Date.now(), resolve });
    });
    await vscode.commands.executeCommand("setContext", "gpiot.proposalPending", true);
    this.changeEmitter.fire(this.list());
    // The decision does not wait for the editor to report that it opened (under load that can take
    // long); a diff that cannot be opened at all discards the change.
    const opened =
      changes.length === 1 && changes[0].original && uris[0]
        ? vscode.commands.executeCommand("vscode.diff", changes[0].original, uris[0], title, { preview: false, preserveFocus: false })
        : vscode.commands.executeCommand("vscode.changes", title, changes.map((change, index) => [change.target, change.original, uris[index]]));
    Promise.resolve(opened).then(undefined, () => {
      const entry = this.pending.get(id);
      if (entry) this.settle(entry, "discarded", false);
    });
    return decision;
  }

  private entryOfTab(tab: vscode.Tab): Entry | undefined {
    const input = tab.input as { modified?: vscode.Uri; textDiffs?: { modified: vscode.Uri }[] } | undefined;
    const modified = [input?.modified, ...(input?.textDiffs?.map((diff) => diff.modified) ?? [])].filter((uri): uri is vscode.Uri => !!uri && uri.scheme === PROPOSAL_SCHEME);
    if (modified.length) return [...this.pending.values()].find((entry) => modified.some((uri) => entry.uris.includes(uri.toString())));
    return [...this.pending.values()].find((entry) => tab.label === entry.title || tab.label.startsWith(`${entry.title} (`));
  }

  private tabsOf(entry: Entry): vscode.Tab[] {
    return vscode.window.tabGroups.all.flatMap((group) => group.tabs).filter((tab) => this.entryOfTab(tab) === entry);
  }

  private isOpen(entry: Entry): boolean {
    return this.tabsOf(entry).length > 0;
  }

  private async decide(arg: { id?: number } | vscode.Uri | undefined, decision: ProposalDecision): Promise<boolean> {
    let entry: Entry | undefined;
    if (arg instanceof vscode.Uri) entry = [...this.pending.values()].find((candidate) => candidate.uris.includes(arg.toString()));
    else if (arg?.id !== undefined) entry = this.pending.get(arg.id);
    if (!entry) {
      const active = vscode.window.tabGroups.activeTabGroup.activeTab;
      entry = active ? this.entryOfTab(active) : undefined;
    }
    entry ??= [...this.pending.values()].at(-1);
    if (!entry) return false;
    this.settle(entry, decision, true);
    return true;
  }

  /** Ends a proposal: its diff is closed and the caller learns the decision (and applies an accepted change). */
  private settle(entry: Entry, decision: ProposalDecision, closeTabs: boolean): void {
    const tabs = closeTabs ? this.tabsOf(entry) : [];
    if (!this.pending.delete(entry.id)) return;
    if (!this.pending.size) void vscode.commands.executeCommand("setContext", "gpiot.proposalPending", false);
    this.changeEmitter.fire(this.list());
    entry.resolve(decision);
    void Promise.resolve(tabs.length ? vscode.window.tabGroups.close(tabs, true) : true).then(
      () => {
        for (const uri of entry.uris) this.contents.delete(uri);
      },
      () => undefined,
    );
  }

  dispose(): void {
    for (const entry of [...this.pending.values()]) this.settle(entry, "discarded", false);
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }
}

/** The text of `document` with `text` inserted at `position`. */
export function withInsertion(document: vscode.TextDocument, position: vscode.Position, text: string): string {
  const offset = document.offsetAt(position);
  const current = document.getText();
  return current.slice(0, offset) + text + current.slice(offset);
}

/** Inserts text as one WorkspaceEdit (one Undo step) and shows it selected. */
export async function applyInsertion(document: vscode.TextDocument, position: vscode.Position, text: string, label: string): Promise<boolean> {
  const edit = new vscode.WorkspaceEdit();
  edit.insert(document.uri, position, text, { label, needsConfirmation: false });
  const applied = await vscode.workspace.applyEdit(edit);
  if (applied) await vscode.window.showTextDocument(document, { preview: false, selection: new vscode.Range(position, document.positionAt(document.offsetAt(position) + text.length)) });
  return applied;
}
