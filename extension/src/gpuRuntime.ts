/**
 * The GPU runtime, fetched on first use. The .vsix ships node-llama-cpp with its CPU binaries only
 * (about 12 MB instead of 355 MB with every GPU build). When the engine first starts, GPIoT asks it
 * which GPUs the drivers support (`gpiot/hardware`); if one is found whose runtime is missing it
 * offers to download it (setting gpiot.gpuRuntime: ask, download, never), from the npm registry
 * (gpiot.gpuRuntimeRegistry), with a cancellable progress notification, a SHA-512 check, and the
 * files kept in the extension's global storage; then the engine restarts and runs the models on
 * the GPU. Offline, refused or failed, the models simply keep running on the CPU, and the user is
 * told so once.
 *
 *   executeCommand("gpiot.downloadGpuRuntime", { gpu?: "cuda" | "vulkan" | "metal", confirm?: true })
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { ResultOf } from "../../sidecar/src/protocol";
import { engineSettings, gpuRuntimeMode, gpuRuntimeRegistry, offline } from "./config";
import { formatSize } from "./downloadModel";
import { installGpuRuntime, relinkInstalled, RuntimeInstallError } from "./gpuRuntimeInstaller";
import type { ProgramStore } from "./programStore";
import { errorInfoOf, type Sidecar } from "./sidecar";
import type { Ui } from "./ui";

type GpuType = "cuda" | "vulkan" | "metal";
type Hardware = ResultOf<"hardware">;

const DECLINED_KEY = "gpiot.gpuRuntimeDeclined";
const NAMES: Record<GpuType, string> = { cuda: "CUDA", vulkan: "Vulkan", metal: "Metal" };
/** Download sizes of node-llama-cpp 3.21's runtimes (compressed), for the question before the download. */
const APPROXIMATE_BYTES: Record<GpuType, number> = { cuda: 320e6, vulkan: 27e6, metal: 5e6 };

export interface GpuRuntimeResult {
  status: "installed" | "present" | "declined" | "cancelled" | "failed" | "offline" | "noGpu";
  gpu?: GpuType;
  message?: string;
  /** The engine finds the runtime after the restart. */
  engineSeesIt?: boolean;
}

