/**
 * The k best of many scored items without sorting them all: a min-heap of the best k seen so far.
 * Order: higher score first; equal scores go to the lower index, so results never depend on the
 * order the candidates were offered in.
 */
export interface Scored {
  index: number;
  score: number;
}

/** a ranks below b. */
function worse(a: Scored, b: Scored): boolean {
  return a.score < b.score || (a.score === b.score && a.index > b.index);
}

export class TopK {
  private readonly heap: Scored[] = [];

  constructor(private readonly k: number) {}

  /** Whether a candidate with this score could still enter (a cheap test before building it). */
  admits(score: number, index: number): boolean {
    if (this.heap.length < this.k) return this.k > 0;
    return worse(this.heap[0], { index, score });
  }

  offer(index: number, score: number): void {
    if (!this.admits(score, index)) return;
    const item = { index, score };
    const heap = this.heap;
    if (heap.length < this.k) {
      heap.push(item);
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!worse(heap[i], heap[parent])) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
      return;
    }
    heap[0] = item;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && worse(heap[left], heap[smallest])) smallest = left;
      if (right < heap.length && worse(heap[right], heap[smallest])) smallest = right;
      if (smallest === i) break;
      [heap[i], heap[smallest]] = [heap[smallest], heap[i]];
      i = smallest;
    }
  }

  /** Best first. */
  result(): Scored[] {
    return [...this.heap].sort((a, b) => b.score - a.score || a.index - b.index);
  }
}
