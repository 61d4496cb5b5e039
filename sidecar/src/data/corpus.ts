/**
 * The retrieval corpus: the cleaned text of the papers and the packages' documentation, cut into
 * chunks of whole paragraphs, one JSON object per line (`<out>.corpus.jsonl`). Retrieval reads
 * it with this schema.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

export const CorpusChunkSchema = z.object({
  /** Hex SHA-256 (first 24 digits) of the source and the text: stable across runs. */
  id: z.string().regex(/^[0-9a-f]{24}$/),
  text: z.string().min(1),
  source: z.object({
    kind: z.enum(["paper", "package"]),
    /** Paper file, relative to the papers folder. */
    file: z.string().optional(),
    page: z.number().int().positive().optional(),
    section: z.string().optional(),
    package: z.string().optional(),
    /** Fully qualified function name, e.g. scipy.signal.find_peaks. */
    function: z.string().optional(),
  }),
});
export type CorpusChunk = z.infer<typeof CorpusChunkSchema>;

export const DEFAULT_CHUNK_CHARS = 1200;

/** Cuts `text` into chunks of whole paragraphs of about `maxChars`; a longer paragraph is cut at sentence ends. */
export function chunkText(text: string, maxChars = DEFAULT_CHUNK_CHARS): string[] {
  const pieces: string[] = [];
  for (const paragraph of text.split(/\n\s*\n/).map((part) => part.trim()).filter(Boolean)) {
    if (paragraph.length <= maxChars) {
      pieces.push(paragraph);
      continue;
    }
    let current = "";
    for (const sentence of paragraph.match(/[^.!?]+(?:[.!?]+(?=\s|$)|$)\s*/g) ?? [paragraph]) {
      if (current && current.length + sentence.length > maxChars) {
        pieces.push(current.trim());
        current = "";
      }
      current += sentence;
      while (current.length > maxChars) {
        pieces.push(current.slice(0, maxChars).trim());
        current = current.slice(maxChars);
      }
    }
    if (current.trim()) pieces.push(current.trim());
  }
  const chunks: string[] = [];
  let current = "";
  for (const piece of pieces) {
    if (current && current.length + piece.length + 2 > maxChars) {
      chunks.push(current);
      current = "";
    }
    current = current ? `${current}\n\n${piece}` : piece;
  }
  if (current) chunks.push(current);
  return chunks;
}

export function corpusChunks(text: string, source: CorpusChunk["source"], maxChars = DEFAULT_CHUNK_CHARS): CorpusChunk[] {
  return chunkText(text, maxChars).map((chunk) => ({
    id: createHash("sha256").update(JSON.stringify([source, chunk])).digest("hex").slice(0, 24),
    text: chunk,
    source,
  }));
}
