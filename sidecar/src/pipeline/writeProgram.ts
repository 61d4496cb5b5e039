/**
 * Writes an assembled program into its folder all at once: files go to a hidden temporary
 * folder beside the target, which is renamed into place only when every file is written.
 * An existing non-empty folder is never replaced unless the caller asked to overwrite it.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { isNonEmptyDirectory } from "../shared/folders";
import type { ProgramFile } from "./assembleProgram";
import { throwIfCancelled } from "./structuredGeneration";

export class OutputExistsError extends Error {
  readonly code = "OUTPUT_EXISTS";
  constructor(readonly outDir: string) {
    super(`The output folder ${outDir} already exists and is not empty; choose another folder or allow overwriting it.`);
    this.name = "OutputExistsError";
  }
}

export interface WrittenProgram {
  outDir: string;
  files: { path: string; kind: ProgramFile["kind"]; bytes: number }[];
}

/**
 * `signal` is honoured until the program folder is renamed into place: a cancel before that leaves
 * nothing behind; after it the program is written and the call resolves.
 */
export async function writeProgram(outDir: string, files: ProgramFile[], options: { overwrite?: boolean; signal?: AbortSignal } = {}): Promise<WrittenProgram> {
  const target = path.resolve(outDir);
  if ((await isNonEmptyDirectory(target)) && !options.overwrite) throw new OutputExistsError(target);
  const parent = path.dirname(target);
  await mkdir(parent, { recursive: true });
  const suffix = randomBytes(4).toString("hex");
  const staging = path.join(parent, `.${path.basename(target)}.gpiot-partial-${suffix}`);
  const previous = path.join(parent, `.${path.basename(target)}.gpiot-previous-${suffix}`);
  try {
    await mkdir(staging);
    for (const file of files) {
      const destination = path.join(staging, ...file.path.split("/"));
      if (!destination.startsWith(staging + path.sep)) throw new Error(`Refusing to write outside the program folder: ${file.path}`);
      await mkdir(path.dirname(destination), { recursive: true });
      await writeFile(destination, file.content, "utf8");
    }
    throwIfCancelled(options.signal);
    let movedPrevious = false;
    try {
      await rename(target, previous);
      movedPrevious = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    try {
      await rename(staging, target);
    } catch (error) {
      if (movedPrevious) await rename(previous, target);
      throw error;
    }
    if (movedPrevious) await rm(previous, { recursive: true, force: true });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return { outDir: target, files: files.map((file) => ({ path: file.path, kind: file.kind, bytes: Buffer.byteLength(file.content) })) };
}
