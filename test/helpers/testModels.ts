/** Test fixtures on real parts: the tiny GGUF models and a manifest with good and broken profiles. */
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeTinyTestModels, type TinyTestModelPaths } from "../../sidecar/src/gguf/tinyTestModels";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const sidecarPath = path.join(repoRoot, "dist", "sidecar.mjs");
export const cliPath = path.join(repoRoot, "bin", "gpiot.mjs");

export interface TestModelSetup {
  dir: string;
  models: TinyTestModelPaths;
  manifestPath: string;
}

/** Writes the tiny models into a fresh temp folder with a manifest of test profiles. */
export async function setUpTestModels(): Promise<TestModelSetup> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "gpiot-models-"));
  const models = await writeTinyTestModels(dir);
  const separate = ["td", "rt", "cg"].map((role) => {
    const copy = path.join(dir, `tiny-base-${role}.gguf`);
    copyFileSync(models.base, copy);
    return copy;
  });
  const corrupt = path.join(dir, "corrupt.gguf");
  writeFileSync(corrupt, Buffer.concat([Buffer.from("GGUF"), Buffer.alloc(64, 0xff)]));
  const notGguf = path.join(dir, "notes.gguf");
  writeFileSync(notGguf, "this is not a model\n");
  const manifest = {
    version: 1,
    defaultProfile: "tiny",
    profiles: {
      tiny: { base: { file: models.base }, roles: { td: { adapters: [{ file: models.adapters.td }] }, cg: { adapters: [{ file: models.adapters.cg }] } }, embedding: { file: models.embedding }, contextSize: 4096, threads: 1 },
      "tiny-all-adapters": { base: { file: models.base }, roles: { td: { adapters: [{ file: models.adapters.td }] }, rt: { adapters: [{ file: models.adapters.rt }] }, cg: { adapters: [{ file: models.adapters.cg }] } }, contextSize: 4096, threads: 1 },
      "tiny-separate": { base: { file: models.base }, roles: { td: { model: { file: separate[0] } }, rt: { model: { file: separate[1] } }, cg: { model: { file: separate[2] } } }, contextSize: 2048, threads: 1 },
      mismatched: { base: { file: models.base }, roles: { td: { adapters: [{ file: models.mismatchedAdapter }] } }, threads: 1 },
      corrupt: { base: { file: corrupt }, threads: 1 },
      "not-gguf": { base: { file: notGguf }, threads: 1 },
      missing: { base: { file: path.join(dir, "nowhere.gguf") }, threads: 1 },
    },
  };
  const manifestPath = path.join(dir, "manifest.json");
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
  return { dir, models, manifestPath };
}
