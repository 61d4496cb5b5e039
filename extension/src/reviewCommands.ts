/**
 * The review commands of the GPIoT view: edit a sub-task or a spec field, add, delete and reorder
 * sub-tasks (`gpiot/updateSubTasks`, `gpiot/updateSpec`; each can be undone), regenerate one
 * sub-task's spec or code (`gpiot/regenerate`) or every out-of-date one (`gpiot/continue` without
 * assembling), continue a reviewed program (`gpiot/continue`), assemble it (`gpiot/assemble`,
 * after the user read and accepted the files as a diff), open its code, cancel, retry, and clear
 * finished programs from the view.
 *
 * Every command takes a tree node, or `{ programUid | programId, subTaskId? }` plus a value that
 * skips its questions, e.g. executeCommand("gpiot.editSubTask", { programId, subTaskId }, { name: "Filter" }).
 */
import path from "node:path";
import * as vscode from "vscode";
import type { Parameter, SubTask, TaskSpec } from "../../sidecar/src/schemas";
import { ParameterSchema, SubTaskSchema, TaskSpecSchema } from "../../sidecar/src/schemas";
import type { Jobs, StartedJob } from "./jobs";
import { ProgramLostError, short } from "./jobs";
import { previewProgramWrite } from "./programPreview";
import { assemblyReadiness, humanizeEngineMessage, isFinished } from "./programRules";
import { withJobProgress } from "./progress";
import type { JobResult, ProgramState, ProgramStore } from "./programStore";
import type { ProposalReviews } from "./proposedEdit";
import { errorInfoOf } from "./sidecar";
import { showStream } from "./streamDocuments";
import { chooseProgramFolder, presentWriteOutcome, type SynthesisContext, type SynthesizeResult } from "./synthesizeCommand";
import type { TaskTree, TreeNode } from "./taskTree";
import type { Ui } from "./ui";

export interface ProgramRef {
  programUid?: string;
  programId?: string;
  subTaskId?: string;
  /** Step or parameter index (with `field`). */
  index?: number;
  field?: "name" | "problem" | "step" | "target" | "inputs" | "outputs";
}

type Arg = TreeNode | ProgramRef | undefined;

export interface ReviewContext extends SynthesisContext {
  store: ProgramStore;
  tree: TaskTree;
  ui: Ui;
  jobs: Jobs;
  proposals: ProposalReviews;
  currentGeneration(): number;
}

/** Options of the commands that write a program's files; `confirm: true` writes without showing the diff first. */
export interface WriteOptions {
  outDir?: string;
  overwrite?: boolean;
  confirm?: boolean;
}

function isNode(arg: Arg): arg is TreeNode {
  return !!arg && typeof (arg as TreeNode).kind === "string" && typeof (arg as TreeNode).uid === "string";
}

export class ReviewCommands {
  constructor(private readonly context: ReviewContext) {}

