#!/usr/bin/env python3
"""Builds the PEFT conversion fixture in test/fixtures/peft/ (run by hand, not in CI).

What it writes, all from one fixed seed:
  hf-llama/config.json, hf-llama/model.safetensors
      a tiny random Hugging Face llama checkpoint (hidden 64, 2 layers, 4 query heads,
      2 key/value heads, vocab 300), weights stored as float16
  adapter/adapter_config.json, adapter/adapter_model.safetensors
      a real PEFT LoRA adapter on it (r=8, alpha=16, q/k/v/o_proj and down_proj) with
      random, non-zero A and B, stored as bfloat16
  adapter-<variant>/adapter_config.json, adapter-<variant>/adapter_model.safetensors
      LoRA adapters whose options change the scaling per module, each with its own seed:
        rank-pattern    rank_pattern gives q_proj r=4 and layer 1's down_proj r=12 (alpha 16)
        alpha-pattern   alpha_pattern gives v_proj alpha 32 and layer 0's o_proj alpha 4 (r=8)
        rslora          use_rslora (scale alpha / sqrt(r) instead of alpha / r)
        rslora-patterns use_rslora with both patterns
        rslora-rank-pattern  use_rslora with rank_pattern only
  reference.safetensors, reference.json
      float32 logits from transformers for a fixed token sequence, without the adapter
      ("logits_base"), with it ("logits_lora"), and with each variant ("logits_<variant>"),
      plus the token ids and the settings

Every weight is rounded to its stored precision before the reference logits are computed,
so the files hold exactly the values the references were computed from.

Needs: torch, transformers, peft, safetensors:
  python3 -m venv /tmp/peftvenv && /tmp/peftvenv/bin/pip install torch transformers peft safetensors
  /tmp/peftvenv/bin/python scripts/make-peft-fixture.py [OUT_DIR]
"""
import copy
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

SEED = 20250611
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "peft"))
TOKENS = [1, 17, 42, 260, 5, 99, 123, 7, 250, 64, 3, 200, 11, 150, 77, 2]

torch.manual_seed(SEED)
torch.set_grad_enabled(False)


def save_adapter(peft_model, adapter_dir):
    """Saves the adapter with its A and B stored as bfloat16, without the generated README."""
    peft_model.save_pretrained(adapter_dir, safe_serialization=True)
    adapter_file = os.path.join(adapter_dir, "adapter_model.safetensors")
    saved = load_file(adapter_file)
    save_file({name: tensor.to(torch.bfloat16).contiguous() for name, tensor in saved.items()}, adapter_file, metadata={"format": "pt"})
    readme = os.path.join(adapter_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)


config = LlamaConfig(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    attention_bias=False,
    mlp_bias=False,
)
config._attn_implementation = "eager"
model = LlamaForCausalLM(config).float().eval()

# Weights big enough that attention (and so RoPE) matters and the logits spread over several nats.
for name, param in model.named_parameters():
    if "norm" in name:
        value = 1.0 + 0.1 * torch.randn_like(param)
    elif "embed_tokens" in name:
        value = torch.randn_like(param)
    elif "lm_head" in name:
        value = 0.5 * torch.randn_like(param)
    else:
        value = 0.15 * torch.randn_like(param)
    param.copy_(value.to(torch.float16).to(torch.float32))

input_ids = torch.tensor([TOKENS])
logits_base = model(input_ids=input_ids).logits[0].float().clone()
# get_peft_model changes the model it wraps: the variants below start from this untouched copy.
pristine = copy.deepcopy(model)

hf_dir = os.path.join(OUT, "hf-llama")
os.makedirs(hf_dir, exist_ok=True)
config_dict = config.to_dict()
config_dict["torch_dtype"] = "float16"
config_dict.pop("_attn_implementation_autoset", None)
with open(os.path.join(hf_dir, "config.json"), "w") as f:
    json.dump(config_dict, f, indent=2, sort_keys=True)
state = {name: tensor.to(torch.float16).contiguous() for name, tensor in model.state_dict().items()}
save_file(state, os.path.join(hf_dir, "model.safetensors"), metadata={"format": "pt"})

lora_config = LoraConfig(
    r=8,
    lora_alpha=16,
    lora_dropout=0.0,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
    bias="none",
    task_type="CAUSAL_LM",
    init_lora_weights=False,
)
peft_model = get_peft_model(model, lora_config).eval()
for name, param in peft_model.named_parameters():
    if "lora_A" in name or "lora_B" in name:
        param.copy_((0.12 * torch.randn_like(param)).to(torch.bfloat16).to(torch.float32))
logits_lora = peft_model(input_ids=input_ids).logits[0].float().clone()

save_adapter(peft_model, os.path.join(OUT, "adapter"))




TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]
VARIANTS = {
    "rank-pattern": dict(r=8, lora_alpha=16, rank_pattern={"q_proj": 4, "model.layers.1.mlp.down_proj": 12}),
    "alpha-pattern": dict(r=8, lora_alpha=16, alpha_pattern={"v_proj": 32, "model.layers.0.self_attn.o_proj": 4}),
    "rslora": dict(r=8, lora_alpha=16, use_rslora=True),
    "rslora-patterns": dict(r=8, lora_alpha=16, use_rslora=True, rank_pattern={"k_proj": 2, "layers.0.mlp.down_proj": 16}, alpha_pattern={"q_proj": 6, "model.layers.1.self_attn.v_proj": 40}),
    "rslora-rank-pattern": dict(r=8, lora_alpha=16, use_rslora=True, rank_pattern={"o_proj": 32, "v_proj": 2}),
}
variant_logits = {}
for index, (variant, options) in enumerate(VARIANTS.items()):
    torch.manual_seed(SEED + 1 + index)
    variant_model = get_peft_model(
        copy.deepcopy(pristine),
        LoraConfig(lora_dropout=0.0, target_modules=TARGETS, bias="none", task_type="CAUSAL_LM", init_lora_weights=False, **options),
    ).eval()
    for name, param in variant_model.named_parameters():
        if "lora_A" in name or "lora_B" in name:
            param.copy_((0.12 * torch.randn_like(param)).to(torch.bfloat16).to(torch.float32))
    variant_logits[f"logits_{variant}"] = variant_model(input_ids=input_ids).logits[0].float().clone().contiguous()
    save_adapter(variant_model, os.path.join(OUT, f"adapter-{variant}"))

save_file({"logits_base": logits_base.contiguous(), "logits_lora": logits_lora.contiguous(), **variant_logits}, os.path.join(OUT, "reference.safetensors"))
diff = (logits_lora - logits_base).abs().max().item()
with open(os.path.join(OUT, "reference.json"), "w") as f:
    json.dump(
        {
            "tokens": TOKENS,
            "seed": SEED,
            "torch": torch.__version__,
            "note": "logits_* in reference.safetensors are float32 [len(tokens), vocab_size] from transformers (eager attention); the adapter is applied at scale lora_alpha / r, the variants at PEFT's scale for each module",
            "variants": {variant: {key: value for key, value in options.items()} for variant, options in VARIANTS.items()},
            "logitStd": {"base": logits_base.std().item(), "lora": logits_lora.std().item()},
            "maxAbsDiffLoraVsBase": diff,
        },
        f,
        indent=2,
    )
print(f"fixture written to {OUT}; logit std {logits_base.std().item():.3f}, adapter changes logits by up to {diff:.3f}")
