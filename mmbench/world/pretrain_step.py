"""One optimizer step of the world model's pre-training loop (`pretrain.py`) and its data order:
the per-example answer loss, length-sorted micro-batches, and the seeded, resumable batch stream."""

from __future__ import annotations

from mmbench.harness.generation import GenerationRequest


def answer_loss(logits, labels):
    """Cross-entropy on answer tokens, averaged within each example, then over examples."""
    import torch.nn.functional as F

    logits, labels = logits[:, :-1], labels[:, 1:]  # position t predicts token t+1
    tokens = F.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=-100, reduction="none")
    mask = (labels != -100).float()
    per_example = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return per_example.mean()


def _train_step(lm, optimizer, batch, idx, completion_cache, grad_clip, aux=None,
                length_chunks: int = 1) -> tuple[float, float]:
    import torch

    for i, (_, prompt, response) in zip(idx, batch):
        if i not in completion_cache:  # completion ids, and the text's length to sort by
            ids = lm.completion_ids(response)
            completion_cache[i] = (ids, len(ids) + len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]))
    parts = [list(range(len(batch)))]
    if length_chunks > 1:
        order = sorted(parts[0], key=lambda k: (completion_cache[idx[k]][1], k))
        parts = [order[j * len(order) // length_chunks:(j + 1) * len(order) // length_chunks]
                 for j in range(length_chunks)]
    optimizer.zero_grad(set_to_none=True)
    total, total_extra = 0.0, 0.0
    for part in (p for p in parts if p):
        part_idx = [idx[k] for k in part]
        requests = [GenerationRequest(batch[k][1], batch[k][0]) for k in part]
        enc = lm.encode_completions(requests, [completion_cache[i][0] for i in part_idx])
        labels = enc.pop("labels")
        enc.pop("prompt_lengths")
        out = lm.model(**enc, output_hidden_states=aux is not None)
        # answer_loss averages over examples: a micro-batch weighs by its share of the batch.
        loss = answer_loss(out.logits, labels)
        if len(parts) > 1:
            loss = loss * (len(part) / len(batch))
        extra = aux(out, enc, part_idx, idx) if aux is not None else loss.new_zeros(())
        (loss + extra).backward()
        total += float((loss + extra).detach())
        total_extra += float(extra.detach())
    if grad_clip:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return total, total_extra


def _batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Batch `step` of an endless stream of seeded per-epoch permutations (resumable by step)."""
    import torch

    first, last = step * batch_size, (step + 1) * batch_size
    out: list[int] = []
    for epoch in range(first // n, (last - 1) // n + 1):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
        lo, hi = max(first - epoch * n, 0), min(last - epoch * n, n)
        out.extend(perm[lo:hi])
    return out
