"""The step functions of the built-in trainers — three plain functions over one DPO core.

- dpo:       DPO(chosen, rejected) on the preference set.
- bdhs:      Eq. 5, γ·DPO(chosen, external rejected) + (1−γ)·DPO(chosen, BDHS rejected), all three
             completions scored in one forward pass; γ = 1 never touches BDHS, γ = 0 never the
             external answer.
- mixed-dpo: Eq. 4, per example an offline pair with probability p, else an online pair: two
             samples from the current policy ranked by the annotator (ties dropped), for the
             example's prompt or, with a prompt source (--prompts), for a prompt drawn from it.

All three weigh per-source DPO terms with the one `losses.preference_loss`.
"""

from __future__ import annotations

from typing import Sequence

import torch

from mmbench.trainers.bdhs import suppress_image_token
from mmbench.trainers.data import PreferenceExample
from mmbench.trainers.logps import EncodedColumns, encode_columns, forward_logps
from mmbench.trainers.loop import TrainContext
from mmbench.trainers.losses import PairLogps, preference_loss, term_metrics
from mmbench.trainers.refcache import example_key


def reference_logps(ctx: TrainContext, examples: Sequence[PreferenceExample], columns: dict[str, list],
                    cached: set[str], encoded: EncodedColumns | None = None) -> dict[str, torch.Tensor]:
    """Reference log-probs; columns in `cached` (offline completions) go through the disk cache.

    Columns with any value missing are scored by the reference in one forward pass over
    `encoded` (the step's single encoding, shared with the policy forward)."""
    out: dict[str, list[float | None]] = {}
    for name, ids in columns.items():
        if name in cached and ctx.ref_cache is not None:
            out[name] = ctx.ref_cache.get_many(ctx.reference_fingerprint,
                                               [(example_key(e), c) for e, c in zip(examples, ids)])
        else:
            out[name] = [None] * len(examples)
    missing = [name for name, values in out.items() if any(v is None for v in values)]
    if missing:
        if encoded is None:
            encoded = encode_columns(ctx.adapter, [e.request for e in examples], columns)
        with torch.no_grad(), ctx.reference() as reference:
            computed = forward_logps(reference, encoded, missing, chunk_size=_chunk(ctx),
                                     share_prefix=_share_prefix(ctx))
        fresh = []
        for name in missing:
            values = computed[name].tolist()
            for i, value in enumerate(values):
                if out[name][i] is None:
                    out[name][i] = value
                    if name in cached:
                        fresh.append((example_key(examples[i]), columns[name][i], value))
        if ctx.ref_cache is not None and fresh:
            ctx.ref_cache.put_many(ctx.reference_fingerprint, fresh)
    device = ctx.adapter.device
    return {name: torch.tensor(values, device=device) for name, values in out.items()}


def _chunk(ctx: TrainContext) -> int:
    return int(getattr(ctx.config, "logp_chunk_size", 0) or 0)


def _share_prefix(ctx: TrainContext) -> bool:
    return bool(getattr(ctx.config, "share_prefix", False))


