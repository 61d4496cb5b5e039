/**
 * The JSON-RPC protocol between GPIoT clients (the VS Code extension, the CLI, tests) and the
 * sidecar: every method and notification is declared here once, with zod schemas for its params
 * and result. Both ends import this file; it must never import node-llama-cpp or vscode.
 *
 * Transport: JSON-RPC 2.0 with LSP framing (vscode-jsonrpc) over stdio or Node IPC. The session
 * starts with the LSP `initialize` request (its `initializationOptions` are `EngineSettingsInput`)
 * and ends with `shutdown` then `exit`, so vscode-languageclient can manage the process.
 *
 * Words: a *program* is what one requirement becomes (sub-tasks, specs, code, files); a *job* is
 * one queued unit of model work on a program (synthesize, continue, regenerate, assemble). Jobs
 * run one at a time in order; each streams `gpiot/jobEvent` notifications and ends with exactly
 * one `jobFinished` or `jobFailed` event.
 */
import { z } from "zod";
import { CodeArtifactSchema, ResourceLimitsSchema, SubTaskSchema, SyntaxCheckSchema, TaskSpecSchema } from "./schemas";
import { EngineSettingsSchema } from "./settings";
import { FailureKind, VerificationStateSchema, VerifyFailureSchema, VerifyReportSchema, VerifyRequestSchema } from "./verify/report";

export const PROTOCOL_VERSION = 1;

