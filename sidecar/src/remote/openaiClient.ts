/**
 * A client for one OpenAI-compatible server: the capability probe, and chat completions streamed
 * over SSE, with a bound on requests in flight, timeouts, and retries with backoff for 429/5xx and
 * refused connections (only before the first token: a stream that broke after tokens reached the
 * user cannot be replayed). Every failure becomes a RemoteBackendError with one clear message.
 *
 * The API key is read from the environment variable the endpoint names, at each request, and is
 * sent only in the Authorization header: never logged, never part of an error message.
 */
import { CancelledError } from "../pipeline/structuredGeneration";
import { API_KEY_ENV_DEFAULT } from "../shared/remoteSettings";
import { readServerSentEvents } from "./sse";

export type RemoteErrorCode = "REMOTE_UNREACHABLE" | "REMOTE_UNAUTHORIZED" | "REMOTE_MODEL_NOT_FOUND" | "REMOTE_SCHEMA_UNSUPPORTED" | "REMOTE_FAILED";

export class RemoteBackendError extends Error {
  constructor(
    readonly code: RemoteErrorCode,
    message: string,
    /** HTTP status, when the server answered. */
    readonly status?: number,
  ) {
    super(message);
    this.name = "RemoteBackendError";
  }
}

export interface ClientOptions {
  baseUrl: string;
  apiKeyEnv?: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  retries: number;
  retryBaseDelayMs: number;
  maxConcurrentRequests: number;
  /** Where the environment variables come from (tests); default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface StreamedCompletion {
  text: string;
  finishReason: string | null;
  /** completion_tokens of the server's usage report; else the number of content chunks. */
  completionTokens: number;
  /** Whether completionTokens came from the server. */
  usageReported: boolean;
  /** Milliseconds from sending the request to the first content. */
  firstTokenMs: number;
  totalMs: number;
  /** llama.cpp's own timings of the request, when it sends them. */
  serverTimings?: { promptMs?: number; predictedMs?: number; predictedN?: number };
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Why a network-level fetch failed, from undici's error and its cause. */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code === "ECONNREFUSED") return "connection refused";
  if (cause?.code === "ENOTFOUND" || cause?.code === "EAI_AGAIN") return "host not found";
  if (cause?.code === "ECONNRESET" || cause?.code === "UND_ERR_SOCKET") return "connection reset";
  return cause?.message ?? (error as Error)?.message ?? String(error);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CancelledError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The server's error message from a JSON error body (OpenAI, vLLM, llama.cpp and SGLang shapes). */
function errorMessageOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } | string; message?: string; detail?: string };
    const message = typeof parsed.error === "string" ? parsed.error : (parsed.error?.message ?? parsed.message ?? parsed.detail);
    if (typeof message === "string" && message) return message.slice(0, 500);
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 300) || "(no details)";
}

const SCHEMA_WORDS = /response_format|json_schema|json schema|guided|grammar|structured output|sampler/i;

