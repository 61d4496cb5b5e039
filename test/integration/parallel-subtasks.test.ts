/**
 * Local parallel sub-tasks on real node-llama-cpp (tiny models, every role with its adapter): RT
 * targets and CG run on several sequences of one context at once, each sub-task streams into its
 * own place, and at temperature 0 the program is exactly the one the sequential order makes.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { SynthesisEngine } from "../../sidecar/src/engine/engine";
import type { JobEvent, ProgramSnapshot } from "../../sidecar/src/protocol";
import type { SubTask } from "../../sidecar/src/schemas";
import { setUpTestModels, type TestModelSetup } from "../helpers/testModels";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";
/** Real models decompose this into several steps; the tiny model always writes two, so the test edits the decomposition to five. */
const FIVE_SUB_TASKS: SubTask[] = ["Load the ECG record", "Band-pass filter the signal", "Detect R peaks", "Compute RR intervals", "Report the heart rate"].map((name) => ({
  name,
  problem: `${name} for a single-lead ECG`,
  steps: [name],
}));

let setup: TestModelSetup;
before(async () => {
  setup = await setUpTestModels();
});
after(() => rmSync(setup.dir, { recursive: true, force: true }));

function runJob(engine: SynthesisEngine, start: () => string): Promise<{ end: JobEvent; events: JobEvent[] }> {
  return new Promise((resolve) => {
    const events: JobEvent[] = [];
    let jobId = "";
    const stop = engine.onJobEvent((event) => {
      events.push(event);
      if (jobId && event.jobId === jobId && (event.type === "jobFinished" || event.type === "jobFailed")) {
        stop();
        resolve({ end: event, events: events.filter((each) => each.jobId === jobId) });
      }
    });
    jobId = start();
  });
}

/**
 * Decomposes, replaces the sub-tasks with five, then specs and code for all of them in one job, or
 * (`reviewSpecs`) the specs in one job and all the code in the next.
 */
async function fiveSubTaskProgram(engine: SynthesisEngine, reviewSpecs = false): Promise<{ program: ProgramSnapshot; events: JobEvent[] }> {
  const decomposed = await runJob(engine, () => engine.synthesize({ requirement: REQUIREMENT, review: "decomposition" }).jobId);
  assert.equal(decomposed.end.type, "jobFinished", JSON.stringify(decomposed.end));
  const programId = decomposed.end.programId;
  engine.updateSubTasks({ programId, subTasks: FIVE_SUB_TASKS.map((subTask) => ({ subTask })) });
  if (reviewSpecs) {
    const specs = await runJob(engine, () => engine.continue({ programId, review: "specs" }).jobId);
    assert.equal(specs.end.type === "jobFinished" && specs.end.awaitingReview, "specs", JSON.stringify(specs.end));
    assert.equal(specs.events.filter((event) => event.type === "codeDelta").length, 0, "no code before the specs are reviewed");
  }
  const rest = await runJob(engine, () => engine.continue({ programId }).jobId);
  assert.equal(rest.end.type, "jobFinished", JSON.stringify(rest.end));
  return { program: engine.getProgram(programId), events: rest.events };
}

/** The most sub-tasks that had started a stage and not finished it (RT: target started, spec not ready yet). */
function mostAtOnce(events: JobEvent[], stage: "rt" | "cg"): number {
  let running = 0;
  let most = 0;
  for (const event of events) {
    if (event.type === "stageStarted" && event.stage === stage) most = Math.max(most, ++running);
    if ((stage === "cg" ? event.type === "codeReady" : event.type === "specReady") || (event.type === "stageFailed" && event.stage === stage)) running -= 1;
  }
  return most;
}

function generated(program: ProgramSnapshot) {
  return program.subTasks.map((entry) => ({ subTask: entry.subTask, spec: entry.spec, artifact: entry.artifact, syntax: entry.syntax, codeState: entry.codeState }));
}

