/**
 * GPIoT's write marker and the recovery of interrupted writes. A program is written into a hidden
 * staging folder beside its target (`.NAME.gpiot-partial-*`) and a replaced folder is moved aside
 * (`.NAME.gpiot-previous-*`); the marker in the staging folder records the writing process and what
 * it moves, so a write interrupted by a crash or SIGKILL is finished or undone by the next write
 * into the same parent folder once that process is gone. The sidecar's writer and the extension's
 * crash cleanup both use this module, so it imports only Node's built-ins.
 */
import { readFileSync } from "node:fs";
import { lstat, readdir, readFile, rename, rm, rmdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/** Written into a folder while GPIoT writes it: who writes, and what to undo if that process dies. */
export const WRITE_MARKER = ".gpiot-write.json";

/** What a writer records in its staging folder (the marker travels with it into place). */
export interface WriteMarker {
  writer: "gpiot";
  pid: number;
  /** Tells a live writer from a later process that reuses its pid. */
  startToken: string;
  host: string;
  target: string;
  suffix: string;
  /** The new program's files (relative paths). */
  files: string[];
  /** The user's entries moved from the old folder into the new one. */
  keep: string[];
  /** GPIoT's entries of the old folder, deleted with it. */
  remove: string[];
}

export function parseWriteMarker(text: string): WriteMarker | null {
  try {
    const marker = JSON.parse(text) as WriteMarker;
    const valid =
      marker.writer === "gpiot" &&
      Number.isInteger(marker.pid) &&
      typeof marker.startToken === "string" &&
      typeof marker.host === "string" &&
      typeof marker.suffix === "string" &&
      [marker.files, marker.keep, marker.remove].every((list) => Array.isArray(list) && list.every((entry) => typeof entry === "string" && isSafeRelativePath(entry)));
    return valid ? marker : null;
  } catch {
    return null;
  }
}

/** The start time of a process as the kernel counts it (Linux), or null where it cannot be read. */
export function processStartToken(pid: number): string | null {
  if (process.platform !== "linux") return null;
  try {
    const statLine = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = statLine.slice(statLine.lastIndexOf(")") + 2).split(" ");
    return `linux:${fields[19]}`;
  } catch {
    return null;
  }
}

/** False only when the writer is provably gone: its pid is free, or now belongs to a later process. */
export function writerMayBeAlive(marker: WriteMarker): boolean {
  if (marker.host !== os.hostname()) return true;
  try {
    process.kill(marker.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  const token = processStartToken(marker.pid);
  if (token !== null && marker.startToken.startsWith("linux:")) return token === marker.startToken;
  return true;
}

/** A "/"-separated path that stays inside its folder and is not GPIoT's write marker. */
export function isSafeRelativePath(relative: string): boolean {
  if (!relative || relative.includes("\0") || relative.includes("\\") || relative.startsWith("/")) return false;
  const parts = relative.split("/");
  return parts.every((part) => part !== "" && part !== "." && part !== "..") && parts[0] !== WRITE_MARKER;
}

const STAGING = /^\.(.+)\.gpiot-(partial|previous)-([0-9a-f]{8,})$/;

export async function readMarker(folder: string): Promise<WriteMarker | null> {
  try {
    return parseWriteMarker(await readFile(path.join(folder, WRITE_MARKER), "utf8"));
  } catch {
    return null;
  }
}

export async function exists(target: string): Promise<boolean> {
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
export async function removeStaging(staging: string, marker: WriteMarker): Promise<void> {
  for (const file of marker.files) await rm(path.join(staging, ...file.split("/")), { force: true });
  await rm(path.join(staging, WRITE_MARKER), { force: true });
  await removeEmptyFolders(staging);
}

/**
 * Deletes GPIoT's old entries from a folder that was replaced; anything else still in it (an entry
 * the user added while GPIoT was writing) joins the new folder. The folder goes once it is empty.
 */
export async function removePrevious(previous: string, target: string, marker: WriteMarker): Promise<void> {
  for (const name of marker.remove) await rm(path.join(previous, name), { recursive: true, force: true });
  await moveEntries(await readdir(previous), previous, target);
  await rmdir(previous).catch(() => undefined);
}

/** Moves the user's entries that are still in `from` (and not yet in `to`) into `to`. */
export async function moveEntries(names: string[], from: string, to: string): Promise<void> {
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

