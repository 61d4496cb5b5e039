/** Pieces of `gpiot train` that need no Python: trained profiles, BLEU, the report, progress, options. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { defaultManifestPath, defaultProfilesDir, loadManifest, ManifestError, resolveProfile, writeTrainedProfile, type Profile } from "../../sidecar/src/models/manifest";
import { trainerSettings } from "../../sidecar/src/cli/trainCommand";
import { corpusBleu } from "../../sidecar/src/train/bleu";
import { evaluateGenerations, parseAnswer } from "../../sidecar/src/train/evaluateRun";
import { buildReport, lossDrop, reportHtml, writeReport } from "../../sidecar/src/train/runReport";
import { describeStep, formatDuration } from "../../sidecar/src/train/trainProgress";

const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-train-support-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const trained: Profile = {
  description: "tuned",
  base: { file: "/runs/a/gguf/base.gguf" },
  roles: { td: { adapters: [{ file: "/runs/a/gguf/td.lora.gguf", scale: 1 }], promptFormat: "paper" }, cg: { adapters: [{ file: "/runs/a/gguf/cg.lora.gguf", scale: 1 }] } },
  training: { run: "/runs/a", mode: "pect", createdAt: "2026-01-01T00:00:00Z" },
};

describe("trained profiles", () => {
  test("a written profile is found by name with any manifest, prompt formats per role resolved", () => {
    const dir = path.join(scratch, "profiles");
    const file = writeTrainedProfile("my-run", trained, { dir });
    assert.equal(file, path.join(dir, "my-run.json"));
    assert.deepEqual(readdirSync(dir), ["my-run.json"], "written atomically: no temporary file left");
    const manifestPath = defaultManifestPath();
    const manifest = loadManifest(manifestPath, { profilesDir: dir });
    assert.ok(manifest.profiles.has("my-run") && manifest.profiles.has("default"), "trained profiles join the manifest's own");
    const resolved = resolveProfile(manifest, manifestPath, "my-run");
    assert.equal(resolved.roles.td.promptFormat, "paper");
    assert.equal(resolved.roles.cg.promptFormat, "json");
    assert.equal(resolved.roles.rt.promptFormat, "json");
    assert.deepEqual(resolved.roles.td.adapters, [{ path: "/runs/a/gguf/td.lora.gguf", scale: 1 }]);
    assert.equal(loadManifest(manifestPath, { profilesDir: false }).profiles.has("my-run"), false);
  });

  test("the shipped paper profile prompts TD and CG in the authors' format, RT in JSON", () => {
    const manifestPath = defaultManifestPath();
    const resolved = resolveProfile(loadManifest(manifestPath, { profilesDir: false }), manifestPath, "paper", { modelsDir: scratch });
    assert.deepEqual([resolved.roles.td.promptFormat, resolved.roles.rt.promptFormat, resolved.roles.cg.promptFormat], ["paper", "json", "paper"]);
  });

  test("a run can never take or shadow a shipped profile's name; bad names and files are named", () => {
    const dir = path.join(scratch, "profiles2");
    assert.throws(() => writeTrainedProfile("default", trained, { dir }), /name "default" is taken/);
    assert.throws(() => writeTrainedProfile("../escape", trained, { dir }), /cannot be a profile name/);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "tiny.json"), JSON.stringify({ ...trained, description: "impostor" }));
    writeFileSync(path.join(dir, "broken.json"), "{ not json");
    writeFileSync(path.join(dir, "odd.json"), JSON.stringify({ base: {} }));
    const manifestPath = defaultManifestPath();
    const manifest = loadManifest(manifestPath, { profilesDir: dir });
    assert.notEqual(manifest.profiles.get("tiny")!.description, "impostor", "the manifest's own profile wins");
    assert.throws(() => resolveProfile(manifest, manifestPath, "broken"), (error: ManifestError) => error instanceof ManifestError && /Cannot read the trained profile .*broken\.json/.test(error.message));
    assert.throws(() => resolveProfile(manifest, manifestPath, "odd"), /trained profile .*odd\.json is invalid at base/);
    assert.throws(() => resolveProfile(manifest, manifestPath, "nothing"), /There is no model profile "nothing"/);
  });

  test("the profiles folder: $GPIOT_PROFILES_DIR, else the user's config folder", () => {
    assert.equal(defaultProfilesDir({ GPIOT_PROFILES_DIR: "/x/p" }), path.resolve("/x/p"));
    if (process.platform === "linux") assert.equal(defaultProfilesDir({ XDG_CONFIG_HOME: "/cfg" }), "/cfg/gpiot/profiles");
  });
});

describe("BLEU", () => {
  test("identical text scores 1, unrelated text about 0, and a partial match in between", () => {
    const reference = "1. Load the ECG record and band-pass filter it between 5 and 15 Hz.";
    assert.ok(Math.abs(corpusBleu([reference], [reference]) - 1) < 1e-12);
    assert.ok(corpusBleu(["completely different words here now"], [reference]) < 0.05);
    const partial = corpusBleu(["1. Load the ECG record and low-pass filter it at 40 Hz."], [reference]);
    assert.ok(partial > 0.2 && partial < 0.8, `partial ${partial}`);
    assert.equal(corpusBleu([""], [reference]), 0);
  });

  test("short hypotheses pay the brevity penalty", () => {
    const reference = "a b c d e f g h";
    assert.ok(corpusBleu(["a b c d"], [reference]) < corpusBleu(["a b c d e f g h"], [reference]));
  });
});

describe("held-out evaluation", () => {
  test("answers are format-correct exactly when the pipeline's parser accepts them; CG code is compiled", async () => {
    const td = JSON.stringify({ subTasks: [{ name: "A", problem: "p", steps: ["s"] }, { name: "B", problem: "q", steps: ["t"] }] });
    assert.ok(parseAnswer("td", "json", td));
    assert.equal(parseAnswer("td", "json", '{"subTasks": []}'), undefined, "schema violations are not format-correct");
    assert.equal(parseAnswer("td", "json", "not json"), undefined);
    assert.ok(parseAnswer("td", "paper", " 1. A: p\n- s\n\n2. B: q\n- t"));
    const file = path.join(scratch, "generations.json");
    const cg = (code: string) => JSON.stringify({ code, documentation: "d", requirements: [] });
    writeFileSync(
      file,
      JSON.stringify({
        split: "test",
        generations: [
          { id: "1", role: "td", format: "json", variant: "exported", reference: td, text: td },
          { id: "2", role: "td", format: "json", variant: "exported", reference: td, text: "garbage" },
          { id: "3", role: "cg", format: "json", variant: "exported", reference: "", text: cg("def run():\n    return {}\n") },
          { id: "4", role: "cg", format: "json", variant: "exported", reference: "", text: cg("def run(:\n") },
          { id: "5", role: "cg", format: "json", variant: "exported", reference: "", text: "{" },
        ],
      }),
    );
    const evaluation = await evaluateGenerations(file);
    assert.deepEqual(
      { samples: evaluation.variants.exported.td!.samples, correct: evaluation.variants.exported.td!.formatCorrect },
      { samples: 2, correct: 1 },
    );
    assert.ok(evaluation.variants.exported.td!.bleu! > 0.3);
    assert.deepEqual([evaluation.variants.exported.cg!.formatCorrect, evaluation.variants.exported.cg!.compiles], [2, 1]);
  });
});

describe("report and progress", () => {
  test("the report holds the loss curve, validation, the cross-projection cost; its page has an inline SVG chart and no script", () => {
    const run = path.join(scratch, "run");
    mkdirSync(run, { recursive: true });
    const lines = [];
    for (let step = 1; step <= 10; step++) lines.push(JSON.stringify({ event: "step", step, loss: 5 - step * 0.2, role_loss: { td: 5, cg: 4 }, tokens_per_s: 1000 + step }));
    lines.push(JSON.stringify({ event: "validation", epoch: 1, step: 10, loss: 3.1, role_loss: { td: 3, cg: 3.2 }, tokens: 100, loss_without_cross: 3.4, role_loss_without_cross: { td: 3.3, cg: 3.5 } }));
    writeFileSync(path.join(run, "metrics.jsonl"), lines.join("\n"));
    const start = { event: "start", mode: "pect", roles: ["td", "cg"], device: "cpu", weights: "float32", parameters: { total: 100, trainable: 10, frozen: 90 }, trainable_share: 0.1, steps: 10, start_step: 0, epochs: 1, steps_per_epoch: 10, train_records: {}, validation_records: {}, test_records: {}, formats: { td: "json", cg: "paper" }, pect: {}, seed: 7 } as const;
    const report = buildReport(run, start as never, {}, "fits");
    assert.equal(report.trainLoss.length, 10);
    assert.deepEqual(report.crossAblation && [report.crossAblation.withCross, report.crossAblation.withoutCross], [3.1, 3.4]);
    assert.ok(Math.abs(report.crossAblation!.cost - 0.3) < 1e-9);
    assert.equal(report.lossDrop!.window, 2);
    const files = writeReport(run, report);
    const html = readFileSync(files.html, "utf8");
    assert.match(html, /<svg[^>]*role="img"/);
    assert.match(html, /<polyline/);
    assert.match(html, /without the cross projections/);
    assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/);
    assert.match(reportHtml({ ...report, run: "/x/<b>" }), /&lt;b&gt;/, "names are escaped");
    assert.equal(lossDrop([]), undefined);
  });

  test("step lines show step, loss, tokens/s and ETA", () => {
    assert.equal(formatDuration(42), "42s");
    assert.equal(formatDuration(305), "5m05s");
    assert.equal(formatDuration(3720), "1h02m");
    const line = describeStep({ event: "step", step: 12, steps: 40, epoch: 1, loss: 3.21456, role_loss: {}, lr: 1e-4, grad_norm: 1, tokens: 100, tokens_per_s: 1234.4, eta_s: 65, step_s: 0.1 }, 3);
    assert.equal(line, "step 12/40 · epoch 1/3 · loss 3.2146 · 1,234 tok/s · ETA 1m05s");
  });

  test("options become the trainer's settings, checked before anything runs", () => {
    const settings = trainerSettings({ base: "b", mode: "lora", rank: "8", lambda: "0.25", roles: "td,cg", targets: "q_proj,v_proj", "no-fit-check": true }, "r.jsonl", "out");
    assert.equal(settings.mode, "lora");
    assert.equal(settings.rank, 8);
    assert.equal(settings.lam, 0.25);
    assert.deepEqual(settings.targets, ["q_proj", "v_proj"]);
    assert.equal(settings.fit_check, false);
    assert.throws(() => trainerSettings({ base: "b", rank: "1.5" }, "r", "o"), /--rank expects a whole number/);
    assert.throws(() => trainerSettings({ base: "b", mode: "qlora" }, "r", "o"), /--mode expects pect, lora/);
    assert.throws(() => trainerSettings({ base: "b", roles: "td,xx" }, "r", "o"), /--roles takes td, rt and cg/);
  });
});
