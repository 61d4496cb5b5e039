"""The training run: records -> batches -> per-role LoRA or PECT -> checkpoints -> exported adapters.

A run lives in one folder:
  run.json                    the settings (written first; `--resume` reads it back)
  metrics.jsonl               one line per optimizer step and per validation
  checkpoints/step-NNNNNN/    trainable weights, optimizer, scheduler, RNG states, position
  final/                      the trained state (trainable.safetensors + pect_config.json)
  peft/<role>/                the exported PEFT adapters
  eval/generations.json       greedy answers on held-out records, without any grammar
"""

import hashlib
import json
import math
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .events import EXIT_BAD_INPUT, EXIT_INTERRUPTED, TrainingError, emit, warn
from .export import export_role, replace_dir
from .fit import check_fit, read_shape
from .formats import encode_prompt, encode_record, prompt_text
from .pect import PectConfig, PectModel, count_trainable_for_shape
from .records import Record, check_roles, read_records

STEP_DIR = "step-{:06d}"


@dataclass
class Example:
    record: Record
    input_ids: list[int]
    labels: list[int]

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != -100)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def interleave(by_role: dict[str, list[Example]], rng: random.Random) -> list[Example]:
    """All examples in a seeded order where every role is spread evenly, so batches mix roles."""
    queues = {}
    for role, examples in by_role.items():
        order = list(examples)
        rng.shuffle(order)
        queues[role] = order
    taken = {role: 0 for role in queues}
    out: list[Example] = []
    total = sum(len(q) for q in queues.values())
    while len(out) < total:
        role = min((r for r in queues if taken[r] < len(queues[r])), key=lambda r: ((taken[r] + 0.5) / len(queues[r]), r))
        out.append(queues[role][taken[role]])
        taken[role] += 1
    return out


def collate(examples: list[Example], pad_id: int, device: torch.device):
    length = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return ids.to(device), mask.to(device), labels.to(device)


class Interrupt:
    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        def handler(signum, frame):  # noqa: ARG001
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def resolve_device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(
            "NO_GPU", "--device cuda was given but PyTorch sees no CUDA GPU (is the CUDA build of torch installed?).", EXIT_BAD_INPUT
        )
    return setting


def weight_dtype_for(settings: dict, device: str) -> tuple[str, torch.dtype, int]:
    """(storage name, compute dtype, compute bytes)."""
    if settings.get("quantize") == "8bit":
        return "int8", torch.float16, 2
    if settings.get("quantize") == "4bit":
        return "nf4", torch.bfloat16, 2
    dtype = settings.get("dtype", "auto")
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return dtype, torch_dtype, 4 if dtype == "float32" else 2


