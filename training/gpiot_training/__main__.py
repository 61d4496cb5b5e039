"""python -m gpiot_training <command>

train --config FILE        train (and export) as the JSON settings say; `gpiot train` writes FILE
tiny-base OUT [--seed N]   write a tiny random llama + tokenizer (tests, trying the CPU path)
logprobs ...               log-probabilities of a trained run, or of a base + PEFT folder (parity checks)
throughput ...             tokens/s of PECT next to plain LoRA on the same batches (benchmark)
share ...                  trainable share of a PECT / LoRA configuration for a llama shape (computed)
check                      print the versions of the training packages as JSON
"""

import argparse
import json
import os
import sys
import traceback

from .events import EXIT_BAD_INPUT, EXIT_FAILED, TrainingError, emit

DEFAULTS = {
    "mode": "pect",
    "roles": None,
    "rank": 16,
    "alpha": 32.0,
    "targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "dropout": 0.05,
    "shared_rank": 16,
    "shared_alpha": 32.0,
    "shared_targets": ["k_proj", "v_proj"],
    "lam": 0.5,
    "gamma": 0.0,
    "cross_dim": 32,
    "epochs": 3,
    "max_steps": None,
    "batch_size": 4,
    "grad_accum": 1,
    "lr": 2e-4,
    "warmup_ratio": 0.03,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "max_length": 2048,
    "seed": 42,
    "device": "auto",
    "dtype": "auto",
    "quantize": None,
    "attention": "sdpa",
    "gradient_checkpointing": False,
    "save_every": 0,
    "keep_checkpoints": 2,
    "eval_samples": 8,
    "eval_max_tokens": 256,
    "fit_check": True,
    "threads": None,
    "resume": False,
}


def settings_from(config_path: str, resume: bool) -> dict:
    with open(config_path, encoding="utf-8") as handle:
        given = json.load(handle)
    if resume:
        run_file = os.path.join(given["out"], "run.json")
        if not os.path.exists(run_file):
            raise TrainingError(
                "RESUME_NOTHING", f"{given['out']} is not a training run folder (it has no run.json); nothing to resume.", EXIT_BAD_INPUT
            )
        with open(run_file, encoding="utf-8") as handle:
            previous = json.load(handle)
        # A resumed run keeps every setting it started with; only the thread count may change.
        settings = {**DEFAULTS, **{k: v for k, v in previous.items() if k in DEFAULTS or k in ("records", "base", "out", "base_name")}}
        if given.get("threads"):
            settings["threads"] = given["threads"]
        settings["resume"] = True
        return settings
    unknown = sorted(set(given) - set(DEFAULTS) - {"records", "base", "out", "base_name"})
    if unknown:
        raise TrainingError("SETTINGS_INVALID", f"unknown training settings: {', '.join(unknown)}", EXIT_BAD_INPUT)
    for required in ("records", "base", "out"):
        if not given.get(required):
            raise TrainingError("SETTINGS_INVALID", f'the setting "{required}" is required', EXIT_BAD_INPUT)
    settings = {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    settings["records"] = os.path.abspath(settings["records"])
    settings["base"] = os.path.abspath(settings["base"])
    return settings


def command_train(args) -> int:
    from .trainer import Run

    return Run(settings_from(args.config, args.resume)).run()


def command_tiny_base(args) -> int:
    from .tiny import make_tiny_base

    info = make_tiny_base(args.out, seed=args.seed, kv_heads=args.kv_heads)
    emit("tiny_base", **info)
    return 0


def _load_run_model(run_dir: str, device: str = "cpu"):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from .pect import PectConfig, PectModel

    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as handle:
        run = json.load(handle)
    with open(os.path.join(run_dir, "final", "pect_config.json"), encoding="utf-8") as handle:
        pect = PectConfig(**json.load(handle))
    base = AutoModelForCausalLM.from_pretrained(run["base"], dtype=torch.float32, attn_implementation="eager").to(device).eval()
    model = PectModel(base, pect)
    model.load_trainable_state(load_file(os.path.join(run_dir, "final", "trainable.safetensors")))
    model.eval()
    return model, run


def command_logprobs(args) -> int:
    """Log-softmax of the next-token logits after every prefix of --tokens, as float32 safetensors (one tensor per role)."""
    import torch
    from safetensors.torch import save_file

    tokens = json.loads(args.tokens)
    ids = torch.tensor([tokens])
    mask = torch.ones_like(ids)
    results = {}
    with torch.no_grad():
        if args.peft:
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32, attn_implementation="eager").eval()
            model = PeftModel.from_pretrained(base, args.peft).eval()
            results["logprobs"] = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[0].float(), dim=-1)
        else:
            model, _ = _load_run_model(args.run)
            for role in args.role.split(","):
                hidden, _ = model.forward_hidden(ids, mask, [role], cross=args.cross)
                results[role] = torch.log_softmax(model.logits(hidden)[0], dim=-1)
    save_file({name: value.contiguous() for name, value in results.items()}, args.out)
    emit("logprobs", out=args.out, shape=list(next(iter(results.values())).shape), tensors=sorted(results))
    return 0


