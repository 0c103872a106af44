"""Sequence log-probs of completions (token ids) for a vision-language batch.

Every completion of an example is scored in ONE forward pass: rows are [prompt+image, completion_k]
for all examples and columns, and the image is the full, unmasked image.  Completions are token
ids, never re-tokenised text, so policy and reference score exactly the same tokens.

Encode once per step: `encode_columns` runs the processor once per example (images decoded and
processed once) and the same encoding feeds the policy and the reference forwards, for every
column (chosen, external, BDHS); the vision tower runs once per example, not once per column
(`shared_image_features`).  With `chunk_size` the log-probs are computed from the last hidden
states on completion tokens only, a chunk at a time, never materialising [rows, T, vocab] logits."""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Sequence

import torch

from mmbench.harness.generation import GenerationRequest
from mmbench.trainers.losses import sequence_logps


@dataclass
class EncodedColumns:
    """One processor call for a step's examples; completion rows are built per column subset."""

    adapter: object
    prompt_batch: dict
    columns: dict[str, Sequence[Sequence[int]]]
    features: dict = field(default_factory=dict)  # a FROZEN tower's output, shared by policy and reference

    def rows(self, names: Sequence[str]) -> dict:
        return self.adapter.completion_rows(self.prompt_batch, [self.columns[n] for n in names])

    @property
    def size(self) -> int:
        return int(self.prompt_batch["input_ids"].shape[0])


def encode_columns(adapter, requests: Sequence[GenerationRequest],
                   columns: dict[str, Sequence[Sequence[int]]]) -> EncodedColumns:
    return EncodedColumns(adapter, adapter.encode_prompts(requests, padding_side="right"), dict(columns))


def forward_logps(model, encoded: EncodedColumns, names: Sequence[str] | None = None,
                  chunk_size: int = 0, share_prefix: bool = False) -> dict[str, torch.Tensor]:
    """{column: [B] log-probs} for `names` (default: every column) under `model`.

    With `share_prefix` (families.SHARED_PREFIX, logits = lm_head(hidden)) the prompt and image run
    ONCE per example and every column continues from its KV cache: at 7B with AnyRes the prompt is
    ~2 900 tokens and a completion ~100, so the forward (and backward) work drops ~k-fold.  The
    values equal separate rows to float rounding (a different batch shape), not bit for bit."""
    names = list(encoded.columns) if names is None else list(names)
    from mmbench.harness import families

    if share_prefix and families.shares_prefix(model) and _chunkable(model) and _right_padded(encoded):
        logps = _prefix_shared_logps(model, encoded, names, chunk_size)
    else:
        batch = encoded.rows(names)
        labels = batch.pop("labels")
        batch.pop("prompt_lengths")
        with shared_image_features(model, len(names), memo=encoded.features):
            logps = _logps(model, batch, labels, chunk_size)
    size = encoded.size
    return {name: logps[i * size:(i + 1) * size] for i, name in enumerate(names)}


def completion_logps(adapter, model, requests: Sequence[GenerationRequest],
                     columns: dict[str, Sequence[Sequence[int]]], chunk_size: int = 0,
                     share_prefix: bool = False) -> dict[str, torch.Tensor]:
    """{column: [B] log-probs}; `model` may be the policy or the reference (same tokenizer)."""
    return forward_logps(model, encode_columns(adapter, requests, columns), chunk_size=chunk_size,
                         share_prefix=share_prefix)


# ---- one prompt forward, every completion continuing from its cache --------------------------------

