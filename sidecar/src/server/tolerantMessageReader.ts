/**
 * Readers that survive bad input and hand every JSON value to the JSON-RPC gate (jsonRpcGate.ts),
 * which answers what is not a valid request.
 *
 * Over a stream (stdio), messages are framed as in the LSP base protocol: header fields
 * `Name: value` separated by CRLF, an empty line, then `Content-Length` bytes of UTF-8 JSON. Header
 * names are case-insensitive; `Content-Type` is optional and, when given, must name UTF-8 (or leave
 * the charset out); unknown header fields are ignored. Whatever cannot be read gets an error response
 * with id null, as JSON-RPC asks for errors that cannot name their request:
 * - a body that is not UTF-8 or not JSON, or that names another charset: Parse error (-32700);
 * - bytes that are not a header: skipped up to the next `Content-Length`/`Content-Type` header, with
 *   one Parse error per run of skipped bytes;
 * - a body larger than the limit: Invalid Request (-32600); its bytes are dropped as they arrive.
 *
 * Over Node IPC, Node frames and parses the messages itself; each value still goes through the gate.
 */
import { AbstractMessageReader, type DataCallback, type Disposable } from "vscode-jsonrpc/node";
import type { JsonRpcGate } from "./jsonRpcGate";

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const HEADER_END = "\r\n\r\n";
const MAX_HEADER_BYTES = 8192;
const HEADER_NAMES = ["content-length:", "content-type:"];
const HEADER_START = /content-(?:length|type):/i;
const HEADER_AT_START = /^content-(?:length|type):/i;
const SEARCH_WINDOW_BYTES = 64 * 1024;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

interface ParsedHeader {
  contentLength: number;
  /** Set when the Content-Type names a charset other than UTF-8. */
  unsupportedCharset?: string;
}

/** The header block's fields, or why they cannot frame a message. */
export function parseHeader(block: string): ParsedHeader | { problem: string } {
  let contentLength: number | undefined;
  let unsupportedCharset: string | undefined;
  for (const line of block.split("\r\n")) {
    const match = HEADER_LINE.exec(line);
    if (!match) return { problem: `the header line "${line.slice(0, 60)}" is not "Name: value"` };
    const name = match[1].toLowerCase();
    const value = match[2];
    if (name === "content-length") {
      if (!/^\d{1,15}$/.test(value)) return { problem: `the Content-Length header is not a number ("${value.slice(0, 40)}")` };
      if (contentLength !== undefined && contentLength !== Number(value)) return { problem: "the message has two different Content-Length headers" };
      contentLength = Number(value);
    } else if (name === "content-type") {
      const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(value)?.[1];
      if (charset && !/^utf-?8$/i.test(charset)) unsupportedCharset = charset;
    }
  }
  if (contentLength === undefined) return { problem: "the message header has no Content-Length" };
  return { contentLength, unsupportedCharset };
}

/** Length of the longest tail of `text` that could be the start of a header name. */
function partialHeaderTail(text: string): number {
  const lower = text.slice(-16).toLowerCase();
  for (let length = Math.min(lower.length, 15); length > 0; length--) {
    const tail = lower.slice(lower.length - length);
    if (HEADER_NAMES.some((name) => name.startsWith(tail))) return length;
  }
  return 0;
}

