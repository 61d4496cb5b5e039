/**
 * Program folders on disk: choosing a fresh folder for a new program, and cleaning up after a
 * sidecar that died while writing one. The sidecar writes a program into a hidden staging folder
 * beside the target and renames it into place (and moves a replaced folder aside first), so a
 * crash can leave `.NAME.gpiot-partial-*` (never complete: removed) or, in the instant between
 * the two renames of an overwrite, `.NAME.gpiot-previous-*` with no NAME (moved back).
 */
import { existsSync } from "node:fs";
import { readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { isNonEmptyDirectory } from "../../sidecar/src/pipeline/writeProgram";

export { isNonEmptyDirectory };

/** `parent/name`, or `parent/name-2`, `-3`, ... when that exists and is not empty. */
export async function freshProgramFolder(parent: string, name: string): Promise<string> {
  for (let suffix = 1; suffix < 1000; suffix++) {
    const candidate = path.join(parent, suffix === 1 ? name : `${name}-${suffix}`);
    if (!(await isNonEmptyDirectory(candidate))) return candidate;
  }
  return path.join(parent, `${name}-${Date.now()}`);
}

/** Removes what an interrupted write left beside `outDir`; returns the paths it removed or restored. */
export async function cleanupPartialOutput(outDir: string): Promise<string[]> {
  const target = path.resolve(outDir);
  const parent = path.dirname(target);
  const base = path.basename(target);
  let entries: string[];
  try {
    entries = await readdir(parent);
  } catch {
    return [];
  }
  const touched: string[] = [];
  for (const entry of entries) {
    const full = path.join(parent, entry);
    if (entry.startsWith(`.${base}.gpiot-partial-`)) {
      await rm(full, { recursive: true, force: true });
      touched.push(full);
    } else if (entry.startsWith(`.${base}.gpiot-previous-`)) {
      if (!existsSync(target)) await rename(full, target);
      else await rm(full, { recursive: true, force: true });
      touched.push(full);
    }
  }
  return touched;
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
