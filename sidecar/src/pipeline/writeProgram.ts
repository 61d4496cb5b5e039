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
import { lstat, mkdir, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { OverwriteMode } from "../protocol";
import type { ProgramFile } from "./assembleProgram";
import {
  PROGRAM_MANIFEST,
  WRITE_MARKER,
  filesystemProblem,
  isSafeRelativePath,
  parseOwnership,
  parseWriteMarker,
  planOutputFolder,
  processStartToken,
  writerMayBeAlive,
  type WriteMarker,
} from "./outputFolder";
import { CancelledError, throwIfCancelled } from "./structuredGeneration";

export { OutputFolderError } from "./outputFolder";

export async function isNonEmptyDirectory(dir: string): Promise<boolean> {
  try {
    const info = await stat(dir);
    if (!info.isDirectory()) return true;
    return (await readdir(dir)).length > 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

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

const STAGING = /^\.(.+)\.gpiot-(partial|previous)-([0-9a-f]{8,})$/;

async function readMarker(folder: string): Promise<WriteMarker | null> {
  try {
    return parseWriteMarker(await readFile(path.join(folder, WRITE_MARKER), "utf8"));
  } catch {
    return null;
  }
}

async function exists(target: string): Promise<boolean> {
  try {
    await lstat(target);
    return true;
  } catch {
    return false;
  }
}

/** Removes folders left empty under `folder`, deepest first, and the folder itself when empty. */
async function removeEmptyFolders(folder: string): Promise<void> {
  for (const entry of await readdir(folder, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) await removeEmptyFolders(path.join(folder, entry.name));
  }
  await rmdir(folder).catch(() => undefined);
}

/** Deletes what a marker says GPIoT put into a staging folder, then the folder if nothing else is left. */
async function removeStaging(staging: string, marker: WriteMarker): Promise<void> {
  for (const file of marker.files) await rm(path.join(staging, ...file.split("/")), { force: true });
  await rm(path.join(staging, WRITE_MARKER), { force: true });
  await removeEmptyFolders(staging);
}

/**
 * Deletes GPIoT's old entries from a folder that was replaced; anything else still in it (an entry
 * the user added while GPIoT was writing) joins the new folder. The folder goes once it is empty.
 */
async function removePrevious(previous: string, target: string, marker: WriteMarker): Promise<void> {
  for (const name of marker.remove) await rm(path.join(previous, name), { recursive: true, force: true });
  await moveEntries(await readdir(previous), previous, target);
  await rmdir(previous).catch(() => undefined);
}

/** Moves the user's entries that are still in `from` (and not yet in `to`) into `to`. */
async function moveEntries(names: string[], from: string, to: string): Promise<void> {
  for (const name of names) {
    const source = path.join(from, name);
    const destination = path.join(to, name);
    if ((await exists(source)) && !(await exists(destination))) await rename(source, destination);
  }
}

/**
 * Finishes or undoes every write into `parent` whose writer is gone. Returns what it did, in
 * words for the log. Folders without GPIoT's marker, or whose writer may still run, are left alone.
 */
export async function recoverInterruptedWrites(parent: string, targetName?: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return [];
  }
  const writes = new Map<string, { base: string; suffix: string }>();
  for (const name of names) {
    const match = STAGING.exec(name);
    if (match) writes.set(`${match[1]}\0${match[3]}`, { base: match[1], suffix: match[3] });
  }
  const done: string[] = [];
  for (const { base, suffix } of writes.values()) {
    const target = path.join(parent, base);
    const staging = path.join(parent, `.${base}.gpiot-partial-${suffix}`);
    const previous = path.join(parent, `.${base}.gpiot-previous-${suffix}`);
    try {
      const stagingExists = await exists(staging);
      const markerInTarget = await readMarker(target);
      const marker = stagingExists ? await readMarker(staging) : markerInTarget?.suffix === suffix ? markerInTarget : null;
      if (!marker) {
        // Created but not yet marked: an empty staging folder is all such a write can leave.
        if (stagingExists && (await readdir(staging)).length === 0) {
          await rmdir(staging);
          done.push(`removed an empty staging folder of ${target}`);
        }
        continue;
      }
      if (marker.suffix !== suffix || writerMayBeAlive(marker)) continue;
      const previousExists = await exists(previous);
      if (stagingExists) {
        // The new folder never reached its place: put the old one back as it was.
        if (previousExists) {
          await moveEntries(marker.keep, staging, previous);
          if (!(await exists(target))) {
            await rename(previous, target);
            done.push(`restored ${target}, which an interrupted write was replacing`);
          }
        }
        await removeStaging(staging, marker);
        done.push(`removed the unfinished write of ${target}`);
      } else {
        // The new folder is in place: finish deleting the old one.
        if (previousExists) {
          await removePrevious(previous, target, marker);
          done.push(`finished replacing ${target}`);
        }
        await rm(path.join(target, WRITE_MARKER), { force: true });
      }
    } catch {
      // Left for a later run; nothing here may stop the write the user asked for.
    }
  }
  // A writer that died after its old folder was gone, but before it removed its marker.
  if (targetName) {
    const target = path.join(parent, targetName);
    const marker = await readMarker(target);
    if (marker && !writes.has(`${targetName}\0${marker.suffix}`) && !writerMayBeAlive(marker)) await rm(path.join(target, WRITE_MARKER), { force: true }).catch(() => undefined);
  }
  return done;
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
