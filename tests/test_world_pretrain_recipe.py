"""The base-model recipe (`mmbench world pretrain`) on the small world, and the shipped base."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmbench.cli import app
from mmbench.errors import MmbenchError
from mmbench.harness.model import load_model
from mmbench.world.build import SMALL, WORLD_VERSION, build_world
from mmbench.world.paths import BASE_MODEL_DIR
from mmbench.world.pretrain import pretrain
from mmbench.world.recipe import STAGES, PatchAux, pretrain_base, stage_steps, world_texts
from mmbench.world.training_sets import SftExamples

TINY = {"vision_width": 32, "vision_layers": 2, "text_width": 32, "text_layers": 2, "heads": 2}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world") / "w", size=SMALL, progress=False)


def test_recipe_runs_every_stage_and_writes_a_marked_half_precision_model(small_world, tmp_path):
    out = pretrain_base(tmp_path / "base", steps=9, world_dir=small_world, batch_size=4, log_every=1,
                        progress=False, model=TINY)
    marker = json.loads((out / "world_model.json").read_text())
    assert marker["recipe"] == "world-tiny-llava" and marker["seed"] == 0 and marker["steps"] == 9
    assert marker["world_version"] == WORLD_VERSION and [s["steps"] for s in marker["stages"]] == stage_steps(9)
    assert "device" not in marker  # CPU builds keep the marker they had before GPU builds were recorded
    log = [json.loads(line) for line in (out / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log if r["step"] == 1] == [s.name for s in STAGES]
    # Auxiliary losses run where the stage asks for them, and never in the last stage.
    assert all(("aux" in r) == (r["stage"] != "settle") for r in log)
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"
    assert not list(tmp_path.glob(".base.*"))  # stage folders are cleaned up

    lm = load_model(out, device="cpu")
    from mmbench.suites import claimed_suite

    assert claimed_suite(out).name == "world"  # a pretrained base is the world suite's checkpoint
    # Every benchmark prompt word is in the vocabulary: nothing the model is asked maps to <unk>.
    unk = lm.tokenizer.unk_token_id
    for text in world_texts(small_world):
        assert unk not in lm.tokenizer(text, add_special_tokens=False)["input_ids"], text
    # A finished run is not redone; a half-done run is only resumed with the same settings.
    assert pretrain_base(tmp_path / "base", steps=9, world_dir=small_world, batch_size=4, log_every=1,
                         progress=False, model=TINY) == out
    (tmp_path / ".other.stages").mkdir()
    (tmp_path / ".other.stages" / "plan.json").write_text('{"steps": 1}')
    with pytest.raises(MmbenchError, match="other settings"):
        pretrain_base(tmp_path / "other", steps=9, world_dir=small_world, progress=False, model=TINY)


def test_auxiliary_patch_and_binding_losses_decrease(small_world, tmp_path):
    import torch

    from mmbench.world.recipe import _initial_model

    init = _initial_model(small_world, tmp_path / "init", 0, TINY)
    examples = SftExamples(small_world)
    config = json.loads((init / "config.json").read_text())
    aux = PatchAux(examples, config["text_config"]["hidden_size"], config["image_token_index"], 1.0, 1.0)
    torch.manual_seed(0)
    pretrain(examples, tmp_path / "m", init_from=str(init), steps=20, batch_size=16, warmup_steps=1, lr=3e-3,
             vision_lr=3e-3, log_every=4, checkpoint_every=1000, aux=aux, aux_loss={"patch": 1, "bind": 1},
             progress=False)
    log = [json.loads(line)["aux"] for line in (tmp_path / "m" / "pretrain_log.jsonl").read_text().splitlines()]
    assert log[-1] < 0.9 * log[0] and min(log[-2:]) < min(log[:2])


def test_cli_passes_its_options_to_the_recipe(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr("mmbench.world.recipe.pretrain_base",
                        lambda out, **kw: calls.append((out, kw)) or out)
    result = CliRunner().invoke(app, ["world", "pretrain", "--steps", "30", "--seed", "3", "--out",
                                      str(tmp_path / "m"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "m", {"seed": 3, "steps": 30, "threads": 1})]  # CPU: the recipe's default
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    result = CliRunner().invoke(app, ["world", "pretrain", "--out", str(tmp_path / "g"), "--device", "cuda:1"])
    assert result.exit_code == 0, result.output
    assert calls[-1] == (tmp_path / "g", {"seed": 0, "steps": 2600, "threads": 0, "device": "cuda:1"})


@pytest.mark.skipif(not (BASE_MODEL_DIR / "config.json").exists(), reason="no shipped base model")
def test_shipped_base_loads_offline_and_answers_a_short_benchmark(small_world, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm = load_model(BASE_MODEL_DIR, device="cpu")
    assert lm.model.dtype.is_floating_point and (BASE_MODEL_DIR / "world_model.json").exists()
    # The small world's records keep the test fast; `--data` is the only difference from the default.
    result = CliRunner().invoke(app, ["eval", "--benchmarks", "gqa", "--limit", "5", "--out", str(tmp_path),
                                      "--data", str(small_world)])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "base" / "gqa" / "results.json").read_text())
    samples = (tmp_path / "base" / "gqa" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 5 and all(json.loads(s)["response"] for s in samples)
    assert results


def test_a_half_done_run_never_resumes_on_a_world_whose_sft_set_changed(small_world, tmp_path, monkeypatch):
    """Same world version, seed and size but other training data (e.g. new kinds, hence a new
    tokenizer): the stages' init model and checkpoints are stale and must not be resumed."""
    import shutil

    import mmbench.world.pretrain as pretrain_module

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain_module, "pretrain", crash)
    with pytest.raises(KeyboardInterrupt):  # killed in the first stage: its plan and init stay
        pretrain_base(tmp_path / "base", steps=9, world_dir=small_world, batch_size=4, progress=False, model=TINY)
    assert (tmp_path / ".base.stages" / "plan.json").exists()
    changed = tmp_path / "changed"
    shutil.copytree(small_world, changed, ignore=shutil.ignore_patterns("images"))
    (changed / "images").symlink_to(small_world / "images")
    sft = changed / "sft" / "train.jsonl"
    sft.write_text(sft.read_text().replace("circle", "ring"))
    with pytest.raises(MmbenchError, match="other settings"):
        pretrain_base(tmp_path / "base", steps=9, world_dir=changed, batch_size=4, progress=False, model=TINY)