export class OpenAICompatibleClient {
  readonly baseUrl: string;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
  }

  /** The server's root (the base URL without a trailing /v1), where llama.cpp's own endpoints live. */
  get serverRoot(): string {
    return this.baseUrl.replace(/\/v1$/, "");
  }

  get maxConcurrentRequests(): number {
    return this.options.maxConcurrentRequests;
  }

  private headers(hasBody: boolean, streamed: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: streamed ? "text/event-stream" : "application/json" };
    if (hasBody) headers["content-type"] = "application/json";
    const key = (this.options.env ?? process.env)[this.options.apiKeyEnv ?? API_KEY_ENV_DEFAULT];
    if (key) headers.authorization = `Bearer ${key}`;
    return headers;
  }

  private async slot(signal?: AbortSignal): Promise<() => void> {
    if (this.active >= this.options.maxConcurrentRequests) {
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          const index = this.waiting.indexOf(go);
          if (index >= 0) this.waiting.splice(index, 1);
          reject(new CancelledError());
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        this.waiting.push(go);
      });
    }
    this.active += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active -= 1;
      this.waiting.shift()?.();
    };
  }

  /** Maps an HTTP error answer to one clear error; `what` names the model/adapter asked for. */
  httpError(status: number, body: string, what: string): RemoteBackendError {
    const detail = errorMessageOf(body);
    if (status === 401 || status === 403)
      return new RemoteBackendError(
        "REMOTE_UNAUTHORIZED",
        `${this.baseUrl} refused the API key (HTTP ${status}: ${detail}). Set the right key: the "GPIoT: Set Remote API Key" command in VS Code, or the ${this.options.apiKeyEnv ?? API_KEY_ENV_DEFAULT} environment variable for the CLI.`,
        status,
      );
    if (status === 404)
      return new RemoteBackendError("REMOTE_MODEL_NOT_FOUND", `${this.baseUrl} does not serve ${what} (HTTP 404: ${detail}). Check the model and adapter names (the server lists its models at ${this.baseUrl}/models).`, status);
    if ((status === 400 || status === 422 || status === 501) && SCHEMA_WORDS.test(detail))
      return new RemoteBackendError(
        "REMOTE_SCHEMA_UNSUPPORTED",
        `${this.baseUrl} rejected the JSON-schema structured output GPIoT needs (HTTP ${status}: ${detail}). Use a server with JSON-schema output (response_format json_schema), e.g. vLLM, SGLang, LM Studio or llama.cpp's llama-server.`,
        status,
      );
    if (status === 400 && /model|lora|adapter/i.test(detail) && /not (found|exist)|unknown|invalid/i.test(detail))
      return new RemoteBackendError("REMOTE_MODEL_NOT_FOUND", `${this.baseUrl} does not serve ${what} (HTTP 400: ${detail}).`, status);
    return new RemoteBackendError("REMOTE_FAILED", `${this.baseUrl} answered HTTP ${status} for ${what}: ${detail}`, status);
  }

  /**
   * One HTTP exchange with retries: `attempt` sends the request (with a signal that the connect
   * timeout or the caller aborts) and returns the response once it is OK; retryable failures are
   * retried while `retryable()` says no output has been delivered yet.
   */
  private async withRetries<T>(what: string, signal: AbortSignal | undefined, attempt: (signal: AbortSignal) => Promise<T>, retryable: () => boolean = () => true): Promise<T> {
    for (let tryNumber = 0; ; tryNumber++) {
      if (signal?.aborted) throw new CancelledError();
      try {
        return await attempt(signal ?? new AbortController().signal);
      } catch (error) {
        if (signal?.aborted || error instanceof CancelledError) throw new CancelledError();
        const remote = error instanceof RemoteBackendError ? error : new RemoteBackendError("REMOTE_FAILED", `${what}: ${(error as Error)?.message ?? error}`);
        const transient = remote.code === "REMOTE_UNREACHABLE" || (remote.status !== undefined && RETRYABLE_STATUS.has(remote.status)) || (remote.code === "REMOTE_FAILED" && remote.status === undefined);
        if (!transient || tryNumber >= this.options.retries || !retryable()) throw remote;
        const retryAfter = (remote as RemoteBackendError & { retryAfterMs?: number }).retryAfterMs;
        await sleep(retryAfter ?? this.options.retryBaseDelayMs * 2 ** tryNumber, signal);
      }
    }
  }

  /** fetch with the connect timeout (until response headers) and the caller's signal; network errors become RemoteBackendErrors. */
  private async send(path: string, init: { method: "GET" | "POST"; body?: unknown; streamed?: boolean }, signal: AbortSignal): Promise<{ response: Response; controller: AbortController }> {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.options.connectTimeoutMs);
    try {
      const response = await fetch(`${this.baseUrl}${path}`, {
        method: init.method,
        headers: this.headers(init.body !== undefined, init.streamed ?? false),
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: controller.signal,
      });
      return { response, controller };
    } catch (error) {
      if (signal.aborted) throw new CancelledError();
      if (timedOut) throw new RemoteBackendError("REMOTE_UNREACHABLE", `${this.baseUrl} did not answer within ${Math.round(this.options.connectTimeoutMs / 1000)} s.`);
      const reason = networkReason(error);
      throw new RemoteBackendError("REMOTE_UNREACHABLE", `Cannot connect to ${this.baseUrl} (${reason}). Is the server running, and is the base URL right?`);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }

  private async failure(response: Response, what: string): Promise<RemoteBackendError> {
    const body = await response.text().catch(() => "");
    const error = this.httpError(response.status, body, what) as RemoteBackendError & { retryAfterMs?: number };
    const retryAfter = Number(response.headers.get("retry-after"));
    if (Number.isFinite(retryAfter) && retryAfter >= 0) error.retryAfterMs = Math.min(retryAfter * 1000, 60_000);
    return error;
  }

  /** GET a JSON document relative to the base URL (e.g. /models). */
  async getJson(path: string, signal?: AbortSignal): Promise<unknown> {
    const release = await this.slot(signal);
    try {
      return await this.withRetries(`GET ${path}`, signal, async (attemptSignal) => {
        const { response } = await this.send(path, { method: "GET" }, attemptSignal);
        if (!response.ok) throw await this.failure(response, `${this.baseUrl}${path}`);
        return response.json();
      });
    } finally {
      release();
    }
  }

  /** A GET relative to the server root (llama.cpp's /lora-adapters, /slots), outside the /v1 prefix. */
  async getRootJson(path: string, signal?: AbortSignal): Promise<unknown> {
    const root = new OpenAICompatibleClient({ ...this.options, baseUrl: this.serverRoot });
    return root.getJson(path, signal);
  }

  /** A non-streamed chat completion (the probe). */
  async complete(body: Record<string, unknown>, what: string, signal?: AbortSignal): Promise<{ text: string; finishReason: string | null }> {
    const release = await this.slot(signal);
    try {
      return await this.withRetries(what, signal, async (attemptSignal) => {
        const { response } = await this.send("/chat/completions", { method: "POST", body: { ...body, stream: false } }, attemptSignal);
        if (!response.ok) throw await this.failure(response, what);
        const parsed = (await response.json()) as { choices?: { message?: { content?: string | null }; finish_reason?: string | null }[] };
        return { text: parsed.choices?.[0]?.message?.content ?? "", finishReason: parsed.choices?.[0]?.finish_reason ?? null };
      });
    } finally {
      release();
    }
  }

  /**
   * A streamed chat completion: content deltas go to `onText` as they arrive. The caller's signal
   * closes the stream (the server sees the connection close and stops generating).
   */
  async stream(body: Record<string, unknown>, what: string, onText: (text: string) => void, signal?: AbortSignal): Promise<StreamedCompletion> {
    const release = await this.slot(signal);
    const started = performance.now();
    let delivered = false;
    try {
      return await this.withRetries(
        what,
        signal,
        async (attemptSignal) => {
          const { response, controller } = await this.send(
            "/chat/completions",
            { method: "POST", body: { ...body, stream: true, stream_options: { include_usage: true } }, streamed: true },
            attemptSignal,
          );
          if (!response.ok) throw await this.failure(response, what);
          if (!response.body) throw new RemoteBackendError("REMOTE_FAILED", `${this.baseUrl} sent no response body for ${what}.`);
          let text = "";
          let finishReason: string | null = null;
          let chunks = 0;
          let usageTokens: number | undefined;
          let firstTokenMs = -1;
          let serverTimings: StreamedCompletion["serverTimings"];
          let idleTimer: NodeJS.Timeout | undefined;
          let idle = false;
          const armIdle = () => {
            clearTimeout(idleTimer);
            idleTimer = setTimeout(() => {
              idle = true;
              controller.abort();
            }, this.options.idleTimeoutMs);
          };
          const onAbort = () => controller.abort();
          attemptSignal.addEventListener("abort", onAbort, { once: true });
          armIdle();
          try {
            for await (const data of readServerSentEvents(response.body)) {
              armIdle();
              if (data === "[DONE]") break;
              let event: {
                choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[];
                usage?: { completion_tokens?: number };
                timings?: { prompt_ms?: number; predicted_ms?: number; predicted_n?: number };
                error?: { message?: string } | string;
              };
              try {
                event = JSON.parse(data);
              } catch {
                throw new RemoteBackendError("REMOTE_FAILED", `${this.baseUrl} sent a stream event that is not JSON for ${what}: ${data.slice(0, 200)}`);
              }
              if (event.error) throw new RemoteBackendError("REMOTE_FAILED", `${this.baseUrl} reported an error while generating ${what}: ${typeof event.error === "string" ? event.error : event.error.message}`);
              const choice = event.choices?.[0];
              const content = choice?.delta?.content;
              if (content) {
                if (firstTokenMs < 0) firstTokenMs = performance.now() - started;
                delivered = true;
                chunks += 1;
                text += content;
                onText(content);
              }
              if (choice?.finish_reason) finishReason = choice.finish_reason;
              if (typeof event.usage?.completion_tokens === "number") usageTokens = event.usage.completion_tokens;
              if (event.timings) serverTimings = { promptMs: event.timings.prompt_ms, predictedMs: event.timings.predicted_ms, predictedN: event.timings.predicted_n };
            }
          } catch (error) {
            if (attemptSignal.aborted) throw new CancelledError();
            if (error instanceof RemoteBackendError) throw error;
            if (idle) throw new RemoteBackendError("REMOTE_FAILED", `${this.baseUrl} stopped sending ${what} for ${Math.round(this.options.idleTimeoutMs / 1000)} s (idle timeout).`);
            throw new RemoteBackendError("REMOTE_FAILED", `The connection to ${this.baseUrl} broke while streaming ${what} after ${chunks} chunks (${networkReason(error)}).`);
          } finally {
            clearTimeout(idleTimer);
            attemptSignal.removeEventListener("abort", onAbort);
            // Closing the connection is what tells the server to stop generating.
            if (!finishReason) controller.abort();
            else void response.body.cancel().catch(() => undefined);
          }
          if (finishReason === null && !attemptSignal.aborted)
            throw new RemoteBackendError("REMOTE_FAILED", `The stream of ${what} from ${this.baseUrl} ended before the answer was complete (after ${chunks} chunks).`);
          return {
            text,
            finishReason,
            completionTokens: usageTokens ?? chunks,
            usageReported: usageTokens !== undefined,
            firstTokenMs: Math.max(0, firstTokenMs),
            totalMs: performance.now() - started,
            ...(serverTimings ? { serverTimings } : {}),
          };
        },
        () => !delivered,
      );
    } finally {
      release();
    }
  }
}