/** Error codes in `ResponseError.data.code` and `jobFailed.error.code`. */
export const ErrorCode = z.enum([
  "INVALID_PARAMS",
  "REQUIREMENT_EMPTY",
  "REQUIREMENT_TOO_LONG",
  "NOTHING_TO_BUILD",
  "CONSTRAINTS_TOO_LONG",
  "MODEL_NOT_LOADED",
  "MODEL_NOT_FOUND",
  "MODEL_INVALID",
  "ADAPTER_MISMATCH",
  "MODEL_LOAD_FAILED",
  "MANIFEST_INVALID",
  "STAGE_OUTPUT_INVALID",
  "OUTPUT_EXISTS",
  "PROGRAM_NOT_FOUND",
  "SUBTASK_NOT_FOUND",
  "PROGRAM_BUSY",
  "NOTHING_TO_ASSEMBLE",
  "CANCELLED",
  "SHUTTING_DOWN",
  // ---- verify and repair (issue #5) ----
  /** Running the program needs the user's consent (`consent: true` or the verify.consent setting). */
  "CONSENT_REQUIRED",
  /** Generated code never runs in a workspace the user has not trusted. */
  "WORKSPACE_UNTRUSTED",
  /** No usable Python interpreter, or isolation was required and is not available. */
  "VERIFY_UNAVAILABLE",
  // ---- end verify ----
  // ---- models (issue #4) ----
  /** The offline setting is on and the request would need the network. */
  "OFFLINE",
  "DOWNLOAD_FAILED",
  /** A download's size, SHA-256 or GGUF header is wrong; the file was deleted. */
  "CHECKSUM_MISMATCH",
  /** A PEFT adapter could not be converted to a GGUF LoRA adapter. */
  "CONVERSION_FAILED",
  // ---- end models ----
  // ---- remote backends ----
  /** The server of a remote role cannot be reached (connection refused, unknown host, no answer in time). */
  "REMOTE_UNREACHABLE",
  /** The server refused the API key (401/403). */
  "REMOTE_UNAUTHORIZED",
  /** The server does not serve the model or adapter a role names. */
  "REMOTE_MODEL_NOT_FOUND",
  /** The server cannot constrain output to a JSON schema. */
  "REMOTE_SCHEMA_UNSUPPORTED",
  /** Any other failure of a remote request: an error status after the retries, a broken or stalled stream. */
  "REMOTE_FAILED",
  // ---- end remote backends ----
  "INTERNAL",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ErrorInfoSchema = z.object({ code: ErrorCode, message: z.string() });
export type ErrorInfo = z.infer<typeof ErrorInfoSchema>;

export const StageName = z.enum(["td", "rt", "cg", "check", "assemble", "write", "verify"]);
export type StageName = z.infer<typeof StageName>;

export const JobKind = z.enum(["synthesize", "continue", "regenerate", "assemble", "verify"]);
export type JobKind = z.infer<typeof JobKind>;

export const ReviewMode = z.enum(["none", "decomposition", "specs"]);
export type ReviewMode = z.infer<typeof ReviewMode>;

export const CodeState = z.enum(["pending", "streaming", "done", "syntaxError", "failed", "stale"]);
export type CodeState = z.infer<typeof CodeState>;

/** A sub-task as the program holds it: TD's sub-task plus a stable id and what was made from it. */
export const ProgramSubTaskSchema = z.object({
  id: z.string(),
  subTask: SubTaskSchema,
  spec: TaskSpecSchema.nullable(),
  specMarkdown: z.string().nullable(),
  artifact: CodeArtifactSchema.nullable(),
  syntax: SyntaxCheckSchema.nullable(),
  codeState: CodeState,
});
export type ProgramSubTask = z.infer<typeof ProgramSubTaskSchema>;

export const ProgramSnapshotSchema = z.object({
  programId: z.string(),
  requirement: z.string(),
  limits: ResourceLimitsSchema.nullable(),
  subTasks: z.array(ProgramSubTaskSchema),
  outDir: z.string().nullable(),
  files: z.array(z.string()),
  busy: z.boolean(),
  /** The last verification: every verify/repair round and which version the program keeps (issue #5). */
  verification: VerificationStateSchema.nullable().optional(),
});
export type ProgramSnapshot = z.infer<typeof ProgramSnapshotSchema>;

export const StageTimingSchema = z.object({ stage: StageName, subTaskId: z.string().optional(), ms: z.number(), tokens: z.number(), firstTokenMs: z.number().optional() });
export type StageTiming = z.infer<typeof StageTimingSchema>;

const jobRef = { jobId: z.string(), programId: z.string() };

/** Everything a job reports while it runs, in order. */
export const JobEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("jobQueued"), ...jobRef, kind: JobKind, position: z.number().int() }),
  z.object({ type: z.literal("jobStarted"), ...jobRef, kind: JobKind }),
  z.object({ type: z.literal("stageStarted"), ...jobRef, stage: StageName, subTaskId: z.string().optional() }),
  /** Raw model text as tokens arrive (the JSON the grammar allows). */
  z.object({ type: z.literal("textDelta"), ...jobRef, stage: StageName, subTaskId: z.string().optional(), text: z.string() }),
  /** One sub-task, as soon as TD has finished writing it. */
  z.object({ type: z.literal("subTaskDecomposed"), ...jobRef, index: z.number().int(), subTask: SubTaskSchema }),
  /** TD's complete, validated decomposition with the ids the program gave the sub-tasks. */
  z.object({ type: z.literal("decomposed"), ...jobRef, subTasks: z.array(z.object({ id: z.string(), subTask: SubTaskSchema })) }),
  z.object({ type: z.literal("specReady"), ...jobRef, subTaskId: z.string(), spec: TaskSpecSchema, markdown: z.string() }),
  /** Decoded Python source as the model writes it. */
  z.object({ type: z.literal("codeDelta"), ...jobRef, subTaskId: z.string(), text: z.string() }),
  z.object({ type: z.literal("codeReady"), ...jobRef, subTaskId: z.string(), artifact: CodeArtifactSchema, syntax: SyntaxCheckSchema }),
  z.object({ type: z.literal("stageFailed"), ...jobRef, stage: StageName, subTaskId: z.string().optional(), error: ErrorInfoSchema }),
  z.object({ type: z.literal("fileWritten"), ...jobRef, path: z.string(), kind: z.enum(["module", "main", "readme", "requirements", "manifest"]) }),
  z.object({
    type: z.literal("jobFinished"),
    ...jobRef,
    kind: JobKind,
    /** Set when the job stopped for the user's review; `gpiot/continue` goes on. */
    awaitingReview: z.enum(["decomposition", "specs"]).optional(),
    outDir: z.string().optional(),
    files: z.array(z.string()),
    /** python3 compile of main.py, when the job wrote the program. */
    mainCompiles: z.boolean().optional(),
    /** Set when the job verified the program (issue #5); the full history is in the program snapshot. */
    verification: z
      .object({ status: z.enum(["passed", "failed"]), bestRound: z.number().int(), rounds: z.number().int(), executed: z.boolean(), failure: VerifyFailureSchema.nullable() })
      .optional(),
    timings: z.array(StageTimingSchema),
    totalMs: z.number(),
    tokens: z.number(),
  }),
  z.object({ type: z.literal("jobFailed"), ...jobRef, kind: JobKind, error: ErrorInfoSchema, cancelled: z.boolean(), totalMs: z.number() }),
  // ---- verify and repair (issue #5) ----
  /** A check of the program begins: round 0 is the program as generated, round n follows the n-th repair. */
  z.object({ type: z.literal("verifyStarted"), ...jobRef, round: z.number().int(), execute: z.boolean() }),
  /** The result of one round: static issues, the sandboxed run, the resource check, the failure. */
  z.object({ type: z.literal("verifyResult"), ...jobRef, round: z.number().int(), report: VerifyReportSchema }),
  /** A failing sub-task goes back to code generation with its code and this error (codeDelta/codeReady follow). */
  z.object({ type: z.literal("repairAttempt"), ...jobRef, round: z.number().int(), subTaskId: z.string(), subTaskIndex: z.number().int(), failureKind: FailureKind, error: z.string() }),
  // ---- end verify ----
]);
export type JobEvent = z.infer<typeof JobEventSchema>;

