"""The support matrix: every family evaluates, trains, and hides the image under BDHS masking.

Checkpoints are tiny random models built from config with the real model and processor classes
(builders.py).  The fast tests check the adapter-level contracts; the `slow` ones run the CLI
eval at batch 1 and 4 and 2-step dpo / bdhs / mixed-dpo / LoRA training per family.
"""

import json
import time

import pytest
import torch
from builders import FAMILIES

from mmbench.harness import families
from mmbench.harness.generation import GenerationRequest
from mmbench.harness.model import load_model
from mmbench.trainers.bdhs import masked_generate

# The whole family matrix is the slow tier (CI runs it; `-m 'not slow'` skips it).
pytestmark = pytest.mark.slow

ALL = list(FAMILIES)
TIMES: dict[str, float] = {}  # family -> seconds spent in its slow tests (printed at the end)


class LogitsSpy:
    """Stands in for the model in masked_generate and keeps the first step's logits."""

    def __init__(self, model):
        self.model, self.config, self.device, self.logits = model, model.config, model.device, None

    def get_base_model(self):  # like a peft wrapper: the families helpers look through it
        return self.model

    def generate(self, **kwargs):
        out = self.model.generate(**kwargs, output_logits=True, return_dict_in_generate=True)
        self.logits = out.logits[0]
        return out.sequences


def _requests(family_world, n=2):
    rows = [json.loads(x) for x in (family_world["world"] / "prefs" / "train.jsonl").read_text().splitlines()]
    images = list(dict.fromkeys(r["image"] for r in rows))[:n]
    prompt = "Is there a cross in the image?"
    return [GenerationRequest(prompt=prompt, image=str(family_world["world"] / i)) for i in images]


def _first_logits(adapter, request, rho_th):
    spy = LogitsSpy(adapter.model)
    masked_generate(adapter, [request], [[]], rho_th=rho_th, max_new_tokens=1,
                    stop_ids=[adapter.tokenizer.eos_token_id], generator=torch.Generator().manual_seed(0), model=spy)
    return spy.logits


@pytest.mark.parametrize("family", ALL)
def test_bdhs_masking_hides_the_image(family, checkpoint, family_world):
    adapter = load_model(checkpoint(family))
    a, b = _requests(family_world)
    hidden = [_first_logits(adapter, r, 1.0) for r in (a, b)]
    torch.testing.assert_close(hidden[0], hidden[1], atol=1e-5, rtol=0)
    visible = [_first_logits(adapter, r, 0.0) for r in (a, b)]
    assert not torch.allclose(visible[0], visible[1], atol=1e-5), "the image does not reach the model"


@pytest.mark.parametrize("family", ALL)
def test_completions_score_with_per_token_tensors_aligned(family, checkpoint, family_world):
    adapter = load_model(checkpoint(family))
    requests = _requests(family_world)
    completions = [adapter.completion_ids("yes"), adapter.completion_ids("no there is a red square")]
    batch = adapter.encode_completions(requests, completions)
    width = batch["input_ids"].shape[1]
    for key in families.per_token_keys(batch, width):
        assert batch[key].shape[1] == width, key
    labels = batch.pop("labels")
    batch.pop("prompt_lengths")
    assert [int((row != -100).sum()) for row in labels] == [len(c) for c in completions]  # ours, not the processor's
    with torch.no_grad():
        logits = adapter.model(**batch).logits
    assert logits.shape[:2] == labels.shape and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", ALL)
def test_parts_are_found_by_structure(family, checkpoint):
    model = load_model(checkpoint(family)).model
    parts = families.model_parts(model)
    assert parts.vision_tower and parts.language_model and parts.projector, parts
    groups = {families.parameter_group(n, parts) for n, _ in model.named_parameters()}
    assert groups == {"vision", "projector", "language"}
    import re

    pattern = re.compile(families.lora_target_regex(model))
    targets = [n for n, _ in model.named_modules() if pattern.fullmatch(n)]
    assert targets and all(n.startswith(parts.language_model + ".") for n in targets)


