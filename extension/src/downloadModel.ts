/**
 * "GPIoT: Download Model…": gets a model profile without a terminal, through the engine's
 * downloader (`gpiot/pullPlan`, `gpiot/pullModel`, `gpiot/pullProgress`, `gpiot/cancelPull`).
 *
 * The user picks a profile (its size, whether it is already there, whether it fits this machine's
 * GPU or memory), confirms, and follows a cancellable progress notification with bytes and speed.
 * Files go to the models folder: `gpiot.modelsDir`, else the extension's global storage. A pull
 * that stops (cancelled, connection lost, VS Code or the engine restarted) keeps what it fetched;
 * the next pull continues from there, and after a restart GPIoT offers to resume it. Offline
 * (`gpiot.offline`, or no connection) the user is told so, with what to do instead.
 *
 *   executeCommand("gpiot.downloadModel", { profile?, confirm?: true })   (confirm: no question)
 */
import * as vscode from "vscode";
import type { PullPlanInfo, PullProgress, ResultOf } from "../../sidecar/src/protocol";
import { offline, updateSetting } from "./config";
import type { ModelManager } from "./modelCommands";
import { errorInfoOf, type Sidecar } from "./sidecar";
import type { Ui } from "./ui";

const PENDING_KEY = "gpiot.pendingDownload";

export interface DownloadArgs {
  profile?: string;
  /** true: download without asking (the caller asked already). */
  confirm?: boolean;
}

export interface DownloadResult {
  status: "downloaded" | "present" | "cancelled" | "failed" | "aborted" | "offline";
  profile?: string;
  files?: ResultOf<"pullModel">["files"];
  message?: string;
  errorCode?: string;
}

