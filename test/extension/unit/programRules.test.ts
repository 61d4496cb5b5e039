/**
 * The task tree's rules as plain functions: when a program can be assembled and what is missing
 * (in words, never internal ids), when its files are out of date, what "Clear Finished" removes,
 * and how engine messages read without ids.
 */
import assert from "node:assert/strict";
import test from "node:test";
import { assemblyReadiness, filesOutOfDate, fingerprint, humanizeEngineMessage, isFinished, type RuleProgram, type RuleSubTask } from "../../../extension/src/programRules";

const spec = { target: "t", inputs: [], outputs: [{ name: "o", type: "int", description: "d" }] };
const artifact = { code: "x = 1", documentation: "d", requirements: [] };

function subTask(id: string, name: string, extra: Partial<RuleSubTask> = {}): RuleSubTask {
  return { id, subTask: { name, problem: "p", steps: ["s"] }, spec, artifact, codeState: "done", ...extra };
}

function program(subTasks: RuleSubTask[], extra: Partial<RuleProgram> = {}): RuleProgram {
  return { programId: "p4", subTasks, busy: false, phase: "done", files: [], lost: false, ...extra };
}

test("a program with every spec and code up to date can be assembled (a syntax error still assembles)", () => {
  const readiness = assemblyReadiness(program([subTask("p4-st1", "Load"), subTask("p4-st2", "Filter", { codeState: "syntaxError" })]));
  assert.equal(readiness.ready, true);
  assert.equal(readiness.reason, "");
});

test("otherwise it says what is missing, in words, with numbers and names, never ids", () => {
  const readiness = assemblyReadiness(
    program([subTask("p4-st1", "Load"), subTask("p4-st2", "Filter the ECG", { specStale: true, codeState: "stale" }), subTask("p4-st3", "Report", { spec: null, artifact: null, codeState: "pending" })]),
  );
  assert.equal(readiness.ready, false);
  assert.equal(readiness.regenerable, true);
  assert.deepEqual(readiness.missing.map((part) => [part.index, part.what]), [[1, "specStale"], [2, "spec"]]);
  assert.equal(readiness.reason, "Not ready to assemble: Sub-task 2 “Filter the ECG” was edited: its spec and code are out of date; sub-task 3 “Report” has no spec yet.");
  assert.doesNotMatch(readiness.reason, /p\d+-st\d+/);
  assert.equal(assemblyReadiness(program([subTask("p4-st1", "Load", { codeState: "stale" })])).missing[0].what, "codeStale");
  assert.equal(assemblyReadiness(program([])).ready, false);
  assert.match(assemblyReadiness(program([subTask("p4-st1", "Load")], { lost: true })).reason, /Retry/);
});

test("written files are out of date exactly while the sub-tasks differ from what was written", () => {
  const entries = [subTask("p4-st1", "Load"), subTask("p4-st2", "Filter")];
  const written = program(entries, { files: ["/x/main.py"] });
  written.writtenFingerprint = fingerprint(written);
  assert.equal(filesOutOfDate(written), false);
  const renamed = structuredClone(written);
  renamed.subTasks[1].subTask.name = "Band-pass filter";
  assert.equal(filesOutOfDate(renamed), true, "an edit makes them out of date");
  renamed.subTasks[1].subTask.name = "Filter";
  assert.equal(filesOutOfDate(renamed), false, "undoing the edit makes them current again");
  assert.equal(filesOutOfDate(program(entries)), false, "no files, nothing out of date");
});

test("Clear Finished takes done, failed, cancelled and lost programs, never busy or waiting ones", () => {
  const one = [subTask("p4-st1", "Load")];
  assert.deepEqual(
    ["done", "failed", "cancelled", "ready", "awaitingReview", "coding"].map((phase) => isFinished(program(one, { phase, busy: phase === "coding" }))),
    [true, true, true, false, false, false],
  );
  assert.equal(isFinished(program(one, { phase: "ready", lost: true })), true);
  assert.equal(isFinished(program(one, { phase: "done", busy: true })), false);
});

test("engine messages name sub-tasks by number and name", () => {
  const known = { programId: "p4", subTasks: [subTask("p4-st1", "Load"), subTask("p4-st12", "Filter")] };
  assert.equal(
    humanizeEngineMessage('Sub-task "Filter" (p4-st12) has no up-to-date spec and code yet; continue or regenerate it first.', known),
    "Sub-task 2 “Filter” has no up-to-date spec and code yet; continue or regenerate it first.",
  );
  assert.equal(humanizeEngineMessage("Program p4 has a queued or running job; wait for it or cancel it first.", known), "The program has a queued or running job; wait for it or cancel it first.");
  assert.equal(humanizeEngineMessage("Program p9: unknown sub-task id p9-st3"), "The program: unknown sub-task id a sub-task");
});
