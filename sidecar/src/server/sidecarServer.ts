/**
 * Serves the engine over a JSON-RPC connection: validates every request's params against the
 * protocol, maps engine errors to JSON-RPC errors that name the problem, and forwards job and
 * model events as notifications. A failing request never takes the sidecar down.
 */
import { ErrorCodes, ResponseError, type Connection } from "vscode-languageserver/node";
import { notifications, requests, PROTOCOL_VERSION, type ParamsOf, type RequestName, type ResultOf } from "../protocol";
import { EngineSettingsSchema } from "../settings";
import { ENGINE_VERSION, SynthesisEngine, toErrorInfo, type LogLevel } from "../engine/engine";
import { EventBatcher } from "./eventBatcher";

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
  // ---- verify and repair (issue #5) ----
  verify: (engine, params) => engine.verify(params),
  // ---- end verify ----
  // ---- models (issue #4) ----
  pullPlan: (engine, params) => engine.modelManager.plan(params?.profile),
  pullModel: (engine, params) => engine.modelManager.pull(params ?? {}),
  cancelPull: (engine, params) => engine.modelManager.cancelPull(params.pullId),
  removeModel: (engine, params) => engine.modelManager.remove(params.profile),
  modelFit: (engine, params) => engine.modelManager.fit(params ?? {}),
  hardware: (engine) => engine.modelManager.hardware(),
  // ---- end models ----
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
    const settings = EngineSettingsSchema.safeParse(params.initializationOptions ?? {});
    if (!settings.success) throw new ResponseError(ErrorCodes.InvalidParams, describeZodIssue("initialize (initializationOptions)", settings.error.issues), { code: "INVALID_PARAMS" });
    engine = new SynthesisEngine(settings.data, { log });
    const batcher = new EventBatcher((event) => void connection.sendNotification(notifications.jobEvent.method, event));
    engine.onJobEvent((event) => batcher.push(event));
    engine.onModelEvent((event) => void connection.sendNotification(notifications.modelEvent.method, event));
    engine.modelManager.onPullProgress((event) => void connection.sendNotification(notifications.pullProgress.method, event)); // issue #4
    return { capabilities: {}, serverInfo: { name: "gpiot-sidecar", version: ENGINE_VERSION }, gpiot: { protocolVersion: PROTOCOL_VERSION } };
  });

  for (const name of Object.keys(requests) as RequestName[]) {
    const definition = requests[name];
    connection.onRequest(definition.method, async (rawParams: unknown) => {
      if (!engine) throw new ResponseError(ErrorCodes.ServerNotInitialized, `${definition.method} before initialize: send initialize first.`);
      const parsed = definition.params.safeParse(rawParams ?? {});
      if (!parsed.success) throw new ResponseError(ErrorCodes.InvalidParams, describeZodIssue(definition.method, parsed.error.issues), { code: "INVALID_PARAMS" });
      try {
        return await (handlers[name] as (engine: SynthesisEngine, params: unknown) => unknown)(engine, parsed.data);
      } catch (error) {
        const info = toErrorInfo(error);
        if (info.code === "INTERNAL") log("error", `${definition.method} failed: ${(error as Error)?.stack ?? error}`);
        throw new ResponseError(info.code === "INVALID_PARAMS" ? ErrorCodes.InvalidParams : APPLICATION_ERROR, info.message, info);
      }
    });
  }

  connection.onShutdown(async () => {
    await engine?.dispose();
  });

  return { engine: () => engine };
}
