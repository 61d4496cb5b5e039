/** Shared by the extension tests: the extension's API, waiting, the test workspace. */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import * as vscode from "vscode";
import type { GpiotExtensionApi } from "../../../extension/src/extension";
import type { TreeSnapshotNode } from "../../../extension/src/taskTree";
import type { RecordedMessage } from "../../../extension/src/ui";

export const EXTENSION_ID = "gpiot.gpiot";

export async function getApi(): Promise<GpiotExtensionApi> {
  const extension = vscode.extensions.getExtension<GpiotExtensionApi>(EXTENSION_ID);
  if (!extension) throw new Error(`${EXTENSION_ID} is not installed in this extension host`);
  return extension.isActive ? extension.exports : extension.activate();
}

export function workspaceDir(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error("the tests need a workspace folder");
  return folder.uri.fsPath;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a truthy value; fails with `what` (computed then, when a function) after `timeoutMs`. */
export async function waitFor<T>(what: string | (() => string), check: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "function" ? what() : what}`);
    await sleep(25);
  }
}

/** Answers GPIoT's questions: the first rule whose pattern matches the message decides. */
export function answer(api: GpiotExtensionApi, rules: [RegExp, string | undefined | ((message: RecordedMessage) => string | undefined)][]): void {
  api.ui.setResponder((message) => {
    for (const [pattern, reply] of rules) if (pattern.test(message.message)) return typeof reply === "function" ? reply(message) : reply;
    return undefined;
  });
}

export function flatten(nodes: TreeSnapshotNode[], depth = 0): (TreeSnapshotNode & { depth: number })[] {
  return nodes.flatMap((node) => [{ ...node, depth }, ...flatten(node.children, depth + 1)]);
}

/** Hidden folders a program write leaves beside its target when interrupted. */
export function partialFolders(parent: string): string[] {
  if (!existsSync(parent)) return [];
  return readdirSync(parent).filter((entry) => /\.gpiot-(partial|previous)-/.test(entry)).map((entry) => path.join(parent, entry));
}

export async function closeAllEditors(): Promise<void> {
  await vscode.commands.executeCommand("workbench.action.closeAllEditors");
}

export const REQUIREMENTS = {
  ecg: "Detect heartbeats in a single-lead ECG and report the heart rate",
  har: "Recognize human activities from WiFi CSI on a Jetson Nano",
  temperature: "Read a temperature sensor every second and warn when it overheats",
  steps: "Count steps from a wrist accelerometer signal",
  audio: "Classify audio events captured by a microphone array",
};

/** The repository (the tiny test models are in models/tiny). */
export function repoRoot(): string {
  const root = process.env.GPIOT_REPO_ROOT;
  if (!root) throw new Error("GPIOT_REPO_ROOT is not set");
  return root;
}

/** Changes a workspace setting of GPIoT and waits until the engine restarted with it and took the programs over. */
export async function changeEngineSetting(api: GpiotExtensionApi, key: string, value: unknown): Promise<void> {
  const generation = api.sidecar.generation;
  await vscode.workspace.getConfiguration("gpiot").update(key, value, vscode.ConfigurationTarget.Workspace);
  await waitFor(`the engine to restart with gpiot.${key}`, () => api.sidecar.generation > generation && api.sidecar.state === "running", 60_000);
  await api.recovery.whenRecovered();
}

/** Discards every proposal still waiting for Accept or Discard. */
export async function discardProposals(api: GpiotExtensionApi): Promise<void> {
  for (const proposal of api.proposals.list()) await vscode.commands.executeCommand("gpiot.proposal.discard", { id: proposal.id });
}
