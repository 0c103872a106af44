"""Sequence log-probs of completions (token ids) for a vision-language batch.

Every completion of an example is scored in ONE forward pass: rows are [prompt+image, completion_k]
for all examples and columns, and the image is the full, unmasked image.  Completions are token
ids, never re-tokenised text, so policy and reference score exactly the same tokens."""

from __future__ import annotations

from typing import Sequence

import torch

from mmbench.harness.generation import GenerationRequest
from mmbench.trainers.losses import sequence_logps


def completion_logps(adapter, model, requests: Sequence[GenerationRequest],
                     columns: dict[str, Sequence[Sequence[int]]]) -> dict[str, torch.Tensor]:
    """{column: [B] log-probs}; `model` may be the policy or the reference (same tokenizer)."""
    names = list(columns)
    flat_requests = [r for _ in names for r in requests]
    flat_completions = [c for name in names for c in columns[name]]
    batch = adapter.encode_completions(flat_requests, flat_completions)
    labels = batch.pop("labels")
    batch.pop("prompt_lengths")
    outputs = model(**batch, use_cache=False)
    logps = sequence_logps(outputs.logits, labels, labels != -100)
    size = len(requests)
    return {name: logps[i * size:(i + 1) * size] for i, name in enumerate(names)}
