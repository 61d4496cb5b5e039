import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { z } from "zod";
import { Program } from "../../sidecar/src/engine/program";
import { grammarSchemaFor } from "../../sidecar/src/grammarSchema";
import { JsonStreamScanner } from "../../sidecar/src/pipeline/jsonStream";
import { CodeArtifactSchema, DecompositionSchema } from "../../sidecar/src/schemas";
import { EventBatcher } from "../../sidecar/src/server/eventBatcher";
import { TolerantMessageReader } from "../../sidecar/src/server/tolerantMessageReader";
import type { JobEvent } from "../../sidecar/src/protocol";
import { sampleSubTasks } from "../helpers/fakeModels";

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
  test("answers bad bodies, skips garbage and keeps reading", () => {
    const input = new PassThrough();
    const problems: string[] = [];
    const replies: unknown[] = [];
    const messages: unknown[] = [];
    const reader = new TolerantMessageReader(input, (problem, reply) => {
      problems.push(problem);
      if (reply) replies.push(reply);
    });
    reader.listen((message) => messages.push(message));
    const frame = (body: string) => `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    input.write(frame("{bad json"));
    input.write("random garbage\r\n");
    input.write(frame(JSON.stringify({ hello: 1, id: 7 })));
    input.write(frame(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "gpiot/status", params: {} })).slice(0, 30));
    input.write(frame(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "gpiot/status", params: {} })).slice(30));
    input.write("Content-Length: abc\r\n\r\n" + frame(JSON.stringify({ jsonrpc: "2.0", method: "initialized", params: {} })));
    assert.deepEqual(messages, [{ jsonrpc: "2.0", id: 1, method: "gpiot/status", params: {} }, { jsonrpc: "2.0", method: "initialized", params: {} }]);
    assert.deepEqual(replies.map((reply: any) => [reply.id, reply.code]), [[null, -32700], [7, -32600]]);
    assert.ok(problems.some((problem) => /not a JSON-RPC message header/.test(problem)));
    assert.ok(problems.some((problem) => /Content-Length header is not a number/.test(problem)));
  });
});
