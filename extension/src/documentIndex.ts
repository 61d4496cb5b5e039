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

const PHASES: Record<IndexProgress["phase"], string> = { read: "reading documents", embed: "embedding passages", write: "writing the index" };

/** "3 files read, 2 unchanged; 41 chunks (12 embedded); skipped: big.pdf (…)" */
export function describeSummary(summary: IndexUpdateSummary): string {
  const parts = [`${summary.files.read} file(s) read, ${summary.files.unchanged} unchanged${summary.files.removed ? `, ${summary.files.removed} gone` : ""}`, `${summary.chunks} passages in the index (${summary.embedded} embedded now)`];
  if (!summary.embedding) parts.push("no embedding model: words only (BM25)");
  if (summary.skipped.length) parts.push(`skipped ${summary.skipped.length}: ${summary.skipped.slice(0, 3).map((skipped) => `${skipped.path} (${skipped.reason})`).join("; ")}${summary.skipped.length > 3 ? "; …" : ""}`);
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
        void this.ui.warn(`GPIoT: ${event.message}`, "Rebuild Document Index").then((choice) => {
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
        progress.report({ message: `${PHASES[event.phase]} ${event.done}/${event.total}`, increment: Math.max(0, percent - last) });
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

  private async failed(what: string, error: unknown): Promise<undefined> {
    const info = errorInfoOf(error);
    void this.ui.error(`GPIoT could not ${what}: ${info.message}`);
    return undefined;
  }

  async addFolder(folder?: string | vscode.Uri, kind: "folder" | "workspace" = "folder"): Promise<ResultOf<"indexAdd"> | undefined> {
    let target = typeof folder === "string" ? folder : folder?.fsPath;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, title: "GPIoT: Add a folder of documents (PDF, Markdown, text) to the index", openLabel: "Add to Index" });
      if (!picked?.length) return undefined;
      target = picked[0].fsPath;
    }
    const path = target;
    try {
      const result = await this.withProgress(`GPIoT: indexing ${path}`, () => this.sidecar.request((rpc) => rpc.request("indexAdd", { path, kind })));
      void this.ui.info(`GPIoT: ${result.existed ? "updated" : "added"} ${path}: ${describeSummary(result.summary)}.`);
      return result;
    } catch (error) {
      return this.failed(`index ${path}`, error);
    }
  }

  /** The first workspace folder as a source that is used only while that folder is open. */
  async addWorkspace(): Promise<ResultOf<"indexAdd"> | undefined> {
    const folder = firstWorkspaceFolder();
    if (!folder) {
      void this.ui.warn("GPIoT: open a folder first; its documents are then used while it is open.");
      return undefined;
    }
    return this.addFolder(folder, "workspace");
  }

  async list(): Promise<IndexListing | undefined> {
    try {
      return await this.sidecar.request((rpc) => rpc.request("indexList"));
    } catch (error) {
      return this.failed("read the document index", error);
    }
  }

  /** The sources in a quick pick; choosing one offers to remove it. */
  async show(): Promise<IndexListing | undefined> {
    const listing = await this.list();
    if (!listing) return undefined;
    if (listing.problem) {
      void this.ui.warn(`GPIoT: ${listing.problem} Retrieval adds no passages until it is rebuilt.`, "Rebuild Document Index").then((choice) => {
        if (choice) void this.rebuild();
      });
    }
    const add = { label: "$(add) Add Folder…", command: "gpiot.addDocumentFolder" };
    const rebuild = { label: "$(refresh) Rebuild Index", command: "gpiot.rebuildDocumentIndex" };
    const items = [
      ...listing.sources.map((source) => ({
        label: `${source.missing ? "$(warning)" : source.kind === "corpus" ? "$(book)" : "$(folder)"} ${source.path}`,
        description: `${source.kind}, ${source.files} document(s), ${source.chunks} passages${source.skipped.length ? `, ${source.skipped.length} skipped` : ""}${source.missing ? ", missing" : ""}`,
        detail: source.skipped.length ? `Skipped: ${source.skipped.slice(0, 3).map((skipped) => `${skipped.path} (${skipped.reason})`).join("; ")}` : undefined,
        sourceId: source.id,
      })),
      add,
      rebuild,
    ];
    const picked = await vscode.window.showQuickPick(items, {
      title: `GPIoT Document Index: ${listing.chunks} passages${listing.embedding ? `, embedded with ${listing.embedding.key}` : ", words only"}`,
      placeHolder: listing.sources.length ? "Choose a source to remove it" : "No documents yet: add a folder",
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
        void this.ui.info("GPIoT: the document index has no sources.");
        return undefined;
      }
      const picked = await vscode.window.showQuickPick(
        listing.sources.map((entry) => ({ label: entry.path, description: `${entry.kind}, ${entry.chunks} passages`, sourceId: entry.id })),
        { title: "GPIoT: Remove a source from the document index" },
      );
      if (!picked) return undefined;
      target = picked.sourceId;
    }
    const chosen = target;
    try {
      const result = await this.sidecar.request((rpc) => rpc.request("indexRemove", { source: chosen }));
      void this.ui.info(`GPIoT: removed ${result.removed.path} from the document index (${result.summary.chunks} passages left).`);
      return result;
    } catch (error) {
      return this.failed(`remove ${chosen} from the document index`, error);
    }
  }

  async rebuild(): Promise<IndexUpdateSummary | undefined> {
    try {
      const summary = await this.withProgress("GPIoT: rebuilding the document index", () => this.sidecar.request((rpc) => rpc.request("indexRebuild", {})));
      void this.ui.info(`GPIoT: document index rebuilt: ${describeSummary(summary)}.${summary.notes.length ? ` ${summary.notes.join(" ")}` : ""}`);
      return summary;
    } catch (error) {
      return this.failed("rebuild the document index", error);
    }
  }
}
