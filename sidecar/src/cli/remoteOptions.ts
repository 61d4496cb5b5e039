/**
 * The command-line options that choose where each role runs and how many sub-tasks are generated
 * at once (shared by `gpiot synthesize` and `gpiot bench`). API keys never appear on the command
 * line: the server's key is read from an environment variable (GPIOT_API_KEY unless --api-key-env).
 */
import { roleNames, type RoleName } from "../schemas";
import { AdapterSelection, API_KEY_ENV_DEFAULT, RemoteSettingsSchema, type RemoteEndpointInput, type RemoteSettingsInput } from "../shared/remoteSettings";

export const REMOTE_OPTIONS = {
  backend: { type: "string" },
  "base-url": { type: "string" },
  "remote-model": { type: "string" },
  "adapter-selection": { type: "string" },
  adapter: { type: "string", multiple: true },
  "remote-roles": { type: "string" },
  "role-url": { type: "string", multiple: true },
  "api-key-env": { type: "string" },
  "request-timeout": { type: "string" },
  retries: { type: "string" },
  parallel: { type: "string" },
} as const;

export const REMOTE_USAGE = `Backend options (where the models run):
      --parallel N         sub-tasks generated at once (default 4; 1 = one after another)
      --backend MODE       local (default) | openai: an OpenAI-compatible server (vLLM, SGLang, LM Studio, llama-server)
      --base-url URL       the server's base URL, e.g. http://gpu-host:8000/v1
      --remote-model NAME  the base model's name on the server (as its /v1/models lists it)
      --adapter ROLE=NAME  the role's adapter on the server (repeatable: td=..., rt=..., cg=...)
      --adapter-selection M  how the server picks an adapter: model (vLLM, LM Studio: model = adapter name; default),
                           base:adapter (SGLang), lora (llama.cpp llama-server: per-request lora id), none
      --remote-roles LIST  roles that run on the server (default td,rt,cg); the others run locally
      --role-url ROLE=URL  a different server for one role (repeatable)
      --api-key-env VAR    environment variable holding the API key (default ${API_KEY_ENV_DEFAULT}; never pass keys as flags)
      --request-timeout S  seconds to wait for a server's answer or its next streamed chunk (default 120)
      --retries N          retries of a request refused with 429/5xx or a refused connection (default 3)`;

function pairs(values: string[] | undefined, flag: string, fail: (message: string) => never): Map<RoleName, string> {
  const result = new Map<RoleName, string>();
  for (const pair of values ?? []) {
    const at = pair.indexOf("=");
    const role = pair.slice(0, at) as RoleName;
    if (at <= 0 || !roleNames.includes(role) || !pair.slice(at + 1)) fail(`--${flag} expects ROLE=VALUE with ROLE td, rt or cg, got "${pair}"`);
    result.set(role, pair.slice(at + 1));
  }
  return result;
}

/** Settings from the backend options: `parallelSubTasks` and `remote` (absent for a local backend). */
export function backendSettings(values: Record<string, unknown>, fail: (message: string) => never): { parallelSubTasks?: number; remote?: RemoteSettingsInput } {
  const result: { parallelSubTasks?: number; remote?: RemoteSettingsInput } = {};
  if (values.parallel !== undefined) {
    const parallel = Number(values.parallel);
    if (!Number.isInteger(parallel) || parallel < 1 || parallel > 16) fail(`--parallel expects a whole number from 1 to 16, got "${String(values.parallel as string)}"`);
    result.parallelSubTasks = parallel;
  }
  const backend = (values.backend as string | undefined) ?? "local";
  if (backend !== "local" && backend !== "openai") fail(`--backend expects local or openai, got "${backend}"`);
  const remoteFlags = ["base-url", "remote-model", "adapter-selection", "adapter", "remote-roles", "role-url", "api-key-env", "request-timeout", "retries"];
  if (backend === "local") {
    const stray = remoteFlags.find((name) => values[name] !== undefined);
    if (stray) fail(`--${stray} goes with --backend openai`);
    return result;
  }
  const roleUrls = pairs(values["role-url"] as string[] | undefined, "role-url", fail);
  const adapters = pairs(values.adapter as string[] | undefined, "adapter", fail);
  const remoteRoles = ((values["remote-roles"] as string | undefined) ?? roleNames.join(","))
    .split(",")
    .map((role) => role.trim())
    .filter(Boolean);
  for (const role of remoteRoles) if (!roleNames.includes(role as RoleName)) fail(`--remote-roles expects roles td, rt, cg, got "${role}"`);
  if (remoteRoles.length === 0) fail("--remote-roles names no role");
  const baseUrl = values["base-url"] as string | undefined;
  const model = values["remote-model"] as string | undefined;
  if (!model) fail("--backend openai needs --remote-model NAME (the base model's name on the server)");
  const selection = AdapterSelection.safeParse((values["adapter-selection"] as string | undefined) ?? "model");
  if (!selection.success) fail(`--adapter-selection expects model, base:adapter, lora or none, got "${values["adapter-selection"]}"`);
  const roles: Partial<Record<RoleName, RemoteEndpointInput>> = {};
  for (const role of remoteRoles as RoleName[]) {
    const url = roleUrls.get(role) ?? baseUrl;
    if (!url) fail(`--backend openai needs --base-url URL (or --role-url ${role}=URL)`);
    roles[role] = {
      baseUrl: url,
      model: model!,
      adapterSelection: selection.data!,
      ...(adapters.get(role) ? { adapter: adapters.get(role) } : {}),
      ...(values["api-key-env"] ? { apiKeyEnv: values["api-key-env"] as string } : {}),
    };
  }
  const remote: RemoteSettingsInput = { roles };
  if (values["request-timeout"] !== undefined) {
    const seconds = Number(values["request-timeout"]);
    if (!Number.isFinite(seconds) || seconds <= 0) fail(`--request-timeout expects seconds, got "${String(values["request-timeout"] as string)}"`);
    remote.connectTimeoutMs = Math.round(seconds * 1000);
    remote.idleTimeoutMs = Math.round(seconds * 1000);
  }
  if (values.retries !== undefined) {
    const retries = Number(values.retries);
    if (!Number.isInteger(retries) || retries < 0 || retries > 10) fail(`--retries expects a whole number from 0 to 10, got "${String(values.retries as string)}"`);
    remote.retries = retries;
  }
  const parsed = RemoteSettingsSchema.safeParse(remote);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(`invalid backend option ${issue.path.join(".")}: ${issue.message}`);
  }
  result.remote = remote;
  return result;
}