  register(): vscode.Disposable[] {
    const c = (id: string, handler: Parameters<typeof vscode.commands.registerCommand>[1]) => vscode.commands.registerCommand(id, handler);
    return [
      c("gpiot.continue", (arg: Arg, options?: { outDir?: string; overwrite?: boolean }) => this.continue(arg, options)),
      c("gpiot.assemble", (arg: Arg, options?: WriteOptions) => this.assemble(arg, options)),
      c("gpiot.regenerateStale", (arg: Arg) => this.regenerateStale(arg)),
      c("gpiot.clearFinished", () => this.clearFinished()),
      c("gpiot.cancelJob", (arg: Arg | { jobId: string }) => this.cancel(arg)),
      c("gpiot.retryProgram", (arg: Arg, options?: { outDir?: string; overwrite?: boolean }) => this.retry(arg, options)),
      c("gpiot.undoReviewEdit", (arg: Arg) => this.undo(arg)),
      c("gpiot.removeProgram", (arg: Arg) => this.remove(arg)),
      c("gpiot.openProgramFolder", (arg: Arg) => this.openFolder(arg)),
      c("gpiot.runProgram", (arg: Arg) => this.run(arg)),
      c("gpiot.addSubTask", (arg: Arg, value?: Partial<SubTask>) => this.addSubTask(arg, value, "end")),
      c("gpiot.insertSubTaskAfter", (arg: Arg, value?: Partial<SubTask>) => this.addSubTask(arg, value, "after")),
      c("gpiot.editSubTask", (arg: Arg, patch?: Partial<SubTask>) => this.editSubTask(arg, patch)),
      c("gpiot.deleteSubTask", (arg: Arg) => this.deleteSubTask(arg)),
      c("gpiot.moveSubTaskUp", (arg: Arg) => this.moveBy(arg, -1)),
      c("gpiot.moveSubTaskDown", (arg: Arg) => this.moveBy(arg, 1)),
      c("gpiot.regenerateSpec", (arg: Arg) => this.regenerate(arg, "spec")),
      c("gpiot.regenerateCode", (arg: Arg) => this.regenerate(arg, "code")),
      c("gpiot.openCode", (arg: Arg) => this.openCode(arg)),
      c("gpiot.openSpec", (arg: Arg) => this.openSpec(arg)),
      c("gpiot.editField", (arg: Arg, value?: string | Parameter) => this.editField(arg, value)),
      c("gpiot.deleteField", (arg: Arg) => this.deleteField(arg)),
      c("gpiot.addStep", (arg: Arg, value?: string) => this.addStep(arg, value)),
      c("gpiot.addParameter", (arg: Arg, value?: Parameter | string) => this.addParameter(arg, value)),
    ];
  }

  // ---- resolving arguments ----

