import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { z } from "zod";
import { Program } from "../../sidecar/src/engine/program";
import { grammarSchemaFor } from "../../sidecar/src/grammarSchema";
import { JsonStreamScanner } from "../../sidecar/src/pipeline/jsonStream";
import { CodeArtifactSchema, DecompositionSchema } from "../../sidecar/src/schemas";
import { EventBatcher } from "../../sidecar/src/server/eventBatcher";
import { JsonRpcGate } from "../../sidecar/src/server/jsonRpcGate";
import { TolerantMessageReader } from "../../sidecar/src/server/tolerantMessageReader";
import type { JobEvent } from "../../sidecar/src/protocol";
import { sampleSubTasks } from "../helpers/fakeModels";

/** The order Array.prototype.sort() gives without a comparator: by the text of each entry. */
const byJoinedText = (a: unknown, b: unknown): number => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0);

describe("JSON stream scanner", () => {
  test("decodes escapes split across chunks and reports nested array elements", () => {
    const deltas: string[] = [];
    const elements: [string, number, unknown][] = [];
    const scanner = new JsonStreamScanner({
      onStringDelta: (path, text) => path === "code" && deltas.push(text),
      onArrayElement: (path, index, json) => elements.push([path, index, JSON.parse(json)]),
    });
    const document = JSON.stringify({ code: 'a\n"b"\\ \u00e9\ud83d\ude00', list: [{ x: [1, 2] }, "s", 3, true], nested: { list: [null] } });
    for (const char of document) scanner.push(char);
    assert.equal(deltas.join(""), 'a\n"b"\\ \u00e9\ud83d\ude00');
    assert.deepEqual(elements, [
      ["list[].x", 0, 1],
      ["list[].x", 1, 2],
      ["list", 0, { x: [1, 2] }],
      ["list", 1, "s"],
      ["list", 2, 3],
      ["list", 3, true],
      ["nested.list", 0, null],
    ]);
  });
});

describe("grammar schema derived from zod", () => {
  test("keeps structure, halves short string limits, drops limits the grammar cannot hold", () => {
    const schema = grammarSchemaFor(DecompositionSchema) as any;
    assert.equal(schema.type, "object");
    assert.equal(schema.additionalProperties, false);
    assert.equal(schema.properties.subTasks.minItems, 2);
    assert.equal(schema.properties.subTasks.maxItems, 8);
    assert.equal(schema.properties.subTasks.items.properties.name.maxLength, 40);
    assert.equal(schema.properties.subTasks.items.properties.name.minLength, 1);
    const code = grammarSchemaFor(CodeArtifactSchema) as any;
    assert.equal(code.properties.code.maxLength, undefined);
    assert.deepEqual(Object.keys(code.properties), ["code", "documentation", "requirements"]);
  });
  test("refuses optional fields and patterns, which the grammar would not honour", () => {
    assert.throws(() => grammarSchemaFor(z.object({ a: z.string().optional() })), /optional/);
    assert.throws(() => grammarSchemaFor(z.object({ a: z.string().regex(/x/) })), /pattern/);
  });
});