def _prefix_shared_logps(model, encoded: EncodedColumns, names: Sequence[str], chunk_size: int) -> torch.Tensor:
    """[k·B] log-probs, column-major like `forward_logps`' rows."""
    prompt = encoded.prompt_batch  # right-padded: positions 0..n-1, pads after the last token
    k, size = len(names), encoded.size
    lengths = prompt["attention_mask"].sum(dim=1)
    device = prompt["input_ids"].device
    # Completion rows example-major (example b, column c -> b·k + c), as the cache repeats them.
    completions = [list(encoded.columns[name][b]) for b in range(size) for name in names]
    width = max(len(c) for c in completions)
    pad = encoded.adapter.pad_token_id
    ids = torch.full((len(completions), width), pad, dtype=prompt["input_ids"].dtype)
    labels = torch.full((len(completions), width + 1), -100, dtype=ids.dtype)
    for row, comp in enumerate(completions):
        ids[row, :len(comp)] = torch.as_tensor(comp, dtype=ids.dtype)
        labels[row, 1:len(comp) + 1] = ids[row, :len(comp)]
    ids, labels = ids.to(device), labels.to(device)
    attention = torch.cat([prompt["attention_mask"].repeat_interleave(k, dim=0), labels[:, 1:] != -100], dim=1)
    positions = lengths.repeat_interleave(k)[:, None] + torch.arange(width, device=device)
    with _hidden_states(model) as captured, shared_image_features(model, 1, memo=encoded.features):
        output = model(**prompt, use_cache=True)
        cache = output["cache"] if "cache" in output else output["past_key_values"]  # transformers 5 / 4
        prompt_hidden = captured.pop()
        cache.batch_repeat_interleave(k)
        name = "cache" if "cache" in inspect.signature(_unwrap(model).forward).parameters else "past_key_values"
        model(input_ids=ids, attention_mask=attention.long(), position_ids=positions, use_cache=True, **{name: cache})
        completion_hidden = captured.pop()
    last = prompt_hidden[torch.arange(size, device=device), lengths - 1].repeat_interleave(k, dim=0)
    # Position 0 (the prompt's last state) predicts the first completion token, and so on.
    hidden = torch.cat([last[:, None], completion_hidden], dim=1)
    head = _unwrap(model).get_output_embeddings()
    mask = labels != -100
    if chunk_size > 0:
        values = chunked_sequence_logps(head, hidden, labels, mask, chunk_size)
    else:
        values = sequence_logps(head(hidden), labels, mask)
    return values.view(size, k).T.reshape(-1)


def _right_padded(encoded: EncodedColumns) -> bool:
    mask = encoded.prompt_batch["attention_mask"]
    steps = torch.arange(mask.shape[1], device=mask.device)
    return bool(torch.equal(mask.bool(), steps[None, :] < mask.sum(dim=1, keepdim=True)))


@contextlib.contextmanager
def _hidden_states(model):
    """While active, the output head returns nothing and keeps what it was given (a list, in call order)."""
    head = _unwrap(model).get_output_embeddings()
    captured: list = []

    def capture(hidden, *args, **kwargs):
        captured.append(hidden)
        return hidden[..., :0]

    original = head.forward
    head.forward = capture
    try:
        yield captured
    finally:
        del head.forward
        if head.forward != original:  # a head whose forward was itself an instance attribute
            head.forward = original


# ---- log-probs without full-vocabulary logits ------------------------------------------------------

def _logps(model, batch: dict, labels: torch.Tensor, chunk_size: int) -> torch.Tensor:
    mask = labels != -100
    if chunk_size <= 0 or not _chunkable(model):
        outputs = model(**batch, use_cache=False)
        return sequence_logps(outputs.logits, labels, mask)
    with _hidden_states(model) as captured:  # the hidden states lm_head would see; no logits made
        model(**batch, use_cache=False)
    head = _unwrap(model).get_output_embeddings()
    return chunked_sequence_logps(head, captured.pop(), labels, mask, chunk_size)


def chunked_sequence_logps(head, hidden: torch.Tensor, labels: torch.Tensor, loss_mask: torch.Tensor,
                           chunk_size: int) -> torch.Tensor:
    """`sequence_logps(head(hidden), labels, loss_mask)` computed on completion tokens only,
    `chunk_size` tokens at a time; under autograd each chunk's logits are recomputed in the
    backward pass (activation checkpointing), so at most one chunk of logits is ever alive."""
    from torch.utils.checkpoint import checkpoint

    select = loss_mask[:, 1:].bool()
    rows = select.nonzero()[:, 0]
    states = hidden[:, :-1][select]
    targets = labels[:, 1:][select]
    total = hidden.new_zeros(hidden.shape[0], dtype=torch.float32)
    for start in range(0, states.shape[0], chunk_size):
        part = (states[start:start + chunk_size], targets[start:start + chunk_size])
        if torch.is_grad_enabled() and states.requires_grad:
            values = checkpoint(_token_logps, head, *part, use_reentrant=False)
        else:
            values = _token_logps(head, *part)
        total = total.index_add(0, rows[start:start + chunk_size], values)
    return total


