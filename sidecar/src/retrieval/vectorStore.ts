/**
 * The vector half of retrieval: exact nearest-neighbour search by cosine similarity. Vectors are
 * normalised once when added and kept in one contiguous Float32Array, so a query is one pass of
 * dot products over memory in order; the k best are kept in a small heap. Exact search was chosen
 * by measurement (README, "Retrieval"): at the sizes a user's documents reach it answers within
 * milliseconds to tens of milliseconds, needs no index build, no native module, and always finds
 * the true nearest chunks.
 */
import { TopK, type Scored } from "./topK";

export function normalise(vector: ArrayLike<number>): Float32Array {
  const out = Float32Array.from(vector);
  let norm = 0;
  for (let i = 0; i < out.length; i++) norm += out[i] * out[i];
  norm = Math.sqrt(norm);
  if (norm > 0 && Number.isFinite(norm)) for (let i = 0; i < out.length; i++) out[i] /= norm;
  return out;
}

export class FlatVectorStore {
  private data: Float32Array;
  private count = 0;

  constructor(
    readonly dims: number,
    capacity = 1024,
  ) {
    if (!Number.isInteger(dims) || dims <= 0) throw new Error(`A vector store needs a positive dimension, got ${dims}`);
    this.data = new Float32Array(dims * Math.max(1, capacity));
  }

  get size(): number {
    return this.count;
  }

  /** Adds a vector (normalised here) and returns its index. */
  add(vector: ArrayLike<number>): number {
    if (vector.length !== this.dims) throw new Error(`Vector of dimension ${vector.length} added to a store of dimension ${this.dims}`);
    if ((this.count + 1) * this.dims > this.data.length) {
      const grown = new Float32Array(Math.max(this.data.length * 2, (this.count + 1) * this.dims));
      grown.set(this.data);
      this.data = grown;
    }
    this.data.set(normalise(vector), this.count * this.dims);
    return this.count++;
  }

  /** The stored (normalised) vector at `index`. */
  vector(index: number): Float32Array {
    return this.data.subarray(index * this.dims, (index + 1) * this.dims);
  }

  /** The k vectors most similar to the query (cosine), best first; ties go to the lower index. */
  search(query: ArrayLike<number>, k: number, allowed?: (index: number) => boolean): Scored[] {
    if (query.length !== this.dims) throw new Error(`Query of dimension ${query.length} for a store of dimension ${this.dims}`);
    const q = normalise(query);
    const best = new TopK(k);
    const dims = this.dims;
    const data = this.data;
    for (let index = 0; index < this.count; index++) {
      if (allowed && !allowed(index)) continue;
      let offset = index * dims;
      let dot = 0;
      let i = 0;
      for (; i + 4 <= dims; i += 4, offset += 4) dot += q[i] * data[offset] + q[i + 1] * data[offset + 1] + q[i + 2] * data[offset + 2] + q[i + 3] * data[offset + 3];
      for (; i < dims; i++, offset++) dot += q[i] * data[offset];
      best.offer(index, dot);
    }
    return best.result();
  }
}
