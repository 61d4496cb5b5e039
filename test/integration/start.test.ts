/**
 * `npm start -- "<requirement>"`: the main job in one command, as the README's first screen shows
 * it. Without a downloaded model it runs on the tiny test model and says so, writes the program to
 * a new folder under ./gpiot-programs/ of the folder it was started from, and says where it went.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { repoRoot } from "../helpers/testModels";

const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-start-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function start(args: string[]) {
  // A models folder with nothing in it: the default profile is not downloaded.
  const env = { ...process.env, INIT_CWD: scratch, GPIOT_MODELS_DIR: path.join(scratch, "no-models") };
  return spawnSync(process.execPath, ["--import", "tsx", path.join(repoRoot, "scripts", "start.ts"), ...args], { cwd: repoRoot, env, encoding: "utf8", timeout: 240_000 });
}

test("npm start writes the program on the built-in default and says where it went", () => {
  const run = start(["Detect heartbeats in a single-lead ECG and report the heart rate", "--threads", "1"]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /tiny random-weight test model/, "it says which model ran and why");
  const folder = path.join(scratch, "gpiot-programs", "detect-heartbeats-single-lead-ecg");
  assert.match(run.stdout, new RegExp(`The program is in ${path.join("gpiot-programs", "detect-heartbeats-single-lead-ecg").replace(/[/\\]/g, "[/\\\\]")}`));
  assert.ok(existsSync(path.join(folder, "main.py")), readdirSync(scratch).join(", "));
  const again = start(["Detect heartbeats in a single-lead ECG and report the heart rate", "--threads", "1"]);
  assert.equal(again.status, 0, again.stderr);
  assert.ok(existsSync(path.join(`${folder}-2`, "main.py")), "a second run never overwrites the first program");
});

test("npm start without a requirement prints how to use it", () => {
  const run = start([]);
  assert.equal(run.status, 2);
  assert.match(run.stdout, /npm start -- "<requirement>"/);
});
