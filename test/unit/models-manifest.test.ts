/** The models manifest: the shipped profiles, where files are found, and what a pull plan holds. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { defaultManifestPath, defaultModelsDir, fileNameFromSource, loadManifest, ManifestError, ManifestSchema, profileFiles, resolveProfile } from "../../sidecar/src/models/manifest";
import { ModelsError } from "../../sidecar/src/models/download";
import { planPull, removeProfile } from "../../sidecar/src/models/modelStore";
import { EngineSettingsSchema } from "../../sidecar/src/settings";

const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-manifest-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function writeManifest(name: string, profiles: object, defaultProfile = Object.keys(profiles)[0]): string {
  const dir = path.join(scratch, name);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "manifest.json");
  writeFileSync(file, JSON.stringify({ version: 1, defaultProfile, profiles }));
  return file;
}

describe("the shipped manifest", () => {
  const manifestPath = defaultManifestPath();
  const manifest = loadManifest(manifestPath);

  test("has default (the default), small, paper and tiny; every download names its source", () => {
    assert.equal(manifest.defaultProfile, "default");
    assert.deepEqual([...manifest.profiles.keys()].sort(), ["default", "paper", "small", "tiny"]);
    for (const name of ["default", "small", "paper"]) {
      const profile = manifest.profiles.get(name)!;
      assert.match(profile.base.source!, /^hf:[^/]+\/[^/]+\/.+\.gguf$/, name);
      assert.ok(profile.contextSize && profile.minContextSize && profile.chatTemplate, name);
    }
    const paper = manifest.profiles.get("paper")!;
    assert.equal(paper.roles.td!.adapters[0].peft!.source, "hf:lemingshen/GPIoT_Task_Decomposition");
    assert.equal(paper.roles.cg!.adapters[0].peft!.source, "hf:lemingshen/GPIoT_Code_Generation");
    assert.equal(paper.roles.rt, undefined, "RT runs on the bare base");
  });

  test("downloaded files resolve into the models folder; the tiny model into the repository", () => {
    const modelsDir = path.join(scratch, "user-models");
    const resolved = resolveProfile(manifest, manifestPath, "default", { modelsDir });
    assert.equal(resolved.roles.td.modelPath, path.join(modelsDir, "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"));
    assert.equal(resolved.roles.cg.modelPath, resolved.roles.td.modelPath);
    assert.equal(resolved.minContextSize, 4096);
    const paper = resolveProfile(manifest, manifestPath, "paper", { modelsDir });
    assert.deepEqual(paper.roles.td.adapters, [{ path: path.join(modelsDir, "paper", "gpiot-td.lora.gguf"), scale: 1 }]);
    assert.deepEqual(paper.roles.rt.adapters, []);
    const tiny = resolveProfile(manifest, manifestPath, "tiny", { modelsDir });
    assert.equal(tiny.roles.td.modelPath, path.join(path.dirname(manifestPath), "tiny", "tiny-base.gguf"));
  });

  test("a pull plan of the paper profile: the base download, two adapter conversions and the embedding model, with no connection", () => {
    const plan = planPull("paper", { manifestPath, modelsDir: path.join(scratch, "plan") });
    assert.deepEqual(plan.items.map((item) => [item.kind, item.roles.join("/"), item.action]), [
      ["model", "TD/RT/CG", "download"],
      ["adapter", "TD", "convert"],
      ["adapter", "CG", "convert"],
      ["embedding", "", "download"],
    ]);
    assert.equal(path.basename(plan.items[3].path), "bge-small-en-v1.5-q8_0.gguf", "the retrieval embedding model is pulled with the profile");
    assert.equal(plan.approximate, true, "sizes are not pinned, so the total is an estimate");
    assert.ok(plan.downloadBytes > 7e9);
    assert.equal(plan.items[1].basePath, plan.items[0].path);
  });
});

describe("resolution rules", () => {
  test("a relative file is looked up in the manifest folder, then in the models folder; a source alone names the file", () => {
    const manifestPath = writeManifest("rules", {
      p: {
        base: { file: "local.gguf" },
        roles: { td: { model: { source: "https://example.invalid/path/td-model.gguf?download=true" } }, cg: { adapters: [{ file: "~/my-adapter.gguf" }] }, rt: { model: { file: "dl/rt.gguf", source: "hf:a/b/rt.gguf" } } },
      },
    });
    const modelsDir = path.join(scratch, "rules-models");
    mkdirSync(modelsDir, { recursive: true });
    writeFileSync(path.join(modelsDir, "local.gguf"), "x");
    const resolved = resolveProfile(loadManifest(manifestPath), manifestPath, "p", { modelsDir });
    assert.equal(resolved.roles.td.modelPath, path.join(modelsDir, "td-model.gguf"));
    assert.equal(resolved.roles.rt.modelPath, path.join(modelsDir, "dl", "rt.gguf"));
    assert.equal(resolved.roles.cg.modelPath, path.join(modelsDir, "local.gguf"), "found in the models folder");
    assert.equal(resolved.roles.cg.adapters[0].path, path.join(os.homedir(), "my-adapter.gguf"));
    writeFileSync(path.join(path.dirname(manifestPath), "local.gguf"), "y");
    assert.equal(resolveProfile(loadManifest(manifestPath), manifestPath, "p", { modelsDir }).roles.cg.modelPath, path.join(path.dirname(manifestPath), "local.gguf"), "the manifest folder wins");
  });

  test("file names from sources; sources that name no file are refused", () => {
    assert.equal(fileNameFromSource("hf:bartowski/Qwen2.5-Coder-7B-Instruct-GGUF/Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"), "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf");
    assert.equal(fileNameFromSource("https://host.invalid/a/b%20c.gguf?x=1"), "b c.gguf");
    assert.throws(() => fileNameFromSource("hf:user/repo:Q4_K_M"), ManifestError);
  });

  test("schema: peft adapters need a file; an adapter has one kind of source", () => {
    const check = (adapter: object) => ManifestSchema.safeParse({ version: 1, defaultProfile: "p", profiles: { p: { base: { file: "b.gguf" }, roles: { td: { adapters: [adapter] } } } } }).success;
    assert.equal(check({ file: "a.gguf", peft: { source: "hf:u/r" } }), true);
    assert.equal(check({ peft: { source: "hf:u/r" }, source: "hf:u/r/x.gguf" }), false);
    assert.equal(check({ source: "hf:u/r/x.gguf", peft: { source: "hf:u/r" }, file: "x" }), false);
    assert.equal(check({ scale: 1 }), false);
  });

  test("models folder default and settings", () => {
    assert.equal(defaultModelsDir({ GPIOT_MODELS_DIR: "/srv/models" }), path.resolve("/srv/models"));
    if (process.platform === "linux") assert.equal(defaultModelsDir({ XDG_CACHE_HOME: "/c" }), path.join("/c", "gpiot", "models"));
    const settings = EngineSettingsSchema.parse({});
    assert.equal(settings.offline, false);
    assert.equal(settings.modelsDir, undefined);
    assert.equal(EngineSettingsSchema.safeParse({ downloadEndpoint: "not a url" }).success, false);
  });

  test("a missing file without a source cannot be pulled: the plan says to put it there", () => {
    const manifestPath = writeManifest("nosource", { p: { base: { file: "absent.gguf" } } });
    assert.throws(() => planPull("p", { manifestPath, modelsDir: path.join(scratch, "m") }), (error: ModelsError) => error.code === "MODEL_NOT_FOUND" && /no source to download it from/.test(error.message));
  });

  test("remove deletes only the profile's files inside the models folder", async () => {
    const modelsDir = path.join(scratch, "rm-models");
    mkdirSync(modelsDir, { recursive: true });
    const outside = path.join(scratch, "outside.gguf");
    writeFileSync(outside, "keep");
    const manifestPath = writeManifest("rm", {
      a: { base: { source: "hf:u/r/a.gguf" }, roles: { td: { adapters: [{ file: outside }] } } },
      b: { base: { source: "hf:u/r/shared.gguf" } },
      c: { base: { source: "hf:u/r/shared.gguf" } },
    });
    for (const file of ["a.gguf", "shared.gguf"]) writeFileSync(path.join(modelsDir, file), "data");
    mkdirSync(path.join(modelsDir, ".partial"));
    writeFileSync(path.join(modelsDir, ".partial", "a.gguf.download"), "partial");
    writeFileSync(path.join(modelsDir, ".partial", "a.gguf.download.json"), "{}");
    const result = await removeProfile("a", { manifestPath, modelsDir });
    assert.deepEqual(result.removed.sort(), [path.join(modelsDir, ".partial", "a.gguf.download"), path.join(modelsDir, ".partial", "a.gguf.download.json"), path.join(modelsDir, "a.gguf")].sort());
    assert.deepEqual(result.kept, [{ path: outside, reason: "outside the models folder" }]);
    const shared = await removeProfile("b", { manifestPath, modelsDir });
    assert.deepEqual(shared.removed, []);
    assert.match(shared.kept[0].reason, /also used by profile "c"/);
    assert.equal(profileFiles(loadManifest(manifestPath), manifestPath, "c", { modelsDir }).files[0].present, true);
  });
});
