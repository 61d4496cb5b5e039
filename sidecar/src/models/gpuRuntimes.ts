/**
 * GPU runtimes: node-llama-cpp runs a model on a GPU only with the prebuilt binaries package for
 * that GPU type (`@node-llama-cpp/<platform>-<arch>-<gpu>`, CUDA also needs its `-ext` package).
 * A small installation ships only the CPU binaries; a client can fetch a GPU runtime later and put
 * it where module resolution finds it (a `node_modules/@node-llama-cpp/` beside node-llama-cpp).
 * This says which runtimes exist for this platform and whether node-llama-cpp would find them,
 * with the same check node-llama-cpp makes (the package answers getBinsDir() with its version).
 */
import { existsSync } from "node:fs";
import path from "node:path";

export type GpuType = "cuda" | "vulkan" | "metal";

export interface GpuRuntime {
  gpu: GpuType;
  /** Package names without the `@node-llama-cpp/` scope; the first holds the binding. */
  packages: string[];
  installed: boolean;
}

/** The binaries packages of each GPU type on this platform (none where node-llama-cpp has no prebuilt build). */
export function gpuRuntimePackages(platform: string = process.platform, arch: string = process.arch): { gpu: GpuType; packages: string[] }[] {
  if (platform === "linux" && arch === "x64")
    return [
      { gpu: "cuda", packages: ["linux-x64-cuda", "linux-x64-cuda-ext"] },
      { gpu: "vulkan", packages: ["linux-x64-vulkan"] },
    ];
  if (platform === "win32" && arch === "x64")
    return [
      { gpu: "cuda", packages: ["win-x64-cuda", "win-x64-cuda-ext"] },
      { gpu: "vulkan", packages: ["win-x64-vulkan"] },
    ];
  if (platform === "darwin" && arch === "arm64") return [{ gpu: "metal", packages: ["mac-arm64-metal"] }];
  return [];
}

async function packageUsable(name: string, runtimeVersion: string, needsBinding: boolean): Promise<boolean> {
  try {
    const module = (await import(`@node-llama-cpp/${name}`)) as { getBinsDir?: () => { binsDir?: string; packageVersion?: string } };
    const bins = module.getBinsDir?.();
    if (!bins?.binsDir || bins.packageVersion !== runtimeVersion) return false;
    return needsBinding ? existsSync(path.join(bins.binsDir, name, "llama-addon.node")) : existsSync(bins.binsDir);
  } catch {
    return false;
  }
}

export async function findGpuRuntimes(runtimeVersion: string): Promise<GpuRuntime[]> {
  return Promise.all(
    gpuRuntimePackages().map(async ({ gpu, packages }) => ({
      gpu,
      packages,
      installed: (await Promise.all(packages.map((name, index) => packageUsable(name, runtimeVersion, index === 0)))).every(Boolean),
    })),
  );
}