export const LoadedModelInfoSchema = z.object({
  profile: z.string(),
  roles: z.record(
    z.string(),
    z.object({
      modelPath: z.string(),
      adapters: z.array(z.object({ path: z.string(), scale: z.number() })),
      contextSize: z.number(),
      /** Sequences of the role's local context: sub-tasks it generates at once. */
      sequences: z.number().optional(),
      /** Set when the role runs on an OpenAI-compatible server instead of the local models. */
      remote: z.object({ baseUrl: z.string(), model: z.string(), adapter: z.string().optional() }).optional(),
    }),
  ),
  distinctModels: z.number(),
  threads: z.number(),
  gpu: z.union([z.string(), z.literal(false)]),
  gpuLayers: z.record(z.string(), z.number()),
  loadMs: z.number(),
  /** What GPU fit chose (layers, context) and why, in words (issue #4). */
  fit: z.object({ backend: z.string(), fits: z.boolean(), contextSize: z.number(), parallel: z.number().optional(), summary: z.string(), advice: z.string().optional() }).optional(),
  /** Sub-tasks generated at once: parallel sequences locally (as the GPU fit allows), concurrent requests remotely. */
  parallelSubTasks: z.number().optional(),
});
export type LoadedModelInfo = z.infer<typeof LoadedModelInfoSchema>;

export const ModelStateSchema = z.enum(["none", "loading", "ready", "generating", "error"]);
export type ModelState = z.infer<typeof ModelStateSchema>;

export const ModelEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("loading"), progress: z.number().min(0).max(1), message: z.string() }),
  z.object({ type: z.literal("loaded"), info: LoadedModelInfoSchema }),
  z.object({ type: z.literal("unloaded") }),
  z.object({ type: z.literal("loadFailed"), error: ErrorInfoSchema }),
]);
export type ModelEvent = z.infer<typeof ModelEventSchema>;

export const ProfileSummarySchema = z.object({
  name: z.string(),
  description: z.string(),
  /** Every file the profile needs is on disk. */
  available: z.boolean(),
  missing: z.array(z.string()),
});

const empty = z.object({}).strict().optional();

