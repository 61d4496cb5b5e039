/**
 * Every message GPIoT shows goes through here, so that it is logged and so that tests can read
 * what the user was told and answer a question without a human (the extension's API exposes
 * `messages` and `setResponder`). Without a responder the normal VS Code UI is used.
 */
import * as vscode from "vscode";

export type MessageKind = "info" | "warning" | "error";

export interface RecordedMessage {
  kind: MessageKind;
  message: string;
  items: string[];
  modal: boolean;
  /** What the user (or the test responder) chose; undefined when dismissed or not awaited. */
  answer?: string;
  at: number;
}

/** Answers a message instead of the user: return an item's title, or undefined to dismiss. */
export type Responder = (message: RecordedMessage) => string | undefined | Promise<string | undefined>;

export class Ui {
  readonly messages: RecordedMessage[] = [];
  private responder: Responder | undefined;
  private readonly changed = new vscode.EventEmitter<RecordedMessage>();
  readonly onDidShowMessage = this.changed.event;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  setResponder(responder: Responder | undefined): void {
    this.responder = responder;
  }

  /** Shows a message; resolves with the chosen item (or undefined). */
  async show(kind: MessageKind, message: string, options: { modal?: boolean; detail?: string } = {}, ...items: string[]): Promise<string | undefined> {
    const record: RecordedMessage = { kind, message, items, modal: options.modal ?? false, at: Date.now() };
    this.messages.push(record);
    if (this.messages.length > 200) this.messages.splice(0, this.messages.length - 200);
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

  dispose(): void {
    this.changed.dispose();
  }
}
