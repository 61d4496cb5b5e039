/**
 * The `gpiot.*` settings: what the sidecar receives as `initializationOptions`, and where programs
 * are written. Settings that name something to load or run (model, manifest, Python) are declared
 * `restrictedConfigurations`, so VS Code itself ignores workspace values of them in untrusted
 * workspaces.
 */
import path from "node:path";
import * as vscode from "vscode";
import type { EngineSettingsInput, ReviewMode } from "../../sidecar/src/protocol";

export const SECTION = "gpiot";

/** Settings whose change needs a restart of the sidecar (they are its initializationOptions). */
export const ENGINE_SETTINGS = ["profile", "modelPath", "manifestPath", "threads", "gpu", "contextSize", "temperature", "pythonPath", "modelsDir", "offline", "downloadEndpoint", "parallelSubTasks", "backend", "remote", "retrieval"] as const;

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

export function firstWorkspaceFolder(): string | undefined {
  const folder = vscode.workspace.workspaceFolders?.find((candidate) => candidate.uri.scheme === "file");
  return folder?.uri.fsPath;
}

/** A path from a setting: `~` and `${workspaceFolder}` expanded, relative paths against the first workspace folder. */
export function resolveSettingPath(value: string): string | undefined {
  const trimmed = value.trim();
  if (!trimmed) return undefined;
  const workspace = firstWorkspaceFolder();
  let expanded = trimmed.replace(/\$\{workspaceFolder\}/g, workspace ?? "");
  if (expanded === "~" || expanded.startsWith("~/")) expanded = path.join(process.env.HOME ?? "", expanded.slice(1));
  if (path.isAbsolute(expanded)) return path.normalize(expanded);
  return workspace ? path.join(workspace, expanded) : path.resolve(expanded);
}

/**
 * The engine's settings. Downloaded models go to `gpiot.modelsDir` when the user chose a folder,
 * else to `defaultModelsDir` (the extension's global storage).
 */
export function engineSettings(defaultModelsDir?: string): EngineSettingsInput {
  const c = config();
  const settings: EngineSettingsInput = {};
  const modelsDir = resolveSettingPath(c.get<string>("modelsDir", "")) ?? defaultModelsDir;
  if (modelsDir) settings.modelsDir = modelsDir;
  if (c.get<boolean>("offline", false)) settings.offline = true;
  const endpoint = c.get<string>("downloadEndpoint", "").trim();
  if (/^https?:\/\/\S+$/i.test(endpoint)) settings.downloadEndpoint = endpoint;
  const profile = c.get<string>("profile", "").trim();
  if (profile) settings.profile = profile;
  const modelPath = resolveSettingPath(c.get<string>("modelPath", ""));
  if (modelPath) settings.modelPath = modelPath;
  const manifestPath = resolveSettingPath(c.get<string>("manifestPath", ""));
  if (manifestPath) settings.manifestPath = manifestPath;
  const threads = c.get<number>("threads", 0);
  if (Number.isInteger(threads) && threads > 0) settings.threads = threads;
  const gpu = c.get<string>("gpu", "auto");
  settings.gpu = gpu === "cpu" ? false : gpu === "cuda" || gpu === "vulkan" || gpu === "metal" ? gpu : "auto";
  const contextSize = c.get<number>("contextSize", 0);
  if (Number.isInteger(contextSize) && contextSize >= 256) settings.contextSize = contextSize;
  const temperature = c.get<number>("temperature", 0);
  if (typeof temperature === "number" && temperature >= 0 && temperature <= 2) settings.temperature = temperature;
  const python = c.get<string>("pythonPath", "").trim();
  // A bare name ("python3") is looked up on PATH; anything with a separator is a path.
  if (python) settings.python = /[\\/]/.test(python) ? resolveSettingPath(python)! : python;
  settings.retrieval = retrievalSettings();
  return settings;
}

/** Where the document index lives: set once at activation to a folder of the extension's global storage. */
let indexDir: string | undefined;

export function setIndexDir(dir: string): void {
  indexDir = dir;
}

/** The `gpiot.retrieval.*` settings, the index folder and the open workspace folders (for workspace sources). */
export function retrievalSettings(): NonNullable<EngineSettingsInput["retrieval"]> {
  const c = config();
  const k = c.get<number>("retrieval.k", 4);
  const sources = c.get<string[]>("retrieval.sources", []).filter((value) => typeof value === "string" && value.trim()).map((value) => (/^s[0-9a-f]{10}$/.test(value.trim()) ? value.trim() : (resolveSettingPath(value) ?? value)));
  return {
    enabled: c.get<boolean>("retrieval.enabled", true) !== false,
    ...(Number.isInteger(k) && k >= 1 && k <= 20 ? { k } : {}),
    sources,
    ...(indexDir ? { indexDir } : {}),
    workspaceFolders: (vscode.workspace.workspaceFolders ?? []).filter((folder) => folder.uri.scheme === "file").map((folder) => folder.uri.fsPath),
  };
}

export function reviewMode(): ReviewMode {
  const value = config().get<string>("reviewBeforeGenerate", "none");
  return value === "decomposition" || value === "specs" ? value : "none";
}

/** The folder programs go into, or undefined when the user must be asked (empty setting, or a relative one with no workspace folder). */
export function configuredOutputFolder(): string | undefined {
  const value = config().get<string>("outputFolder", "gpiot-programs").trim();
  if (!value) return undefined;
  if (!path.isAbsolute(value) && !value.startsWith("~") && !value.includes("${workspaceFolder}") && !firstWorkspaceFolder()) return undefined;
  return resolveSettingPath(value);
}

export function openStreamingEditors(): boolean {
  return config().get<boolean>("openStreamingEditors", true);
}

/** Where the "Synthesize from comment" CodeLens appears: comments that read like requirements, only marked (GPIoT:) or selected ones, or nowhere. */
export type CodeLensMode = "requirements" | "marked" | "off";

export function codeLensMode(): CodeLensMode {
  const value = config().get<string | boolean>("codeLens", "requirements");
  if (value === false || value === "off") return "off";
  if (value === "marked") return "marked";
  return "requirements";
}

export function offline(): boolean {
  return config().get<boolean>("offline", false);
}

/** What GPIoT does when it finds a GPU whose runtime is not installed. */
export function gpuRuntimeMode(): "ask" | "download" | "never" {
  const value = config().get<string>("gpuRuntime", "ask");
  return value === "download" || value === "never" ? value : "ask";
}

/** npm registry the GPU runtimes are fetched from. */
export function gpuRuntimeRegistry(): string {
  const value = config().get<string>("gpuRuntimeRegistry", "").trim();
  return /^https?:\/\/\S+$/i.test(value) ? value : "https://registry.npmjs.org/";
}

export async function updateSetting(key: string, value: unknown): Promise<void> {
  const target = vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  await config().update(key, value, target);
}

export { programFolderName } from "./outputFolders";
