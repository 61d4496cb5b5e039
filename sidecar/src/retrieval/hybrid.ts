/**
 * Hybrid ranking: the lexical and the vector rankings merged by reciprocal rank fusion (RRF),
 * score = sum over the rankings of 1 / (RRF_K + rank). RRF needs no score calibration between
 * BM25 and cosine, and a chunk found by both rises above one found by either alone. The merge is
 * deterministic: equal fused scores go to the chunk with the better single rank, then to the
 * chunk added to the index first.
 */
import type { Scored } from "./topK";

export const RRF_K = 60;

export interface FusedHit {
  index: number;
  score: number;
  /** 1-based rank in the lexical ranking, if the chunk is in it. */
  lexicalRank?: number;
  /** 1-based rank in the vector ranking, if the chunk is in it. */
  vectorRank?: number;
}

export function fuseRankings(lexical: Scored[], vector: Scored[], k: number): FusedHit[] {
  const hits = new Map<number, FusedHit>();
  lexical.forEach((hit, position) => {
    const entry = hits.get(hit.index) ?? { index: hit.index, score: 0 };
    entry.lexicalRank = position + 1;
    entry.score += 1 / (RRF_K + position + 1);
    hits.set(hit.index, entry);
  });
  vector.forEach((hit, position) => {
    const entry = hits.get(hit.index) ?? { index: hit.index, score: 0 };
    entry.vectorRank = position + 1;
    entry.score += 1 / (RRF_K + position + 1);
    hits.set(hit.index, entry);
  });
  const bestRank = (hit: FusedHit) => Math.min(hit.lexicalRank ?? Infinity, hit.vectorRank ?? Infinity);
  return [...hits.values()].sort((a, b) => b.score - a.score || bestRank(a) - bestRank(b) || a.index - b.index).slice(0, k);
}
