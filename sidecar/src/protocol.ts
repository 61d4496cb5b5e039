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
import { CitationSchema, CodeArtifactSchema, ResourceLimitsSchema, SubTaskSchema, SyntaxCheckSchema, TaskSpecSchema } from "./schemas";
import { EngineSettingsSchema, RetrievalSettingsSchema } from "./settings";
import { FailureKind, SandboxProbeSchema, VerificationStateSchema, VerifyFailureSchema, VerifyReportSchema, VerifyRequestSchema } from "./verify/report";

export const PROTOCOL_VERSION = 1;

// ---- text that reaches the filesystem, a process or a prompt ----
/** Longest path accepted (Linux PATH_MAX). */
export const MAX_PATH_CHARS = 4096;
/** Longest id or profile name accepted. */
export const MAX_NAME_CHARS = 256;
/** Longest string of any kind; prose has tighter limits where it is used (e.g. REQUIREMENT_TOO_LONG). */
export const MAX_TEXT_CHARS = 1_000_000;

function codePoint(code: number): string {
  return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Why a string cannot be accepted, or null. Every string: no NUL, no lone UTF-16 surrogate (not
 * Unicode text: it cannot even be written as UTF-8), no control character other than tab, line feed
 * and carriage return. A `line` (a path, an id, a name) also has no tab, line break or U+2028/U+2029.
 */
export function textProblem(text: string, kind: "text" | "line" = "text"): string | null {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0) return `contains a NUL character (U+0000) at position ${i}`;
    if (code >= 0xd800 && code <= 0xdfff) {
      const next = text.charCodeAt(i + 1);
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return `contains a lone surrogate (${codePoint(code)}) at position ${i}, which is not valid Unicode text`;
    }
    const lineBreak = code === 0x09 || code === 0x0a || code === 0x0d;
    if ((code < 0x20 && !(lineBreak && kind === "text")) || (code >= 0x7f && code <= 0x9f)) return `contains the control character ${codePoint(code)} at position ${i}`;
    if (kind === "line" && (code === 0x2028 || code === 0x2029)) return `contains a line separator (${codePoint(code)}) at position ${i}`;
  }
  return null;
}

function checkText(kind: "text" | "line") {
  return (value: string, ctx: z.RefinementCtx) => {
    const problem = textProblem(value, kind);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  };
}

/** A file or folder path: one line of text, at most MAX_PATH_CHARS. */
export const PathText = z.string().min(1).max(MAX_PATH_CHARS).superRefine(checkText("line"));
/** An id or a profile name: one line of text, at most MAX_NAME_CHARS. */
export const NameText = z.string().min(1).max(MAX_NAME_CHARS).superRefine(checkText("line"));
/** Prose for a prompt (requirement, constraints): line breaks allowed, at most MAX_TEXT_CHARS. */
export const ProseText = z.string().max(MAX_TEXT_CHARS).superRefine(checkText("text"));

/** The first string (or object key) anywhere in `value` that breaks the rules of textProblem. */
export function findUnsafeText(value: unknown): { path: PropertyKey[]; problem: string } | null {
  const stack: { value: unknown; path: PropertyKey[] }[] = [{ value, path: [] }];
  while (stack.length) {
    const { value: current, path } = stack.pop()!;
    if (typeof current === "string") {
      const problem = current.length > MAX_TEXT_CHARS ? `is ${current.length} characters long; the limit is ${MAX_TEXT_CHARS}` : textProblem(current);
      if (problem) return { path, problem };
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) stack.push({ value: current[i], path: [...path, i] });
    } else if (typeof current === "object" && current !== null) {
      const entries = Object.entries(current);
      for (const [key] of entries) {
        const problem = textProblem(key, "line");
        if (problem) return { path, problem: `has a member name that ${problem}` };
      }
      for (let i = entries.length - 1; i >= 0; i--) stack.push({ value: entries[i][1], path: [...path, entries[i][0]] });
    }
  }
  return null;
}

