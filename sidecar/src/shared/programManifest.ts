/**
 * The `gpiot.json` every program folder carries: the program's id and the sha256 of each file
 * GPIoT wrote there. It is what makes a folder recognisably GPIoT's, for the engine (which replaces
 * only such folders) and for the extension (which asks about replacing only such folders).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { isSafeRelativePath } from "./interruptedWrites";

export const PROGRAM_MANIFEST = "gpiot.json";

export interface OwnedFile {
  path: string;
  sha256: string;
}

export interface ProgramOwnership {
  programId: string;
  files: OwnedFile[];
}

/** The program id and file list of a `gpiot.json`, or null when it is not a GPIoT manifest. */
export function parseOwnership(manifestText: string): ProgramOwnership | null {
  let manifest: unknown;
  try {
    manifest = JSON.parse(manifestText);
  } catch {
    return null;
  }
  if (typeof manifest !== "object" || manifest === null) return null;
  const { programId, files } = manifest as { programId?: unknown; files?: unknown };
  if (typeof programId !== "string" || !programId || !Array.isArray(files)) return null;
  const owned: OwnedFile[] = [];
  for (const file of files) {
    const { path: filePath, sha256: hash } = (file ?? {}) as { path?: unknown; sha256?: unknown };
    if (typeof filePath !== "string" || typeof hash !== "string" || !isSafeRelativePath(filePath)) return null;
    owned.push({ path: filePath, sha256: hash });
  }
  return { programId, files: owned };
}

/** The ownership a folder's `gpiot.json` declares, or null when the folder has none that parses. */
export async function readOwnership(folder: string): Promise<ProgramOwnership | null> {
  try {
    return parseOwnership(await readFile(path.join(folder, PROGRAM_MANIFEST), "utf8"));
  } catch {
    return null;
  }
}
