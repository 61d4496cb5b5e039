/**
 * The real sidecar process, spoken to in raw bytes: JSON-RPC 2.0 to the letter (every request is
 * answered, whatever its id or params; what cannot be answered otherwise gets an error with id null;
 * batches get one array), LSP framing with header names in any case, strings that reach the
 * filesystem or a prompt checked before anything runs, profile names that are not inherited object
 * members, and the same guarantees over Node IPC.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setUpTestModels, sidecarPath, type TestModelSetup } from "../helpers/testModels";

type Json = any;

/** A client that writes bytes and reads LSP-framed messages, with no JSON-RPC library in between. */
class RawSidecar {
  readonly messages: Json[] = [];
  readonly stderr: string[] = [];
  private buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly child: ChildProcess,
    transport: "stdio" | "ipc",
  ) {
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    child.stderr!.setEncoding("utf8").on("data", (text: string) => this.stderr.push(text));
    if (transport === "ipc") child.on("message", (message) => this.push(message));
    else child.stdout!.on("data", (chunk: Buffer) => this.read(chunk));
  }

  static start(transport: "stdio" | "ipc" = "stdio"): RawSidecar {
    const child = spawn(process.execPath, [sidecarPath, transport === "ipc" ? "--node-ipc" : "--stdio"], {
      stdio: transport === "ipc" ? ["pipe", "pipe", "pipe", "ipc"] : ["pipe", "pipe", "pipe"],
    });
    return new RawSidecar(child, transport);
  }

  private push(message: Json): void {
    this.messages.push(message);
    for (const wake of this.waiters.splice(0)) wake();
  }

  private read(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = Number(/Content-Length: (\d+)/i.exec(this.buffer.subarray(0, end).toString("ascii"))![1]);
      if (this.buffer.length < end + 4 + length) return;
      this.push(JSON.parse(this.buffer.subarray(end + 4, end + 4 + length).toString("utf8")));
      this.buffer = this.buffer.subarray(end + 4 + length);
    }
  }

  write(bytes: string | Buffer): void {
    this.child.stdin!.write(bytes);
  }

  /** A framed message; `headerName` lets a test write the header in another case. */
  frame(value: unknown, headerName = "Content-Length"): void {
    const body = Buffer.from(typeof value === "string" ? value : JSON.stringify(value), "utf8");
    this.write(Buffer.concat([Buffer.from(`${headerName}: ${body.length}\r\n\r\n`, "ascii"), body]));
  }

  ipc(value: unknown): void {
    this.child.send!(value as never);
  }

  /** The first message (after `from`) that matches; fails after `timeoutMs`. */
  async next(match: (message: Json) => boolean, { from = 0, timeoutMs = 20_000 } = {}): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.slice(from).find(match);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.messages.slice(from)).slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The response with this id (responses with id null are matched by `from`). */
  response(id: unknown, from = 0): Promise<Json> {
    return this.next((message) => !("method" in message) && !Array.isArray(message) && message.id === id && ("result" in message || "error" in message), { from });
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }
}

let setup: TestModelSetup;
let scratch: string;

before(async () => {
  assert.ok(existsSync(sidecarPath), "run `npm run build` first");
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-protocol-test-"));
});

