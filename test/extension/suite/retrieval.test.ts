import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as vscode from "vscode";
import type { OpenedCitation } from "../../../extension/src/citations";
import { streamUri } from "../../../extension/src/streamDocuments";
import type { SynthesizeResult } from "../../../extension/src/synthesizeCommand";
import type { ResultOf } from "../../../sidecar/src/protocol";
import { closeAllEditors, flatten, getApi, REQUIREMENTS, waitFor, workspaceDir } from "./helpers";

const FIXTURE_DOCS = path.resolve(__dirname, "..", "..", "..", "..", "test", "fixtures", "retrieval", "docs");

suite("GPIoT: document index and citations", () => {
  let docs: string;
  let sourceId: string | undefined;

  suiteSetup(async () => {
    await closeAllEditors();
    docs = path.join(mkdtempSync(path.join(os.tmpdir(), "gpiot-ext-docs-")), "docs");
    cpSync(FIXTURE_DOCS, docs, { recursive: true });
  });
  suiteTeardown(async () => {
    // The later suites run without passages, as before this one.
    if (sourceId) await vscode.commands.executeCommand("gpiot.removeDocumentSource", sourceId);
    rmSync(path.dirname(docs), { recursive: true, force: true });
  });

  test("a folder added from VS Code is indexed in the extension's storage; a synthesis cites it in the spec panel and the tree, and the citation opens the source at the passage", async () => {
    const api = await getApi();
    const added = await vscode.commands.executeCommand<ResultOf<"indexAdd"> | undefined>("gpiot.addDocumentFolder", docs);
    assert.ok(added, `the folder was added (${api.ui.messages.at(-1)?.message})`);
    sourceId = added.source.id;
    assert.equal(added.summary.files.read, 8);
    assert.equal(added.summary.embedded, added.summary.chunks, "embedded with the tiny profile's embedding model");
    assert.ok(api.ui.messages.some((message) => message.message.includes(`added ${docs}`)), "the user was told");
    const listing = await api.documentIndex.list();
    assert.equal(listing?.state, "ready");
    assert.match(listing!.dir, /gpiot\.gpiot[/\\]index$/, `the index lives in the extension's global storage (${listing?.dir})`);
    assert.deepEqual(listing!.sources.map((source) => source.path), [docs]);

    const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.ecg });
    assert.equal(result.status, "finished", `status ${result.status}: ${result.error?.message ?? ""}`);
    const program = api.store.get(result.programUid!)!;
    const entry = program.subTasks[0];
    assert.ok(entry.specCitations?.length, "the spec carries its citations");
    assert.ok(entry.codeCitations?.length, "the code carries its citations");
    const citation = entry.specCitations![0];
    assert.ok(citation.path.startsWith(docs) && citation.line, JSON.stringify(citation));

    // The spec panel lists the sources, each a link that opens it.
    const spec = await vscode.workspace.openTextDocument(streamUri(program, "specs", entry.id));
    assert.match(spec.getText(), /### Sources/);
    assert.ok(spec.getText().includes(`${citation.path}:${citation.line}`), spec.getText());
    const links = await vscode.commands.executeCommand<vscode.DocumentLink[]>("vscode.executeLinkProvider", spec.uri);
    const link = links.find((candidate) => candidate.target && decodeURIComponent(candidate.target.query).includes(citation.path));
    assert.ok(link?.target && link.target.scheme === "command" && link.target.path === "gpiot.openCitation", JSON.stringify(links.map((each) => each.target?.toString())));

    // The task tree's tooltip names the sources.
    const node = flatten(await api.treeSnapshot()).find((candidate) => candidate.kind === "subTask" && candidate.tooltip?.value.includes("**Sources**"));
    assert.ok(node, "a sub-task's tooltip lists its sources");
    assert.match(node.tooltip!.value, /command:gpiot\.openCitation\?/);

    // The link's command opens the document at the passage.
    const [target] = JSON.parse(decodeURIComponent(link.target.query)) as [{ path: string; line?: number }];
    const opened = await vscode.commands.executeCommand<OpenedCitation>("gpiot.openCitation", target);
    assert.deepEqual(opened, { path: citation.path, line: citation.line });
    const editor = vscode.window.activeTextEditor;
    assert.equal(editor?.document.uri.fsPath, citation.path);
    assert.equal(editor?.selection.active.line, citation.line! - 1);

    // A source that is gone is named, not opened.
    const missing = await vscode.commands.executeCommand<OpenedCitation | undefined>("gpiot.openCitation", { path: path.join(docs, "gone.md"), line: 3 });
    assert.equal(missing, undefined);
    assert.ok(api.ui.messages.some((message) => message.kind === "warning" && message.message.includes("gone.md") && /not there any more/.test(message.message)));

  });

  test("the settings choose k and turn retrieval off", async () => {
    const api = await getApi();
    assert.ok(sourceId, "the folder of the first test is in the index");
    const config = vscode.workspace.getConfiguration("gpiot");
    const synthesize = async () => {
      const result = await vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", { requirement: REQUIREMENTS.steps });
      assert.equal(result.status, "finished", `status ${result.status}: ${result.error?.message ?? ""}`);
      return api.store.get(result.programUid!)!;
    };
    const restarted = async (change: () => Thenable<void>) => {
      const generation = api.sidecar.generation;
      await change();
      await waitFor("the engine to restart with the new settings", () => api.sidecar.generation > generation && api.sidecar.state === "running", 30_000);
    };
    try {
      await restarted(() => config.update("retrieval.k", 1, vscode.ConfigurationTarget.Workspace));
      const one = await synthesize();
      assert.ok(one.subTasks.every((entry) => entry.specCitations?.length === 1 && entry.codeCitations?.length === 1), JSON.stringify(one.subTasks.map((entry) => [entry.specCitations?.length, entry.codeCitations?.length])));
      await restarted(() => config.update("retrieval.enabled", false, vscode.ConfigurationTarget.Workspace));
      const none = await synthesize();
      assert.ok(none.subTasks.length && none.subTasks.every((entry) => !entry.specCitations?.length && !entry.codeCitations?.length), "retrieval off: no citations");
    } finally {
      await restarted(() => config.update("retrieval.k", undefined, vscode.ConfigurationTarget.Workspace));
      await restarted(() => config.update("retrieval.enabled", undefined, vscode.ConfigurationTarget.Workspace));
    }
  });

  test("the open workspace is added as a workspace source; sources are removed from VS Code", async () => {
    const api = await getApi();
    const workspace = await vscode.commands.executeCommand<ResultOf<"indexAdd"> | undefined>("gpiot.addWorkspaceToDocumentIndex");
    assert.ok(workspace, `the workspace was added (${api.ui.messages.at(-1)?.message})`);
    assert.deepEqual([workspace.source.kind, workspace.source.path], ["workspace", workspaceDir()]);
    const removedWorkspace = await vscode.commands.executeCommand<ResultOf<"indexRemove"> | undefined>("gpiot.removeDocumentSource", workspace.source.id);
    assert.equal(removedWorkspace?.removed.kind, "workspace");
    const removed = await vscode.commands.executeCommand<ResultOf<"indexRemove"> | undefined>("gpiot.removeDocumentSource", sourceId);
    assert.equal(removed?.removed.path, docs);
    sourceId = undefined;
    assert.equal((await api.documentIndex.list())?.sources.length, 0);
  });
});