/** Adds the rules of textProblem, for every string inside, to a schema. */
export function withSafeText<T extends z.ZodType>(schema: T): T {
  return schema.superRefine((value, ctx) => {
    const unsafe = findUnsafeText(value);
    if (unsafe) ctx.addIssue({ code: "custom", path: unsafe.path, message: unsafe.problem });
  }) as T;
}

/** `initialize`'s `initializationOptions`: the engine settings, with every path checked as a path. */
export const InitializationOptionsSchema = withSafeText(
  EngineSettingsSchema.extend({
    python: PathText.default("python3"),
    profile: NameText.optional(),
    modelPath: PathText.optional(),
    manifestPath: PathText.optional(),
    modelsDir: PathText.optional(),
    retrieval: RetrievalSettingsSchema.extend({
      indexDir: PathText.optional(),
      embeddingModelPath: PathText.optional(),
      sources: z.array(PathText).default([]),
      workspaceFolders: z.array(PathText).default([]),
    }).default(RetrievalSettingsSchema.parse({})),
  }),
);

/** Error codes in `ResponseError.data.code` and `jobFailed.error.code`. */
export const ErrorCode = z.enum([
  "INVALID_PARAMS",
  "REQUIREMENT_EMPTY",
  "REQUIREMENT_TOO_LONG",
  "NOTHING_TO_BUILD",
  "CONSTRAINTS_TOO_LONG",
  /** A resource constraint states an impossible limit (negative or zero memory or time). */
  "CONSTRAINTS_INVALID",
  /** The context cannot hold a stage's prompt plus room for its answer (see sidecar/src/pipeline/contextBudget.ts). */
  "CONTEXT_TOO_SMALL",
  "MODEL_NOT_LOADED",
  "MODEL_NOT_FOUND",
  "MODEL_INVALID",
  "ADAPTER_MISMATCH",
  "MODEL_LOAD_FAILED",
  /** The GPU backend the settings ask for (e.g. gpu: "cuda") is not available on this machine. */
  "GPU_UNAVAILABLE",
  "MANIFEST_INVALID",
  "STAGE_OUTPUT_INVALID",
  /** The output folder exists and cannot be replaced as asked; `output.allowWith` names the answer that would allow it, if any. */
  "OUTPUT_EXISTS",
  /** The output folder is GPIoT's, but the user changed (or added at GPIoT's paths) files the write would replace; `overwrite: "all"` replaces them. */
  "OUTPUT_FILES_CHANGED",
  /** The output folder is the filesystem root, the home folder, the current folder or a repository root: never written into. */
  "OUTPUT_FORBIDDEN",
  /** The output folder cannot be written (permissions, read-only or full disk, a file in the way, ...). */
  "OUTPUT_UNWRITABLE",
  "PROGRAM_NOT_FOUND",
  "SUBTASK_NOT_FOUND",
  "PROGRAM_BUSY",
  "NOTHING_TO_ASSEMBLE",
  "CANCELLED",
  "SHUTTING_DOWN",
  // Verify and repair
  /** Running the program needs the user's consent (`consent: true` or the verify.consent setting). */
  "CONSENT_REQUIRED",
  /** Generated code never runs in a workspace the user has not trusted. */
  "WORKSPACE_UNTRUSTED",
  /** No usable Python interpreter, or isolation was required and is not available. */
  "VERIFY_UNAVAILABLE",
  // Models: downloads, removal, GPU fit
  /** The offline setting is on and the request would need the network. */
  "OFFLINE",
  "DOWNLOAD_FAILED",
  /** A download's size, SHA-256 or GGUF header is wrong; the file was deleted. */
  "CHECKSUM_MISMATCH",
  /** A PEFT adapter could not be converted to a GGUF LoRA adapter. */
  "CONVERSION_FAILED",
  // Retrieval index
  /** Another process is updating the index. */
  "INDEX_BUSY",
  /** What was given to the index cannot be added (missing, too broad, not a folder or corpus). */
  "INDEX_INPUT_INVALID",
  /** The index has no such source. */
  "INDEX_SOURCE_NOT_FOUND",
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
  "INTERNAL",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

/**
 * How a write may treat an output folder that already has files. Whatever the mode, GPIoT only
 * ever replaces a folder it wrote itself (its `gpiot.json` lists the files and their SHA-256),
 * only its own files in it, and never the filesystem root, the home folder, the current folder
 * or a repository root; files the user added are always kept.
 * - `never`: a missing or empty folder, or the folder this same program was written to (Assemble
 *   Again, verify's rewrite) when the user changed none of its files.
 * - `ownFiles`: also the folder of another GPIoT program, when the user changed none of its files.
 * - `all`: also replace GPIoT's files the user changed (and files the user added at the paths the
 *   new program writes): the answer after the user confirmed it.
 */
export const OverwriteMode = z.enum(["never", "ownFiles", "all"]);
export type OverwriteMode = z.infer<typeof OverwriteMode>;

/** Why an output folder was refused, for a client to turn into a question or a choice of folder. */
export const OutputProblemSchema = z.object({
  outDir: z.string(),
  /** GPIoT's files the user changed, or added at a path the new program writes (relative, "/"-separated). */
  changedFiles: z.array(z.string()).optional(),
  /** The `overwrite` answer that lets the write go on after the user agreed; absent: choose another folder. */
  allowWith: OverwriteMode.optional(),
});
export type OutputProblem = z.infer<typeof OutputProblemSchema>;

export const ErrorInfoSchema = z.object({ code: ErrorCode, message: z.string(), output: OutputProblemSchema.optional() });
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
  /** The passages RT's prompts held when the spec was written (absent or empty: none). */
  specCitations: z.array(CitationSchema).optional(),
  /** The passages CG's prompt held when the code was written. */
  codeCitations: z.array(CitationSchema).optional(),
  /** The sub-task's text was edited after its spec was written: spec and code are kept, but out of date until regenerated. */
  specStale: z.boolean().optional(),
});
export type ProgramSubTask = z.infer<typeof ProgramSubTaskSchema>;

