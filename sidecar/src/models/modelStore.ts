/**
 * The files of a profile on disk: what a pull would fetch (the plan a user confirms), the pull itself
 * (downloads, then PEFT conversions against the pulled base), and removing a profile's downloads.
 */
import { existsSync } from "node:fs";
import { readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { convertPeftToGguf } from "../peft/peftToGguf";
import { SafetensorsFile } from "../peft/safetensors";
import { assertOnline, downloadVerifiedFile, joinSource, ModelsError, PARTIAL_DIR, partialPaths, PROGRESS_SUFFIX, type DownloadProgress } from "./download";
import type { TransferTimeouts } from "./httpDownload";
import { defaultModelsDir, loadManifest, profileFiles, type Manifest, type PeftSource, type ProfileFile } from "./manifest";

export interface PullPlanItem {
  kind: "model" | "adapter" | "embedding";
  roles: string[];
  path: string;
  /** present: nothing to do; download: fetch `source`; convert: fetch the PEFT files (if not cached) and convert them. */
  action: "present" | "download" | "convert";
  source?: string;
  peft?: PeftSource;
  sizeBytes?: number;
  approxSizeBytes?: number;
  sha256?: string;
  basePath?: string;
  /** An interrupted earlier download of this file exists; the pull continues it. */
  resumable?: boolean;
}

export interface PullPlan {
  profile: string;
  manifestPath: string;
  modelsDir: string;
  items: PullPlanItem[];
  /** Sum of exact (or approximate) sizes of what will be fetched; approximate when `approximate`. */
  downloadBytes: number;
  approximate: boolean;
  needsNetwork: boolean;
}

export interface StoreOptions {
  manifestPath: string;
  modelsDir?: string;
}

export interface PullProgress extends Omit<DownloadProgress, "phase"> {
  profile: string;
  /** 0-based index of the plan item and the number of items with work to do. */
  item: number;
  items: number;
  phase: DownloadProgress["phase"] | "convert" | "done";
}

export interface PullOptions {
  offline: boolean;
  endpoint?: string;
  timeouts?: Partial<TransferTimeouts>;
  signal?: AbortSignal;
  onProgress?(progress: PullProgress): void;
  /** Log lines for the user (what was skipped, resumed, converted). */
  onNote?(message: string): void;
}

export interface PullResult {
  profile: string;
  files: { path: string; action: PullPlanItem["action"]; bytes: number; resumed?: boolean }[];
}

function modelsDirOf(options: StoreOptions): string {
  return path.resolve(options.modelsDir ?? defaultModelsDir());
}

export function planPull(profileName: string | undefined, options: StoreOptions, manifest: Manifest = loadManifest(options.manifestPath)): PullPlan {
  const modelsDir = modelsDirOf(options);
  const { name, files } = profileFiles(manifest, options.manifestPath, profileName, { modelsDir });
  const items: PullPlanItem[] = files.map((file) => planItem(file, name));
  let downloadBytes = 0;
  let approximate = false;
  for (const item of items) {
    if (item.action === "present") continue;
    const size = item.sizeBytes ?? item.approxSizeBytes;
    if (item.sizeBytes === undefined) approximate = true;
    downloadBytes += size ?? 0;
  }
  return { profile: name, manifestPath: options.manifestPath, modelsDir, items, downloadBytes, approximate, needsNetwork: items.some((item) => item.action !== "present") };
}

function planItem(file: ProfileFile, profile: string): PullPlanItem {
  const base = { kind: file.kind, roles: file.roles.map((role) => role.toUpperCase()), path: file.path, sizeBytes: file.sizeBytes, approxSizeBytes: file.approxSizeBytes, sha256: file.sha256, basePath: file.basePath };
  if (file.present) return { ...base, action: "present" };
  if (file.peft) return { ...base, action: "convert", peft: file.peft };
  if (!file.source)
    throw new ModelsError("MODEL_NOT_FOUND", `Profile "${profile}" needs ${file.path}, which is not there, and the manifest gives no source to download it from. Put the file there, or point the profile at a local file.`);
  const resumable = existsSync(partialPaths(file.path).progress);
  return { ...base, action: "download", source: file.source, ...(resumable ? { resumable } : {}) };
}

export async function pullProfile(plan: PullPlan, options: PullOptions): Promise<PullResult> {
  const work = plan.items.filter((item) => item.action !== "present");
  if (work.length) assertOnline(options.offline, `download the files of profile "${plan.profile}"`);
  const result: PullResult = { profile: plan.profile, files: [] };
  for (const item of plan.items) if (item.action === "present") result.files.push({ path: item.path, action: "present", bytes: (await stat(item.path)).size });
  for (const [index, item] of work.entries()) {
    if (options.signal?.aborted) throw new ModelsError("CANCELLED", "Pull cancelled.");
    const progress = (p: DownloadProgress | { path: string; phase: "convert" | "done"; bytes: number; totalBytes: number }) =>
      options.onProgress?.({ ...p, profile: plan.profile, item: index, items: work.length });
    if (item.action === "download") {
      const downloaded = await downloadVerifiedFile({
        source: item.source!,
        destination: item.path,
        sizeBytes: item.sizeBytes,
        sha256: item.sha256,
        endpoint: options.endpoint,
        offline: options.offline,
        timeouts: options.timeouts,
        signal: options.signal,
        onProgress: progress,
      });
      if (downloaded.resumed) options.onNote?.(`Continued an interrupted download of ${path.basename(item.path)}.`);
      progress({ path: item.path, phase: "done", bytes: downloaded.bytes, totalBytes: downloaded.bytes });
      result.files.push({ path: item.path, action: "download", bytes: downloaded.bytes, resumed: downloaded.resumed });
    } else {
      const bytes = await pullPeftAdapter(item, plan, options, progress);
      result.files.push({ path: item.path, action: "convert", bytes });
    }
  }
  return result;
}

/** Where the PEFT files of an adapter source are kept (so a failed conversion does not fetch them again). */
export function peftCacheDir(modelsDir: string, source: string): string {
  const slug = source.replace(/^(hf|huggingface):(\/\/)?/i, "hf_").replace(/^https?:\/\//i, "").replace(/[^A-Za-z0-9._-]+/g, "_");
  return path.join(modelsDir, ".peft", slug);
}

async function pullPeftAdapter(
  item: PullPlanItem,
  plan: PullPlan,
  options: PullOptions,
  progress: (p: { path: string; phase: "download" | "verify" | "convert" | "done"; bytes: number; totalBytes: number }) => void,
): Promise<number> {
  const peft = item.peft!;
  const cacheDir = peftCacheDir(plan.modelsDir, peft.source);
  for (const file of peft.files) {
    const destination = path.join(cacheDir, file);
    if (existsSync(destination)) continue;
    await downloadVerifiedFile({
      source: joinSource(peft.source, file),
      destination,
      expectGguf: false,
      endpoint: options.endpoint,
      offline: options.offline,
      timeouts: options.timeouts,
      signal: options.signal,
      onProgress: (p) => progress({ ...p, path: item.path }),
    });
    if (file.endsWith(".safetensors")) {
      try {
        await SafetensorsFile.open(destination);
      } catch (error) {
        await rm(destination, { force: true });
        throw new ModelsError("CHECKSUM_MISMATCH", `${joinSource(peft.source, file)} is not a valid safetensors file (${(error as Error).message}); it was deleted.`);
      }
    }
  }
  if (!item.basePath || !existsSync(item.basePath))
    throw new ModelsError("MODEL_NOT_FOUND", `Cannot convert ${peft.source}: its base model ${item.basePath ?? "(none)"} is not there yet.`);
  progress({ path: item.path, phase: "convert", bytes: 0, totalBytes: 0 });
  try {
    const converted = await convertPeftToGguf({ adapterDir: cacheDir, basePath: item.basePath, outPath: item.path, name: path.basename(item.path, ".gguf") });
    options.onNote?.(`Converted ${peft.source} (r=${converted.ranks.join("/")}, alpha ${converted.alpha}, ${converted.targets.join("/")}, ${converted.layers} layers) to ${item.path}.`);
    progress({ path: item.path, phase: "done", bytes: converted.bytes, totalBytes: converted.bytes });
    return converted.bytes;
  } catch (error) {
    throw new ModelsError("CONVERSION_FAILED", `Converting the PEFT adapter ${peft.source} failed: ${(error as Error).message}`);
  }
}

export interface RemoveResult {
  profile: string;
  removed: string[];
  kept: { path: string; reason: string }[];
  freedBytes: number;
}

/**
 * Deletes the profile's files that live in the models folder and that no other profile uses, with
 * their interrupted downloads and cached PEFT files. Files elsewhere (the repository's test models,
 * a user's own files) are never deleted.
 */
export async function removeProfile(profileName: string | undefined, options: StoreOptions, manifest: Manifest = loadManifest(options.manifestPath)): Promise<RemoveResult> {
  const modelsDir = modelsDirOf(options);
  const { name, files } = profileFiles(manifest, options.manifestPath, profileName, { modelsDir });
  const usedElsewhere = new Map<string, string>();
  for (const other of manifest.profiles.keys()) {
    if (other === name) continue;
    for (const file of profileFiles(manifest, options.manifestPath, other, { modelsDir }).files) usedElsewhere.set(file.path, other);
  }
  const result: RemoveResult = { profile: name, removed: [], kept: [], freedBytes: 0 };
  const inside = (file: string) => {
    const relative = path.relative(modelsDir, file);
    return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
  };
  for (const file of files) {
    if (!inside(file.path)) {
      if (file.present) result.kept.push({ path: file.path, reason: "outside the models folder" });
      continue;
    }
    const other = usedElsewhere.get(file.path);
    if (other) {
      if (file.present) result.kept.push({ path: file.path, reason: `also used by profile "${other}"` });
      continue;
    }
    const candidates = [file.path, ...Object.values(partialPaths(file.path))];
    if (file.peft) {
      const cache = peftCacheDir(modelsDir, file.peft.source);
      for (const peftFile of file.peft.files) candidates.push(path.join(cache, peftFile), ...Object.values(partialPaths(path.join(cache, peftFile))));
    }
    for (const candidate of candidates) {
      if (!existsSync(candidate)) continue;
      result.freedBytes += (await stat(candidate)).size;
      await rm(candidate, { force: true });
      result.removed.push(candidate);
    }
  }
  await removeEmptyDirs(modelsDir);
  return result;
}

async function removeEmptyDirs(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const child = path.join(dir, entry.name);
    await removeEmptyDirs(child);
    if ((await readdir(child)).length === 0) await rm(child, { recursive: true, force: true });
  }
}

export { PARTIAL_DIR, PROGRESS_SUFFIX };
