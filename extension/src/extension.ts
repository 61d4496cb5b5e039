/**
 * GPIoT for VS Code: turns a plain-language IoT requirement into a documented Python program with
 * small language models running locally. The extension is UI only; the engine (the models, the
 * pipeline) runs in the sidecar process it supervises.
 *
 * Each feature lives in its own file and is registered here:
 *   sidecar.ts            the engine process (vscode-languageclient), restart on crash
 *   jobs.ts               protocol calls that change programs; crash cleanup
 *   programStore.ts       programs and jobs as the events describe them
 *   synthesizeCommand.ts  "GPIoT: Synthesize Program"
 *   requirementInput.ts   the requirement prompt and requirement documents
 *   taskTree.ts           the GPIoT view (task tree)
 *   reviewCommands.ts     review edits, regenerate, continue, assemble
 *   streamDocuments.ts    decomposition, specs and code as they stream
 *   commentChat.ts        inline conversation on a requirement comment
 *   chatParticipant.ts    @gpiot, where the chat API exists
 *   modelCommands.ts      model profile/file, load, status, log
 *   downloadModel.ts      "Download Model…": profiles over the engine's downloader
 *   gpuRuntime.ts         the GPU runtime, fetched on first use (gpuRuntimeInstaller.ts)
 *   statusBar.ts          model state in the status bar
 *   proposedEdit.ts       changes shown as diffs with Accept / Discard (programPreview.ts)
 *   engineRecovery.ts     programs taken over by a restarted engine
 *   programRules.ts       the task tree's rules (pure)
 *   remoteBackend.ts      roles on an OpenAI-compatible server, its API key, parallel sub-tasks
 *   documentIndex.ts      the document index: add a folder, show, remove, rebuild
 *   citations.ts          the passages specs and code were written with: Sources, tooltips, open at the passage
 *
 * activate() returns an API (GpiotExtensionApi) that tests and the benchmark read state from.
 */
import path from "node:path";
import * as vscode from "vscode";
import { registerChatParticipant } from "./chatParticipant";
import { registerCitations } from "./citations";
import { CommentChat, type CommentThreadInfo } from "./commentChat";
import { ENGINE_SETTINGS, engineSettings, SECTION, setIndexDir } from "./config";
import { DocumentIndex } from "./documentIndex";
import { ModelDownloads } from "./downloadModel";
import { EngineRecovery } from "./engineRecovery";
import { GpuRuntimes } from "./gpuRuntime";
import { Jobs } from "./jobs";
import { ModelManager } from "./modelCommands";
import { ProgramStore, type JobRecord } from "./programStore";
import { ProposalReviews } from "./proposedEdit";
import { RemoteBackend } from "./remoteBackend";
import { RequirementDocumentLens, openRequirementDocument } from "./requirementInput";
import { Sidecar } from "./sidecar";
import { ModelStatusBar } from "./statusBar";
import { STREAM_SCHEME, StreamDocuments } from "./streamDocuments";
import { ReviewCommands } from "./reviewCommands";
import { synthesizeProgram, type SynthesizeArgs, type SynthesisContext } from "./synthesizeCommand";
import { TaskTree, type TreeNode, type TreeSnapshotNode } from "./taskTree";
import { Ui } from "./ui";

export interface GpiotExtensionApi {
  /** How long activate() took, in milliseconds. */
  readonly activationMs: number;
  readonly sidecar: Sidecar;
  readonly store: ProgramStore;
  readonly jobs: Jobs;
  readonly models: ModelManager;
  readonly downloads: ModelDownloads;
  readonly gpuRuntimes: GpuRuntimes;
  readonly proposals: ProposalReviews;
  /** The content provider of the gpiot-stream: documents. */
  readonly streams: StreamDocuments;
  readonly recovery: EngineRecovery;
  readonly tree: TaskTree;
  readonly ui: Ui;
  readonly documentIndex: DocumentIndex;
  /** Where downloaded models go unless gpiot.modelsDir says otherwise. */
  readonly defaultModelsDir: string;
  /** The task tree as the view shows it (every node expanded). */
  treeSnapshot(): Promise<TreeSnapshotNode[]>;
  /** The text of the status-bar item. */
  statusBarText(): string;
  /** The inline comment conversations. */
  commentThreads(): CommentThreadInfo[];
  /** The job queued most recently. */
  lastJob(): JobRecord | undefined;
  /** Whether the GPIoT view is visible. */
  viewVisible(): boolean;
}

let disposeAll: (() => Promise<void>) | undefined;

