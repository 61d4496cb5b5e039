/**
 * What GPIoT may do with an output folder, decided before anything is written (and again just
 * before the write): a missing or empty folder is created; a folder GPIoT wrote itself, as its
 * `gpiot.json` proves with the SHA-256 of every file, may have GPIoT's unchanged files replaced
 * while the files the user added are kept; anything else is refused with an error that names the
 * folder and says what to do. The filesystem root, the home folder, the current folder and a
 * repository root are never written into, whatever the caller asks.
 *
 * Everything here is synchronous and reads only the folder listing, `gpiot.json` and the files it
 * names, so the engine can answer a request with these checks before it queues any work.
 */
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, lstatSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { OutputProblem, OverwriteMode } from "../protocol";
import { WRITE_MARKER, parseWriteMarker, writerMayBeAlive, type WriteMarker } from "../shared/interruptedWrites";
import { PROGRAM_MANIFEST, parseOwnership, type ProgramOwnership } from "../shared/programManifest";

export type OutputFolderErrorCode = "OUTPUT_EXISTS" | "OUTPUT_FILES_CHANGED" | "OUTPUT_FORBIDDEN" | "OUTPUT_UNWRITABLE";

export class OutputFolderError extends Error {
  readonly output: OutputProblem;
  constructor(
    readonly code: OutputFolderErrorCode,
    message: string,
    output: OutputProblem,
  ) {
    super(message);
    this.name = "OutputFolderError";
    this.output = output;
  }
}

