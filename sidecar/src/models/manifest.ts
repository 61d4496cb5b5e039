/**
 * The models manifest (models/manifest.json): named profiles that say which GGUF file and which
 * LoRA adapters each role uses, and where to download them from. A user can edit it, point the
 * engine at their own manifest, point any role at a local file, or bypass it with a single model file.
 *
 * Where a file is: an absolute `file` (or `~/...`) is used as is. A relative `file` is looked up in
 * the manifest's folder, then in the models folder (setting `modelsDir`); a file that is in neither
 * place is expected in the models folder when the entry has a `source` (that is where `gpiot models
 * pull` puts it), else in the manifest's folder. An entry with a `source` and no `file` is stored in
 * the models folder under the source's file name.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { roleNames, type RoleName } from "../schemas";
import { PromptFormatSchema, type PromptFormat } from "../pipeline/promptFormats/promptFormat";

const fileRefFields = {
  /** Local path: absolute, `~/...`, or relative (manifest folder, then models folder). */
  file: z.string().min(1).optional(),
  /**
   * Where to download it from: `hf:<user>/<repo>/<path/in/repo.gguf>` (resolved against the
   * download endpoint, default Hugging Face) or an http(s) URL.
   */
  source: z.string().min(1).optional(),
  /** Exact size in bytes, checked after a download. Leave out when unknown. */
  sizeBytes: z.number().int().positive().optional(),
  /** Lower-case hex SHA-256, checked after a download. Leave out when unknown. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** Rough size for messages and disk-space checks when the exact size is unknown. */
  approxSizeBytes: z.number().int().positive().optional(),
};

export const ModelFileRefSchema = z
  .object(fileRefFields)
  .refine((ref) => ref.file !== undefined || ref.source !== undefined, { message: "a model reference needs a file or a source" });
export type ModelFileRef = z.infer<typeof ModelFileRefSchema>;

/**
 * A PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) that `gpiot models pull`
 * downloads and converts to the GGUF adapter named by the entry's `file`, against the profile's base.
 */
export const PeftSourceSchema = z.object({
  /** `hf:<user>/<repo>` (optionally `/<subfolder>`), or an http(s) URL of the folder. */
  source: z.string().min(1),
  /** Files to fetch from that folder. */
  files: z.array(z.string().min(1)).default(["adapter_config.json", "adapter_model.safetensors"]),
});
export type PeftSource = z.infer<typeof PeftSourceSchema>;

export const AdapterRefSchema = z
  .object({
    ...fileRefFields,
    peft: PeftSourceSchema.optional(),
    scale: z.number().min(0).max(4).default(1),
  })
  .refine((ref) => ref.file !== undefined || ref.source !== undefined, { message: "an adapter needs a file or a source" })
  .refine((ref) => !(ref.peft && ref.source), { message: "an adapter has either a GGUF source or a peft source, not both" })
  .refine((ref) => !ref.peft || ref.file !== undefined, { message: "a peft adapter needs a file: where its converted GGUF goes" });
export type AdapterRef = z.infer<typeof AdapterRefSchema>;

export { PromptFormatSchema, type PromptFormat };

/**
 * The small GGUF embedding model retrieval uses (sidecar/src/retrieval/): downloaded, verified and
 * GPU-fitted with the profile's other files. Prefixes are what the model was trained to see before
 * a query and before a passage (e.g. bge's query instruction); empty when it needs none.
 */
export const EmbeddingRefSchema = z
  .object({
    ...fileRefFields,
    queryPrefix: z.string().optional(),
    documentPrefix: z.string().optional(),
  })
  .refine((ref) => ref.file !== undefined || ref.source !== undefined, { message: "an embedding model needs a file or a source" });
export type EmbeddingRef = z.infer<typeof EmbeddingRefSchema>;

export const RoleConfigSchema = z.object({
  /** A separate model for this role; default: the profile's base model. */
  model: ModelFileRefSchema.optional(),
  adapters: z.array(AdapterRefSchema).default([]),
  /** The prompt format this role's model was trained on; default "json". */
  promptFormat: PromptFormatSchema.optional(),
});
export type RoleConfig = z.infer<typeof RoleConfigSchema>;