describe("parallel sub-tasks on the local models", () => {
  test("five sub-tasks: identical program to the sequential run at temperature 0, with CG and RT overlapping", async () => {
    const sequential = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny-all-adapters", threads: 1, parallelSubTasks: 1 });
    const parallel = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny-all-adapters", threads: 1, parallelSubTasks: 4 });
    try {
      const parallelInfo = await parallel.loadModels();
      assert.equal(parallelInfo.roles.cg.sequences, 4, "CG has a sequence per parallel sub-task");
      assert.equal(parallelInfo.roles.rt.sequences, 4, "RT has a sequence per parallel sub-task");
      assert.equal(parallelInfo.roles.td.sequences, 1);
      assert.equal(parallelInfo.parallelSubTasks, 4);
      assert.match(parallelInfo.fit?.summary ?? "", /RT and CG each have 4 sequences/);
      assert.equal((await sequential.loadModels()).roles.cg.sequences, 1);

      const one = await fiveSubTaskProgram(sequential);
      const many = await fiveSubTaskProgram(parallel);
      assert.equal(one.program.subTasks.length, 5);
      assert.deepEqual(generated(many.program), generated(one.program), "the same specs, code and checks");

      // Sequential: every spec before any code. Parallel: code starts while later specs are still being written.
      const order = (events: JobEvent[]) => events.filter((event) => event.type === "specReady" || event.type === "codeReady").map((event) => event.type);
      const firstCode = (events: JobEvent[]) => order(events).indexOf("codeReady");
      assert.equal(firstCode(one.events), 5, "sequential writes all five specs first");
      assert.ok(firstCode(many.events) < 5, `parallel starts code before the last spec: ${order(many.events).join(", ")}`);
      assert.ok(mostAtOnce(many.events, "rt") >= 4, "the RT targets of four sub-tasks start at once");
      assert.equal(mostAtOnce(one.events, "rt"), 1);

      // With every spec written (after a review), all the code is generated at once, bounded by the setting.
      const oneReviewed = await fiveSubTaskProgram(sequential, true);
      const manyReviewed = await fiveSubTaskProgram(parallel, true);
      assert.deepEqual(generated(manyReviewed.program), generated(oneReviewed.program));
      assert.equal(mostAtOnce(manyReviewed.events, "cg"), 4, "four CG generations at once");
      assert.equal(mostAtOnce(oneReviewed.events, "cg"), 1);

      // Each sub-task's stream is its own: its code deltas add up to its code.
      for (const entry of many.program.subTasks) {
        const streamed = many.events.filter((event) => event.type === "codeDelta" && event.subTaskId === entry.id).map((event) => (event as { text: string }).text).join("");
        assert.equal(streamed, entry.artifact!.code, `the code stream of ${entry.id}`);
      }
    } finally {
      await sequential.dispose();
      await parallel.dispose();
    }
  });

  test("the whole synthesis from one requirement is identical too, and a cancel mid-way stops every sub-task", async () => {
    const sequential = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny", threads: 1, parallelSubTasks: 1 });
    const parallel = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny", threads: 1 });
    try {
      const a = await runJob(sequential, () => sequential.synthesize({ requirement: REQUIREMENT }).jobId);
      const b = await runJob(parallel, () => parallel.synthesize({ requirement: REQUIREMENT }).jobId);
      assert.equal(b.end.type, "jobFinished");
      assert.deepEqual(generated(parallel.getProgram(b.end.programId)), generated(sequential.getProgram(a.end.programId)));

      // Cancel as soon as the first code streams: the job ends cancelled, nothing keeps generating.
      const events: JobEvent[] = [];
      let jobId = "";
      const ended = new Promise<JobEvent>((resolve) => {
        parallel.onJobEvent((event) => {
          if (event.jobId !== jobId) return;
          events.push(event);
          if (event.type === "codeDelta" && !events.some((each) => each.type === "jobFailed")) parallel.cancel(jobId);
          if (event.type === "jobFinished" || event.type === "jobFailed") resolve(event);
        });
      });
      jobId = parallel.synthesize({ requirement: REQUIREMENT }).jobId;
      const end = await ended;
      assert.equal(end.type === "jobFailed" && end.cancelled, true, JSON.stringify(end));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const afterEnd = events.slice(events.indexOf(end) + 1);
      assert.deepEqual(afterEnd, [], "no event after the job's end");
      assert.equal(events.filter((event) => event.type === "stageFailed").length, 0, "a cancel is not a failure");
      // The engine keeps serving.
      const next = await runJob(parallel, () => parallel.synthesize({ requirement: REQUIREMENT }).jobId);
      assert.equal(next.end.type, "jobFinished");
    } finally {
      await sequential.dispose();
      await parallel.dispose();
    }
  });
});

/** Live Python processes this test process started (the engine's syntax checker). */
function childPythons(): number[] {
  const out = execFileSync("ps", ["-o", "pid=,stat=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" });
  return out
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([, state, command]) => command?.startsWith("python") && !state.startsWith("Z"))
    .map(([pid]) => Number(pid));
}

/** Waits (a killed process takes a moment to go) until no checker of an earlier engine is left. */
async function noChildPythons(): Promise<number[]> {
  for (let i = 0; i < 100 && childPythons().length; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  return childPythons();
}

describe("the engine's syntax checker", () => {
  test("one Python process checks every module of every job, and goes away with the engine", async () => {
    assert.deepEqual(await noChildPythons(), []);
    const engine = new SynthesisEngine({ manifestPath: setup.manifestPath, profile: "tiny", threads: 1 });
    let first: number[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const { end, events } = await runJob(engine, () => engine.synthesize({ requirement: REQUIREMENT }).jobId);
        assert.equal(end.type, "jobFinished");
        assert.ok(events.filter((event) => event.type === "codeReady" && (event as { syntax: { checked: boolean } }).syntax.checked).length >= 2, "every module was checked");
        const now = childPythons();
        assert.equal(now.length, 1, "one interpreter");
        if (i === 0) first = now;
        else assert.deepEqual(now, first, "the same interpreter for the next job");
      }
    } finally {
      await engine.dispose();
    }
    assert.deepEqual(await noChildPythons(), [], "disposed with the engine");
  });
});
