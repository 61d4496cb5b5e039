/**
 * The status-bar item: the active model profile and its state (no model, loading with %, ready on
 * the CPU or a GPU, generating) and the engine's (starting, restarting, stopped). Clicking it opens
 * the model menu (download, choose, load, GPU runtime, status, log, restart).
 */
import * as vscode from "vscode";
import type { ModelManager, ModelStatus } from "./modelCommands";

function where(gpu: string | false): string {
  return gpu === false ? vscode.l10n.t("CPU") : vscode.l10n.t("GPU ({0})", gpu === "cuda" ? "CUDA" : gpu === "vulkan" ? "Vulkan" : gpu === "metal" ? "Metal" : gpu);
}

export function statusText(status: ModelStatus, generating: boolean, profile: string | undefined): { text: string; tooltip: string; warning: boolean } {
  const name = profile ?? vscode.l10n.t("model file");
  switch (status.state) {
    case "engineStopped":
      return { text: "$(circuit-board) GPIoT", tooltip: vscode.l10n.t("GPIoT: the engine starts when you first use it"), warning: false };
    case "engineStarting":
      return { text: `$(sync~spin) ${vscode.l10n.t("GPIoT: starting")}`, tooltip: vscode.l10n.t("GPIoT: starting the engine"), warning: false };
    case "engineFailed":
      return { text: `$(error) ${vscode.l10n.t("GPIoT: engine stopped")}`, tooltip: vscode.l10n.t("GPIoT: the engine stopped; click to restart it or to see the log"), warning: true };
    case "none":
      return status.available === false
        ? { text: `$(cloud-download) ${vscode.l10n.t("GPIoT: no model")}`, tooltip: vscode.l10n.t('GPIoT: the model of profile "{0}" is not on this machine; click to download it or to choose another', name), warning: true }
        : { text: `$(circuit-board) GPIoT: ${name}`, tooltip: vscode.l10n.t('GPIoT: profile "{0}"; the model loads when a job needs it (or click: Load Models Now)', name), warning: false };
    case "loading":
      return { text: `$(sync~spin) ${vscode.l10n.t("GPIoT: loading {0} {1}%", name, Math.round(status.progress * 100))}`, tooltip: `GPIoT: ${status.message}`, warning: false };
    case "ready": {
      const shown = status.info.profile === "file" ? vscode.l10n.t("model file") : status.info.profile;
      if (generating) return { text: `$(loading~spin) ${vscode.l10n.t("GPIoT: generating · {0}", shown)}`, tooltip: vscode.l10n.t("GPIoT: generating with {0} on the {1}", shown, where(status.info.gpu)), warning: false };
      return {
        text: `$(check) GPIoT: ${shown} · ${where(status.info.gpu)}`,
        tooltip: vscode.l10n.t("GPIoT: profile {0}, {1} model file(s), {2} thread(s), loaded in {3} ms", shown, status.info.distinctModels, status.info.threads, status.info.loadMs),
        warning: false,
      };
    }
    case "error":
      return { text: `$(warning) ${vscode.l10n.t("GPIoT: model failed")}`, tooltip: `GPIoT: ${status.message}`, warning: true };
  }
}

export class ModelStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly subscription: vscode.Disposable;

  constructor(private readonly models: ModelManager) {
    this.item = vscode.window.createStatusBarItem("gpiot.model", vscode.StatusBarAlignment.Right, 100);
    this.item.name = vscode.l10n.t("GPIoT Model");
    this.item.command = "gpiot.modelMenu";
    this.subscription = models.onDidChange(() => this.update());
    this.update();
    this.item.show();
  }

  get text(): string {
    return this.item.text;
  }

  private update(): void {
    const { text, tooltip, warning } = statusText(this.models.status, this.models.generating, this.models.activeProfile);
    this.item.text = text;
    this.item.tooltip = tooltip;
    this.item.backgroundColor = warning ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }
}