export function sha256(content: string | Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

const filesystemAdvice: Record<string, (where: string) => string> = {
  EACCES: (where) => `permission denied on ${where}. Choose a folder you can write to, or change its permissions`,
  EPERM: (where) => `the operating system does not allow changing ${where}. Choose a folder you can write to, or change its permissions`,
  EROFS: (where) => `${where} is on a read-only file system. Choose a folder on a writable disk`,
  ENOSPC: (where) => `the disk that holds ${where} is full. Free some space or choose a folder on another disk`,
  EDQUOT: (where) => `your disk quota on ${where} is used up. Free some space or choose a folder on another disk`,
  ENOTDIR: (where) => `${where} is a file, not a folder. Choose another path`,
  EISDIR: (where) => `${where} is a folder where a file was expected. Choose another path`,
  EBUSY: (where) => `${where} is in use (a mount point, or open in another program). Close what uses it or choose another folder`,
  EEXIST: (where) => `${where} appeared while GPIoT was writing. Try again, or choose another folder`,
  ENOTEMPTY: (where) => `${where} appeared while GPIoT was writing. Try again, or choose another folder`,
  ENOENT: (where) => `a folder on the way to ${where} disappeared while GPIoT was writing. Try again`,
  ENAMETOOLONG: () => "the path is too long. Choose a shorter path",
  ELOOP: (where) => `too many symbolic links on the way to ${where}. Choose another path`,
  EMFILE: () => "too many files are open. Close some programs and try again",
  ENFILE: () => "too many files are open on this machine. Close some programs and try again",
  EIO: (where) => `the disk that holds ${where} reported an input/output error. Check the disk, then try again`,
  EXDEV: (where) => `${where} is on another disk than its parent folder. Choose another folder`,
};

/**
 * One line that names the user's path and what to do, for any filesystem error met while checking
 * or writing it: never a stack trace, never the hidden staging folders GPIoT writes through.
 */
export function filesystemProblem(error: unknown, userPath: string, where: string = userPath): OutputFolderError {
  if (error instanceof OutputFolderError) return error;
  const code = errnoOf(error);
  const advice = code && filesystemAdvice[code] ? filesystemAdvice[code](where) : `${code ?? (error as Error)?.message ?? "an unknown error"} on ${where}. Choose another folder or try again`;
  return new OutputFolderError("OUTPUT_UNWRITABLE", `Cannot write the program to ${userPath}: ${advice}.`, { outDir: userPath });
}

/** The folder itself when it exists, else its nearest existing ancestor, with symbolic links resolved. */
function realLocation(target: string): { real: string; existing: string; exists: boolean } {
  let existing = target;
  const rest: string[] = [];
  for (;;) {
    try {
      const real = realpathSync(existing);
      return { real: path.join(real, ...rest.reverse()), existing: real, exists: rest.length === 0 };
    } catch (error) {
      const code = errnoOf(error);
      if (code !== "ENOENT") {
        // ENOTDIR: an ancestor is a file. Name the file the user wrote, not what is beyond it.
        if (code === "ENOTDIR") throw filesystemProblem(error, target, nearestFile(target));
        throw filesystemProblem(error, target);
      }
      const parent = path.dirname(existing);
      if (parent === existing) throw filesystemProblem(error, target);
      rest.push(path.basename(existing));
      existing = parent;
    }
  }
}

function nearestFile(target: string): string {
  let candidate = target;
  for (;;) {
    try {
      if (!statSync(candidate).isDirectory()) return candidate;
    } catch {
      // keep going up
    }
    const parent = path.dirname(candidate);
    if (parent === candidate) return target;
    candidate = parent;
  }
}

function realOrSelf(folder: string): string {
  try {
    return realpathSync(folder);
  } catch {
    return path.resolve(folder);
  }
}

/** Why GPIoT must never write into this folder, or null. */
export function forbiddenReason(realTarget: string, cwd: string = process.cwd()): string | null {
  if (path.parse(realTarget).root === realTarget) return "it is the root of the file system";
  if (realTarget === realOrSelf(os.homedir())) return "it is your home folder";
  if (realTarget === realOrSelf(cwd)) return "it is the current folder";
  if (existsSync(path.join(realTarget, ".git"))) return "it is the root of a repository (it holds .git)";
  return null;
}

function assertWritable(folder: string, userPath: string): void {
  try {
    accessSync(folder, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw filesystemProblem(error, userPath, folder);
  }
}

export interface OutputPlan {
  /** The folder as the caller named it, resolved. */
  target: string;
  /** The same folder with symbolic links resolved: where the files go. */
  realTarget: string;
  /** The folder exists (empty, or a GPIoT folder that may be replaced). */
  exists: boolean;
  /** Entries the user added: moved into the new folder unchanged. */
  keep: string[];
  /** Entries GPIoT wrote (or, with overwrite "all", entries it may replace): removed with the old folder. */
  remove: string[];
}

export interface OutputCheck {
  overwrite: OverwriteMode;
  /** The id of the program about to be written: its own folder may be replaced without asking. */
  programId?: string;
  /** The paths the new program writes, when known: an added file of the user's at one of them is a conflict. */
  newPaths?: string[];
  cwd?: string;
}

function fileMatches(file: string, expected: string): boolean {
  try {
    const info = lstatSync(file);
    return info.isFile() && sha256(readFileSync(file)) === expected;
  } catch {
    return false;
  }
}

/** Every file under `dir`, "/"-separated relative to `base`; null when something other than files and folders is inside. */
function listFiles(dir: string, base: string): string[] | null {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const relative = `${base}/${entry.name}`;
    if (entry.isDirectory()) {
      const nested = listFiles(path.join(dir, entry.name), relative);
      if (!nested) return null;
      files.push(...nested);
    } else if (entry.isFile()) files.push(relative);
    else return null;
  }
  return files;
}

type EntryKind = { kind: "own" } | { kind: "changed"; paths: string[] } | { kind: "user" } | { kind: "mixed" };

/** Whether a top-level entry is GPIoT's as written, GPIoT's but changed by the user, or the user's. */
function classifyEntry(folder: string, name: string, owned: Map<string, string>): EntryKind {
  const nested = [...owned.keys()].filter((file) => file.startsWith(`${name}/`));
  if (!owned.has(name) && nested.length === 0) return { kind: "user" };
  const full = path.join(folder, name);
  const info = lstatSync(full);
  if (owned.has(name)) return fileMatches(full, owned.get(name)!) ? { kind: "own" } : { kind: "changed", paths: [name] };
  if (!info.isDirectory()) return { kind: "changed", paths: [name] };
  const present = listFiles(full, name);
  // A folder of GPIoT's that now also holds the user's files is neither GPIoT's to delete nor the user's to move.
  if (!present || present.some((file) => !owned.has(file))) return { kind: "mixed" };
  const differing = present.filter((file) => !fileMatches(path.join(folder, ...file.split("/")), owned.get(file)!));
  return differing.length ? { kind: "changed", paths: differing } : { kind: "own" };
}

function describeFiles(files: string[]): string {
  const shown = files.slice(0, 5).join(", ");
  return files.length > 5 ? `${shown} and ${files.length - 5} more` : shown;
}

/**
 * Decides how the program may be written to `outDir`, or throws the OutputFolderError that says
 * why not (and, in `output.allowWith`, which answer of the user would allow it).
 */
export function planOutputFolder(outDir: string, check: OutputCheck): OutputPlan {
  const target = path.resolve(outDir);
  if (outDir.includes("\0")) throw new OutputFolderError("OUTPUT_UNWRITABLE", `The output folder "${outDir.replace(/\0/g, "\\0")}" contains a NUL character; choose a normal path.`, { outDir: target });
  const location = realLocation(target);
  const forbidden = forbiddenReason(location.real, check.cwd);
  if (forbidden)
    throw new OutputFolderError(
      "OUTPUT_FORBIDDEN",
      `GPIoT never writes a program into ${target}: ${forbidden}. Choose a new folder inside it, e.g. ${path.join(target, "gpiot-program")}.`,
      { outDir: target },
    );
  if (!location.exists) {
    if (!statSync(location.existing).isDirectory()) throw filesystemProblem(Object.assign(new Error("not a folder"), { code: "ENOTDIR" }), target, location.existing);
    assertWritable(location.existing, target);
    return { target, realTarget: location.real, exists: false, keep: [], remove: [] };
  }
  const real = location.real;
  if (!statSync(real).isDirectory())
    throw new OutputFolderError("OUTPUT_EXISTS", `${target} is a file, not a folder; choose a folder for the program.`, { outDir: target });
  let entries = readdirSync(real);
  assertWritable(path.dirname(real), target);
  if (entries.includes(WRITE_MARKER)) {
    let marker: WriteMarker | null;
    try {
      marker = parseWriteMarker(readFileSync(path.join(real, WRITE_MARKER), "utf8"));
    } catch {
      marker = null;
    }
    if (!marker || writerMayBeAlive(marker))
      throw new OutputFolderError("OUTPUT_EXISTS", `Another GPIoT process is writing ${target} right now; try again when it has finished, or choose another folder.`, { outDir: target });
    // A writer that died after putting this folder in place: the write cleans its marker up first.
    entries = entries.filter((name) => name !== WRITE_MARKER);
  }
  if (entries.length === 0) return { target, realTarget: real, exists: true, keep: [], remove: [] };

  let ownership: ProgramOwnership | null = null;
  try {
    if (lstatSync(path.join(real, PROGRAM_MANIFEST)).isFile()) ownership = parseOwnership(readFileSync(path.join(real, PROGRAM_MANIFEST), "utf8"));
  } catch {
    ownership = null;
  }
  if (!ownership)
    throw new OutputFolderError(
      "OUTPUT_EXISTS",
      `${target} already exists and is not empty, and GPIoT did not write it (it has no ${PROGRAM_MANIFEST} of a GPIoT program), so GPIoT will not replace it; choose a new or empty folder.`,
      { outDir: target },
    );
  const sameProgram = check.programId !== undefined && ownership.programId === check.programId;
  if (!sameProgram && check.overwrite === "never")
    throw new OutputFolderError(
      "OUTPUT_EXISTS",
      `${target} already exists and holds another program GPIoT wrote; allow overwriting (CLI: --overwrite) to replace GPIoT's files in it (files you added are kept), or choose another folder.`,
      { outDir: target, allowWith: "ownFiles" },
    );

  const owned = new Map(ownership.files.map((file) => [file.path, file.sha256]));
  const newTop = new Set((check.newPaths ?? []).map((file) => file.split("/")[0]));
  const keep: string[] = [];
  const remove: string[] = [];
  const changed: string[] = [];
  const blocking: string[] = [];
  for (const name of entries) {
    if (name === PROGRAM_MANIFEST) {
      remove.push(name);
      continue;
    }
    const entry = classifyEntry(real, name, owned);
    if (entry.kind === "mixed") blocking.push(name);
    else if (entry.kind === "own") remove.push(name);
    else if (entry.kind === "changed") {
      changed.push(...entry.paths);
      remove.push(name);
    } else if (newTop.has(name)) {
      // The user's own entry where the new program writes: a file may be replaced once the user agreed, a folder never.
      if (lstatSync(path.join(real, name)).isFile()) {
        changed.push(name);
        remove.push(name);
      } else blocking.push(name);
    } else keep.push(name);
  }
  if (blocking.length)
    throw new OutputFolderError(
      "OUTPUT_EXISTS",
      `${target} has folders that mix your files with GPIoT's, or that you made where the new program writes (${describeFiles(blocking)}); move your files out of them or choose another folder.`,
      { outDir: target },
    );
  if (changed.length && check.overwrite !== "all")
    throw new OutputFolderError(
      "OUTPUT_FILES_CHANGED",
      `You changed files GPIoT wrote in ${target} (${describeFiles(changed)}); replacing the program would replace them. Confirm (CLI: --overwrite --yes) to replace them, or choose another folder.`,
      { outDir: target, changedFiles: changed, allowWith: "all" },
    );
  return { target, realTarget: real, exists: true, keep, remove };
}
