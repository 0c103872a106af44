"""The built-in step functions as they run, with only the model calls stubbed: the log-probs
that reach `preference_loss`, the per-example source choice of Eq. 4 and the γ weights of
Eq. 5, against hand-computed values."""

import math
from types import SimpleNamespace

import pytest
import torch

from mmbench.trainers import steps
from mmbench.trainers.data import PreferenceExample
from mmbench.trainers.options import BDHSOptions, MixedDPOOptions

BETA = 0.5
EXAMPLES = [PreferenceExample(id=f"ex{i}", prompt=f"q{i}", image=None, chosen=f"c{i}", rejected=f"r{i}")
            for i in range(4)]
# Sequence log-probs by completion (completion ids are the texts themselves here).
POLICY = {"c0": -1.0, "r0": -3.0, "c1": -1.0, "r1": -1.0, "c2": -2.0, "r2": -1.5, "c3": -2.0, "r3": -4.0,
          "a1": -4.0, "b1": -2.0, "n0": -4.0, "n1": -2.5, "n2": -2.0, "n3": -2.0}
REFERENCE = {"c0": -1.5, "r0": -2.5, "c1": -1.0, "r1": -1.0, "c2": -2.0, "r2": -2.0, "c3": -2.0, "r3": -2.0,
             "a1": -3.0, "b1": -3.0, "n0": -3.0, "n1": -2.0, "n2": -2.0, "n3": -2.0}


def _nll(margin):  # −log σ(β m)
    return math.log1p(math.exp(-BETA * margin))


@pytest.fixture
def ctx(monkeypatch):
    calls = []

    def scored_logps(ctx, examples, columns, cached):
        calls.append(([e.id for e in examples], {k: list(v) for k, v in columns.items()}, set(cached)))
        as_tensor = lambda table: {k: torch.tensor([table[str(c)] for c in v]) for k, v in columns.items()}
        return as_tensor(POLICY), as_tensor(REFERENCE)

    monkeypatch.setattr(steps, "scored_logps", scored_logps)
    return SimpleNamespace(config=SimpleNamespace(seed=0, beta=BETA, options=None), prompts=None, calls=calls,
                           adapter=SimpleNamespace(completion_ids=lambda text: text),
                           policy=torch.nn.Linear(1, 1),
                           offline_bdhs={e.id: SimpleNamespace(ids=f"n{e.id[-1]}") for e in EXAMPLES})


def test_mixed_step_scores_each_example_on_the_source_its_coin_picks(ctx, monkeypatch):
    ctx.config.options = MixedDPOOptions(p=0.5)
    monkeypatch.setattr(steps, "offline_coin", lambda seed, step, example_id, p: example_id in ("ex0", "ex2"))
    sampled = []

    def online_pairs(ctx_, examples, step):
        sampled.append([e.id for e in examples])
        return [0], ["a1"], ["b1"]  # ex1's pair kept (a1 preferred); ex3's was a tie, dropped

    monkeypatch.setattr(steps, "online_pairs", online_pairs)
    loss, metrics = steps.mixed_step(ctx, EXAMPLES, step=3)
    # margins: ex0 (0.5 − (−0.5)) = 1, ex2 (0 − 0.5) = −0.5 offline; ex1 (−1 − 1) = −2 online; N = 4
    assert loss.item() == pytest.approx((_nll(1.0) + _nll(-2.0) + _nll(-0.5)) / 4, abs=1e-6)
    assert sampled == [["ex1", "ex3"]]
    assert ctx.calls[0] == (["ex0", "ex2"], {"chosen": ["c0", "c2"], "rejected": ["r0", "r2"]}, {"chosen", "rejected"})
    assert ctx.calls[1] == (["ex1"], {"chosen": ["a1"], "rejected": ["b1"]}, set())  # sampled: never cached
    assert metrics["offline_share"] == 0.5 and metrics["online/loss"] == pytest.approx(_nll(-2.0))
    assert metrics["offline/accuracy"] == 0.5


def test_mixed_step_all_offline_is_the_dpo_mean_and_all_ties_touch_the_graph(ctx, monkeypatch):
    ctx.config.options = MixedDPOOptions(p=1.0)
    loss, metrics = steps.mixed_step(ctx, EXAMPLES, step=0)  # the real coin: p = 1 is always offline
    assert loss.item() == pytest.approx((_nll(1.0) + _nll(0.0) + _nll(-0.5) + _nll(2.0)) / 4, abs=1e-6)
    assert metrics["offline_share"] == 1.0 and "online/loss" not in metrics
    ctx.config.options = MixedDPOOptions(p=0.0)
    monkeypatch.setattr(steps, "online_pairs", lambda ctx_, examples, step: ([], [], []))
    loss, metrics = steps.mixed_step(ctx, EXAMPLES, step=0)
    assert loss.item() == 0.0 and loss.requires_grad and metrics == {"offline_share": 0.0}


def test_online_pairs_take_their_prompts_from_the_prompt_source(ctx, monkeypatch):
    ctx.config.options = MixedDPOOptions(p=0.0)
    ctx.prompts = [PreferenceExample(id=f"prompt{i}", prompt=f"P{i}", image=None) for i in range(5)]
    sampled = []
    monkeypatch.setattr(steps, "online_pairs", lambda ctx_, examples, step: sampled.append(examples) or ([], [], []))
    for step in range(6):
        steps.mixed_step(ctx, EXAMPLES, step)
    drawn = [e for batch in sampled for e in batch]
    assert len(drawn) == 24 and all(e in ctx.prompts for e in drawn)
    assert len({e.id for e in drawn}) > 1  # drawn per (step, example), not one fixed row
    again = []
    monkeypatch.setattr(steps, "online_pairs", lambda ctx_, examples, step: again.append(examples) or ([], [], []))
    steps.mixed_step(ctx, EXAMPLES[2:], 4)  # another process's shard draws the same rows for its examples
    assert again[0] == sampled[4][2:]


@pytest.mark.parametrize("gamma", [0.0, 0.25, 1.0])
def test_gamma_step_weights_external_and_bdhs_negatives(ctx, gamma):
    ctx.config.options = BDHSOptions(gamma=gamma)
    loss, metrics = steps.gamma_step(ctx, EXAMPLES[:2], step=0)
    external = (_nll(1.0) + _nll(0.0)) / 2  # margins 1 and 0
    bdhs = (_nll(1.5) + _nll(0.5)) / 2  # negatives n0, n1: margins 0.5 − (−1) and 0 − (−0.5)
    assert loss.item() == pytest.approx(gamma * external + (1 - gamma) * bdhs, abs=1e-6)
    columns = ctx.calls[0][1]
    assert ("external" in columns) == (gamma > 0) and ("bdhs" in columns) == (gamma < 1)
    assert ("bdhs/loss" in metrics) == (gamma < 1)
    assert ctx.calls[0][2] == {"chosen", "external", "bdhs"}  # offline BDHS negatives are cached columns
