/**
 * Which folders a program may be written into, and what happens to what is already there:
 * only a folder GPIoT wrote is ever replaced, only GPIoT's unchanged files in it, the user's
 * files are kept, and the root, home, current folder and repository roots are never touched.
 * Filesystem problems come back as one line that names the user's path.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { assembleProgram, type ProgramFile, type ProgramPart } from "../../sidecar/src/pipeline/assembleProgram";
import { filesystemProblem } from "../../sidecar/src/pipeline/outputFolder";
import { checkOutputFolder, recoverInterruptedWrites, writeProgram } from "../../sidecar/src/pipeline/writeProgram";

const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-output-folder-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const part = (name: string, code: string): ProgramPart => ({
  subTask: { name, problem: "p", steps: ["s"] },
  spec: { target: "Write some code and documentation to do it", inputs: [], outputs: [{ name: "value", type: "int", description: "v" }] },
  artifact: { code, documentation: "Docs.", requirements: [] },
});

function program(names: string[], programId?: string): ProgramFile[] {
  return assembleProgram({
    requirement: "Count the steps in a wrist IMU stream",
    limits: null,
    parts: names.map((name) => part(name, `def run():\n    return {"value": ${JSON.stringify(name)}}\n`)),
    generator: { profile: "test", createdAt: "2026-01-01T00:00:00Z" },
    ...(programId ? { programId } : {}),
  });
}

function folder(name: string): string {
  const dir = path.join(scratch, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function codeOf(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

function hiddenLeftovers(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.includes(".gpiot-"));
}

describe("a folder GPIoT did not write", () => {
  test("is never replaced, whatever the overwrite answer", async () => {
    const out = folder("users-project");
    writeFileSync(path.join(out, "mine.py"), "print('mine')\n");
    for (const overwrite of ["never", "ownFiles", "all"] as const) {
      await assert.rejects(writeProgram(out, program(["Load", "Count"]), { overwrite }), (error: unknown) => {
        assert.equal(codeOf(error), "OUTPUT_EXISTS");
        assert.match((error as Error).message, /GPIoT did not write it/);
        assert.equal((error as { output?: { allowWith?: string } }).output?.allowWith, undefined, "no answer makes it replaceable");
        return true;
      });
    }
    assert.deepEqual(readdirSync(out), ["mine.py"]);
    assert.equal(readFileSync(path.join(out, "mine.py"), "utf8"), "print('mine')\n");
    assert.deepEqual(hiddenLeftovers(scratch), []);
  });

  test("a gpiot.json that is not a GPIoT manifest does not make a folder GPIoT's", async () => {
    const out = folder("fake-manifest");
    writeFileSync(path.join(out, "gpiot.json"), '{"requirement": "x"}');
    writeFileSync(path.join(out, "main.py"), "print('mine')\n");
    await assert.rejects(writeProgram(out, program(["Load", "Count"]), { overwrite: "all" }), (error: unknown) => codeOf(error) === "OUTPUT_EXISTS");
    assert.equal(readFileSync(path.join(out, "main.py"), "utf8"), "print('mine')\n");
  });
});

describe("forbidden folders", () => {
  test("the filesystem root, the home folder, the current folder and a repository root are refused, whatever the answer", async (t) => {
    const home = folder("home");
    writeFileSync(path.join(home, ".profile"), "keep");
    const current = folder("current");
    writeFileSync(path.join(current, "work.txt"), "keep");
    const repository = folder("repository");
    mkdirSync(path.join(repository, ".git"));
    writeFileSync(path.join(repository, "src.c"), "keep");
    const savedHome = process.env.HOME;
    const savedCwd = process.cwd();
    process.env.HOME = home;
    process.chdir(current);
    t.after(() => {
      process.env.HOME = savedHome;
      process.chdir(savedCwd);
    });
    for (const [outDir, reason] of [
      [path.parse(scratch).root, /root of the file system/],
      [home, /home folder/],
      [".", /current folder/],
      [current, /current folder/],
      [repository, /root of a repository/],
    ] as const) {
      await assert.rejects(writeProgram(outDir, program(["Load", "Count"]), { overwrite: "all" }), (error: unknown) => {
        assert.equal(codeOf(error), "OUTPUT_FORBIDDEN", `${outDir}: ${(error as Error).message}`);
        assert.match((error as Error).message, reason);
        return true;
      });
    }
    assert.deepEqual(readdirSync(home), [".profile"]);
    assert.deepEqual(readdirSync(current), ["work.txt"]);
    assert.deepEqual(readdirSync(repository).sort(), [".git", "src.c"]);
    assert.deepEqual(hiddenLeftovers(scratch), []);
    // A new folder inside any of them is fine.
    await writeProgram(path.join(repository, "program"), program(["Load", "Count"]));
    assert.ok(readdirSync(path.join(repository, "program")).includes("main.py"));
  });
});

describe("a folder GPIoT wrote", () => {
  test("of another program: replaced only when allowed; GPIoT's old files go, the user's entries stay", async () => {
    const out = path.join(folder("replace-other"), "hb");
    await writeProgram(out, program(["Load", "Filter", "Count"]));
    writeFileSync(path.join(out, "notes.txt"), "my notes");
    mkdirSync(path.join(out, "data", "raw"), { recursive: true });
    writeFileSync(path.join(out, "data", "raw", "walk.csv"), "1,2,3\n");
    mkdirSync(path.join(out, ".venv", "bin"), { recursive: true });
    symlinkSync("/usr/bin/python3", path.join(out, ".venv", "bin", "python"));

    const next = program(["Load", "Count"]);
    await assert.rejects(writeProgram(out, next), (error: unknown) => {
      assert.equal(codeOf(error), "OUTPUT_EXISTS");
      assert.equal((error as { output?: { allowWith?: string } }).output?.allowWith, "ownFiles");
      return true;
    });
    assert.ok(readdirSync(out).includes("task_02_filter.py"), "nothing changed while refused");

    await writeProgram(out, next, { overwrite: "ownFiles" });
    const entries = readdirSync(out).sort();
    assert.deepEqual(entries, [".venv", "README.md", "data", "gpiot.json", "main.py", "notes.txt", "requirements.txt", "task_01_load.py", "task_02_count.py"]);
    assert.equal(readFileSync(path.join(out, "notes.txt"), "utf8"), "my notes");
    assert.equal(readFileSync(path.join(out, "data", "raw", "walk.csv"), "utf8"), "1,2,3\n");
    assert.equal(readdirSync(path.join(out, ".venv", "bin")).length, 1);
    assert.equal(readFileSync(path.join(out, "task_02_count.py"), "utf8"), next.find((file) => file.path === "task_02_count.py")!.content);
    assert.deepEqual(hiddenLeftovers(path.dirname(out)), []);
    assert.ok(!readdirSync(out).includes(".gpiot-write.json"));
  });

  test("of the same program (Assemble Again): rewritten without asking", async () => {
    const out = path.join(folder("same-program"), "hb");
    await writeProgram(out, program(["Load", "Count"], "program-1"));
    writeFileSync(path.join(out, "notes.txt"), "mine");
    const again = program(["Load", "Count", "Report"], "program-1");
    await writeProgram(out, again);
    assert.ok(readdirSync(out).includes("task_03_report.py"));
    assert.equal(readFileSync(path.join(out, "notes.txt"), "utf8"), "mine");
  });

  test("with files the user changed: the user is asked (OUTPUT_FILES_CHANGED), and only 'all' replaces them", async () => {
    const out = path.join(folder("changed"), "hb");
    await writeProgram(out, program(["Load", "Count"], "program-2"));
    writeFileSync(path.join(out, "main.py"), "# my edits\n");
    writeFileSync(path.join(out, "notes.txt"), "mine");
    const again = program(["Load", "Count"], "program-2");
    for (const overwrite of ["never", "ownFiles"] as const) {
      await assert.rejects(writeProgram(out, again, { overwrite }), (error: unknown) => {
        assert.equal(codeOf(error), "OUTPUT_FILES_CHANGED");
        const output = (error as { output?: { changedFiles?: string[]; allowWith?: string } }).output;
        assert.deepEqual(output?.changedFiles, ["main.py"]);
        assert.equal(output?.allowWith, "all");
        return true;
      });
    }
    assert.equal(readFileSync(path.join(out, "main.py"), "utf8"), "# my edits\n", "nothing replaced without the answer");
    await writeProgram(out, again, { overwrite: "all" });
    assert.equal(readFileSync(path.join(out, "main.py"), "utf8"), again.find((file) => file.path === "main.py")!.content);
    assert.equal(readFileSync(path.join(out, "notes.txt"), "utf8"), "mine", "added files are kept even then");
  });

  test("a file the user added where the new program writes one is a change to confirm", async () => {
    const out = path.join(folder("collision"), "hb");
    await writeProgram(out, program(["Load", "Count"], "program-3"));
    writeFileSync(path.join(out, "task_03_report.py"), "# mine\n");
    await assert.rejects(writeProgram(out, program(["Load", "Count", "Report"], "program-3")), (error: unknown) => {
      assert.equal(codeOf(error), "OUTPUT_FILES_CHANGED");
      assert.deepEqual((error as { output?: { changedFiles?: string[] } }).output?.changedFiles, ["task_03_report.py"]);
      return true;
    });
    assert.equal(readFileSync(path.join(out, "task_03_report.py"), "utf8"), "# mine\n");
  });

  test("through a symbolic link: the linked folder is rewritten, the link stays", async () => {
    const base = folder("linked");
    const real = path.join(base, "real");
    await writeProgram(real, program(["Load", "Count"], "program-4"));
    symlinkSync(real, path.join(base, "link"));
    await writeProgram(path.join(base, "link"), program(["Load", "Count", "Report"], "program-4"));
    assert.ok(readdirSync(real).includes("task_03_report.py"));
    assert.ok(readdirSync(path.join(base, "link")).includes("task_03_report.py"));
    assert.deepEqual(hiddenLeftovers(base), []);
  });
});

describe("filesystem problems", () => {
  test("a file where a folder on the way should be: one line naming the user's path", async () => {
    const base = folder("blocked");
    writeFileSync(path.join(base, "file"), "x");
    for (const outDir of [path.join(base, "file"), path.join(base, "file", "program")]) {
      await assert.rejects(writeProgram(outDir, program(["Load", "Count"])), (error: unknown) => {
        const message = (error as Error).message;
        assert.ok(["OUTPUT_EXISTS", "OUTPUT_UNWRITABLE"].includes(codeOf(error)!), message);
        assert.ok(message.includes(outDir), message);
        assert.match(message, /is a file/);
        assert.doesNotMatch(message, /gpiot-partial|gpiot-previous|\n|    at /);
        return true;
      });
    }
    assert.deepEqual(readdirSync(base), ["file"]);
  });

  test("every errno becomes one line with the path and what to do", () => {
    for (const code of ["EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR", "EBUSY", "EEXIST", "ENOTEMPTY", "EIO", "EMFILE", "ENAMETOOLONG", "ESOMETHINGNEW"]) {
      const raw = Object.assign(new Error(`${code}: failed, rename '/x/.hb.gpiot-partial-12345678' -> '/x/hb'`), { code });
      const problem = filesystemProblem(raw, "/x/hb");
      assert.equal(problem.code, "OUTPUT_UNWRITABLE");
      assert.match(problem.message, /^Cannot write the program to \/x\/hb: .+\.$/);
      assert.doesNotMatch(problem.message, /gpiot-partial|\n/);
      if (code !== "ESOMETHINGNEW") assert.match(problem.message, /Choose|Free|Try|Close|Check/, `${code}: ${problem.message}`);
    }
  });
});

describe("interrupted writes are finished or undone by the next write into the same folder", () => {
  /** A pid whose process has exited (and was reaped): what a SIGKILLed writer leaves behind. */
  const deadPid = spawnSync(process.execPath, ["-e", ""]).pid!;

  function marker(fields: { suffix: string; files: string[]; keep: string[]; remove: string[]; pid?: number }): string {
    return JSON.stringify({ writer: "gpiot", pid: fields.pid ?? deadPid, startToken: "linux:1", host: os.hostname(), target: "hb", ...fields });
  }

  test("killed between moving the old folder aside and renaming the new one into place: the old folder comes back whole", async () => {
    const parent = folder("killed-between-renames");
    const old = program(["Load", "Count"], "old-program");
    await writeProgram(path.join(parent, "hb"), old);
    writeFileSync(path.join(parent, "hb", "notes.txt"), "mine");
    const next = program(["Load", "Filter", "Count"], "new-program");
    const staging = path.join(parent, ".hb.gpiot-partial-deadbeef");
    const previous = path.join(parent, ".hb.gpiot-previous-deadbeef");
    mkdirSync(staging);
    for (const file of next) writeFileSync(path.join(staging, file.path), file.content);
    writeFileSync(path.join(staging, ".gpiot-write.json"), marker({ suffix: "deadbeef", files: next.map((file) => file.path), keep: ["notes.txt"], remove: old.map((file) => file.path) }));
    renameSync(path.join(parent, "hb"), previous);
    renameSync(path.join(previous, "notes.txt"), path.join(staging, "notes.txt"));

    const notes = await recoverInterruptedWrites(parent);
    assert.ok(notes.some((note) => /restored .*hb/.test(note)), notes.join("; "));
    assert.deepEqual(readdirSync(parent), ["hb"]);
    assert.deepEqual(readdirSync(path.join(parent, "hb")).sort(), [...old.map((file) => file.path), "notes.txt"].sort());
    assert.equal(readFileSync(path.join(parent, "hb", "notes.txt"), "utf8"), "mine");
    assert.equal(readFileSync(path.join(parent, "hb", "gpiot.json"), "utf8"), old.at(-1)!.content);
  });

  test("killed after the new folder was in place: the old GPIoT files are deleted, the user's entries join the new folder", async () => {
    const parent = folder("killed-after-rename");
    const old = program(["Load", "Count"], "old-program");
    const next = program(["Load", "Filter", "Count"], "new-program");
    const previous = path.join(parent, ".hb.gpiot-previous-cafef00d");
    mkdirSync(previous);
    for (const file of old) writeFileSync(path.join(previous, file.path), file.content);
    writeFileSync(path.join(previous, "late.txt"), "added while GPIoT wrote");
    const target = path.join(parent, "hb");
    mkdirSync(target);
    for (const file of next) writeFileSync(path.join(target, file.path), file.content);
    writeFileSync(path.join(target, "notes.txt"), "mine");
    writeFileSync(path.join(target, ".gpiot-write.json"), marker({ suffix: "cafef00d", files: next.map((file) => file.path), keep: ["notes.txt"], remove: old.map((file) => file.path) }));

    await recoverInterruptedWrites(parent);
    assert.deepEqual(readdirSync(parent), ["hb"]);
    assert.deepEqual(readdirSync(target).sort(), [...next.map((file) => file.path), "late.txt", "notes.txt"].sort());
  });

  test("killed just before removing its marker: the folder is not taken for one being written, and the marker goes", async () => {
    const parent = folder("killed-before-marker");
    const target = path.join(parent, "hb");
    await writeProgram(target, program(["Load", "Count"], "program-5"));
    writeFileSync(path.join(target, ".gpiot-write.json"), marker({ suffix: "0ddba11", files: [], keep: [], remove: [] }));
    assert.doesNotThrow(() => checkOutputFolder(target, "never", "program-5"));
    await writeProgram(target, program(["Load", "Count", "Report"], "program-5"));
    assert.ok(!readdirSync(target).includes(".gpiot-write.json"));
    assert.ok(readdirSync(target).includes("task_03_report.py"));
  });

  test("a live writer's folders, and folders without GPIoT's marker, are left alone", { skip: process.platform !== "linux" }, async () => {
    const parent = folder("left-alone");
    const live = path.join(parent, ".hb.gpiot-partial-0badf00d");
    mkdirSync(live);
    const ownToken = `linux:${readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ")[19]}`;
    writeFileSync(path.join(live, ".gpiot-write.json"), JSON.stringify({ writer: "gpiot", pid: process.pid, startToken: ownToken, host: os.hostname(), target: "hb", suffix: "0badf00d", files: [], keep: [], remove: [] }));
    const unmarked = path.join(parent, ".other.gpiot-previous-12345678");
    mkdirSync(unmarked);
    writeFileSync(path.join(unmarked, "precious.txt"), "not GPIoT's to judge");
    const empty = path.join(parent, ".third.gpiot-partial-87654321");
    mkdirSync(empty);

    await recoverInterruptedWrites(parent);
    assert.deepEqual(readdirSync(parent).sort(), [".hb.gpiot-partial-0badf00d", ".other.gpiot-previous-12345678"], "only the empty, unmarked staging folder went");
    assert.equal(readFileSync(path.join(unmarked, "precious.txt"), "utf8"), "not GPIoT's to judge");
  });
});
