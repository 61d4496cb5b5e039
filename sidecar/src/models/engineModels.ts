/**
 * What a job generates with: every role's model, wherever it runs (the local models, a remote
 * server, or some of each), behind the stages' RoleModels interface.
 */
import type { RoleModels } from "../pipeline/structuredGeneration";
import type { RoleName } from "../schemas";
import type { LoadedModelInfo } from "./modelHost";

export interface EngineModels extends RoleModels {
  readonly info: LoadedModelInfo;
  /** Generations the role can run at once: sequences of its local context, or concurrent requests to its server. */
  parallelism(role: RoleName): number;
  dispose(): Promise<void>;
}
