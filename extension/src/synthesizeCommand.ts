/**
 * "GPIoT: Synthesize Program": requirement → (review) → files in the workspace.
 *
 * Asks for the requirement, optional resource constraints and (unless `gpiot.outputFolder` says)
 * the folder; queues `gpiot/synthesize`; shows a cancellable progress notification; opens the
 * decomposition, specs and code as they stream; when the files are written, opens main.py and
 * says where they went in the status bar (a job shows one notification at most once it ends: a
 * question, a review to do, or an error).
 * Arguments skip the questions (for tests, other extensions and keybindings):
 *   executeCommand("gpiot.synthesize", { requirement, constraints?, outDir?, overwrite?, review?, openEditors?, wait? })
 */
import path from "node:path";
import * as vscode from "vscode";
import type { ReviewMode } from "../../sidecar/src/protocol";
import { configuredOutputFolder, firstWorkspaceFolder, openStreamingEditors, programFolderName, reviewMode } from "./config";
import { readOwnership } from "../../sidecar/src/shared/programManifest";
import { freshProgramFolder, isNonEmptyDirectory } from "./outputFolders";
import type { Jobs, StartedJob } from "./jobs";
import { short } from "./jobs";
import { withJobProgress } from "./progress";
import type { JobResult, ProgramState } from "./programStore";
import { askConstraints, askRequirement, requirementFromText } from "./requirementInput";
import { showStream } from "./streamDocuments";
import type { Ui } from "./ui";
import { errorInfoOf } from "./sidecar";
import { humanizeEngineMessage } from "./programRules";

export interface SynthesizeArgs {
  requirement?: string;
  /** A document (e.g. a requirement document) whose text is the requirement. */
  requirementUri?: string;
  constraints?: string;
  /** Program folder; relative paths are resolved against the first workspace folder. */
  outDir?: string;
  overwrite?: boolean;
  review?: ReviewMode;
  /** Open the streaming editors and main.py (default: the gpiot.openStreamingEditors setting). */
  openEditors?: boolean;
  /** false: resolve as soon as the job is queued (result status "queued"). */
  wait?: boolean;
}

export interface SynthesizeResult extends Partial<Omit<JobResult, "status">> {
  status: JobResult["status"] | "queued" | "aborted";
  programUid?: string;
  requirement?: string;
  /** Set when the user chose Retry after a failure: the result is the retry's. */
  retriedAfter?: JobResult;
  message?: string;
}

export interface SynthesisContext {
  jobs: Jobs;
  ui: Ui;
  revealProgram(program: ProgramState): Promise<void>;
}

/** Picks the folder a new program is written into; undefined when the user cancelled. */
export async function chooseProgramFolder(ui: Ui, requirement: string, requested?: string, overwrite?: boolean): Promise<{ outDir: string; overwrite: boolean } | undefined> {
  if (requested) {
    const workspace = firstWorkspaceFolder();
    const outDir = path.isAbsolute(requested) ? path.normalize(requested) : path.resolve(workspace ?? process.cwd(), requested);
    if (!overwrite && (await isNonEmptyDirectory(outDir))) {
      // The engine replaces only a folder it wrote: never offer to overwrite anything else.
      if (!(await readOwnership(outDir))) {
        const alternative = await freshProgramFolder(path.dirname(outDir), path.basename(outDir));
        const useNew = await ui.confirm(
          vscode.l10n.t("The folder {0} already exists and GPIoT did not write it, so GPIoT will not replace it. Write the program into {1} instead?", outDir, alternative),
          vscode.l10n.t("Use New Folder"),
          vscode.l10n.t("Nothing in {0} is changed.", outDir),
        );
        return useNew ? { outDir: alternative, overwrite: false } : undefined;
      }
      const ok = await ui.confirm(
        vscode.l10n.t("The folder {0} already exists and holds a program GPIoT wrote. Replace it with the generated program?", outDir),
        vscode.l10n.t("Overwrite"),
        vscode.l10n.t("Files you added there are kept, and you are asked before a file you changed is replaced. The old folder is replaced only once the new program is completely written."),
      );
      if (!ok) return undefined;
      return { outDir, overwrite: true };
    }
    return { outDir, overwrite: overwrite ?? false };
  }
  let parent = configuredOutputFolder();
  if (!parent) {
    const picked = await vscode.window.showOpenDialog({
      canSelectFiles: false,
      canSelectFolders: true,
      canSelectMany: false,
      openLabel: "Write the program here",
      title: "GPIoT: choose the folder for the new program (set gpiot.outputFolder to skip this question)",
    });
    if (!picked?.length) return undefined;
    parent = picked[0].fsPath;
  }
  return { outDir: await freshProgramFolder(parent, programFolderName(requirement)), overwrite: false };
}