export const ProgramSnapshotSchema = z.object({
  programId: z.string(),
  /** Written into the program's gpiot.json: the folder with this id is the program's own to rewrite. */
  ownerId: z.string(),
  requirement: z.string(),
  limits: ResourceLimitsSchema.nullable(),
  subTasks: z.array(ProgramSubTaskSchema),
  outDir: z.string().nullable(),
  files: z.array(z.string()),
  busy: z.boolean(),
  /** The last verification: every verify/repair round and which version the program keeps. */
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
  z.object({ type: z.literal("specReady"), ...jobRef, subTaskId: z.string(), spec: TaskSpecSchema, markdown: z.string(), citations: z.array(CitationSchema).optional() }),
  /** Decoded Python source as the model writes it. */
  z.object({ type: z.literal("codeDelta"), ...jobRef, subTaskId: z.string(), text: z.string() }),
  z.object({ type: z.literal("codeReady"), ...jobRef, subTaskId: z.string(), artifact: CodeArtifactSchema, syntax: SyntaxCheckSchema, citations: z.array(CitationSchema).optional() }),
  // Retrieval
  /** The passages put into a stage's prompt for a sub-task, and the prompt tokens they add. */
  z.object({ type: z.literal("passagesRetrieved"), ...jobRef, stage: z.enum(["rt", "cg"]), subTaskId: z.string(), citations: z.array(CitationSchema), promptTokens: z.number().int() }),
  /** Something went wrong that does not fail the job (an unusable retrieval index): what and what to do. */
  z.object({ type: z.literal("warning"), ...jobRef, stage: StageName.optional(), subTaskId: z.string().optional(), code: z.enum(["RETRIEVAL_UNAVAILABLE"]), message: z.string() }),
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
    /** Set when the job verified the program; the full history is in the program snapshot. */
    verification: z
      .object({ status: z.enum(["passed", "failed"]), bestRound: z.number().int(), rounds: z.number().int(), executed: z.boolean(), failure: VerifyFailureSchema.nullable() })
      .optional(),
    timings: z.array(StageTimingSchema),
    totalMs: z.number(),
    tokens: z.number(),
  }),
  z.object({ type: z.literal("jobFailed"), ...jobRef, kind: JobKind, error: ErrorInfoSchema, cancelled: z.boolean(), totalMs: z.number() }),
  // Verify and repair
  /**
   * A check of the program begins: round 0 is the program as generated, round n follows the n-th
   * repair. When the program will run, `sandbox` says what the sandbox probed, before it runs.
   */
  z.object({ type: z.literal("verifyStarted"), ...jobRef, round: z.number().int(), execute: z.boolean(), sandbox: SandboxProbeSchema.optional() }),
  /** The result of one round: static issues, the sandboxed run, the resource check, the failure. */
  z.object({ type: z.literal("verifyResult"), ...jobRef, round: z.number().int(), report: VerifyReportSchema }),
  /** A failing sub-task goes back to code generation with its code and this error (codeDelta/codeReady follow). */
  z.object({ type: z.literal("repairAttempt"), ...jobRef, round: z.number().int(), subTaskId: z.string(), subTaskIndex: z.number().int(), failureKind: FailureKind, error: z.string() }),
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
  /** What GPU fit chose (layers, context) and why, in words. */
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

