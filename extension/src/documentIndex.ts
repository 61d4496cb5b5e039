/**
 * The document index retrieval draws passages from (kept in the extension's global storage):
 * "GPIoT: Add Folder to Document Index", "Add Workspace to Document Index", "Show Document Index"
 * (its sources, each removable), "Remove Source from Document Index" and "Rebuild Document Index".
 * Updates run in the sidecar with a cancellable progress notification.
 */
import * as vscode from "vscode";
import type { IndexListing, IndexProgress, IndexUpdateSummary, ResultOf } from "../../sidecar/src/protocol";
import { firstWorkspaceFolder } from "./config";
import { errorInfoOf, type Sidecar } from "./sidecar";
import type { Ui } from "./ui";

function phaseText(phase: IndexProgress["phase"], done: number, total: number): string {
  if (phase === "read") return vscode.l10n.t("reading documents {0}/{1}", done, total);
  if (phase === "embed") return vscode.l10n.t("embedding passages {0}/{1}", done, total);
  return vscode.l10n.t("writing the index");
}

/** "3 files read, 2 unchanged; 41 chunks (12 embedded); skipped: big.pdf (…)" */
const REBUILD = () => vscode.l10n.t("Rebuild Document Index");

export function describeSummary(summary: IndexUpdateSummary): string {
  const parts = [
    vscode.l10n.t("{0} file(s) read, {1} unchanged, {2} gone", summary.files.read, summary.files.unchanged, summary.files.removed),
    vscode.l10n.t("{0} passages in the index ({1} embedded now)", summary.chunks, summary.embedded),
  ];
  if (!summary.embedding) parts.push(vscode.l10n.t("no embedding model: words only (BM25)"));
  if (summary.skipped.length) parts.push(vscode.l10n.t("skipped {0}: {1}", summary.skipped.length, `${summary.skipped.slice(0, 3).map((skipped) => `${skipped.path} (${skipped.reason})`).join("; ")}${summary.skipped.length > 3 ? "; …" : ""}`));
  return parts.join("; ");
}

export class DocumentIndex {
  constructor(
    private readonly sidecar: Sidecar,
    private readonly ui: Ui,
  ) {}

  register(): vscode.Disposable[] {
    return [
      // A job whose retrieval failed still finishes; the user hears why it had no passages.
      this.sidecar.onJobEvent(({ event }) => {
        if (event.type !== "warning" || event.code !== "RETRIEVAL_UNAVAILABLE") return;
        void this.ui.warn(vscode.l10n.t("GPIoT: {0}", event.message), REBUILD()).then((choice) => {
          if (choice) void this.rebuild();
        });
      }),
      vscode.commands.registerCommand("gpiot.addDocumentFolder", (folder?: string | vscode.Uri) => this.addFolder(folder)),
      vscode.commands.registerCommand("gpiot.addWorkspaceToDocumentIndex", () => this.addWorkspace()),
      vscode.commands.registerCommand("gpiot.showDocumentIndex", () => this.show()),
      vscode.commands.registerCommand("gpiot.removeDocumentSource", (source?: string) => this.remove(source)),
      vscode.commands.registerCommand("gpiot.rebuildDocumentIndex", () => this.rebuild()),
    ];
  }

