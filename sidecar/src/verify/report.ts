/**
 * What verification reports: the shapes of the static check, the sandboxed run, the resource
 * check, and the history of verify/repair rounds. Pure zod (no Node imports): the protocol
 * reuses these schemas, so clients see exactly what the engine produced.
 */
import { z } from "zod";

/**
 * Why a version of the program fails, from worst to best: it does not parse or does not define
 * what the specs promised (`static`), it imports something that is not there (`import`), it
 * crashes, times out or hits the sandbox caps (`runtime`), or it runs but breaks the
 * requirement's resource limits (`resource`).
 */
export const FailureKind = z.enum(["static", "import", "runtime", "resource"]);
export type FailureKind = z.infer<typeof FailureKind>;

export const StaticIssueSchema = z.object({
  /** Module file name, e.g. "task_02_detect_peaks.py". */
  file: z.string(),
  /** 0-based sub-task index, or null for main.py. */
  subTaskIndex: z.number().int().nullable(),
  kind: z.enum(["syntax", "import", "signature", "requirements"]),
  severity: z.enum(["error", "warning"]),
  message: z.string(),
  line: z.number().int().optional(),
});
export type StaticIssue = z.infer<typeof StaticIssueSchema>;

export const IsolationSchema = z.object({
  /** "blocked": the program ran in its own network namespace with no interfaces but loopback. */
  network: z.enum(["blocked", "notIsolated"]),
  /** "readOnly": every mount but the working copy (and /dev, /proc, /sys) was read-only. */
  filesystem: z.enum(["readOnly", "notIsolated"]),
  /** "pidNamespace": every process the program starts dies with it; else its process group is killed. */
  processes: z.enum(["pidNamespace", "processGroup"]),
  /** RLIMIT_AS cap in MB, or null where the platform has none. */
  memoryCapMB: z.number().nullable(),
  /** Set when folders were to be hidden from the program: "all" were empty in its view. */
  hidden: z.enum(["all", "notAll"]).optional(),
  note: z.string().optional(),
});
export type Isolation = z.infer<typeof IsolationSchema>;

/**
 * What the sandbox can do on this machine, probed before anything runs: what a client shows
 * before it asks the user to let a generated program run, and what `verifyStarted` carries.
 */
export const SandboxProbeSchema = z.object({
  /** The interpreter programs would run with; null when none is usable. */
  python: z.object({ executable: z.string(), version: z.string() }).nullable(),
  /** The `verify.isolation` setting the probe was made for. */
  mode: z.enum(["auto", "required", "off"]),
  /** Network, filesystem and process isolation are all available. */
  isolated: z.boolean(),
  /** What was probed, one finding per line (empty when nothing could be probed). */
  probed: z.array(z.string()),
  /** Why the program would not be isolated. */
  reason: z.string().optional(),
  /**
   * What a run would be: "isolated"; "notIsolated" (the "auto" setting falls back, with time,
   * memory and output limits only); "refused" (isolation is required but unavailable, or there is
   * no Python interpreter).
   */
  outcome: z.enum(["isolated", "notIsolated", "refused"]),
  /** What a user should read before agreeing, in a few sentences. */
  summary: z.string(),
});
export type SandboxProbe = z.infer<typeof SandboxProbeSchema>;

export const SampleInputSchema = z.object({
  name: z.string(),
  source: z.enum(["user", "dataFile", "derived"]),
  /** What was passed, in words (e.g. "list of 512 floats"). */
  description: z.string(),
});
export type SampleInput = z.infer<typeof SampleInputSchema>;

export const ExecutionErrorSchema = z.object({
  type: z.string(),
  message: z.string(),
  traceback: z.string(),
  /** The module (without .py) of the deepest traceback frame that is one of the program's, else the step that was running. */
  module: z.string().nullable(),
  line: z.number().int().nullable(),
});
export type ExecutionError = z.infer<typeof ExecutionErrorSchema>;

export const ExecutionReportSchema = z.object({
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  outputLimitExceeded: z.boolean(),
  /** The sandbox's memory cap was hit (MemoryError or a failed allocation). */
  memoryCapHit: z.boolean(),
  /** Wall-clock time of the whole process, interpreter start included. */
  wallMs: z.number(),
  /** CPU time of the program and every process it started, from the kernel. */
  cpuMs: z.number().nullable(),
  /** Time spent importing the sub-task modules (the supervisor's clock between the program's marks). */
  importMs: z.number().nullable(),
  /** Time spent in the sub-tasks' run() calls, on the supervisor's clock: what latency limits are checked against. */
  pipelineMs: z.number().nullable(),
  /** Peak resident memory (ru_maxrss, from the kernel) of the program or any process it started. */
  peakMemoryMB: z.number().nullable(),
  /**
   * The program's own report: "accepted" when it agrees with what the sandbox measured,
   * "rejected" (with the contradiction) when it does not, "missing" when the program wrote none.
   */
  selfReport: z.object({ status: z.enum(["accepted", "rejected", "missing"]), problem: z.string().optional() }),
  stdout: z.string(),
  stderr: z.string(),
  stdoutBytes: z.number().int(),
  stderrBytes: z.number().int(),
  error: ExecutionErrorSchema.nullable(),
  /** Names of the final values the run produced. */
  outputNames: z.array(z.string()),
  /** A short, human-readable preview of the final values. */
  outputPreview: z.string(),
  inputs: z.array(SampleInputSchema),
  isolation: IsolationSchema,
});
export type ExecutionReport = z.infer<typeof ExecutionReportSchema>;

