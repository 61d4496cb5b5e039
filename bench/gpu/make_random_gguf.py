"""Writes a random-weight llama GGUF of a real model's shape, and a random LoRA adapter for it.

For throughput measurements on a GPU where no real weights can be downloaded: the cost of a token
depends on the shape, not on the values. The tokenizer (ChatML control tokens, byte tokens, the
chat template) is copied from GPIoT's tiny test model, padded with unreachable control tokens to a
real vocabulary size so that the output layer costs what it would.

    python3 make_random_gguf.py --gguf-py LLAMA_CPP/gguf-py --tiny tiny-base.gguf --shape 1.5b \
        --out model.gguf --lora-out cg.lora.gguf
"""

import argparse
import sys
import time

import numpy as np

SHAPES = {
    # (embedding, layers, feed-forward, heads, kv heads, vocabulary); vocabulary 0 keeps the tiny
    # model's own (~1,300 tokens): a CPU-sized model whose cost per token is the decode, not sampling.
    "50m": (512, 8, 1536, 8, 8, 0),
    # Qwen2.5-Coder-0.5B / 1.5B / 7B-like:
    "0.5b": (896, 24, 4864, 14, 2, 151_936),
    "1.5b": (1536, 28, 8960, 12, 2, 151_936),
    "7b": (3584, 28, 18944, 28, 4, 152_064),
}


def random_f16(rng, shape, std):
    return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float16)


def tiny_tokenizer(gguf, path):
    reader = gguf.GGUFReader(path)

    def value(name):
        field = reader.fields.get(name)
        return None if field is None else field.contents()

    return {
        "tokens": value("tokenizer.ggml.tokens"),
        "scores": value("tokenizer.ggml.scores"),
        "types": value("tokenizer.ggml.token_type"),
        "bos": value("tokenizer.ggml.bos_token_id"),
        "eos": value("tokenizer.ggml.eos_token_id"),
        "unk": value("tokenizer.ggml.unknown_token_id"),
        "add_bos": value("tokenizer.ggml.add_bos_token"),
        "template": value("tokenizer.chat_template"),
    }


def write_model(gguf, args, tokenizer, rng):
    embd, layers, ff, heads, kv_heads, vocab_size = SHAPES[args.shape]
    head_dim = embd // heads
    tokens = list(tokenizer["tokens"])
    scores = list(tokenizer["scores"])
    types = list(tokenizer["types"])
    control = int(gguf.TokenType.CONTROL)
    vocab_size = vocab_size or len(tokens)
    for index in range(len(tokens), vocab_size):
        tokens.append(f"<|gpiot_pad_{index}|>")
        scores.append(0.0)
        types.append(control)

    writer = gguf.GGUFWriter(args.out, "llama")
    writer.add_name(f"gpiot-random-{args.shape}")
    writer.add_context_length(args.context)
    writer.add_embedding_length(embd)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(int(tokenizer["bos"]))
    writer.add_eos_token_id(int(tokenizer["eos"]))
    writer.add_unk_token_id(int(tokenizer["unk"]))
    writer.add_add_bos_token(bool(tokenizer["add_bos"]))
    writer.add_chat_template(tokenizer["template"])

    writer.add_tensor("token_embd.weight", random_f16(rng, (vocab_size, embd), 1.0))
    for layer in range(layers):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(embd, dtype=np.float32))
        writer.add_tensor(f"{prefix}.attn_q.weight", random_f16(rng, (heads * head_dim, embd), 0.02))
        writer.add_tensor(f"{prefix}.attn_k.weight", random_f16(rng, (kv_heads * head_dim, embd), 0.02))
        writer.add_tensor(f"{prefix}.attn_v.weight", random_f16(rng, (kv_heads * head_dim, embd), 0.02))
        writer.add_tensor(f"{prefix}.attn_output.weight", random_f16(rng, (embd, heads * head_dim), 0.02))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(embd, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", random_f16(rng, (ff, embd), 0.02))
        writer.add_tensor(f"{prefix}.ffn_up.weight", random_f16(rng, (ff, embd), 0.02))
        writer.add_tensor(f"{prefix}.ffn_down.weight", random_f16(rng, (embd, ff), 0.02))
    writer.add_tensor("output_norm.weight", np.ones(embd, dtype=np.float32))
    writer.add_tensor("output.weight", random_f16(rng, (vocab_size, embd), 0.02))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_lora(gguf, args, rng):
    """A rank-64 LoRA adapter on attn_q and attn_v, as the GPIoT authors trained theirs."""
    embd, layers, _ff, heads, kv_heads, _vocab = SHAPES[args.shape]
    head_dim = embd // heads
    rank = args.lora_rank
    writer = gguf.GGUFWriter(args.lora_out, "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for layer in range(layers):
        for name, n_out in (("attn_q", heads * head_dim), ("attn_v", kv_heads * head_dim)):
            # numpy (rows, cols) is ggml [cols, rows]: lora_a is [n_in, r], lora_b is [r, n_out].
            writer.add_tensor(f"blk.{layer}.{name}.weight.lora_a", random_f16(rng, (rank, embd), 0.01))
            writer.add_tensor(f"blk.{layer}.{name}.weight.lora_b", random_f16(rng, (n_out, rank), 0.01))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf-py", required=True, help="llama.cpp's gguf-py folder")
    parser.add_argument("--tiny", required=True, help="GPIoT's tiny-base.gguf (tokenizer source)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1.5b")
    parser.add_argument("--context", type=int, default=32768)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lora-out")
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, args.gguf_py)
    import gguf

    rng = np.random.default_rng(args.seed)
    started = time.time()
    write_model(gguf, args, tiny_tokenizer(gguf, args.tiny), rng)
    if args.lora_out:
        write_lora(gguf, args, rng)
    print(f"wrote {args.shape} random model in {time.time() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
