/**
 * A job as the user sees it while it runs: a cancellable progress notification that says which
 * stage of which sub-task the models are on (the tree's description of a busy program is the same
 * text); cancelling it sends `gpiot/cancel`.
 */
import * as vscode from "vscode";
import type { Jobs, StartedJob } from "./jobs";
import type { JobResult, ProgramState } from "./programStore";
import type { Ui } from "./ui";

export function describePhase(program: ProgramState): string {
  const total = program.subTasks.length;
  const active = program.subTasks.findIndex((entry) => entry.activeStage !== undefined || entry.codeState === "streaming");
  const which = active >= 0 ? vscode.l10n.t("sub-task {0} of {1}", active + 1, total) : "";
  switch (program.phase) {
    case "queued":
      return vscode.l10n.t("Waiting for the models…");
    case "starting":
      return vscode.l10n.t("Loading the models…");
    case "decomposing":
      return program.draftSubTasks.length ? vscode.l10n.t("Decomposing the requirement: {0} sub-task(s) so far…", program.draftSubTasks.filter(Boolean).length) : vscode.l10n.t("Decomposing the requirement…");
    case "specifying":
      return which ? vscode.l10n.t("Writing the specification of {0}…", which) : vscode.l10n.t("Writing the specifications…");
    case "coding":
      return which ? vscode.l10n.t("Writing the code of {0}…", which) : vscode.l10n.t("Writing the code…");
    case "assembling":
      return vscode.l10n.t("Assembling the program…");
    case "writing":
      return vscode.l10n.t("Writing the files…");
    case "awaitingReview":
      return vscode.l10n.t("Waiting for your review");
    case "done":
      return vscode.l10n.t("Done");
    case "ready":
      return vscode.l10n.t("Ready");
    case "failed":
      return vscode.l10n.t("Failed");
    case "cancelled":
      return vscode.l10n.t("Cancelled");
  }
}

/** Shows the job's progress until it ends; resolves with its result. The tree shows the same words. */
export function withJobProgress(jobs: Jobs, ui: Ui, started: StartedJob, title: string): Thenable<JobResult> {
  return ui.withProgress({ title, cancellable: true }, async (report, token) => {
    const { program } = started;
    let last = "";
    const update = () => {
      // The notification closes when the job ends: it shows what the tree shows while the program is busy.
      if (!program.busy) return;
      const message = describePhase(program);
      if (message !== last) {
        last = message;
        report(message);
      }
    };
    update();
    const subscription = jobs.store.onDidChangeProgram((change) => {
      if (change.program === program && change.structural) update();
    });
    const cancellation = token.onCancellationRequested(() => {
      void jobs.cancel(program).catch(() => undefined);
    });
    try {
      return await started.done;
    } finally {
      subscription.dispose();
      cancellation.dispose();
    }
  });
}