export class GpuRuntimes implements vscode.Disposable {
  private checked = false;
  private installing: Promise<GpuRuntimeResult> | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly sidecar: Sidecar,
    private readonly store: ProgramStore,
    private readonly ui: Ui,
    private readonly context: { extensionPath: string; globalStorageUri: vscode.Uri; globalState: vscode.Memento },
  ) {
    this.disposables.push(sidecar.onDidBecomeReady(() => void this.checkOnce()));
  }

  register(): vscode.Disposable[] {
    return [vscode.commands.registerCommand("gpiot.downloadGpuRuntime", (args?: { gpu?: GpuType; confirm?: boolean }) => this.download(args ?? {}))];
  }

  private get storeDir(): string {
    return path.join(this.context.globalStorageUri.fsPath, "gpu-runtime");
  }

  /** node_modules/@node-llama-cpp beside the extension's node-llama-cpp: where it looks for its binaries packages. */
  private get linkDir(): string {
    return path.join(this.context.extensionPath, "node_modules", "@node-llama-cpp");
  }

  private runtimeVersion(): string | undefined {
    try {
      return JSON.parse(readFileSync(path.join(this.context.extensionPath, "node_modules", "node-llama-cpp", "package.json"), "utf8")).version;
    } catch {
      return undefined;
    }
  }

  /** Links the runtimes an earlier version of the extension downloaded (after an update); run before the engine starts. */
  async relinkAll(): Promise<string[]> {
    const version = this.runtimeVersion();
    if (!version) return [];
    let names: string[];
    try {
      names = readdirSync(path.join(this.storeDir, version), { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && !entry.name.startsWith("."))
        .map((entry) => entry.name);
    } catch {
      return [];
    }
    return relinkInstalled(this.storeDir, this.linkDir, names, version).catch(() => []);
  }

  /** The GPU worth a runtime on this machine with these settings, or undefined. */
  private wanted(hardware: Hardware): Hardware["gpuRuntimes"][number] | undefined {
    const setting = engineSettings().gpu;
    if (setting === false) return undefined;
    const candidates = hardware.gpuRuntimes.filter((runtime) => (setting === "auto" || setting === undefined ? hardware.supportedGpus.includes(runtime.gpu) : runtime.gpu === setting));
    // node-llama-cpp's own preference: CUDA before Vulkan.
    return candidates.find((runtime) => runtime.installed) ? undefined : candidates[0];
  }

  /** After the engine first starts: offer the runtime of a GPU that was found. */
  private async checkOnce(): Promise<void> {
    if (this.checked) return;
    this.checked = true;
    const mode = gpuRuntimeMode();
    if (mode === "never") return;
    let hardware: Hardware;
    try {
      hardware = await this.sidecar.request((rpc) => rpc.request("hardware"));
    } catch {
      return;
    }
    const runtime = this.wanted(hardware);
    if (!runtime) return;
    const declined = this.context.globalState.get<GpuType[]>(DECLINED_KEY, []);
    if (declined.includes(runtime.gpu)) return;
    if (offline()) {
      this.ui.status(vscode.l10n.t("GPIoT found a {0} GPU but is offline: the models run on the CPU.", NAMES[runtime.gpu]), "info");
      return;
    }
    if (mode === "download") {
      void this.download({ gpu: runtime.gpu, confirm: true });
      return;
    }
    const download = vscode.l10n.t("Download");
    const never = vscode.l10n.t("Don't Ask Again");
    const choice = await this.ui.info(
      vscode.l10n.t("GPIoT found a {0} GPU. Download its runtime (about {1}, once) to run the models on it? Until then they run on the CPU.", NAMES[runtime.gpu], formatSize(APPROXIMATE_BYTES[runtime.gpu])),
      download,
      never,
    );
    if (choice === download) void this.download({ gpu: runtime.gpu, confirm: true });
    else if (choice === never) await this.context.globalState.update(DECLINED_KEY, [...declined, runtime.gpu]);
  }

  download(args: { gpu?: GpuType; confirm?: boolean }): Promise<GpuRuntimeResult> {
    this.installing ??= this.install(args).finally(() => (this.installing = undefined));
    return this.installing;
  }

  private async install(args: { gpu?: GpuType; confirm?: boolean }): Promise<GpuRuntimeResult> {
    let hardware: Hardware;
    try {
      hardware = await this.sidecar.request((rpc) => rpc.request("hardware"));
    } catch (error) {
      const message = errorInfoOf(error).message;
      void this.ui.error(vscode.l10n.t("GPIoT cannot check this machine's GPU: {0}", message));
      return { status: "failed", message };
    }
    if (!hardware.gpuRuntimes.length) {
      void this.ui.info(vscode.l10n.t("node-llama-cpp has no GPU runtime for {0}-{1}: the models run on the CPU.", hardware.platform, hardware.arch));
      return { status: "noGpu" };
    }
    let gpu = args.gpu ?? this.wanted(hardware)?.gpu;
    if (!gpu) {
      const installed = hardware.gpuRuntimes.filter((runtime) => runtime.installed);
      const picked = await vscode.window.showQuickPick(
        hardware.gpuRuntimes.map((runtime) => ({
          label: NAMES[runtime.gpu],
          description: [
            runtime.installed ? vscode.l10n.t("installed") : vscode.l10n.t("about {0}", formatSize(APPROXIMATE_BYTES[runtime.gpu])),
            hardware.supportedGpus.includes(runtime.gpu) ? vscode.l10n.t("found on this machine") : vscode.l10n.t("not found on this machine"),
          ].join(" · "),
          gpu: runtime.gpu,
        })),
        {
          title: vscode.l10n.t("GPIoT: Download GPU Runtime"),
          placeHolder: hardware.supportedGpus.length
            ? vscode.l10n.t("Which runtime? (installed: {0})", installed.map((runtime) => NAMES[runtime.gpu]).join(", ") || vscode.l10n.t("none"))
            : vscode.l10n.t("No GPU driver was found; download a runtime anyway?"),
        },
      );
      if (!picked) return { status: "declined" };
      gpu = picked.gpu;
    }
    const runtime = hardware.gpuRuntimes.find((candidate) => candidate.gpu === gpu);
    if (!runtime) {
      void this.ui.info(vscode.l10n.t("There is no {0} runtime for this platform: the models run on the CPU.", NAMES[gpu]));
      return { status: "noGpu", gpu };
    }
    if (runtime.installed) {
      this.ui.status(vscode.l10n.t("The {0} runtime is already installed.", NAMES[gpu]));
      return { status: "present", gpu, engineSeesIt: true };
    }
    if (offline()) {
      void this.ui.warn(vscode.l10n.t("GPIoT is in offline mode (gpiot.offline): it does not download the {0} runtime, and the models keep running on the CPU.", NAMES[gpu]));
      return { status: "offline", gpu };
    }
    const version = this.runtimeVersion();
    if (!version) {
      void this.ui.error(vscode.l10n.t("GPIoT cannot find its node-llama-cpp package; the models keep running on the CPU."));
      return { status: "failed", gpu };
    }
    if (!args.confirm) {
      const ok = await this.ui.confirm(
        vscode.l10n.t("Download the {0} runtime (about {1}, once)?", NAMES[gpu], formatSize(APPROXIMATE_BYTES[gpu])),
        vscode.l10n.t("Download"),
        vscode.l10n.t("From {0}; its SHA-512 is checked before it is used. It is kept in {1}.", gpuRuntimeRegistry(), this.storeDir),
      );
      if (!ok) return { status: "declined", gpu };
    }
    const chosen = gpu;
    try {
      await this.ui.withProgress({ title: vscode.l10n.t("GPIoT: downloading the {0} runtime", NAMES[chosen]), cancellable: true }, async (report, token) => {
        const controller = new AbortController();
        const cancellation = token.onCancellationRequested(() => controller.abort());
        const started = Date.now();
        let lastShown = 0;
        let lastPhase = "";
        let lastPercent = 0;
        try {
          await installGpuRuntime({
            registry: gpuRuntimeRegistry(),
            packages: runtime.packages,
            version,
            storeDir: this.storeDir,
            linkDir: this.linkDir,
            signal: controller.signal,
            onProgress: (progress) => {
              const now = Date.now();
              const key = `${progress.index}:${progress.phase}`;
              if (key === lastPhase && now - lastShown < 250 && progress.bytes < progress.totalBytes) return;
              lastShown = now;
              lastPhase = key;
              const which = progress.count > 1 ? vscode.l10n.t("part {0} of {1}: ", progress.index + 1, progress.count) : "";
              const seconds = (now - started) / 1000;
              const speed = seconds > 0.5 && progress.phase === "download" ? `, ${formatSize(progress.bytes / seconds)}/s` : "";
              const percent = progress.totalBytes > 0 ? Math.round(((progress.index + progress.bytes / progress.totalBytes) / progress.count) * 100) : lastPercent;
              const text =
                progress.phase === "download"
                  ? `${which}${progress.totalBytes ? vscode.l10n.t("{0} of {1}", formatSize(progress.bytes), formatSize(progress.totalBytes)) : formatSize(progress.bytes)}${speed}`
                  : progress.phase === "verify"
                    ? vscode.l10n.t("{0}checking the SHA-512…", which)
                    : vscode.l10n.t("{0}unpacking…", which);
              report(text, Math.max(0, percent - lastPercent));
              lastPercent = Math.max(lastPercent, percent);
            },
          });
        } finally {
          cancellation.dispose();
        }
      });
    } catch (error) {
      return this.failed(chosen, error);
    }
    const engineSeesIt = await this.restartForRuntime(chosen);
    return { status: "installed", gpu: chosen, engineSeesIt };
  }

  /** Restarts the engine (after the running job) so that it loads the GPU runtime; resolves whether it finds it. */
  private async restartForRuntime(gpu: GpuType): Promise<boolean> {
    const busy = () => this.store.jobs().some((job) => !job.result && job.generation === this.sidecar.generation);
    if (busy()) {
      this.ui.status(vscode.l10n.t("The {0} runtime is installed; the engine restarts with it after the running job.", NAMES[gpu]), "chip");
      await new Promise<void>((resolve) => {
        const subscription = this.store.onDidEndJob(() => {
          if (busy()) return;
          subscription.dispose();
          resolve();
        });
      });
    }
    await this.sidecar.restart();
    const hardware = await this.sidecar.request((rpc) => rpc.request("hardware")).catch(() => undefined);
    const seen = !!hardware?.gpuRuntimes.find((runtime) => runtime.gpu === gpu)?.installed;
    if (seen && engineSettings().gpu === false) this.ui.status(vscode.l10n.t("The {0} runtime is installed; set gpiot.gpu to auto to run the models on the GPU.", NAMES[gpu]), "chip");
    else if (seen) this.ui.status(vscode.l10n.t("The {0} runtime is installed: GPIoT runs the models on the GPU when it can.", NAMES[gpu]), "chip");
    else void this.ui.warn(vscode.l10n.t("The {0} runtime was downloaded but the engine does not find it; the models keep running on the CPU. See the GPIoT log.", NAMES[gpu]));
    return seen;
  }

  private failed(gpu: GpuType, error: unknown): GpuRuntimeResult {
    const code = error instanceof RuntimeInstallError ? error.code : "DOWNLOAD_FAILED";
    const message = (error as Error).message;
    const retry = vscode.l10n.t("Retry");
    const again = (choice: string | undefined) => {
      if (choice === retry) void this.download({ gpu, confirm: true });
    };
    if (code === "CANCELLED") {
      this.ui.status(vscode.l10n.t("The download of the {0} runtime stopped; the models run on the CPU. Download GPU Runtime… continues it.", NAMES[gpu]), "circle-slash");
      return { status: "cancelled", gpu, message };
    }
    if (code === "OFFLINE") {
      void this.ui.warn(vscode.l10n.t("GPIoT cannot download the {0} runtime: {1} The models keep running on the CPU.", NAMES[gpu], message), retry).then(again);
      return { status: "offline", gpu, message };
    }
    void this.ui.error(vscode.l10n.t("The {0} runtime could not be installed: {1} The models keep running on the CPU.", NAMES[gpu], message), retry).then(again);
    return { status: "failed", gpu, message };
  }

  dispose(): void {
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }
}
