/**
 * One HTTP(S) transfer into a file that grows until it is complete, with the limits a user can rely
 * on: a connection that cannot be made within the connect timeout, or a server that sends nothing for
 * the read timeout, fails with a message that says which; an abort stops the transfer at once; a
 * refused connection or a name that does not resolve fails at once. The bytes fetched so far stay in
 * the file, with a small JSON file beside it that says where they came from, so the next call
 * continues with a Range request (and starts over when the server's file changed).
 */
import { createWriteStream, existsSync, type WriteStream } from "node:fs";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";

export interface TransferTimeouts {
  /** From the start of a request until its connection is open (DNS, TCP and TLS). */
  connectMs: number;
  /** The longest silence from the server: before the response headers, and between body chunks. */
  readMs: number;
}

export const DEFAULT_TIMEOUTS: TransferTimeouts = { connectMs: 10_000, readMs: 30_000 };

export type TransferFailure = "cancelled" | "unreachable" | "timeout" | "http" | "interrupted" | "size";

export class TransferError extends Error {
  constructor(
    readonly kind: TransferFailure,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "TransferError";
  }
}

export interface TransferOptions {
  url: string;
  /** Extra request headers; `authorization` is sent to the first origin only, never after a redirect elsewhere. */
  headers?: Record<string, string>;
  /** The file the bytes go into (kept on failure for the next call to continue). */
  file: string;
  /** Where the record of an unfinished transfer is kept. */
  recordFile: string;
  timeouts?: Partial<TransferTimeouts>;
  signal?: AbortSignal;
  /** Called once the size is known (before any body byte is written); throw to refuse the file. */
  onSize?(totalBytes: number): void;
  onProgress?(bytes: number, totalBytes: number): void;
}

export interface TransferResult {
  bytes: number;
  /** The transfer continued bytes fetched by an earlier call. */
  resumed: boolean;
}

interface TransferRecord {
  url: string;
  totalBytes: number;
  etag?: string;
  lastModified?: string;
}

const MAX_REDIRECTS = 10;
/** Automatic continuations after a connection broke mid-body (each one made progress). */
const MAX_CONTINUATIONS = 3;

function describeNetworkError(error: NodeJS.ErrnoException, url: URL): { kind: TransferFailure; message: string } {
  const host = url.host;
  switch (error.code) {
    case "ECONNREFUSED":
      return { kind: "unreachable", message: `${host} refused the connection (nothing listens there, or a firewall rejects it)` };
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return { kind: "unreachable", message: `the name ${url.hostname} cannot be resolved (no network, or no DNS)` };
    case "ENETUNREACH":
    case "EHOSTUNREACH":
    case "ENETDOWN":
    case "EHOSTDOWN":
      return { kind: "unreachable", message: `${host} cannot be reached: the network is down or has no route there (${error.code})` };
    case "ECONNRESET":
    case "EPIPE":
      return { kind: "interrupted", message: `${host} closed the connection (${error.code})` };
    case "CERT_HAS_EXPIRED":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return { kind: "unreachable", message: `the TLS certificate of ${host} is not trusted (${error.code})` };
    default:
      return { kind: "interrupted", message: `${host}: ${error.message}` };
  }
}

function hint(status: number): string {
  if (status === 401 || status === 403) return " (a gated or private file: accept its licence on the model page and set HF_TOKEN, or put the token in ~/.cache/huggingface/token)";
  if (status === 404) return " (no such file: check the source in the manifest)";
  if (status === 429) return " (rate limited: wait a little and pull again)";
  if (status >= 500) return " (a server error: try again later)";
  return "";
}

