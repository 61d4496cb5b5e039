#!/usr/bin/env python3
"""Builds the PEFT conversion fixture in test/fixtures/peft/ (run by hand, not in CI).

What it writes, all from one fixed seed:
  hf-llama/config.json, hf-llama/model.safetensors
      a tiny random Hugging Face llama checkpoint (hidden 64, 2 layers, 4 query heads,
      2 key/value heads, vocab 300), weights stored as float16
  adapter/adapter_config.json, adapter/adapter_model.safetensors
      a real PEFT LoRA adapter on it (r=8, alpha=16, q/k/v/o_proj and down_proj) with
      random, non-zero A and B, stored as bfloat16
  reference.safetensors, reference.json
      float32 logits from transformers for a fixed token sequence, without the adapter
      ("logits_base") and with it ("logits_lora"), plus the token ids and the settings

Every weight is rounded to its stored precision before the reference logits are computed,
so the files hold exactly the values the references were computed from.

Needs: torch, transformers, peft, safetensors (see shared/RECIPES.md for the offline pip mirror):
  python3 -m venv /tmp/peftvenv && PIP_INDEX_URL=file:///opt/pypi/simple \
    /tmp/peftvenv/bin/pip install torch transformers peft safetensors
  /tmp/peftvenv/bin/python scripts/make-peft-fixture.py [OUT_DIR]
"""
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

adapter_dir = os.path.join(OUT, "adapter")
peft_model.save_pretrained(adapter_dir, safe_serialization=True)
adapter_file = os.path.join(adapter_dir, "adapter_model.safetensors")
saved = load_file(adapter_file)
save_file({name: tensor.to(torch.bfloat16).contiguous() for name, tensor in saved.items()}, adapter_file, metadata={"format": "pt"})
readme = os.path.join(adapter_dir, "README.md")
if os.path.exists(readme):
    os.remove(readme)

save_file({"logits_base": logits_base.contiguous(), "logits_lora": logits_lora.contiguous()}, os.path.join(OUT, "reference.safetensors"))
diff = (logits_lora - logits_base).abs().max().item()
with open(os.path.join(OUT, "reference.json"), "w") as f:
    json.dump(
        {
            "tokens": TOKENS,
            "seed": SEED,
            "torch": torch.__version__,
            "note": "logits_* in reference.safetensors are float32 [len(tokens), vocab_size] from transformers (eager attention); the adapter is applied at scale lora_alpha / r",
            "logitStd": {"base": logits_base.std().item(), "lora": logits_lora.std().item()},
            "maxAbsDiffLoraVsBase": diff,
        },
        f,
        indent=2,
    )
print(f"fixture written to {OUT}; logit std {logits_base.std().item():.3f}, adapter changes logits by up to {diff:.3f}")