/** Opens the stream editors as the stages start. */
function followStreams(jobs: Jobs, program: ProgramState): vscode.Disposable {
  const opened = new Set<string>();
  const open = (kind: "decomposition" | "specs" | "code") => {
    if (opened.has(kind)) return;
    opened.add(kind);
    void showStream(program, kind).then(undefined, () => undefined);
  };
  open("decomposition");
  return jobs.store.onDidChangeProgram(({ program: changed, event }) => {
    if (changed !== program || event?.type !== "stageStarted") return;
    if (event.stage === "rt") open("specs");
    if (event.stage === "cg") open("code");
  });
}

export async function openProgramMain(program: ProgramState): Promise<void> {
  const main = program.files.find((file) => path.basename(file) === "main.py") ?? program.files[0];
  if (!main) return;
  const document = await vscode.workspace.openTextDocument(vscode.Uri.file(main));
  await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.One, preview: false });
}

/** What the user sees when a job that writes files has ended; returns the final result (after retries/overwrite). */
export async function presentWriteOutcome(
  context: SynthesisContext,
  started: StartedJob,
  result: JobResult,
  options: { openEditors: boolean; retry?: () => Promise<SynthesizeResult> },
): Promise<SynthesizeResult> {
  const { ui, jobs } = context;
  const { program } = started;
  const base = { ...result, programUid: program.uid, requirement: program.requirement };
  if (result.status === "finished") {
    if (result.outDir && options.openEditors) await openProgramMain(program).catch(() => undefined);
    if (result.outDir) {
      const where = vscode.workspace.asRelativePath(result.outDir);
      if (result.mainCompiles === false) ui.status(vscode.l10n.t("GPIoT wrote {0} files to {1} (main.py does not compile: see the sub-tasks marked with a syntax error).", result.files.length, where), "warning");
      else ui.status(vscode.l10n.t("GPIoT wrote {0} files to {1}.", result.files.length, where));
    }
    return base;
  }
  if (result.status === "awaitingReview") {
    await context.revealProgram(program).catch(() => undefined);
    const continueLabel = vscode.l10n.t("Continue");
    const message =
      result.awaitingReview === "specs"
        ? vscode.l10n.t('Review the specifications of "{0}" in the GPIoT view: edit them, then choose Continue.', short(program.requirement, 40))
        : vscode.l10n.t('Review the {0} sub-tasks of "{1}" in the GPIoT view: edit, add, delete or reorder them, then choose Continue.', program.subTasks.length, short(program.requirement, 40));
    void ui.info(message, continueLabel).then((choice) => {
      if (choice === continueLabel) void vscode.commands.executeCommand("gpiot.continue", { programUid: program.uid });
    });
    return base;
  }
  if (result.status === "cancelled") {
    ui.status(vscode.l10n.t('GPIoT stopped "{0}"; nothing was written.', short(program.requirement, 40)), "circle-slash");
    return base;
  }
  const error = result.error ?? { code: "INTERNAL", message: "unknown error" };
  const allowWith = "output" in error ? error.output?.allowWith : undefined;
  if (allowWith && !program.lost) {
    const ok = await ui.confirm(error.message, vscode.l10n.t("Overwrite"));
    if (!ok) return base;
    const again = await jobs.assemble(program, { outDir: program.intendedOutDir, overwrite: allowWith });
    return presentWriteOutcome(context, again, await withJobProgress(jobs, ui, again, vscode.l10n.t("GPIoT: writing the program")), options);
  }
  if (error.code === "ENGINE_STOPPED") {
    const choice = await ui.error(
      vscode.l10n.t('The GPIoT engine stopped while working on "{0}". It has been restarted; no files were written.', short(program.requirement, 40)),
      ...(options.retry ? [RETRY] : []),
      SHOW_LOG,
    );
    if (choice === RETRY && options.retry) return { ...(await options.retry()), retriedAfter: result };
    if (choice === SHOW_LOG) void vscode.commands.executeCommand("gpiot.showLog");
    return base;
  }
  const items = isModelProblem(error.code) ? [DOWNLOAD_MODEL, CHOOSE_PROFILE, CHOOSE_FILE] : [...(options.retry ? [RETRY] : []), SHOW_LOG];
  const choice = await ui.error(vscode.l10n.t('GPIoT could not finish "{0}": {1}', short(program.requirement, 40), humanizeEngineMessage(error.message, program)), ...items);
  if (choice === RETRY && options.retry) return { ...(await options.retry()), retriedAfter: result };
  runChoice(choice);
  return base;
}

