"""Loss maths against hand-written formulas with fixed log-probs."""

import math

import pytest
import torch

from mmbench.trainers.losses import dpo_sigmoid, gamma_mixed_loss, mixed_pair_loss, sequence_logps


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


def _columns(seed):
    g = torch.Generator().manual_seed(seed)
    return {k: -torch.rand(4, generator=g) * 10 for k in ("chosen", "external", "bdhs")}


def test_gamma_endpoints_reduce_to_plain_dpo():
    policy, reference = _columns(0), _columns(1)
    plain_external = dpo_sigmoid(policy["chosen"], policy["external"], reference["chosen"], reference["external"], 0.1)
    plain_bdhs = dpo_sigmoid(policy["chosen"], policy["bdhs"], reference["chosen"], reference["bdhs"], 0.1)
    loss1, terms1 = gamma_mixed_loss(policy, reference, gamma=1.0, beta=0.1)
    loss0, terms0 = gamma_mixed_loss(policy, reference, gamma=0.0, beta=0.1)
    assert loss1.item() == pytest.approx(plain_external.losses.mean().item(), abs=1e-6)
    assert loss0.item() == pytest.approx(plain_bdhs.losses.mean().item(), abs=1e-6)
    assert set(terms1) == {"external"} and set(terms0) == {"bdhs"}
    # γ = 1 must not touch the BDHS column at all
    no_bdhs = {k: v for k, v in policy.items() if k != "bdhs"}
    assert gamma_mixed_loss(no_bdhs, reference, gamma=1.0, beta=0.1)[0].item() == pytest.approx(loss1.item())
    half, _ = gamma_mixed_loss(policy, reference, gamma=0.25, beta=0.1)
    assert half.item() == pytest.approx(0.25 * plain_external.losses.mean().item()
                                        + 0.75 * plain_bdhs.losses.mean().item(), abs=1e-6)


def test_mixed_pair_loss_picks_per_example():
    offline = dpo_sigmoid(torch.tensor([-1.0, -1.0]), torch.tensor([-3.0, -3.0]), torch.zeros(2), torch.zeros(2), 1.0)
    online = dpo_sigmoid(torch.tensor([-2.0, -2.0]), torch.tensor([-1.0, -1.0]), torch.zeros(2), torch.zeros(2), 1.0)
    coin = torch.tensor([True, False])
    expected = (offline.losses[0] + online.losses[1]) / 2
    assert mixed_pair_loss(offline, online, coin).item() == pytest.approx(expected.item())
    assert mixed_pair_loss(offline, None, torch.ones(2, dtype=torch.bool)).item() == pytest.approx(offline.losses.mean().item())


def test_sequence_logps_sums_only_masked_response_tokens():
    vocab = 5
    logits = torch.zeros(1, 4, vocab)
    logits[0, 1, 3] = 2.0  # position 1 predicts token at position 2
    labels = torch.tensor([[0, 1, 3, 4]])
    mask = torch.tensor([[0, 0, 1, 1]])
    logp_3 = 2.0 - math.log(math.exp(2.0) + vocab - 1)
    logp_4 = -math.log(vocab)
    assert sequence_logps(logits, labels, mask).item() == pytest.approx(logp_3 + logp_4, abs=1e-6)
