/**
 * What the Hugging Face llama layout and llama.cpp's GGUF llama layout have in common: tensor names
 * and the Q/K row permutation.
 *
 * Hugging Face's llama applies RoPE to the two halves of each head (rotate_half); llama.cpp's llama
 * ("normal" RoPE) rotates adjacent pairs. llama.cpp's own converter therefore reorders the output
 * rows of q_proj and k_proj within each head: the rows of head h, taken as [2, headDim/2], are
 * transposed to [headDim/2, 2]. For K the head count is the number of key/value heads. A LoRA delta
 * B·A adds to those rows, so its B (the [out, r] factor) needs the same reordering and A none.
 */

export type QkPermutation = "llama" | "none";

/** HF module name inside a decoder layer → GGUF tensor base name. */
export const hfLayerModuleToGguf: ReadonlyMap<string, string> = new Map([
  ["self_attn.q_proj", "attn_q"],
  ["self_attn.k_proj", "attn_k"],
  ["self_attn.v_proj", "attn_v"],
  ["self_attn.o_proj", "attn_output"],
  ["mlp.gate_proj", "ffn_gate"],
  ["mlp.up_proj", "ffn_up"],
  ["mlp.down_proj", "ffn_down"],
  ["input_layernorm", "attn_norm"],
  ["post_attention_layernorm", "ffn_norm"],
]);

export const hfGlobalToGguf: ReadonlyMap<string, string> = new Map([
  ["model.embed_tokens", "token_embd"],
  ["model.norm", "output_norm"],
  ["lm_head", "output"],
]);

/** Short PEFT target name (q_proj) → GGUF base name (attn_q), for the linear layers a LoRA can target. */
export const loraTargetToGguf: ReadonlyMap<string, string> = new Map([
  ["q_proj", "attn_q"],
  ["k_proj", "attn_k"],
  ["v_proj", "attn_v"],
  ["o_proj", "attn_output"],
  ["gate_proj", "ffn_gate"],
  ["up_proj", "ffn_up"],
  ["down_proj", "ffn_down"],
]);

/**
 * Reorders the rows of a row-major [rows, cols] matrix (rows = heads · headDim) the way llama.cpp's
 * converter does for Q and K: within each head, row j·(headDim/2) + i moves to row 2i + j.
 */
export function permuteQkRows(data: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  if (rows % heads !== 0 || (rows / heads) % 2 !== 0)
    throw new Error(`cannot permute ${rows} rows into ${heads} heads of even size`);
  if (data.length !== rows * cols) throw new Error(`matrix has ${data.length} values, expected ${rows} x ${cols}`);
  const headDim = rows / heads;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let head = 0; head < heads; head++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) {
        const from = head * headDim + j * half + i;
        const to = head * headDim + 2 * i + j;
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** ggml lists dimensions innermost first: torch [out, in] is ggml [in, out]. */
export function ggmlDimensions(torchShape: readonly number[]): number[] {
  return [...torchShape].reverse();
}
