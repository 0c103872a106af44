"""DPO maths on sequence log-probabilities — the one loss every trainer shares.

Variants are weightings of one loss, not classes: a DPO term per (chosen, negative-source) pair
and a weight per source.  Eq. 5's γ weighs two sources that share the chosen response; Mixed-DPO's
p picks, per example, which source (offline or online pair) the example is scored on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token) over response tokens.

    logits [B, T, V] predict the token at t+1; labels [B, T] are the input ids; loss_mask [B, T]
    marks response tokens (1) among prompt, image and padding tokens (0)."""
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = loss_mask[:, 1:].to(logits.dtype)
    token_logps = torch.gather(logits.log_softmax(-1), 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token_logps * mask).sum(-1)


@dataclass
class DPOTerms:
    losses: torch.Tensor  # per example
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        return self.chosen_rewards - self.rejected_rewards


def dpo_sigmoid(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                ref_rejected: torch.Tensor, beta: float) -> DPOTerms:
    """−log σ(β·[(πθ(y+) − πref(y+)) − (πθ(y−) − πref(y−))]), per example."""
    chosen = policy_chosen - ref_chosen
    rejected = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen - rejected))
    return DPOTerms(losses, beta * chosen.detach(), beta * rejected.detach())


@dataclass
class PairLogps:
    """Sequence log-probs of one (chosen, rejected) pair per example under policy and reference.

    `rows` are the batch positions the examples hold when a pair covers only part of the batch
    (Mixed-DPO scores offline and online pairs on different examples); None: all, in order."""

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    reference_chosen: torch.Tensor
    reference_rejected: torch.Tensor
    rows: torch.Tensor | None = None

    @classmethod
    def of(cls, policy: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], chosen: str,
           rejected: str, rows: torch.Tensor | None = None) -> "PairLogps":
        """The pair (chosen, rejected) from per-column log-probs, e.g. {"chosen", "external", "bdhs"}."""
        return cls(policy[chosen], policy[rejected], reference[chosen], reference[rejected], rows)


PairLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], DPOTerms]


def preference_loss(pairs: Mapping[str, PairLogps], weights: Mapping[str, float | torch.Tensor], beta: float,
                    batch_size: int | None = None, term: PairLoss = dpo_sigmoid
                    ) -> tuple[torch.Tensor, dict[str, DPOTerms]]:
    """Both knobs in one formula: (1/N) Σ_sources Σ_examples w_s,i · ℓ(pair_s, i).

    A source is one (chosen, negative) pair, named by the caller.  Its weight is a number (Eq. 5:
    {"external": γ, "bdhs": 1−γ}) or one weight per batch example (Eq. 4: a per-example choice
    of source, 1/0 from the coin).  A source whose weight is 0 is not scored at all, so its
    columns need not exist (γ = 1 never touches BDHS).  `term` is the per-example loss of a
    pair (sigmoid DPO; a plug-in may pass IPO or any other)."""
    n = batch_size
    if n is None:
        sizes = {len(p.policy_chosen) for p in pairs.values() if p.rows is None}
        if len(sizes) != 1:
            raise ValueError("batch_size is needed: the pairs cover parts of the batch or disagree on its size")
        n = sizes.pop()
    terms: dict[str, DPOTerms] = {}
    total = torch.zeros((), device=next(iter(pairs.values())).policy_chosen.device if pairs else None)
    per_example = []
    for source, weight in weights.items():
        if not (weight.any() if torch.is_tensor(weight) else weight):
            continue
        if source not in pairs:
            raise ValueError(f"source {source!r} has a weight but no pair (pairs: {', '.join(pairs) or 'none'})")
        pair = pairs[source]
        terms[source] = scored = term(pair.policy_chosen, pair.policy_rejected, pair.reference_chosen,
                                      pair.reference_rejected, beta)
        if torch.is_tensor(weight):
            weight = weight.to(scored.losses)
            per_example.append((weight if pair.rows is None else weight[pair.rows]) * scored.losses)
        else:  # w · mean: sum / N first, so γ's terms round exactly as a plain DPO mean does
            total = total + weight * (scored.losses.sum() / n)
    if per_example:  # one sum over every weighted example of every source, then / N
        total = total + torch.cat(per_example).sum() / n
    return total, terms


def term_metrics(terms: dict[str, DPOTerms]) -> dict[str, float]:
    """Reward margins and accuracies per type of negative, for logs and train metrics."""
    metrics = {}
    for negative, term in terms.items():
        metrics[f"{negative}/loss"] = term.losses.mean().item()
        metrics[f"{negative}/margin"] = term.margins.mean().item()
        metrics[f"{negative}/accuracy"] = (term.margins > 0).float().mean().item()
        metrics[f"{negative}/chosen_reward"] = term.chosen_rewards.mean().item()
        metrics[f"{negative}/rejected_reward"] = term.rejected_rewards.mean().item()
    return metrics
