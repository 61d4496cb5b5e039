/**
 * The sidecar: the engine process that holds the models, started and supervised with
 * vscode-languageclient (LSP `initialize` with the engine settings, `shutdown`/`exit`), spoken to
 * with the shared protocol. The extension itself never loads a model.
 *
 * When the process dies, every job it ran is reported as failed (listeners of `onDidCrash`), the
 * process is started again (at most MAX_RESTARTS times in RESTART_WINDOW_MS) and the generation
 * number goes up: program and job ids of the old process mean nothing to the new one.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  State,
  type CloseHandlerResult,
  type ErrorHandler,
  type ErrorHandlerResult,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";
import { GpiotRpcClient, type EngineSettingsInput, type ErrorInfo, type JobEvent, type ModelEvent, type PullProgress } from "../../sidecar/src/protocol";

export type SidecarState = "stopped" | "starting" | "running" | "restarting" | "failed";

const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 3 * 60_000;

export interface SidecarCrash {
  generation: number;
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  willRestart: boolean;
}

/** The error a request fails with when the sidecar is not there (or died while answering). */
export class EngineUnavailableError extends Error {
  readonly code = "ENGINE_STOPPED";
  constructor(message: string) {
    super(message);
    this.name = "EngineUnavailableError";
  }
}

/** ErrorInfo of a failed request: the sidecar puts it in ResponseError.data. */
export function errorInfoOf(error: unknown): ErrorInfo | { code: "ENGINE_STOPPED"; message: string } {
  if (error instanceof EngineUnavailableError) return { code: "ENGINE_STOPPED", message: error.message };
  const data = (error as { data?: unknown })?.data as Partial<ErrorInfo> | undefined;
  if (data && typeof data.code === "string" && typeof data.message === "string") return data as ErrorInfo;
  const message = error instanceof Error ? error.message : String(error);
  // vscode-jsonrpc's codes for a connection that went away.
  const code = (error as { code?: number })?.code;
  if (code === -32097 || code === -32099 || /connection (got )?(closed|disposed)|Client is not running|Pending response rejected/i.test(message))
    return { code: "ENGINE_STOPPED", message: "The GPIoT engine stopped while answering." };
  return { code: "INTERNAL", message };
}

