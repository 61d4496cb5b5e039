/**
 * Every role's model in one place: the roles configured as remote go to their servers, the others
 * to the local ModelHost. Jobs see one EngineModels whatever the mix.
 */
import type { EngineModels } from "../models/engineModels";
import type { LoadedModelInfo, ModelHost } from "../models/modelHost";
import type { CompletionRequest, PromptFormat } from "../pipeline/promptFormats/promptFormat";
import type { GenerationRequest, GenerationResult } from "../pipeline/structuredGeneration";
import { roleNames, type RoleName } from "../schemas";
import type { RemoteRoleModels } from "./remoteRoleModels";

export class ComposedModels implements EngineModels {
  readonly info: LoadedModelInfo;

  constructor(
    private readonly local: ModelHost | null,
    private readonly remote: RemoteRoleModels,
    parallelSubTasks: number,
    loadMs: number,
  ) {
    const roles = {} as LoadedModelInfo["roles"];
    for (const role of roleNames) {
      const remoteInfo = remote.info(role);
      if (remoteInfo)
        roles[role] = {
          modelPath: remoteInfo.requestModel,
          adapters: [],
          contextSize: remoteInfo.contextSize ?? 0,
          promptFormat: "json",
          remote: { baseUrl: remoteInfo.baseUrl, model: remoteInfo.model, ...(remoteInfo.adapter ? { adapter: remoteInfo.adapter } : {}) },
        };
      else if (local?.info.roles[role]) roles[role] = local.info.roles[role];
    }
    const remoteRoles = remote.roleNames;
    this.info = {
      ...(local?.info ?? { distinctModels: 0, threads: 0, gpu: false, gpuLayers: {} }),
      profile: local ? `${local.info.profile} + remote ${remoteRoles.join("/").toUpperCase()}` : "remote",
      roles,
      loadMs,
      parallelSubTasks: Math.min(parallelSubTasks, ...roleNames.filter((role) => role !== "td").map((role) => this.parallelism(role))),
    };
  }

  parallelism(role: RoleName): number {
    return this.remote.parallelism(role) || (this.local?.parallelism(role) ?? 0);
  }

  /** Servers are asked for JSON-schema output; a local role keeps the format its profile names. */
  promptFormat(role: RoleName): PromptFormat {
    return this.remote.parallelism(role) > 0 ? "json" : (this.local?.promptFormat(role) ?? "json");
  }

  complete(request: CompletionRequest): Promise<GenerationResult> {
    if (this.remote.parallelism(request.role) > 0 || !this.local) throw new Error(`The ${request.role.toUpperCase()} role runs on a server, which takes JSON-schema requests only`);
    return this.local.complete(request);
  }

  generate(request: GenerationRequest): Promise<GenerationResult> {
    return this.remote.parallelism(request.role) > 0 ? this.remote.generate(request) : this.local!.generate(request);
  }

  async dispose(): Promise<void> {
    await this.local?.dispose();
  }
}
