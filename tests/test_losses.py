"""Loss maths against hand-written formulas with fixed log-probs."""

import math

import pytest
import torch

from mmbench.trainers.losses import DPOTerms, PairLogps, dpo_sigmoid, preference_loss, sequence_logps


def test_dpo_is_log2_when_policy_equals_reference():
    logps = torch.tensor([-3.0, -10.0, -0.5])
    other = torch.tensor([-4.0, -2.0, -7.5])
    terms = dpo_sigmoid(logps, other, logps, other, beta=0.1)
    assert torch.allclose(terms.losses, torch.full((3,), math.log(2)))


def test_dpo_matches_hand_formula():
    pc, pr, rc, rr, beta = -2.0, -5.0, -3.0, -4.0, 0.5
    expected = -math.log(1 / (1 + math.exp(-beta * ((pc - rc) - (pr - rr)))))
    terms = dpo_sigmoid(torch.tensor([pc]), torch.tensor([pr]), torch.tensor([rc]), torch.tensor([rr]), beta)
    assert terms.losses.item() == pytest.approx(expected, abs=1e-6)
    assert terms.chosen_rewards.item() == pytest.approx(beta * (pc - rc))
    assert terms.margins.item() == pytest.approx(beta * ((pc - rc) - (pr - rr)))


# One batch of two examples, β = 0.5.  Hand-computed implicit-reward margins
# m = (πθ(y+) − πref(y+)) − (πθ(y−) − πref(y−)):  external  ex0: 0.5 − (−0.5) = 1.0, ex1: 0 − 0.5 = −0.5
#                                                  bdhs      ex0: 0.5 − (−1.0) = 1.5, ex1: 0 − (−0.5) = 0.5
POLICY = {"chosen": [-1.0, -2.0], "external": [-3.0, -1.5], "bdhs": [-4.0, -2.5]}
REFERENCE = {"chosen": [-1.5, -2.0], "external": [-2.5, -2.0], "bdhs": [-3.0, -2.0]}
BETA = 0.5


def _nll(margin):  # −log σ(β m)
    return math.log1p(math.exp(-BETA * margin))


EXTERNAL = (_nll(1.0) + _nll(-0.5)) / 2
BDHS = (_nll(1.5) + _nll(0.5)) / 2


def _pairs(*negatives, rows=None):
    policy = {k: torch.tensor(v, requires_grad=True) for k, v in POLICY.items()}
    reference = {k: torch.tensor(v) for k, v in REFERENCE.items()}
    return policy, {n: PairLogps.of(policy, reference, "chosen", n, rows) for n in negatives}


@pytest.mark.parametrize("gamma,expected", [(1.0, EXTERNAL), (0.0, BDHS), (0.3, 0.3 * EXTERNAL + 0.7 * BDHS)])
def test_gamma_weights_two_sources_sharing_the_chosen_answer(gamma, expected):
    _, pairs = _pairs("external", "bdhs")
    loss, terms = preference_loss(pairs, {"external": gamma, "bdhs": 1 - gamma}, BETA)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert set(terms) == {n for n, w in (("external", gamma), ("bdhs", 1 - gamma)) if w}
    assert terms.get("external") is None or terms["external"].margins.tolist() == pytest.approx([0.5, -0.25])


def test_a_source_weighted_zero_is_never_scored():
    _, only_external = _pairs("external")  # γ = 1 has no BDHS column at all
    assert preference_loss(only_external, {"external": 1.0, "bdhs": 0.0}, BETA)[0].item() == pytest.approx(EXTERNAL)
    _, only_bdhs = _pairs("bdhs")
    assert preference_loss(only_bdhs, {"external": 0.0, "bdhs": 1.0}, BETA)[0].item() == pytest.approx(BDHS)
    with pytest.raises(ValueError, match="'bdhs' has a weight but no pair"):
        preference_loss(only_external, {"external": 0.5, "bdhs": 0.5}, BETA)


def test_source_names_are_the_callers():
    _, pairs = _pairs("external", "bdhs")
    renamed = {"data": pairs["external"], "self": pairs["bdhs"]}
    loss, terms = preference_loss(renamed, {"data": 0.25, "self": 0.75}, BETA)
    assert loss.item() == pytest.approx(0.25 * EXTERNAL + 0.75 * BDHS, abs=1e-6) and set(terms) == {"data", "self"}


def test_per_example_weights_pick_a_source_per_example():
    # Eq. 4 on a batch of three: the coin says offline, online, offline.  The offline pair is
    # scored on rows 0 and 2 only, the online pair on row 1 only; N = 3 normalises.
    offline = PairLogps(torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.5]), torch.tensor([-1.5, -2.0]),
                        torch.tensor([-2.5, -2.0]), rows=torch.tensor([0, 2]))  # margins 1.0, −0.5
    online = PairLogps(torch.tensor([-4.0]), torch.tensor([-2.0]), torch.tensor([-3.0]), torch.tensor([-3.0]),
                       rows=torch.tensor([1]))  # margin −1 − 1 = −2
    coin = torch.tensor([1.0, 0.0, 1.0])
    loss, terms = preference_loss({"offline": offline, "online": online}, {"offline": coin, "online": 1 - coin},
                                  BETA, batch_size=3)
    assert loss.item() == pytest.approx((_nll(1.0) + _nll(-2.0) + _nll(-0.5)) / 3, abs=1e-6)
    assert terms["online"].margins.tolist() == pytest.approx([-1.0])
    # A tied online pair drops its example: it still counts in N.
    loss, _ = preference_loss({"offline": offline}, {"offline": coin}, BETA, batch_size=3)
    assert loss.item() == pytest.approx((_nll(1.0) + _nll(-0.5)) / 3, abs=1e-6)


def test_an_example_weighted_zero_gets_no_gradient():
    policy, pairs = _pairs("external")
    loss, _ = preference_loss(pairs, {"external": torch.tensor([1.0, 0.0])}, BETA)
    loss.backward()
    # d/dπθ(y+) of −log σ(β m) / N = −β σ(−β m) / N, for example 0 (m = 1) only.
    sigma = 1 / (1 + math.exp(BETA * 1.0))
    assert policy["chosen"].grad.tolist() == pytest.approx([-BETA * sigma / 2, 0.0], abs=1e-7)
    assert policy["external"].grad.tolist() == pytest.approx([BETA * sigma / 2, 0.0], abs=1e-7)


def test_the_pair_loss_is_pluggable():
    """A plug-in passes its own per-example loss (here IPO: (m − 1/(2β))²) through the same weighting."""
    def ipo(pc, pr, rc, rr, beta):
        margin = (pc - rc) - (pr - rr)
        return DPOTerms((margin - 1 / (2 * beta)) ** 2, beta * (pc - rc).detach(), beta * (pr - rr).detach())

    _, pairs = _pairs("external")
    loss, _ = preference_loss(pairs, {"external": 1.0}, BETA, term=ipo)
    assert loss.item() == pytest.approx(((1.0 - 1.0) ** 2 + (-0.5 - 1.0) ** 2) / 2)


def test_sequence_logps_sums_only_masked_response_tokens():
    vocab = 5
    logits = torch.zeros(1, 4, vocab)
    logits[0, 1, 3] = 2.0  # position 1 predicts token at position 2
    labels = torch.tensor([[0, 1, 3, 4]])
    mask = torch.tensor([[0, 0, 1, 1]])
    logp_3 = 2.0 - math.log(math.exp(2.0) + vocab - 1)
    logp_4 = -math.log(vocab)
    assert sequence_logps(logits, labels, mask).item() == pytest.approx(logp_3 + logp_4, abs=1e-6)