export class Sidecar implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private rpc: GpiotRpcClient | undefined;
  private starting: Promise<GpiotRpcClient> | undefined;
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts: number[] = [];
  private generationNumber = 0;
  private stateValue: SidecarState = "stopped";
  private startedAt = 0;
  private restarting: Promise<void> | undefined;
  /** The settings the running process was initialized with (JSON). */
  private appliedSettings: string | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly stateEmitter = new vscode.EventEmitter<SidecarState>();
  private readonly crashEmitter = new vscode.EventEmitter<SidecarCrash>();
  private readonly jobEmitter = new vscode.EventEmitter<{ generation: number; event: JobEvent }>();
  private readonly modelEmitter = new vscode.EventEmitter<ModelEvent>();
  private readonly pullEmitter = new vscode.EventEmitter<PullProgress>();
  private readonly readyEmitter = new vscode.EventEmitter<number>();
  /** State changes of the process. */
  readonly onDidChangeState = this.stateEmitter.event;
  /** The process died without being asked to. */
  readonly onDidCrash = this.crashEmitter.event;
  /** Every `gpiot/jobEvent`, tagged with the generation of the process that sent it. */
  readonly onJobEvent = this.jobEmitter.event;
  readonly onModelEvent = this.modelEmitter.event;
  /** `gpiot/pullProgress` of model downloads. */
  readonly onPullProgress = this.pullEmitter.event;
  /** A process finished `initialize` (first start or restart); carries the generation. */
  readonly onDidBecomeReady = this.readyEmitter.event;
  /** Milliseconds the last start took, from spawn to `initialize` answered. */
  lastStartMs = 0;

  constructor(
    private readonly sidecarPath: string,
    private readonly settings: () => EngineSettingsInput,
    readonly log: vscode.LogOutputChannel,
    /** Extra environment of the engine process (secrets such as the remote API key: never settings or logs). */
    private readonly environment: () => Promise<Record<string, string>> = async () => ({}),
  ) {}

  get state(): SidecarState {
    return this.stateValue;
  }

  /** Counts processes: 1 for the first, +1 for each restart. */
  get generation(): number {
    return this.generationNumber;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  get restartCount(): number {
    return Math.max(0, this.generationNumber - 1);
  }

  private setState(state: SidecarState): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.stateEmitter.fire(state);
  }

  /** The typed client, starting the sidecar first when needed. */
  async ensureStarted(): Promise<GpiotRpcClient> {
    if (this.restarting) await this.restarting;
    return this.start();
  }

  private async start(): Promise<GpiotRpcClient> {
    if (this.rpc && this.client?.state === State.Running) return this.rpc;
    if (this.starting) return this.starting;
    if (!this.client) this.createClient();
    const client = this.client!;
    this.setState(this.generationNumber === 0 ? "starting" : "restarting");
    this.starting = (async () => {
      try {
        await client.start();
        return this.rpc!;
      } catch (error) {
        this.setState("failed");
        throw new EngineUnavailableError(`The GPIoT engine could not start: ${(error as Error)?.message ?? error}. See the GPIoT log.`);
      } finally {
        this.starting = undefined;
      }
    })();
    return this.starting;
  }

  /** Sends one protocol request; a sidecar that is gone becomes an EngineUnavailableError. */
  async request<T>(call: (rpc: GpiotRpcClient) => Promise<T>): Promise<T> {
    const rpc = await this.ensureStarted();
    try {
      return await call(rpc);
    } catch (error) {
      const info = errorInfoOf(error);
      if (info.code === "ENGINE_STOPPED") throw new EngineUnavailableError(info.message);
      throw error;
    }
  }

  private spawnProcess(environment: Record<string, string>): ChildProcess {
    if (!existsSync(this.sidecarPath)) throw new Error(`The GPIoT engine is missing: ${this.sidecarPath} does not exist (run npm run build).`);
    // The extension host's own runtime runs the sidecar (Electron in desktop VS Code, as Node).
    const child = spawn(process.execPath, [this.sidecarPath, "--stdio", `--clientProcessId=${process.pid}`], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...environment, ELECTRON_RUN_AS_NODE: "1", ELECTRON_NO_ASAR: "1" },
      windowsHide: true,
    });
    this.child = child;
    this.startedAt = Date.now();
    const generation = this.generationNumber + 1;
    this.log.info(`Starting the GPIoT engine (generation ${generation}): ${process.execPath} ${this.sidecarPath} --stdio`);
    child.stderr?.setEncoding("utf8").on("data", (text: string) => {
      for (const line of text.split(/\r?\n/)) if (line.trim()) this.log.warn(`[engine stderr] ${line}`);
    });
    child.on("exit", (code, signal) => {
      this.log.info(`The GPIoT engine (pid ${child.pid}) exited${code !== null ? ` with code ${code}` : ""}${signal ? ` on ${signal}` : ""}.`);
    });
    return child;
  }

  private createClient(): void {
    const serverOptions: ServerOptions = async () => ({ process: this.spawnProcess(await this.environment()), detached: false });
    const errorHandler: ErrorHandler = {
      error: (): ErrorHandlerResult => ({ action: ErrorAction.Continue, handled: true }),
      closed: (): CloseHandlerResult => this.handleClosed(),
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [],
      outputChannel: this.log,
      // Re-read on every (re)start, so settings changes apply to the next process.
      initializationOptions: () => {
        const settings = this.settings();
        this.appliedSettings = JSON.stringify(settings);
        return settings;
      },
      errorHandler,
      initializationFailedHandler: (error) => {
        this.log.error(`The GPIoT engine did not initialize: ${(error as Error)?.message ?? error}`);
        return false;
      },
    };
    const client = new LanguageClient("gpiot", "GPIoT Engine", serverOptions, clientOptions);
    this.client = client;
    this.rpc = new GpiotRpcClient({
      sendRequest: (method, params) => client.sendRequest(method, params),
      onNotification: (method, handler) => client.onNotification(method, handler),
    });
    this.rpc.onJobEvent((event) => this.jobEmitter.fire({ generation: this.generationNumber, event }));
    this.rpc.onModelEvent((event) => this.modelEmitter.fire(event));
    this.rpc.onPullProgress((progress) => this.pullEmitter.fire(progress));
    this.disposables.push(
      client.onDidChangeState((change) => {
        if (change.newState === State.Running) {
          this.generationNumber += 1;
          this.lastStartMs = Date.now() - this.startedAt;
          this.log.info(`GPIoT engine ready (generation ${this.generationNumber}, pid ${this.child?.pid}) in ${this.lastStartMs} ms`);
          this.setState("running");
          this.readyEmitter.fire(this.generationNumber);
        } else if (change.newState === State.Starting) {
          this.setState(this.generationNumber === 0 ? "starting" : "restarting");
        } else if (change.newState === State.Stopped && this.stateValue !== "restarting") {
          this.setState(this.stopping ? "stopped" : "failed");
        }
      }),
    );
  }

  private handleClosed(): CloseHandlerResult {
    const child = this.child;
    if (this.stopping) return { action: CloseAction.DoNotRestart, handled: true };
    const now = Date.now();
    this.restarts = this.restarts.filter((time) => now - time < RESTART_WINDOW_MS);
    const willRestart = this.restarts.length < MAX_RESTARTS;
    if (willRestart) this.restarts.push(now);
    this.log.error(`The GPIoT engine stopped unexpectedly (pid ${child?.pid}, exit ${child?.exitCode ?? "?"}${child?.signalCode ? `, ${child.signalCode}` : ""}).${willRestart ? " Restarting it." : ` It crashed ${MAX_RESTARTS + 1} times in 3 minutes and will not be restarted; run "GPIoT: Restart Engine".`}`);
    this.setState(willRestart ? "restarting" : "failed");
    this.crashEmitter.fire({ generation: this.generationNumber, pid: child?.pid, code: child?.exitCode ?? null, signal: child?.signalCode ?? null, willRestart });
    return willRestart ? { action: CloseAction.Restart, handled: true } : { action: CloseAction.DoNotRestart, handled: true };
  }

  /** Waits until a process is running (e.g. after a crash); resolves with its generation. */
  async whenRunning(timeoutMs = 30_000): Promise<number> {
    if (this.stateValue === "running") return this.generationNumber;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        subscription.dispose();
        reject(new EngineUnavailableError(`The GPIoT engine did not come back within ${timeoutMs} ms.`));
      }, timeoutMs);
      const subscription = this.readyEmitter.event((generation) => {
        clearTimeout(timer);
        subscription.dispose();
        resolve(generation);
      });
    });
  }

  /** Stops the process and starts a new one with the current settings (models load again on demand). */
  restart(): Promise<void> {
    this.restarting ??= (async () => {
      try {
        await this.stop();
        this.restarts = [];
        await this.start();
      } finally {
        this.restarting = undefined;
      }
    })();
    return this.restarting;
  }

  /** Restarts a running sidecar whose settings are no longer the configured ones; resolves whether it did. */
  async applySettings(): Promise<boolean> {
    if (this.restarting) await this.restarting;
    if (!this.client || this.stateValue === "stopped") return false;
    if (JSON.stringify(this.settings()) === this.appliedSettings) return false;
    this.log.info("GPIoT settings changed: restarting the engine with them.");
    await this.restart();
    return true;
  }

  async stop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.stopping = true;
    try {
      if (client.state !== State.Stopped) await client.stop(4000).catch((error) => this.log.warn(`Stopping the GPIoT engine: ${(error as Error)?.message ?? error}`));
      const child = this.child;
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    } finally {
      for (const disposable of this.disposables.splice(0)) disposable.dispose();
      await client.dispose().catch(() => undefined);
      this.client = undefined;
      this.rpc = undefined;
      this.stopping = false;
      this.setState("stopped");
    }
  }

  async dispose(): Promise<void> {
    await this.stop();
    this.stateEmitter.dispose();
    this.crashEmitter.dispose();
    this.jobEmitter.dispose();
    this.modelEmitter.dispose();
    this.pullEmitter.dispose();
    this.readyEmitter.dispose();
  }
}