def _token_logps(head, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = head(states).float()
    return torch.gather(logits.log_softmax(-1), 1, targets.unsqueeze(-1)).squeeze(-1)


def _chunkable(model) -> bool:
    """Families whose logits are exactly lm_head(hidden): no soft-capping or scaling after it."""
    inner = _unwrap(model)
    if inner.get_output_embeddings() is None:
        return False
    configs = [inner.config, getattr(inner.config, "text_config", None)]
    return not any(getattr(c, name, None) for c in configs if c is not None
                   for name in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"))


def _unwrap(model):
    from mmbench.harness.families import _base_model

    return _base_model(model)


# ---- one vision-tower pass per example -------------------------------------------------------------

@contextlib.contextmanager
def shared_image_features(model, repeats: int, memo: dict | None = None):
    """While active, a vision-tower call whose every tensor input is `repeats` identical stacked
    copies runs on one copy and returns its output stacked `repeats` times (exact: the tower sees
    each image independently).  Inputs that are not such copies run unchanged.

    With `memo` (one per encoded step) a FROZEN tower's output is also kept and reused by the next
    forward on the same images — the reference's frozen tower is the policy's (same base weights,
    never trained), so the step runs the vision tower once in all."""
    if repeats <= 1 and memo is None:
        yield
        return
    from mmbench.harness import families

    inner = _unwrap(model)
    tower_name = families.model_parts(inner).vision_tower
    if tower_name is None:
        yield
        return
    tower = inner.get_submodule(tower_name)
    # Reusable output: no trainable weight and nothing random (dropout in train mode) inside.
    config = getattr(tower, "config", None)
    random = tower.training and (any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in tower.modules()) or any(
        getattr(config, name, 0) for name in ("attention_dropout", "dropout", "hidden_dropout_prob")))
    frozen = not random and not any(p.requires_grad for p in tower.parameters())
    original = tower.forward

    def forward(*args, **kwargs):
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor) and v.dim() > 0]
        k = repeats
        if not tensors or any(t.shape[0] % k for t in tensors) or not all(
                torch.equal(t[:t.shape[0] // k], t[j * (t.shape[0] // k):(j + 1) * (t.shape[0] // k)])
                for t in tensors for j in range(1, k)):
            k = 1
        cut = {id(t): t[:t.shape[0] // k] for t in tensors}
        new_args = tuple(cut.get(id(a), a) if isinstance(a, torch.Tensor) else a for a in args)
        new_kwargs = {key: cut.get(id(v), v) if isinstance(v, torch.Tensor) else v for key, v in kwargs.items()}
        sliced = [cut[id(t)] for t in tensors]
        key = (torch.is_autocast_enabled(), torch.is_grad_enabled(), tuple(t.shape for t in sliced))
        stored = memo.get("tower") if (memo is not None and frozen) else None
        if stored is not None and stored[0][:1] == key[:1] and stored[0][2] == key[2] and all(
                a.device == b.device and torch.equal(a, b) for a, b in zip(stored[1], sliced)):
            output = stored[2]
        else:
            output = original(*new_args, **new_kwargs)
            if memo is not None and frozen:
                memo["tower"] = (key, sliced, output)
        return _tile(output, k) if k > 1 else output

    tower.forward = forward
    try:
        yield
    finally:
        del tower.forward
        if tower.forward != original:
            tower.forward = original


def _tile(value, repeats: int):
    if isinstance(value, torch.Tensor):
        return torch.cat([value] * repeats) if value.dim() > 0 else value
    if isinstance(value, tuple) and not hasattr(value, "keys"):
        return type(value)(_tile(v, repeats) for v in value) if not hasattr(value, "_fields") else \
            type(value)(*(_tile(v, repeats) for v in value))
    if isinstance(value, list):
        return [_tile(v, repeats) for v in value]
    if hasattr(value, "keys"):  # transformers ModelOutput (an ordered dict and a dataclass): a tiled copy
        return type(value)(**{key: _tile(value[key], repeats) for key in value.keys()})
    return value
