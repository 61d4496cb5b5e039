/**
 * The status-bar item: the model's state (none, loading with %, ready on GPU/CPU, generating)
 * and the engine's (starting, restarting, stopped). Clicking it opens the model menu.
 */
import * as vscode from "vscode";
import type { ModelManager, ModelStatus } from "./modelCommands";

export function statusText(status: ModelStatus, generating: boolean): { text: string; tooltip: string; warning: boolean } {
  switch (status.state) {
    case "engineStopped":
      return { text: "$(circuit-board) GPIoT", tooltip: "GPIoT: the engine starts when you first use it", warning: false };
    case "engineStarting":
      return { text: "$(sync~spin) GPIoT: starting", tooltip: "GPIoT: starting the engine", warning: false };
    case "engineFailed":
      return { text: "$(error) GPIoT: engine stopped", tooltip: "GPIoT: the engine stopped; click to restart it or to see the log", warning: true };
    case "none":
      return status.available === false
        ? { text: "$(circle-slash) GPIoT: no model", tooltip: "GPIoT: no model is set up; click to choose a profile or a GGUF file", warning: true }
        : { text: "$(circuit-board) GPIoT: model not loaded", tooltip: "GPIoT: the model loads when a job needs it (or click: Load Models Now)", warning: false };
    case "loading":
      return { text: `$(sync~spin) GPIoT: loading ${Math.round(status.progress * 100)}%`, tooltip: `GPIoT: ${status.message}`, warning: false };
    case "ready": {
      const where = status.info.gpu === false ? "CPU" : `GPU: ${status.info.gpu}`;
      if (generating) return { text: `$(loading~spin) GPIoT: generating`, tooltip: `GPIoT: generating with ${status.info.profile} on ${where}`, warning: false };
      return { text: `$(check) GPIoT: ready (${where})`, tooltip: `GPIoT: ${status.info.profile}, ${status.info.distinctModels} model file(s), ${status.info.threads} thread(s), loaded in ${status.info.loadMs} ms`, warning: false };
    }
    case "error":
      return { text: "$(warning) GPIoT: model failed", tooltip: `GPIoT: ${status.message}`, warning: true };
  }
}

export class ModelStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly subscription: vscode.Disposable;

  constructor(private readonly models: ModelManager) {
    this.item = vscode.window.createStatusBarItem("gpiot.model", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "GPIoT Model";
    this.item.command = "gpiot.modelMenu";
    this.subscription = models.onDidChange(() => this.update());
    this.update();
    this.item.show();
  }

  get text(): string {
    return this.item.text;
  }

  private update(): void {
    const { text, tooltip, warning } = statusText(this.models.status, this.models.generating);
    this.item.text = text;
    this.item.tooltip = tooltip;
    this.item.backgroundColor = warning ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }
}