const RETRY = vscode.l10n.t("Retry");
const SHOW_LOG = vscode.l10n.t("Show Log");
const DOWNLOAD_MODEL = vscode.l10n.t("Download Model…");
const CHOOSE_PROFILE = vscode.l10n.t("Choose Model Profile");
const CHOOSE_FILE = vscode.l10n.t("Choose Model File");

function isModelProblem(code: string): boolean {
  return ["MODEL_NOT_FOUND", "MODEL_INVALID", "ADAPTER_MISMATCH", "MODEL_LOAD_FAILED", "MANIFEST_INVALID", "MODEL_NOT_LOADED"].includes(code);
}

function runChoice(choice: string | undefined): void {
  if (choice === DOWNLOAD_MODEL) void vscode.commands.executeCommand("gpiot.downloadModel");
  if (choice === CHOOSE_PROFILE) void vscode.commands.executeCommand("gpiot.chooseProfile");
  if (choice === CHOOSE_FILE) void vscode.commands.executeCommand("gpiot.chooseModelFile");
  if (choice === SHOW_LOG) void vscode.commands.executeCommand("gpiot.showLog");
}

export async function synthesizeProgram(context: SynthesisContext, args: SynthesizeArgs = {}): Promise<SynthesizeResult> {
  const { jobs, ui } = context;
  const commandAt = Date.now();
  let requirement = args.requirement;
  let constraints = args.constraints;
  if (requirement === undefined && args.requirementUri) {
    const document = await vscode.workspace.openTextDocument(vscode.Uri.parse(args.requirementUri));
    const parsed = requirementFromText(document.getText(), document.languageId);
    requirement = parsed.requirement;
    constraints ??= parsed.constraints;
  }
  if (requirement === undefined) {
    const answer = await askRequirement();
    if (!answer) return { status: "aborted", message: "No requirement given." };
    requirement = answer.requirement;
    constraints ??= answer.constraints;
    if (constraints === undefined) {
      const typed = await askConstraints();
      if (typed === undefined) return { status: "aborted", message: "Cancelled at the constraints." };
      constraints = typed;
    }
  }
  if (!requirement.trim()) {
    void ui.error(vscode.l10n.t("The requirement is empty: describe what the program should do."));
    return { status: "aborted", message: "Empty requirement." };
  }
  const folder = await chooseProgramFolder(ui, requirement, args.outDir, args.overwrite);
  if (!folder) return { status: "aborted", message: "No output folder chosen." };
  const review = args.review ?? reviewMode();
  const openEditors = args.openEditors ?? openStreamingEditors();
  const retry = () => synthesizeProgram(context, { ...args, requirement, constraints, outDir: folder.outDir, overwrite: folder.overwrite, requirementUri: undefined });

  let started: StartedJob;
  try {
    started = await jobs.synthesize({ requirement, constraints, outDir: folder.outDir, overwrite: folder.overwrite, review, origin: "palette", commandAt });
  } catch (error) {
    const info = errorInfoOf(error);
    const items = isModelProblem(info.code) ? [DOWNLOAD_MODEL, CHOOSE_PROFILE, CHOOSE_FILE] : [RETRY, SHOW_LOG];
    const choice = await ui.error(vscode.l10n.t("GPIoT could not start: {0}", humanizeEngineMessage(info.message)), ...items);
    if (choice === RETRY) return { ...(await retry()), retriedAfter: { status: "failed", error: info, files: [], jobId: "", programId: "", programUid: "", generation: 0, kind: "synthesize" } };
    runChoice(choice);
    return { status: "failed", error: info, requirement };
  }
  const { program } = started;
  void context.revealProgram(program).catch(() => undefined);
  const follow = openEditors ? followStreams(jobs, program) : undefined;
  const finished = withJobProgress(jobs, ui, started, `GPIoT: ${short(requirement, 50)}`);
  if (args.wait === false) {
    void Promise.resolve(finished).then((result) => {
      follow?.dispose();
      return presentWriteOutcome(context, started, result, { openEditors, retry });
    });
    return { status: "queued", jobId: started.jobId, programId: program.programId, programUid: program.uid, generation: started.generation, requirement };
  }
  const result = await finished;
  follow?.dispose();
  return presentWriteOutcome(context, started, result, { openEditors, retry });
}