export const ProfileSchema = z.object({
  description: z.string().default(""),
  base: ModelFileRefSchema,
  roles: z.object({ td: RoleConfigSchema.optional(), rt: RoleConfigSchema.optional(), cg: RoleConfigSchema.optional() }).default({}),
  /** Context size per role that the profile wants (default 4096). */
  contextSize: z.number().int().min(256).optional(),
  /** The smallest context per role it can work with; GPU fit may go down to it to fit the device. */
  minContextSize: z.number().int().min(256).optional(),
  threads: z.number().int().positive().optional(),
  /** The embedding model retrieval uses with this profile; absent: lexical retrieval only. */
  embedding: EmbeddingRefSchema.optional(),
  /** Expected chat template family (chatml, llama2-chat, ...); informational, shown by `gpiot models list`. */
  chatTemplate: z.string().optional(),
  /** Free text for users: licence, hardware, where the files come from. */
  notes: z.string().optional(),
  /** Set on profiles written by `gpiot train`: the run they come from. */
  training: z
    .object({ run: z.string(), mode: z.enum(["lora", "pect"]), createdAt: z.string(), report: z.string().optional() })
    .optional(),
});
export type Profile = z.infer<typeof ProfileSchema>;

/**
 * The profiles by name, in a Map: a profile may be called anything, `constructor` and `__proto__`
 * included, and looking up a name that is not there never finds something inherited.
 */
const ProfilesSchema = z.preprocess(
  (value) => (typeof value === "object" && value !== null && !Array.isArray(value) ? new Map(Object.entries(value)) : value),
  z.map(z.string().min(1), ProfileSchema, { error: "expected an object that maps profile names to profiles" }),
);

export const ManifestSchema = z.object({
  version: z.literal(1),
  defaultProfile: z.string().min(1),
  profiles: ProfilesSchema,
});
export type Manifest = z.infer<typeof ManifestSchema>;

export interface ResolvedRole {
  modelPath: string;
  adapters: { path: string; scale: number }[];
  /** How the pipeline prompts this role; absent means "json". */
  promptFormat?: PromptFormat;
}

export interface ResolvedEmbedding {
  path: string;
  queryPrefix?: string;
  documentPrefix?: string;
}

export interface ResolvedModels {
  /** Profile name, or "file" for a single model file. */
  profile: string;
  roles: Record<RoleName, ResolvedRole>;
  /** The profile's embedding model, for retrieval. */
  embedding?: ResolvedEmbedding;
  contextSize?: number;
  minContextSize?: number;
  threads?: number;
}

export interface ResolveOptions {
  /** The models folder (setting `modelsDir`); default: defaultModelsDir(). */
  modelsDir?: string;
}

export class ManifestError extends Error {
  readonly code = "MANIFEST_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "ManifestError";
  }
}

/** The manifest shipped with GPIoT: `models/manifest.json` at the package root. */
export function defaultManifestPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, "models", "manifest.json");
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new ManifestError("Cannot find models/manifest.json next to the GPIoT installation.");
}

export interface LoadManifestOptions {
  /** Folder of trained profiles to add (default: defaultProfilesDir()); false: none. */
  profilesDir?: string | false;
}

/**
 * Reads a manifest and adds the profiles `gpiot train` wrote into the trained-profiles folder, so that
 * `--profile <run>` works with any manifest. A manifest's own profile wins over a trained one of the
 * same name; a trained-profile file that cannot be read is left out, and asking for it by name gives
 * its problem (getProfile).
 */
export function loadManifest(manifestPath: string, options: LoadManifestOptions = {}): Manifest {
  const manifest = readManifestFile(manifestPath);
  const dir = options.profilesDir === undefined ? defaultProfilesDir() : options.profilesDir;
  if (dir === false) return manifest;
  const trained = readTrainedProfiles(dir);
  for (const [name, profile] of trained.profiles) if (!manifest.profiles.has(name)) manifest.profiles.set(name, profile);
  const problems = new Map([...trained.problems].filter(([name]) => !manifest.profiles.has(name)));
  if (problems.size) trainedProfileProblems.set(manifest, problems);
  return manifest;
}

const trainedProfileProblems = new WeakMap<Manifest, Map<string, string>>();

