/**
 * The passages a spec or code was written with, where the user meets them: a "Sources" list in the
 * spec documents (each entry a link), the sub-task's tooltip in the task tree, and
 * "GPIoT: Open Source of Passage", which opens the document at the passage (the line of a text or
 * Markdown file; a PDF opens whole, its page named).
 */
import { existsSync } from "node:fs";
import * as vscode from "vscode";
import { describeCitation, type Citation } from "../../sidecar/src/schemas";
import type { SubTaskState } from "./programStore";
import { STREAM_SCHEME } from "./streamDocuments";
import type { Ui } from "./ui";

export const OPEN_CITATION_COMMAND = "gpiot.openCitation";

/** What the open command needs of a citation (a full Citation works too). */
export type CitationTarget = Pick<Citation, "path"> & Partial<Pick<Citation, "line" | "page" | "document" | "section">>;

/** The spec's and the code's citations, each source location once (spec first). */
export function citationsOf(entry: Pick<SubTaskState, "specCitations" | "codeCitations">): { stage: "spec" | "code"; citation: Citation }[] {
  const seen = new Set<string>();
  const result: { stage: "spec" | "code"; citation: Citation }[] = [];
  for (const [stage, list] of [["spec", entry.specCitations ?? []], ["code", entry.codeCitations ?? []]] as const) {
    for (const citation of list) {
      const key = `${citation.path}\u0000${citation.line ?? ""}\u0000${citation.page ?? ""}\u0000${citation.chunkId}`;
      if (seen.has(key)) continue;
      seen.add(key);
      result.push({ stage, citation });
    }
  }
  return result;
}

export function openCitationUri(citation: CitationTarget): vscode.Uri {
  const target: CitationTarget = { path: citation.path, ...(citation.line ? { line: citation.line } : {}), ...(citation.page ? { page: citation.page } : {}) };
  return vscode.Uri.parse(`command:${OPEN_CITATION_COMMAND}?${encodeURIComponent(JSON.stringify([target]))}`);
}

/** "path:line" as the program's README writes it. */
export function citationLocation(citation: Citation): string {
  return citation.line ? `${citation.path}:${citation.line}` : citation.path;
}

/** The Markdown lines of a "Sources" section: `- [n] description — path:line`. */
export function sourcesMarkdown(entry: Pick<SubTaskState, "specCitations" | "codeCitations">): string[] {
  const citations = citationsOf(entry);
  if (!citations.length) return [];
  return [`### ${vscode.l10n.t("Sources")}`, "", ...citations.map(({ stage, citation }) => `- [${citation.n}] ${describeCitation(citation)} (${stage}) — ${citationLocation(citation)}`), ""];
}

/** The tooltip part: each source a link that opens it (the tree's MarkdownString trusts only this command). */
export function sourcesTooltip(entry: Pick<SubTaskState, "specCitations" | "codeCitations">): string {
  const citations = citationsOf(entry);
  if (!citations.length) return "";
  const lines = citations.map(({ stage, citation }) => `- [${escapeMarkdown(describeCitation(citation))}](${openCitationUri(citation).toString()}) (${stage})`);
  return `\n\n**${vscode.l10n.t("Sources")}**\n\n${lines.join("\n")}`;
}

function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, "\\$&");
}

/** Links each entry of a spec document's Sources list to the open command. */
export class CitationLinks implements vscode.DocumentLinkProvider {
  provideDocumentLinks(document: vscode.TextDocument): vscode.DocumentLink[] {
    const links: vscode.DocumentLink[] = [];
    for (let line = 0; line < document.lineCount; line++) {
      const text = document.lineAt(line).text;
      const match = / — (.+?)(?::(\d+))?$/.exec(text);
      if (!match || !/^- \[\d+\] /.test(text)) continue;
      const start = match.index + 3;
      const target: CitationTarget = { path: match[1], ...(match[2] ? { line: Number(match[2]) } : {}) };
      const link = new vscode.DocumentLink(new vscode.Range(line, start, line, text.length), openCitationUri(target));
      link.tooltip = vscode.l10n.t("Open the source at the passage");
      links.push(link);
    }
    return links;
  }
}

export interface OpenedCitation {
  path: string;
  /** 1-based line the editor shows, for text documents. */
  line?: number;
  /** For PDFs: the page of the passage (VS Code opens the file, the viewer decides the page). */
  page?: number;
}

/** Opens a cited document at the passage. Returns what was opened, or undefined when it could not be. */
export async function openCitation(ui: Ui, target: CitationTarget | undefined): Promise<OpenedCitation | undefined> {
  if (!target || typeof target.path !== "string") {
    void ui.warn(vscode.l10n.t("GPIoT: no passage to open (run the command from a Sources link)."));
    return undefined;
  }
  if (!existsSync(target.path)) {
    void ui.warn(vscode.l10n.t("GPIoT: the source {0} is not there any more. Rebuild the document index to drop it.", target.path), vscode.l10n.t("Rebuild Document Index")).then((choice) => {
      if (choice) void vscode.commands.executeCommand("gpiot.rebuildDocumentIndex");
    });
    return undefined;
  }
  const uri = vscode.Uri.file(target.path);
  if (/\.pdf$/i.test(target.path)) {
    await vscode.commands.executeCommand("vscode.open", target.page ? uri.with({ fragment: `page=${target.page}` }) : uri);
    if (target.page) void ui.info(vscode.l10n.t("GPIoT: the passage is on page {0} of {1}.", target.page, target.path));
    return { path: target.path, ...(target.page ? { page: target.page } : {}) };
  }
  const document = await vscode.workspace.openTextDocument(uri);
  const line = Math.min(Math.max((target.line ?? 1) - 1, 0), Math.max(document.lineCount - 1, 0));
  const position = new vscode.Position(line, 0);
  await vscode.window.showTextDocument(document, { selection: new vscode.Range(position, position), preview: true, viewColumn: vscode.ViewColumn.Active });
  return { path: target.path, line: line + 1 };
}

export function registerCitations(ui: Ui): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(OPEN_CITATION_COMMAND, (target?: CitationTarget) => openCitation(ui, target)),
    vscode.languages.registerDocumentLinkProvider({ scheme: STREAM_SCHEME }, new CitationLinks()),
  ];
}
