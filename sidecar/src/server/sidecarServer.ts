/**
 * Serves the engine over a JSON-RPC connection: validates every request's params against the
 * protocol, maps engine errors to JSON-RPC errors that name the problem, and forwards job and
 * model events as notifications. A failing request never takes the sidecar down.
 */
import { ErrorCodes, ResponseError, type Connection } from "vscode-languageserver/node";
import { InitializationOptionsSchema, notifications, requests, PROTOCOL_VERSION, type ParamsOf, type RequestName, type ResultOf } from "../protocol";
import { ENGINE_VERSION, SynthesisEngine, toErrorInfo, type LogLevel } from "../engine/engine";
import { EventBatcher } from "./eventBatcher";
import { probeSandbox } from "../verify/sandboxProbe";

const APPLICATION_ERROR = -32001;

type Handlers = { [N in RequestName]: (engine: SynthesisEngine, params: ParamsOf<N>) => ResultOf<N> | Promise<ResultOf<N>> };

const handlers: Handlers = {
  status: (engine) => engine.status(),
  listProfiles: (engine) => engine.listProfiles(),
  loadModels: (engine, params) => engine.loadModels(params ?? {}),
  unloadModels: (engine) => engine.unloadModels(),
  synthesize: (engine, params) => engine.synthesize(params),
  cancel: (engine, params) => engine.cancel(params.jobId),
  getProgram: (engine, params) => engine.getProgram(params.programId),
  updateSubTasks: (engine, params) => engine.updateSubTasks(params),
  updateSpec: (engine, params) => engine.updateSpec(params),
  continue: (engine, params) => engine.continue(params),
  regenerate: (engine, params) => engine.regenerate(params),
  assemble: (engine, params) => engine.assemble(params),
  previewProgram: (engine, params) => engine.previewProgram(params),
  restoreProgram: (engine, params) => engine.restoreProgram(params),
  // Verify and repair
  verify: (engine, params) => engine.verify(params),
  sandboxProbe: (engine) => probeSandbox({ python: engine.settings.verify.pythonPath ?? engine.settings.python, isolation: engine.settings.verify.isolation }),
  // Models: downloads, removal, GPU fit
  pullPlan: (engine, params) => engine.modelManager.plan(params?.profile),
  pullModel: (engine, params) => engine.modelManager.pull(params ?? {}),
  cancelPull: (engine, params) => engine.modelManager.cancelPull(params.pullId),
  removeModel: (engine, params) => engine.modelManager.remove(params.profile),
  modelFit: (engine, params) => engine.modelManager.fit(params ?? {}),
  hardware: (engine) => engine.modelManager.hardware(),
  // Retrieval index
  indexList: (engine) => engine.retrievalIndex.list(),
  indexAdd: (engine, params) => engine.retrievalIndex.add(params),
  indexRemove: (engine, params) => engine.retrievalIndex.remove(params),
  indexRebuild: (engine, params) => engine.retrievalIndex.rebuild(params ?? {}),
  cancelIndex: (engine) => engine.retrievalIndex.cancel(),
  indexSearch: (engine, params) => engine.retrievalIndex.search(params.query, { k: params.k }),
};

function describeZodIssue(method: string, issues: { path: PropertyKey[]; message: string }[]): string {
  const issue = issues[0];
  return `Invalid params for ${method}: ${issue.path.length ? `${issue.path.map(String).join(".")}: ` : ""}${issue.message}`;
}

export function serveEngine(connection: Connection, options: { debug?: boolean } = {}): { engine(): SynthesisEngine | null } {
  let engine: SynthesisEngine | null = null;
  const log = (level: LogLevel, message: string) => {
    if (level === "error") connection.console.error(message);
    else if (level === "warn") connection.console.warn(message);
    else if (level === "info") connection.console.info(message);
    else if (options.debug) connection.console.log(message);
  };

  connection.onInitialize((params) => {
    if (engine) throw new ResponseError(ErrorCodes.InvalidRequest, "initialize was already received: the sidecar is initialized once per process.");
    const settings = InitializationOptionsSchema.safeParse(params.initializationOptions ?? {});
    if (!settings.success) throw new ResponseError(ErrorCodes.InvalidParams, describeZodIssue("initialize (initializationOptions)", settings.error.issues), { code: "INVALID_PARAMS" });
    engine = new SynthesisEngine(settings.data, { log });
    const batcher = new EventBatcher((event) => void connection.sendNotification(notifications.jobEvent.method, event));
    engine.onJobEvent((event) => batcher.push(event));
    engine.onModelEvent((event) => void connection.sendNotification(notifications.modelEvent.method, event));
    engine.modelManager.onPullProgress((event) => void connection.sendNotification(notifications.pullProgress.method, event));
    let lastIndexProgress = 0;
    engine.retrievalIndex.onProgress((event) => {
      // A few notifications a second are enough for a progress bar.
      const now = performance.now();
      if (now - lastIndexProgress < 200 && event.done !== 0 && event.done + 1 < event.total) return;
      lastIndexProgress = now;
      void connection.sendNotification(notifications.indexProgress.method, event);
    });
    return { capabilities: {}, serverInfo: { name: "gpiot-sidecar", version: ENGINE_VERSION }, gpiot: { protocolVersion: PROTOCOL_VERSION } };
  });

  // One handler for every gpiot/* method: a method-specific handler would get vscode-jsonrpc's
  // cancellation token in place of absent params and each array element as its own argument.
  const namesByMethod = new Map(Object.entries(requests).map(([name, definition]) => [definition.method, name as RequestName]));
  connection.onRequest(async (method: string, rawParams: unknown) => {
    const name = namesByMethod.get(method);
    if (name === undefined) throw new ResponseError(ErrorCodes.MethodNotFound, `Unhandled method ${JSON.stringify(method.slice(0, 100))}: the sidecar serves initialize, shutdown and gpiot/* (see protocol.ts).`);
    const definition = requests[name];
    if (!engine) throw new ResponseError(ErrorCodes.ServerNotInitialized, `${method} before initialize: send initialize first.`);
    if (Array.isArray(rawParams)) throw new ResponseError(ErrorCodes.InvalidParams, `Invalid params for ${method}: params go by name, as an object, not by position as an array.`, { code: "INVALID_PARAMS" });
    const parsed = definition.params.safeParse(rawParams ?? {});
    if (!parsed.success) throw new ResponseError(ErrorCodes.InvalidParams, describeZodIssue(method, parsed.error.issues), { code: "INVALID_PARAMS" });
    try {
      return await (handlers[name] as (engine: SynthesisEngine, params: unknown) => unknown)(engine, parsed.data);
    } catch (error) {
      const info = toErrorInfo(error);
      if (info.code === "INTERNAL") log("error", `${method} failed: ${(error as Error)?.stack ?? error}`);
      throw new ResponseError(info.code === "INVALID_PARAMS" ? ErrorCodes.InvalidParams : APPLICATION_ERROR, info.message, info);
    }
  });

  connection.onShutdown(async () => {
    await engine?.dispose();
  });

  return { engine: () => engine };
}
