/**
 * Settings of the remote backend: per role, an OpenAI-compatible server (vLLM, SGLang, LM Studio,
 * llama.cpp's llama-server, ...) instead of the local models. Roles without an endpoint run
 * locally. API keys are never settings: an endpoint names the environment variable that holds its
 * key (the VS Code extension fills it from SecretStorage when it starts the engine).
 */
import { z } from "zod";

/**
 * How the server picks a role's adapter:
 * - `model`: the adapter is served as a model of its own (vLLM `--lora-modules name=path`, LM Studio): `model` = adapter name
 * - `base:adapter`: SGLang's `model` = "<base>:<adapter>"
 * - `lora`: llama.cpp's llama-server: the per-request `lora` list, [{id, scale}] (adapters started with `--lora`)
 * - `none`: no adapter; `model` as given
 */
export const AdapterSelection = z.enum(["model", "base:adapter", "lora", "none"]);
export type AdapterSelection = z.infer<typeof AdapterSelection>;

export const API_KEY_ENV_DEFAULT = "GPIOT_API_KEY";

export const RemoteEndpointSchema = z
  .object({
    /** The server's OpenAI-style base URL, e.g. http://gpu-host:8000/v1 */
    baseUrl: z.url({ protocol: /^https?$/ }),
    /** The base model's name as the server lists it in /v1/models (llama-server accepts any name). */
    model: z.string().min(1).max(300),
    /** The role's adapter: a served adapter name, or for `lora` selection its id or file name in /lora-adapters. */
    adapter: z.string().min(1).max(300).optional(),
    adapterSelection: AdapterSelection.default("model"),
    /** The environment variable holding the API key (never the key itself). Unset or empty: no key is sent. */
    apiKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name")
      .default(API_KEY_ENV_DEFAULT),
  })
  .strict();
export type RemoteEndpoint = z.infer<typeof RemoteEndpointSchema>;
export type RemoteEndpointInput = z.input<typeof RemoteEndpointSchema>;

export const RemoteSettingsSchema = z
  .object({
    /** The roles that run on a server; a role that is absent runs on the local models. */
    roles: z.object({ td: RemoteEndpointSchema.optional(), rt: RemoteEndpointSchema.optional(), cg: RemoteEndpointSchema.optional() }).strict().default({}),
    /** Longest wait for the server to accept a request and send its response headers. */
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(15_000),
    /** Longest silence between two streamed chunks once the answer streams. */
    idleTimeoutMs: z.number().int().min(100).max(3_600_000).default(120_000),
    /** Retries of a request the server refused with 429 or 5xx, or that could not connect, before any token arrived. */
    retries: z.number().int().min(0).max(10).default(3),
    /** First retry delay; each next one doubles (a Retry-After header wins). */
    retryBaseDelayMs: z.number().int().min(0).max(60_000).default(500),
    /** Requests in flight at once per server (parallel sub-tasks wait for a free one). */
    maxConcurrentRequests: z.number().int().min(1).max(256).default(8),
  })
  .strict();
export type RemoteSettings = z.infer<typeof RemoteSettingsSchema>;
export type RemoteSettingsInput = z.input<typeof RemoteSettingsSchema>;