  /** Runs an index update with a progress notification whose Cancel stops it. */
  private withProgress<T>(title: string, run: () => Promise<T>): Thenable<T> {
    return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
      const rpc = await this.sidecar.ensureStarted();
      let last = 0;
      const subscription = rpc.onIndexProgress((event) => {
        const percent = event.total ? Math.round((event.done / event.total) * 100) : 0;
        progress.report({ message: phaseText(event.phase, event.done, event.total), increment: Math.max(0, percent - last) });
        last = percent;
      });
      const cancel = token.onCancellationRequested(() => void this.sidecar.request((client) => client.request("cancelIndex")).catch(() => undefined));
      try {
        return await run();
      } finally {
        subscription.dispose();
        cancel.dispose();
      }
    });
  }

  private failed(message: string): undefined {
    void this.ui.error(message);
    return undefined;
  }

  async addFolder(folder?: string | vscode.Uri, kind: "folder" | "workspace" = "folder"): Promise<ResultOf<"indexAdd"> | undefined> {
    let target = typeof folder === "string" ? folder : folder?.fsPath;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, title: vscode.l10n.t("GPIoT: Add a folder of documents (PDF, Markdown, text) to the index"), openLabel: vscode.l10n.t("Add to Index") });
      if (!picked?.length) return undefined;
      target = picked[0].fsPath;
    }
    const path = target;
    try {
      const result = await this.withProgress(vscode.l10n.t("GPIoT: indexing {0}", path), () => this.sidecar.request((rpc) => rpc.request("indexAdd", { path, kind })));
      void this.ui.info(result.existed ? vscode.l10n.t("GPIoT: updated {0}: {1}.", path, describeSummary(result.summary)) : vscode.l10n.t("GPIoT: added {0}: {1}.", path, describeSummary(result.summary)));
      return result;
    } catch (error) {
      return this.failed(vscode.l10n.t("GPIoT could not index {0}: {1}", path, errorInfoOf(error).message));
    }
  }

  /** The first workspace folder as a source that is used only while that folder is open. */
  async addWorkspace(): Promise<ResultOf<"indexAdd"> | undefined> {
    const folder = firstWorkspaceFolder();
    if (!folder) {
      void this.ui.warn(vscode.l10n.t("GPIoT: open a folder first; its documents are then used while it is open."));
      return undefined;
    }
    return this.addFolder(folder, "workspace");
  }

  async list(): Promise<IndexListing | undefined> {
    try {
      return await this.sidecar.request((rpc) => rpc.request("indexList"));
    } catch (error) {
      return this.failed(vscode.l10n.t("GPIoT could not read the document index: {0}", errorInfoOf(error).message));
    }
  }

  /** The sources in a quick pick; choosing one offers to remove it. */
  async show(): Promise<IndexListing | undefined> {
    const listing = await this.list();
    if (!listing) return undefined;
    if (listing.problem) {
      void this.ui.warn(vscode.l10n.t("GPIoT: {0} Retrieval adds no passages until it is rebuilt.", listing.problem), REBUILD()).then((choice) => {
        if (choice) void this.rebuild();
      });
    }
    const add = { label: `$(add) ${vscode.l10n.t("Add Folder…")}`, command: "gpiot.addDocumentFolder" };
    const rebuild = { label: `$(refresh) ${vscode.l10n.t("Rebuild Index")}`, command: "gpiot.rebuildDocumentIndex" };
    const items = [
      ...listing.sources.map((source) => ({
        label: `${source.missing ? "$(warning)" : source.kind === "corpus" ? "$(book)" : "$(folder)"} ${source.path}`,
        description: `${vscode.l10n.t("{0}, {1} document(s), {2} passages, {3} skipped", source.kind, source.files, source.chunks, source.skipped.length)}${source.missing ? `, ${vscode.l10n.t("missing")}` : ""}`,
        detail: source.skipped.length ? vscode.l10n.t("Skipped: {0}", source.skipped.slice(0, 3).map((skipped) => `${skipped.path} (${skipped.reason})`).join("; ")) : undefined,
        sourceId: source.id,
      })),
      add,
      rebuild,
    ];
    const picked = await vscode.window.showQuickPick(items, {
      title: listing.embedding ? vscode.l10n.t("GPIoT Document Index: {0} passages, embedded with {1}", listing.chunks, listing.embedding.key) : vscode.l10n.t("GPIoT Document Index: {0} passages, words only", listing.chunks),
      placeHolder: listing.sources.length ? vscode.l10n.t("Choose a source to remove it") : vscode.l10n.t("No documents yet: add a folder"),
    });
    if (!picked) return listing;
    if ("command" in picked) await vscode.commands.executeCommand(picked.command);
    else await this.remove(picked.sourceId);
    return listing;
  }

  async remove(source?: string): Promise<ResultOf<"indexRemove"> | undefined> {
    let target = source;
    if (!target) {
      const listing = await this.list();
      if (!listing) return undefined;
      if (!listing.sources.length) {
        void this.ui.info(vscode.l10n.t("GPIoT: the document index has no sources."));
        return undefined;
      }
      const picked = await vscode.window.showQuickPick(
        listing.sources.map((entry) => ({ label: entry.path, description: vscode.l10n.t("{0}, {1} passages", entry.kind, entry.chunks), sourceId: entry.id })),
        { title: vscode.l10n.t("GPIoT: Remove a source from the document index") },
      );
      if (!picked) return undefined;
      target = picked.sourceId;
    }
    const chosen = target;
    try {
      const result = await this.sidecar.request((rpc) => rpc.request("indexRemove", { source: chosen }));
      void this.ui.info(vscode.l10n.t("GPIoT: removed {0} from the document index ({1} passages left).", result.removed.path, result.summary.chunks));
      return result;
    } catch (error) {
      return this.failed(vscode.l10n.t("GPIoT could not remove {0} from the document index: {1}", chosen, errorInfoOf(error).message));
    }
  }

  async rebuild(): Promise<IndexUpdateSummary | undefined> {
    try {
      const summary = await this.withProgress(vscode.l10n.t("GPIoT: rebuilding the document index"), () => this.sidecar.request((rpc) => rpc.request("indexRebuild", {})));
      void this.ui.info(vscode.l10n.t("GPIoT: document index rebuilt: {0}. {1}", describeSummary(summary), summary.notes.join(" ")).trimEnd());
      return summary;
    } catch (error) {
      return this.failed(vscode.l10n.t("GPIoT could not rebuild the document index: {0}", errorInfoOf(error).message));
    }
  }
}
