"""World POPE: yes/no object-existence questions with POPE's three negative samplers.

Follows the POPE reference construction: per image, its first `k` annotated objects are the
positives (k = 3, fewer when the scene holds fewer kinds), and each positive is followed by one
negative that is neither in the image nor already asked about:
  random      — any annotated category, uniformly;
  popular     — the most frequent category over the ground-truth annotations;
  adversarial — the category that co-occurs most with that positive in the annotations;
falling back to random when the ordered list runs out.  Frequencies and co-occurrences are
counted over the POPE scenes' own annotations, as POPE counts them over its chosen images.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from mmbench.world.scenes import KINDS, Scene, stable_int

SPLITS = ("random", "popular", "adversarial")
SAMPLE_NUM = 3
TEMPLATE = "Is there {article} {kind} in the image?"


def question_text(kind: str) -> str:
    return TEMPLATE.format(article="an" if kind[0] in "aeiou" else "a", kind=kind)


def annotations(scenes: Sequence[Scene]) -> list[list[str]]:
    """Ground-truth object list per scene (distinct kinds, in cell order)."""
    return [scene.kinds() for scene in scenes]


def frequency_order(annotated: Sequence[Sequence[str]]) -> list[tuple[str, int]]:
    counts = Counter(k for objects in annotated for k in objects)
    # Ties broken by the fixed kind order, so the list never depends on hashing.
    return sorted(counts.items(), key=lambda item: (-item[1], KINDS.index(item[0])))


def cooccurrence_order(annotated: Sequence[Sequence[str]]) -> dict[str, list[tuple[str, int]]]:
    co: dict[str, Counter] = {k: Counter() for k in KINDS}
    for objects in annotated:
        for a in objects:
            for b in objects:
                if a != b:
                    co[a][b] += 1
    return {
        k: sorted(c.items(), key=lambda item: (-item[1], KINDS.index(item[0]))) for k, c in co.items() if c
    }


def _random_negative(rng: random.Random, pool: list[str], excluded: set[str]) -> str | None:
    options = [k for k in pool if k not in excluded]
    if not options:
        return None
    while True:  # POPE draws until it hits an allowed category
        choice = rng.choice(pool)
        if choice not in excluded:
            return choice


def pope_rows(scenes: Sequence[Scene], seed: int, image_of=lambda s: f"images/{s.id}.png") -> list[dict]:
    annotated = annotations(scenes)
    popular = [k for k, _ in frequency_order(annotated)]
    co = {k: [o for o, _ in v] for k, v in cooccurrence_order(annotated).items()}
    pool = popular  # POPE samples random negatives from the categories seen in the annotations
    rows: list[dict] = []
    for split in SPLITS:
        rng = random.Random(stable_int("pope", seed, split))
        for scene, objects in zip(scenes, annotated):
            history: list[str] = []
            number = 0
            for positive in objects[:SAMPLE_NUM]:
                history.append(positive)
                excluded = set(history) | set(objects)
                if split == "random":
                    negative = _random_negative(rng, pool, excluded)
                else:
                    ordered = popular if split == "popular" else co.get(positive, [])
                    negative = next((k for k in ordered if k not in excluded), None)
                    if negative is None:
                        negative = _random_negative(rng, pool, excluded)
                if negative is None:
                    continue
                history.append(negative)
                for kind, label in ((positive, "yes"), (negative, "no")):
                    rows.append(
                        {
                            "question_id": f"{scene.id}-{number}",
                            "question": question_text(kind),
                            "answer": label,
                            "image": image_of(scene),
                            "category": split,
                            "image_source": scene.id,
                            "object": kind,
                        }
                    )
                    number += 1
    return rows


def pope_statistics(scenes: Sequence[Scene]) -> dict:
    annotated = annotations(scenes)
    return {
        "frequency": dict(frequency_order(annotated)),
        "cooccurrence": {k: dict(v) for k, v in cooccurrence_order(annotated).items()},
    }
