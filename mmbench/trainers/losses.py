"""DPO maths on sequence log-probabilities — the one loss every trainer shares.

Variants are options of this one loss, not classes: Eq. 5's γ mixes two DPO terms that share
the chosen response, and Mixed-DPO's p picks, per example, which pair a term is computed on.
"""

from __future__ import annotations

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


def gamma_mixed_loss(policy: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], gamma: float,
                     beta: float) -> tuple[torch.Tensor, dict[str, DPOTerms]]:
    """Eq. 5: γ·DPO(chosen, external) + (1−γ)·DPO(chosen, bdhs), averaged over the batch.

    `policy`/`reference` hold per-example log-probs under keys "chosen", "external", "bdhs";
    a term with weight 0 is skipped, so γ = 1 needs no BDHS column and γ = 0 no external one."""
    terms: dict[str, DPOTerms] = {}
    total = torch.zeros((), device=policy["chosen"].device)
    for negative, weight in (("external", gamma), ("bdhs", 1.0 - gamma)):
        if weight == 0.0:
            continue
        term = dpo_sigmoid(policy["chosen"], policy[negative], reference["chosen"], reference[negative], beta)
        terms[negative] = term
        total = total + weight * term.losses.mean()
    return total, terms


def mixed_pair_loss(offline: DPOTerms | None, online: DPOTerms | None, use_offline: torch.Tensor) -> torch.Tensor:
    """Eq. 4: per example α·L(offline) + (1−α)·L(online), α ~ Bernoulli(p) drawn by the caller."""
    parts = []
    if offline is not None:
        parts.append(offline.losses * use_offline.float())
    if online is not None:
        parts.append(online.losses * (1.0 - use_offline.float()))
    return torch.stack(parts).sum(0).mean()


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
