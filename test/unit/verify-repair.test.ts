/**
 * The verify-repair loop with a scripted code generator: the failing sub-task is found and
 * repaired with its error, rounds are bounded, every round is reported, and the best version
 * is kept.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ProgramSubTask } from "../../sidecar/src/protocol";
import { assembleProgram } from "../../sidecar/src/pipeline/assembleProgram";
import { verifyAndRepair, type RepairLoopHost, type VerifyLoopEvent } from "../../sidecar/src/verify/repairLoop";

const settings = { python: "python3", timeoutMs: 20_000, memoryMB: 4096 };

function subTask(id: string, name: string, inputs: string[], outputs: string[], code: string): ProgramSubTask {
  return {
    id,
    subTask: { name, problem: name, steps: [name] },
    spec: {
      target: `Write some code and documentation to ${name}`,
      inputs: inputs.map((input) => ({ name: input, type: "list of float", description: input })),
      outputs: outputs.map((output) => ({ name: output, type: "float", description: output })),
    },
    specMarkdown: null,
    artifact: { code, documentation: "doc", requirements: [] },
    syntax: { checked: true, ok: true },
    codeState: "done",
  };
}

/** A host whose code generator answers from a script per sub-task id. */
function host(subTasks: ProgramSubTask[], script: Record<string, string[]>) {
  const events: VerifyLoopEvent[] = [];
  const repairs: { id: string; previousCode: string; error: string }[] = [];
  const controller = new AbortController();
  const value: RepairLoopHost = {
    subTasks: () => subTasks,
    assemble: () =>
      assembleProgram({
        requirement: "Sum and scale a signal",
        limits: null,
        parts: subTasks.map((entry) => ({ subTask: entry.subTask, spec: entry.spec!, artifact: entry.artifact! })),
        generator: { profile: "test", createdAt: "2026-01-01T00:00:00Z" },
      }),
    async regenerate(id, repair) {
      repairs.push({ id, ...repair });
      const next = script[id]?.shift();
      if (next === undefined) throw new Error("the model produced no valid answer");
      const entry = subTasks.find((candidate) => candidate.id === id)!;
      entry.artifact = { ...entry.artifact!, code: next };
    },
    emit: (event) => events.push(event),
    signal: controller.signal,
  };
  return { value, events, repairs };
}

describe("verify and repair", () => {
  test("a runtime crash in sub-task 2 goes back with its traceback and the repaired program passes", async () => {
    const subTasks = [
      subTask("s1", "sum", ["signal"], ["total"], "def run(signal):\n    return {'total': sum(signal)}\n"),
      subTask("s2", "scale", ["total"], ["scaled"], "def run(total):\n    factor = {}['missing']\n    return {'scaled': total * factor}\n"),
    ];
    const { value, events, repairs } = host(subTasks, { s2: ["def run(total):\n    return {'scaled': total * 2}\n"] });
    const state = await verifyAndRepair(value, { execute: true, repairRounds: 3, settings });
    assert.equal(state.status, "passed");
    assert.equal(state.attempts.length, 2);
    assert.equal(state.bestRound, 1);
    assert.equal(state.attempts[0].report.failure?.kind, "runtime");
    assert.deepEqual(state.attempts[0].report.failure?.subTaskIndexes, [1]);
    assert.equal(repairs.length, 1);
    assert.equal(repairs[0].id, "s2");
    assert.match(repairs[0].previousCode, /missing/);
    assert.match(repairs[0].error, /KeyError/);
    assert.match(repairs[0].error, /task_02_scale\.py", line \d+/);
    assert.deepEqual(
      events.map((event) => `${event.type}:${event.round}`),
      ["verifyStarted:0", "verifyResult:0", "repairAttempt:1", "verifyStarted:1", "verifyResult:1"],
    );
    assert.deepEqual(state.attempts[1].repairs, [{ subTaskId: "s2", subTaskIndex: 1, generated: true }]);
  });

  test("a program that keeps failing gets exactly the set rounds, then keeps its best version", async () => {
    const subTasks = [subTask("s1", "sum", ["signal"], ["total"], "def run(signal):\n    return {'total': 1 / 0}\n")];
    // Round 1 makes it worse (does not compile), round 2 still crashes: round 0 or 2 (runtime) beat round 1 (static); ties keep the earlier.
    const { value, events } = host(subTasks, { s1: ["def run(signal:\n", "def run(signal):\n    raise ValueError('still wrong')\n"] });
    const state = await verifyAndRepair(value, { execute: true, repairRounds: 2, settings });
    assert.equal(state.status, "failed");
    assert.equal(state.attempts.length, 3, "round 0 and two repairs, no more");
    assert.deepEqual(state.attempts.map((attempt) => attempt.report.failure?.kind), ["runtime", "static", "runtime"]);
    assert.equal(state.bestRound, 0);
    assert.match(subTasks[0].artifact!.code, /1 \/ 0/, "the program holds the best version's code again");
    assert.equal(events.filter((event) => event.type === "repairAttempt").length, 2);
  });

  test("a failed generation keeps the previous code and counts as a round", async () => {
    const subTasks = [subTask("s1", "sum", ["signal"], ["total"], "def run(signal:\n")];
    const { value } = host(subTasks, { s1: [] });
    const state = await verifyAndRepair(value, { execute: false, repairRounds: 1, settings });
    assert.equal(state.attempts.length, 2);
    assert.equal(state.attempts[1].repairs[0].generated, false);
    assert.match(state.attempts[1].repairs[0].error ?? "", /no valid answer/);
    assert.equal(subTasks[0].artifact!.code, "def run(signal:\n");
    assert.equal(state.attempts[0].report.executed, false);
  });

  test("repairRounds 0 checks once", async () => {
    const subTasks = [subTask("s1", "sum", ["signal"], ["total"], "def run(signal:\n")];
    const { value, repairs } = host(subTasks, {});
    const state = await verifyAndRepair(value, { execute: true, repairRounds: 0, settings });
    assert.equal(state.attempts.length, 1);
    assert.equal(repairs.length, 0);
  });
});
