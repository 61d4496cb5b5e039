/**
 * JSON-RPC 2.0 to the letter, between the transport and vscode-jsonrpc: every parsed JSON value that
 * arrives passes through here, and every message the connection writes goes back through here.
 *
 * - A request gets exactly one response, whatever its id: vscode-jsonrpc only accepts string and
 *   number ids (a request with `"id": null` would get no answer), so every request is handed on
 *   under an id of our own and its response goes out under the client's id again. `$/cancelRequest`
 *   is mapped the same way.
 * - Something that is not a valid request gets an Invalid Request error (-32600), under its id when
 *   it has a usable one, else under id null, as the specification says. Notifications get no reply.
 * - Batches (a JSON array) are answered with one array holding the response of each request and the
 *   error of each invalid entry, in the order they are ready; a batch of notifications gets no reply
 *   and an empty batch gets one Invalid Request error.
 * - `"params": null` counts as no params: LSP clients send it for requests declared without params
 *   (shutdown); any other params that are neither an object nor an array make the request invalid.
 */
import type { DataCallback, Message, MessageWriter } from "vscode-jsonrpc/node";

export type JsonRpcId = string | number | null;

const INVALID_REQUEST = -32600;
const CANCEL_METHOD = "$/cancelRequest";

interface Batch {
  responses: unknown[];
  /** Requests of the batch that have not been answered yet. */
  waiting: number;
  /** Every entry has been looked at; the batch goes out once `waiting` is 0. */
  sealed: boolean;
}

interface PendingRequest {
  clientId: JsonRpcId;
  batch: Batch | null;
}

export interface JsonRpcGateOptions {
  /** Writes a payload (a message or a batch array) to the client as it is. */
  send(payload: unknown): void;
  /** A line for the log: what was wrong with the input. */
  report(problem: string): void;
}

type Admission = { deliver: Message[] } | { reply: unknown } | { ignore: true };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isUsableId(id: unknown): id is JsonRpcId {
  return id === null || typeof id === "string" || (typeof id === "number" && Number.isFinite(id));
}

function idKey(id: JsonRpcId): string {
  return typeof id === "string" ? `s:${id}` : `${id}`;
}

export function errorResponse(id: JsonRpcId, code: number, message: string): { jsonrpc: "2.0"; id: JsonRpcId; error: { code: number; message: string } } {
  return { jsonrpc: "2.0", id, error: { code, message } };
}

function isValidResponse(message: Record<string, unknown>): boolean {
  if (!isUsableId(message.id)) return false;
  const hasResult = Object.hasOwn(message, "result");
  const hasError = Object.hasOwn(message, "error");
  if (hasResult === hasError) return false;
  if (hasError) {
    const error = message.error;
    return isPlainObject(error) && Number.isInteger(error.code) && typeof error.message === "string";
  }
  return true;
}

export class JsonRpcGate {
  private nextInternalId = 1;
  private readonly pending = new Map<number, PendingRequest>();
  private readonly internalIdsByClientId = new Map<string, Set<number>>();

  constructor(private readonly options: JsonRpcGateOptions) {}

  /** Requests handed on and not answered yet. */
  get pendingRequests(): number {
    return this.pending.size;
  }

  /** Logs a problem with the input that needs no reply of its own. */
  note(problem: string): void {
    this.options.report(problem);
  }

  /** Answers what cannot be answered otherwise (a parse error, an unreadable frame): id null. */
  rejectUnreadable(code: number, message: string, problem: string): void {
    this.options.report(problem);
    this.options.send(errorResponse(null, code, message));
  }

  /** One parsed JSON value from the transport: a message, a batch, or something invalid. */
  receive(value: unknown, deliver: DataCallback): void {
    if (Array.isArray(value)) {
      this.receiveBatch(value, deliver);
      return;
    }
    const admission = this.admit(value, null);
    if ("deliver" in admission) for (const message of admission.deliver) deliver(message);
    else if ("reply" in admission) this.options.send(admission.reply);
  }

  private receiveBatch(entries: unknown[], deliver: DataCallback): void {
    if (entries.length === 0) {
      this.options.report("An empty batch");
      this.options.send(errorResponse(null, INVALID_REQUEST, "Invalid Request: the batch is empty"));
      return;
    }
    const batch: Batch = { responses: [], waiting: 0, sealed: false };
    const admitted: Message[] = [];
    for (const entry of entries) {
      const admission = Array.isArray(entry) ? this.invalid(null, "a batch entry is itself an array") : this.admit(entry, batch);
      if ("deliver" in admission) admitted.push(...admission.deliver);
      else if ("reply" in admission) batch.responses.push(admission.reply);
    }
    batch.sealed = true;
    for (const message of admitted) deliver(message);
    this.flushIfComplete(batch);
  }