@pytest.mark.slow  # three tiny-model steps with both auxiliary losses (~7 s)
def test_length_sorted_micro_batches_give_the_batch_gradient(small_world, tmp_path):
    """`length_chunks` splits a step's batch by length to cut padding; the answer loss and both
    auxiliary losses are weighted so the micro-batches add up to the whole batch's gradient."""
    import torch

    from mmbench.world.pretrain_step import _train_step
    from mmbench.world.recipe import _initial_model

    init = _initial_model(small_world, tmp_path / "init", 0, TINY)
    examples = SftExamples(small_world)
    config = json.loads((init / "config.json").read_text())
    # Questions naming one kind (the binding loss's rows) and captions (long), in one batch.
    idx = list(range(0, 48, 3))
    batch = [examples[i] for i in idx]
    lengths = {len(response.split()) for _, _, response in batch}
    assert min(lengths) <= 2 and max(lengths) >= 10

    class Recorder:  # stands in for the optimizer: keeps the gradient it is asked to apply
        def __init__(self, params):
            self.param_groups = [{"params": params}]

        def zero_grad(self, set_to_none=True):
            for p in self.param_groups[0]["params"]:
                p.grad = None

        def step(self):
            self.grads = [None if p.grad is None else p.grad.clone() for p in self.param_groups[0]["params"]]

    results = {}
    for chunks in (1, 2, 3):
        lm = load_model(init, dtype="float32", device="cpu")
        lm.model.train()
        aux = PatchAux(examples, config["text_config"]["hidden_size"], config["image_token_index"], 1.0, 1.0)
        assert any(aux._targets(i)[1] for i in idx) and not all(aux._targets(i)[1] for i in idx)
        params = [p for p in lm.model.parameters() if p.requires_grad] + list(aux.head.parameters())
        recorder = Recorder(params)
        loss, extra = _train_step(lm, recorder, batch, idx, {}, 0.0, aux, chunks)
        results[chunks] = (loss, extra, recorder.grads)
    for chunks in (2, 3):
        loss, extra, grads = results[chunks]
        assert loss == pytest.approx(results[1][0], rel=1e-5) and extra == pytest.approx(results[1][1], rel=1e-5)
        assert sum(g is not None for g in grads) > len(grads) // 2
        for got, want in zip(grads, results[1][2]):
            assert (got is None) == (want is None)
            if got is not None:
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
