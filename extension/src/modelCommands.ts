/**
 * The model and the engine: which profile or GGUF file GPIoT uses, loading it, its state (from
 * `gpiot/modelEvent` and the job events), whether any model is set up at all (the view's welcome
 * content), the engine's status and its log.
 */
import { existsSync } from "node:fs";
import * as vscode from "vscode";
import type { LoadedModelInfo, ResultOf } from "../../sidecar/src/protocol";
import { engineSettings, updateSetting } from "./config";
import type { ProgramStore } from "./programStore";
import { errorInfoOf, type Sidecar } from "./sidecar";
import type { Ui } from "./ui";

export type ModelStatus =
  | { state: "engineStopped" }
  | { state: "engineStarting" }
  | { state: "engineFailed" }
  | { state: "none"; available: boolean | undefined }
  | { state: "loading"; progress: number; message: string }
  | { state: "ready"; info: LoadedModelInfo }
  | { state: "error"; message: string };

export class ModelManager implements vscode.Disposable {
  private statusValue: ModelStatus = { state: "engineStopped" };
  private availability: boolean | undefined;
  private readonly emitter = new vscode.EventEmitter<ModelStatus>();
  readonly onDidChange = this.emitter.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly sidecar: Sidecar,
    private readonly store: ProgramStore,
    private readonly ui: Ui,
  ) {
    void vscode.commands.executeCommand("setContext", "gpiot.modelChecked", false);
    this.disposables.push(
      sidecar.onDidChangeState((state) => {
        if (state === "starting" || state === "restarting") this.set({ state: "engineStarting" });
        else if (state === "failed") this.set({ state: "engineFailed" });
        else if (state === "stopped") this.set({ state: "engineStopped" });
      }),
      sidecar.onDidBecomeReady(() => void this.refresh()),
      sidecar.onModelEvent((event) => {
        if (event.type === "loading") this.set({ state: "loading", progress: event.progress, message: event.message });
        else if (event.type === "loaded") {
          this.setAvailable(true);
          this.set({ state: "ready", info: event.info });
        } else if (event.type === "unloaded") this.set({ state: "none", available: this.availability });
        else this.set({ state: "error", message: event.error.message });
      }),
      store.onDidChangeProgram(() => this.emitter.fire(this.statusValue)),
    );
  }

  get status(): ModelStatus {
    return this.statusValue;
  }

  /** Whether a job is running right now (the status bar shows "generating"). */
  get generating(): boolean {
    return this.store.jobs().some((job) => job.status === "running" && job.generation === this.sidecar.generation);
  }

  get available(): boolean | undefined {
    return this.availability;
  }

  private set(status: ModelStatus): void {
    this.statusValue = status;
    this.emitter.fire(status);
  }

  private setAvailable(available: boolean): void {
    this.availability = available;
    void vscode.commands.executeCommand("setContext", "gpiot.modelAvailable", available);
    void vscode.commands.executeCommand("setContext", "gpiot.modelChecked", true);
  }

  /** Reads the engine's state and whether the configured model files exist. */
  async refresh(): Promise<void> {
    try {
      const status = await this.sidecar.request((rpc) => rpc.request("status"));
      if (status.models) this.set({ state: "ready", info: status.models });
      else if (status.modelState === "loading") this.set({ state: "loading", progress: 0, message: "Loading" });
      else this.set({ state: "none", available: this.availability });
      const settings = engineSettings();
      let available: boolean;
      if (settings.modelPath) available = existsSync(settings.modelPath);
      else {
        const profiles = await this.sidecar.request((rpc) => rpc.request("listProfiles"));
        const wanted = settings.profile ?? profiles.defaultProfile;
        available = profiles.profiles.some((profile) => profile.name === wanted && profile.available);
      }
      this.setAvailable(available || status.models !== null);
      if (this.statusValue.state === "none") this.set({ state: "none", available: this.availability });
    } catch (error) {
      this.setAvailable(false);
      this.sidecar.log.warn(`Could not read the models: ${errorInfoOf(error).message}`);
    }
  }

  register(): vscode.Disposable[] {
    return [
      vscode.commands.registerCommand("gpiot.showLog", () => this.sidecar.log.show(true)),
      vscode.commands.registerCommand("gpiot.showStatus", () => this.showStatus()),
      vscode.commands.registerCommand("gpiot.chooseProfile", (name?: string) => this.chooseProfile(name)),
      vscode.commands.registerCommand("gpiot.chooseModelFile", (file?: string) => this.chooseModelFile(file)),
      vscode.commands.registerCommand("gpiot.loadModels", () => this.loadModels()),
      vscode.commands.registerCommand("gpiot.restartEngine", () => this.restartEngine()),
      vscode.commands.registerCommand("gpiot.modelMenu", () => this.menu()),
    ];
  }

  async showStatus(): Promise<ResultOf<"status"> | undefined> {
    try {
      const status = await this.sidecar.request((rpc) => rpc.request("status"));
      const model = status.models ? `${status.models.profile} on ${status.models.gpu === false ? "CPU" : `GPU (${status.models.gpu})`}, ${status.models.threads} thread(s)` : status.modelState;
      const jobs = status.runningJobId ? `, running ${status.runningJobId}${status.queuedJobIds.length ? ` (+${status.queuedJobIds.length} queued)` : ""}` : "";
      void this.ui.info(`GPIoT engine ${status.version} (protocol ${status.protocolVersion}, pid ${this.sidecar.pid}): model ${model}${jobs}.`, "Show Log").then((choice) => {
        if (choice === "Show Log") this.sidecar.log.show(true);
      });
      return status;
    } catch (error) {
      void this.ui.error(`The GPIoT engine does not answer: ${errorInfoOf(error).message}`, "Show Log");
      return undefined;
    }
  }

  async chooseProfile(name?: string): Promise<LoadedModelInfo | undefined> {
    let profile = name;
    if (!profile) {
      let listing: ResultOf<"listProfiles">;
      try {
        listing = await this.sidecar.request((rpc) => rpc.request("listProfiles"));
      } catch (error) {
        void this.ui.error(`GPIoT could not read the models manifest: ${errorInfoOf(error).message}`);
        return undefined;
      }
      const picked = await vscode.window.showQuickPick(
        listing.profiles.map((candidate) => ({
          label: `${candidate.available ? "$(check)" : "$(circle-slash)"} ${candidate.name}`,
          description: candidate.name === listing.defaultProfile ? "default" : undefined,
          detail: candidate.available ? candidate.description : `Missing: ${candidate.missing.join(", ")}`,
          name: candidate.name,
        })),
        { title: "GPIoT: Choose Model Profile", placeHolder: `Profiles of ${listing.manifestPath}` },
      );
      if (!picked) return undefined;
      profile = picked.name;
    }
    await updateSetting("modelPath", undefined);
    await updateSetting("profile", profile);
    await this.sidecar.applySettings();
    return this.loadModels();
  }

  async chooseModelFile(file?: string): Promise<LoadedModelInfo | undefined> {
    let modelPath = file;
    if (!modelPath) {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { "GGUF models": ["gguf"] }, title: "GPIoT: Choose a GGUF model file (used for all three roles)" });
      if (!picked?.length) return undefined;
      modelPath = picked[0].fsPath;
    }
    await updateSetting("modelPath", modelPath);
    await this.sidecar.applySettings();
    return this.loadModels();
  }

  /** Loads the configured models now (otherwise the first job loads them). */
  async loadModels(): Promise<LoadedModelInfo | undefined> {
    return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: "GPIoT: loading the models" }, async (progress) => {
      let last = 0;
      const subscription = this.sidecar.onModelEvent((event) => {
        if (event.type !== "loading") return;
        const percent = Math.round(event.progress * 100);
        progress.report({ message: `${event.message} ${percent}%`, increment: Math.max(0, percent - last) });
        last = percent;
      });
      try {
        const info = await this.sidecar.request((rpc) => rpc.request("loadModels", {}));
        void this.ui.info(`GPIoT: ${info.profile} loaded on ${info.gpu === false ? "the CPU" : `the GPU (${info.gpu})`} in ${info.loadMs} ms.`);
        return info;
      } catch (error) {
        const info = errorInfoOf(error);
        void this.ui.error(`GPIoT could not load the models: ${info.message}`, "Choose Model Profile", "Choose Model File").then((choice) => {
          if (choice === "Choose Model Profile") void vscode.commands.executeCommand("gpiot.chooseProfile");
          if (choice === "Choose Model File") void vscode.commands.executeCommand("gpiot.chooseModelFile");
        });
        return undefined;
      } finally {
        subscription.dispose();
      }
    });
  }

  async restartEngine(): Promise<void> {
    const busy = this.store.jobs().some((job) => !job.result && job.generation === this.sidecar.generation);
    if (busy && !(await this.ui.confirm("A GPIoT job is running. Restart the engine anyway? The job is lost.", "Restart"))) return;
    await this.sidecar.restart();
  }

  async menu(): Promise<void> {
    const items = [
      { label: "$(list-selection) Choose Model Profile", command: "gpiot.chooseProfile" },
      { label: "$(file) Choose Model File", command: "gpiot.chooseModelFile" },
      { label: "$(cloud-download) Load Models Now", command: "gpiot.loadModels" },
      { label: "$(info) Show Engine Status", command: "gpiot.showStatus" },
      { label: "$(output) Show Log", command: "gpiot.showLog" },
      { label: "$(debug-restart) Restart Engine", command: "gpiot.restartEngine" },
      { label: "$(gear) Settings", command: "workbench.action.openSettings", args: ["@ext:gpiot.gpiot"] },
    ];
    const picked = await vscode.window.showQuickPick(items, { title: "GPIoT" });
    if (picked) await vscode.commands.executeCommand(picked.command, ...(picked.args ?? []));
  }

  dispose(): void {
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
    this.emitter.dispose();
  }
}