  private invalid(id: JsonRpcId, why: string): Admission {
    this.options.report(`Invalid Request: ${why}`);
    return { reply: errorResponse(id, INVALID_REQUEST, `Invalid Request: ${why}`) };
  }

  private admit(value: unknown, batch: Batch | null): Admission {
    if (!isPlainObject(value)) return this.invalid(null, `expected a JSON-RPC 2.0 message object, got ${value === null ? "null" : typeof value}`);
    const hasId = Object.hasOwn(value, "id");
    const replyId = hasId && isUsableId(value.id) ? value.id : null;
    if (value.jsonrpc !== "2.0") return this.invalid(replyId, 'the "jsonrpc" member must be exactly "2.0"');
    if (Object.hasOwn(value, "method")) {
      if (typeof value.method !== "string") return this.invalid(replyId, 'the "method" member must be a string');
      if (hasId && !isUsableId(value.id)) return this.invalid(null, 'the "id" member must be a string, a number or null');
      const params = value.params;
      if (params !== undefined && params !== null && typeof params !== "object") return this.invalid(replyId, 'the "params" member must be an object or an array');
      const message: Record<string, unknown> = { jsonrpc: "2.0", method: value.method };
      if (params !== undefined && params !== null) message.params = params;
      if (!hasId) return this.admitNotification(message);
      const internalId = this.nextInternalId++;
      this.pending.set(internalId, { clientId: value.id as JsonRpcId, batch });
      const key = idKey(value.id as JsonRpcId);
      let ids = this.internalIdsByClientId.get(key);
      if (!ids) this.internalIdsByClientId.set(key, (ids = new Set()));
      ids.add(internalId);
      if (batch) batch.waiting += 1;
      return { deliver: [{ ...message, id: internalId } as unknown as Message] };
    }
    if (Object.hasOwn(value, "result") || Object.hasOwn(value, "error")) {
      // A response to a request of ours; nothing may answer a response, so a broken one is only logged.
      if (!isValidResponse(value)) {
        this.options.report("A response that is not a valid JSON-RPC 2.0 response was ignored");
        return { ignore: true };
      }
      return { deliver: [value as unknown as Message] };
    }
    return this.invalid(replyId, 'expected a request ("method"), a notification or a response ("result" or "error")');
  }

  private admitNotification(message: Record<string, unknown>): Admission {
    if (message.method !== CANCEL_METHOD) return { deliver: [message as unknown as Message] };
    const id = isPlainObject(message.params) ? message.params.id : undefined;
    // A cancel for a request that was already answered, or never sent, is ignored as the LSP says.
    const internalIds = isUsableId(id) ? [...(this.internalIdsByClientId.get(idKey(id)) ?? [])] : [];
    return { deliver: internalIds.map((internalId) => ({ jsonrpc: "2.0", method: CANCEL_METHOD, params: { id: internalId } }) as unknown as Message) };
  }

  /** A message the connection wants to write: what goes on the wire instead, or null for nothing yet. */
  outgoing(message: Message): unknown {
    const candidate = message as unknown as Record<string, unknown>;
    const isResponse = !Object.hasOwn(candidate, "method") && (Object.hasOwn(candidate, "result") || Object.hasOwn(candidate, "error"));
    if (!isResponse || typeof candidate.id !== "number") return message;
    const request = this.pending.get(candidate.id);
    if (!request) return message;
    this.pending.delete(candidate.id);
    const key = idKey(request.clientId);
    const ids = this.internalIdsByClientId.get(key);
    ids?.delete(candidate.id);
    if (ids?.size === 0) this.internalIdsByClientId.delete(key);
    const response = { ...candidate, id: request.clientId };
    if (!request.batch) return response;
    request.batch.responses.push(response);
    request.batch.waiting -= 1;
    return this.completedBatch(request.batch);
  }

  private completedBatch(batch: Batch): unknown[] | null {
    if (!batch.sealed || batch.waiting > 0 || batch.responses.length === 0) return null;
    const responses = batch.responses;
    batch.responses = [];
    return responses;
  }

  private flushIfComplete(batch: Batch): void {
    const responses = this.completedBatch(batch);
    if (responses) this.options.send(responses);
  }
}

/** The connection's writer, with every outgoing message passed through the gate first. */
export class GatedMessageWriter implements MessageWriter {
  constructor(
    private readonly inner: MessageWriter,
    private readonly gate: JsonRpcGate,
  ) {}

  get onError() {
    return this.inner.onError;
  }

  get onClose() {
    return this.inner.onClose;
  }

  write(message: Message): Promise<void> {
    const payload = this.gate.outgoing(message);
    return payload === null ? Promise.resolve() : this.inner.write(payload as Message);
  }

  end(): void {
    this.inner.end();
  }

  dispose(): void {
    this.inner.dispose();
  }
}
