import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "node:test";
import { cleanupPartialOutput, freshProgramFolder } from "../../../extension/src/outputFolders";

test("a fresh folder never reuses a non-empty one", async () => {
  const parent = mkdtempSync(path.join(os.tmpdir(), "gpiot-folders-"));
  try {
    assert.equal(await freshProgramFolder(parent, "ecg"), path.join(parent, "ecg"));
    mkdirSync(path.join(parent, "ecg"));
    assert.equal(await freshProgramFolder(parent, "ecg"), path.join(parent, "ecg"), "an empty folder can be used");
    writeFileSync(path.join(parent, "ecg", "main.py"), "");
    assert.equal(await freshProgramFolder(parent, "ecg"), path.join(parent, "ecg-2"));
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test("after an interrupted write: a moved-aside folder comes back with the user's files, unmarked folders stay", async () => {
  const parent = mkdtempSync(path.join(os.tmpdir(), "gpiot-folders-"));
  try {
    const target = path.join(parent, "prog");
    const deadPid = spawnSync(process.execPath, ["-e", ""]).pid!;
    const staging = path.join(parent, ".prog.gpiot-partial-abcd1234");
    const previous = path.join(parent, ".prog.gpiot-previous-abcd1234");
    mkdirSync(staging);
    writeFileSync(path.join(staging, "main.py"), "half");
    writeFileSync(path.join(staging, "notes.txt"), "the user's, moved in before the crash");
    const marker = { writer: "gpiot", pid: deadPid, startToken: "linux:1", host: os.hostname(), target: "prog", suffix: "abcd1234", files: ["main.py"], keep: ["notes.txt"], remove: ["main.py"] };
    writeFileSync(path.join(staging, ".gpiot-write.json"), JSON.stringify(marker));
    mkdirSync(previous);
    writeFileSync(path.join(previous, "main.py"), "old");
    mkdirSync(path.join(parent, ".other.gpiot-partial-ffffffff"));
    writeFileSync(path.join(parent, ".other.gpiot-partial-ffffffff", "data.csv"), "no marker: not provably GPIoT's");
    const touched = await cleanupPartialOutput(target);
    assert.ok(touched.length >= 1, touched.join("; "));
    assert.equal(existsSync(staging), false);
    assert.equal(existsSync(previous), false);
    assert.equal(readFileSync(path.join(target, "main.py"), "utf8"), "old", "the user's previous program is restored");
    assert.equal(readFileSync(path.join(target, "notes.txt"), "utf8"), "the user's, moved in before the crash");
    assert.equal(existsSync(path.join(parent, ".other.gpiot-partial-ffffffff", "data.csv")), true, "other folders are left alone");
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
