"""Export: per role, a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors)
that PEFT, vLLM and other servers load, with the shared K/V path folded in exactly:

    A' = [A_role; A_c],  B' = [s · B_role, w_role · s_c · B_c],  rank r + r_c,  lora_alpha = r + r_c

so that (lora_alpha / rank) · B' A' = s · B_role A_role + w_role · s_c · B_c A_c. Every target gets
the same rank r + r_c (a target without one of the two paths gets zeros there), which every LoRA
loader reads. The cross-path projections are not part of any adapter: a LoRA cannot express a
projection fed by another stream.

Folders are written next to their final place and renamed into it, so a failed export leaves the
previous export (or nothing) behind, never half a folder.
"""

import json
import os
import shutil

from peft import LoraConfig
from safetensors.torch import save_file

from .pect import PectConfig, PectModel


def replace_dir(tmp: str, final: str) -> None:
    old = final + ".old"
    if os.path.exists(old):
        shutil.rmtree(old)
    if os.path.exists(final):
        os.replace(final, old)
    os.replace(tmp, final)
    if os.path.exists(old):
        shutil.rmtree(old)


def export_role(model: PectModel, role: str, out_dir: str, base_name: str) -> dict:
    config: PectConfig = model.config
    rank = config.rank + (config.shared_rank if config.has_shared else 0)
    tensors = {}
    targets = set()
    for key, module in model.lora_modules.items():
        a, b = module.folded(role, config)
        tensors[f"base_model.model.{key}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{key}.lora_B.weight"] = b.contiguous()
        targets.add(key.rsplit(".", 1)[1])
    tmp = out_dir + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        lora_config = LoraConfig(
            r=rank,
            lora_alpha=rank,
            lora_dropout=0.0,
            target_modules=sorted(targets),
            bias="none",
            task_type="CAUSAL_LM",
            base_model_name_or_path=base_name,
            inference_mode=True,
        )
        lora_config.save_pretrained(tmp)
        save_file(tensors, os.path.join(tmp, "adapter_model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(tmp, "gpiot_export.json"), "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "role": role,
                    "mode": config.mode,
                    "rank": rank,
                    "role_rank": config.rank,
                    "shared_rank": config.shared_rank if config.has_shared else 0,
                    "shared_weight": config.shared_weight(role) if config.has_shared else 0.0,
                    "cross_projections_dropped": config.has_cross,
                    "targets": sorted(targets),
                },
                handle,
                indent=2,
            )
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"role": role, "dir": os.path.abspath(out_dir), "rank": rank, "targets": sorted(targets), "tensors": len(tensors)}