# ---- the slow matrix: CLI eval, training, reload ----------------------------------------------

def _eval(ckpt, world, out, batch_size):
    from typer.testing import CliRunner

    from mmbench.cli import app

    result = CliRunner().invoke(app, ["eval", str(ckpt), "--data", str(world), "--benchmarks", "pope", "--limit", "2",
                                      "--batch-size", str(batch_size), "--max-new-tokens", "4", "--out", str(out)])
    assert result.exit_code == 0, (result.output[-2000:], result.exception)
    samples = (out / ckpt.name / "pope" / "samples.jsonl").read_text().splitlines()
    return {s["id"]: s["response"] for s in map(json.loads, samples)}


def _train(family_world, base, name, out, **options):
    from mmbench.trainers.config import TrainConfig
    from mmbench.trainers.registry import get_trainer

    config = TrainConfig(trainer=name, base=str(base), data=str(family_world["world"] / "prefs" / "train.jsonl"),
                         out=str(out), lr=1e-3, max_steps=2, batch_size=2, limit=4, online_max_tokens=6,
                         cache_dir=str(out.parent / "cache"), seed=0, **options)
    config.bdhs.sentence_tokens, config.bdhs.full_tokens, config.bdhs.max_tries = 6, 8, 2
    trainer = get_trainer(name)
    trainer.setup(config)
    trainer.train()
    return trainer.save()


def _params(folder) -> dict:
    # Loaded, not read from the file: module names, not the (converted) names safetensors holds.
    return dict(load_model(folder).model.named_parameters())


def _changed(base, out) -> set[str]:
    before, after = _params(base), _params(out)
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.slow
@pytest.mark.parametrize("family", ALL)
def test_eval_is_batch_invariant_through_the_cli(family, checkpoint, family_world, tmp_path):
    start = time.perf_counter()
    ckpt = checkpoint(family)
    one = _eval(ckpt, family_world["world"], tmp_path / "b1", 1)
    four = _eval(ckpt, family_world["world"], tmp_path / "b4", 4)
    assert len(one) == 6 and one == four
    TIMES[family] = TIMES.get(family, 0.0) + time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.parametrize("family", ALL)
def test_trainers_change_exactly_the_trainable_weights(family, checkpoint, family_world, tmp_path):
    start = time.perf_counter()
    base = checkpoint(family)
    parts = families.model_parts(load_model(base).model)
    group = {k: families.parameter_group(k, parts) for k in _params(base)}
    trainable = {k for k, g in group.items() if g != "vision"}
    for name, options in (("dpo", {}), ("bdhs", {"gamma": 0.5}), ("mixed-dpo", {"p": 0.5})):
        out = _train(family_world, base, name, tmp_path / name, **options)
        changed = _changed(base, out)
        assert not changed - trainable, f"{name}: frozen weights moved: {sorted(changed - trainable)[:5]}"
        assert changed == trainable, f"{name}: weights that did not train: {sorted(trainable - changed)[:5]}"
    reloaded = _eval(out, family_world["world"], tmp_path / "again", 4)  # the trained checkpoint evaluates
    assert len(reloaded) == 6
    TIMES[family] = TIMES.get(family, 0.0) + time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.parametrize("family", ALL)
def test_lora_trains_only_the_language_model(family, checkpoint, family_world, tmp_path):
    pytest.importorskip("peft")
    start = time.perf_counter()
    base = checkpoint(family)
    out = _train(family_world, base, "dpo", tmp_path / "lora", lora=True, lora_rank=4, lora_alpha=8)
    changed = _changed(base, out)
    parts = families.model_parts(load_model(base).model)
    assert changed and all(k.startswith(parts.language_model + ".") for k in changed), sorted(changed)[:5]
    assert all(k.split(".")[-2] in families.LORA_TARGETS for k in changed)
    TIMES[family] = TIMES.get(family, 0.0) + time.perf_counter() - start


def teardown_module(module):
    if TIMES:
        print("\nfamily wall times (slow tests): " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.items()))
