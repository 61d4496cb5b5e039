/**
 * The specs and code of a program's sub-tasks, with as much overlap as the data allows.
 *
 * What depends on what: an RT target needs only its sub-task; RT inputs/outputs of sub-task i
 * need its target and the specs of the sub-tasks before it; CG of sub-task i needs the spec of i
 * and of every sub-task before it (its prompt lists the values they produce). So all targets start
 * at once, the input/output prompts run in order, and CG of each sub-task starts as soon as the
 * specs up to it exist, beside the RT of the sub-tasks after it. Every prompt is the one the
 * sequential order would build, so at temperature 0 the program is the same.
 *
 * At most `parallel` targets and `parallel` CG generations run at once (they share the role's
 * context sequences locally, or are concurrent requests remotely). When one step fails, the others
 * are stopped and the first failure is the job's.
 */
import type { EngineModels } from "../models/engineModels";
import { CancelledError } from "../pipeline/structuredGeneration";
import { generateSubTaskCode, specify, startTarget, type JobContext, type PendingTarget } from "./jobSteps";

/** A counting semaphore; waiting stops when the signal aborts. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(signal: AbortSignal, task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const index = this.waiting.indexOf(go);
          if (index >= 0) this.waiting.splice(index, 1);
          reject(new CancelledError());
        };
        const go = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        this.waiting.push(go);
      });
    }
    if (signal.aborted) throw new CancelledError();
    this.active += 1;
    try {
      return await task();
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }
}

export interface SubTaskPipelineResult {
  /** Sub-tasks that got a new spec. */
  newSpecs: number;
}

/** Sequential: every missing or out-of-date spec in order, then (when `code`) every missing or stale module in order. */
export async function specifyThenGenerate(context: JobContext, models: EngineModels, code: boolean): Promise<SubTaskPipelineResult> {
  const { program } = context.job;
  let newSpecs = 0;
  for (const entry of program.subTasks) {
    if (!program.needsSpec(entry)) continue;
    await specify(context, models, entry.id);
    newSpecs += 1;
  }
  if (code) for (const entry of program.subTasks) if (program.needsCode(entry)) await generateSubTaskCode(context, models, entry.id);
  return { newSpecs };
}

/** Overlapped: see the module comment. With `code` false only the specs are written (for a review). */
export async function specifyAndGenerateInParallel(context: JobContext, models: EngineModels, code: boolean, parallel: number): Promise<SubTaskPipelineResult> {
  const { program } = context.job;
  const jobSignal = context.job.controller.signal;
  const scope = new AbortController();
  const stopAll = () => scope.abort();
  jobSignal.addEventListener("abort", stopAll, { once: true });
  const signal = scope.signal;
  const entries = [...program.subTasks];
  const targetSlots = new Limiter(parallel);
  const codeSlots = new Limiter(parallel);
  const started: Promise<unknown>[] = [];
  let firstError: unknown;
  const fail = (error: unknown) => {
    if (firstError === undefined && !(error instanceof CancelledError && !jobSignal.aborted && signal.aborted)) firstError = error;
    scope.abort();
  };
  const track = <T>(promise: Promise<T>): Promise<T> => {
    started.push(promise.catch(fail));
    return promise;
  };

  try {
    const targets = new Map<string, PendingTarget>();
    for (const entry of entries) {
      if (!program.needsSpec(entry)) continue;
      targets.set(entry.id, track(targetSlots.run(signal, () => startTarget(context, models, entry.id, { signal }))));
    }
    let newSpecs = 0;
    for (const entry of entries) {
      if (signal.aborted) break;
      const target = targets.get(entry.id);
      if (target) {
        await specify(context, models, entry.id, { signal, target });
        newSpecs += 1;
      }
      if (code && program.needsCode(entry)) void track(codeSlots.run(signal, () => generateSubTaskCode(context, models, entry.id, undefined, { signal })));
    }
    await Promise.all(started);
    if (firstError !== undefined) throw firstError as Error;
    if (jobSignal.aborted) throw new CancelledError();
    return { newSpecs };
  } catch (error) {
    fail(error);
    await Promise.all(started);
    throw firstError ?? error;
  } finally {
    jobSignal.removeEventListener("abort", stopAll);
  }
}
