/**
 * Folder helpers that both the sidecar and the extension use. Modules in sidecar/src/shared/ import
 * only Node's built-ins, zod and each other (the lint config enforces it), so the extension can
 * import them without pulling in the engine or node-llama-cpp.
 */
import { readdir, stat } from "node:fs/promises";

/** True when `dir` is a folder with entries, or a file; false when nothing is there. */
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