// ---- models (issue #4) ----
export const PullPlanSchema = z.object({
  profile: z.string(),
  manifestPath: z.string(),
  modelsDir: z.string(),
  items: z.array(
    z.object({
      kind: z.enum(["model", "adapter"]),
      roles: z.array(z.string()),
      path: z.string(),
      action: z.enum(["present", "download", "convert"]),
      source: z.string().optional(),
      peft: z.object({ source: z.string(), files: z.array(z.string()) }).optional(),
      sizeBytes: z.number().optional(),
      approxSizeBytes: z.number().optional(),
      sha256: z.string().optional(),
      basePath: z.string().optional(),
      resumable: z.boolean().optional(),
    }),
  ),
  /** Bytes to fetch; an estimate when `approximate`. */
  downloadBytes: z.number(),
  approximate: z.boolean(),
  needsNetwork: z.boolean(),
});
export type PullPlanInfo = z.infer<typeof PullPlanSchema>;

export const PullProgressSchema = z.object({
  pullId: z.string(),
  profile: z.string(),
  path: z.string(),
  phase: z.enum(["download", "verify", "convert", "done"]),
  bytes: z.number(),
  /** 0 while unknown. */
  totalBytes: z.number(),
  item: z.number().int(),
  items: z.number().int(),
});
export type PullProgress = z.infer<typeof PullProgressSchema>;

export const ModelFitSchema = z.object({
  profile: z.string(),
  backend: z.enum(["cuda", "vulkan", "metal", "cpu"]),
  devices: z.array(z.string()),
  fits: z.boolean(),
  contextSize: z.number(),
  /** Sub-tasks RT and CG can generate in parallel (sequences that fit next to the models). */
  parallel: z.number().optional(),
  models: z.array(z.object({ path: z.string(), roles: z.array(z.string()), layers: z.number(), gpuLayers: z.number(), adapterBytes: z.number() })),
  gpuLayers: z.record(z.string(), z.number()),
  vram: z.object({ total: z.number(), free: z.number(), needed: z.number() }),
  ram: z.object({ total: z.number(), free: z.number(), needed: z.number() }),
  summary: z.string(),
  advice: z.string().optional(),
});
// ---- end models ----

interface RequestDefinition<P extends z.ZodType, R extends z.ZodType> {
  method: string;
  direction: "clientToServer";
  params: P;
  result: R;
}
interface NotificationDefinition<P extends z.ZodType> {
  method: string;
  direction: "serverToClient";
  params: P;
}
const request = <P extends z.ZodType, R extends z.ZodType>(method: string, params: P, result: R): RequestDefinition<P, R> => ({ method, direction: "clientToServer", params, result });
const notification = <P extends z.ZodType>(method: string, params: P): NotificationDefinition<P> => ({ method, direction: "serverToClient", params });

