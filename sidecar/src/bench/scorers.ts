/**
 * Scoring: beat detection against reference beats with a matching window (the usual 150 ms),
 * classification accuracy, and the unbiased pass@k estimator of Chen et al. (2021).
 */

export interface BeatScore {
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
  f1: number;
}

/**
 * One-to-one matching of detections to reference beats within `toleranceSamples`: candidate pairs
 * are taken closest first, so each reference beat and each detection is used at most once.
 */
export function scoreBeats(reference: number[], detected: number[], toleranceSamples: number): BeatScore {
  const refs = [...reference].sort((a, b) => a - b);
  const dets = [...new Set(detected.filter((value) => Number.isFinite(value)).map((value) => Math.round(value)))].sort((a, b) => a - b);
  const pairs: [number, number, number][] = [];
  let start = 0;
  for (let r = 0; r < refs.length; r++) {
    while (start < dets.length && dets[start] < refs[r] - toleranceSamples) start++;
    for (let d = start; d < dets.length && dets[d] <= refs[r] + toleranceSamples; d++) pairs.push([Math.abs(dets[d] - refs[r]), r, d]);
  }
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const usedRef = new Uint8Array(refs.length);
  const usedDet = new Uint8Array(dets.length);
  let tp = 0;
  for (const [, r, d] of pairs) {
    if (usedRef[r] || usedDet[d]) continue;
    usedRef[r] = 1;
    usedDet[d] = 1;
    tp++;
  }
  return combineBeatScores([{ tp, fp: dets.length - tp, fn: refs.length - tp }]);
}

/** Micro-averaged totals over several records. */
export function combineBeatScores(scores: { tp: number; fp: number; fn: number }[]): BeatScore {
  const tp = scores.reduce((sum, score) => sum + score.tp, 0);
  const fp = scores.reduce((sum, score) => sum + score.fp, 0);
  const fn = scores.reduce((sum, score) => sum + score.fn, 0);
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { tp, fp, fn, precision, recall, f1 };
}

/** Share of positions where the prediction equals the truth; missing predictions count as wrong. */
export function accuracy(predicted: unknown[], truth: number[]): number {
  if (truth.length === 0) return 0;
  let correct = 0;
  for (let i = 0; i < truth.length; i++) {
    const value = predicted[i];
    const number = typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : NaN;
    if (number === truth[i]) correct++;
  }
  return correct / truth.length;
}

/** Unbiased estimate of pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k). */
export function passAtK(n: number, c: number, k: number): number {
  if (n <= 0 || k <= 0) return 0;
  if (k > n) k = n;
  if (n - c < k) return 1;
  let product = 1;
  for (let i = n - c + 1; i <= n; i++) product *= 1 - k / i;
  return 1 - product;
}
