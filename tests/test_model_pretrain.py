"""Pre-training loop on a synthetic set of coloured squares (tiny model, a few seconds)."""

from __future__ import annotations

import json
import random

import pytest
import torch
from PIL import Image, ImageDraw

from mmbench.errors import MmbenchError
from mmbench.harness.model import load_model
from mmbench.world import pretrain as pretrain_mod
from mmbench.world.pretrain import PretrainConfig, _freeze_unused, _fresh_model, pretrain
from mmbench.world.pretrain_step import _batch_indices

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 210, 20)}
SMALL = {"vision_width": 32, "vision_layers": 2, "text_width": 32, "text_layers": 2, "heads": 2}


def squares(n: int, seed: int = 0) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name = rng.choice(sorted(COLOURS))
        img = Image.new("RGB", (64, 64), "white")
        x, y = rng.randrange(0, 30), rng.randrange(0, 30)
        ImageDraw.Draw(img).rectangle([x, y, x + 30, y + 30], fill=COLOURS[name])
        if rng.random() < 0.5:
            out.append((img, "What colour is the square?", name))
        else:
            out.append((img, "Describe the image.", f"There is one {name} square on a white background."))
    return out


def _config(**kw) -> PretrainConfig:
    base = {"steps": 40, "seed": 0, "batch_size": 16, "warmup_steps": 5, "log_every": 5,
            "checkpoint_every": 1000, "lr": 3e-3, "vision_lr": 3e-3, "model": SMALL}
    return PretrainConfig(**{**base, **kw})


def _weights(path) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in load_model(path, device="cpu").model.state_dict().items()}


def test_training_lowers_the_loss_and_moves_every_trainable_weight(tmp_path):
    data = squares(64)
    cfg = _config()
    initial = _fresh_model(cfg, data, ()).model
    _freeze_unused(initial)
    trainable = {n for n, p in initial.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in initial.named_parameters()}

    result = pretrain(data, tmp_path / "model", cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "model" / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(5, 41, 5))
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    assert result.final_loss == pytest.approx(log[-1]["loss"], abs=1e-4) and result.resumed_from == 0

    after = load_model(tmp_path / "model", device="cpu").model
    frozen = []
    for name, param in after.named_parameters():
        if name in trainable:
            assert not torch.equal(param, before[name]), f"{name} did not change"
        else:
            frozen.append(name)
            assert torch.equal(param, before[name])
    # Only what gets no gradient is frozen: the unread pooled-output norm, key biases (softmax
    # cancels them).
    assert frozen and all("post_layernorm" in n or n.endswith("k_proj.bias") for n in frozen)
    assert not list(tmp_path.glob(".model.*"))  # state and temporary folders are gone
    assert json.loads((tmp_path / "model" / "pretrain_config.json").read_text())["steps"] == 40


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    data = squares(48, seed=1)
    cfg = _config(steps=9, checkpoint_every=3, log_every=1)
    pretrain(data, tmp_path / "straight", cfg, progress=False)

    real_step, calls = pretrain_mod._train_step, []

    def dies_at_step_five(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(pretrain_mod, "_train_step", dies_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        pretrain(data, tmp_path / "resumed", cfg, progress=False)
    assert not (tmp_path / "resumed").exists()
    assert (tmp_path / ".resumed.pretrain" / "ckpt" / "state.pt").exists()
    monkeypatch.setattr(pretrain_mod, "_train_step", real_step)

    result = pretrain(data, tmp_path / "resumed", cfg, progress=False)
    assert result.resumed_from == 3
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-5, atol=1e-6, msg=name)
    steps = [json.loads(x)["step"] for x in (tmp_path / "resumed" / "pretrain_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 10))  # steps 4 (logged before the crash) is not duplicated

    # Rerunning a finished run is a no-op; a different run into the same folder is refused.
    assert pretrain(data, tmp_path / "resumed", cfg, progress=False).resumed_from == 9
    with pytest.raises(MmbenchError, match="already exists"):
        pretrain(data, tmp_path / "resumed", cfg, progress=False, seed=1)


def test_a_checkpoint_from_other_settings_is_not_resumed(tmp_path, monkeypatch):
    data = squares(32, seed=2)
    cfg = _config(steps=4, checkpoint_every=2)
    monkeypatch.setattr(pretrain_mod, "_finish", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        pretrain(data, tmp_path / "m", cfg, progress=False)
    monkeypatch.undo()
    with pytest.raises(MmbenchError, match="different settings lr"):
        pretrain(data, tmp_path / "m", cfg, progress=False, lr=1e-4)
    with pytest.raises(MmbenchError, match="different training examples"):
        pretrain(squares(32, seed=3), tmp_path / "m", cfg, progress=False)


def test_batches_cover_each_epoch_once_and_depend_on_the_seed():
    n, b = 10, 4
    stream = [i for step in range(5) for i in _batch_indices(n, b, seed=7, step=step)]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert stream == [i for step in range(5) for i in _batch_indices(n, b, seed=7, step=step)]
    assert stream != [i for step in range(5) for i in _batch_indices(n, b, seed=8, step=step)]
