/**
 * Writes an assembled program into its folder all at once: the files go to a hidden staging
 * folder beside the target (`.NAME.gpiot-partial-*`), which is renamed into place only when every
 * file is written. Replacing a folder GPIoT wrote before moves it aside (`.NAME.gpiot-previous-*`),
 * moves the entries the user added into the new folder, renames the new folder into place and
 * only then deletes GPIoT's old files. What may be replaced is decided by planOutputFolder.
 *
 * A marker in the staging folder (it travels with it into place) records the writing process
 * and what it moves, so a write interrupted by a crash or SIGKILL is finished or undone by the
 * next write into the same parent folder, once that process is gone: staging folders are
 * removed, a folder that was being replaced is put back, and the user's entries are never lost.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { OverwriteMode } from "../protocol";
import type { ProgramFile } from "./assembleProgram";
import {
  WRITE_MARKER,
  exists,
  isSafeRelativePath,
  moveEntries,
  processStartToken,
  recoverInterruptedWrites,
  removePrevious,
  removeStaging,
  type WriteMarker,
} from "../shared/interruptedWrites";
import { PROGRAM_MANIFEST, parseOwnership } from "../shared/programManifest";
import { filesystemProblem, planOutputFolder } from "./outputFolder";
import { CancelledError, throwIfCancelled } from "./structuredGeneration";

export { OutputFolderError } from "./outputFolder";
export { recoverInterruptedWrites } from "../shared/interruptedWrites";

export interface WrittenProgram {
  outDir: string;
  files: { path: string; kind: ProgramFile["kind"]; bytes: number }[];
}

export interface WriteOptions {
  /** What may be replaced when the folder exists (see OverwriteMode); default "never". */
  overwrite?: OverwriteMode;
  /**
   * Honoured until the program folder is renamed into place: a cancel before that leaves nothing
   * behind; after it the program is written and the call resolves.
   */
  signal?: AbortSignal;
  /** What was found and cleaned up after an earlier, interrupted write (for the log). */
  onNote?(message: string): void;
}

function programIdOf(files: ProgramFile[]): string | undefined {
  const manifest = files.find((file) => file.kind === "manifest" && file.path === PROGRAM_MANIFEST);
  return manifest ? (parseOwnership(manifest.content)?.programId ?? undefined) : undefined;
}

/**
 * Checks the output folder as `writeProgram` will, without writing: what a request can be refused
 * with before any model work (the same OutputFolderError).
 */
export function checkOutputFolder(outDir: string, overwrite: OverwriteMode, programId?: string): void {
  planOutputFolder(outDir, { overwrite, programId });
}

export async function writeProgram(outDir: string, files: ProgramFile[], options: WriteOptions = {}): Promise<WrittenProgram> {
  const userPath = path.resolve(outDir);
  for (const file of files) {
    if (!isSafeRelativePath(file.path)) throw new Error(`Refusing to write outside the program folder: ${file.path}`);
  }
  const parentOfRequest = path.dirname(userPath);
  for (const note of await recoverInterruptedWrites(parentOfRequest, path.basename(userPath))) options.onNote?.(note);
  const plan = planOutputFolder(outDir, { overwrite: options.overwrite ?? "never", programId: programIdOf(files), newPaths: files.map((file) => file.path) });
  const target = plan.realTarget;
  const parent = path.dirname(target);
  if (parent !== parentOfRequest) for (const note of await recoverInterruptedWrites(parent, path.basename(target))) options.onNote?.(note);
  try {
    await mkdir(parent, { recursive: true });
  } catch (error) {
    throw filesystemProblem(error, userPath, parent);
  }

  const suffix = randomBytes(4).toString("hex");
  const staging = path.join(parent, `.${path.basename(target)}.gpiot-partial-${suffix}`);
  const previous = path.join(parent, `.${path.basename(target)}.gpiot-previous-${suffix}`);
  const marker: WriteMarker = {
    writer: "gpiot",
    pid: process.pid,
    startToken: processStartToken(process.pid) ?? `started:${Math.round(Date.now() - process.uptime() * 1000)}`,
    host: os.hostname(),
    target: path.basename(target),
    suffix,
    files: files.map((file) => file.path),
    keep: plan.keep,
    remove: plan.remove,
  };

  try {
    await mkdir(staging);
    await writeFile(path.join(staging, WRITE_MARKER), `${JSON.stringify(marker)}\n`, "utf8");
    for (const file of files) {
      const destination = path.join(staging, ...file.path.split("/"));
      await mkdir(path.dirname(destination), { recursive: true });
      await writeFile(destination, file.content, "utf8");
    }
    throwIfCancelled(options.signal);
    if (plan.exists) await rename(target, previous);
  } catch (error) {
    // Nothing of the user's has moved yet: the staging folder holds only what was just written.
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    if (error instanceof CancelledError) throw error;
    throw filesystemProblem(error, userPath);
  }

  try {
    await moveEntries(plan.keep, previous, staging);
    await rename(staging, target);
  } catch (error) {
    try {
      if (plan.exists) {
        await moveEntries(plan.keep, staging, previous);
        await rename(previous, target);
      }
      await removeStaging(staging, marker);
    } catch {
      // The marker stays: the next write into this folder's parent puts everything back.
    }
    throw filesystemProblem(error, userPath);
  }

  // The new program is in place: from here on the write stands, whatever fails while tidying up.
  try {
    if (plan.exists) await removePrevious(previous, target, marker);
    if (!(await exists(previous))) await unlink(path.join(target, WRITE_MARKER));
  } catch {
    // Left for the next write into this parent, which finishes it.
  }
  return { outDir: userPath, files: files.map((file) => ({ path: file.path, kind: file.kind, bytes: Buffer.byteLength(file.content) })) };
}