// Retrieval index
export const IndexSourceKindSchema = z.enum(["folder", "corpus", "workspace"]);
const SkippedFileSchema = z.object({ path: z.string(), reason: z.string() });
export const IndexSourceInfoSchema = z.object({
  id: z.string(),
  kind: IndexSourceKindSchema,
  path: z.string(),
  addedAt: z.string(),
  files: z.number().int(),
  chunks: z.number().int(),
  skipped: z.array(SkippedFileSchema),
  missing: z.boolean(),
});
export const IndexListingSchema = z.object({
  dir: z.string(),
  state: z.enum(["none", "ready", "stale"]),
  problem: z.string().optional(),
  notes: z.array(z.string()),
  embedding: z.object({ key: z.string(), dims: z.number().int() }).nullable(),
  sources: z.array(IndexSourceInfoSchema),
  chunks: z.number().int(),
  vectors: z.number().int(),
});
export type IndexListing = z.infer<typeof IndexListingSchema>;
export const IndexUpdateSummarySchema = z.object({
  sources: z.number().int(),
  chunks: z.number().int(),
  vectors: z.number().int(),
  files: z.object({ read: z.number().int(), unchanged: z.number().int(), removed: z.number().int() }),
  skipped: z.array(SkippedFileSchema),
  chunksAdded: z.number().int(),
  chunksRemoved: z.number().int(),
  /** Chunks embedded in this update: only new or changed text is. */
  embedded: z.number().int(),
  embedding: z.object({ key: z.string(), dims: z.number().int() }).nullable(),
  notes: z.array(z.string()),
});
export type IndexUpdateSummary = z.infer<typeof IndexUpdateSummarySchema>;
const IndexSourceRefSchema = z.object({ id: z.string(), kind: IndexSourceKindSchema, path: z.string(), addedAt: z.string() });
export const IndexProgressSchema = z.object({
  operation: z.enum(["add", "remove", "rebuild"]),
  phase: z.enum(["read", "embed", "write"]),
  done: z.number().int(),
  total: z.number().int(),
  file: z.string().optional(),
});
export type IndexProgress = z.infer<typeof IndexProgressSchema>;

/** What to verify; the data file the user names is a path. */
const VerifyParamsSchema = VerifyRequestSchema.extend({ dataFile: PathText.optional() });

