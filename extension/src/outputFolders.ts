/**
 * Program folders on disk: choosing a fresh folder for a new program, and cleaning up after a
 * sidecar that died while writing one. The sidecar writes a program into a hidden staging folder
 * beside the target and renames it into place (and moves a replaced folder aside first, moving
 * the user's own entries into the new folder), so a crash can leave `.NAME.gpiot-partial-*` or
 * `.NAME.gpiot-previous-*` holding the user's files. Only the writer's own recovery, which reads
 * the marker it left there, knows what may be deleted and what must be put back.
 */
import path from "node:path";
import { isNonEmptyDirectory } from "../../sidecar/src/shared/folders";
import { recoverInterruptedWrites } from "../../sidecar/src/shared/interruptedWrites";

export { isNonEmptyDirectory };

/** `parent/name`, or `parent/name-2`, `-3`, ... when that exists and is not empty. */
export async function freshProgramFolder(parent: string, name: string): Promise<string> {
  for (let suffix = 1; suffix < 1000; suffix++) {
    const candidate = path.join(parent, suffix === 1 ? name : `${name}-${suffix}`);
    if (!(await isNonEmptyDirectory(candidate))) return candidate;
  }
  return path.join(parent, `${name}-${Date.now()}`);
}

/** Finishes or undoes what an interrupted write left beside `outDir`; returns what it did, in words. */
export async function cleanupPartialOutput(outDir: string): Promise<string[]> {
  const target = path.resolve(outDir);
  return recoverInterruptedWrites(path.dirname(target), path.basename(target));
}

/** A folder name for a program from its requirement: a few words, lower case, ASCII. */
export function programFolderName(requirement: string): string {
  const words = requirement
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((word) => word.length > 1 && !STOP_WORDS.has(word))
    .slice(0, 5);
  return words.join("-").slice(0, 48).replace(/-+$/, "") || "program";
}

const STOP_WORDS = new Set(["the", "and", "for", "from", "with", "that", "this", "into", "on", "in", "of", "to", "an", "it", "its", "is", "be", "by", "as", "at", "or", "then", "when", "which"]);
