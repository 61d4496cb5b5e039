/**
 * The roles that run on OpenAI-compatible servers. `connect` probes each server once (its model
 * list, llama.cpp's adapter list, and one tiny structured request per role, so that a wrong key,
 * a wrong model or adapter name and a server without JSON-schema output are named before a job
 * starts); `generate` streams a chat completion whose output is constrained by the JSON Schema
 * derived from the stage's zod schema (zod still validates the answer).
 */
import type { GrammarJsonSchema } from "../grammarSchema";
import { CancelledError, type GenerationRequest, type GenerationResult, type RoleModels, type StopReason } from "../pipeline/structuredGeneration";
import type { RoleName } from "../schemas";
import type { EngineSettings } from "../settings";
import { OpenAICompatibleClient, RemoteBackendError } from "./openaiClient";
import type { RemoteEndpoint, RemoteSettings } from "../shared/remoteSettings";

/** The grammar schema as standard JSON Schema for a server: every object lists its properties as required. */
export function serverJsonSchema(schema: GrammarJsonSchema): Record<string, unknown> {
  if ("type" in schema && schema.type === "object")
    return { ...schema, properties: Object.fromEntries(Object.entries(schema.properties).map(([key, value]) => [key, serverJsonSchema(value)])), required: Object.keys(schema.properties) };
  if ("type" in schema && schema.type === "array") return { ...schema, items: serverJsonSchema(schema.items) };
  return { ...schema };
}

const PROBE_SCHEMA = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };

export interface RemoteRoleInfo {
  baseUrl: string;
  model: string;
  adapter?: string;
  /** The model name each request carries. */
  requestModel: string;
  /** llama.cpp adapter id selected per request. */
  loraId?: number;
  /** The server's context length for the model, when it says. */
  contextSize?: number;
}

interface RemoteRole extends RemoteRoleInfo {
  client: OpenAICompatibleClient;
  endpoint: RemoteEndpoint;
}

/** The model name a request carries for an endpoint, by its adapter selection. */
export function requestModelName(endpoint: RemoteEndpoint): string {
  if (!endpoint.adapter || endpoint.adapterSelection === "none" || endpoint.adapterSelection === "lora") return endpoint.model;
  if (endpoint.adapterSelection === "base:adapter") return `${endpoint.model}:${endpoint.adapter}`;
  return endpoint.adapter;
}

function describe(endpoint: RemoteEndpoint): string {
  return endpoint.adapter && endpoint.adapterSelection !== "none" ? `model "${endpoint.model}" with adapter "${endpoint.adapter}"` : `model "${endpoint.model}"`;
}

const stopReasons: Record<string, StopReason> = { stop: "eogToken", length: "maxTokens", eos: "eogToken" };

export class RemoteRoleModels implements RoleModels {
  private constructor(
    private readonly roles: Partial<Record<RoleName, RemoteRole>>,
    private readonly settings: EngineSettings,
  ) {}

  get roleNames(): RoleName[] {
    return Object.keys(this.roles) as RoleName[];
  }

  info(role: RoleName): RemoteRoleInfo | undefined {
    const found = this.roles[role];
    if (!found) return undefined;
    const { client: _client, endpoint: _endpoint, ...info } = found;
    return info;
  }

  parallelism(role: RoleName): number {
    return this.roles[role]?.client.maxConcurrentRequests ?? 0;
  }

