/**
 * Starts the sidecar as a child process and talks to it over stdio: the headless client used by
 * tests, the benchmark and any Node program that wants GPIoT without VS Code.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from "vscode-jsonrpc/node";
import { GpiotRpcClient, type JobEvent, type ModelEvent } from "../protocol";
import type { EngineSettingsInput } from "../settings";

export interface SidecarProcessOptions {
  /** Path of the built sidecar; default: dist/sidecar.mjs of this package. */
  sidecarPath?: string;
  settings?: EngineSettingsInput;
  env?: NodeJS.ProcessEnv;
  /** Receives the sidecar's log lines (window/logMessage) and stderr. */
  onLog?(line: string): void;
}

export function defaultSidecarPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (path.basename(dir) === "sidecar" || path.basename(dir) === "dist") return path.join(path.dirname(dir), "dist", "sidecar.mjs");
    dir = path.dirname(dir);
  }
  return path.resolve("dist", "sidecar.mjs");
}

export class SidecarProcess {
  readonly client: GpiotRpcClient;
  readonly events: JobEvent[] = [];
  readonly modelEvents: ModelEvent[] = [];
  private readonly jobWaiters = new Map<string, (event: JobEvent) => void>();
  private exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly connection: MessageConnection,
  ) {
    this.client = new GpiotRpcClient(connection);
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    this.client.onJobEvent((event) => {
      this.events.push(event);
      if (event.type === "jobFinished" || event.type === "jobFailed") this.jobWaiters.get(event.jobId)?.(event);
    });
    this.client.onModelEvent((event) => this.modelEvents.push(event));
  }

  static async start(options: SidecarProcessOptions = {}): Promise<SidecarProcess> {
    const child = spawn(process.execPath, [options.sidecarPath ?? defaultSidecarPath(), "--stdio"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
    });
    child.stderr!.setEncoding("utf8").on("data", (text: string) => options.onLog?.(text.trimEnd()));
    const connection = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    connection.onNotification("window/logMessage", (params: { message: string }) => options.onLog?.(params.message));
    connection.listen();
    const sidecar = new SidecarProcess(child, connection);
    await connection.sendRequest("initialize", { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: options.settings ?? {} });
    await connection.sendNotification("initialized", {});
    return sidecar;
  }

  /** Resolves with the job's `jobFinished` or `jobFailed` event. */
  waitForJob(jobId: string, timeoutMs = 120_000): Promise<JobEvent> {
    const done = this.events.find((event) => event.jobId === jobId && (event.type === "jobFinished" || event.type === "jobFailed"));
    if (done) return Promise.resolve(done);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`job ${jobId} did not end within ${timeoutMs} ms`)), timeoutMs);
      this.jobWaiters.set(jobId, (event) => {
        clearTimeout(timer);
        this.jobWaiters.delete(jobId);
        resolve(event);
      });
    });
  }

  eventsOf(jobId: string): JobEvent[] {
    return this.events.filter((event) => event.jobId === jobId);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Asks the sidecar to shut down, then kills it if it does not exit in time. */
  async dispose(timeoutMs = 5000): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try {
        await Promise.race([this.connection.sendRequest("shutdown"), new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
        await this.connection.sendNotification("exit");
      } catch {
        // The process may already be gone; the kill below covers it.
      }
      const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.connection.dispose();
    return this.exited;
  }
}