def scored_logps(ctx: TrainContext, examples: Sequence[PreferenceExample], columns: dict[str, list],
                 cached: set[str]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(policy, reference) log-probs of every column from ONE encoding of the examples."""
    encoded = encode_columns(ctx.adapter, [e.request for e in examples], columns)
    reference = reference_logps(ctx, examples, columns, cached, encoded)
    policy = forward_logps(ctx.policy, encoded, chunk_size=_chunk(ctx), share_prefix=_share_prefix(ctx))
    return policy, reference


def _ids(ctx: TrainContext, texts: Sequence[str]) -> list[list[int]]:
    return [ctx.adapter.completion_ids(t) for t in texts]


def _online_bdhs(ctx: TrainContext) -> bool:
    return bool(getattr(ctx.config.options, "online_bdhs", False))  # dpo has no BDHS options


def _bdhs_column(ctx: TrainContext, examples: Sequence[PreferenceExample], step: int) -> list[list[int]]:
    if not _online_bdhs(ctx):
        return [ctx.offline_bdhs[e.id].ids for e in examples]
    from mmbench.trainers.bdhs import sample_negatives

    ctx.policy.eval()
    negatives = sample_negatives(ctx.adapter, examples, ctx.config.options.sampler, ctx.embed,
                                 seed_offset=step * 100_003)
    ctx.policy.train()
    return [n.ids for n in negatives]


def gamma_step(ctx: TrainContext, examples: Sequence[PreferenceExample], step: int, gamma: float | None = None):
    """Eq. 5: sources "external" (the data's rejected answer) and "bdhs", weighted γ and 1 − γ."""
    gamma = ctx.config.options.gamma if gamma is None else gamma
    columns = {"chosen": _ids(ctx, [e.chosen for e in examples])}
    if gamma > 0:
        columns["external"] = _ids(ctx, [e.rejected for e in examples])
    if gamma < 1:
        columns["bdhs"] = _bdhs_column(ctx, examples, step)
    cached = {"chosen", "external"} | (set() if _online_bdhs(ctx) else {"bdhs"})
    policy, reference = scored_logps(ctx, examples, columns, cached)
    pairs = {negative: PairLogps.of(policy, reference, "chosen", negative)
             for negative in columns if negative != "chosen"}
    loss, terms = preference_loss(pairs, {"external": gamma, "bdhs": 1.0 - gamma}, ctx.config.beta)
    return loss, term_metrics(terms)


def dpo_step(ctx: TrainContext, examples: Sequence[PreferenceExample], step: int):
    return gamma_step(ctx, examples, step, gamma=1.0)


# What each step scores with the reference, for `loop.reference_needed`: {column: ids per example}
# when every completion is offline (then a full cache means no reference model), else None.
def _gamma_columns(ctx: TrainContext, examples: Sequence[PreferenceExample], gamma: float | None = None):
    gamma = ctx.config.options.gamma if gamma is None else gamma
    columns = {"chosen": _ids(ctx, [e.chosen for e in examples])}
    if gamma > 0:
        columns["external"] = _ids(ctx, [e.rejected for e in examples])
    if gamma < 1:
        if _online_bdhs(ctx) or any(e.id not in ctx.offline_bdhs for e in examples):
            return None
        columns["bdhs"] = [ctx.offline_bdhs[e.id].ids for e in examples]
    return columns


def _mixed_columns(ctx: TrainContext, examples: Sequence[PreferenceExample]):
    if ctx.config.options.p < 1:
        return None  # online pairs are sampled from the policy as it trains
    return {"chosen": _ids(ctx, [e.chosen for e in examples]), "rejected": _ids(ctx, [e.rejected for e in examples])}


gamma_step.reference_columns = _gamma_columns
dpo_step.reference_columns = lambda ctx, examples: _gamma_columns(ctx, examples, gamma=1.0)


def online_pairs(ctx: TrainContext, examples: Sequence[PreferenceExample], step: int):
    """Two policy samples per example, ranked by the annotator; returns (positions of the examples
    kept, chosen ids, rejected ids).  Sampling noise comes from a per-step generator shared by all
    processes."""
    from mmbench.harness.judging import PairwiseItem

    options = ctx.config.options
    requests = [e.request for e in examples] * 2
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.step_generator(step, salt=1)))
                      + ctx.accelerator.process_index)
    ctx.policy.eval()
    batch = ctx.adapter.encode_prompts(requests, padding_side="left")
    with torch.inference_mode():
        out = ctx.adapter.model.generate(**batch, do_sample=True, temperature=options.online_temperature, top_p=1.0,
                                         top_k=0, max_new_tokens=options.online_max_tokens,
                                         pad_token_id=ctx.adapter.pad_token_id,
                                         **suppress_image_token(ctx.adapter.model))
    ctx.policy.train()
    new = out[:, batch["input_ids"].shape[1]:].tolist()
    eos = ctx.adapter.tokenizer.eos_token_id
    samples = [_until_eos(row, eos, ctx.adapter.pad_token_id) for row in new]
    texts = [ctx.adapter.tokenizer.decode(s, skip_special_tokens=True).strip() for s in samples]
    n = len(examples)
    items = [PairwiseItem(prompt=e.prompt, response_a=texts[i], response_b=texts[n + i],
                          image=_image_bytes(e.image), context={"id": e.id, "prompt": e.prompt})
             for i, e in enumerate(examples)]
    verdicts = ctx.annotator.prefer(items)
    kept, chosen, rejected = [], [], []
    for i, verdict in enumerate(verdicts):
        if verdict is None or texts[i] == texts[n + i]:
            continue  # ties carry no preference
        a, b = samples[i], samples[n + i]
        kept.append(i)
        chosen.append(a if verdict == 0 else b)
        rejected.append(b if verdict == 0 else a)
    return kept, chosen, rejected


