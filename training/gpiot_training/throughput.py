"""Training throughput of PECT next to plain per-role LoRA, measured in one process on the same
batches, with the variants' steps interleaved so that machine noise hits all of them alike.

Variants: "lora" (per-role paths only), "pect" (shared K/V path, single stream: γ = 0) and
"pect_cross" (shared path + cross projections: every sample runs in both streams). Tokens counted
are the samples' own tokens, so the dual stream's extra work shows as a lower rate.
"""

import random
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .formats import encode_record
from .pect import PectConfig, PectModel
from .records import read_records
from .trainer import Example, collate, interleave


def measure_throughput(
    base: str, records_path: str, steps: int, batch_size: int, max_length: int, gamma: float, threads: int | None
) -> dict:
    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(base)
    records = [r for r in read_records(records_path) if r.split == "train" and r.role in ("td", "cg")]
    by_role: dict[str, list[Example]] = {}
    for record in records:
        encoded = encode_record(tokenizer, record, max_length)
        by_role.setdefault(record.role, []).append(Example(record, encoded.input_ids, encoded.labels))
    order = interleave(by_role, random.Random(0))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    pad = tokenizer.pad_token_id or 0

    variants = {
        "lora": PectConfig(mode="lora", roles=("td", "cg")),
        "pect": PectConfig(mode="pect", gamma=0.0),
        "pect_cross": PectConfig(mode="pect", gamma=gamma),
    }
    models = {}
    optimizers = {}
    for name, config in variants.items():
        torch.manual_seed(0)
        model = PectModel(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).train(), config)
        models[name] = model
        optimizers[name] = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for step in range(steps + 1):
        batch = batches[step % len(batches)]
        ids, mask, labels = collate(batch, pad, torch.device("cpu"))
        roles = [e.record.role for e in batch]
        tokens = sum(len(e.input_ids) for e in batch)
        names = list(variants)
        if step % 2:
            names.reverse()
        for name in names:
            model, optimizer = models[name], optimizers[name]
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss, _, _ = model.loss(ids, mask, labels, roles)
            loss.backward()
            optimizer.step()
            elapsed = time.perf_counter() - started
            if step > 0:  # the first step warms up allocators and kernels
                rates[name].append(tokens / elapsed)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    shares = {name: models[name].parameter_counts()["trainable"] / models[name].parameter_counts()["total"] for name in variants}
    return {
        "tokens_per_s": medians,
        "ratio_pect_vs_lora": medians["pect"] / medians["lora"],
        "ratio_pect_cross_vs_lora": medians["pect_cross"] / medians["lora"],
        "trainable_share": shares,
        "steps": steps,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
    }