function readManifestFile(manifestPath: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch (error) {
    throw new ManifestError(`Cannot read the models manifest ${manifestPath}: ${(error as Error).message}`);
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ManifestError(`The models manifest ${manifestPath} is invalid at ${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * The per-user models folder: $GPIOT_MODELS_DIR, else the platform's cache folder
 * (~/.cache/gpiot/models, $XDG_CACHE_HOME/gpiot/models, %LOCALAPPDATA%\\gpiot\\models,
 * ~/Library/Caches/gpiot/models). The VS Code extension passes its globalStorage path instead.
 */
export function defaultModelsDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GPIOT_MODELS_DIR) return path.resolve(expandHome(env.GPIOT_MODELS_DIR));
  if (process.platform === "win32") return path.join(env.LOCALAPPDATA ?? path.join(os.homedir(), "AppData", "Local"), "gpiot", "models");
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Caches", "gpiot", "models");
  return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "gpiot", "models");
}

export function expandHome(file: string): string {
  return file === "~" || file.startsWith("~/") || file.startsWith("~\\") ? path.join(os.homedir(), file.slice(1)) : file;
}

/** The file name a download source ends in: the last path segment of an `hf:` URI or URL. */
export function fileNameFromSource(source: string): string {
  const tail = /^https?:\/\//i.test(source) ? decodeURIComponent(new URL(source).pathname) : source.replace(/^(hf|huggingface):(\/\/)?/i, "").split("#")[0];
  const name = tail.split("/").filter(Boolean).pop() ?? "";
  if (!name || name.includes(":")) throw new ManifestError(`Cannot tell a file name from the source "${source}": give the entry a "file" or a source that ends in the file's path (hf:<user>/<repo>/<file>.gguf).`);
  return name;
}

/** Where an entry's file is, or will be once pulled. */
export function resolveRefPath(ref: { file?: string; source?: string; peft?: unknown }, manifestDir: string, modelsDir: string): string {
  if (!ref.file) return path.join(modelsDir, fileNameFromSource(ref.source!));
  const file = expandHome(ref.file);
  if (path.isAbsolute(file)) return path.normalize(file);
  const inManifestDir = path.resolve(manifestDir, file);
  const inModelsDir = path.resolve(modelsDir, file);
  if (existsSync(inManifestDir)) return inManifestDir;
  if (existsSync(inModelsDir)) return inModelsDir;
  return ref.source || ref.peft ? inModelsDir : inManifestDir;
}

export function getProfile(manifest: Manifest, profileName?: string): { name: string; profile: Profile } {
  const name = profileName ?? manifest.defaultProfile;
  const profile = manifest.profiles.get(name);
  const problem = trainedProfileProblems.get(manifest)?.get(name);
  if (!profile && problem) throw new ManifestError(problem);
  if (!profile) throw new ManifestError(`There is no model profile "${name}"; known profiles: ${[...manifest.profiles.keys()].join(", ")}.`);
  return { name, profile };
}

export function resolveProfile(manifest: Manifest, manifestPath: string, profileName?: string, options: ResolveOptions = {}): ResolvedModels {
  const { name, profile } = getProfile(manifest, profileName);
  const manifestDir = path.dirname(manifestPath);
  const modelsDir = path.resolve(options.modelsDir ?? defaultModelsDir());
  const localPath = (ref: { file?: string; source?: string; peft?: unknown }) => resolveRefPath(ref, manifestDir, modelsDir);
  const basePath = localPath(profile.base);
  const roles = {} as Record<RoleName, ResolvedRole>;
  for (const role of roleNames) {
    const config = profile.roles[role];
    roles[role] = {
      modelPath: config?.model ? localPath(config.model) : basePath,
      adapters: (config?.adapters ?? []).map((adapter) => ({ path: localPath(adapter), scale: adapter.scale })),
      promptFormat: config?.promptFormat ?? "json",
    };
  }
  const embedding = profile.embedding
    ? { path: localPath(profile.embedding), ...(profile.embedding.queryPrefix ? { queryPrefix: profile.embedding.queryPrefix } : {}), ...(profile.embedding.documentPrefix ? { documentPrefix: profile.embedding.documentPrefix } : {}) }
    : undefined;
  return { profile: name, roles, ...(embedding ? { embedding } : {}), contextSize: profile.contextSize, minContextSize: profile.minContextSize, threads: profile.threads };
}

/** One file a profile needs, with where it comes from. */
export interface ProfileFile {
  kind: "model" | "adapter" | "embedding";
  /** Roles that use it (a shared base is listed once); none for the embedding model. */
  roles: RoleName[];
  path: string;
  source?: string;
  peft?: PeftSource;
  sizeBytes?: number;
  sha256?: string;
  approxSizeBytes?: number;
  /** For a peft adapter: the model file it is converted against. */
  basePath?: string;
  present: boolean;
}

/** Every distinct file of a profile, models first, in role order. */
export function profileFiles(manifest: Manifest, manifestPath: string, profileName?: string, options: ResolveOptions = {}): { name: string; profile: Profile; files: ProfileFile[] } {
  const { name, profile } = getProfile(manifest, profileName);
  const manifestDir = path.dirname(manifestPath);
  const modelsDir = path.resolve(options.modelsDir ?? defaultModelsDir());
  const files = new Map<string, ProfileFile>();
  const add = (kind: ProfileFile["kind"], role: RoleName | null, ref: ModelFileRef | AdapterRef | EmbeddingRef, basePath?: string) => {
    const filePath = resolveRefPath(ref, manifestDir, modelsDir);
    const existing = files.get(filePath);
    if (existing) {
      if (role && !existing.roles.includes(role)) existing.roles.push(role);
      return filePath;
    }
    files.set(filePath, {
      kind,
      roles: role ? [role] : [],
      path: filePath,
      source: ref.source,
      peft: "peft" in ref ? ref.peft : undefined,
      sizeBytes: ref.sizeBytes,
      sha256: ref.sha256,
      approxSizeBytes: ref.approxSizeBytes,
      basePath,
      present: existsSync(filePath),
    });
    return filePath;
  };
  const modelOf = {} as Record<RoleName, string>;
  for (const role of roleNames) modelOf[role] = add("model", role, profile.roles[role]?.model ?? profile.base);
  for (const role of roleNames) for (const adapter of profile.roles[role]?.adapters ?? []) add("adapter", role, adapter, modelOf[role]);
  if (profile.embedding) add("embedding", null, profile.embedding);
  return { name, profile, files: [...files.values()] };
}

/** All three roles on one model file with no adapters. */
export function resolveSingleModel(modelPath: string): ResolvedModels {
  const role = (): ResolvedRole => ({ modelPath: path.resolve(modelPath), adapters: [], promptFormat: "json" });
  return { profile: "file", roles: { td: role(), rt: role(), cg: role() } };
}

// Trained profiles (written by `gpiot train`)

export const PROFILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Where `gpiot train` keeps the profiles of tuned runs, one `<name>.json` per profile:
 * $GPIOT_PROFILES_DIR, else the platform's config folder (~/.config/gpiot/profiles,
 * $XDG_CONFIG_HOME/gpiot/profiles, ~/Library/Application Support/gpiot/profiles, %APPDATA%\gpiot\profiles).
 */
export function defaultProfilesDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GPIOT_PROFILES_DIR) return path.resolve(expandHome(env.GPIOT_PROFILES_DIR));
  if (process.platform === "win32") return path.join(env.APPDATA ?? path.join(os.homedir(), "AppData", "Roaming"), "gpiot", "profiles");
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Application Support", "gpiot", "profiles");
  return path.join(env.XDG_CONFIG_HOME ?? path.join(os.homedir(), ".config"), "gpiot", "profiles");
}

