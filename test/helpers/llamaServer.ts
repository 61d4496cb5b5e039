/**
 * llama.cpp's llama-server for the remote-backend tests and benchmarks: built from the llama.cpp
 * source node-llama-cpp ships (scripts/build-llama-server.sh), serving the tiny base model with the
 * three tiny LoRA adapters on 127.0.0.1.
 *
 * When the binary is missing the tests fail with how to build it, unless GPIOT_SKIP_LLAMA_SERVER=1
 * says to skip them. (Node builtins only: the VS Code suite bundles this file too.)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";

export function llamaServerPath(repoRoot: string): string {
  return process.env.GPIOT_LLAMA_SERVER ?? path.join(repoRoot, ".cache", "llama-server", "bin", "llama-server");
}

export function llamaServerMissingMessage(binary: string): string {
  return [
    `llama-server is not built: ${binary} does not exist.`,
    "The remote-backend tests serve the tiny test models with llama.cpp's llama-server, built from the llama.cpp source node-llama-cpp ships.",
    "Build it once (needs cmake and g++; 10-30 min on 2 cores): bash scripts/build-llama-server.sh",
    "or bash scripts/install-scale-tools.sh (installs cmake, g++ and docker-compose with apt, then builds it).",
    "Another build can be used with GPIOT_LLAMA_SERVER=/path/to/llama-server. To skip these tests instead, set GPIOT_SKIP_LLAMA_SERVER=1.",
  ].join("\n");
}

/** The binary, or: skip (GPIOT_SKIP_LLAMA_SERVER=1) / fail with how to build it. */
export function requireLlamaServer(repoRoot: string, skip: (reason: string) => void): string | null {
  const binary = llamaServerPath(repoRoot);
  if (existsSync(binary)) return binary;
  if (process.env.GPIOT_SKIP_LLAMA_SERVER === "1") {
    skip(`llama-server not built (${binary}); GPIOT_SKIP_LLAMA_SERVER=1`);
    return null;
  }
  throw new Error(llamaServerMissingMessage(binary));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface LlamaServerOptions {
  binary: string;
  model: string;
  /** LoRA adapter files, in --lora order (ids 0, 1, 2, ...); started at scale 0, selected per request. */
  adapters: string[];
  /** The model name /v1/models lists. */
  alias?: string;
  apiKey?: string;
  /** Slots: requests decoded at once. */
  parallel?: number;
  /** Context per slot. */
  contextPerSlot?: number;
  threads?: number;
  port?: number;
  extraArgs?: string[];
}

const LOG_KEPT_CHARS = 256 * 1024;

export class LlamaServer {
  private output = "";
  private exited = false;
  private readonly logWaiters = new Set<() => void>();

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    private readonly apiKey: string | undefined,
  ) {
    child.stdout?.setEncoding("utf8").on("data", (text: string) => this.keep(text));
    child.stderr?.setEncoding("utf8").on("data", (text: string) => this.keep(text));
    child.on("exit", () => (this.exited = true));
  }

  private keep(text: string): void {
    this.output = (this.output + text).slice(-LOG_KEPT_CHARS);
    for (const waiter of [...this.logWaiters]) waiter();
  }

  get root(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The OpenAI-style base URL. */
  get baseUrl(): string {
    return `${this.root}/v1`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The end of the server's log (for failure messages). */
  get log(): string {
    return this.output;
  }

  /**
   * Resolves once the log matches. llama.cpp writes its log from a worker thread, so a line can reach
   * this process after an HTTP answer that the server gave later (the slots going idle, say).
   */
  waitForLog(pattern: RegExp, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pattern.test(this.output)) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`llama-server did not log ${pattern} within ${timeoutMs} ms; its log ends:\n${this.output.slice(-2000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.logWaiters.delete(check);
      };
      this.logWaiters.add(check);
      check();
    });
  }

  static async start(options: LlamaServerOptions): Promise<LlamaServer> {
    const port = options.port ?? (await freePort());
    const parallel = options.parallel ?? 2;
    const args = [
      "-m",
      options.model,
      ...options.adapters.flatMap((adapter) => ["--lora", adapter]),
      "--lora-init-without-apply",
      "--alias",
      options.alias ?? "tiny-base",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "-t",
      String(options.threads ?? 1),
      "-tb",
      String(options.threads ?? 1),
      "--parallel",
      String(parallel),
      "-c",
      String((options.contextPerSlot ?? 4096) * parallel),
      "--no-webui",
      // The tiny models' tokenizer splits "assistant" as " as"+"si"+...; the Jinja chat path puts the
      // generation prompt into the output grammar and fails on it ("Failed to initialize samplers").
      // The built-in ChatML path works. Real models' tokenizers have no such problem.
      "--no-jinja",
      ...(options.apiKey ? ["--api-key", options.apiKey] : []),
      ...(options.extraArgs ?? []),
    ];
    const child = spawn(options.binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    const server = new LlamaServer(child, port, options.apiKey);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (server.exited) throw new Error(`llama-server exited while starting (${options.binary} ${args.join(" ")}):\n${server.log}`);
      try {
        const response = await fetch(`${server.root}/health`);
        if (response.ok) return server;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`llama-server did not become healthy within 60 s:\n${server.log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** GET /slots: what each slot is doing. */
  async slots(): Promise<{ id: number; is_processing: boolean; next_token?: { n_decoded?: number }[] | { n_decoded?: number } }[]> {
    const response = await fetch(`${this.root}/slots`, { headers: this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {} });
    if (!response.ok) throw new Error(`GET /slots: HTTP ${response.status} ${await response.text()}`);
    return (await response.json()) as never;
  }

  /** SIGKILL, as a crash would. */
  async kill(): Promise<void> {
    if (!this.exited) this.child.kill("SIGKILL");
    await this.exit();
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.exit();
    clearTimeout(timer);
  }

  private exit(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => this.child.once("exit", () => resolve()));
  }
}