export function activate(context: vscode.ExtensionContext): GpiotExtensionApi {
  const started = performance.now();
  const log = vscode.window.createOutputChannel("GPIoT", { log: true });
  const ui = new Ui(log);
  const defaultModelsDir = path.join(context.globalStorageUri.fsPath, "models");
  setIndexDir(path.join(context.globalStorageUri.fsPath, "index"));
  const store = new ProgramStore();
  // A changed API key reaches the engine by a restart, after the running job.
  let keyChanged = false;
  const jobRunning = () => store.jobs().some((job) => !job.result && job.generation === sidecar.generation);
  const restartForKey = async () => {
    keyChanged = jobRunning();
    if (!keyChanged && sidecar.state !== "stopped") await sidecar.restart();
  };
  const remote = new RemoteBackend(context.secrets, log, restartForKey);
  const sidecar: Sidecar = new Sidecar(context.asAbsolutePath("dist/sidecar.mjs"), () => ({ ...engineSettings(defaultModelsDir), ...remote.engineSettings() }), log, () => remote.environment());
  const jobs = new Jobs(sidecar, store, log);
  const recovery = new EngineRecovery(sidecar, store, jobs, log);
  const models = new ModelManager(sidecar, store, ui);
  const downloads = new ModelDownloads(sidecar, models, ui, context.globalState);
  const gpuRuntimes = new GpuRuntimes(sidecar, store, ui, context);
  const streams = new StreamDocuments(store);
  const proposals = new ProposalReviews();

  // eslint-disable-next-line prefer-const -- assigned below, used by the tree's drop handler
  let review: ReviewCommands;
  const tree: TaskTree = new TaskTree(store, {
    canUndo: (program) => jobs.canUndo(program),
    moveSubTask: (program, id, before): Promise<void> => review.move(program, id, before),
    isCurrentGeneration: (program) => program.generation === sidecar.generation,
  });
  const view = vscode.window.createTreeView<TreeNode>("gpiot.programs", { treeDataProvider: tree, dragAndDropController: tree, showCollapseAll: true, canSelectMany: false });
  tree.attach(view);

  const synthesis: SynthesisContext = {
    jobs,
    ui,
    revealProgram: async (program) => {
      if (view.visible) await tree.reveal(program);
      else await vscode.commands.executeCommand("gpiot.programs.focus").then(() => tree.reveal(program), () => undefined);
    },
  };
  review = new ReviewCommands({ ...synthesis, store, tree, proposals, currentGeneration: () => sidecar.generation });
  const commentChat = new CommentChat({ ...synthesis, proposals }, context.extensionUri);
  const statusBar = new ModelStatusBar(models);
  const documentIndex = new DocumentIndex(sidecar, ui);

  context.subscriptions.push(
    log,
    ui,
    store,
    jobs,
    recovery,
    models,
    downloads,
    gpuRuntimes,
    streams,
    proposals,
    tree,
    view,
    commentChat,
    statusBar,
    vscode.workspace.registerTextDocumentContentProvider(STREAM_SCHEME, streams),
    ...proposals.register(),
    vscode.commands.registerCommand("gpiot.synthesize", (args?: SynthesizeArgs) => synthesizeProgram(synthesis, args ?? {})),
    vscode.commands.registerCommand("gpiot.writeRequirement", () => openRequirementDocument()),
    vscode.languages.registerCodeLensProvider({ language: "markdown", scheme: "untitled" }, new RequirementDocumentLens()),
    ...review.register(),
    ...commentChat.register(),
    ...models.register(),
    ...documentIndex.register(),
    ...registerCitations(ui),
    ...downloads.register(),
    ...gpuRuntimes.register(),
    remote,
    ...remote.register(),
  );
  const participant = registerChatParticipant(jobs, context.extensionUri);
  if (participant) context.subscriptions.push(participant);

  // The engine starts when the view is first shown (to say whether a model is set up) or when a command needs it.
  // Runtimes an earlier version of the extension downloaded are linked before the engine first starts.
  const relinked = gpuRuntimes.relinkAll().then((names) => {
    if (names.length) log.info(`GPU runtime packages linked from the global storage: ${names.join(", ")}`);
  });
  const startEngine = () =>
    void relinked.then(() => sidecar.ensureStarted()).catch((error) => log.error(`The GPIoT engine could not start: ${(error as Error).message}`));
  if (view.visible) startEngine();
  context.subscriptions.push(
    view.onDidChangeVisibility((event) => {
      if (event.visible) startEngine();
    }),
  );

  // Engine settings are the sidecar's initializationOptions: a change restarts it, after the running job.
  let pendingSettings = false;
  const applySettings = () => {
    const busy = store.jobs().some((job) => !job.result && job.generation === sidecar.generation);
    if (busy) {
      if (!pendingSettings) log.info("GPIoT settings changed: they apply after the running job.");
      pendingSettings = true;
      return;
    }
    pendingSettings = false;
    void sidecar.applySettings().then(
      (restarted) => (restarted ? undefined : models.refresh()),
      (error) => log.error(`Applying the settings failed: ${(error as Error).message}`),
    );
  };
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (ENGINE_SETTINGS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) applySettings();
    }),
    // Workspace sources of the index are searched only while their folder is open.
    vscode.workspace.onDidChangeWorkspaceFolders(() => applySettings()),
    store.onDidEndJob(() => {
      if (pendingSettings) applySettings();
      if (keyChanged) void restartForKey();
    }),
    sidecar.onDidCrash((crash) => {
      const restart = vscode.l10n.t("Restart Engine");
      const showLog = vscode.l10n.t("Show Log");
      if (!crash.willRestart)
        void ui.error(vscode.l10n.t("The GPIoT engine keeps stopping and was not restarted."), restart, showLog).then((choice) => {
          if (choice === restart) void vscode.commands.executeCommand("gpiot.restartEngine");
          if (choice === showLog) log.show(true);
        });
    }),
  );

  disposeAll = () => sidecar.dispose();
  const activationMs = performance.now() - started;
  log.info(`GPIoT activated in ${activationMs.toFixed(1)} ms (workspace ${vscode.workspace.isTrusted ? "trusted" : "untrusted: generated code is never run"})`);

  return {
    activationMs,
    sidecar,
    store,
    jobs,
    models,
    downloads,
    gpuRuntimes,
    proposals,
    streams,
    recovery,
    tree,
    ui,
    documentIndex,
    defaultModelsDir,
    treeSnapshot: () => tree.snapshot(),
    statusBarText: () => statusBar.text,
    commentThreads: () => commentChat.info(),
    lastJob: () => store.jobs().at(-1),
    viewVisible: () => view.visible,
  };
}

export async function deactivate(): Promise<void> {
  await disposeAll?.();
  disposeAll = undefined;
}