def _until_eos(row: list[int], eos: int | None, pad: int) -> list[int]:
    out = []
    for token in row:
        if token == eos:
            break
        if token == pad and pad != eos:
            break
        out.append(token)
    return out + ([eos] if eos is not None else [])


def _image_bytes(path) -> bytes | None:
    return None if path is None else open(path, "rb").read()


def _unit_draw(*parts) -> float:
    """A uniform number in [0, 1), a pure function of its parts: every process draws the same
    whatever the sharding, and a resumed run draws it again."""
    import hashlib

    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def offline_coin(seed: int, step: int, example_id: str, p: float) -> bool:
    """α ~ Bernoulli(p) for one example at one step."""
    return _unit_draw(seed, step, example_id) < p


def online_prompts(ctx: TrainContext, examples: Sequence[PreferenceExample], step: int) -> list[PreferenceExample]:
    """What online pairs are sampled for: the examples themselves, or with a prompt source, one of
    its rows per example, drawn from (seed, step, example id) like the coin."""
    if not ctx.prompts:
        return list(examples)
    n = len(ctx.prompts)
    return [ctx.prompts[int(_unit_draw(ctx.config.seed, step, e.id, "prompt") * n)] for e in examples]


def mixed_step(ctx: TrainContext, examples: Sequence[PreferenceExample], step: int):
    """Eq. 4: sources "offline" and "online" with per-example weights, the coin α ~ Bernoulli(p)
    (1/0) and 1 − α, drawn identically on every process; a tied online pair drops its example."""
    cfg = ctx.config
    coins = torch.tensor([offline_coin(cfg.seed, step, e.id, cfg.options.p) for e in examples], dtype=torch.bool)
    offline_rows, online_rows = coins.nonzero().flatten(), (~coins).nonzero().flatten()
    pairs: dict[str, PairLogps] = {}
    if len(offline_rows):
        offline = [examples[i] for i in offline_rows.tolist()]
        columns = {"chosen": _ids(ctx, [e.chosen for e in offline]), "rejected": _ids(ctx, [e.rejected for e in offline])}
        policy, reference = scored_logps(ctx, offline, columns, cached={"chosen", "rejected"})
        pairs["offline"] = PairLogps.of(policy, reference, "chosen", "rejected", rows=offline_rows)
    if len(online_rows):
        prompts = online_prompts(ctx, [examples[i] for i in online_rows.tolist()], step)
        kept, chosen, rejected = online_pairs(ctx, prompts, step)
        if kept:
            policy, reference = scored_logps(ctx, [prompts[i] for i in kept],
                                             {"chosen": chosen, "rejected": rejected}, cached=set())
            pairs["online"] = PairLogps.of(policy, reference, "chosen", "rejected", rows=online_rows[kept])
    share = {"offline_share": float(coins.float().mean())}
    if not pairs:  # every online pair was a tie: a zero loss that still touches the graph
        zero = sum(p.sum() for p in ctx.policy.parameters() if p.requires_grad) * 0.0
        return zero, share
    weights = {"offline": coins.float(), "online": (~coins).float()}
    loss, terms = preference_loss(pairs, {s: weights[s] for s in pairs}, cfg.beta, batch_size=len(examples))
    return loss, {**term_metrics(terms), **share}


mixed_step.reference_columns = _mixed_columns
