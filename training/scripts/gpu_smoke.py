"""A short real-GPU check of the trainer (about 5 minutes on one H200; stops itself at --budget-s).

1. 7B-shaped random llama in bf16 on the GPU (no download): one training step of plain LoRA, PECT
   (γ = 0) and PECT with cross projections (γ = 0.5) on the same batch, with and without gradient
   checkpointing — tokens/s, step time, peak GPU memory (the 24 GB recipe's numbers).
2. The whole trainer (`python -m gpiot_training train`) on a ~200M-parameter random llama with
   synthetic records: PECT, checkpoints, validation, export — loss first → last, tokens/s, wall time.

Prints one JSON object per figure and a summary; exits 3 when no CUDA GPU is visible to torch.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def step_figures(shape: dict, batch: int, seq: int, budget_end: float) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from gpiot_training.pect import PectConfig, PectModel

    config = LlamaConfig(**shape, max_position_embeddings=4096)
    ids = torch.randint(0, shape["vocab_size"], (batch, seq), device="cuda")
    mask = torch.ones_like(ids)
    roles = ["td", "cg"] * (batch // 2)
    for checkpointing in (True, False):
        for name, pect in (
            ("lora", PectConfig(mode="lora")),
            ("pect", PectConfig(mode="pect", gamma=0.0)),
            ("pect_cross", PectConfig(mode="pect", gamma=0.5)),
        ):
            if time.time() > budget_end:
                say(stage="7b_step", skipped="time budget")
                return
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            with torch.device("cuda"):
                base = LlamaForCausalLM(config).to(torch.bfloat16)
            base.config.use_cache = False
            if checkpointing:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                base.enable_input_require_grads()
            model = PectModel(base, pect)
            optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
            times = []
            for _ in range(3):
                torch.cuda.synchronize()
                started = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                # As the trainer runs it: bf16 base weights, fp32 LoRA paths, no autocast.
                loss, _, _ = model.loss(ids, mask, ids.clone(), roles)
                loss.backward()
                optimizer.step()
                torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
            counts = model.parameter_counts()
            step = min(times[1:])
            say(
                stage="7b_step",
                variant=name,
                gradient_checkpointing=checkpointing,
                batch=batch,
                seq=seq,
                step_s=round(step, 3),
                tokens_per_s=round(batch * seq / step),
                peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                trainable_share=round(counts["trainable"] / counts["total"], 5),
            )
            del model, base, optimizer
            torch.cuda.empty_cache()


def synthetic_records(path: str, count: int) -> None:
    import hashlib

    sensors = ["ECG", "IMU", "WiFi CSI", "radar", "PPG", "microphone"]
    lines = []
    for i in range(count):
        sensor = sensors[i % len(sensors)]
        split = "test" if i % 10 == 9 else ("validation" if i % 10 == 8 else "train")
        for role in ("td", "cg"):
            if role == "td":
                user = f"Requirement: detect events in {sensor} data, case {i}.\nAnswer as JSON."
                answer = json.dumps(
                    {
                        "subTasks": [
                            {"name": f"Load {sensor}", "problem": "Read the samples.", "steps": ["Read", "Scale"]},
                            {"name": "Detect", "problem": "Find events.", "steps": ["Filter", "Threshold"]},
                        ]
                    }
                )
            else:
                user = f"**Target**\nWrite some code and documentation to detect events in {sensor} data, case {i}."
                answer = json.dumps(
                    {
                        "code": "import numpy as np\n\ndef run(signal):\n    return {'events': np.flatnonzero(np.asarray(signal) > 0)}\n",
                        "documentation": "Thresholds the signal.",
                        "requirements": ["numpy"],
                    }
                )
            messages = [
                {"role": "system", "content": f"You are the {role.upper()} model."},
                {"role": "user", "content": user},
                {"role": "assistant", "content": answer},
            ]
            record_id = hashlib.sha256((role + json.dumps(messages)).encode()).hexdigest()
            lines.append(
                json.dumps(
                    {
                        "id": record_id,
                        "role": role,
                        "messages": messages,
                        "format": "json",
                        "source": {"kind": "synthetic"},
                        "augmentation": None,
                        "split": split,
                    }
                )
            )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def trainer_run(work: str, budget_end: float) -> None:
    from gpiot_training.tiny import make_tiny_base

    if time.time() > budget_end - 120:
        say(stage="trainer", skipped="time budget")
        return
    base = os.path.join(work, "base")
    started = time.time()
    make_tiny_base(base, hidden=1024, layers=12, heads=16, kv_heads=8, ffn=2816)
    records = os.path.join(work, "records.jsonl")
    synthetic_records(records, 200)
    out = os.path.join(work, "run")
    config = os.path.join(work, "config.json")
    with open(config, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "records": records,
                "base": base,
                "out": out,
                "mode": "pect",
                "gamma": 0.0,
                "epochs": 2,
                "batch_size": 8,
                "lr": 3e-4,
                "max_length": 1024,
                "save_every": 20,
                "eval_samples": 4,
                "eval_max_tokens": 64,
                "device": "cuda",
            },
            handle,
        )
    remaining = max(60, int(budget_end - time.time()))
    process = subprocess.run(
        [sys.executable, "-m", "gpiot_training", "train", "--config", config],
        cwd=os.path.dirname(HERE),
        capture_output=True,
        text=True,
        timeout=remaining,
    )
    events = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    steps = [e for e in events if e["event"] == "step"]
    validations = [e for e in events if e["event"] == "validation"]
    start = next((e for e in events if e["event"] == "start"), {})
    say(
        stage="trainer",
        exit_code=process.returncode,
        error=next((e["message"] for e in events if e["event"] == "error"), None),
        parameters=start.get("parameters"),
        trainable_share=start.get("trainable_share"),
        steps=len(steps),
        loss_first=steps[0]["loss"] if steps else None,
        loss_last=steps[-1]["loss"] if steps else None,
        validation=[round(v["loss"], 4) for v in validations],
        median_tokens_per_s=sorted(s["tokens_per_s"] for s in steps)[len(steps) // 2] if steps else None,
        exported=[e["dir"] for e in events if e["event"] == "exported"],
        wall_s=round(time.time() - started, 1),
        stderr_tail=process.stderr[-600:] if process.returncode else "",
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=420)
    args = parser.parse_args()
    budget_end = time.time() + args.budget_s
    try:
        import torch
        import transformers
    except ImportError as error:
        say(stage="setup", error=f"{error}: install training/requirements.txt (CUDA build of torch)")
        return 3
    if not torch.cuda.is_available():
        say(stage="setup", error="torch sees no CUDA GPU", torch=torch.__version__)
        return 3
    say(
        stage="setup",
        gpu=torch.cuda.get_device_name(0),
        torch=torch.__version__,
        transformers=transformers.__version__,
        cuda=torch.version.cuda,
        free_gib=round(torch.cuda.mem_get_info()[0] / 2**30, 1),
    )
    seven_b = {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
    }
    step_figures(seven_b, batch=4, seq=1024, budget_end=budget_end - 150)
    with tempfile.TemporaryDirectory() as work:
        trainer_run(work, budget_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