describe("program state", () => {
  function programWithCode() {
    const program = new Program("p1", "Detect heartbeats", null);
    const entries = program.setDecomposition(sampleSubTasks);
    for (const entry of entries) {
      program.setSpec(entry.id, { target: "t", inputs: [], outputs: [{ name: "o", type: "int", description: "d" }] });
      program.setCode(entry.id, { code: "x = 1", documentation: "d", requirements: [] }, { checked: true, ok: true });
    }
    return program;
  }

  test("editing one sub-task keeps its spec and code, marked out of date; unchanged ones stay as they were", () => {
    const program = programWithCode();
    const [a, b, c] = program.subTasks.map((entry) => entry.id);
    const before = structuredClone(program.subTasks[1]);
    program.replaceSubTasks([{ id: a, subTask: sampleSubTasks[0] }, { id: b, subTask: { ...sampleSubTasks[1], name: "Detect QRS" } }, { id: c, subTask: sampleSubTasks[2] }]);
    assert.deepEqual(program.subTasks.map((entry) => entry.codeState), ["done", "stale", "done"]);
    assert.deepEqual(program.subTasks[1].spec, before.spec, "the spec is kept");
    assert.deepEqual(program.subTasks[1].artifact, before.artifact, "the code is kept");
    assert.equal(program.subTasks[1].specStale, true);
    assert.equal(program.subTasks[1].id, b);
    assert.deepEqual(program.subTasks.map((entry) => entry.specStale ?? false), [false, true, false]);
    const missing = program.parts();
    assert.ok("missing" in missing && missing.missing.id === b, "nothing assembles until it is regenerated");
    program.setSpec(b, { target: "t3", inputs: [], outputs: [{ name: "o", type: "int", description: "d" }] });
    assert.equal(program.find(b)!.specStale, undefined, "a new spec is up to date");
    assert.equal(program.find(b)!.codeState, "stale", "its code still needs regenerating");
  });

  test("restore puts sub-tasks back exactly, and new ids never collide with restored ones", () => {
    const program = programWithCode();
    const saved = structuredClone(program.subTasks);
    program.replaceSubTasks([{ id: saved[2].id, subTask: saved[2].subTask }, { subTask: { name: "New", problem: "p", steps: ["s"] } }]);
    program.restore(saved);
    assert.deepEqual(program.subTasks, saved, "order, text, specs, code and states as before");
    const elsewhere = new Program("p2", "Detect heartbeats", null);
    elsewhere.restore([{ ...saved[0], id: "p2-st7", codeState: "streaming" }]);
    assert.equal(elsewhere.subTasks[0].codeState, "stale", "code that was streaming is not finished");
    elsewhere.replaceSubTasks([{ id: "p2-st7", subTask: saved[0].subTask }, { subTask: { name: "New", problem: "p", steps: ["s"] } }]);
    assert.equal(elsewhere.subTasks[1].id, "p2-st8");
    assert.throws(() => elsewhere.restore([saved[0], saved[0]]), /unique/);
  });

  test("reordering makes code after the change stale; added sub-tasks get new ids", () => {
    const program = programWithCode();
    const [a, b, c] = program.subTasks.map((entry) => entry.id);
    program.replaceSubTasks([{ id: b, subTask: sampleSubTasks[1] }, { id: a, subTask: sampleSubTasks[0] }, { id: c, subTask: sampleSubTasks[2] }, { subTask: { name: "New", problem: "p", steps: ["s"] } }]);
    assert.deepEqual(program.subTasks.map((entry) => entry.codeState), ["stale", "stale", "done", "pending"]);
    assert.equal(new Set(program.subTasks.map((entry) => entry.id)).size, 4);
    assert.ok("missing" in program.parts());
    assert.throws(() => program.replaceSubTasks([{ id: "nope", subTask: sampleSubTasks[0] }]), /unknown sub-task id nope/);
  });

  test("a new spec makes existing code stale", () => {
    const program = programWithCode();
    const id = program.subTasks[2].id;
    program.setSpec(id, { target: "t2", inputs: [], outputs: [{ name: "o", type: "int", description: "d" }] });
    assert.equal(program.find(id)!.codeState, "stale");
    assert.ok(program.needsCode(program.find(id)!));
  });
});

describe("event batching", () => {
  test("merges consecutive deltas of one stream and keeps order around other events", async () => {
    const sent: JobEvent[] = [];
    const batcher = new EventBatcher((event) => sent.push(event), 5);
    const ref = { jobId: "j1", programId: "p1" };
    batcher.push({ type: "codeDelta", ...ref, subTaskId: "s1", text: "ab" });
    batcher.push({ type: "codeDelta", ...ref, subTaskId: "s1", text: "cd" });
    batcher.push({ type: "textDelta", ...ref, stage: "cg", subTaskId: "s1", text: "{" });
    batcher.push({ type: "codeReady", ...ref, subTaskId: "s1", artifact: { code: "abcd", documentation: "d", requirements: [] }, syntax: { checked: false, ok: false } });
    batcher.push({ type: "textDelta", ...ref, stage: "td", text: "x" });
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.deepEqual(sent.map((event) => [event.type, "text" in event ? event.text : ""]), [["codeDelta", "abcd"], ["textDelta", "{"], ["codeReady", ""], ["textDelta", "x"]]);
  });
});

