/**
 * Reads a JSON document as the model writes it, token by token, so the engine can stream what
 * the user wants to see before the whole answer exists: the decoded text of a string field (the
 * code as it is written) and each element of an array as soon as it is complete (each sub-task
 * as TD produces it).
 *
 * Paths name object keys joined by "." with "[]" for array elements, e.g. "code" or "subTasks[].name".
 */
export interface JsonStreamHandlers {
  /** Decoded characters appended to the string at `path` (escapes resolved). */
  onStringDelta?(path: string, text: string): void;
  /** A complete element of the array at `path`, as JSON text. */
  onArrayElement?(path: string, index: number, json: string): void;
}

type Frame =
  | { kind: "object"; key: string | null; expectingKey: boolean }
  | { kind: "array"; index: number; elementStart: number };

const simpleEscapes: Record<string, string> = { n: "\n", t: "\t", r: "\r", b: "\b", f: "\f", "/": "/", "\\": "\\", '"': '"' };

export class JsonStreamScanner {
  private readonly stack: Frame[] = [];
  private text = "";
  private inString = false;
  private stringIsKey = false;
  private escaping = false;
  private unicodeDigits: string | null = null;
  private keyBuffer = "";
  private pendingDelta = "";
  private primitiveActive = false;

  constructor(private readonly handlers: JsonStreamHandlers) {}

  push(chunk: string): void {
    for (const char of chunk) {
      const position = this.text.length;
      this.text += char;
      if (this.inString) this.readStringChar(char, position);
      else this.readStructureChar(char, position);
    }
    this.flushDelta();
  }

  private currentPath(excludeTopArray = false): string {
    const segments: string[] = [];
    this.stack.forEach((frame, i) => {
      if (frame.kind === "object") {
        if (frame.key !== null && !frame.expectingKey) segments.push(frame.key);
      } else if (!(excludeTopArray && i === this.stack.length - 1)) {
        segments.push("[]");
      }
    });
    return segments.join(".").replace(/\.\[\]/g, "[]");
  }

  private emitStringChar(decoded: string): void {
    if (this.stringIsKey) this.keyBuffer += decoded;
    else this.pendingDelta += decoded;
  }

  private flushDelta(): void {
    if (this.pendingDelta && this.handlers.onStringDelta) this.handlers.onStringDelta(this.currentPath(), this.pendingDelta);
    this.pendingDelta = "";
  }

  private readStringChar(char: string, position: number): void {
    if (this.unicodeDigits !== null) {
      this.unicodeDigits += char;
      if (this.unicodeDigits.length === 4) {
        this.emitStringChar(String.fromCharCode(parseInt(this.unicodeDigits, 16)));
        this.unicodeDigits = null;
      }
    } else if (this.escaping) {
      this.escaping = false;
      if (char === "u") this.unicodeDigits = "";
      else this.emitStringChar(simpleEscapes[char] ?? char);
    } else if (char === "\\") {
      this.escaping = true;
    } else if (char === '"') {
      this.inString = false;
      const top = this.stack.at(-1);
      if (this.stringIsKey && top?.kind === "object") {
        top.key = this.keyBuffer;
      } else {
        this.flushDelta();
        this.valueEnded(position);
      }
    } else {
      this.emitStringChar(char);
    }
  }

  private readStructureChar(char: string, position: number): void {
    const isDelimiter = char === "," || char === "}" || char === "]" || char === ":" || /\s/.test(char);
    if (this.primitiveActive && isDelimiter) {
      this.primitiveActive = false;
      this.valueEnded(position - 1);
    }
    const top = this.stack.at(-1);
    switch (char) {
      case "{":
        this.valueStarted(position);
        this.stack.push({ kind: "object", key: null, expectingKey: true });
        return;
      case "[":
        this.valueStarted(position);
        this.stack.push({ kind: "array", index: 0, elementStart: -1 });
        return;
      case "}":
      case "]":
        this.stack.pop();
        this.valueEnded(position);
        return;
      case '"':
        this.inString = true;
        this.stringIsKey = top?.kind === "object" && top.expectingKey;
        if (this.stringIsKey) this.keyBuffer = "";
        else this.valueStarted(position);
        return;
      case ":":
        if (top?.kind === "object") top.expectingKey = false;
        return;
      case ",":
        if (top?.kind === "object") top.expectingKey = true;
        return;
      default:
        if (!isDelimiter && !this.primitiveActive) {
          this.primitiveActive = true;
          this.valueStarted(position);
        }
    }
  }

  private valueStarted(position: number): void {
    const top = this.stack.at(-1);
    if (top?.kind === "array") top.elementStart = position;
  }

  private valueEnded(lastPosition: number): void {
    const top = this.stack.at(-1);
    if (top?.kind !== "array" || top.elementStart < 0) return;
    const json = this.text.slice(top.elementStart, lastPosition + 1);
    this.handlers.onArrayElement?.(this.currentPath(true), top.index, json);
    top.index += 1;
    top.elementStart = -1;
  }
}
