/**
 * Program folders on disk: choosing a fresh folder for a new program, and cleaning up after a
 * sidecar that died while writing one. The sidecar writes a program into a hidden staging folder
 * beside the target and renames it into place (and moves a replaced folder aside first, moving
 * the user's own entries into the new folder), so a crash can leave `.NAME.gpiot-partial-*` or
 * `.NAME.gpiot-previous-*` holding the user's files. Only the writer's own recovery, which reads
 * the marker it left there, knows what may be deleted and what must be put back.
 */
import path from "node:path";
import { isNonEmptyDirectory, recoverInterruptedWrites } from "../../sidecar/src/pipeline/writeProgram";

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
