"""VLFeedback (`MMInstruction/VLFeedback`): `vlfeedback_80k.jsonl` plus `merged_images.zip`.

Schema checked against the dataset card,
https://huggingface.co/datasets/MMInstruction/VLFeedback/blob/main/README.md (dataset_info):
`id` str, `prompt` str, `models` list of str, `completions` — a sequence of
`{annotations: {Helpfulness, Ethical Considerations, Visual Faithfulness: {Rating: str,
Rationale: str}}, model: str, response: str}` — and `img_path` str (a path inside the unzipped
`merged_images.zip`; pass that folder as --image-root).  Each row has 4 completions from
different models and no fixed pair.  Copies with an embedded `image` column are read too.

Pair rule (documented in the README): a completion's score is the mean of its numeric ratings
(non-numeric ratings such as "N/A" are ignored; a completion with none is not ranked).
`--pairs best` (default): the highest-scoring completion (the first one listed on a tie at the
top) against one completion with a strictly lower score, drawn with a generator seeded by
(--subset-seed, row id) — identical on every run and process.  `--pairs all`: every pair whose
scores differ, the higher one chosen (as the Silkie code built pairs).  Equal scores never form a
pair; a row whose completions all tie gives no pair and is counted as dropped.
"""

from __future__ import annotations

import random

from mmbench.trainers.sources.base import BadRow, Candidate, ParseOptions, SourceFormat, prompt_text, row_id

ASPECTS = ("Helpfulness", "Visual Faithfulness", "Ethical Considerations")


def completions(value) -> list[dict]:
    """A list of completion dicts, whether stored as a list of structs or as a struct of lists
    (how `datasets` returns a `sequence` of dicts)."""
    if isinstance(value, dict):
        keys = list(value)
        length = len(value[keys[0]]) if keys and isinstance(value[keys[0]], list) else 0
        return [{k: value[k][i] for k in keys} for i in range(length)]
    if isinstance(value, list) and all(isinstance(c, dict) for c in value):
        return value
    raise BadRow("`completions` is not a list of {model, response, annotations}")


def score(completion: dict) -> float | None:
    annotations = completion.get("annotations") or {}
    ratings = []
    for aspect in ASPECTS:
        entry = annotations.get(aspect) if isinstance(annotations, dict) else None
        rating = entry.get("Rating") if isinstance(entry, dict) else None
        try:
            ratings.append(float(str(rating).strip()))
        except (TypeError, ValueError):
            continue
    return sum(ratings) / len(ratings) if ratings else None


def parse(row: dict, index: int, options: ParseOptions) -> list[Candidate]:
    rid = row_id(row, index, "id")
    prompt = prompt_text(row.get("prompt"))
    image = row.get("image") if row.get("image") is not None else row.get("img_path")
    column = "image" if row.get("image") is not None else None
    if image is None or image == "":
        raise BadRow("no `img_path`")
    if not (options.need_chosen or options.need_rejected):  # prompt-only: one entry per row
        return [Candidate(rid, index, prompt, None, None, image, column)]
    ranked = []
    for position, completion in enumerate(completions(row.get("completions"))):
        value = score(completion)
        if value is None:
            continue
        response = completion.get("response")
        if not isinstance(response, str) or not response.strip():
            raise BadRow(f"empty response of completion {position} ({completion.get('model')})")
        ranked.append((position, value, response))
    if options.pairs == "all":
        pairs = [(a, b) for a in ranked for b in ranked if a[1] > b[1]]
        out = []
        for a, b in pairs:
            if a[2] == b[2]:
                raise BadRow(f"completions {a[0]} and {b[0]} are identical but rated differently")
            out.append(Candidate(f"{rid}#{a[0]}>{b[0]}", index, prompt, a[2], b[2], image, column))
        return out
    if not ranked:
        return []
    top = max(v for _, v, _ in ranked)
    best = next(c for c in ranked if c[1] == top)
    lower = [c for c in ranked if c[1] < top]
    if not lower:
        return []  # every rated completion ties: no pair
    worse = random.Random(f"{options.seed}:{rid}").choice(lower)
    if worse[2] == best[2]:
        raise BadRow(f"completions {best[0]} and {worse[0]} are identical but rated differently")
    return [Candidate(rid, index, prompt, best[2], worse[2], image, column)]


FORMAT = SourceFormat(
    name="vlfeedback",
    summary="prompt, 4 rated completions (pairs built by a seeded rule, see --pairs), img_path",
    hub_ids=("MMInstruction/VLFeedback",),
    card="https://huggingface.co/datasets/MMInstruction/VLFeedback",
    columns=("id", "prompt", "completions", "img_path"),
    detect=lambda cols: {"prompt", "completions"} <= cols,
    parse=parse,
)
