/**
 * Before a program's files are written (Create Files, Assemble), the user reads them: the files
 * the engine would write (`gpiot/previewProgram`) open as a multi-file diff against what is in the
 * folder now (new files against nothing; files the write would remove, as deletions), with Accept
 * and Discard in the editor's title bar.
 */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import * as vscode from "vscode";
import type { Jobs } from "./jobs";
import { humanizeEngineMessage } from "./programRules";
import type { ProgramState } from "./programStore";
import type { ProposalReviews, ProposedChange } from "./proposedEdit";
import { errorInfoOf } from "./sidecar";
import type { Ui } from "./ui";

async function filesBelow(dir: string, prefix = ""): Promise<string[]> {
  const entries = await readdir(path.join(dir, prefix), { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...(await filesBelow(dir, relative)));
    else files.push(relative);
  }
  return files;
}

/** Shows what writing the program into `outDir` would change; resolves the user's decision (or why it could not be shown). */
export async function previewProgramWrite(
  context: { jobs: Jobs; ui: Ui; proposals: ProposalReviews },
  program: ProgramState,
  outDir: string,
): Promise<"accepted" | "discarded" | (string & NonNullable<unknown>)> {
  let files;
  try {
    files = await context.jobs.preview(program);
  } catch (error) {
    const message = humanizeEngineMessage(errorInfoOf(error).message, program);
    void context.ui.error(vscode.l10n.t("GPIoT cannot show the program's files: {0}", message));
    return message;
  }
  const existing = existsSync(outDir) ? await filesBelow(outDir) : [];
  const written = new Set(files.map((file) => file.path));
  const changes: ProposedChange[] = files.map((file) => {
    const target = vscode.Uri.file(path.join(outDir, ...file.path.split("/")));
    return { target, original: existing.includes(file.path) ? target : undefined, proposed: file.content };
  });
  for (const file of existing) {
    if (written.has(file)) continue;
    const target = vscode.Uri.file(path.join(outDir, ...file.split("/")));
    changes.push({ target, original: target, proposed: null });
  }
  const folder = vscode.workspace.asRelativePath(outDir);
  const title = existing.length ? vscode.l10n.t("GPIoT: update {0}", folder) : vscode.l10n.t("GPIoT: create {0}", folder);
  return context.proposals.propose(title, changes);
}