  /** Probes every configured server and role; throws a RemoteBackendError that names the first problem. */
  static async connect(settings: EngineSettings, remote: RemoteSettings, options: { signal?: AbortSignal; onProgress?(message: string): void; env?: NodeJS.ProcessEnv } = {}): Promise<RemoteRoleModels> {
    const clients = new Map<string, OpenAICompatibleClient>();
    const roles: Partial<Record<RoleName, RemoteRole>> = {};
    const modelLists = new Map<OpenAICompatibleClient, Promise<{ id: string; max_model_len?: number; meta?: { n_ctx?: number } }[]>>();
    const loraLists = new Map<OpenAICompatibleClient, Promise<{ id: number; path?: string; name?: string }[]>>();
    for (const [role, endpoint] of Object.entries(remote.roles) as [RoleName, RemoteEndpoint | undefined][]) {
      if (!endpoint) continue;
      const key = `${endpoint.baseUrl.replace(/\/+$/, "")} ${endpoint.apiKeyEnv}`;
      let client = clients.get(key);
      if (!client) {
        client = new OpenAICompatibleClient({ ...remote, baseUrl: endpoint.baseUrl, apiKeyEnv: endpoint.apiKeyEnv, env: options.env });
        clients.set(key, client);
      }
      options.onProgress?.(`Connecting to ${client.baseUrl} for ${role.toUpperCase()}`);
      let models = modelLists.get(client);
      if (!models) {
        models = client
          .getJson("/models", options.signal)
          .then((body) => ((body as { data?: { id: string; max_model_len?: number; meta?: { n_ctx?: number } }[] })?.data ?? []).filter((model) => typeof model?.id === "string"));
        modelLists.set(client, models);
      }
      const listed = await models;
      const requestModel = requestModelName(endpoint);
      const mustList = endpoint.adapterSelection === "model" ? requestModel : endpoint.model;
      const entry = listed.find((model) => model.id === mustList);
      if (listed.length > 0 && !entry)
        throw new RemoteBackendError(
          "REMOTE_MODEL_NOT_FOUND",
          `${client.baseUrl} does not serve "${mustList}" (${role.toUpperCase()}: ${describe(endpoint)}). It serves: ${listed.map((model) => `"${model.id}"`).join(", ")}.`,
        );
      let loraId: number | undefined;
      if (endpoint.adapterSelection === "lora" && endpoint.adapter) {
        let adapters = loraLists.get(client);
        if (!adapters) {
          adapters = client.getRootJson("/lora-adapters", options.signal).then((body) => (Array.isArray(body) ? body : []) as { id: number; path?: string }[]);
          loraLists.set(client, adapters);
        }
        const wanted = endpoint.adapter;
        const baseName = (file?: string) => (file ?? "").split(/[\\/]/).pop() ?? "";
        const found = (await adapters).find(
          (adapter) => String(adapter.id) === wanted || baseName(adapter.path) === wanted || baseName(adapter.path).replace(/\.gguf$/i, "") === wanted || adapter.name === wanted,
        );
        if (!found)
          throw new RemoteBackendError(
            "REMOTE_MODEL_NOT_FOUND",
            `${client.serverRoot} has no LoRA adapter "${wanted}" for ${role.toUpperCase()}. Its adapters (start llama-server with --lora FILE): ${(await adapters).map((adapter) => `${adapter.id}: ${baseName(adapter.path)}`).join(", ") || "none"}.`,
          );
        loraId = found.id;
      }
      roles[role] = {
        client,
        endpoint,
        baseUrl: client.baseUrl,
        model: endpoint.model,
        ...(endpoint.adapter ? { adapter: endpoint.adapter } : {}),
        requestModel,
        ...(loraId !== undefined ? { loraId } : {}),
        // vLLM says max_model_len; llama.cpp says meta.n_ctx (per slot).
        ...(typeof (entry?.max_model_len ?? entry?.meta?.n_ctx) === "number" ? { contextSize: entry!.max_model_len ?? entry!.meta!.n_ctx } : {}),
      };
    }
    const models = new RemoteRoleModels(roles, settings);
    const probed = new Set<string>();
    for (const role of models.roleNames) {
      const found = roles[role]!;
      const key = `${found.client.baseUrl} ${found.requestModel} ${found.loraId ?? ""}`;
      if (probed.has(key)) continue;
      probed.add(key);
      options.onProgress?.(`Checking JSON-schema output of ${describe(found.endpoint)} at ${found.client.baseUrl}`);
      const answer = await found.client.complete(
        {
          ...models.requestBody(found, { role, systemPrompt: "Answer only with JSON.", userPrompt: 'Answer {"ok": true}.', maxTokens: 16 }),
          response_format: { type: "json_schema", json_schema: { name: "gpiot_probe", strict: true, schema: PROBE_SCHEMA } },
        },
        `${describe(found.endpoint)} (${role.toUpperCase()})`,
        options.signal,
      );
      if (answer.finishReason === "stop" && !/^\s*\{\s*"ok"\s*:\s*(true|false)\s*\}\s*$/.test(answer.text))
        throw new RemoteBackendError(
          "REMOTE_SCHEMA_UNSUPPORTED",
          `${found.client.baseUrl} ignored the JSON schema of a structured request (it answered ${JSON.stringify(answer.text.slice(0, 80))}). GPIoT needs JSON-schema output (response_format json_schema), e.g. vLLM, SGLang, LM Studio or llama.cpp's llama-server.`,
        );
    }
    return models;
  }

  private requestBody(found: RemoteRole, request: Pick<GenerationRequest, "role" | "systemPrompt" | "userPrompt" | "maxTokens">): Record<string, unknown> {
    return {
      model: found.requestModel,
      messages: [
        { role: "system", content: request.systemPrompt },
        { role: "user", content: request.userPrompt },
      ],
      max_tokens: request.maxTokens,
      temperature: this.settings.temperature,
      ...(this.settings.seed !== undefined ? { seed: this.settings.seed } : {}),
      ...(found.loraId !== undefined ? { lora: [{ id: found.loraId, scale: 1 }] } : {}),
    };
  }

  async generate(request: GenerationRequest): Promise<GenerationResult> {
    const found = this.roles[request.role];
    if (!found) throw new Error(`The ${request.role.toUpperCase()} role does not run on a remote server`);
    const body = {
      ...this.requestBody(found, request),
      response_format: { type: "json_schema", json_schema: { name: `gpiot_${request.role}`, strict: true, schema: serverJsonSchema(request.jsonSchema) } },
    };
    try {
      const result = await found.client.stream(body, `${describe(found.endpoint)} (${request.role.toUpperCase()})`, (text) => request.onTextChunk?.(text), request.signal);
      return {
        text: result.text,
        stopReason: stopReasons[result.finishReason ?? ""] ?? "eogToken",
        tokenCount: result.completionTokens,
        firstTokenMs: result.firstTokenMs,
        totalMs: result.totalMs,
        ...(result.serverTimings ? { serverTimings: result.serverTimings } : {}),
      };
    } catch (error) {
      if (error instanceof CancelledError) return { text: "", stopReason: "abort", tokenCount: 0, firstTokenMs: 0, totalMs: 0 };
      throw error;
    }
  }
}