async function readRecord(recordFile: string): Promise<TransferRecord | null> {
  try {
    const record = JSON.parse(await readFile(recordFile, "utf8")) as TransferRecord;
    return typeof record.url === "string" && Number.isSafeInteger(record.totalBytes) ? record : null;
  } catch {
    return null;
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** The total size from a 206's Content-Range, or NaN. */
function rangeTotal(contentRange: string | undefined): { start: number; total: number } {
  const match = /^bytes (\d+)-\d+\/(\d+)$/.exec(contentRange ?? "");
  return match ? { start: Number(match[1]), total: Number(match[2]) } : { start: Number.NaN, total: Number.NaN };
}

interface Opened {
  response: http.IncomingMessage;
  request: http.ClientRequest;
  /** Re-arms the read timeout; call on every body chunk. */
  touch(): void;
  /** Ends the timers and listeners of this request. */
  finish(): void;
  /** Settles when the response fails, times out or is aborted. */
  failure: Promise<never>;
}

/** Sends one GET and follows redirects; resolves with the final response's headers. */
function open(startUrl: URL, headers: Record<string, string>, timeouts: TransferTimeouts, signal: AbortSignal | undefined): Promise<Opened> {
  return new Promise<Opened>((resolve, reject) => {
    let url = startUrl;
    let redirects = 0;
    const origin = startUrl.origin;

    const attempt = () => {
      const requestHeaders = { ...headers };
      if (url.origin !== origin) for (const name of Object.keys(requestHeaders)) if (name.toLowerCase() === "authorization") delete requestHeaders[name];
      const client = url.protocol === "https:" ? https : http;
      let failed: (error: TransferError) => void = () => undefined;
      const failure = new Promise<never>((_, rejectFailure) => (failed = rejectFailure));
      failure.catch(() => undefined);
      let connectTimer: NodeJS.Timeout | null = null;
      let readTimer: NodeJS.Timeout | null = null;
      let settled = false;
      // No keep-alive agent: an idle pooled socket would keep a finished CLI process waiting.
      const request = client.get(url, { headers: requestHeaders, agent: false });

      const clearTimers = () => {
        if (connectTimer) clearTimeout(connectTimer);
        if (readTimer) clearTimeout(readTimer);
        connectTimer = readTimer = null;
      };
      const fail = (error: TransferError) => {
        clearTimers();
        signal?.removeEventListener("abort", onAbort);
        request.destroy();
        if (!settled) {
          settled = true;
          reject(error);
        } else failed(error);
      };
      const touch = () => {
        if (readTimer) clearTimeout(readTimer);
        readTimer = setTimeout(() => fail(new TransferError("timeout", `${url.host} sent nothing for ${timeouts.readMs / 1000} s (read timeout)`)), timeouts.readMs);
      };
      const onAbort = () => fail(new TransferError("cancelled", "cancelled"));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });

      connectTimer = setTimeout(() => fail(new TransferError("timeout", `no connection to ${url.host} within ${timeouts.connectMs / 1000} s (connect timeout)`)), timeouts.connectMs);
      request.on("socket", (socket: Socket) => {
        const connected = () => {
          if (connectTimer) clearTimeout(connectTimer);
          connectTimer = null;
          touch();
        };
        if (!socket.connecting) connected();
        else socket.once(url.protocol === "https:" ? "secureConnect" : "connect", connected);
      });
      request.on("error", (error: NodeJS.ErrnoException) => {
        const described = describeNetworkError(error, url);
        fail(new TransferError(described.kind, described.message));
      });
      request.on("response", (response) => {
        touch();
        const status = response.statusCode ?? 0;
        const location = response.headers.location;
        if ([301, 302, 303, 307, 308].includes(status) && location) {
          response.resume();
          clearTimers();
          signal?.removeEventListener("abort", onAbort);
          request.destroy();
          if (++redirects > MAX_REDIRECTS) return fail(new TransferError("http", `${startUrl.host} redirected more than ${MAX_REDIRECTS} times`));
          url = new URL(location, url);
          if (url.protocol !== "https:" && url.protocol !== "http:") return fail(new TransferError("http", `a redirect to ${url.protocol} is not followed`));
          attempt();
          return;
        }
        response.on("error", (error: NodeJS.ErrnoException) => {
          const described = describeNetworkError(error, url);
          fail(new TransferError(described.kind, described.message));
        });
        response.on("aborted", () => fail(new TransferError("interrupted", `${url.host} closed the connection before the end of the file`)));
        settled = true;
        resolve({
          response,
          request,
          touch,
          failure,
          finish: () => {
            clearTimers();
            signal?.removeEventListener("abort", onAbort);
          },
        });
      });
    };
    attempt();
  });
}