describe("tolerant JSON-RPC reader", () => {
  function readerOn(input: PassThrough) {
    const problems: string[] = [];
    const replies: any[] = [];
    const messages: any[] = [];
    const gate = new JsonRpcGate({ send: (payload) => replies.push(payload), report: (problem) => problems.push(problem) });
    new TolerantMessageReader(input, gate).listen((message) => messages.push(message));
    return { problems, replies, messages, gate };
  }
  const frame = (body: string, name = "Content-Length") => `${name}: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

  test("answers bad bodies, skips garbage and keeps reading", () => {
    const input = new PassThrough();
    const { problems, replies, messages } = readerOn(input);
    input.write(frame("{bad json"));
    input.write("random garbage\r\n");
    input.write(frame(JSON.stringify({ hello: 1, id: 7 })));
    input.write(frame(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "gpiot/status", params: {} })).slice(0, 30));
    input.write(frame(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "gpiot/status", params: {} })).slice(30));
    input.write("Content-Length: abc\r\n\r\n" + frame(JSON.stringify({ jsonrpc: "2.0", method: "initialized", params: {} })));
    assert.deepEqual(messages.map((message) => message.method), ["gpiot/status", "initialized"]);
    assert.deepEqual(replies.map((reply) => [reply.id, reply.error.code]), [[null, -32700], [null, -32700], [7, -32600], [null, -32700]]);
    assert.ok(problems.some((problem) => /not a JSON-RPC message header/.test(problem)));
    assert.ok(problems.some((problem) => /Content-Length header is not a number/.test(problem)));
  });

  test("header names in any case, Content-Type first, a header split across writes", () => {
    const input = new PassThrough();
    const { replies, messages } = readerOn(input);
    const body = JSON.stringify({ jsonrpc: "2.0", method: "a" });
    input.write(frame(body, "content-length"));
    input.write(`Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nCONTENT-LENGTH: ${body.length}\r\n\r\n${body}`);
    const split = frame(body, "Content-length");
    input.write(split.slice(0, 5));
    input.write(split.slice(5));
    assert.equal(messages.length, 3);
    assert.deepEqual(replies, []);
  });

  test("another charset, invalid UTF-8 and an oversized body are answered with id null; the next message is read", () => {
    const input = new PassThrough();
    const problems: string[] = [];
    const replies: any[] = [];
    const messages: any[] = [];
    const gate = new JsonRpcGate({ send: (payload) => replies.push(payload), report: (problem) => problems.push(problem) });
    new TolerantMessageReader(input, gate, 1000).listen((message) => messages.push(message));
    const body = JSON.stringify({ jsonrpc: "2.0", method: "a" });
    input.write(`Content-Type: text/plain; charset=latin1\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    input.write(Buffer.concat([Buffer.from("Content-Length: 3\r\n\r\n"), Buffer.from([0x22, 0xff, 0x22])]));
    input.write(`Content-Length: 5000\r\n\r\n`);
    for (let i = 0; i < 5; i++) input.write("Content-Length: 1\r\n\r\n".padEnd(1000, "x"));
    input.write(frame(body));
    assert.deepEqual(replies.map((reply) => [reply.id, reply.error.code]), [[null, -32700], [null, -32700], [null, -32600]]);
    assert.match(replies[0].error.message, /latin1/);
    assert.match(replies[1].error.message, /UTF-8/);
    assert.equal(messages.length, 1, "the oversized body's bytes are dropped, even when they look like headers");
  });
});

