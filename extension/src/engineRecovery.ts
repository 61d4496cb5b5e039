/**
 * After the engine restarts (a setting changed, "Restart Engine", a crash), the new process knows
 * no programs. Every program of the old process is made again in the new one from what the
 * extension holds (`gpiot/restoreProgram`: sub-tasks, specs, code, folder), so the tree, the
 * comment conversations and every command go on working on it. A program that has nothing to
 * restore (the engine stopped before its decomposition was finished) or that the engine refuses is
 * marked as needing a new run, with Retry. Commands on a program wait until it has been taken over.
 */
import * as vscode from "vscode";
import type { Jobs } from "./jobs";
import { short } from "./jobs";
import type { ProgramState, ProgramStore } from "./programStore";
import { errorInfoOf, type Sidecar } from "./sidecar";

export class EngineRecovery implements vscode.Disposable {
  private pending: Promise<void> = Promise.resolve();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly sidecar: Sidecar,
    private readonly store: ProgramStore,
    private readonly jobs: Jobs,
    private readonly log: vscode.LogOutputChannel,
  ) {
    jobs.waitForRecovery = (program) => this.waitFor(program);
    this.disposables.push(
      sidecar.onDidBecomeReady((generation) => {
        const previous = this.pending;
        this.pending = previous.then(() => this.recover(generation));
      }),
    );
  }

  /** Resolves once every program of older engines has been restored or marked lost. */
  whenRecovered(): Promise<void> {
    return this.pending;
  }

  private async waitFor(program: ProgramState): Promise<void> {
    if (this.sidecar.state !== "running") await this.sidecar.whenRunning().catch(() => undefined);
    if (program.detached || program.generation !== this.sidecar.generation) await this.pending;
  }

  private async recover(generation: number): Promise<void> {
    const older = new Set(this.store.programs().filter((program) => program.generation < generation && !program.lost).map((program) => program.generation));
    for (const old of older) this.store.detachAll(old);
    const waiting = this.store.programs().filter((program) => program.detached && program.generation < generation);
    if (!waiting.length) return;
    let restored = 0;
    for (const program of waiting) {
      if (generation !== this.sidecar.generation) return;
      if (!program.subTasks.length) {
        this.store.markLost(program, vscode.l10n.t("The GPIoT engine stopped before the decomposition of this program was finished; Retry runs it again."));
        continue;
      }
      try {
        await this.jobs.restoreInEngine(program);
        restored += 1;
      } catch (error) {
        const info = errorInfoOf(error);
        // The engine went away again (another restart): the program waits for the next one.
        if (info.code === "ENGINE_STOPPED") continue;
        const message = info.message;
        this.log.warn(`Could not restore "${short(program.requirement)}" in the new engine: ${message}`);
        this.store.markLost(program, vscode.l10n.t("The GPIoT engine restarted and could not take this program over ({0}); Retry runs it again.", message));
      }
    }
    this.log.info(`Engine generation ${generation}: restored ${restored} of ${waiting.length} program(s) from the previous engine.`);
  }

  dispose(): void {
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }
}
