/**
 * Where the models run, from VS Code: per role (`gpiot.backend.td|rt|cg`) the local models or an
 * OpenAI-compatible server (`gpiot.remote.*`: vLLM, SGLang, LM Studio, llama.cpp's llama-server),
 * and how many sub-tasks are generated at once (`gpiot.parallelSubTasks`).
 *
 * The server's API key lives in VS Code's SecretStorage ("GPIoT: Set Remote API Key"). The engine
 * gets it in its environment (GPIOT_API_KEY) when it starts: it is never written to settings, never
 * part of the engine's initialization options, and never logged. Changing it restarts the engine.
 */
import * as vscode from "vscode";
import type { EngineSettingsInput } from "../../sidecar/src/protocol";
import { API_KEY_ENV_DEFAULT, RemoteSettingsSchema, type RemoteEndpointInput } from "../../sidecar/src/shared/remoteSettings";

export const API_KEY_SECRET = "gpiot.remote.apiKey";
const ROLES = ["td", "rt", "cg"] as const;

/** The engine settings these settings make: `parallelSubTasks`, and `remote` when a role runs on a server. */
export function remoteEngineSettings(report: (problem: string) => void = () => undefined): Pick<EngineSettingsInput, "parallelSubTasks" | "remote"> {
  const config = vscode.workspace.getConfiguration("gpiot");
  const settings: Pick<EngineSettingsInput, "parallelSubTasks" | "remote"> = {};
  const parallel = config.get<number>("parallelSubTasks", 4);
  if (Number.isInteger(parallel) && parallel >= 1 && parallel <= 16) settings.parallelSubTasks = parallel;
  const remoteRoles = ROLES.filter((role) => config.get<string>(`backend.${role}`, "local") === "remote");
  if (remoteRoles.length === 0) return settings;
  const baseUrl = config.get<string>("remote.baseUrl", "").trim();
  const model = config.get<string>("remote.model", "").trim();
  const adapters = config.get<Record<string, string>>("remote.adapters", {}) ?? {};
  const adapterSelection = config.get<string>("remote.adapterSelection", "model") as RemoteEndpointInput["adapterSelection"];
  const timeoutSeconds = config.get<number>("remote.requestTimeout", 120);
  const roles: Partial<Record<(typeof ROLES)[number], RemoteEndpointInput>> = {};
  for (const role of remoteRoles) {
    const adapter = typeof adapters[role] === "string" ? adapters[role].trim() : "";
    roles[role] = { baseUrl, model, adapterSelection, apiKeyEnv: API_KEY_ENV_DEFAULT, ...(adapter ? { adapter } : {}) };
  }
  const remote = {
    roles,
    maxConcurrentRequests: config.get<number>("remote.maxConcurrentRequests", 8),
    connectTimeoutMs: Math.round(timeoutSeconds * 1000),
    idleTimeoutMs: Math.round(timeoutSeconds * 1000),
  };
  const parsed = RemoteSettingsSchema.safeParse(remote);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const setting = issue.path.includes("baseUrl") ? "gpiot.remote.baseUrl" : issue.path.includes("model") ? "gpiot.remote.model" : `gpiot.remote (${issue.path.join(".")})`;
    report(`${remoteRoles.map((role) => role.toUpperCase()).join(", ")} should run on a server, but ${setting} is not valid (${issue.message}): they run on the local models until it is set.`);
    return settings;
  }
  settings.remote = remote;
  return settings;
}

export class RemoteBackend implements vscode.Disposable {
  private lastProblem: string | undefined;

  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly log: vscode.LogOutputChannel,
    /** Restarts the engine so that it gets the new key (after a running job). */
    private readonly restartEngine: () => Promise<void>,
  ) {}

  /** The engine settings of this file, reporting an incomplete remote setup once per change. */
  engineSettings(): Pick<EngineSettingsInput, "parallelSubTasks" | "remote"> {
    let problem: string | undefined;
    const settings = remoteEngineSettings((message) => (problem = message));
    if (problem && problem !== this.lastProblem) {
      this.log.warn(problem);
      const openSettings = vscode.l10n.t("Open Settings");
      void vscode.window.showWarningMessage(vscode.l10n.t("GPIoT: {0}", problem), openSettings).then((choice) => {
        if (choice === openSettings) void vscode.commands.executeCommand("workbench.action.openSettings", "gpiot.remote");
      });
    }
    this.lastProblem = problem;
    return settings;
  }

  /** What the engine process gets in its environment: the API key, when one is stored. */
  async environment(): Promise<Record<string, string>> {
    const key = await this.secrets.get(API_KEY_SECRET);
    return key ? { [API_KEY_ENV_DEFAULT]: key } : {};
  }

  register(): vscode.Disposable[] {
    return [
      // `key` is for tests and scripts; people type it into a password box.
      vscode.commands.registerCommand("gpiot.setRemoteApiKey", async (key?: string) => {
        const value =
          typeof key === "string"
            ? key
            : await vscode.window.showInputBox({
                title: vscode.l10n.t("GPIoT: API key of the remote model server"),
                prompt: vscode.l10n.t("Stored in VS Code's secret storage and given only to the GPIoT engine. Leave empty to remove it."),
                password: true,
                ignoreFocusOut: true,
              });
        if (value === undefined) return false;
        if (value.trim()) await this.secrets.store(API_KEY_SECRET, value.trim());
        else await this.secrets.delete(API_KEY_SECRET);
        return true;
      }),
      vscode.commands.registerCommand("gpiot.clearRemoteApiKey", async () => {
        await this.secrets.delete(API_KEY_SECRET);
        return true;
      }),
      this.secrets.onDidChange((event) => {
        if (event.key !== API_KEY_SECRET) return;
        this.log.info("The remote API key changed: restarting the GPIoT engine with it.");
        void this.restartEngine().catch((error) => this.log.error(`Restarting the engine after the API key changed failed: ${(error as Error).message}`));
      }),
    ];
  }

  dispose(): void {}
}