// Models: downloads, removal, GPU fit
export const PullPlanSchema = z.object({
  profile: z.string(),
  manifestPath: z.string(),
  modelsDir: z.string(),
  items: z.array(
    z.object({
      kind: z.enum(["model", "adapter", "embedding"]),
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
/** Every request's params also pass findUnsafeText: no string anywhere in them may hold NUL, a lone surrogate or a control character. */
const request = <P extends z.ZodType, R extends z.ZodType>(method: string, params: P, result: R): RequestDefinition<P, R> => ({ method, direction: "clientToServer", params: withSafeText(params), result });
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
    z.object({ profile: NameText.optional(), modelPath: PathText.optional() }).strict(),
    LoadedModelInfoSchema,
  ),
  /** Frees the models. Fails with PROGRAM_BUSY while a job runs. */
  unloadModels: request("gpiot/unloadModels", empty, z.object({ unloaded: z.boolean() })),
  /**
   * Queues a synthesis: TD, RT, CG, then assembly into `outDir` (when given). With `review` the
   * job stops after the decomposition or the specs and `gpiot/continue` goes on. The requirement,
   * the constraints, the context size and the output folder are checked before anything is
   * queued: a problem is this request's error (REQUIREMENT_*, NOTHING_TO_BUILD, CONSTRAINTS_*,
   * CONTEXT_TOO_SMALL, OUTPUT_*), not a failed job.
   */
  synthesize: request(
    "gpiot/synthesize",
    z
      .object({
        requirement: ProseText,
        constraints: ProseText.optional(),
        outDir: PathText.optional(),
        overwrite: OverwriteMode.default("never"),
        review: ReviewMode.default("none"),
        /** Verify (and repair) the program after assembly; running it needs consent. */
        verify: VerifyParamsSchema.optional(),
        /** false: the client's workspace is untrusted, so nothing generated may run. */
        workspaceTrusted: z.boolean().optional(),
      })
      .strict(),
    z.object({ jobId: z.string(), programId: z.string() }),
  ),
  /** Cancels a queued or running job; a running generation stops at the next token. */
  cancel: request("gpiot/cancel", z.object({ jobId: NameText }).strict(), z.object({ cancelled: z.boolean(), state: z.enum(["queued", "running", "finished", "unknown"]) })),
  getProgram: request("gpiot/getProgram", z.object({ programId: NameText }).strict(), ProgramSnapshotSchema),
  /**
   * Replaces the program's sub-task list (edit, add, delete, reorder). Entries with a known id keep
   * their spec and code when their text is unchanged; the rest need specs and code again.
   */
  updateSubTasks: request(
    "gpiot/updateSubTasks",
    z.object({ programId: NameText, subTasks: z.array(z.object({ id: NameText.optional(), subTask: SubTaskSchema })).min(1).max(12) }).strict(),
    ProgramSnapshotSchema,
  ),
  /** Replaces one sub-task's spec with the user's edit; its code becomes stale. */
  updateSpec: request("gpiot/updateSpec", z.object({ programId: NameText, subTaskId: NameText, spec: TaskSpecSchema }).strict(), ProgramSnapshotSchema),
  /**
   * Queues the rest of a reviewed program: missing or stale specs, missing or stale code, assembly.
   * With `assemble: false` it stops once every spec and code is up to date and writes no files.
   */
  continue: request(
    "gpiot/continue",
    z.object({ programId: NameText, review: ReviewMode.default("none"), outDir: PathText.optional(), overwrite: OverwriteMode.optional(), assemble: z.boolean().optional() }).strict(),
    z.object({ jobId: z.string() }),
  ),
  /** Queues a new spec (then code) or new code for one sub-task, from its current, possibly edited, text. */
  regenerate: request(
    "gpiot/regenerate",
    z.object({ programId: NameText, subTaskId: NameText, stage: z.enum(["spec", "code"]) }).strict(),
    z.object({ jobId: z.string() }),
  ),
  /**
   * Queues writing the program's files again, e.g. after a regenerate. The folder is checked when
   * the request arrives (an OUTPUT_* error names the problem) and again when the files are written.
   */
  assemble: request(
    "gpiot/assemble",
    z.object({ programId: NameText, outDir: PathText.optional(), overwrite: OverwriteMode.default("never") }).strict(),
    z.object({ jobId: z.string() }),
  ),
  /** The files an assembly would write now (nothing is written); fails with NOTHING_TO_ASSEMBLE when a part is missing. */
  previewProgram: request(
    "gpiot/previewProgram",
    z.object({ programId: NameText }).strict(),
    z.object({ files: z.array(z.object({ path: z.string(), kind: z.enum(["module", "main", "readme", "requirements", "manifest"]), content: z.string() })) }),
  ),
  /**
   * Puts a program back as a client saw it: with `programId`, that program's sub-tasks, specs and
   * code are replaced as given (undo); without, a new program is made from the data (after an engine
   * restart, which forgets every program), keeping its `ownerId` so that it may still rewrite the
   * folder it wrote. Answers the program as the engine now holds it.
   */
  restoreProgram: request(
    "gpiot/restoreProgram",
    z
      .object({
        programId: NameText.optional(),
        ownerId: z.uuid().optional(),
        requirement: ProseText.min(1),
        limits: ResourceLimitsSchema.nullable().optional(),
        subTasks: z.array(ProgramSubTaskSchema).max(12),
        outDir: PathText.nullable().optional(),
        files: z.array(PathText).optional(),
      })
      .strict(),
    ProgramSnapshotSchema,
  ),
  // Verify and repair
  /**
   * Queues a check of the program: static checks, then (with consent, in a trusted workspace) a
   * sandboxed run on sample inputs and the resource limits, repairing failing sub-tasks for up to
   * `repairRounds` rounds. Rewrites the program folder when it has one and the code changed.
   */
  verify: request(
    "gpiot/verify",
    z.object({ programId: NameText, workspaceTrusted: z.boolean().optional() }).extend(VerifyParamsSchema.shape).strict(),
    z.object({ jobId: z.string() }),
  ),
  /**
   * What the sandbox would be for a run with the current settings, probed now (cached per
   * interpreter): the interpreter, what isolation was found and, in `summary`, what to tell the
   * user before asking for consent. Runs no generated code.
   */
  sandboxProbe: request("gpiot/sandboxProbe", empty, SandboxProbeSchema),
  // Models: downloads, removal, GPU fit
  /** What `pullModel` would fetch for a profile: files, sizes, what is already there. Opens no connection. */
  pullPlan: request("gpiot/pullPlan", z.object({ profile: NameText.optional() }).strict(), PullPlanSchema),
  /**
   * Downloads (and converts) the missing files of a profile: the explicit request a client sends once
   * the user agreed. Progress arrives as `gpiot/pullProgress` with `pullId`; `gpiot/cancelPull` stops
   * it (what was fetched is kept and the next pull continues). Fails with OFFLINE in offline mode.
   */
  pullModel: request(
    "gpiot/pullModel",
    z.object({ profile: NameText.optional(), pullId: NameText.optional() }).strict(),
    z.object({ pullId: z.string(), profile: z.string(), files: z.array(z.object({ path: z.string(), action: z.enum(["present", "download", "convert"]), bytes: z.number(), resumed: z.boolean().optional() })) }),
  ),
  cancelPull: request("gpiot/cancelPull", z.object({ pullId: NameText }).strict(), z.object({ cancelled: z.boolean() })),
  /** Deletes the profile's downloaded files that no other profile uses (never files outside the models folder). */
  removeModel: request(
    "gpiot/removeModel",
    z.object({ profile: NameText }).strict(),
    z.object({ profile: z.string(), removed: z.array(z.string()), kept: z.array(z.object({ path: z.string(), reason: z.string() })), freedBytes: z.number() }),
  ),
  /**
   * The machine as the engine sees it: the backend its runtime uses now, GPU memory and RAM, which
   * GPU types the drivers support, and for which of them node-llama-cpp finds a runtime (its
   * prebuilt binaries package). Loads no model.
   */
  hardware: request(
    "gpiot/hardware",
    empty,
    z.object({
      backend: z.enum(["cuda", "vulkan", "metal", "cpu"]),
      devices: z.array(z.string()),
      vram: z.object({ total: z.number(), free: z.number() }),
      ram: z.object({ total: z.number(), free: z.number() }),
      platform: z.string(),
      arch: z.string(),
      runtimeVersion: z.string(),
      supportedGpus: z.array(z.enum(["cuda", "vulkan", "metal"])),
      /** The GPU runtimes that exist for this platform: the npm packages each needs, and whether node-llama-cpp finds them. */
      gpuRuntimes: z.array(z.object({ gpu: z.enum(["cuda", "vulkan", "metal"]), packages: z.array(z.string()), installed: z.boolean() })),
    }),
  ),
  /** GPU fit for a profile whose files are present: backend, layers, context per role, and why. */
  modelFit: request("gpiot/modelFit", z.object({ profile: NameText.optional() }).strict(), ModelFitSchema),
  // Retrieval index
  /** The index: its folder, state (and the problem when it cannot be used), sources, chunks and embedding model. */
  indexList: request("gpiot/indexList", empty, IndexListingSchema),
  /**
   * Adds a folder of documents (PDF, Markdown, text), a workspace folder (`kind: "workspace"`: used
   * only while that folder is open) or a retrieval corpus file, and indexes it; a source added again
   * is updated incrementally. Progress arrives as `gpiot/indexProgress`; `gpiot/cancelIndex` stops it.
   */
  indexAdd: request(
    "gpiot/indexAdd",
    z.object({ path: PathText, kind: IndexSourceKindSchema.optional(), embeddings: z.boolean().optional() }).strict(),
    z.object({ source: IndexSourceRefSchema, existed: z.boolean(), summary: IndexUpdateSummarySchema }),
  ),
  /** Removes a source (by id or path) and its chunks. */
  indexRemove: request("gpiot/indexRemove", z.object({ source: PathText }).strict(), z.object({ removed: IndexSourceRefSchema, summary: IndexUpdateSummarySchema })),
  /** Reads every source again, incrementally (`full`: from scratch, embeddings included). */
  indexRebuild: request("gpiot/indexRebuild", z.object({ full: z.boolean().optional() }).strict().optional(), IndexUpdateSummarySchema),
  /** Stops the index update that is running; the index stays as it was. */
  cancelIndex: request("gpiot/cancelIndex", empty, z.object({ cancelled: z.boolean() })),
  /** The passages retrieval would put into a prompt for this text (with the settings' sources and k). */
  indexSearch: request(
    "gpiot/indexSearch",
    z.object({ query: ProseText.pipe(z.string().min(1).max(8000)), k: z.number().int().min(1).max(50).optional() }).strict(),
    z.object({ passages: z.array(z.object({ citation: CitationSchema, text: z.string() })), warnings: z.array(z.string()) }),
  ),
} as const;

export const notifications = {
  /** Every event of every job, in order. */
  jobEvent: notification("gpiot/jobEvent", JobEventSchema),
  /** Model loading progress and state changes. */
  modelEvent: notification("gpiot/modelEvent", ModelEventSchema),
  /** Progress of a `gpiot/pullModel`: bytes of the current file, throttled to a few per second. */
  pullProgress: notification("gpiot/pullProgress", PullProgressSchema),
  /** Progress of an index update (files read, chunks embedded), throttled to a few per second. */
  indexProgress: notification("gpiot/indexProgress", IndexProgressSchema),
} as const;

export type RequestName = keyof typeof requests;
export type ParamsOf<N extends RequestName> = z.input<(typeof requests)[N]["params"]>;
export type ResultOf<N extends RequestName> = z.infer<(typeof requests)[N]["result"]>;

export { EngineSettingsSchema };
export type { EngineSettingsInput } from "./settings";

/** Anything that can send requests and receive notifications: a vscode-jsonrpc MessageConnection or a LanguageClient. */
export interface RpcEndpoint {
  sendRequest(method: string, params: unknown): Promise<unknown>;
  onNotification(method: string, handler: (params: unknown) => void): { dispose(): void };
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

  // Models: downloads, removal, GPU fit
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

  // Retrieval index
  private readonly indexListeners = new Set<(progress: IndexProgress) => void>();
  private indexSubscribed = false;

  onIndexProgress(listener: (progress: IndexProgress) => void): { dispose(): void } {
    if (!this.indexSubscribed) {
      this.indexSubscribed = true;
      this.endpoint.onNotification(notifications.indexProgress.method, (params) => {
        const progress = IndexProgressSchema.parse(params);
        for (const each of [...this.indexListeners]) each(progress);
      });
    }
    this.indexListeners.add(listener);
    return { dispose: () => this.indexListeners.delete(listener) };
  }
}