export const requests = {
  /** Engine state, loaded models, queue and the machine's defaults. */
  status: request(
    "gpiot/status",
    empty,
    z.object({
      version: z.string(),
      protocolVersion: z.number(),
      modelState: ModelStateSchema,
      models: LoadedModelInfoSchema.nullable(),
      runningJobId: z.string().nullable(),
      queuedJobIds: z.array(z.string()),
      defaults: z.object({ threads: z.number(), manifestPath: z.string() }),
    }),
  ),
  /** Profiles of the models manifest and whether their files are present. */
  listProfiles: request(
    "gpiot/listProfiles",
    empty,
    z.object({ manifestPath: z.string(), defaultProfile: z.string(), profiles: z.array(ProfileSummarySchema) }),
  ),
  /**
   * Loads the models for a profile (default: the manifest's default profile) or one GGUF file for
   * all three roles, replacing what was loaded. Progress arrives as `gpiot/modelEvent`.
   */
  loadModels: request(
    "gpiot/loadModels",
    z.object({ profile: z.string().min(1).optional(), modelPath: z.string().min(1).optional() }).strict(),
    LoadedModelInfoSchema,
  ),
  /** Frees the models. Fails with PROGRAM_BUSY while a job runs. */
  unloadModels: request("gpiot/unloadModels", empty, z.object({ unloaded: z.boolean() })),
  /**
   * Queues a synthesis: TD, RT, CG, then assembly into `outDir` (when given). With `review` the
   * job stops after the decomposition or the specs and `gpiot/continue` goes on.
   */
  synthesize: request(
    "gpiot/synthesize",
    z
      .object({
        requirement: z.string(),
        constraints: z.string().optional(),
        outDir: z.string().min(1).optional(),
        overwrite: z.boolean().default(false),
        review: ReviewMode.default("none"),
        /** Verify (and repair) the program after assembly (issue #5); running it needs consent. */
        verify: VerifyRequestSchema.optional(),
        /** false: the client's workspace is untrusted, so nothing generated may run. */
        workspaceTrusted: z.boolean().optional(),
      })
      .strict(),
    z.object({ jobId: z.string(), programId: z.string() }),
  ),
  /** Cancels a queued or running job; a running generation stops at the next token. */
  cancel: request("gpiot/cancel", z.object({ jobId: z.string() }).strict(), z.object({ cancelled: z.boolean(), state: z.enum(["queued", "running", "finished", "unknown"]) })),
  getProgram: request("gpiot/getProgram", z.object({ programId: z.string() }).strict(), ProgramSnapshotSchema),
  /**
   * Replaces the program's sub-task list (edit, add, delete, reorder). Entries with a known id keep
   * their spec and code when their text is unchanged; the rest need specs and code again.
   */
  updateSubTasks: request(
    "gpiot/updateSubTasks",
    z.object({ programId: z.string(), subTasks: z.array(z.object({ id: z.string().optional(), subTask: SubTaskSchema })).min(1).max(12) }).strict(),
    ProgramSnapshotSchema,
  ),
  /** Replaces one sub-task's spec with the user's edit; its code becomes stale. */
  updateSpec: request("gpiot/updateSpec", z.object({ programId: z.string(), subTaskId: z.string(), spec: TaskSpecSchema }).strict(), ProgramSnapshotSchema),
  /** Queues the rest of a reviewed program: missing specs, missing or stale code, assembly. */
  continue: request(
    "gpiot/continue",
    z.object({ programId: z.string(), review: ReviewMode.default("none"), outDir: z.string().min(1).optional(), overwrite: z.boolean().optional() }).strict(),
    z.object({ jobId: z.string() }),
  ),
  /** Queues a new spec (then code) or new code for one sub-task, from its current, possibly edited, text. */
  regenerate: request(
    "gpiot/regenerate",
    z.object({ programId: z.string(), subTaskId: z.string(), stage: z.enum(["spec", "code"]) }).strict(),
    z.object({ jobId: z.string() }),
  ),
  /** Queues writing the program's files again, e.g. after a regenerate. */
  assemble: request(
    "gpiot/assemble",
    z.object({ programId: z.string(), outDir: z.string().min(1).optional(), overwrite: z.boolean().default(false) }).strict(),
    z.object({ jobId: z.string() }),
  ),
  // ---- verify and repair (issue #5) ----
  /**
   * Queues a check of the program: static checks, then (with consent, in a trusted workspace) a
   * sandboxed run on sample inputs and the resource limits, repairing failing sub-tasks for up to
   * `repairRounds` rounds. Rewrites the program folder when it has one and the code changed.
   */
  verify: request(
    "gpiot/verify",
    z.object({ programId: z.string(), workspaceTrusted: z.boolean().optional() }).extend(VerifyRequestSchema.shape).strict(),
    z.object({ jobId: z.string() }),
  ),
  // ---- end verify ----
  // ---- models (issue #4) ----
  /** What `pullModel` would fetch for a profile: files, sizes, what is already there. Opens no connection. */
  pullPlan: request("gpiot/pullPlan", z.object({ profile: z.string().min(1).optional() }).strict(), PullPlanSchema),
  /**
   * Downloads (and converts) the missing files of a profile: the explicit request a client sends once
   * the user agreed. Progress arrives as `gpiot/pullProgress` with `pullId`; `gpiot/cancelPull` stops
   * it (what was fetched is kept and the next pull continues). Fails with OFFLINE in offline mode.
   */
  pullModel: request(
    "gpiot/pullModel",
    z.object({ profile: z.string().min(1).optional(), pullId: z.string().min(1).optional() }).strict(),
    z.object({ pullId: z.string(), profile: z.string(), files: z.array(z.object({ path: z.string(), action: z.enum(["present", "download", "convert"]), bytes: z.number(), resumed: z.boolean().optional() })) }),
  ),
  cancelPull: request("gpiot/cancelPull", z.object({ pullId: z.string() }).strict(), z.object({ cancelled: z.boolean() })),
  /** Deletes the profile's downloaded files that no other profile uses (never files outside the models folder). */
  removeModel: request(
    "gpiot/removeModel",
    z.object({ profile: z.string().min(1) }).strict(),
    z.object({ profile: z.string(), removed: z.array(z.string()), kept: z.array(z.object({ path: z.string(), reason: z.string() })), freedBytes: z.number() }),
  ),
  /** GPU fit for a profile whose files are present: backend, layers, context per role, and why. */
  modelFit: request("gpiot/modelFit", z.object({ profile: z.string().min(1).optional() }).strict(), ModelFitSchema),
  // ---- end models ----
} as const;

