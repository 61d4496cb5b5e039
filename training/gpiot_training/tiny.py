"""A tiny random-weight Hugging Face llama with a character-level tokenizer, for tests and for
trying the CPU path: nothing is downloaded, and its outputs are noise.

The tokenizer is chosen so that llama.cpp tokenizes every text exactly as transformers does once
the model is converted to GGUF (sidecar/src/peft/hfLlamaToGguf.ts): a BPE vocabulary with no merges
and byte fallback (one token per printable ASCII character, UTF-8 bytes for everything else),
spaces written as U+2581, no space prefix, a ChatML chat template, and BOS added in front.

Like the project's tiny GGUF test models, one residual dimension carries a constant that the output
row of the bare `"` token reads: random weights alone almost never close a JSON string under a
grammar, and this bias keeps strings short.
"""

import json
import os

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
SPACE = "\u2581"
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
BIAS_CARRIER_DIMENSION = 0
STRING_END_BIAS = 4.5


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    vocab[SPACE] = len(vocab)
    for code in range(0x21, 0x7F):
        vocab[chr(code)] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", SPACE)
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>", pad_token="</s>", add_bos_token=True
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def make_tiny_base(
    out_dir: str, seed: int = 20250611, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, ffn: int = 128
) -> dict:
    """Writes config.json, model.safetensors and the tokenizer files into out_dir."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attention_bias=False,
        mlp_bias=False,
    )
    model = LlamaForCausalLM(config).float().eval()
    quote = tokenizer.convert_tokens_to_ids('"')
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.fill_(1.0)
            elif "embed_tokens" in name:
                param.copy_(torch.randn_like(param))
                param[:, BIAS_CARRIER_DIMENSION] = 1.0
            elif "lm_head" in name:
                param.copy_(0.25 * torch.randn_like(param))
                param[:, BIAS_CARRIER_DIMENSION] = 0.0
                param[quote, BIAS_CARRIER_DIMENSION] = STRING_END_BIAS
            else:
                param.copy_(0.08 * torch.randn_like(param))
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    info = {
        "dir": os.path.abspath(out_dir),
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": seed,
    }
    with open(os.path.join(out_dir, "gpiot-tiny.json"), "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
    return info
