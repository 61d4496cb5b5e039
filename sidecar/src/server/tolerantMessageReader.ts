/**
 * Reads LSP-framed JSON-RPC messages from a stream and survives bad input: a body that is not
 * JSON gets a Parse error response, a JSON value that is not a JSON-RPC message gets an Invalid
 * Request response (when it has an id), and bytes that are not a header are skipped up to the
 * next `Content-Length:`, so one broken message never stops the sidecar from serving the next.
 */
import { AbstractMessageReader, type DataCallback, type Disposable, type Message } from "vscode-jsonrpc/node";

const HEADER_END = Buffer.from("\r\n\r\n", "ascii");
const CONTENT_LENGTH = Buffer.from("Content-Length:", "ascii");
const MAX_HEADER_BYTES = 8192;

export interface ProtocolErrorReply {
  id: string | number | null;
  code: number;
  message: string;
}

export interface BadInputReporter {
  /** Something was wrong; `reply` is set when the client should get an error response. */
  (problem: string, reply?: ProtocolErrorReply): void;
}

function isJsonRpcMessage(value: unknown): value is Message {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const message = value as Record<string, unknown>;
  if (message.jsonrpc !== "2.0") return false;
  if (typeof message.method === "string") return true;
  return "id" in message && ("result" in message || "error" in message);
}

function requestId(value: unknown): string | number | null {
  const id = (value as { id?: unknown } | null)?.id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

export class TolerantMessageReader extends AbstractMessageReader {
  private buffer: Buffer = Buffer.alloc(0);
  private callback: DataCallback | null = null;

  constructor(
    private readonly readable: NodeJS.ReadableStream,
    private readonly reportBadInput: BadInputReporter,
    private readonly maxMessageBytes = 64 * 1024 * 1024,
  ) {
    super();
  }

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    const onData = (chunk: Buffer) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
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

  private skip(bytes: number, why: string): void {
    this.reportBadInput(`Discarded ${bytes} byte(s) of input: ${why}`);
    this.buffer = this.buffer.subarray(bytes);
  }

  private drain(): void {
    while (this.buffer.length > 0) {
      const headerStart = this.buffer.indexOf(CONTENT_LENGTH);
      if (headerStart !== 0) {
        if (headerStart > 0) {
          this.skip(headerStart, "it is not a JSON-RPC message header (expected Content-Length)");
          continue;
        }
        // No header start yet: keep a tail that could be the beginning of one.
        if (this.buffer.length > MAX_HEADER_BYTES) this.skip(this.buffer.length - CONTENT_LENGTH.length, "it is not a JSON-RPC message header (expected Content-Length)");
        return;
      }
      const headerEnd = this.buffer.indexOf(HEADER_END);
      if (headerEnd < 0) {
        if (this.buffer.length > MAX_HEADER_BYTES) this.skip(CONTENT_LENGTH.length, "the message header never ends");
        return;
      }
      const header = this.buffer.subarray(0, headerEnd).toString("ascii");
      const length = Number(/^Content-Length:\s*(\d+)\s*$/im.exec(header)?.[1] ?? NaN);
      if (!Number.isSafeInteger(length)) {
        this.skip(CONTENT_LENGTH.length, `the Content-Length header is not a number ("${header.slice(0, 60)}")`);
        continue;
      }
      if (length > this.maxMessageBytes) {
        this.reportBadInput(`A message of ${length} bytes is larger than the limit of ${this.maxMessageBytes}`, { id: null, code: -32600, message: `Invalid Request: message of ${length} bytes exceeds the ${this.maxMessageBytes}-byte limit` });
        this.skip(headerEnd + HEADER_END.length, "the message is too large");
        continue;
      }
      const bodyStart = headerEnd + HEADER_END.length;
      if (this.buffer.length < bodyStart + length) return;
      const body = this.buffer.subarray(bodyStart, bodyStart + length).toString("utf8");
      this.buffer = this.buffer.subarray(bodyStart + length);
      let value: unknown;
      try {
        value = JSON.parse(body);
      } catch (error) {
        this.reportBadInput(`A message body is not JSON: ${(error as Error).message}`, { id: null, code: -32700, message: `Parse error: the message body is not valid JSON (${(error as Error).message})` });
        continue;
      }
      if (!isJsonRpcMessage(value)) {
        const id = requestId(value);
        this.reportBadInput(
          "A message is not a JSON-RPC 2.0 request, notification or response",
          id !== null || (typeof value === "object" && value !== null && "id" in value)
            ? { id, code: -32600, message: 'Invalid Request: expected {"jsonrpc": "2.0", "method": ...} or a response' }
            : undefined,
        );
        continue;
      }
      this.callback?.(value);
    }
  }
}