class Run:
    def __init__(self, settings: dict):
        self.settings = settings
        self.out = os.path.abspath(settings["out"])
        self.interrupt = Interrupt()

    # ---- setup ----

    def pect_config(self, roles: tuple[str, ...]) -> PectConfig:
        s = self.settings
        try:
            return PectConfig(
                mode=s["mode"],
                roles=roles,
                rank=s["rank"],
                alpha=s["alpha"],
                targets=tuple(s["targets"]),
                dropout=s["dropout"],
                shared_rank=s["shared_rank"],
                shared_alpha=s["shared_alpha"],
                shared_targets=tuple(s["shared_targets"]),
                lam=s["lam"],
                gamma=s["gamma"],
                cross_dim=s["cross_dim"],
            )
        except ValueError as error:
            raise TrainingError("SETTINGS_INVALID", str(error), EXIT_BAD_INPUT) from error

    def load_records(self) -> tuple[list[Record], tuple[str, ...]]:
        s = self.settings
        records = read_records(s["records"])
        if s.get("roles"):
            roles = tuple(s["roles"])
        elif s["mode"] == "pect":
            roles = ("td", "cg")
        else:
            roles = tuple(role for role in ("td", "rt", "cg") if any(r.role == role for r in records))
        check_roles(records, roles, s["records"])
        return records, roles

    def check_disk(self, needed: int, where: str, what: str) -> None:
        os.makedirs(where, exist_ok=True)
        override = os.environ.get("GPIOT_TRAIN_DISK_FREE_BYTES")
        free = int(override) if override else shutil.disk_usage(where).free
        if free < needed:
            raise TrainingError(
                "NO_SPACE",
                f"No space left for {what} in {where}: it needs about {needed / 2**20:.1f} MiB and {free / 2**20:.1f} MiB are free. "
                "Free some space (or train into a folder on another disk) and run again; a stopped run continues with gpiot train --resume.",
            )

    def load_model(self, device: str, roles: tuple[str, ...]):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        s = self.settings
        storage, compute_dtype, _ = weight_dtype_for(s, device)
        kwargs = {"dtype": compute_dtype, "attn_implementation": s.get("attention", "sdpa")}
        if s.get("quantize") in ("8bit", "4bit"):
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig
            except ImportError as error:
                raise TrainingError(
                    "NO_BITSANDBYTES",
                    f"--quantize {s['quantize']} needs the bitsandbytes package (pip install bitsandbytes) and a CUDA GPU.",
                    EXIT_BAD_INPUT,
                ) from error
            if s["quantize"] == "8bit":
                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
            else:
                kwargs["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype
                )
        if device.startswith("cuda"):
            kwargs["device_map"] = {"": device}
        try:
            tokenizer = AutoTokenizer.from_pretrained(s["base"])
            model = AutoModelForCausalLM.from_pretrained(s["base"], **kwargs)
        except OSError as error:
            raise TrainingError("BASE_INVALID", f"Cannot load the base model from {s['base']}: {error}", 5) from error
        if not device.startswith("cuda"):
            model.to(device)
        model.config.use_cache = False
        if s.get("gradient_checkpointing"):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        model.eval()
        return tokenizer, model, storage

    def encode(self, tokenizer, records: list[Record]) -> dict[str, dict[str, list[Example]]]:
        splits: dict[str, dict[str, list[Example]]] = {"train": {}, "validation": {}, "test": {}}
        truncated = dropped = 0
        for record in records:
            encoded = encode_record(tokenizer, record, self.settings["max_length"])
            if encoded.truncated:
                truncated += 1
            if all(label == -100 for label in encoded.labels):
                dropped += 1
                continue
            splits[record.split].setdefault(record.role, []).append(Example(record, encoded.input_ids, encoded.labels))
        if truncated:
            warn(
                f"{truncated} record(s) are longer than --max-length {self.settings['max_length']} tokens and were cut; {dropped} of them lost their whole answer and are left out."
            )
        return splits

    # ---- checkpoints ----

    def checkpoint_bytes(self, model: PectModel) -> int:
        return sum(p.numel() for p in model.trainable_parameters()) * 4 * 3 + (1 << 20)

    def save_checkpoint(self, model: PectModel, optimizer, scheduler, step: int, epoch_rng_state: dict) -> str:
        root = os.path.join(self.out, "checkpoints")
        self.check_disk(self.checkpoint_bytes(model), root, "checkpoints")
        final = os.path.join(root, STEP_DIR.format(step))
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.makedirs(tmp)
            save_file(model.trainable_state(), os.path.join(tmp, "trainable.safetensors"))
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "python_rng": random.getstate(),
                    "numpy_rng": np.random.get_state(),
                },
                os.path.join(tmp, "optimizer.pt"),
            )
            with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as handle:
                json.dump({"step": step, **epoch_rng_state}, handle)
            replace_dir(tmp, final)
        except OSError as error:
            shutil.rmtree(tmp, ignore_errors=True)
            raise TrainingError(
                "CHECKPOINT_WRITE_FAILED",
                f"Could not write the checkpoint of step {step} into {root}: {error.strerror or error}. Nothing half-written was kept; "
                "free some space and continue with gpiot train --resume.",
            ) from error
        keep = max(1, int(self.settings.get("keep_checkpoints", 2)))
        existing = sorted(name for name in os.listdir(root) if name.startswith("step-") and not name.endswith((".tmp", ".old")))
        for name in existing[:-keep]:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        emit("checkpoint", step=step, path=final)
        return final

    def latest_checkpoint(self) -> str | None:
        root = os.path.join(self.out, "checkpoints")
        if not os.path.isdir(root):
            return None
        names = sorted(name for name in os.listdir(root) if name.startswith("step-") and not name.endswith((".tmp", ".old")))
        return os.path.join(root, names[-1]) if names else None

    # ---- evaluation ----

    @torch.no_grad()
    def validate(self, model: PectModel, examples: dict[str, list[Example]], pad_id: int, device, cross: bool | None) -> dict:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        batch_size = self.settings["batch_size"]
        for role, items in examples.items():
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                ids, mask, labels = collate(batch, pad_id, device)
                _, per_sample, per_count = model.loss(ids, mask, labels, [e.record.role for e in batch], cross=cross)
                sums[role] = sums.get(role, 0.0) + float(per_sample.sum())
                counts[role] = counts.get(role, 0) + int(per_count.sum())
        total_tokens = sum(counts.values())
        return {
            "loss": sum(sums.values()) / max(1, total_tokens),
            "role_loss": {role: sums[role] / max(1, counts[role]) for role in sums},
            "tokens": total_tokens,
        }

    @torch.no_grad()
    def generate(self, model: PectModel, tokenizer, record: Record, device, cross: bool, max_new_tokens: int) -> str:
        prompt_ids = encode_prompt(tokenizer, prompt_text(tokenizer, record))
        stop = {tokenizer.eos_token_id}
        for token in ("</s>", "<|im_end|>", "<|eot_id|>"):
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
                stop.add(token_id)
        ids = torch.tensor([prompt_ids], device=device)
        mask = torch.ones_like(ids)
        from transformers import DynamicCache

        cache = DynamicCache()
        out_ids: list[int] = []
        hidden, _ = model.forward_hidden(ids, mask, [record.role], cross=cross, past_key_values=cache, use_cache=True)
        for _ in range(max_new_tokens):
            token = int(model.logits(hidden[:, -1]).argmax(dim=-1)[0])
            if token in stop:
                break
            out_ids.append(token)
            mask = torch.cat([mask, torch.ones((1, 1), dtype=mask.dtype, device=device)], dim=1)
            hidden, _ = model.forward_hidden(
                torch.tensor([[token]], device=device), mask, [record.role], cross=cross, past_key_values=cache, use_cache=True
            )
        return tokenizer.decode(out_ids, skip_special_tokens=False)

    # ---- the run ----

    def run(self) -> int:
        s = self.settings
        self.interrupt.install()
        if s.get("threads"):
            torch.set_num_threads(int(s["threads"]))
        records_sha = file_sha256(s["records"]) if os.path.exists(s["records"]) else None
        records, roles = self.load_records()
        pect = self.pect_config(roles)
        device = resolve_device(s.get("device", "auto"))
        shape = read_shape(s["base"])
        storage, _, compute_bytes = weight_dtype_for(s, device)

        formats = {role: next(r.format for r in records if r.role == role) for role in roles}
        run_file = os.path.join(self.out, "run.json")
        if s.get("resume"):
            with open(run_file, encoding="utf-8") as handle:
                previous = json.load(handle)
            if previous.get("records_sha256") and records_sha != previous["records_sha256"]:
                raise TrainingError(
                    "RESUME_MISMATCH",
                    f"The records file {s['records']} changed since this run started; a resumed run must train on the same records. Start a new run instead.",
                    EXIT_BAD_INPUT,
                )
        os.makedirs(self.out, exist_ok=True)

        if s.get("fit_check", True):
            fit = check_fit(
                shape,
                pect,
                device,
                storage,
                compute_bytes,
                s["batch_size"],
                s["max_length"],
                bool(s.get("gradient_checkpointing")),
                s.get("attention", "sdpa"),
            )
            emit(
                "fit",
                fits=True,
                summary=fit["summary"],
                needed_bytes=fit["needed_bytes"],
                free_bytes=fit["free_bytes"],
                device=fit["device"],
            )

        # Checkpoints (weights + AdamW state, two kept) and the exported adapters must fit on disk:
        # checked from the model's shape, before hours are spent loading and training it.
        shape_counts = count_trainable_for_shape(
            pect, shape.hidden, shape.layers, shape.heads, shape.kv_heads, shape.ffn, shape.vocab, shape.tied
        )
        needed = 2 * (shape_counts["trainable"] * 4 * 3 + (1 << 20)) + shape_counts["per_role_export"] * 4 * len(roles)
        self.check_disk(needed, self.out, "checkpoints and the exported adapters")

        seed_everything(s["seed"])
        tokenizer, base_model, storage = self.load_model(device, roles)
        model = PectModel(base_model, pect)
        counts = model.parameter_counts()

        splits = self.encode(tokenizer, records)
        train_by_role = splits["train"]
        for role in roles:
            if role not in train_by_role:
                raise TrainingError(
                    "RECORDS_EMPTY",
                    f'No training record for role "{role}" is left after tokenization (all answers cut by --max-length?).',
                    EXIT_BAD_INPUT,
                )
        n_train = sum(len(v) for v in train_by_role.values())
        batch_size, accum = s["batch_size"], s["grad_accum"]
        batches_per_epoch = math.ceil(n_train / batch_size)
        steps_per_epoch = math.ceil(batches_per_epoch / accum)
        # --max-steps may end the run inside an epoch or run past --epochs (more passes over the data).
        total_steps = int(s.get("max_steps") or steps_per_epoch * s["epochs"])
        epochs = math.ceil(total_steps / steps_per_epoch)
        if not splits["validation"]:
            warn('No "validation" records: validation loss per epoch is not measured.')

        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=s["lr"], weight_decay=s["weight_decay"], betas=(0.9, 0.999))
        warmup = int(round(s["warmup_ratio"] * total_steps))

        def lr_lambda(step: int) -> float:
            if step < warmup:
                return (step + 1) / max(1, warmup)
            progress = (step - warmup) / max(1, total_steps - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
        start_step = 0
        metrics_path = os.path.join(self.out, "metrics.jsonl")
        if s.get("resume"):
            checkpoint = self.latest_checkpoint()
            if checkpoint is None:
                warn("No checkpoint in this run yet: starting it from the beginning.")
            else:
                model.load_trainable_state(load_file(os.path.join(checkpoint, "trainable.safetensors")))
                state = torch.load(os.path.join(checkpoint, "optimizer.pt"), weights_only=False)
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                torch.set_rng_state(state["torch_rng"])
                if state["cuda_rng"] and torch.cuda.is_available():
                    torch.cuda.set_rng_state_all(state["cuda_rng"])
                random.setstate(state["python_rng"])
                np.random.set_state(state["numpy_rng"])
                with open(os.path.join(checkpoint, "state.json"), encoding="utf-8") as handle:
                    start_step = json.load(handle)["step"]
                emit("resumed", step=start_step, checkpoint=checkpoint)
            if os.path.exists(metrics_path):
                with open(metrics_path, encoding="utf-8") as handle:
                    kept = [line for line in handle if line.strip() and json.loads(line).get("step", 0) <= start_step]
                with open(metrics_path, "w", encoding="utf-8") as handle:
                    handle.writelines(kept)
        else:
            for name in ("metrics.jsonl",):
                if os.path.exists(os.path.join(self.out, name)):
                    os.remove(os.path.join(self.out, name))
        with open(run_file + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(
                {
                    **s,
                    "resume": False,
                    "records_sha256": records_sha,
                    "roles": list(roles),
                    "formats": formats,
                    "pect": pect.to_json(),
                    "total_steps": total_steps,
                },
                handle,
                indent=2,
            )
        os.replace(run_file + ".tmp", run_file)

        share = counts["trainable"] / counts["total"]
        emit(
            "start",
            mode=pect.mode,
            roles=list(roles),
            device=device,
            weights=storage,
            parameters=counts,
            trainable_share=share,
            steps=total_steps,
            start_step=start_step,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            train_records={role: len(v) for role, v in train_by_role.items()},
            validation_records={role: len(v) for role, v in splits["validation"].items()},
            test_records={role: len(v) for role, v in splits["test"].items()},
            formats=formats,
            pect=pect.to_json(),
            seed=s["seed"],
        )

        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        torch_device = torch.device(device)
        metrics = open(metrics_path, "a", encoding="utf-8")
        step = start_step
        step_times: list[float] = []
        last_saved = start_step
        save_every = int(s.get("save_every") or 0)

        def epoch_order(epoch: int) -> list[Example]:
            return interleave(train_by_role, random.Random(s["seed"] * 1000 + epoch))

        def run_validation(epoch: int) -> None:
            if not splits["validation"]:
                return
            model.eval()
            result = self.validate(model, splits["validation"], pad_id, torch_device, cross=None)
            record = {"event": "validation", "epoch": epoch, "step": step, **result}
            if pect.has_cross:
                without = self.validate(model, splits["validation"], pad_id, torch_device, cross=False)
                record["loss_without_cross"] = without["loss"]
                record["role_loss_without_cross"] = without["role_loss"]
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            emit(**record)

        try:
            while step < total_steps:
                epoch = step // steps_per_epoch
                order = epoch_order(epoch)
                first_batch = (step - epoch * steps_per_epoch) * accum
                batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
                model.train()
                for group_start in range(first_batch, len(batches), accum):
                    group = batches[group_start : group_start + accum]
                    started = time.perf_counter()
                    step_tokens = sum(e.answer_tokens for batch in group for e in batch)
                    seen_tokens = sum(len(e.input_ids) for batch in group for e in batch)
                    optimizer.zero_grad(set_to_none=True)
                    role_sums: dict[str, float] = {}
                    role_counts: dict[str, int] = {}
                    total = 0.0
                    for batch in group:
                        ids, mask, labels = collate(batch, pad_id, torch_device)
                        sample_roles = [e.record.role for e in batch]
                        loss, per_sample, per_count = self._backward(model, ids, mask, labels, sample_roles, step_tokens)
                        total += loss
                        for role, value, count in zip(sample_roles, per_sample.tolist(), per_count.tolist(), strict=True):
                            role_sums[role] = role_sums.get(role, 0.0) + value
                            role_counts[role] = role_counts.get(role, 0) + count
                    grad_norm = torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), s["max_grad_norm"])
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    elapsed = time.perf_counter() - started
                    step_times.append(elapsed)
                    recent = step_times[-20:]
                    mean_time = sum(recent) / len(recent)
                    record = {
                        "event": "step",
                        "step": step,
                        "steps": total_steps,
                        "epoch": epoch + 1,
                        "loss": total,
                        "role_loss": {role: role_sums[role] / max(1, role_counts[role]) for role in role_sums},
                        "lr": scheduler.get_last_lr()[0],
                        "grad_norm": float(grad_norm),
                        "tokens": seen_tokens,
                        "tokens_per_s": seen_tokens / elapsed if elapsed > 0 else 0.0,
                        "eta_s": mean_time * (total_steps - step),
                        "step_s": elapsed,
                    }
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    emit(**record)
                    if step % steps_per_epoch == 0 or step == total_steps:
                        run_validation(epoch + 1)
                    if self.interrupt.requested:
                        self.save_checkpoint(model, optimizer, scheduler, step, {})
                        emit("interrupted", step=step, message=f"Stopped after step {step}; continue with gpiot train --resume {self.out}")
                        return EXIT_INTERRUPTED
                    if (save_every and step % save_every == 0) or step % steps_per_epoch == 0:
                        if step != total_steps:
                            self.save_checkpoint(model, optimizer, scheduler, step, {})
                            last_saved = step
                    if step >= total_steps:
                        break
            if last_saved != step:
                self.save_checkpoint(model, optimizer, scheduler, step, {})
        finally:
            metrics.close()

        self.finish(model, tokenizer, splits, torch_device, pect)
        return 0

    def _backward(self, model: PectModel, ids, mask, labels, sample_roles, step_tokens: int):
        """Backward pass of one micro-batch, scaled so the optimizer step sees the mean over all its answer tokens."""
        _, per_sample, per_count = (tensor for tensor in model.loss(ids, mask, labels, sample_roles, keep_graph=True))
        loss = per_sample.sum() / max(1, step_tokens)
        loss.backward()
        return float(loss.detach()), per_sample.detach(), per_count

    def finish(self, model: PectModel, tokenizer, splits, device, pect: PectConfig) -> None:
        s = self.settings
        final = os.path.join(self.out, "final")
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        save_file(model.trainable_state(), os.path.join(tmp, "trainable.safetensors"))
        with open(os.path.join(tmp, "pect_config.json"), "w", encoding="utf-8") as handle:
            json.dump(pect.to_json(), handle, indent=2)
        replace_dir(tmp, final)

        exports = []
        for role in pect.roles:
            exports.append(export_role(model, role, os.path.join(self.out, "peft", role), s.get("base_name") or s["base"]))
            emit("exported", **exports[-1])

        held_out = splits["test"] or splits["validation"]
        split_name = "test" if splits["test"] else "validation"
        generations = []
        limit = int(s.get("eval_samples", 8))
        if limit > 0 and held_out:
            model.eval()
            variants = [("exported", False)] + ([("with_cross", True)] if pect.has_cross else [])
            for role, items in held_out.items():
                for example in items[:limit]:
                    for variant, cross in variants:
                        text = self.generate(model, tokenizer, example.record, device, cross, int(s.get("eval_max_tokens", 256)))
                        generations.append(
                            {
                                "id": example.record.id,
                                "role": role,
                                "format": example.record.format,
                                "variant": variant,
                                "reference": example.record.answer,
                                "text": text,
                            }
                        )
                emit("generated", role=role, samples=min(limit, len(items)), split=split_name)
        os.makedirs(os.path.join(self.out, "eval"), exist_ok=True)
        path = os.path.join(self.out, "eval", "generations.json")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump({"split": split_name, "generations": generations}, handle, indent=1)
        os.replace(path + ".tmp", path)
        emit("done", out=self.out, exports=exports, generations=path, split=split_name)