  private async program(arg: Arg, purpose: string): Promise<ProgramState | undefined> {
    const { store } = this.context;
    if (isNode(arg)) return store.get(arg.uid);
    if (arg?.programUid) return store.get(arg.programUid);
    if (arg?.programId) return store.find(this.context.currentGeneration(), arg.programId);
    const selected = this.context.tree.view?.selection[0];
    if (selected) return store.get(selected.uid);
    const candidates = store.programs().filter((program) => !program.lost);
    if (candidates.length === 1) return candidates[0];
    if (!candidates.length) {
      void this.context.ui.info(vscode.l10n.t("There is no GPIoT program yet: run GPIoT: Synthesize Program first."));
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(
      candidates.map((program) => ({ label: short(program.requirement, 80), description: program.phase, program })),
      { title: `GPIoT: ${purpose}`, placeHolder: "Which program?" },
    );
    return picked?.program;
  }

  private subTaskId(arg: Arg): string | undefined {
    if (isNode(arg)) return "subTaskId" in arg ? arg.subTaskId : undefined;
    return arg?.subTaskId;
  }

  private async subTask(arg: Arg, purpose: string): Promise<{ program: ProgramState; index: number } | undefined> {
    const program = await this.program(arg, purpose);
    if (!program) return undefined;
    let id = this.subTaskId(arg);
    if (!id) {
      const picked = await vscode.window.showQuickPick(
        program.subTasks.map((entry, index) => ({ label: `${index + 1}. ${entry.subTask.name}`, id: entry.id })),
        { title: `GPIoT: ${purpose}`, placeHolder: "Which sub-task?" },
      );
      id = picked?.id;
    }
    const index = program.subTasks.findIndex((entry) => entry.id === id);
    if (index < 0) return undefined;
    return { program, index };
  }

  private entries(program: ProgramState): { id?: string; subTask: SubTask }[] {
    return program.subTasks.map((entry) => ({ id: entry.id, subTask: structuredClone(entry.subTask) }));
  }

  /** Runs an edit and reports a refused one (busy program, invalid value) to the user; resolves the new state. */
  private async edit(program: ProgramState, action: () => Promise<ProgramState>): Promise<ProgramState | undefined> {
    try {
      return await action();
    } catch (error) {
      this.reportFailure(program, vscode.l10n.t("GPIoT could not apply the edit: {0}", humanizeEngineMessage(errorInfoOf(error).message, program)), error);
      return undefined;
    }
  }

  /** An error message; when the program needs a new run it has the Retry button it mentions. */
  private reportFailure(program: ProgramState, message: string, error: unknown): void {
    const retry = vscode.l10n.t("Retry");
    if (error instanceof ProgramLostError || program.lost)
      void this.context.ui.error(message, retry).then((choice) => {
        if (choice === retry) void this.retry({ programUid: program.uid });
      });
    else void this.context.ui.error(message);
  }

  private async updateSubTasks(program: ProgramState, entries: { id?: string; subTask: SubTask }[], label: string): Promise<ProgramState | undefined> {
    return this.edit(program, () => this.context.jobs.updateSubTasks(program, entries, label));
  }

  private async updateSpec(program: ProgramState, subTaskId: string, spec: TaskSpec, label: string): Promise<ProgramState | undefined> {
    const parsed = TaskSpecSchema.safeParse(spec);
    if (!parsed.success) {
      void this.context.ui.error(`That spec is not valid: ${parsed.error.issues[0]?.message}`);
      return undefined;
    }
    return this.edit(program, () => this.context.jobs.updateSpec(program, subTaskId, parsed.data, label));
  }

  // ---- sub-task edits ----

  private async askSubTask(initial: Partial<SubTask>, title: string): Promise<SubTask | undefined> {
    const name = await vscode.window.showInputBox({ title, prompt: "Name of the sub-task", value: initial.name ?? "", validateInput: limit(1, 80) });
    if (name === undefined) return undefined;
    const problem = await vscode.window.showInputBox({ title, prompt: "Problem statement: what this sub-task must solve", value: initial.problem ?? "", validateInput: limit(1, 600) });
    if (problem === undefined) return undefined;
    const step = initial.steps?.length
      ? initial.steps[0]
      : await vscode.window.showInputBox({ title, prompt: "First implementation step (add more in the view)", value: "", validateInput: limit(1, 300) });
    if (step === undefined) return undefined;
    return { name: name.trim(), problem: problem.trim(), steps: initial.steps?.length ? initial.steps : [step.trim()] };
  }

  async addSubTask(arg: Arg, value: Partial<SubTask> | undefined, where: "end" | "after"): Promise<ProgramState | undefined> {
    const program = await this.program(arg, "Add Sub-Task");
    if (!program) return undefined;
    const subTask = value && value.name && value.problem ? { name: value.name, problem: value.problem, steps: value.steps?.length ? value.steps : [value.problem] } : await this.askSubTask(value ?? {}, "GPIoT: Add Sub-Task");
    if (!subTask) return undefined;
    const parsed = SubTaskSchema.safeParse(subTask);
    if (!parsed.success) {
      void this.context.ui.error(`That sub-task is not valid: ${parsed.error.issues[0]?.message}`);
      return undefined;
    }
    const entries = this.entries(program);
    const after = where === "after" ? program.subTasks.findIndex((entry) => entry.id === this.subTaskId(arg)) : -1;
    entries.splice(after >= 0 ? after + 1 : entries.length, 0, { subTask: parsed.data });
    return this.updateSubTasks(program, entries, `Add sub-task "${short(parsed.data.name, 30)}"`);
  }

  async editSubTask(arg: Arg, patch?: Partial<SubTask>): Promise<ProgramState | undefined> {
    const found = await this.subTask(arg, "Edit Sub-Task");
    if (!found) return undefined;
    const { program, index } = found;
    const current = program.subTasks[index].subTask;
    let next: SubTask | undefined;
    if (patch) next = { ...current, ...patch };
    else {
      const field = await vscode.window.showQuickPick(
        [
          { label: "Name", description: current.name, key: "name" as const },
          { label: "Problem statement", description: current.problem, key: "problem" as const },
          ...current.steps.map((step, i) => ({ label: `Step ${i + 1}`, description: step, key: i })),
        ],
        { title: `GPIoT: Edit sub-task ${index + 1}`, placeHolder: "What do you want to change?" },
      );
      if (!field) return undefined;
      if (typeof field.key === "number") {
        const step = await vscode.window.showInputBox({ title: `Step ${field.key + 1}`, value: current.steps[field.key], validateInput: limit(1, 300) });
        if (step === undefined) return undefined;
        next = { ...current, steps: current.steps.map((s, i) => (i === field.key ? step.trim() : s)) };
      } else {
        const value = await vscode.window.showInputBox({ title: field.label, value: current[field.key], validateInput: limit(1, field.key === "name" ? 80 : 600) });
        if (value === undefined) return undefined;
        next = { ...current, [field.key]: value.trim() };
      }
    }
    const parsed = SubTaskSchema.safeParse(next);
    if (!parsed.success) {
      void this.context.ui.error(`That sub-task is not valid: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}`);
      return undefined;
    }
    const entries = this.entries(program);
    entries[index] = { id: program.subTasks[index].id, subTask: parsed.data };
    return this.updateSubTasks(program, entries, `Edit sub-task ${index + 1}`);
  }

  async deleteSubTask(arg: Arg): Promise<ProgramState | undefined> {
    const found = await this.subTask(arg, "Delete Sub-Task");
    if (!found) return undefined;
    const { program, index } = found;
    if (program.subTasks.length <= 1) {
      void this.context.ui.warn("A program needs at least one sub-task.");
      return undefined;
    }
    const entries = this.entries(program);
    const [removed] = entries.splice(index, 1);
    const result = await this.updateSubTasks(program, entries, `Delete sub-task "${short(removed.subTask.name, 30)}"`);
    if (result) this.context.ui.status(vscode.l10n.t('Deleted sub-task {0} "{1}" (Undo Last Review Edit in the GPIoT view brings it back).', index + 1, short(removed.subTask.name, 30)), "trash");
    return result;
  }

  async moveBy(arg: Arg, delta: -1 | 1): Promise<ProgramState | undefined> {
    const found = await this.subTask(arg, delta < 0 ? "Move Sub-Task Up" : "Move Sub-Task Down");
    if (!found) return undefined;
    const { program, index } = found;
    const target = index + delta;
    if (target < 0 || target >= program.subTasks.length) return program;
    const entries = this.entries(program);
    const [moved] = entries.splice(index, 1);
    entries.splice(target, 0, moved);
    return this.updateSubTasks(program, entries, `Move sub-task ${index + 1} ${delta < 0 ? "up" : "down"}`);
  }

  /** Drag and drop: puts a sub-task before another one (or last). */
  async move(program: ProgramState, subTaskId: string, beforeSubTaskId: string | undefined): Promise<void> {
    const entries = this.entries(program);
    const from = entries.findIndex((entry) => entry.id === subTaskId);
    if (from < 0) return;
    const [moved] = entries.splice(from, 1);
    const to = beforeSubTaskId ? entries.findIndex((entry) => entry.id === beforeSubTaskId) : -1;
    entries.splice(to >= 0 ? to : entries.length, 0, moved);
    await this.updateSubTasks(program, entries, `Move sub-task "${short(moved.subTask.name, 30)}"`);
  }

  // ---- fields of a sub-task: problem, steps, target, inputs, outputs ----

  private fieldOf(arg: Arg): { field: ProgramRef["field"]; index?: number } {
    if (isNode(arg)) {
      if (arg.kind === "problem") return { field: "problem" };
      if (arg.kind === "step") return { field: "step", index: arg.index };
      if (arg.kind === "target") return { field: "target" };
      if (arg.kind === "param") return { field: arg.which, index: arg.index };
      if (arg.kind === "params") return { field: arg.which };
      return { field: undefined };
    }
    return { field: arg?.field, index: arg?.index };
  }

  async editField(arg: Arg, value?: string | Parameter): Promise<ProgramState | undefined> {
    const found = await this.subTask(arg, "Edit");
    if (!found) return undefined;
    const { program, index } = found;
    const entry = program.subTasks[index];
    const { field, index: itemIndex } = this.fieldOf(arg);
    if (field === "name" || field === "problem") {
      const text = typeof value === "string" ? value : await vscode.window.showInputBox({ title: field === "name" ? "Name" : "Problem statement", value: entry.subTask[field], validateInput: limit(1, field === "name" ? 80 : 600) });
      if (text === undefined) return undefined;
      return this.editSubTask({ programUid: program.uid, subTaskId: entry.id }, { [field]: text.trim() });
    }
    if (field === "step" && itemIndex !== undefined) {
      const text = typeof value === "string" ? value : await vscode.window.showInputBox({ title: `Step ${itemIndex + 1}`, value: entry.subTask.steps[itemIndex], validateInput: limit(1, 300) });
      if (text === undefined) return undefined;
      return this.editSubTask({ programUid: program.uid, subTaskId: entry.id }, { steps: entry.subTask.steps.map((step, i) => (i === itemIndex ? text.trim() : step)) });
    }
    if (!entry.spec) {
      void this.context.ui.warn("This sub-task has no spec yet.");
      return undefined;
    }
    if (field === "target") {
      const text = typeof value === "string" ? value : await vscode.window.showInputBox({ title: "Target", prompt: "What the code of this sub-task must do", value: entry.spec.target, validateInput: limit(1, 400) });
      if (text === undefined) return undefined;
      return this.updateSpec(program, entry.id, { ...entry.spec, target: text.trim() }, `Edit the target of sub-task ${index + 1}`);
    }
    if ((field === "inputs" || field === "outputs") && itemIndex !== undefined) {
      const current = entry.spec[field][itemIndex];
      const parameter = value !== undefined ? toParameter(value) : await askParameter(current, field);
      if (!parameter) return undefined;
      const list = entry.spec[field].map((p, i) => (i === itemIndex ? parameter : p));
      return this.updateSpec(program, entry.id, { ...entry.spec, [field]: list }, `Edit ${field === "inputs" ? "input" : "output"} "${parameter.name}"`);
    }
    return undefined;
  }

  async deleteField(arg: Arg): Promise<ProgramState | undefined> {
    const found = await this.subTask(arg, "Delete");
    if (!found) return undefined;
    const { program, index } = found;
    const entry = program.subTasks[index];
    const { field, index: itemIndex } = this.fieldOf(arg);
    if (itemIndex === undefined) return undefined;
    if (field === "step") {
      if (entry.subTask.steps.length <= 1) return undefined;
      return this.editSubTask({ programUid: program.uid, subTaskId: entry.id }, { steps: entry.subTask.steps.filter((_, i) => i !== itemIndex) });
    }
    if ((field === "inputs" || field === "outputs") && entry.spec) {
      const list = entry.spec[field].filter((_, i) => i !== itemIndex);
      return this.updateSpec(program, entry.id, { ...entry.spec, [field]: list }, `Delete an ${field === "inputs" ? "input" : "output"} of sub-task ${index + 1}`);
    }
    return undefined;
  }

  async addStep(arg: Arg, value?: string): Promise<ProgramState | undefined> {
    const found = await this.subTask(arg, "Add Step");
    if (!found) return undefined;
    const { program, index } = found;
    const entry = program.subTasks[index];
    const text = value ?? (await vscode.window.showInputBox({ title: `GPIoT: add a step to sub-task ${index + 1}`, validateInput: limit(1, 300) }));
    if (text === undefined) return undefined;
    return this.editSubTask({ programUid: program.uid, subTaskId: entry.id }, { steps: [...entry.subTask.steps, text.trim()] });
  }

  async addParameter(arg: Arg, value?: Parameter | string): Promise<ProgramState | undefined> {
    const found = await this.subTask(arg, "Add Parameter");
    if (!found) return undefined;
    const { program, index } = found;
    const entry = program.subTasks[index];
    const { field } = this.fieldOf(arg);
    if (!entry.spec || (field !== "inputs" && field !== "outputs")) return undefined;
    const parameter = value !== undefined ? toParameter(value) : await askParameter(undefined, field);
    if (!parameter) return undefined;
    return this.updateSpec(program, entry.id, { ...entry.spec, [field]: [...entry.spec[field], parameter] }, `Add ${field === "inputs" ? "an input" : "an output"} to sub-task ${index + 1}`);
  }

  async undo(arg: Arg): Promise<string | undefined> {
    const program = await this.program(arg, "Undo Last Review Edit");
    if (!program) return undefined;
    try {
      const label = await this.context.jobs.undo(program);
      if (!label) void this.context.ui.info(vscode.l10n.t("There is no review edit to undo."));
      else this.context.ui.status(vscode.l10n.t('Undid "{0}".', label), "discard");
      return label;
    } catch (error) {
      this.reportFailure(program, vscode.l10n.t("GPIoT could not undo: {0}", humanizeEngineMessage(errorInfoOf(error).message, program)), error);
      return undefined;
    }
  }

  // ---- jobs ----

  private async runJob(program: ProgramState, title: string, start: () => Promise<StartedJob>): Promise<SynthesizeResult> {
    let started;
    try {
      started = await start();
    } catch (error) {
      const info = errorInfoOf(error);
      this.reportFailure(program, `GPIoT: ${humanizeEngineMessage(info.message, program)}`, error);
      return { status: "failed", error: info, programUid: program.uid };
    }
    const result = await withJobProgress(this.context.jobs, this.context.ui, started, title);
    return presentWriteOutcome(this.context, started, result, {
      openEditors: true,
      retry: () => this.runJob(program, title, start),
    });
  }

  async continue(arg: Arg, options: { outDir?: string; overwrite?: boolean } = {}): Promise<SynthesizeResult | undefined> {
    const program = await this.program(arg, "Continue Generation");
    if (!program) return undefined;
    return this.runJob(program, `GPIoT: ${short(program.requirement, 50)}`, () => this.context.jobs.continue(program, options));
  }

  /**
   * Writes the program's files, after the user read them as a diff against the folder and
   * accepted (unless `confirm: true`). Refused, in words, while a part is missing.
   */
  async assemble(arg: Arg, options: WriteOptions = {}): Promise<SynthesizeResult | undefined> {
    const program = await this.program(arg, "Assemble Program");
    if (!program) return undefined;
    const readiness = assemblyReadiness(program);
    if (!readiness.ready) {
      const regenerate = vscode.l10n.t("Regenerate Stale Sub-tasks");
      const choice = await this.context.ui.warn(readiness.reason, ...(readiness.regenerable && !program.busy ? [regenerate] : []));
      if (choice === regenerate) void this.regenerateStale({ programUid: program.uid });
      return { status: "aborted", programUid: program.uid, message: readiness.reason };
    }
    let outDir = options.outDir ?? program.outDir ?? program.intendedOutDir;
    let overwrite = options.overwrite;
    if (!outDir) {
      const chosen = await chooseProgramFolder(this.context.ui, program.requirement, undefined, options.overwrite);
      if (!chosen) return { status: "aborted" };
      outDir = chosen.outDir;
      overwrite = chosen.overwrite;
    }
    if (!options.confirm) {
      const decision = await previewProgramWrite(this.context, program, outDir);
      if (decision !== "accepted") return { status: "aborted", programUid: program.uid, message: decision === "discarded" ? "Discarded." : decision };
      overwrite = true;
    }
    const folder = outDir;
    return this.runJob(program, vscode.l10n.t("GPIoT: writing {0}", short(program.requirement, 40)), () => this.context.jobs.assemble(program, { outDir: folder, overwrite }));
  }

  /** Regenerates every edited or missing spec and code, then offers Assemble (nothing is written). */
  async regenerateStale(arg: Arg): Promise<JobResult | undefined> {
    const program = await this.program(arg, "Regenerate Stale Sub-tasks");
    if (!program) return undefined;
    if (!program.subTasks.some((entry) => entry.specStale || !entry.spec || !entry.artifact || entry.codeState === "stale" || entry.codeState === "failed" || entry.codeState === "pending")) {
      this.context.ui.status(vscode.l10n.t("Every sub-task is up to date."));
      return undefined;
    }
    let started;
    try {
      started = await this.context.jobs.regenerateStale(program);
    } catch (error) {
      this.reportFailure(program, vscode.l10n.t("GPIoT could not regenerate: {0}", humanizeEngineMessage(errorInfoOf(error).message, program)), error);
      return undefined;
    }
    const result = await withJobProgress(this.context.jobs, this.context.ui, started, vscode.l10n.t("GPIoT: regenerating the stale sub-tasks"));
    this.reportRegenerated(program, result, vscode.l10n.t("The stale sub-tasks were regenerated."));
    return result;
  }

  /** After a regenerate: one notification at most (Assemble, when the files are out of date; or the error). */
  private reportRegenerated(program: ProgramState, result: JobResult, done: string): void {
    if (result.status === "finished") {
      if (this.context.tree.canAssemble(program)) {
        const assemble = vscode.l10n.t("Assemble");
        void this.context.ui.info(vscode.l10n.t("{0} Assemble the program to write its files.", done), assemble).then((choice) => {
          if (choice === assemble) void vscode.commands.executeCommand("gpiot.assemble", { programUid: program.uid });
        });
      } else this.context.ui.status(done);
    } else if (result.status === "failed") this.reportFailure(program, vscode.l10n.t("Regenerating failed: {0}", humanizeEngineMessage(result.error?.message ?? "", program)), undefined);
    else if (result.status === "cancelled") this.context.ui.status(vscode.l10n.t("Regeneration stopped."), "circle-slash");
  }

  async regenerate(arg: Arg, stage: "spec" | "code"): Promise<JobResult | undefined> {
    const found = await this.subTask(arg, stage === "spec" ? "Regenerate Spec and Code" : "Regenerate Code");
    if (!found) return undefined;
    const { program, index } = found;
    const entry = program.subTasks[index];
    let started;
    try {
      started = await this.context.jobs.regenerate(program, entry.id, stage);
    } catch (error) {
      this.reportFailure(program, vscode.l10n.t("GPIoT could not regenerate: {0}", humanizeEngineMessage(errorInfoOf(error).message, program)), error);
      return undefined;
    }
    const result = await withJobProgress(this.context.jobs, this.context.ui, started, vscode.l10n.t("GPIoT: regenerating sub-task {0}", index + 1));
    this.reportRegenerated(program, result, vscode.l10n.t("Sub-task {0} was regenerated.", index + 1));
    return result;
  }

  /** Removes every done, failed, cancelled or lost program from the view (their files stay). */
  clearFinished(): number {
    const { store } = this.context;
    const finished = store.programs().filter((program) => isFinished(program));
    for (const program of finished) store.remove(program.uid);
    if (finished.length) this.context.ui.status(vscode.l10n.t("Cleared {0} finished program(s) from the GPIoT view; their files stay where they are.", finished.length), "clear-all");
    return finished.length;
  }

  async cancel(arg: Arg | { jobId: string }): Promise<boolean> {
    const { store, jobs } = this.context;
    let program: ProgramState | undefined;
    if (arg && "jobId" in arg && typeof arg.jobId === "string") {
      const job = store.jobs().find((candidate) => candidate.jobId === arg.jobId && candidate.generation === this.context.currentGeneration());
      program = job ? store.get(job.programUid) : undefined;
    } else program = await this.program(arg as Arg, "Cancel Generation");
    if (!program) return false;
    try {
      return await jobs.cancel(program);
    } catch (error) {
      void this.context.ui.error(vscode.l10n.t("GPIoT could not cancel: {0}", errorInfoOf(error).message));
      return false;
    }
  }

  async retry(arg: Arg, options: { outDir?: string; overwrite?: boolean } = {}): Promise<SynthesizeResult | undefined> {
    const program = await this.program(arg, "Retry");
    if (!program) return undefined;
    if (program.group && program.origin === "comment") {
      const answered = await vscode.commands.executeCommand<SynthesizeResult | undefined>("gpiot.comment.retry", { groupId: program.group.id });
      if (answered) return answered;
    }
    return vscode.commands.executeCommand<SynthesizeResult>("gpiot.synthesize", {
      requirement: program.requirement,
      constraints: program.constraints ?? "",
      outDir: options.outDir ?? program.intendedOutDir,
      overwrite: options.overwrite,
      review: program.review,
    });
  }

  async remove(arg: Arg): Promise<void> {
    const program = await this.program(arg, "Remove");
    if (program && !program.busy) this.context.store.remove(program.uid);
  }

  async openFolder(arg: Arg): Promise<void> {
    const program = await this.program(arg, "Reveal Program Folder");
    if (program?.outDir) await vscode.commands.executeCommand("revealInExplorer", vscode.Uri.file(program.outDir));
  }

  async run(arg: Arg): Promise<void> {
    const program = await this.program(arg, "Run Generated Program");
    if (!program?.outDir) return;
    if (!vscode.workspace.isTrusted) {
      void this.context.ui.warn(vscode.l10n.t("GPIoT does not run generated code in an untrusted workspace. Trust the workspace first if you have reviewed the program."));
      return;
    }
    const python = vscode.workspace.getConfiguration("gpiot").get<string>("pythonPath", "").trim() || "python3";
    const terminal = vscode.window.createTerminal({ name: `GPIoT: ${short(program.requirement, 30)}`, cwd: program.outDir });
    terminal.show();
    terminal.sendText(`${/\s/.test(python) ? `"${python}"` : python} main.py --help`, true);
  }

  async openCode(arg: Arg): Promise<void> {
    const found = await this.subTask(arg, "Open Code");
    if (!found) return;
    const { program, index } = found;
    const entry = program.subTasks[index];
    const prefix = `task_${String(index + 1).padStart(2, "0")}`;
    const file = !program.filesStale && entry.codeState !== "streaming" ? program.files.find((candidate) => path.basename(candidate).startsWith(prefix) && candidate.endsWith(".py")) : undefined;
    if (file) {
      await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true });
      return;
    }
    await showStream(program, "code", entry.id, { preserveFocus: false, column: vscode.ViewColumn.Active });
  }

  async openSpec(arg: Arg): Promise<void> {
    const found = await this.subTask(arg, "Open Spec");
    if (!found) return;
    await showStream(found.program, "specs", found.program.subTasks[found.index].id, { preserveFocus: false, column: vscode.ViewColumn.Active });
  }
}

