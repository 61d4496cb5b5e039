import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { repoRoot } from "../helpers/testModels";

const runner = path.join(repoRoot, "scripts", "run-test-parts.mjs");

test("every test part runs even after one fails; the summary names each and the exit code says a part failed", () => {
  const project = mkdtempSync(path.join(os.tmpdir(), "gpiot-test-parts-"));
  try {
    const touch = (name: string) => `node -e "require('fs').writeFileSync('${name}', '')"`;
    const scripts = { first: touch("first-ran"), broken: `${touch("broken-ran")} && exit 3`, last: touch("last-ran") };
    writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "parts", version: "1.0.0", scripts }));
    const run = spawnSync(process.execPath, [runner, "first", "broken", "last"], { cwd: project, encoding: "utf8" });
    assert.equal(run.status, 1, run.stderr);
    for (const part of ["first", "broken", "last"]) assert.ok(existsSync(path.join(project, `${part}-ran`)), `${part} ran`);
    const summary = run.stdout.slice(run.stdout.lastIndexOf("== test parts =="));
    assert.match(summary, /PASS first: passed after \d+ s/);
    assert.match(summary, /FAIL broken: FAILED \(exit 3\) after \d+ s/);
    assert.match(summary, /PASS last: passed/);

    const passing = spawnSync(process.execPath, [runner, "first", "last"], { cwd: project, encoding: "utf8" });
    assert.equal(passing.status, 0, passing.stdout + passing.stderr);
    assert.doesNotMatch(passing.stdout, /FAIL/);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});

test("without part names the runner says how to use it", () => {
  const run = spawnSync(process.execPath, [runner], { encoding: "utf8" });
  assert.equal(run.status, 2);
  assert.match(run.stderr, /usage: node scripts\/run-test-parts\.mjs SCRIPT/);
});
