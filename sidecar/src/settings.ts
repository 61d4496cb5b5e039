/**
 * Engine settings: the user can set each one (VS Code settings, CLI flags); unset values are
 * derived from the machine and the model profile, never from node-llama-cpp's own defaults
 * (its default thread count is badly slow on small CPUs).
 */
import os from "node:os";
import { z } from "zod";
import { RemoteSettingsSchema } from "./shared/remoteSettings";

export const GpuSetting = z.union([z.literal("auto"), z.literal(false), z.enum(["cuda", "vulkan", "metal"])]);
export type GpuSetting = z.infer<typeof GpuSetting>;

export const DEFAULT_PARALLEL_SUB_TASKS = 4;

export const StageTokenLimitsSchema = z.object({
  td: z.number().int().positive().default(2048),
  rtTarget: z.number().int().positive().default(256),
  rtIo: z.number().int().positive().default(1024),
  cg: z.number().int().positive().default(4096),
});
export type StageTokenLimits = z.infer<typeof StageTokenLimitsSchema>;

// Verify and repair
/** Checking, running and repairing generated programs (see sidecar/src/verify/). */
export const VerifySettingsSchema = z.object({
  /** Verify every synthesized program (static checks; running it also needs consent). */
  enabled: z.boolean().default(false),
  /** The user agreed that generated programs may run in the sandbox. */
  consent: z.boolean().default(false),
  /** Repair rounds after a failed check; 0 = check only. */
  repairRounds: z.number().int().min(0).max(10).default(3),
  /** Wall-clock limit of one sandboxed run. */
  timeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
  /** Address-space cap of one sandboxed run (RLIMIT_AS; counts virtual memory, so keep it generous). */
  memoryMB: z.number().int().min(64).max(1_048_576).default(4096),
  /** Interpreter of the Python environment to check and run programs with; default: the `python` setting. */
  pythonPath: z.string().min(1).optional(),
  /** "auto": isolate network and filesystem where the OS allows; "required": refuse to run otherwise. */
  isolation: z.enum(["auto", "required"]).default("auto"),
});
export type VerifySettings = z.infer<typeof VerifySettingsSchema>;

// Retrieval
/** Passages from the user's index in the RT and CG prompts (see sidecar/src/retrieval/). */
export const RetrievalSettingsSchema = z.object({
  /** Use the index when one exists; off: no retrieval at all. */
  enabled: z.boolean().default(true),
  /** Passages per prompt (at most; fewer when the token budget is reached). */
  k: z.number().int().min(1).max(20).default(4),
  /** Most tokens the passages may add to one prompt (less when the role's context leaves less room). */
  maxPromptTokens: z.number().int().min(0).max(16384).default(600),
  /** Source ids or paths to retrieve from; empty: every source (workspace sources only for their workspace). */
  sources: z.array(z.string().min(1)).default([]),
  /** The index folder; default: defaultIndexDir() (e.g. ~/.local/share/gpiot/index). */
  indexDir: z.string().min(1).optional(),
  /** An embedding model file other than the profile's. */
  embeddingModelPath: z.string().min(1).optional(),
  /** Workspace folders open now: sources added as "workspace" are used only for their own workspace. */
  workspaceFolders: z.array(z.string().min(1)).default([]),
  /** Documents larger than this are skipped when indexing. */
  maxFileMB: z.number().min(1).max(4096).default(64),
});
export type RetrievalSettings = z.infer<typeof RetrievalSettingsSchema>;

export const EngineSettingsSchema = z.object({
  /** CPU threads for evaluation; default: the profile's, else the machine's available parallelism. */
  threads: z.number().int().positive().max(256).optional(),
  gpu: GpuSetting.default("auto"),
  /** Layers to offload to the GPU; "auto" lets node-llama-cpp fit them to free VRAM. */
  gpuLayers: z.union([z.literal("auto"), z.number().int().min(0)]).default("auto"),
  /** Context size per role; default: the profile's, else 4096. */
  contextSize: z.number().int().min(256).max(131072).optional(),
  /** 0 = greedy (reproducible); higher values sample. */
  temperature: z.number().min(0).max(2).default(0),
  seed: z.number().int().min(0).optional(),
  maxTokens: StageTokenLimitsSchema.default(StageTokenLimitsSchema.parse({})),
  /** Python interpreter used to check generated code. */
  python: z.string().min(1).default("python3"),
  /** Profile loaded when a job needs models and none are loaded; default: the manifest's default. */
  profile: z.string().min(1).optional(),
  /** One GGUF file for all three roles; takes precedence over `profile`. */
  modelPath: z.string().min(1).optional(),
  /** Path of the models manifest; default: the manifest shipped in models/. */
  manifestPath: z.string().optional(),
  // Models: downloads and storage
  /** Never open a network connection: downloads are refused, nothing remote is read. */
  offline: z.boolean().default(false),
  /** Where downloaded models live; default: defaultModelsDir() (e.g. ~/.cache/gpiot/models). */
  modelsDir: z.string().min(1).optional(),
  /** Base URL used for `hf:` sources instead of https://huggingface.co/ (a mirror). */
  downloadEndpoint: z.string().url().optional(),
  /**
   * A download fails when the server sends nothing for this long (read timeout); connecting may take
   * at most 10 s of it (connect timeout). Default 30 s.
   */
  downloadTimeoutMs: z.number().int().min(100).max(600_000).optional(),
  // Verify and repair
  verify: VerifySettingsSchema.default(VerifySettingsSchema.parse({})),
  /**
   * Sub-tasks generated at once: RT targets and CG run on this many sequences of the role's context
   * (locally; the GPU fit may lower it) or as this many concurrent requests (remotely). 1: one after another.
   */
  parallelSubTasks: z.number().int().min(1).max(16).default(DEFAULT_PARALLEL_SUB_TASKS),
  /** Roles that run on an OpenAI-compatible server instead of the local models. */
  remote: RemoteSettingsSchema.optional(),
  // Retrieval
  retrieval: RetrievalSettingsSchema.default(RetrievalSettingsSchema.parse({})),
});
export type EngineSettingsInput = z.input<typeof EngineSettingsSchema>;
export type EngineSettings = z.infer<typeof EngineSettingsSchema>;

export const DEFAULT_CONTEXT_SIZE = 4096;

export function defaultThreadCount(): number {
  return Math.max(1, os.availableParallelism());
}
