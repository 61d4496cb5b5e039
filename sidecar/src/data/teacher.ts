/**
 * The teacher: the model that reads papers and writes decompositions for TDD. It is an ordinary
 * model profile or GGUF file, loaded through the same ModelHost as synthesis, and asked for
 * grammar-constrained structured output through the same path as the pipeline stages.
 */
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import type { RoleModels } from "../pipeline/structuredGeneration";
import { loadManifest, resolveProfile, resolveSingleModel, defaultManifestPath } from "../models/manifest";
import { ModelHost } from "../models/modelHost";
import type { RoleName } from "../schemas";
import { EngineSettingsSchema, type EngineSettingsInput } from "../settings";

export interface Teacher extends RoleModels {
  /** What was loaded, for fingerprints and messages ("file:/models/x.gguf", "profile default"). */
  readonly description: string;
  /** Tokens one prompt plus its answer may take in a role's context. */
  contextTokens(role: RoleName): number;
  countTokens(role: RoleName, text: string): number;
  dispose(): Promise<void>;
}

/** Loads the teacher from `settings.modelPath` (one GGUF for every role) or `settings.profile`. */
export async function loadTeacher(input: EngineSettingsInput, onProgress?: (message: string) => void): Promise<Teacher> {
  const settings = EngineSettingsSchema.parse(input);
  let resolved;
  let description: string;
  if (settings.modelPath) {
    resolved = resolveSingleModel(settings.modelPath);
    description = `file:${resolved.roles.td.modelPath}`;
  } else {
    const manifestPath = settings.manifestPath ?? defaultManifestPath();
    resolved = resolveProfile(loadManifest(manifestPath), manifestPath, settings.profile, { modelsDir: settings.modelsDir });
    description = `profile ${resolved.profile}`;
  }
  const llama: Llama = await getLlama({
    gpu: settings.gpu,
    build: "never",
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) onProgress?.(`llama.cpp: ${message.trimEnd()}`);
    },
  });
  let host: ModelHost;
  try {
    host = await ModelHost.load(llama, resolved, settings, { onProgress: (_, message) => onProgress?.(message) });
  } catch (error) {
    await llama.dispose();
    throw error;
  }
  return {
    description,
    generate: (request) => host.generate(request),
    contextTokens: (role) => host.info.roles[role].contextSize,
    countTokens: (role, text) => host.countTokens(role, text),
    async dispose() {
      await host.dispose();
      await llama.dispose();
    },
  };
}
