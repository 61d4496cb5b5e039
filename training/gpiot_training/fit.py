"""Does a training run fit the device? Estimated from config.json before any weight is loaded.

needed = frozen weights (at their storage precision) + trainable parameters with gradients and
AdamW state (16 bytes each) + activations kept for the backward pass + the logits of the loss rows
+ a margin. Activations use the usual per-layer estimate for transformer training (about 34·h
values per token and layer, plus 5·heads·seq per token for materialised attention scores when the
attention is "eager"); with gradient checkpointing only each layer's input is kept, plus one layer.
It is an estimate: the refusal says so and `--no-fit-check` skips it.
"""

import json
import os
from dataclasses import dataclass

from .events import EXIT_BAD_INPUT, EXIT_DOES_NOT_FIT, TrainingError
from .pect import PectConfig, count_trainable_for_shape

BYTES_PER_WEIGHT = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.06, "nf4": 0.56}
GIB = 1024**3


@dataclass
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    tied: bool
    model_type: str


def read_shape(base_dir: str) -> Shape:
    path = os.path.join(base_dir, "config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError as error:
        raise TrainingError("BASE_NOT_FOUND", f"{base_dir} is not a Hugging Face model folder: it has no config.json.", 5) from error
    except json.JSONDecodeError as error:
        raise TrainingError("BASE_INVALID", f"{path} is not valid JSON: {error.msg}.", 5) from error
    raw = raw.get("text_config", raw)
    if raw.get("model_type") != "llama" and "LlamaForCausalLM" not in (raw.get("architectures") or []):
        raise TrainingError(
            "BASE_UNSUPPORTED",
            f'{path} describes a "{raw.get("model_type")}" model. GPIoT\'s trainer and its GGUF export handle llama bases (Llama 2, CodeLlama, Mistral-style llama checkpoints).',
            EXIT_BAD_INPUT,
        )
    try:
        heads = int(raw["num_attention_heads"])
        return Shape(
            hidden=int(raw["hidden_size"]),
            layers=int(raw["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(raw.get("num_key_value_heads") or heads),
            ffn=int(raw["intermediate_size"]),
            vocab=int(raw["vocab_size"]),
            tied=bool(raw.get("tie_word_embeddings", False)),
            model_type="llama",
        )
    except (KeyError, TypeError, ValueError) as error:
        raise TrainingError("BASE_INVALID", f"{path} lacks a llama shape field ({error}).", 5) from error


def device_free_bytes(device: str) -> tuple[int, str]:
    """Free memory of the device and its name. CPU: MemAvailable (RAM the system can give without swapping)."""
    override = os.environ.get("GPIOT_TRAIN_DEVICE_FREE_BYTES")
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        name = torch.cuda.get_device_name(torch.device(device))
        return (int(override) if override else int(free)), name
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        try:
            import psutil

            available = int(psutil.virtual_memory().available)
        except ImportError:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return (int(override) if override else available), "CPU (system RAM)"


def estimate_bytes(
    shape: Shape,
    pect: PectConfig,
    weight_dtype: str,
    compute_bytes: int,
    batch_size: int,
    max_length: int,
    gradient_checkpointing: bool,
    attention: str,
) -> dict[str, float]:
    counts = count_trainable_for_shape(pect, shape.hidden, shape.layers, shape.heads, shape.kv_heads, shape.ffn, shape.vocab, shape.tied)
    weights = counts["base"] * BYTES_PER_WEIGHT[weight_dtype]
    trainable = counts["trainable"] * 16
    rows = batch_size * (2 if pect.has_cross else 1)
    tokens = rows * max_length
    per_token_layer = 34 * shape.hidden + (5 * shape.heads * max_length if attention == "eager" else 0)
    scale = compute_bytes / 2
    if gradient_checkpointing:
        activations = tokens * shape.hidden * compute_bytes * shape.layers + tokens * per_token_layer * scale
    else:
        activations = tokens * per_token_layer * scale * shape.layers
    logits = batch_size * max_length * shape.vocab * 4 * 3
    subtotal = weights + trainable + activations + logits
    return {
        "weights": weights,
        "trainable": trainable,
        "activations": activations,
        "logits": logits,
        "margin": 0.1 * subtotal + 0.25 * GIB,
        "total": 1.1 * subtotal + 0.25 * GIB,
        "base_parameters": counts["base"],
        "trainable_parameters": counts["trainable"],
    }


def check_fit(
    shape: Shape,
    pect: PectConfig,
    device: str,
    weight_dtype: str,
    compute_bytes: int,
    batch_size: int,
    max_length: int,
    gradient_checkpointing: bool,
    attention: str,
) -> dict:
    estimate = estimate_bytes(shape, pect, weight_dtype, compute_bytes, batch_size, max_length, gradient_checkpointing, attention)
    free, name = device_free_bytes(device)
    fits = estimate["total"] <= free
    summary = (
        f"Training needs about {estimate['total'] / GIB:.1f} GiB on {name} "
        f"(weights {estimate['weights'] / GIB:.1f} GiB as {weight_dtype}, trainable state {estimate['trainable'] / GIB:.2f} GiB, "
        f"activations {estimate['activations'] / GIB:.1f} GiB, logits {estimate['logits'] / GIB:.2f} GiB); {free / GIB:.1f} GiB is free."
    )
    result = {"fits": fits, "needed_bytes": estimate["total"], "free_bytes": free, "device": name, "summary": summary, "estimate": estimate}
    if not fits:
        advice = []
        if weight_dtype in ("float32", "bfloat16", "float16") and device.startswith("cuda"):
            advice.append("--quantize 8bit or --quantize 4bit (needs bitsandbytes)")
        if not gradient_checkpointing:
            advice.append("--gradient-checkpointing")
        if batch_size > 1:
            advice.append("a smaller --batch-size (with --grad-accum to keep the effective batch)")
        if max_length > 1024:
            advice.append("a smaller --max-length")
        if not device.startswith("cuda"):
            advice.append("a GPU (a 7B-13B base needs one; see the README's 24 GB recipe)")
        advice.append("a smaller base model")
        raise TrainingError(
            "DOES_NOT_FIT",
            f"The base model does not fit this device for training. {summary} Try {', '.join(advice)}. "
            "This is an estimate made before loading; --no-fit-check skips it.",
            EXIT_DOES_NOT_FIT,
        )
    return result