def command_render(args) -> int:
    """How the trainer renders records: the prompt text and ids, and the ids that carry loss."""
    from transformers import AutoTokenizer

    from .formats import encode_prompt, encode_record, prompt_text
    from .records import read_records

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    records = read_records(args.records)
    for index in args.index or [0]:
        record = records[index]
        text = prompt_text(tokenizer, record)
        encoded = encode_record(tokenizer, record, 1 << 30)
        emit(
            "rendered",
            index=index,
            role=record.role,
            format=record.format,
            prompt_text=text,
            prompt_ids=encode_prompt(tokenizer, text),
            answer_ids=encoded.input_ids[encoded.prompt_length :],
        )
    return 0


def command_throughput(args) -> int:
    from .throughput import measure_throughput

    emit(
        "throughput", **measure_throughput(args.base, args.records, args.steps, args.batch_size, args.max_length, args.gamma, args.threads)
    )
    return 0


def command_share(args) -> int:
    from .pect import PectConfig, count_trainable_for_shape

    results = {}
    for mode in ("pect", "lora"):
        config = PectConfig(
            mode=mode,
            rank=args.rank,
            shared_rank=args.shared_rank,
            gamma=args.gamma if mode == "pect" else 0.0,
            cross_dim=args.cross_dim,
            targets=tuple(args.targets.split(",")),
        )
        results[mode] = count_trainable_for_shape(config, args.hidden, args.layers, args.heads, args.kv_heads, args.ffn, args.vocab)
    emit(
        "share",
        shape={
            "hidden": args.hidden,
            "layers": args.layers,
            "heads": args.heads,
            "kv_heads": args.kv_heads,
            "ffn": args.ffn,
            "vocab": args.vocab,
        },
        **results,
    )
    return 0


def command_check(_args) -> int:
    """Which training packages are installed, without importing them (importing torch takes seconds)."""
    from importlib import metadata, util

    versions = {}
    for name in ("torch", "transformers", "peft", "safetensors", "tokenizers", "numpy"):
        try:
            versions[name] = metadata.version(name) if util.find_spec(name) else None
        except metadata.PackageNotFoundError:
            versions[name] = None
    emit("check", python=sys.version.split()[0], versions=versions)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpiot_training")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train")
    train.add_argument("--config", required=True)
    train.add_argument("--resume", action="store_true")
    train.set_defaults(func=command_train)
    tiny = sub.add_parser("tiny-base")
    tiny.add_argument("out")
    tiny.add_argument("--seed", type=int, default=20250611)
    tiny.add_argument("--kv-heads", type=int, default=2)
    tiny.set_defaults(func=command_tiny_base)
    logprobs = sub.add_parser("logprobs")
    logprobs.add_argument("--run")
    logprobs.add_argument("--role", default="td")
    logprobs.add_argument("--cross", action="store_true")
    logprobs.add_argument("--base")
    logprobs.add_argument("--peft")
    logprobs.add_argument("--tokens", required=True)
    logprobs.add_argument("--out", required=True)
    logprobs.set_defaults(func=command_logprobs)
    render = sub.add_parser("render")
    render.add_argument("--base", required=True)
    render.add_argument("--records", required=True)
    render.add_argument("--index", type=int, action="append")
    render.set_defaults(func=command_render)
    throughput = sub.add_parser("throughput")
    throughput.add_argument("--base", required=True)
    throughput.add_argument("--records", required=True)
    throughput.add_argument("--steps", type=int, default=10)
    throughput.add_argument("--batch-size", type=int, default=4)
    throughput.add_argument("--max-length", type=int, default=1024)
    throughput.add_argument("--gamma", type=float, default=0.5)
    throughput.add_argument("--threads", type=int, default=None)
    throughput.set_defaults(func=command_throughput)
    share = sub.add_parser("share")
    for name, default in (
        ("hidden", 4096),
        ("layers", 32),
        ("heads", 32),
        ("kv-heads", 32),
        ("ffn", 11008),
        ("vocab", 32000),
        ("rank", 16),
        ("shared-rank", 16),
        ("cross-dim", 32),
    ):
        share.add_argument(f"--{name}", type=int, default=default)
    share.add_argument("--gamma", type=float, default=0.5)
    share.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
    share.set_defaults(func=command_share)
    check = sub.add_parser("check")
    check.set_defaults(func=command_check)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TrainingError as error:
        emit("error", code=error.code, message=str(error))
        return error.exit_code
    except KeyboardInterrupt:
        emit("error", code="INTERRUPTED", message="Interrupted.")
        return 130
    except Exception as error:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        emit("error", code="TRAINING_FAILED", message=f"{type(error).__name__}: {error}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
