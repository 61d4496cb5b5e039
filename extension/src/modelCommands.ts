/**
 * The model and the engine: which profile or GGUF file GPIoT uses (the active profile, shown in the
 * status bar and the pickers), loading it, its state (from `gpiot/modelEvent` and the job events),
 * whether any model is set up at all (the view's welcome content), the engine's status and its log.
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
  /** The manifest's default profile, as the engine last listed it. */
  private manifestDefault: string | undefined;
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

  /** The profile GPIoT uses: gpiot.profile, else the manifest's default; undefined when one model file is set. */
  get activeProfile(): string | undefined {
    const settings = engineSettings();
    if (settings.modelPath) return undefined;
    return settings.profile ?? this.manifestDefault;
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
      const profiles = await this.sidecar.request((rpc) => rpc.request("listProfiles")).catch(() => undefined);
      if (profiles) this.manifestDefault = profiles.defaultProfile;
      if (settings.modelPath) available = existsSync(settings.modelPath);
      else {
        const wanted = settings.profile ?? profiles?.defaultProfile;
        available = !!profiles?.profiles.some((profile) => profile.name === wanted && profile.available);
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
    const showLog = vscode.l10n.t("Show Log");
    try {
      const status = await this.sidecar.request((rpc) => rpc.request("status"));
      const hardware = await this.sidecar.request((rpc) => rpc.request("hardware")).catch(() => undefined);
      const model = status.models
        ? vscode.l10n.t("{0} on the {1}, {2} thread(s)", status.models.profile, status.models.gpu === false ? "CPU" : `GPU (${status.models.gpu})`, status.models.threads)
        : status.modelState === "none"
          ? vscode.l10n.t("{0} (not loaded)", this.activeProfile ?? vscode.l10n.t("model file"))
          : status.modelState;
      const jobs = status.runningJobId ? vscode.l10n.t(", a job running{0}", status.queuedJobIds.length ? vscode.l10n.t(" (+{0} queued)", status.queuedJobIds.length) : "") : "";
      const runtimes = hardware?.gpuRuntimes.filter((runtime) => runtime.installed).map((runtime) => runtime.gpu) ?? [];
      const gpu = hardware ? vscode.l10n.t("; GPU runtimes installed: {0}", runtimes.length ? runtimes.join(", ") : vscode.l10n.t("none")) : "";
      void this.ui.info(vscode.l10n.t("GPIoT engine {0} (protocol {1}, pid {2}): model {3}{4}{5}.", status.version, status.protocolVersion, this.sidecar.pid ?? "?", model, jobs, gpu), showLog).then((choice) => {
        if (choice === showLog) this.sidecar.log.show(true);
      });
      return status;
    } catch (error) {
      void this.ui.error(vscode.l10n.t("The GPIoT engine does not answer: {0}", errorInfoOf(error).message), showLog).then((choice) => {
        if (choice === showLog) this.sidecar.log.show(true);
      });
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
      this.manifestDefault = listing.defaultProfile;
      const active = this.activeProfile;
      const picked = await vscode.window.showQuickPick(
        listing.profiles.map((candidate) => {
          const tags = [
            ...(candidate.name === active ? [vscode.l10n.t("active")] : []),
            ...(candidate.name === listing.defaultProfile ? [vscode.l10n.t("recommended")] : []),
            candidate.available ? vscode.l10n.t("downloaded") : vscode.l10n.t("not downloaded"),
          ];
          return {
            label: `${candidate.available ? "$(check)" : "$(cloud-download)"} ${candidate.name}`,
            description: tags.join(" · "),
            detail: candidate.available ? candidate.description : `${candidate.description} — ${vscode.l10n.t("not on this machine yet: choosing it offers to download it")}`,
            name: candidate.name,
            available: candidate.available,
          };
        }),
        { title: vscode.l10n.t("GPIoT: Choose Model Profile"), placeHolder: vscode.l10n.t("Active: {0} — profiles of {1}", active ?? vscode.l10n.t("a model file"), listing.manifestPath) },
      );
      if (!picked) return undefined;
      profile = picked.name;
      if (!picked.available) {
        const download = vscode.l10n.t("Download");
        const choice = await this.ui.info(vscode.l10n.t('The files of "{0}" are not on this machine yet. Download them now?', profile), download);
        if (choice === download) {
          await vscode.commands.executeCommand("gpiot.downloadModel", { profile });
          return undefined;
        }
      }
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
    return this.ui.withProgress({ title: vscode.l10n.t("GPIoT: loading the models") }, async (report) => {
      let last = 0;
      const subscription = this.sidecar.onModelEvent((event) => {
        if (event.type !== "loading") return;
        const percent = Math.round(event.progress * 100);
        report(`${event.message} ${percent}%`, Math.max(0, percent - last));
        last = percent;
      });
      try {
        const info = await this.sidecar.request((rpc) => rpc.request("loadModels", {}));
        this.ui.status(vscode.l10n.t("GPIoT: {0} loaded on the {1} in {2} ms.", info.profile, info.gpu === false ? "CPU" : `GPU (${info.gpu})`, info.loadMs));
        return info;
      } catch (error) {
        const info = errorInfoOf(error);
        const download = vscode.l10n.t("Download Model…");
        const chooseProfile = vscode.l10n.t("Choose Model Profile");
        const chooseFile = vscode.l10n.t("Choose Model File");
        const missing = info.code === "MODEL_NOT_FOUND";
        void this.ui.error(vscode.l10n.t("GPIoT could not load the models: {0}", info.message), ...(missing ? [download] : []), chooseProfile, chooseFile).then((choice) => {
          if (choice === download) void vscode.commands.executeCommand("gpiot.downloadModel", { profile: this.activeProfile });
          if (choice === chooseProfile) void vscode.commands.executeCommand("gpiot.chooseProfile");
          if (choice === chooseFile) void vscode.commands.executeCommand("gpiot.chooseModelFile");
        });
        return undefined;
      } finally {
        subscription.dispose();
      }
    });
  }

  async restartEngine(): Promise<void> {
    const busy = this.store.jobs().some((job) => !job.result && job.generation === this.sidecar.generation);
    if (busy && !(await this.ui.confirm(vscode.l10n.t("A GPIoT job is running. Restart the engine anyway? The job is lost."), vscode.l10n.t("Restart")))) return;
    await this.sidecar.restart();
  }

  async menu(): Promise<void> {
    const active = this.activeProfile;
    const items: (vscode.QuickPickItem & { command: string; args?: unknown[] })[] = [
      { label: `$(cloud-download) ${vscode.l10n.t("Download Model…")}`, description: this.availability === false ? vscode.l10n.t("no model on this machine yet") : undefined, command: "gpiot.downloadModel" },
      { label: `$(list-selection) ${vscode.l10n.t("Choose Model Profile")}`, description: active ? vscode.l10n.t("active: {0}", active) : vscode.l10n.t("a model file is active"), command: "gpiot.chooseProfile" },
      { label: `$(file) ${vscode.l10n.t("Choose Model File")}`, command: "gpiot.chooseModelFile" },
      { label: `$(play) ${vscode.l10n.t("Load Models Now")}`, command: "gpiot.loadModels" },
      { label: `$(chip) ${vscode.l10n.t("Download GPU Runtime…")}`, command: "gpiot.downloadGpuRuntime" },
      { label: `$(info) ${vscode.l10n.t("Show Engine Status")}`, command: "gpiot.showStatus" },
      { label: `$(output) ${vscode.l10n.t("Show Log")}`, command: "gpiot.showLog" },
      { label: `$(debug-restart) ${vscode.l10n.t("Restart Engine")}`, command: "gpiot.restartEngine" },
      { label: `$(book) ${vscode.l10n.t("Get Started with GPIoT")}`, command: "workbench.action.openWalkthrough", args: ["gpiot.gpiot#gpiot.firstRun", false] },
      { label: `$(gear) ${vscode.l10n.t("Settings")}`, command: "workbench.action.openSettings", args: ["@ext:gpiot.gpiot"] },
    ];
    const picked = await vscode.window.showQuickPick(items, { title: active ? vscode.l10n.t("GPIoT — profile {0}", active) : "GPIoT" });
    if (picked) await vscode.commands.executeCommand(picked.command, ...(picked.args ?? []));
  }

  dispose(): void {
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
    this.emitter.dispose();
  }
}
