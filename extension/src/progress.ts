/**
 * A job as the user sees it while it runs: a cancellable progress notification that says which
 * stage of which sub-task the models are on; cancelling it sends `gpiot/cancel`.
 */
import * as vscode from "vscode";
import type { Jobs, StartedJob } from "./jobs";
import type { JobResult, ProgramState } from "./programStore";

export function describePhase(program: ProgramState): string {
  const total = program.subTasks.length;
  const active = program.subTasks.findIndex((entry) => entry.activeStage !== undefined || entry.codeState === "streaming");
  const which = active >= 0 ? `sub-task ${active + 1} of ${total}` : "";
  switch (program.phase) {
    case "queued":
      return "Waiting for the models…";
    case "starting":
      return "Loading the models…";
    case "decomposing":
      return program.draftSubTasks.length ? `Decomposing the requirement: ${program.draftSubTasks.filter(Boolean).length} sub-task(s) so far…` : "Decomposing the requirement…";
    case "specifying":
      return `Writing the specification of ${which}…`;
    case "coding":
      return `Writing the code of ${which}…`;
    case "assembling":
      return "Assembling the program…";
    case "writing":
      return "Writing the files…";
    case "awaitingReview":
      return "Waiting for your review";
    case "done":
      return "Done";
    case "ready":
      return "Ready";
    case "failed":
      return "Failed";
    case "cancelled":
      return "Cancelled";
  }
}

/** Shows the job's progress until it ends; resolves with its result. */
export function withJobProgress(jobs: Jobs, started: StartedJob, title: string): Thenable<JobResult> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
    const { program } = started;
    let last = "";
    const report = () => {
      const message = describePhase(program);
      if (message !== last) {
        last = message;
        progress.report({ message });
      }
    };
    report();
    const subscription = jobs.store.onDidChangeProgram((change) => {
      if (change.program === program && change.structural) report();
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