export class TolerantMessageReader extends AbstractMessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Body bytes still to come for the frame being read. */
  private expected: ParsedHeader | null = null;
  /** Bytes of an oversized body still to drop. */
  private discarding = 0;
  /** Bytes are being skipped and the client was already told once. */
  private inUnreadableRun = false;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });
  private callback: DataCallback | null = null;

  constructor(
    private readonly readable: NodeJS.ReadableStream,
    private readonly gate: JsonRpcGate,
    private readonly maxMessageBytes = 64 * 1024 * 1024,
  ) {
    super();
  }

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    const onData = (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.drain();
    };
    const onError = (error: Error) => this.fireError(error);
    const onClose = () => this.fireClose();
    this.readable.on("data", onData);
    this.readable.on("error", onError);
    this.readable.on("close", onClose);
    this.readable.on("end", onClose);
    return {
      dispose: () => {
        this.readable.off("data", onData);
        this.readable.off("error", onError);
        this.readable.off("close", onClose);
        this.readable.off("end", onClose);
        this.callback = null;
      },
    };
  }

  /** Removes and returns the first `count` buffered bytes. */
  private take(count: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const taken = joined.subarray(0, count);
    const rest = joined.subarray(count);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }

  /** The buffered bytes as one buffer, left in place. */
  private peek(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private skipUnreadable(count: number, why: string): void {
    this.take(count);
    const problem = `Discarded ${count} byte(s) of input: ${why}`;
    if (this.inUnreadableRun) {
      this.gate.note(problem);
      return;
    }
    this.inUnreadableRun = true;
    this.gate.rejectUnreadable(PARSE_ERROR, `Parse error: input that is not a framed JSON-RPC message was discarded (${why})`, problem);
  }

  private drain(): void {
    while (this.buffered > 0) {
      if (this.discarding > 0) {
        const count = Math.min(this.discarding, this.buffered);
        this.take(count);
        this.discarding -= count;
        continue;
      }
      if (this.expected) {
        if (this.buffered < this.expected.contentLength) return;
        const header = this.expected;
        this.expected = null;
        this.handleBody(this.take(header.contentLength), header);
        continue;
      }
      if (!this.readHeader()) return;
    }
  }

  /** Parses or skips what is at the start of the buffer; false when more bytes are needed. */
  private readHeader(): boolean {
    const bytes = this.peek();
    // latin1 maps each byte to one character, so string offsets are byte offsets. Only a bounded
    // window is decoded per step, so many messages in one chunk cost no more than their own bytes.
    if (!HEADER_AT_START.test(bytes.toString("latin1", 0, Math.min(bytes.length, 16)))) {
      const window = bytes.toString("latin1", 0, Math.min(bytes.length, SEARCH_WINDOW_BYTES));
      const start = window.search(HEADER_START);
      if (start > 0) {
        this.skipUnreadable(start, "it is not a JSON-RPC message header (expected Content-Length)");
        return true;
      }
      if (start < 0) {
        const count = window.length - partialHeaderTail(window);
        if (count > 0) this.skipUnreadable(count, "it is not a JSON-RPC message header (expected Content-Length)");
        return bytes.length > window.length;
      }
    }
    const end = bytes.subarray(0, MAX_HEADER_BYTES + HEADER_END.length).indexOf(HEADER_END);
    if (end < 0) {
      if (bytes.length < MAX_HEADER_BYTES + HEADER_END.length) return false;
      this.skipUnreadable(HEADER_START.exec(bytes.toString("latin1", 0, 16))![0].length, `the message header does not end within ${MAX_HEADER_BYTES} bytes`);
      return true;
    }
    const text = bytes.toString("latin1", 0, end);
    const parsed = parseHeader(text);
    if ("problem" in parsed) {
      this.skipUnreadable(end + HEADER_END.length, parsed.problem);
      return true;
    }
    this.take(end + HEADER_END.length);
    this.inUnreadableRun = false;
    if (parsed.contentLength > this.maxMessageBytes) {
      this.gate.rejectUnreadable(
        INVALID_REQUEST,
        `Invalid Request: a message of ${parsed.contentLength} bytes exceeds the ${this.maxMessageBytes}-byte limit`,
        `A message of ${parsed.contentLength} bytes is larger than the limit of ${this.maxMessageBytes}; it was dropped`,
      );
      this.discarding = parsed.contentLength;
      return true;
    }
    this.expected = parsed;
    return true;
  }

  private handleBody(body: Buffer, header: ParsedHeader): void {
    if (header.unsupportedCharset) {
      this.gate.rejectUnreadable(PARSE_ERROR, `Parse error: the charset "${header.unsupportedCharset}" is not supported; send UTF-8`, `A message in charset ${header.unsupportedCharset} was dropped`);
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(this.decoder.decode(body));
    } catch (error) {
      const why = error instanceof TypeError ? "the message body is not valid UTF-8" : `the message body is not valid JSON (${(error as Error).message})`;
      this.gate.rejectUnreadable(PARSE_ERROR, `Parse error: ${why}`, `A message body is not JSON: ${why}`);
      return;
    }
    if (this.callback) this.gate.receive(value, this.callback);
  }
}

/** Node IPC: Node parses the JSON; the gate checks and answers each value. */
export class TolerantIpcMessageReader extends AbstractMessageReader {
  constructor(
    private readonly channel: NodeJS.Process,
    private readonly gate: JsonRpcGate,
  ) {
    super();
    channel.on("error", (error: Error) => this.fireError(error));
    channel.on("disconnect", () => this.fireClose());
  }

  listen(callback: DataCallback): Disposable {
    const onMessage = (value: unknown) => this.gate.receive(value, callback);
    this.channel.on("message", onMessage);
    return { dispose: () => this.channel.off("message", onMessage) };
  }
}
