/**
 * The OpenAI-compatible client's protocol handling against a scripted HTTP server on 127.0.0.1:
 * SSE parsing, retries with backoff (429/5xx, refused connections), one clear error per failure,
 * the idle timeout, cancel closing the connection, the API key kept out of messages, and the
 * probe's checks. The real-server behaviour (llama-server) is in test/integration/remote-llama-server.test.ts.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { grammarSchemaFor } from "../../sidecar/src/grammarSchema";
import { CancelledError } from "../../sidecar/src/pipeline/structuredGeneration";
import { OpenAICompatibleClient, RemoteBackendError } from "../../sidecar/src/remote/openaiClient";
import { RemoteRoleModels, requestModelName, serverJsonSchema } from "../../sidecar/src/remote/remoteRoleModels";
import { RemoteSettingsSchema } from "../../sidecar/src/shared/remoteSettings";
import { readServerSentEvents } from "../../sidecar/src/remote/sse";
import { CodeArtifactSchema } from "../../sidecar/src/schemas";
import { EngineSettingsSchema } from "../../sidecar/src/settings";

type Handler = (request: http.IncomingMessage, body: string, response: http.ServerResponse) => void;

let server: http.Server;
let baseUrl: string;
let handler: Handler;
const requests: { url: string; body: string; headers: http.IncomingHttpHeaders }[] = [];
const closedConnections: number[] = [];

before(async () => {
  server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      requests.push({ url: request.url ?? "", body, headers: request.headers });
      handler(request, body, response);
    });
    response.on("close", () => closedConnections.push(Date.now()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function client(overrides: Partial<ConstructorParameters<typeof OpenAICompatibleClient>[0]> = {}): OpenAICompatibleClient {
  return new OpenAICompatibleClient({ baseUrl, connectTimeoutMs: 2000, idleTimeoutMs: 2000, retries: 2, retryBaseDelayMs: 10, maxConcurrentRequests: 4, env: {}, ...overrides });
}

function sse(response: http.ServerResponse, events: unknown[], end = true): void {
  response.writeHead(200, { "content-type": "text/event-stream" });
  for (const event of events) response.write(`data: ${typeof event === "string" ? event : JSON.stringify(event)}\n\n`);
  if (end) response.end();
}

const delta = (content: string, finish: string | null = null) => ({ choices: [{ delta: { content }, finish_reason: finish }] });

describe("server-sent events", () => {
  test("events split across chunks and lines in any line ending come out whole", async () => {
    const encoder = new TextEncoder();
    const parts = ["data: {\"a\"", ":1}\r\n\r\nda", "ta: x\ndata: y\n\n: comment\n\ndata: [DONE]\r", "\n\r\n"];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(encoder.encode(part));
        controller.close();
      },
    });
    const events: string[] = [];
    for await (const data of readServerSentEvents(stream)) events.push(data);
    assert.deepEqual(events, ['{"a":1}', "x\ny", "[DONE]"]);
  });
});

describe("streamed chat completions", () => {
  test("deltas arrive in order, usage gives the token count, the key goes only in the Authorization header", async () => {
    handler = (_request, _body, response) => sse(response, [delta("{\"co"), delta("de\": 1}"), { choices: [{ delta: {}, finish_reason: "stop" }], usage: { completion_tokens: 7 } }, "[DONE]"]);
    const seen: string[] = [];
    const result = await client({ env: { GPIOT_API_KEY: "sk-secret-123" } }).stream({ model: "m" }, "model m", (text) => seen.push(text));
    assert.deepEqual(seen, ['{"co', 'de": 1}']);
    assert.equal(result.text, '{"code": 1}');
    assert.equal(result.finishReason, "stop");
    assert.equal(result.completionTokens, 7);
    assert.equal(requests.at(-1)!.headers.authorization, "Bearer sk-secret-123");
    const sent = JSON.parse(requests.at(-1)!.body);
    assert.equal(sent.stream, true);
    assert.equal(JSON.stringify(sent).includes("sk-secret"), false);
  });

  test("429 and 503 are retried with backoff until the server answers", async () => {
    let calls = 0;
    handler = (_request, _body, response) => {
      calls += 1;
      if (calls === 1) return void response.writeHead(429, { "retry-after": "0" }).end('{"error":{"message":"slow down"}}');
      if (calls === 2) return void response.writeHead(503).end('{"error":{"message":"loading model"}}');
      sse(response, [delta("{}", "stop")]);
    };
    const result = await client().stream({ model: "m" }, "model m", () => undefined);
    assert.equal(calls, 3);
    assert.equal(result.text, "{}");
  });

  test("a 5xx that persists ends in one REMOTE_FAILED error naming the status and the server's message", async () => {
    let calls = 0;
    handler = (_request, _body, response) => {
      calls += 1;
      response.writeHead(500).end('{"error":{"message":"out of memory"}}');
    };
    await assert.rejects(client().stream({ model: "m" }, "model m", () => undefined), (error: RemoteBackendError) => {
      assert.equal(error.code, "REMOTE_FAILED");
      assert.match(error.message, /HTTP 500.*out of memory/);
      return true;
    });
    assert.equal(calls, 3, "the first try and two retries");
  });

  test("401, 404 and an unsupported schema each get their own code and message, without retries", async () => {
    const cases: [number, string, string, RegExp][] = [
      [401, '{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}', "REMOTE_UNAUTHORIZED", /refused the API key.*GPIOT_API_KEY/],
      [404, '{"object":"error","message":"The model `cg-lora` does not exist.","type":"NotFoundError","code":404}', "REMOTE_MODEL_NOT_FOUND", /does not serve model cg.*does not exist/],
      [400, '{"error":{"message":"response_format type json_schema is not supported"}}', "REMOTE_SCHEMA_UNSUPPORTED", /JSON-schema structured output/],
    ];
    for (const [status, body, code, message] of cases) {
      let calls = 0;
      handler = (_request, _body, response) => {
        calls += 1;
        response.writeHead(status, { "content-type": "application/json" }).end(body);
      };
      await assert.rejects(client({ env: { GPIOT_API_KEY: "sk-wrong-456" } }).stream({ model: "m" }, "model cg", () => undefined), (error: RemoteBackendError) => {
        assert.equal(error.code, code);
        assert.match(error.message, message);
        assert.equal(error.message.includes("sk-wrong"), false, "the key never appears in a message");
        return true;
      });
      assert.equal(calls, 1, `HTTP ${status} is not retried`);
    }
  });

  test("a refused connection is retried, then named with the URL", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const started = performance.now();
    await assert.rejects(client({ baseUrl: `http://127.0.0.1:${port}/v1`, retryBaseDelayMs: 50 }).stream({}, "model m", () => undefined), (error: RemoteBackendError) => {
      assert.equal(error.code, "REMOTE_UNREACHABLE");
      assert.match(error.message, new RegExp(`Cannot connect to http://127.0.0.1:${port}/v1 \\(connection refused\\)`));
      return true;
    });
    assert.ok(performance.now() - started >= 150, "two backoff waits of 50 and 100 ms");
  });

  test("a stream that stops sending hits the idle timeout", async () => {
    handler = (_request, _body, response) => sse(response, [delta("{")], false);
    await assert.rejects(client({ idleTimeoutMs: 300, retries: 0 }).stream({}, "model m", () => undefined), (error: RemoteBackendError) => {
      assert.equal(error.code, "REMOTE_FAILED");
      assert.match(error.message, /idle timeout/);
      return true;
    });
  });

  test("a stream that breaks after tokens were delivered fails at once (no replay into the same output)", async () => {
    let calls = 0;
    handler = (_request, _body, response) => {
      calls += 1;
      sse(response, [delta("{\"code\"")], false);
      setTimeout(() => response.socket?.destroy(), 50);
    };
    const seen: string[] = [];
    await assert.rejects(client().stream({}, "model m", (text) => seen.push(text)), (error: RemoteBackendError) => {
      assert.equal(error.code, "REMOTE_FAILED");
      assert.match(error.message, /broke while streaming|ended before the answer was complete/);
      return true;
    });
    assert.equal(calls, 1);
    assert.deepEqual(seen, ['{"code"']);
  });

  test("cancel closes the connection and rejects as cancelled", async () => {
    handler = (_request, _body, response) => {
      sse(response, [delta("{")], false);
      const timer = setInterval(() => response.write(`data: ${JSON.stringify(delta(" "))}\n\n`), 10);
      response.on("close", () => clearInterval(timer));
    };
    const controller = new AbortController();
    const closedBefore = closedConnections.length;
    const pending = client().stream({}, "model m", () => controller.abort(), controller.signal);
    await assert.rejects(pending, CancelledError);
    const deadline = Date.now() + 2000;
    while (closedConnections.length === closedBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(closedConnections.length > closedBefore, "the server saw the connection close");
  });

  test("requests beyond maxConcurrentRequests wait for a free slot", async () => {
    let inFlight = 0;
    let most = 0;
    handler = (_request, _body, response) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight -= 1;
        sse(response, [delta("{}", "stop")]);
      }, 40);
    };
    const bounded = client({ maxConcurrentRequests: 2 });
    await Promise.all(Array.from({ length: 5 }, () => bounded.stream({}, "model m", () => undefined)));
    assert.equal(most, 2);
  });
});

describe("remote role models", () => {
  const endpoint = (overrides: Record<string, unknown> = {}) => ({ baseUrl, model: "base", ...overrides });
  const connect = (roles: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
    RemoteRoleModels.connect(EngineSettingsSchema.parse({}), RemoteSettingsSchema.parse({ roles, retries: 0 }), { env });

  test("the adapter selection decides the model name each request carries", () => {
    const parse = (adapterSelection: string) => RemoteSettingsSchema.parse({ roles: { cg: endpoint({ adapter: "cg", adapterSelection }) } }).roles.cg!;
    assert.equal(requestModelName(parse("model")), "cg");
    assert.equal(requestModelName(parse("base:adapter")), "base:cg");
    assert.equal(requestModelName(parse("lora")), "base");
    assert.equal(requestModelName(parse("none")), "base");
  });

  test("the JSON schema sent to the server lists every property as required", () => {
    const schema = serverJsonSchema(grammarSchemaFor(CodeArtifactSchema)) as { required: string[]; additionalProperties: boolean };
    assert.deepEqual(schema.required, ["code", "documentation", "requirements"]);
    assert.equal(schema.additionalProperties, false);
  });

  test("connect names a model the server does not list, and the models it does", async () => {
    handler = (request, _body, response) => {
      if (request.url === "/v1/models") return void response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: [{ id: "base" }, { id: "td" }] }));
      response.writeHead(500).end();
    };
    await assert.rejects(connect({ cg: endpoint({ adapter: "cg-lora" }) }), (error: RemoteBackendError) => {
      assert.equal(error.code, "REMOTE_MODEL_NOT_FOUND");
      assert.match(error.message, /does not serve "cg-lora" \(CG: model "base" with adapter "cg-lora"\)\. It serves: "base", "td"/);
      return true;
    });
  });

  test("connect finds a llama.cpp adapter by file name and sends its id with every request", async () => {
    handler = (request, body, response) => {
      if (request.url === "/v1/models") return void response.writeHead(200).end(JSON.stringify({ data: [{ id: "base" }] }));
      if (request.url === "/lora-adapters") return void response.writeHead(200).end(JSON.stringify([{ id: 0, path: "/m/td.gguf", scale: 0 }, { id: 1, path: "/m/cg.gguf", scale: 0 }]));
      if (request.url === "/v1/chat/completions" && !JSON.parse(body).stream)
        return void response.writeHead(200).end(JSON.stringify({ choices: [{ message: { content: '{"ok": true}' }, finish_reason: "stop" }] }));
      sse(response, [delta('{"code":"x","documentation":"d","requirements":[]}', "stop")]);
    };
    const models = await connect({ cg: endpoint({ adapter: "cg", adapterSelection: "lora" }) });
    assert.equal(models.info("cg")?.loraId, 1);
    await models.generate({ role: "cg", systemPrompt: "s", userPrompt: "u", jsonSchema: grammarSchemaFor(CodeArtifactSchema), maxTokens: 64 });
    const sent = JSON.parse(requests.at(-1)!.body);
    assert.deepEqual(sent.lora, [{ id: 1, scale: 1 }]);
    assert.equal(sent.response_format.type, "json_schema");
    assert.deepEqual(sent.response_format.json_schema.schema.required, ["code", "documentation", "requirements"]);
    await assert.rejects(connect({ cg: endpoint({ adapter: "rt", adapterSelection: "lora" }) }), /has no LoRA adapter "rt" for CG\. Its adapters \(start llama-server with --lora FILE\): 0: td\.gguf, 1: cg\.gguf/);
  });

  test("connect notices a server that ignores the JSON schema", async () => {
    handler = (request, _body, response) => {
      if (request.url === "/v1/models") return void response.writeHead(200).end(JSON.stringify({ data: [{ id: "base" }] }));
      response.writeHead(200).end(JSON.stringify({ choices: [{ message: { content: "Sure! Here is the answer: yes" }, finish_reason: "stop" }] }));
    };
    await assert.rejects(connect({ td: endpoint() }), (error: RemoteBackendError) => error.code === "REMOTE_SCHEMA_UNSUPPORTED" && /ignored the JSON schema/.test(error.message));
  });
});
