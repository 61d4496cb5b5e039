import assert from "node:assert/strict";
import { test } from "node:test";
import { MochaFailureDigest } from "../vscode/mochaFailures";

test("the digest keeps mocha's failing section with short stacks and nothing before it", () => {
  const digest = new MochaFailureDigest();
  digest.add("  GPIoT activation\n    ✔ activates (120ms)\n");
  digest.add("  2 passing (3m)");
  digest.add("  1 failing");
  digest.add("");
  digest.add("  1) GPIoT cancel\n       cancels a job:\n     AssertionError: expected cancelled\n");
  for (let i = 0; i < 10; i++) digest.add(`      at frame${i} (file.js:${i}:1)`);
  digest.add("\n");
  const text = digest.text;
  assert.match(text, /^1 failing/);
  assert.match(text, /1\) GPIoT cancel\n\s+cancels a job:\n\s+AssertionError: expected cancelled/);
  assert.doesNotMatch(text, /activates|passing/);
  assert.equal(text.match(/ at frame/g)?.length, 3);
  assert.ok(!text.endsWith("\n"));
});

test("the digest is empty when nothing failed and bounded when much did", () => {
  const quiet = new MochaFailureDigest();
  quiet.add("  12 passing (2m)\n");
  assert.equal(quiet.text, "");
  const loud = new MochaFailureDigest();
  loud.add("  400 failing");
  for (let i = 0; i < 400; i++) loud.add(`  ${i + 1}) suite\n       test ${i}:\n     Error: boom`);
  assert.ok(loud.text.split("\n").length <= 151);
  assert.match(loud.text, /more lines in the log above\)$/);
});
