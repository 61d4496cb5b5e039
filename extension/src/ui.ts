/**
 * Every message GPIoT shows goes through here, so that it is logged and so that tests can read
 * what the user was told and answer a question without a human (the extension's API exposes
 * `messages`, `progress` and `setResponder`). Without a responder the normal VS Code UI is used.
 *
 * Notifications are kept for what needs the user (a question, an error, a review to do): a job has
 * its progress notification while it runs and at most one notification when it ends. What simply
 * went well is said in the status bar (`status`), so toasts never pile up.
 */
import * as vscode from "vscode";

export type MessageKind = "info" | "warning" | "error" | "status";

export interface RecordedMessage {
  kind: MessageKind;
  message: string;
  items: string[];
  modal: boolean;
  /** What the user (or the test responder) chose; undefined when dismissed or not awaited. */
  answer?: string;
  at: number;
}

/** One progress notification: its title and every message it showed, in order. */
export interface RecordedProgress {
  title: string;
  messages: string[];
  started: number;
  ended?: number;
}

/** Answers a message instead of the user: return an item's title, or undefined to dismiss. */
export type Responder = (message: RecordedMessage) => string | undefined | Promise<string | undefined>;

export class Ui {
  readonly messages: RecordedMessage[] = [];
  readonly progress: RecordedProgress[] = [];
  private responder: Responder | undefined;
  private readonly changed = new vscode.EventEmitter<RecordedMessage>();
  readonly onDidShowMessage = this.changed.event;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  setResponder(responder: Responder | undefined): void {
    this.responder = responder;
  }

  private record(kind: MessageKind, message: string, modal: boolean, items: string[]): RecordedMessage {
    const record: RecordedMessage = { kind, message, items, modal, at: Date.now() };
    this.messages.push(record);
    if (this.messages.length > 300) this.messages.splice(0, this.messages.length - 300);
    return record;
  }

  /** Shows a message; resolves with the chosen item (or undefined). */
  async show(kind: Exclude<MessageKind, "status">, message: string, options: { modal?: boolean; detail?: string } = {}, ...items: string[]): Promise<string | undefined> {
    const record = this.record(kind, message, options.modal ?? false, items);
    const line = `${message}${options.detail ? ` — ${options.detail}` : ""}`;
    if (kind === "error") this.log.error(line);
    else if (kind === "warning") this.log.warn(line);
    else this.log.info(line);
    this.changed.fire(record);
    if (this.responder) {
      record.answer = await this.responder(record);
      return record.answer;
    }
    const show = kind === "error" ? vscode.window.showErrorMessage : kind === "warning" ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
    record.answer = await show(message, { modal: options.modal ?? false, detail: options.detail }, ...items);
    return record.answer;
  }

  info(message: string, ...items: string[]): Promise<string | undefined> {
    return this.show("info", message, {}, ...items);
  }

  warn(message: string, ...items: string[]): Promise<string | undefined> {
    return this.show("warning", message, {}, ...items);
  }

  error(message: string, ...items: string[]): Promise<string | undefined> {
    return this.show("error", message, {}, ...items);
  }

  /** A modal question; resolves true only when `confirm` was chosen. */
  async confirm(message: string, confirm: string, detail?: string): Promise<boolean> {
    return (await this.show("warning", message, { modal: true, detail }, confirm)) === confirm;
  }

  /** Says something that went well in the status bar for a few seconds (no notification). */
  status(message: string, icon = "check"): void {
    const record = this.record("status", message, false, []);
    this.log.info(message);
    this.changed.fire(record);
    vscode.window.setStatusBarMessage(`$(${icon}) ${message}`, 8000);
  }

  /** A progress notification whose messages are recorded (the tree shows the same words). */
  withProgress<T>(
    options: { title: string; cancellable?: boolean },
    task: (report: (message: string, increment?: number) => void, token: vscode.CancellationToken) => Thenable<T>,
  ): Thenable<T> {
    const record: RecordedProgress = { title: options.title, messages: [], started: Date.now() };
    this.progress.push(record);
    if (this.progress.length > 100) this.progress.splice(0, this.progress.length - 100);
    return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: options.title, cancellable: options.cancellable ?? false }, async (progress, token) => {
      try {
        return await task((message, increment) => {
          record.messages.push(message);
          progress.report({ message, ...(increment !== undefined ? { increment } : {}) });
        }, token);
      } finally {
        record.ended = Date.now();
      }
    });
  }

  dispose(): void {
    this.changed.dispose();
  }
}
