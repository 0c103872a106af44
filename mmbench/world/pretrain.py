"""Supervised pre-training of the world's tiny LLaVA on (image, prompt, response) examples.

Recipe from reference/world-notes.md: loss on answer tokens only, averaged PER EXAMPLE first (a
one-word yes/no weighs as much as a caption), AdamW with a higher learning rate for the vision
tower and projector, question-before-image chat template (tinyllava.py).  Batches are built with
the same `HFVisionLanguageModel.encode_completions` the eval harness and trainers use, so the
model is trained on exactly the prompts it is later asked.

Runs are seeded (weights and data order) and resumable: every `checkpoint_every` steps the model,
optimizer and step go to a hidden state folder next to `out_dir`; rerunning the same call continues
from there.  The finished model is written to a temporary folder and renamed to `out_dir`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mmbench.errors import MmbenchError
from mmbench.world.pretrain_step import _batch_indices, _train_step

# Fields a resumed run may change without invalidating its checkpoint.
_RESUMABLE_CHANGES = {"steps", "log_every", "checkpoint_every", "threads", "device"}


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 3000
    seed: int = 0
    batch_size: int = 32
    lr: float = 1e-3  # language model
    vision_lr: float = 2e-3  # vision tower + projector: they lag behind at the LM's rate
    weight_decay: float = 0.0
    warmup_steps: int = 50  # linear warm-up, then constant
    grad_clip: float = 1.0
    log_every: int = 25
    checkpoint_every: int = 200
    threads: int = 0  # torch CPU threads; 0 = every core
    device: str = "cpu"  # training stays float32 wherever it runs
    init_from: str | None = None  # continue from a saved model folder instead of a fresh model
    aux_loss: dict = field(default_factory=dict)  # describes the `aux` passed in (checked on resume)
    model: dict = field(default_factory=dict)  # build_tiny_llava options for a fresh model
    # Run each batch as this many micro-batches of examples of similar length: the same gradient
    # up to float rounding, with less padding (a batch of 32 world examples is 38% padding).
    length_chunks: int = 1


@dataclass(frozen=True)
class PretrainResult:
    out_dir: Path
    steps: int
    final_loss: float  # mean of the last logging window
    steps_per_s: float  # over the steps run in this call
    resumed_from: int  # 0 for a fresh run


def pretrain(examples: Sequence | Iterable, out_dir: str | Path, config: PretrainConfig | None = None, *,
             extra_words: Iterable[str] = (), progress: bool = True, overwrite: bool = False,
             aux=None, **overrides: Any) -> PretrainResult:
    """Train on `examples` — (PIL image or None, prompt, response) — and save to `out_dir`.

    `overrides` are PretrainConfig fields (`steps=`, `seed=`, ...).  `extra_words` join the
    tokenizer's vocabulary when a fresh model is built (e.g. words only benchmark prompts use).
    `aux`, if given, adds an auxiliary loss: `aux.head` (a module trained at the vision lr, saved
    with the resume state, not with the model) and `aux(outputs, inputs, indices, batch)` -> loss
    tensor, where `indices` are the examples of this forward pass (a micro-batch when
    `length_chunks` > 1) and `batch` all of the step's: it weighs its loss by its share of the batch.
    """
    import torch

    cfg = replace(config or PretrainConfig(), **overrides)
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.length_chunks < 1:
        raise MmbenchError("steps, batch_size and length_chunks must be positive")
    out_dir = Path(out_dir)
    state_dir = out_dir.parent / f".{out_dir.name}.pretrain"
    if out_dir.exists() and not state_dir.exists() and not overwrite:
        done = _finished_result(out_dir, cfg)
        if done is not None:
            return done  # the same run already finished: rerunning is a no-op
        raise MmbenchError(f"{out_dir} already exists; pass overwrite to replace it or choose another folder")
    examples = examples if isinstance(examples, Sequence) else list(examples)
    if not examples:
        raise MmbenchError("no training examples")
    data = [_unpack(ex) for ex in examples] if not isinstance(examples[0], tuple) else examples
    fingerprint = _fingerprint(data)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    # Once the loss is small, gradients and Adam moments underflow into denormal floats, which
    # this CPU handles in microcode: steps then slow down by up to 2x.  Flushing them to zero
    # costs nothing in accuracy at these magnitudes.
    torch.set_flush_denormal(True)

    lm, state = _resume(state_dir, cfg, fingerprint)
    if lm is None:
        lm = _fresh_model(cfg, data, extra_words)
    model = lm.model
    model.to(cfg.device).float().train()
    _freeze_unused(model)
    if aux is not None:
        aux.head.to(cfg.device)
    optimizer = _optimizer(model, cfg, aux)
    start = 0
    if state is not None:
        if aux is not None:
            aux.head.load_state_dict(state["aux"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start = state["step"]
    log_path = state_dir / "log.jsonl"
    _truncate_log(log_path, start)

    completion_cache: dict[int, list[int]] = {}
    window: list[tuple[float, float]] = []
    last_loss = float("nan")
    t0 = time.perf_counter()
    with _Progress(progress, cfg.steps, start) as bar:
        for step in range(start, cfg.steps):
            _set_lr(optimizer, cfg, step)
            idx = _batch_indices(len(data), cfg.batch_size, cfg.seed, step)
            window.append(_train_step(lm, optimizer, [data[i] for i in idx], idx, completion_cache,
                                      cfg.grad_clip, aux, cfg.length_chunks))
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                last_loss = sum(w[0] for w in window) / len(window)
                rate = (done - start) / (time.perf_counter() - t0)
                record = {"step": done, "loss": round(last_loss, 5), "lr": optimizer.param_groups[0]["lr"],
                          "steps_per_s": round(rate, 3)}
                if aux is not None:  # the answer loss alone is `loss - aux`
                    record["aux"] = round(sum(w[1] for w in window) / len(window), 5)
                _append_log(log_path, record)
                window.clear()
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                _save_state(state_dir, lm, optimizer, done, cfg, fingerprint, aux)
            bar.advance(last_loss)
    rate = (cfg.steps - start) / max(time.perf_counter() - t0, 1e-9)
    _finish(lm, out_dir, state_dir, cfg)
    return PretrainResult(out_dir, cfg.steps, last_loss, rate, start)


# ---- model and optimiser --------------------------------------------------------------------
def _fresh_model(cfg: PretrainConfig, data, extra_words):
    from mmbench.harness.model import HFVisionLanguageModel, load_model
    from mmbench.world.tinyllava import build_tiny_llava, train_tokenizer

    if cfg.init_from:
        return load_model(cfg.init_from, dtype="float32", device=cfg.device)
    texts = (text for _, prompt, response in data for text in (prompt, response))
    tokenizer = train_tokenizer(texts, extra_words)
    model, processor = build_tiny_llava(tokenizer, seed=cfg.seed, **cfg.model)
    return HFVisionLanguageModel(model, processor, name="tiny-llava")


def _freeze_unused(model) -> None:
    """Freeze what LLaVA never reads, so every trainable parameter really trains.

    LLaVA takes one hidden layer of the vision tower, never its pooled output: the post-layernorm
    and every layer after `vision_feature_layer` get no gradient.  A key-projection bias adds the
    same amount to every attention logit of a query, which softmax cancels: its true gradient is
    zero, and Adam would only amplify rounding noise into thread-count-dependent updates.
    """
    tower = model.model.vision_tower
    vision = getattr(tower, "vision_model", tower)
    for p in getattr(vision, "post_layernorm", _Empty()).parameters():
        p.requires_grad_(False)
    for name, p in model.named_parameters():
        if name.endswith("k_proj.bias"):
            p.requires_grad_(False)
    layer = model.config.vision_feature_layer
    layers = vision.encoder.layers
    if isinstance(layer, int) and layer != -1:
        keep = layer % (len(layers) + 1)  # hidden_states[0] is the embedding output
        for block in layers[keep:]:
            for p in block.parameters():
                p.requires_grad_(False)


class _Empty:
    def parameters(self):
        return []


def _optimizer(model, cfg: PretrainConfig, aux=None):
    import torch

    vision, text = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (vision if "vision_tower" in name or "multi_modal_projector" in name else text).append(p)
    groups = [{"params": text, "lr": cfg.lr, "base_lr": cfg.lr},
              {"params": vision, "lr": cfg.vision_lr, "base_lr": cfg.vision_lr}]
    if aux is not None:
        groups.append({"params": list(aux.head.parameters()), "lr": cfg.vision_lr, "base_lr": cfg.vision_lr})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _set_lr(optimizer, cfg: PretrainConfig, step: int) -> None:
    scale = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * scale


# ---- data -----------------------------------------------------------------------------------
def _unpack(example) -> tuple:
    """Accept (image, prompt, response) tuples, dicts or objects with those attribute names."""
    if isinstance(example, (tuple, list)) and len(example) == 3:
        return tuple(example)
    if isinstance(example, dict):
        return example.get("image"), example["prompt"], example["response"]
    return getattr(example, "image", None), example.prompt, example.response


def _fingerprint(data) -> str:
    """Cheap identity of the training set (size + a sample of texts and pixels) for resume checks."""
    h = hashlib.sha256(str(len(data)).encode())
    for i in range(0, len(data), max(1, len(data) // 64)):
        image, prompt, response = data[i]
        h.update(f"{prompt}\x00{response}\x00".encode())
        if image is not None and hasattr(image, "tobytes"):
            h.update(image.tobytes())
    return h.hexdigest()[:16]


# ---- state, logs and the final folder -------------------------------------------------------
def _save_state(state_dir: Path, lm, optimizer, step: int, cfg: PretrainConfig, fingerprint: str,
                aux=None) -> None:
    import torch

    tmp, live, old = state_dir / "ckpt.tmp", state_dir / "ckpt", state_dir / "ckpt.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lm.model.save_pretrained(tmp, safe_serialization=True)
    lm.processor.save_pretrained(tmp)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(),
                "config": asdict(cfg), "fingerprint": fingerprint,
                "aux": aux.head.state_dict() if aux is not None else None}, tmp / "state.pt")
    # Swap by renames: a crash at any point leaves either `ckpt` or `ckpt.old` complete.
    shutil.rmtree(old, ignore_errors=True)
    if live.exists():
        live.rename(old)
    tmp.rename(live)
    shutil.rmtree(old, ignore_errors=True)


def _resume(state_dir: Path, cfg: PretrainConfig, fingerprint: str):
    import torch

    from mmbench.harness.model import load_model

    ckpt = next((d for d in (state_dir / "ckpt", state_dir / "ckpt.old") if (d / "state.pt").exists()), None)
    if ckpt is None:
        return None, None
    state = torch.load(ckpt / "state.pt", weights_only=True)
    saved = state["config"]
    changed = [f.name for f in fields(cfg)
               if f.name not in _RESUMABLE_CHANGES and saved.get(f.name) != getattr(cfg, f.name)]
    if changed or state["fingerprint"] != fingerprint:
        what = f"settings {', '.join(changed)}" if changed else "training examples"
        raise MmbenchError(f"{state_dir} holds a run with different {what}; delete it to start over")
    if state["step"] >= cfg.steps:
        raise MmbenchError(f"{state_dir} is already at step {state['step']}; ask for more than that")
    return load_model(ckpt, dtype="float32", device=cfg.device), state


def _finished_result(out_dir: Path, cfg: PretrainConfig) -> PretrainResult | None:
    try:
        saved = json.loads((out_dir / "pretrain_config.json").read_text(encoding="utf-8"))
        lines = (out_dir / "pretrain_log.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, json.JSONDecodeError):
        return None
    if saved != json.loads(json.dumps(asdict(cfg))) or not lines:
        return None
    last = json.loads(lines[-1])
    return PretrainResult(out_dir, cfg.steps, last["loss"], last["steps_per_s"], cfg.steps)


def _append_log(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint being resumed (they will be logged again)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")


def _finish(lm, out_dir: Path, state_dir: Path, cfg: PretrainConfig) -> None:
    tmp = out_dir.parent / f".{out_dir.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lm.model.eval()
    lm.model.save_pretrained(tmp, safe_serialization=True)
    lm.processor.save_pretrained(tmp)
    (tmp / "pretrain_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n", encoding="utf-8")
    if (state_dir / "log.jsonl").exists():
        shutil.copy(state_dir / "log.jsonl", tmp / "pretrain_log.jsonl")
    old = out_dir.parent / f".{out_dir.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(state_dir, ignore_errors=True)


class _Progress:
    """A rich progress bar showing the latest logged loss (or nothing when disabled)."""

    def __init__(self, enabled: bool, total: int, start: int):
        self.enabled, self.total, self.start = enabled, total, start

    def __enter__(self):
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("pretrain"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
                                TimeRemainingColumn())
            self.bar.__enter__()
            self.task = self.bar.add_task("pretrain", total=self.total, completed=self.start, loss="-")
        return self

    def advance(self, loss: float) -> None:
        if self.enabled:
            self.bar.update(self.task, advance=1, loss="-" if math.isnan(loss) else f"{loss:.4f}")

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)
        return False
