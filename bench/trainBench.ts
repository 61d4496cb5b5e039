/**
 * Training benchmark on the tiny model (CPU), every figure a ratio against a baseline measured in
 * the same run:
 *
 * 1. Throughput: tokens/s of PECT (shared K/V path, one stream per sample) and of PECT with the
 *    cross-path projections (every sample in both streams) next to plain per-role LoRA, on the
 *    same batches, steps interleaved.
 * 2. Trainable share of parameters for 7B- and 13B-shaped llamas (computed, not trained).
 * 3. The cross-projection ablation: PECT trained with γ = 0.5, evaluated with its cross projections
 *    (as trained) and without them (as exported), next to PECT trained without them (γ = 0): the
 *    validation loss and the held-out format-correctness / compile rates (no grammar).
 *
 * `npm run bench` runs it after the inference benchmark; `tsx bench/trainBench.ts` runs it alone.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { resolveTrainingPython, runTrainer } from "../sidecar/src/train/pythonTrainer";
import type { RunReport } from "../sidecar/src/train/runReport";
import type { TrainEventOf } from "../sidecar/src/train/trainEvents";
import { cliPath } from "../test/helpers/testModels";
import { makeTrainingRecords, writeRecords } from "../test/helpers/trainingRecords";

const fmt = (value: number | undefined, digits = 1) => (value === undefined ? "–" : value.toFixed(digits));
const pct = (value: number | undefined) => (value === undefined ? "–" : `${(100 * value).toFixed(2)}%`);

export async function runTrainBench(options: { steps?: number; ablationSteps?: number; log?: (line: string) => void } = {}): Promise<string[]> {
  const python = resolveTrainingPython();
  if (spawnSync(python, ["-c", "import torch, transformers, peft"]).status !== 0) return [`  skipped: no PyTorch training environment in ${python} (bash scripts/install-training.sh)`];
  const lines: string[] = [];
  const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-train-bench-"));
  const env = { ...process.env, GPIOT_PROFILES_DIR: path.join(scratch, "profiles"), GPIOT_TRAIN_PYTHON: python };
  try {
    const base = path.join(scratch, "tiny-hf");
    await runTrainer(["tiny-base", base], { python });
    const records = writeRecords(path.join(scratch, "records.jsonl"), makeTrainingRecords({ count: 12 }));

    const throughput = (await runTrainer(["throughput", "--base", base, "--records", records, "--steps", String(options.steps ?? 8), "--batch-size", "2", "--max-length", "2048", "--gamma", "0.5", "--threads", "1"], { python })).events.find(
      (event): event is TrainEventOf<"throughput"> => event.event === "throughput",
    );
    lines.push("Training throughput on the tiny model (tokens/s of the samples' own tokens, median of interleaved steps)");
    if (throughput) {
      const rates = throughput.tokens_per_s;
      lines.push(`  plain LoRA per role:                ${fmt(rates.lora)}`);
      lines.push(`  PECT (shared K/V path):             ${fmt(rates.pect)}   ratio to LoRA ${fmt(throughput.ratio_pect_vs_lora, 2)}`);
      lines.push(`  PECT with cross projections (γ>0):  ${fmt(rates.pect_cross)}   ratio to LoRA ${fmt(throughput.ratio_pect_cross_vs_lora, 2)}`);
    } else lines.push("  failed");

    lines.push("", "Trainable share of parameters (computed; ranks 16, shared rank 16, cross width 32, targets q/k/v/o)");
    for (const [label, shape] of [
      ["7B-shaped (Llama-2-7B)", ["--hidden", "4096", "--layers", "32", "--heads", "32", "--kv-heads", "32", "--ffn", "11008"]],
      ["13B-shaped (Llama-2-13B)", ["--hidden", "5120", "--layers", "40", "--heads", "40", "--kv-heads", "40", "--ffn", "13824"]],
    ] as const) {
      const share = (await runTrainer(["share", ...shape], { python })).events.find((event): event is TrainEventOf<"share"> => event.event === "share");
      if (!share) continue;
      const plain = share.pect.trainable - share.pect.cross;
      lines.push(
        `  ${label}: LoRA ${pct(share.lora.share)} (${fmt(share.lora.trainable / 1e6)} M); PECT ${pct(plain / (share.pect.base + plain))} (${fmt(plain / 1e6)} M, ratio to LoRA ${fmt(plain / share.lora.trainable, 2)}); ` +
          `PECT with cross projections ${pct(share.pect.share)} (${fmt(share.pect.trainable / 1e6)} M)`,
      );
    }

    lines.push("", `Cross-projection ablation on the tiny model (${options.ablationSteps ?? 40} steps each, same seed and records)`);
    const train = (name: string, gamma: string): RunReport | undefined => {
      const out = path.join(scratch, name);
      const result = spawnSync(
        process.execPath,
        [cliPath, "train", records, "--base", base, "--out", out, "--mode", "pect", "--gamma", gamma, "--max-steps", String(options.ablationSteps ?? 40), "--batch-size", "2", "--lr", "5e-3", "--threads", "1", "--eval-samples", "2", "--eval-max-tokens", "96", "--quiet"],
        { env, encoding: "utf8" },
      );
      if (result.status !== 0) {
        lines.push(`  ${name}: failed (${result.stderr.trim().split("\n").pop()})`);
        return undefined;
      }
      return JSON.parse(readFileSync(path.join(out, "report.json"), "utf8"));
    };
    const withCross = train("pect-cross", "0.5");
    const noCross = train("pect-plain", "0");
    const rates = (report: RunReport | undefined, variant: string) => {
      const v = report?.evaluation?.variants[variant];
      return `TD format ${pct(v?.td?.formatRate)}, CG format ${pct(v?.cg?.formatRate)}, CG compiles ${pct(v?.cg?.compileRate)}`;
    };
    if (withCross && noCross) {
      const a = withCross.crossAblation!;
      const c = noCross.validation.at(-1)!.loss;
      lines.push(`  trained with γ=0.5, evaluated with the projections (as trained): validation loss ${fmt(a.withCross, 4)}; ${rates(withCross, "with_cross")}`);
      lines.push(`  trained with γ=0.5, evaluated without them (as exported):        validation loss ${fmt(a.withoutCross, 4)}; ${rates(withCross, "exported")}`);
      lines.push(`  trained with γ=0 (no projections; what the export can carry):     validation loss ${fmt(c, 4)}; ${rates(noCross, "exported")}`);
      lines.push(`  cost of dropping trained projections: ${fmt(a.withoutCross - a.withCross, 4)} nats; exported γ=0.5 vs trained γ=0: ${fmt(a.withoutCross - c, 4)} nats (${a.withoutCross > c ? "training without them exports better" : "training with them exports better"})`);
    }
    return lines;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log((await runTrainBench()).join("\n"));
}