after(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";

async function initialize(sidecar: RawSidecar, send: (value: unknown) => void, options: object = { manifestPath: setup.manifestPath, threads: 1 }): Promise<void> {
  send({ jsonrpc: "2.0", id: "init", method: "initialize", params: { processId: null, rootUri: null, capabilities: {}, initializationOptions: options } });
  const reply = await sidecar.response("init");
  assert.ok(reply.result, JSON.stringify(reply));
}

describe("JSON-RPC 2.0 over stdio, in raw bytes", () => {
  let sidecar: RawSidecar;
  before(async () => {
    sidecar = RawSidecar.start();
    await initialize(sidecar, (value) => sidecar.frame(value));
  });
  after(async () => {
    assert.equal(await sidecar.stop(), 0);
  });

  test("a request without params is answered", async () => {
    sidecar.frame({ jsonrpc: "2.0", id: 1, method: "gpiot/status" });
    const reply = await sidecar.response(1);
    assert.equal(reply.error, undefined, JSON.stringify(reply.error));
    assert.equal(reply.result.modelState, "none");
    sidecar.frame({ jsonrpc: "2.0", id: 2, method: "gpiot/listProfiles", params: null });
    assert.ok((await sidecar.response(2)).result.profiles.length > 0, "params: null counts as no params");
  });

  test("params by position are refused with Invalid params, not misread", async () => {
    sidecar.frame({ jsonrpc: "2.0", id: 3, method: "gpiot/cancel", params: ["j1"] });
    const reply = await sidecar.response(3);
    assert.equal(reply.error.code, -32602);
    assert.match(reply.error.message, /by name/);
  });

  test("header names in any case; Content-Type before Content-Length", async () => {
    sidecar.frame({ jsonrpc: "2.0", id: 4, method: "gpiot/status", params: {} }, "content-length");
    sidecar.frame({ jsonrpc: "2.0", id: 5, method: "gpiot/status", params: {} }, "CONTENT-LENGTH");
    const body = JSON.stringify({ jsonrpc: "2.0", id: 6, method: "gpiot/status", params: {} });
    sidecar.write(`content-type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    for (const id of [4, 5, 6]) assert.ok((await sidecar.response(id)).result, `request ${id}`);
  });

  test('"id": null gets its response under id null; an object id gets Invalid Request under id null', async () => {
    const from = sidecar.messages.length;
    sidecar.frame({ jsonrpc: "2.0", id: null, method: "gpiot/status", params: {} });
    const answered = await sidecar.response(null, from);
    assert.equal(answered.result?.modelState, "none", JSON.stringify(answered));
    const from2 = sidecar.messages.length;
    sidecar.frame({ jsonrpc: "2.0", id: { a: 1 }, method: "gpiot/status", params: {} });
    const rejected = await sidecar.response(null, from2);
    assert.equal(rejected.error.code, -32600);
    assert.match(rejected.error.message, /"id" member must be a string, a number or null/);
  });

  test("a batch is answered with one array; an empty batch with one error", async () => {
    const from = sidecar.messages.length;
    sidecar.frame([
      { jsonrpc: "2.0", id: 10, method: "gpiot/status" },
      { jsonrpc: "2.0", method: "gpiot/noSuchNotification", params: {} },
      { jsonrpc: "2.0", id: 11, method: "gpiot/cancel", params: { jobId: "never-was" } },
      { foo: "boo" },
      { jsonrpc: "2.0", id: "12", method: "gpiot/doesNotExist" },
    ]);
    const batch = await sidecar.next(Array.isArray, { from });
    const byId = new Map(batch.map((response: Json) => [response.id, response]));
    assert.equal(batch.length, 4, JSON.stringify(batch));
    assert.equal((byId.get(10) as Json).result.modelState, "none");
    assert.deepEqual((byId.get(11) as Json).result, { cancelled: false, state: "unknown" });
    assert.equal((byId.get(null) as Json).error.code, -32600);
    assert.equal((byId.get("12") as Json).error.code, -32601);

    const from2 = sidecar.messages.length;
    sidecar.frame([]);
    const empty = await sidecar.response(null, from2);
    assert.equal(empty.error.code, -32600);
    assert.match(empty.error.message, /batch is empty/);
  });

  test("what cannot be read is answered with id null: not JSON, not UTF-8, not a header, not a request", async () => {
    const expectNullError = async (send: () => void, code: number, message: RegExp) => {
      const from = sidecar.messages.length;
      send();
      const reply = await sidecar.response(null, from);
      assert.equal(reply.error.code, code, JSON.stringify(reply));
      assert.match(reply.error.message, message);
    };
    await expectNullError(() => sidecar.frame("{not json"), -32700, /not valid JSON/);
    await expectNullError(() => sidecar.write(Buffer.concat([Buffer.from("Content-Length: 4\r\n\r\n"), Buffer.from([0x22, 0xc3, 0x28, 0x22])])), -32700, /not valid UTF-8/);
    await expectNullError(() => sidecar.write("garbage between messages\r\n"), -32700, /not a framed JSON-RPC message/);
    await expectNullError(() => sidecar.frame({ jsonrpc: "2.0", method: 1, params: "bar" }), -32600, /"method" member must be a string/);
    await expectNullError(() => sidecar.frame(42), -32600, /expected a JSON-RPC 2.0 message object/);
    sidecar.frame({ jsonrpc: "2.0", id: 20, method: "gpiot/status" });
    assert.ok((await sidecar.response(20)).result, "still serving");
  });

  test("profile names that are members of every object are unknown profiles, not crashes", async () => {
    let id = 100;
    for (const profile of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
      for (const method of ["gpiot/loadModels", "gpiot/pullPlan", "gpiot/modelFit", "gpiot/removeModel"]) {
        sidecar.frame({ jsonrpc: "2.0", id: ++id, method, params: { profile } });
        const reply = await sidecar.response(id);
        assert.equal(reply.error?.data?.code, "MANIFEST_INVALID", `${method} ${profile}: ${JSON.stringify(reply)}`);
        assert.match(reply.error.message, new RegExp(`no model profile "${profile}"`));
      }
    }
  });

  test("NUL, lone surrogates, control characters and absurd lengths are refused before anything runs", async () => {
    const outDir = path.join(scratch, "never");
    const cases: [string, object, RegExp][] = [
      ["gpiot/synthesize", { requirement: `${REQUIREMENT}\u0000`, outDir }, /requirement: contains a NUL character/],
      ["gpiot/synthesize", { requirement: REQUIREMENT, outDir: `${outDir}\u0000.py` }, /outDir: contains a NUL character/],
      ["gpiot/synthesize", { requirement: REQUIREMENT, constraints: "2 MB \u001b[31m", outDir }, /constraints: contains the control character U\+001B/],
      ["gpiot/synthesize", { requirement: REQUIREMENT, outDir: `${outDir}\nx` }, /outDir: contains the control character U\+000A/],
      ["gpiot/synthesize", { requirement: REQUIREMENT, outDir: path.join(scratch, "x".repeat(5000)) }, /outDir: Too big/],
      ["gpiot/assemble", { programId: "p1", outDir: "a\u0000b" }, /outDir: contains a NUL/],
      ["gpiot/loadModels", { modelPath: "/tmp/model\u0000.gguf" }, /modelPath: contains a NUL/],
      ["gpiot/cancel", { jobId: "j\u0000" }, /jobId: contains a NUL/],
      ["gpiot/updateSubTasks", { programId: "p1", subTasks: [{ subTask: { name: "Load", problem: "Read\u0000 it", steps: ["Read"] } }] }, /subTasks\.0\.subTask\.problem: contains a NUL/],
      ["gpiot/verify", { programId: "p1", inputs: { "a\u0000": 1 } }, /inputs: has a member name that contains a NUL/],
    ];
    let id = 200;
    for (const [method, params, message] of cases) {
      sidecar.frame({ jsonrpc: "2.0", id: ++id, method, params });
      const reply = await sidecar.response(id);
      assert.equal(reply.error?.code, -32602, `${method} ${JSON.stringify(params).slice(0, 100)}: ${JSON.stringify(reply).slice(0, 300)}`);
      assert.equal(reply.error.data.code, "INVALID_PARAMS");
      assert.match(reply.error.message, message);
    }
    // A lone surrogate can only be written as a JSON escape.
    const body = `{"jsonrpc":"2.0","id":299,"method":"gpiot/synthesize","params":{"requirement":"Detect falls from a wrist IMU \\ud800","outDir":"${outDir}"}}`;
    sidecar.frame(body);
    const lone = await sidecar.response(299);
    assert.equal(lone.error?.code, -32602, JSON.stringify(lone));
    assert.match(lone.error.message, /requirement: contains a lone surrogate \(U\+D800\)/);
    assert.equal(existsSync(outDir), false);
    sidecar.frame({ jsonrpc: "2.0", id: 300, method: "gpiot/status" });
    assert.deepEqual((await sidecar.response(300)).result.queuedJobIds, [], "no job was queued");
  });
});

describe("initialize", () => {
  test("settings with a NUL in a path are refused; good settings then work; a second initialize is refused", async () => {
    const sidecar = RawSidecar.start();
    try {
      sidecar.frame({ jsonrpc: "2.0", id: 1, method: "initialize", params: { processId: null, rootUri: null, capabilities: {}, initializationOptions: { manifestPath: "/tmp/m\u0000.json" } } });
      const refused = await sidecar.response(1);
      assert.equal(refused.error?.code, -32602, JSON.stringify(refused));
      assert.match(refused.error.message, /manifestPath: contains a NUL/);
      await initialize(sidecar, (value) => sidecar.frame(value));
      sidecar.frame({ jsonrpc: "2.0", id: 3, method: "initialize", params: { processId: null, rootUri: null, capabilities: {} } });
      const again = await sidecar.response(3);
      assert.equal(again.error?.code, -32600, JSON.stringify(again));
      assert.match(again.error.message, /already/);
    } finally {
      assert.equal(await sidecar.stop(), 0);
    }
  });
});

describe("a manifest may name profiles anything", () => {
  test('profiles called "constructor" and "__proto__" are listed and planned', async () => {
    const manifestPath = path.join(scratch, "odd-names.json");
    const profile = { base: { file: setup.models.base }, threads: 1 };
    writeFileSync(manifestPath, `{"version": 1, "defaultProfile": "constructor", "profiles": {"constructor": ${JSON.stringify(profile)}, "__proto__": ${JSON.stringify(profile)}}}`);
    const sidecar = RawSidecar.start();
    try {
      await initialize(sidecar, (value) => sidecar.frame(value), { manifestPath, threads: 1 });
      sidecar.frame({ jsonrpc: "2.0", id: 1, method: "gpiot/listProfiles" });
      const listed = await sidecar.response(1);
      assert.deepEqual(listed.result?.profiles.map((entry: Json) => [entry.name, entry.available]), [["constructor", true], ["__proto__", true]], JSON.stringify(listed));
      sidecar.frame({ jsonrpc: "2.0", id: 2, method: "gpiot/pullPlan", params: { profile: "__proto__" } });
      const plan = await sidecar.response(2);
      assert.equal(plan.result?.profile, "__proto__", JSON.stringify(plan));
      assert.equal(plan.result.needsNetwork, false);
      sidecar.frame({ jsonrpc: "2.0", id: 3, method: "gpiot/pullPlan", params: { profile: "toString" } });
      assert.match((await sidecar.response(3)).error.message, /no model profile "toString"; known profiles: constructor, __proto__/);
      assert.equal(readFileSync(manifestPath, "utf8").includes("__proto__"), true);
    } finally {
      assert.equal(await sidecar.stop(), 0);
    }
  });
});

describe("JSON-RPC 2.0 over Node IPC", () => {
  test("the same answers: no params, id null, batches, invalid messages", async () => {
    const sidecar = RawSidecar.start("ipc");
    try {
      await initialize(sidecar, (value) => sidecar.ipc(value));
      sidecar.ipc({ jsonrpc: "2.0", id: 1, method: "gpiot/status" });
      assert.equal((await sidecar.response(1)).result?.modelState, "none");
      const from = sidecar.messages.length;
      sidecar.ipc({ jsonrpc: "2.0", id: null, method: "gpiot/status" });
      assert.equal((await sidecar.response(null, from)).result?.modelState, "none");
      const from2 = sidecar.messages.length;
      sidecar.ipc([{ jsonrpc: "2.0", id: 2, method: "gpiot/status" }, { jsonrpc: "2.0", id: 3, method: "gpiot/pullPlan", params: { profile: "constructor" } }]);
      const batch = await sidecar.next(Array.isArray, { from: from2 });
      assert.deepEqual(batch.map((response: Json) => response.id).sort(), [2, 3]);
      assert.equal(batch.find((response: Json) => response.id === 3).error.data.code, "MANIFEST_INVALID");
      for (const invalid of ["text", 7, { jsonrpc: "2.0", id: [1], method: "gpiot/status" }]) {
        const before = sidecar.messages.length;
        sidecar.ipc(invalid);
        assert.equal((await sidecar.response(null, before)).error.code, -32600, JSON.stringify(invalid));
      }
      sidecar.ipc({ jsonrpc: "2.0", id: 4, method: "gpiot/synthesize", params: { requirement: REQUIREMENT, outDir: "a\u0000b" } });
      assert.match((await sidecar.response(4)).error.message, /outDir: contains a NUL/);
    } finally {
      assert.equal(await sidecar.stop(), 0);
    }
  });
});
