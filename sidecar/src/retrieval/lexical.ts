/**
 * The lexical half of retrieval: Okapi BM25 over the chunks' words. It finds exact API names
 * (`scipy.signal.find_peaks`, `RandomForestClassifier`) where embeddings are weak: a dotted or
 * snake_case name is one token and each of its parts is another, and camelCase names are split
 * into their words too. Words are lower-cased, a few very common English words are dropped, and
 * plural and -ing/-ed endings are cut so that "filters", "filtering" and "filtered" meet "filter".
 */

import { TopK } from "./topK";

const STOP_WORDS = new Set(
  "a an and are as at be but by can do does for from has have how i if in into is it its of on or so such that the their then there these this to was we what when where which while who will with you your".split(" "),
);

/** Cuts the endings that most often separate a query's word from the document's. */
export function stem(word: string): string {
  if (word.length <= 3 || /\d/.test(word)) return word;
  if (word.endsWith("ies") && word.length > 4) return `${word.slice(0, -3)}y`;
  if (word.endsWith("sses")) return word.slice(0, -2);
  if (word.endsWith("ing") && word.length > 5) return undouble(word.slice(0, -3));
  if (word.endsWith("ed") && word.length > 4) return undouble(word.slice(0, -2));
  if (word.endsWith("es") && /(?:ch|sh|x|z)es$/.test(word)) return word.slice(0, -2);
  if (word.endsWith("s") && !word.endsWith("ss") && !word.endsWith("us") && !word.endsWith("is")) return word.slice(0, -1);
  return word;
}

function undouble(word: string): string {
  return /([b-df-hj-np-tv-z])\1$/.test(word) && !/(?:ll|ss|zz)$/.test(word) ? word.slice(0, -1) : word;
}

/**
 * The words of a text as BM25 sees them, in order. An identifier with dots or underscores gives
 * itself and its parts; a camelCase word gives itself and its words.
 */
export function lexicalTokens(text: string): string[] {
  const tokens: string[] = [];
  for (const match of text.matchAll(/[\p{L}\p{N}_]+(?:\.[\p{L}\p{N}_]+)*/gu)) {
    const raw = match[0];
    const whole = raw.toLowerCase();
    const parts = new Set<string>();
    if (whole.includes(".") || whole.includes("_")) {
      for (const part of whole.split(/[._]+/)) if (part) parts.add(part);
    }
    if (/\p{Ll}\p{Lu}/u.test(raw)) {
      for (const part of raw.split(/(?<=\p{Ll})(?=\p{Lu})|[._]+/u)) if (part) parts.add(part.toLowerCase());
    }
    if (!STOP_WORDS.has(whole)) tokens.push(parts.size ? whole : stem(whole));
    for (const part of parts) if (part !== whole && !STOP_WORDS.has(part)) tokens.push(stem(part));
  }
  return tokens;
}

export interface LexicalHit {
  /** Position of the document in the order it was added. */
  index: number;
  score: number;
}

const K1 = 1.2;
const B = 0.75;

/** An in-memory BM25 index over documents numbered 0..n-1 in the order they were added. */
export class Bm25Index {
  private readonly postings = new Map<string, { docs: number[]; counts: number[] }>();
  private readonly lengths: number[] = [];
  private totalLength = 0;

  get size(): number {
    return this.lengths.length;
  }

  add(text: string): number {
    const index = this.lengths.length;
    const tokens = lexicalTokens(text);
    const counts = new Map<string, number>();
    for (const token of tokens) counts.set(token, (counts.get(token) ?? 0) + 1);
    for (const [token, count] of counts) {
      let posting = this.postings.get(token);
      if (!posting) {
        posting = { docs: [], counts: [] };
        this.postings.set(token, posting);
      }
      posting.docs.push(index);
      posting.counts.push(count);
    }
    this.lengths.push(tokens.length);
    this.totalLength += tokens.length;
    return index;
  }

  /**
   * The k best documents for a query, best first; ties go to the document added first. `allowed`
   * limits the search to some documents (e.g. the sources the user chose).
   */
  search(query: string, k: number, allowed?: (index: number) => boolean): LexicalHit[] {
    const n = this.lengths.length;
    if (n === 0 || k <= 0) return [];
    const averageLength = this.totalLength / n || 1;
    const scores = new Map<number, number>();
    for (const token of new Set(lexicalTokens(query))) {
      const posting = this.postings.get(token);
      if (!posting) continue;
      const df = posting.docs.length;
      const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5));
      for (let i = 0; i < posting.docs.length; i++) {
        const doc = posting.docs[i];
        if (allowed && !allowed(doc)) continue;
        const tf = posting.counts[i];
        const norm = tf + K1 * (1 - B + (B * this.lengths[doc]) / averageLength);
        scores.set(doc, (scores.get(doc) ?? 0) + (idf * (tf * (K1 + 1))) / norm);
      }
    }
    const best = new TopK(k);
    for (const [index, score] of scores) best.offer(index, score);
    return best.result();
  }
}
