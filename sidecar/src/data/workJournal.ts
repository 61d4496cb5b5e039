/**
 * Resumable runs and whole output files.
 *
 * A long run appends each finished unit of work (one paper module, one documented function) as
 * one JSON line to a journal in a work folder next to the output, and syncs it to disk. A run
 * that was interrupted, even by SIGKILL in the middle of a write, finds the finished units there
 * and does only the rest: a torn last line is cut off. The output itself is written to a
 * temporary file in the same folder and renamed into place, so it is either absent or complete.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeSync } from "node:fs";
import path from "node:path";
import { DataError } from "./errors";
import { processAlive } from "../shared/processAlive";

export interface JournalEntry<T> {
  unit: string;
  value: T;
}

/** Writes `content` to `file` all at once: a temporary sibling is written, synced, then renamed. */
export function writeFileAtomic(file: string, content: string | Buffer): void {
  const dir = path.dirname(path.resolve(file));
  mkdirSync(dir, { recursive: true });
  const temporary = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  const fd = openSync(temporary, "w");
  try {
    const buffer = typeof content === "string" ? Buffer.from(content, "utf8") : content;
    let offset = 0;
    while (offset < buffer.length) offset += writeSync(fd, buffer, offset, buffer.length - offset);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/** The work folder of a run writing `outFile`. */
export function workDirFor(outFile: string): string {
  return path.join(path.dirname(path.resolve(outFile)), `.${path.basename(outFile)}.gpiot-work`);
}

export class WorkJournal<T> {
  private readonly journalPath: string;
  private readonly done = new Map<string, T>();
  private fd: number | null = null;

  private constructor(
    readonly dir: string,
    /** Units finished by an earlier run, in the order they finished. */
    readonly resumedUnits: number,
  ) {
    this.journalPath = path.join(dir, "units.jsonl");
  }

  /**
   * Opens the journal of `outFile`'s run. `fingerprint` describes everything that decides the
   * results (command, inputs, options): a journal left by a run with another fingerprint is
   * refused unless `restart`, which throws it away.
   */
  static open<T>(outFile: string, fingerprint: unknown, options: { restart?: boolean } = {}): WorkJournal<T> {
    const dir = workDirFor(outFile);
    const fingerprintPath = path.join(dir, "run.json");
    const wanted = JSON.stringify(fingerprint);
    if (existsSync(dir)) {
      let previous: string | null;
      try {
        previous = JSON.stringify(JSON.parse(readFileSync(fingerprintPath, "utf8")));
      } catch {
        previous = null;
      }
      if (options.restart || previous === null) rmSync(dir, { recursive: true, force: true });
      else if (previous !== wanted)
        throw new DataError(
          "RESUME_CONFLICT",
          `An unfinished run with other inputs or options left ${dir}. Run the same command again to resume it, or add --restart to discard its work.`,
          dir,
        );
    }
    mkdirSync(dir, { recursive: true });
    if (!existsSync(fingerprintPath)) writeFileAtomic(fingerprintPath, `${wanted}\n`);
    const journalPath = path.join(dir, "units.jsonl");
    const entries = readJournal<T>(journalPath);
    const journal = new WorkJournal<T>(dir, entries.length);
    for (const entry of entries) if (!journal.done.has(entry.unit)) journal.done.set(entry.unit, entry.value);
    return journal;
  }

  has(unit: string): boolean {
    return this.done.has(unit);
  }

  get(unit: string): T | undefined {
    return this.done.get(unit);
  }

  /** Every finished unit's value, in the order the units finished. */
  values(): T[] {
    return [...this.done.values()];
  }

  get size(): number {
    return this.done.size;
  }

  /** Records a finished unit durably (one line, synced) before the run moves on. */
  add(unit: string, value: T): void {
    if (this.done.has(unit)) return;
    this.fd ??= openSync(this.journalPath, "a");
    const line = Buffer.from(`${JSON.stringify({ unit, value })}\n`, "utf8");
    let offset = 0;
    while (offset < line.length) offset += writeSync(this.fd, line, offset, line.length - offset);
    fsyncSync(this.fd);
    this.done.set(unit, value);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** The run is complete and its output written: the work folder goes. */
  remove(): void {
    this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Reads the finished units; a torn last line (a write cut short) is cut off the file. */
function readJournal<T>(journalPath: string): JournalEntry<T>[] {
  if (!existsSync(journalPath)) return [];
  const buffer = readFileSync(journalPath);
  const entries: JournalEntry<T>[] = [];
  let start = 0;
  let goodEnd = 0;
  while (start < buffer.length) {
    const newline = buffer.indexOf(0x0a, start);
    if (newline < 0) break;
    try {
      const entry = JSON.parse(buffer.subarray(start, newline).toString("utf8")) as JournalEntry<T>;
      if (typeof entry.unit !== "string") break;
      entries.push(entry);
    } catch {
      break;
    }
    goodEnd = newline + 1;
    start = newline + 1;
  }
  if (goodEnd < statSync(journalPath).size) truncateSync(journalPath, goodEnd);
  return entries;
}

/** Removes temporary files that earlier, killed writes of `file` left behind. */
export function removeStaleTemporaries(file: string): void {
  const dir = path.dirname(path.resolve(file));
  const prefix = `.${path.basename(file)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.startsWith(prefix));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.slice(prefix.length).split("-")[0]);
    if (Number.isInteger(pid) && pid !== process.pid && processAlive(pid)) continue;
    rmSync(path.join(dir, name), { force: true });
  }
}