function limit(min: number, max: number): (value: string) => string | undefined {
  return (value) => (value.trim().length < min ? "Required." : value.length > max ? `At most ${max} characters.` : undefined);
}

/** "name (type): description" → a parameter. */
export function parseParameter(text: string): Parameter | undefined {
  const match = /^\s*([^():]+?)\s*\(([^)]+)\)\s*:\s*([\s\S]+?)\s*$/.exec(text);
  if (!match) return undefined;
  const parsed = ParameterSchema.safeParse({ name: match[1].trim(), type: match[2].trim(), description: match[3].trim() });
  return parsed.success ? parsed.data : undefined;
}

function toParameter(value: Parameter | string): Parameter | undefined {
  if (typeof value === "string") return parseParameter(value);
  const parsed = ParameterSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

async function askParameter(current: Parameter | undefined, which: "inputs" | "outputs"): Promise<Parameter | undefined> {
  const text = await vscode.window.showInputBox({
    title: `GPIoT: ${current ? "edit" : "add"} ${which === "inputs" ? "an input" : "an output"}`,
    prompt: "name (type): description",
    value: current ? `${current.name} (${current.type}): ${current.description}` : "",
    placeHolder: "ecg_signal (numpy.ndarray): single-lead ECG samples in millivolts",
    validateInput: (value) => (parseParameter(value) ? undefined : "Write it as name (type): description — name ≤ 40, type ≤ 60, description ≤ 300 characters."),
  });
  return text === undefined ? undefined : parseParameter(text);
}
