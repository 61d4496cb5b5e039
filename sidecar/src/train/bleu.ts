/**
 * Corpus BLEU-4 (Papineni et al. 2002) with one reference per hypothesis: clipped n-gram precisions
 * for n = 1..4 summed over the corpus, their geometric mean, and the brevity penalty. Tokens are
 * words and single punctuation characters (close to sacrebleu's "13a" tokenizer). A precision with
 * no match is floored at 0.1 / (its n-gram count) so that one missing 4-gram does not zero the
 * score (sacrebleu's "floor" smoothing); an empty hypothesis corpus scores 0.
 */
export function bleuTokens(text: string): string[] {
  return text.match(/[A-Za-z0-9_]+|[^\sA-Za-z0-9_]/g) ?? [];
}

function ngramCounts(tokens: string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join("\u0001");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export function corpusBleu(hypotheses: string[], references: string[], maxN = 4): number {
  if (hypotheses.length !== references.length) throw new Error("BLEU needs one reference per hypothesis");
  const matches = new Array(maxN).fill(0);
  const totals = new Array(maxN).fill(0);
  let hypothesisLength = 0;
  let referenceLength = 0;
  hypotheses.forEach((hypothesis, index) => {
    const hyp = bleuTokens(hypothesis);
    const ref = bleuTokens(references[index]);
    hypothesisLength += hyp.length;
    referenceLength += ref.length;
    for (let n = 1; n <= maxN; n++) {
      const refCounts = ngramCounts(ref, n);
      for (const [gram, count] of ngramCounts(hyp, n)) {
        matches[n - 1] += Math.min(count, refCounts.get(gram) ?? 0);
        totals[n - 1] += count;
      }
    }
  });
  if (hypothesisLength === 0) return 0;
  let logPrecision = 0;
  for (let n = 0; n < maxN; n++) {
    if (totals[n] === 0) return 0;
    logPrecision += Math.log(matches[n] > 0 ? matches[n] / totals[n] : 0.1 / totals[n]) / maxN;
  }
  const brevity = hypothesisLength >= referenceLength ? 1 : Math.exp(1 - referenceLength / hypothesisLength);
  return brevity * Math.exp(logPrecision);
}