export const ResourceCheckSchema = z.object({
  ok: z.boolean(),
  memory: z.object({ limitMB: z.number(), measuredMB: z.number().nullable(), ok: z.boolean() }).optional(),
  latency: z.object({ limitMs: z.number(), measuredMs: z.number().nullable(), ok: z.boolean() }).optional(),
});
export type ResourceCheck = z.infer<typeof ResourceCheckSchema>;

export const VerifyFailureSchema = z.object({
  kind: FailureKind,
  /** One line. */
  message: z.string(),
  /** 0-based indexes of the sub-tasks to repair; empty when the failure could not be located. */
  subTaskIndexes: z.array(z.number().int()),
  /** What the code generator is told when it repairs (error, traceback, limits). */
  detail: z.string(),
});
export type VerifyFailure = z.infer<typeof VerifyFailureSchema>;

export const VerifyReportSchema = z.object({
  ok: z.boolean(),
  /** Whether the program was run (false: static checks only, e.g. without consent). */
  executed: z.boolean(),
  failure: VerifyFailureSchema.nullable(),
  staticIssues: z.array(StaticIssueSchema),
  execution: ExecutionReportSchema.nullable(),
  resources: ResourceCheckSchema.nullable(),
  python: z.object({ executable: z.string(), version: z.string() }).nullable(),
  ms: z.number(),
});
export type VerifyReport = z.infer<typeof VerifyReportSchema>;

export const RepairRecordSchema = z.object({
  subTaskId: z.string(),
  subTaskIndex: z.number().int(),
  /** false when the code generator itself failed; the previous code was kept. */
  generated: z.boolean(),
  error: z.string().optional(),
});

export const VerifyAttemptSchema = z.object({
  /** 0 = the program as generated; n = after the n-th repair round. */
  round: z.number().int(),
  report: VerifyReportSchema,
  /** Repairs made before this round's check (empty for round 0). */
  repairs: z.array(RepairRecordSchema),
});
export type VerifyAttempt = z.infer<typeof VerifyAttemptSchema>;

export const VerificationStateSchema = z.object({
  status: z.enum(["passed", "failed"]),
  /** The round whose code the program now holds (the best one). */
  bestRound: z.number().int(),
  /** Repair rounds allowed. */
  maxRounds: z.number().int(),
  attempts: z.array(VerifyAttemptSchema),
});
export type VerificationState = z.infer<typeof VerificationStateSchema>;

/** Options a client passes with `gpiot/synthesize` or `gpiot/verify`. */
export const VerifyRequestSchema = z
  .object({
    /** Run the program in the sandbox (needs consent); false = static checks only. */
    execute: z.boolean().default(true),
    /** The user agreed to run generated code; also granted by the `verify.consent` setting. */
    consent: z.boolean().optional(),
    /** Repair rounds; default: the `verify.repairRounds` setting. 0 = check only. */
    repairRounds: z.number().int().min(0).max(10).optional(),
    /** Values for the program's inputs (by name); the rest are derived from the specs. */
    inputs: z.record(z.string(), z.unknown()).optional(),
    /** A data file the user names: passed to inputs that look like paths. */
    dataFile: z.string().min(1).optional(),
  })
  .strict();
export type VerifyRequest = z.input<typeof VerifyRequestSchema>;

const failureRank: Record<FailureKind, number> = { static: 0, import: 1, runtime: 2, resource: 3 };

/**
 * Orders two reports: positive when `a` is better. A passing version beats any failing one; among
 * failing ones the later the stage of failure the better (static < import < runtime < resource),
 * then the fewer static errors. Ties keep the earlier version (the caller passes them in order).
 */
export function compareReports(a: VerifyReport, b: VerifyReport): number {
  const rank = (report: VerifyReport) => (report.ok ? 4 : report.failure ? failureRank[report.failure.kind] : 0);
  const difference = rank(a) - rank(b);
  if (difference !== 0) return difference;
  const errors = (report: VerifyReport) => report.staticIssues.filter((issue) => issue.severity === "error").length;
  return errors(b) - errors(a);
}
