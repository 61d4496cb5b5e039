/**
 * Asking for a requirement. An input box takes a one-line requirement; its buttons take the
 * editor's selection or the whole active file instead (comment markers stripped), or open a
 * requirement document for a longer, multi-line requirement: an untitled Markdown file with a
 * "Synthesize this requirement" CodeLens on top. A "Constraints:" line becomes the resource
 * constraints.
 */
import * as vscode from "vscode";
import { REQUIREMENT_MAX_CHARS } from "../../sidecar/src/schemas";
import { findCommentBlock, parseRequirement, supportsLanguage } from "./commentParsing";

export const REQUIREMENT_DOCUMENT_MARKER = "<!-- GPIoT requirement";
const REQUIREMENT_TEMPLATE = `${REQUIREMENT_DOCUMENT_MARKER}: describe the program below in plain language, as long as you need, then choose "Synthesize this requirement" above. A line "Constraints: ..." states resource limits (device, memory, latency). -->

`;

export interface RequirementAnswer {
  requirement: string;
  constraints?: string;
  source: "typed" | "selection" | "file" | "document";
}

/** The requirement text of a document or selection: comment markers and the template comment stripped. */
export function requirementFromText(text: string, languageId: string): { requirement: string; constraints?: string } {
  let body = text.replace(/<!--[\s\S]*?-->/g, "");
  if (supportsLanguage(languageId)) {
    const block = findCommentBlock(body, languageId, 0, body.split(/\r?\n/).length - 1);
    // A selection that is one comment: read the comment; anything else is taken as it is.
    if (block && block.text.trim() && body.trim().split(/\r?\n/).length <= block.endLine - block.startLine + 1) body = block.text;
  }
  return parseRequirement(body);
}

function selectionText(): { text: string; languageId: string } | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.selection.isEmpty) return undefined;
  return { text: editor.document.getText(editor.selection), languageId: editor.document.languageId };
}

/** Opens a new requirement document; resolves with its editor. */
export async function openRequirementDocument(initial = ""): Promise<vscode.TextEditor> {
  const document = await vscode.workspace.openTextDocument({ language: "markdown", content: REQUIREMENT_TEMPLATE + initial });
  const editor = await vscode.window.showTextDocument(document, { preview: false });
  const end = document.lineAt(document.lineCount - 1).range.end;
  editor.selection = new vscode.Selection(end, end);
  return editor;
}

export function isRequirementDocument(document: vscode.TextDocument): boolean {
  return document.lineCount > 0 && document.lineAt(0).text.startsWith(REQUIREMENT_DOCUMENT_MARKER);
}

/**
 * Asks for the requirement. Resolves undefined when the user cancelled, or chose to write it in
 * a requirement document (which then has its own "Synthesize" CodeLens).
 */
export async function askRequirement(): Promise<RequirementAnswer | undefined> {
  const selection = selectionText();
  const input = vscode.window.createInputBox();
  const useSelection: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("selection"), tooltip: "Use the selected text as the requirement" };
  const useFile: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("file"), tooltip: "Use the whole active file as the requirement" };
  const useDocument: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("note"), tooltip: "Write a longer, multi-line requirement in an editor" };
  input.title = "GPIoT: Synthesize Program (1/2)";
  input.prompt = "What should the program do? Press Enter to continue. The buttons take the selection, the active file, or open an editor for a multi-line requirement.";
  input.placeholder = "e.g. Detect heartbeats in a single-lead ECG and report the heart rate";
  input.buttons = [...(selection ? [useSelection] : []), ...(vscode.window.activeTextEditor ? [useFile] : []), useDocument];
  input.ignoreFocusOut = true;
  if (selection) {
    const parsed = requirementFromText(selection.text, selection.languageId);
    // Input boxes are one line: a multi-line selection is offered through the button instead.
    if (!parsed.requirement.includes("\n")) input.value = parsed.requirement;
  }
  return new Promise<RequirementAnswer | undefined>((resolve) => {
    let settled = false;
    const finish = (answer: RequirementAnswer | undefined) => {
      if (settled) return;
      settled = true;
      resolve(answer);
      input.dispose();
    };
    input.onDidChangeValue((value) => {
      input.validationMessage = value.length > REQUIREMENT_MAX_CHARS ? `At most ${REQUIREMENT_MAX_CHARS} characters (${value.length}).` : undefined;
    });
    input.onDidAccept(() => {
      const value = input.value.trim();
      if (!value) {
        input.validationMessage = "Describe what the program should do, or use a button.";
        return;
      }
      if (value.length > REQUIREMENT_MAX_CHARS) return;
      finish({ ...parseRequirement(value), source: "typed" });
    });
    input.onDidTriggerButton((button) => {
      if (button === useSelection && selection) finish({ ...requirementFromText(selection.text, selection.languageId), source: "selection" });
      else if (button === useFile) {
        const document = vscode.window.activeTextEditor?.document;
        if (document) finish({ ...requirementFromText(document.getText(), document.languageId), source: "file" });
      } else if (button === useDocument) {
        finish(undefined);
        void openRequirementDocument(input.value.trim());
      }
    });
    input.onDidHide(() => finish(undefined));
    input.show();
  });
}

/** Asks for optional resource constraints; resolves "" when skipped, undefined when cancelled. */
export async function askConstraints(): Promise<string | undefined> {
  return vscode.window.showInputBox({
    title: "GPIoT: Synthesize Program (2/2)",
    prompt: "Resource constraints (optional): the device, memory or latency the program must fit. Press Enter to skip.",
    placeHolder: "e.g. Jetson Nano, <= 200 MB RAM, <= 10 ms per window",
    ignoreFocusOut: true,
    validateInput: (value) => (value.length > 1000 ? "At most 1000 characters." : undefined),
  });
}

/** CodeLens "Synthesize this requirement" on requirement documents. */
export class RequirementDocumentLens implements vscode.CodeLensProvider {
  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    if (!isRequirementDocument(document)) return [];
    return [
      new vscode.CodeLens(new vscode.Range(0, 0, 0, 0), {
        title: "$(sparkle) Synthesize this requirement",
        command: "gpiot.synthesize",
        arguments: [{ requirementUri: document.uri.toString() }],
      }),
    ];
  }
}
