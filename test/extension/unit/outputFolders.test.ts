import assert from "node:assert/strict";
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

test("after an interrupted write: partial folders go, a moved-aside folder comes back", async () => {
  const parent = mkdtempSync(path.join(os.tmpdir(), "gpiot-folders-"));
  try {
    const target = path.join(parent, "prog");
    mkdirSync(path.join(parent, ".prog.gpiot-partial-abcd"));
    writeFileSync(path.join(parent, ".prog.gpiot-partial-abcd", "main.py"), "half");
    mkdirSync(path.join(parent, ".prog.gpiot-previous-abcd"));
    writeFileSync(path.join(parent, ".prog.gpiot-previous-abcd", "main.py"), "old");
    mkdirSync(path.join(parent, ".other.gpiot-partial-ffff"));
    const touched = await cleanupPartialOutput(target);
    assert.equal(touched.length, 2);
    assert.equal(existsSync(path.join(parent, ".prog.gpiot-partial-abcd")), false);
    assert.equal(readFileSync(path.join(target, "main.py"), "utf8"), "old", "the user's previous program is restored");
    assert.equal(existsSync(path.join(parent, ".other.gpiot-partial-ffff")), true, "other programs' folders are left alone");
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