export const notifications = {
  /** Every event of every job, in order. */
  jobEvent: notification("gpiot/jobEvent", JobEventSchema),
  /** Model loading progress and state changes. */
  modelEvent: notification("gpiot/modelEvent", ModelEventSchema),
  /** Progress of a `gpiot/pullModel` (issue #4): bytes of the current file, throttled to a few per second. */
  pullProgress: notification("gpiot/pullProgress", PullProgressSchema),
} as const;

export type RequestName = keyof typeof requests;
export type ParamsOf<N extends RequestName> = z.input<(typeof requests)[N]["params"]>;
export type ResultOf<N extends RequestName> = z.infer<(typeof requests)[N]["result"]>;

export { EngineSettingsSchema };
export type { EngineSettingsInput } from "./settings";

/** Anything that can send requests and receive notifications: a vscode-jsonrpc MessageConnection or a LanguageClient. */
export interface RpcEndpoint {
  sendRequest(method: string, params: unknown): Promise<unknown>;
  onNotification(method: string, handler: (params: any) => void): { dispose(): void };
}

/**
 * Typed calls over any endpoint; results are validated against the protocol. JSON-RPC
 * connections keep one handler per notification method, so listeners are multiplexed here.
 */
export class GpiotRpcClient {
  private readonly jobListeners = new Set<(event: JobEvent) => void>();
  private readonly modelListeners = new Set<(event: ModelEvent) => void>();
  private subscribed = false;

  constructor(private readonly endpoint: RpcEndpoint) {}

  async request<N extends RequestName>(name: N, ...args: undefined extends ParamsOf<N> ? [ParamsOf<N>?] : [ParamsOf<N>]): Promise<ResultOf<N>> {
    const definition = requests[name];
    const result = await this.endpoint.sendRequest(definition.method, args[0] ?? {});
    return definition.result.parse(result) as ResultOf<N>;
  }

  private subscribe(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    this.endpoint.onNotification(notifications.jobEvent.method, (params) => {
      const event = JobEventSchema.parse(params);
      for (const listener of [...this.jobListeners]) listener(event);
    });
    this.endpoint.onNotification(notifications.modelEvent.method, (params) => {
      const event = ModelEventSchema.parse(params);
      for (const listener of [...this.modelListeners]) listener(event);
    });
  }

  onJobEvent(listener: (event: JobEvent) => void): { dispose(): void } {
    this.subscribe();
    this.jobListeners.add(listener);
    return { dispose: () => this.jobListeners.delete(listener) };
  }

  onModelEvent(listener: (event: ModelEvent) => void): { dispose(): void } {
    this.subscribe();
    this.modelListeners.add(listener);
    return { dispose: () => this.modelListeners.delete(listener) };
  }

  // ---- models (issue #4) ----
  private readonly pullListeners = new Set<(progress: PullProgress) => void>();
  private pullSubscribed = false;

  onPullProgress(listener: (progress: PullProgress) => void): { dispose(): void } {
    if (!this.pullSubscribed) {
      this.pullSubscribed = true;
      this.endpoint.onNotification(notifications.pullProgress.method, (params) => {
        const progress = PullProgressSchema.parse(params);
        for (const each of [...this.pullListeners]) each(progress);
      });
    }
    this.pullListeners.add(listener);
    return { dispose: () => this.pullListeners.delete(listener) };
  }
  // ---- end models ----
}