export function formatSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} KB`;
  return `${bytes} B`;
}

/** "12.3 MB of 25.0 MB, 4.1 MB/s" from the progress samples of one file. */
export class TransferRate {
  private samples: { at: number; bytes: number }[] = [];

  add(bytes: number, at = Date.now()): void {
    if (this.samples.length && bytes < this.samples[this.samples.length - 1].bytes) this.samples = [];
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[0].at > 3000) this.samples.shift();
  }

  /** Bytes per second over the last few seconds (undefined until there are two samples). */
  get bytesPerSecond(): number | undefined {
    if (this.samples.length < 2) return undefined;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.at - first.at) / 1000;
    return seconds > 0 ? (last.bytes - first.bytes) / seconds : undefined;
  }
}

export function describeProgress(progress: PullProgress, rate: number | undefined): string {
  const name = progress.path.split(/[\\/]/).pop() ?? progress.path;
  const which = progress.items > 1 ? vscode.l10n.t("file {0} of {1}: ", progress.item + 1, progress.items) : "";
  if (progress.phase === "verify") return vscode.l10n.t("{0}checking {1}…", which, name);
  if (progress.phase === "convert") return vscode.l10n.t("{0}converting {1}…", which, name);
  if (progress.phase === "done") return vscode.l10n.t("{0}{1} done", which, name);
  const total = progress.totalBytes > 0 ? vscode.l10n.t("{0} of {1}", formatSize(progress.bytes), formatSize(progress.totalBytes)) : formatSize(progress.bytes);
  const speed = rate !== undefined && rate > 0 ? `, ${formatSize(rate)}/s` : "";
  return `${which}${name}: ${total}${speed}`;
}

/** A network error of the downloader: the machine seems to be offline or the server unreachable. */
function looksOffline(message: string): boolean {
  return /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|fetch failed|getaddrinfo|socket hang up|network/i.test(message);
}

interface ProfileChoice extends vscode.QuickPickItem {
  profile: string;
  plan?: PullPlanInfo;
}

export class ModelDownloads implements vscode.Disposable {
  private running: { profile: string; pullId: string } | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private offeredResume = false;

  constructor(
    private readonly sidecar: Sidecar,
    private readonly models: ModelManager,
    private readonly ui: Ui,
    private readonly state: vscode.Memento,
  ) {
    this.disposables.push(sidecar.onDidBecomeReady(() => void this.offerResume()));
  }

  register(): vscode.Disposable[] {
    return [vscode.commands.registerCommand("gpiot.downloadModel", (args?: DownloadArgs) => this.download(args ?? {}))];
  }

  /** The download in progress, if any. */
  get current(): { profile: string; pullId: string } | undefined {
    return this.running;
  }

  /** Stops the running download (what the notification's Cancel does); what was fetched is kept. */
  async cancel(): Promise<boolean> {
    const running = this.running;
    if (!running) return false;
    return (await this.sidecar.request((rpc) => rpc.request("cancelPull", { pullId: running.pullId }))).cancelled;
  }

  private offlineMessage(): Promise<DownloadResult> {
    const turnOff = vscode.l10n.t("Turn Off Offline Mode");
    const chooseFile = vscode.l10n.t("Choose Model File");
    void this.ui.warn(vscode.l10n.t("GPIoT is in offline mode (setting gpiot.offline), so it does not download models. Turn offline mode off, or choose a GGUF file you already have."), turnOff, chooseFile).then(async (choice) => {
      if (choice === turnOff) {
        await updateSetting("offline", undefined);
        await vscode.workspace.getConfiguration("gpiot").update("offline", undefined, vscode.ConfigurationTarget.Global);
        void vscode.commands.executeCommand("gpiot.downloadModel");
      }
      if (choice === chooseFile) void vscode.commands.executeCommand("gpiot.chooseModelFile");
    });
    return Promise.resolve({ status: "offline", message: "offline mode" });
  }

  /** A line about whether the profile fits this machine, from the engine's view of it. */
  private fitHint(bytes: number, hardware: ResultOf<"hardware"> | undefined): string {
    if (!hardware || bytes <= 0) return "";
    const needed = bytes * 1.2;
    if (hardware.backend !== "cpu") {
      const device = hardware.devices[0] ?? hardware.backend.toUpperCase();
      return needed <= hardware.vram.total
        ? vscode.l10n.t("fits your GPU ({0}, {1})", device, formatSize(hardware.vram.total))
        : needed <= hardware.vram.total + hardware.ram.total
          ? vscode.l10n.t("partly on your GPU ({0}, {1}), the rest on the CPU", device, formatSize(hardware.vram.total))
          : vscode.l10n.t("too large for this machine ({0} GPU + {1} RAM)", formatSize(hardware.vram.total), formatSize(hardware.ram.total));
    }
    const gpuWithoutRuntime = hardware.supportedGpus.length > 0 ? vscode.l10n.t(" (a GPU was found: GPIoT: Download GPU Runtime runs models on it)") : "";
    return needed <= hardware.ram.total * 0.8
      ? vscode.l10n.t("runs on the CPU ({0} RAM){1}", formatSize(hardware.ram.total), gpuWithoutRuntime)
      : vscode.l10n.t("too large for this machine's memory ({0} RAM)", formatSize(hardware.ram.total));
  }

  /** Asks which profile to download: size, what is there already, and the fit. */
  private async pickProfile(): Promise<ProfileChoice | undefined> {
    const listing = await this.sidecar.request((rpc) => rpc.request("listProfiles"));
    const hardware = await this.sidecar.request((rpc) => rpc.request("hardware")).catch(() => undefined);
    const active = this.models.activeProfile;
    const choices: ProfileChoice[] = [];
    for (const profile of listing.profiles) {
      let plan: PullPlanInfo | undefined;
      let reason: string | undefined;
      try {
        plan = await this.sidecar.request((rpc) => rpc.request("pullPlan", { profile: profile.name }));
      } catch (error) {
        reason = errorInfoOf(error).message;
      }
      const tags: string[] = [];
      if (profile.name === active) tags.push(vscode.l10n.t("active"));
      if (profile.name === listing.defaultProfile) tags.push(vscode.l10n.t("recommended"));
      const total = plan ? plan.items.reduce((sum, item) => sum + (item.sizeBytes ?? item.approxSizeBytes ?? 0), 0) : 0;
      if (plan && !plan.needsNetwork) tags.push(vscode.l10n.t("downloaded"));
      else if (plan) tags.push(plan.approximate ? vscode.l10n.t("about {0}", formatSize(plan.downloadBytes)) : formatSize(plan.downloadBytes));
      if (plan?.items.some((item) => item.resumable)) tags.push(vscode.l10n.t("partly downloaded: continues"));
      const hint = plan ? this.fitHint(total, hardware) : "";
      choices.push({
        label: profile.name,
        description: tags.join(" · "),
        detail: reason ? vscode.l10n.t("Cannot be downloaded: {0}", reason) : [profile.description, hint].filter(Boolean).join(" — "),
        profile: profile.name,
        plan,
      });
    }
    choices.sort((a, b) => Number(!!b.plan) - Number(!!a.plan));
    return vscode.window.showQuickPick(choices, {
      title: vscode.l10n.t("GPIoT: Download Model"),
      placeHolder: vscode.l10n.t("Which model profile? (downloads go to {0})", choices.find((choice) => choice.plan)?.plan?.modelsDir ?? "the models folder"),
      matchOnDetail: true,
    });
  }

  async download(args: DownloadArgs): Promise<DownloadResult> {
    if (this.running) {
      void this.ui.info(vscode.l10n.t('GPIoT is already downloading "{0}".', this.running.profile));
      return { status: "aborted", message: "A download is running." };
    }
    let profile = args.profile;
    let plan: PullPlanInfo | undefined;
    try {
      if (!profile) {
        const picked = await this.pickProfile();
        if (!picked) return { status: "aborted" };
        profile = picked.profile;
        plan = picked.plan;
        if (!plan) {
          void this.ui.warn(picked.detail ?? vscode.l10n.t('Profile "{0}" cannot be downloaded.', profile));
          return { status: "failed", profile, message: picked.detail };
        }
      }
      plan ??= await this.sidecar.request((rpc) => rpc.request("pullPlan", { profile }));
    } catch (error) {
      const message = errorInfoOf(error).message;
      void this.ui.error(vscode.l10n.t("GPIoT cannot plan the download: {0}", message));
      return { status: "failed", profile, message };
    }
    if (!plan.needsNetwork) {
      await this.activate(plan.profile);
      this.ui.status(vscode.l10n.t('Every file of "{0}" is already downloaded; GPIoT uses it now.', plan.profile));
      return { status: "present", profile: plan.profile };
    }
    if (offline()) return this.offlineMessage();
    if (!args.confirm) {
      const size = plan.approximate ? vscode.l10n.t("about {0}", formatSize(plan.downloadBytes)) : formatSize(plan.downloadBytes);
      const files = plan.items.filter((item) => item.action !== "present").length;
      const download = vscode.l10n.t("Download");
      const ok = await this.ui.confirm(
        vscode.l10n.t('Download the model profile "{0}" ({1}, {2} file(s))?', plan.profile, size, files),
        download,
        vscode.l10n.t("The files go to {0}. You can cancel at any time; the next download continues where it stopped.", plan.modelsDir),
      );
      if (!ok) return { status: "aborted", profile: plan.profile };
    }
    return this.pull(plan);
  }

  private async pull(plan: PullPlanInfo): Promise<DownloadResult> {
    const profile = plan.profile;
    const pullId = `vscode-${Date.now().toString(36)}`;
    this.running = { profile, pullId };
    await this.state.update(PENDING_KEY, { profile, startedAt: Date.now() });
    try {
      const files = await this.ui.withProgress({ title: vscode.l10n.t("GPIoT: downloading {0}", profile), cancellable: true }, async (report, token) => {
        const rate = new TransferRate();
        let lastPath = "";
        let lastShown = 0;
        let lastFraction = 0;
        const subscription = this.sidecar.onPullProgress((progress) => {
          if (progress.pullId !== pullId) return;
          if (progress.path !== lastPath) {
            lastPath = progress.path;
            lastFraction = 0;
          }
          rate.add(progress.bytes);
          const now = Date.now();
          if (progress.phase === "download" && now - lastShown < 250) return;
          lastShown = now;
          // The bar shows the whole pull: items done, plus the part of the current one.
          const fraction = progress.items > 0 ? (progress.item + (progress.totalBytes > 0 ? Math.min(1, progress.bytes / progress.totalBytes) : 0)) / progress.items : 0;
          const increment = Math.max(0, (fraction - lastFraction) * 100);
          lastFraction = Math.max(lastFraction, fraction);
          report(describeProgress(progress, rate.bytesPerSecond), increment);
        });
        const cancellation = token.onCancellationRequested(() => void this.cancel().catch(() => undefined));
        try {
          return (await this.sidecar.request((rpc) => rpc.request("pullModel", { profile, pullId }))).files;
        } finally {
          subscription.dispose();
          cancellation.dispose();
        }
      });
      await this.state.update(PENDING_KEY, undefined);
      await this.activate(profile);
      this.ui.status(vscode.l10n.t('"{0}" is downloaded ({1} file(s)); GPIoT uses it now.', profile, files.length), "cloud-download");
      return { status: "downloaded", profile, files };
    } catch (error) {
      return this.failed(profile, error);
    } finally {
      this.running = undefined;
    }
  }

  private failed(profile: string, error: unknown): DownloadResult {
    const info = errorInfoOf(error);
    const retry = vscode.l10n.t("Retry");
    const chooseFile = vscode.l10n.t("Choose Model File");
    const again = (choice: string | undefined) => {
      if (choice === retry) void this.download({ profile, confirm: true });
      if (choice === chooseFile) void vscode.commands.executeCommand("gpiot.chooseModelFile");
    };
    if (info.code === "CANCELLED") {
      void this.state.update(PENDING_KEY, undefined);
      this.ui.status(vscode.l10n.t('Download of "{0}" stopped; what was fetched is kept, and Download Model… continues from there.', profile), "circle-slash");
      return { status: "cancelled", profile, message: info.message, errorCode: info.code };
    }
    if (info.code === "OFFLINE") {
      void this.offlineMessage();
      return { status: "offline", profile, message: info.message, errorCode: info.code };
    }
    if (info.code === "ENGINE_STOPPED") {
      // The restarted engine offers to resume it (offerResume): one notification, once it can continue.
      this.sidecar.log.warn(`The GPIoT engine stopped during the download of "${profile}"; what was fetched is kept.`);
      void this.sidecar.whenRunning(60_000).then(() => this.offerResume(), () => undefined);
      return { status: "failed", profile, message: info.message, errorCode: info.code };
    }
    if (info.code === "DOWNLOAD_FAILED" && looksOffline(info.message)) {
      void this.ui.error(vscode.l10n.t('GPIoT cannot reach the download server: this machine seems to be offline ({0}). What was fetched of "{1}" is kept; Retry continues once you are connected.', info.message, profile), retry, chooseFile).then(again);
      return { status: "offline", profile, message: info.message, errorCode: info.code };
    }
    void this.ui.error(vscode.l10n.t('Downloading "{0}" failed: {1}', profile, info.message), retry, chooseFile).then(again);
    return { status: "failed", profile, message: info.message, errorCode: info.code };
  }

  /** Makes the downloaded profile the one GPIoT uses (the engine restarts with it). */
  private async activate(profile: string): Promise<void> {
    const config = vscode.workspace.getConfiguration("gpiot");
    if (config.get<string>("modelPath", "")) await updateSetting("modelPath", undefined);
    if (this.models.activeProfile !== profile) await updateSetting("profile", profile);
    await this.sidecar.applySettings();
    await this.models.refresh();
  }

  /** After a restart: a download that did not finish is offered again (it continues where it stopped). */
  private async offerResume(): Promise<void> {
    const pending = this.state.get<{ profile: string }>(PENDING_KEY);
    if (!pending || this.running || this.offeredResume) return;
    this.offeredResume = true;
    let plan: PullPlanInfo;
    try {
      plan = await this.sidecar.request((rpc) => rpc.request("pullPlan", { profile: pending.profile }));
    } catch {
      await this.state.update(PENDING_KEY, undefined);
      return;
    }
    if (!plan.needsNetwork) {
      await this.state.update(PENDING_KEY, undefined);
      return;
    }
    const resume = vscode.l10n.t("Resume");
    const forget = vscode.l10n.t("Not Now");
    const choice = await this.ui.info(vscode.l10n.t('The download of the model profile "{0}" did not finish. Resume it? It continues where it stopped.', pending.profile), resume, forget);
    this.offeredResume = false;
    if (choice === resume) void this.download({ profile: pending.profile, confirm: true });
    else if (choice === forget) await this.state.update(PENDING_KEY, undefined);
  }

  dispose(): void {
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }
}
