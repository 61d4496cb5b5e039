/**
 * Changes to existing text are proposed before they are made: the current document and the
 * proposed version open side by side in a diff editor, and only a confirmation applies the change
 * as a WorkspaceEdit (so Undo reverts it like any other edit).
 */
import * as vscode from "vscode";
import type { Ui } from "./ui";

export const PROPOSAL_SCHEME = "gpiot-proposal";

export class ProposalDocuments implements vscode.TextDocumentContentProvider {
  private readonly contents = new Map<string, string>();
  private next = 1;

  add(original: vscode.Uri, content: string): vscode.Uri {
    const name = original.path.split("/").pop() ?? "proposal";
    const uri = vscode.Uri.from({ scheme: PROPOSAL_SCHEME, path: `/${this.next++}/${name}`, query: original.toString() });
    this.contents.set(uri.toString(), content);
    return uri;
  }

  delete(uri: vscode.Uri): void {
    this.contents.delete(uri.toString());
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.contents.get(uri.toString()) ?? "";
  }
}

export interface ProposedInsertion {
  document: vscode.TextDocument;
  position: vscode.Position;
  text: string;
  title: string;
}

/**
 * Shows the diff of the insertion and asks; applies it on confirmation (or at once with
 * `confirm: true`). Resolves whether the edit was applied.
 */
export async function proposeInsertion(proposals: ProposalDocuments, ui: Ui, proposal: ProposedInsertion, options: { confirm?: boolean } = {}): Promise<boolean> {
  const { document, position, text } = proposal;
  const version = document.version;
  if (!options.confirm) {
    const offset = document.offsetAt(position);
    const current = document.getText();
    const proposedUri = proposals.add(document.uri, current.slice(0, offset) + text + current.slice(offset));
    try {
      await vscode.commands.executeCommand("vscode.diff", document.uri, proposedUri, proposal.title, { preview: true, preserveFocus: false });
      const ok = await ui.confirm(`${proposal.title}: apply this change?`, "Apply", "The change can be undone with Undo in the editor.");
      if (!ok) return false;
    } finally {
      await closeDiff(proposedUri);
      proposals.delete(proposedUri);
    }
    if (document.version !== version) {
      void ui.warn("The document changed while the proposal was shown; run the command again.");
      return false;
    }
  }
  const edit = new vscode.WorkspaceEdit();
  edit.insert(document.uri, position, text, { label: proposal.title, needsConfirmation: false });
  const applied = await vscode.workspace.applyEdit(edit);
  if (applied) await vscode.window.showTextDocument(document, { preview: false, selection: new vscode.Range(position, document.positionAt(document.offsetAt(position) + text.length)) });
  return applied;
}

async function closeDiff(proposedUri: vscode.Uri): Promise<void> {
  for (const group of vscode.window.tabGroups.all) {
    for (const tab of group.tabs) {
      if (tab.input instanceof vscode.TabInputTextDiff && tab.input.modified.toString() === proposedUri.toString()) await vscode.window.tabGroups.close(tab, true);
    }
  }
}
