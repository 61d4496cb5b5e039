/**
 * The models manifest (models/manifest.json): named profiles that say which GGUF file and which
 * LoRA adapters each role uses. Paths are relative to the manifest's folder. A user can edit it,
 * point the engine at their own manifest, or bypass it with a single model file.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { roleNames, type RoleName } from "../schemas";

export const ModelFileRefSchema = z
  .object({
    /** Local path, relative to the manifest folder or absolute. */
    file: z.string().min(1).optional(),
    /** Where to download it from: an `hf:` URI or an https URL. */
    source: z.string().min(1).optional(),
    sizeBytes: z.number().int().positive().optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  })
  .refine((ref) => ref.file !== undefined || ref.source !== undefined, { message: "a model reference needs a file or a source" });
export type ModelFileRef = z.infer<typeof ModelFileRefSchema>;

export const AdapterRefSchema = z.object({
  file: z.string().min(1).optional(),
  source: z.string().min(1).optional(),
  sizeBytes: z.number().int().positive().optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  scale: z.number().min(0).max(4).default(1),
});
export type AdapterRef = z.infer<typeof AdapterRefSchema>;

export const RoleConfigSchema = z.object({
  /** A separate model for this role; default: the profile's base model. */
  model: ModelFileRefSchema.optional(),
  adapters: z.array(AdapterRefSchema).default([]),
});
export type RoleConfig = z.infer<typeof RoleConfigSchema>;

export const ProfileSchema = z.object({
  description: z.string().default(""),
  base: ModelFileRefSchema,
  roles: z.object({ td: RoleConfigSchema.optional(), rt: RoleConfigSchema.optional(), cg: RoleConfigSchema.optional() }).default({}),
  contextSize: z.number().int().min(256).optional(),
  threads: z.number().int().positive().optional(),
  /** What the chat template should be; informational, checked against the loaded model. */
  chatTemplate: z.string().optional(),
});
export type Profile = z.infer<typeof ProfileSchema>;

export const ManifestSchema = z.object({
  version: z.literal(1),
  defaultProfile: z.string().min(1),
  profiles: z.record(z.string().min(1), ProfileSchema),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export interface ResolvedRole {
  modelPath: string;
  adapters: { path: string; scale: number }[];
}

export interface ResolvedModels {
  /** Profile name, or "file" for a single model file. */
  profile: string;
  roles: Record<RoleName, ResolvedRole>;
  contextSize?: number;
  threads?: number;
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

export function loadManifest(manifestPath: string): Manifest {
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

function localPath(ref: { file?: string; source?: string }, manifestDir: string, what: string): string {
  if (!ref.file) throw new ManifestError(`${what} has no local file yet (source ${ref.source}); download it first (gpiot models pull).`);
  return path.resolve(manifestDir, ref.file);
}

export function resolveProfile(manifest: Manifest, manifestPath: string, profileName?: string): ResolvedModels {
  const name = profileName ?? manifest.defaultProfile;
  const profile = manifest.profiles[name];
  if (!profile) throw new ManifestError(`There is no model profile "${name}"; known profiles: ${Object.keys(manifest.profiles).join(", ")}.`);
  const manifestDir = path.dirname(manifestPath);
  const basePath = localPath(profile.base, manifestDir, `Profile "${name}" base model`);
  const roles = {} as Record<RoleName, ResolvedRole>;
  for (const role of roleNames) {
    const config = profile.roles[role];
    roles[role] = {
      modelPath: config?.model ? localPath(config.model, manifestDir, `Profile "${name}" ${role.toUpperCase()} model`) : basePath,
      adapters: (config?.adapters ?? []).map((adapter) => ({
        path: localPath(adapter, manifestDir, `Profile "${name}" ${role.toUpperCase()} adapter`),
        scale: adapter.scale,
      })),
    };
  }
  return { profile: name, roles, contextSize: profile.contextSize, threads: profile.threads };
}

/** All three roles on one model file with no adapters. */
export function resolveSingleModel(modelPath: string): ResolvedModels {
  const role = (): ResolvedRole => ({ modelPath: path.resolve(modelPath), adapters: [] });
  return { profile: "file", roles: { td: role(), rt: role(), cg: role() } };
}