export function readTrainedProfiles(dir: string): { profiles: Map<string, Profile>; problems: Map<string, string> } {
  const profiles = new Map<string, Profile>();
  const problems = new Map<string, string>();
  let names: string[];
  try {
    names = readdirSync(dir).filter((file) => file.endsWith(".json")).sort();
  } catch {
    return { profiles, problems };
  }
  for (const file of names) {
    const name = file.slice(0, -".json".length);
    const filePath = path.join(dir, file);
    if (!PROFILE_NAME_PATTERN.test(name)) continue;
    try {
      const parsed = ProfileSchema.safeParse(JSON.parse(readFileSync(filePath, "utf8")));
      if (parsed.success) profiles.set(name, parsed.data);
      else problems.set(name, `The trained profile ${filePath} is invalid at ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}. Export the run again (gpiot train export RUN) or delete the file.`);
    } catch (error) {
      problems.set(name, `Cannot read the trained profile ${filePath}: ${(error as Error).message}. Export the run again (gpiot train export RUN) or delete the file.`);
    }
  }
  return { profiles, problems };
}

/**
 * Writes a trained profile atomically (a temporary file renamed into place). Refuses a name the
 * given manifest already uses, so a run can never shadow a shipped profile.
 */
export function writeTrainedProfile(name: string, profile: Profile, options: { dir?: string; manifestPath?: string } = {}): string {
  if (!PROFILE_NAME_PATTERN.test(name)) throw new ManifestError(`"${name}" cannot be a profile name: use letters, digits, ".", "_" and "-" (at most 64, starting with a letter or digit).`);
  const manifestPath = options.manifestPath ?? defaultManifestPath();
  const own = readManifestFile(manifestPath);
  if (own.profiles.has(name)) throw new ManifestError(`The profile name "${name}" is taken by ${manifestPath}; choose another --name for the run.`);
  const checked = ProfileSchema.parse(profile);
  const dir = options.dir ?? defaultProfilesDir();
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(checked, null, 2)}\n`);
    renameSync(tmp, file);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  return file;
}