/** Fetches `url` into `file`, continuing an earlier unfinished transfer of the same URL. */
export async function transferToFile(options: TransferOptions): Promise<TransferResult> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const url = new URL(options.url);
  let record = await readRecord(options.recordFile);
  let offset = record && record.url === options.url && existsSync(options.file) ? await sizeOf(options.file) : 0;
  if (record && offset > record.totalBytes) offset = 0;
  const resumed = offset > 0;
  let continuations = 0;
  let total = record && offset > 0 ? record.totalBytes : 0;

  for (;;) {
    if (options.signal?.aborted) throw new TransferError("cancelled", "cancelled");
    if (offset > 0 && offset === total) break;
    const headers: Record<string, string> = { "user-agent": "gpiot", "accept-encoding": "identity", ...options.headers };
    if (offset > 0) {
      headers.range = `bytes=${offset}-${total - 1}`;
      const validator = record?.etag && !record.etag.startsWith("W/") ? record.etag : record?.lastModified;
      if (validator) headers["if-range"] = validator;
    }
    const opened = await open(url, headers, timeouts, options.signal);
    const { response } = opened;
    const status = response.statusCode ?? 0;
    let stream: WriteStream | null = null;
    try {
      if (status === 416 && offset > 0) {
        // The range starts at the end: what we have is the whole file, unless the file changed.
        response.resume();
        offset = 0;
        total = 0;
        await rm(options.file, { force: true });
        await rm(options.recordFile, { force: true });
        continue;
      }
      if (status !== 200 && status !== 206) {
        response.resume();
        throw new TransferError("http", `${url.host} answered HTTP ${status} ${response.statusMessage ?? ""}`.trim() + hint(status), status);
      }
      if (status === 206) {
        const range = rangeTotal(response.headers["content-range"]);
        if (range.start !== offset || range.total !== total) {
          // Not the part we asked for: start again from the first byte.
          response.resume();
          offset = 0;
          total = 0;
          await rm(options.file, { force: true });
          continue;
        }
      } else {
        offset = 0;
        total = Number(response.headers["content-length"] ?? 0);
      }
      if (offset === 0) {
        options.onSize?.(total);
        record = { url: options.url, totalBytes: total, etag: response.headers.etag, lastModified: response.headers["last-modified"] };
        await writeFile(options.recordFile, JSON.stringify(record));
      }
      stream = createWriteStream(options.file, { flags: offset === 0 ? "w" : "a" });
      const file = stream;
      const startedAt = offset;
      await new Promise<void>((resolve, reject) => {
        opened.failure.catch(reject);
        file.on("error", (error) => reject(new TransferError("interrupted", `cannot write ${options.file}: ${error.message}`)));
        response.on("data", (chunk: Buffer) => {
          opened.touch();
          offset += chunk.length;
          if (!file.write(chunk)) {
            response.pause();
            file.once("drain", () => {
              opened.touch();
              response.resume();
            });
          }
          options.onProgress?.(offset, total);
        });
        response.on("end", () => {
          if (response.complete) resolve();
          else reject(new TransferError("interrupted", `${url.host} closed the connection before the end of the file`));
        });
      });
      opened.finish();
      await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
      stream = null;
      if (total > 0 && offset < total) {
        if (offset > startedAt && ++continuations <= MAX_CONTINUATIONS) continue;
        throw new TransferError("interrupted", `${url.host} sent ${offset} of ${total} bytes and stopped`);
      }
      if (total === 0) total = offset;
      break;
    } catch (error) {
      opened.finish();
      opened.request.destroy();
      if (stream) await new Promise<void>((resolve) => stream!.end(() => resolve()));
      if (error instanceof TransferError && error.kind === "interrupted" && offset > 0 && total > 0 && ++continuations <= MAX_CONTINUATIONS && !options.signal?.aborted) continue;
      throw error;
    }
  }
  await rm(options.recordFile, { force: true });
  return { bytes: offset, resumed };
}