describe("JSON-RPC gate", () => {
  function gateWith() {
    const sent: any[] = [];
    const delivered: any[] = [];
    const gate = new JsonRpcGate({ send: (payload) => sent.push(payload), report: () => undefined });
    const receive = (value: unknown) => gate.receive(value, (message) => delivered.push(message));
    /** Plays the connection: answers a delivered request with its method name. */
    const answer = (message: any) => {
      const out = gate.outgoing({ jsonrpc: "2.0", id: message.id, result: message.method } as never);
      if (out !== null) sent.push(out);
    };
    return { gate, sent, delivered, receive, answer };
  }

  test("a request with id null, a string or a number id is answered under that id", () => {
    const { sent, delivered, receive, answer } = gateWith();
    receive({ jsonrpc: "2.0", id: null, method: "a" });
    receive({ jsonrpc: "2.0", id: "x", method: "b" });
    receive({ jsonrpc: "2.0", id: 3, method: "c", params: null });
    assert.ok(delivered.every((message) => typeof message.id === "number"));
    assert.equal("params" in delivered[2], false, "params: null counts as no params");
    for (const message of [...delivered].reverse()) answer(message);
    assert.deepEqual(sent.map((response) => [response.id, response.result]), [[3, "c"], ["x", "b"], [null, "a"]]);
  });

  test("invalid requests: id null unless the id is usable", () => {
    const { sent, delivered, receive } = gateWith();
    for (const value of [{ jsonrpc: "2.0", id: { a: 1 }, method: "a" }, { jsonrpc: "2.0", id: [1], method: "a" }, { jsonrpc: "2.0", id: 4, method: 5 }, { jsonrpc: "1.0", id: 5, method: "a" }, { jsonrpc: "2.0", id: 6, method: "a", params: "p" }, { jsonrpc: "2.0", method: 1 }, 42, "text", null, { jsonrpc: "2.0", id: 7 }])
      receive(value);
    assert.deepEqual(delivered, []);
    assert.deepEqual(sent.map((response) => [response.id, response.error.code]), [[null, -32600], [null, -32600], [4, -32600], [5, -32600], [6, -32600], [null, -32600], [null, -32600], [null, -32600], [null, -32600], [7, -32600]]);
  });

  test("batches: one array with every answer; notifications get none; an empty batch one error", () => {
    const { sent, delivered, receive, answer } = gateWith();
    receive([]);
    assert.deepEqual(sent.splice(0).map((response) => [response.id, response.error.code]), [[null, -32600]]);
    receive([{ jsonrpc: "2.0", id: 1, method: "a" }, { jsonrpc: "2.0", method: "note" }, 7, { jsonrpc: "2.0", id: 1, method: "b" }]);
    assert.equal(sent.length, 0, "nothing goes out before every request is answered");
    const requests = delivered.filter((message) => "id" in message);
    answer(requests[1]);
    assert.equal(sent.length, 0);
    answer(requests[0]);
    assert.equal(sent.length, 1);
    const batch = sent[0];
    assert.ok(Array.isArray(batch));
    assert.deepEqual(batch.map((response: any) => [response.id, response.result ?? response.error.code]).sort(byJoinedText), [[1, "a"], [1, "b"], [null, -32600]].sort(byJoinedText));
    sent.length = 0;
    receive([{ jsonrpc: "2.0", method: "n1" }, { jsonrpc: "2.0", method: "n2" }]);
    assert.deepEqual(sent, []);
  });

  test("$/cancelRequest is mapped to the request's own id; unknown ids are dropped", () => {
    const { delivered, receive } = gateWith();
    receive({ jsonrpc: "2.0", id: "r", method: "slow" });
    receive({ jsonrpc: "2.0", method: "$/cancelRequest", params: { id: "r" } });
    receive({ jsonrpc: "2.0", method: "$/cancelRequest", params: { id: 12345 } });
    assert.deepEqual(delivered[1], { jsonrpc: "2.0", method: "$/cancelRequest", params: { id: delivered[0].id } });
    assert.equal(delivered.length, 2);
  });
});
