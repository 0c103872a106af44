"""The SFT set and the POVID-style preference set of the world, and how to read them back.

SFT rows ({"id","scene","image","task","prompt","response"}) cover 30k training scenes.  Their
images are not stored: `"image": "scene:t00042"` names the scene, and `load_world_image`
renders it on demand (0.7 ms; 30k PNGs would cost ~250 MB and most of the build time).  The
preference set is small, so its images are written as PNGs like the benchmarks'.

Prompts use the benchmarks' own wording: short-answer questions end with the single-word
instruction POPE, TextVQA and GQA append, detailed descriptions use the coco_recall prompt.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from mmbench.benchmarks.base import SINGLE_WORD
from mmbench.world.language import PROMPT_DETAIL, shows, they_are
from mmbench.world.qa import QA, exist
from mmbench.world.qa_open import FAMILIES
from mmbench.world.scenes import (
    COLOURS, KINDS, PARTNER, PREFERRED_COLOUR, TRAIN_PRIOR, Obj, Scene, read_scenes, sample_scene, stable_int,
    with_objects,
)

# (family, weight): about half existence questions, as world-notes found necessary for binding.
SFT_MIX = [
    ("exist", 40),
    ("colour", 6),
    ("size", 2),
    ("count", 5),
    ("total", 3),
    ("colour_count", 2),
    ("position", 3),
    ("what_at", 3),
    ("colour_at", 2),
    ("rel_yesno", 3),
    ("rel_what", 2),
    ("rel_colour", 1),
    ("choose", 1),
    ("both", 2),
    ("same_colour", 1),
    ("larger", 1),
    ("more", 1),
    ("reading", 4),
    ("reading_at", 1),
    ("word_pos", 1),
    ("caption", 4),
    ("detail", 6),
    ("false_premise", 1),
    ("environment", 1),
    ("holistic", 2),
    ("unusual", 1),
    ("removal", 1),
    ("shared_colour", 1),
]
SHORT_SHARE = 0.6  # of questions that have a single-word form, how many are asked that way
PREF_MIX = [
    ("detail", 30),
    ("caption", 15),
    ("exist", 25),
    ("colour", 10),
    ("count", 10),
    ("position", 5),
    ("holistic", 5),
]


def train_scenes(seed: int, ids: list[str]) -> list[Scene]:
    return [sample_scene(seed, sid, TRAIN_PRIOR) for sid in ids]


def preference_scenes(seed: int, ids: list[str]) -> list[Scene]:
    """Training-prior scenes, every other one holding a broken pair, so that about half the
    rejected answers can name the absent co-occurrence partner (the error DPO should unlearn)."""
    return [
        sample_scene(
            seed, sid, TRAIN_PRIOR, accept=(lambda s: bool(s.broken_pairs())) if i % 2 == 0 else None
        )
        for i, sid in enumerate(ids)
    ]


def _prompt(qa: QA, short: bool) -> tuple[str, str]:
    if short and qa.short is not None:
        return f"{qa.question}\n{SINGLE_WORD}", qa.short
    if qa.family == "detail":
        return PROMPT_DETAIL, qa.long  # the exact coco_recall prompt
    return qa.question, qa.long


def sft_rows(seed: int, scenes: list[Scene], per_scene: int = 3) -> Iterator[dict]:
    families, weights = [f for f, _ in SFT_MIX], [w for _, w in SFT_MIX]
    for scene in scenes:
        rng = random.Random(stable_int("sft", seed, scene.id))
        for k in range(per_scene):
            qa = None
            while qa is None:
                qa = FAMILIES[rng.choices(families, weights=weights, k=1)[0]](scene, rng)
            prompt, response = _prompt(qa, rng.random() < SHORT_SHARE)
            yield {
                "id": f"{scene.id}-{k}",
                "scene": scene.id,
                "image": f"scene:{scene.id}",
                "task": qa.family,
                "prompt": prompt,
                "response": response,
            }


# ---------------------------------------------------------------- hallucination injection


def _swap(scene: Scene, obj: Obj, kind: str, colour: str) -> Scene:
    """`obj` rewritten as another kind in the same cell: the object count stays the same."""
    return with_objects(scene, [replace(o, kind=kind, colour=colour) if o is obj else o for o in scene.objects])


def corrupt(scene: Scene, rng: random.Random, how: str) -> Scene | None:
    """The scene a hallucinating answer would describe, rewritten the way POVID's GPT-4V prompt
    rewrites an answer — objects swapped for their co-occurrence partner or another kind, a
    colour, size, count or position changed — always with as many objects as the real scene,
    so the rejected answer is as long as the chosen one; None if `how` cannot apply."""
    if not scene.objects:
        return None
    if how == "partner":  # a present object becomes the partner its absence breaks
        broken = [(kind, partner) for kind, partner in scene.broken_pairs()]
        if not broken:
            return None
        kind, missing = rng.choice(broken)
        obj = rng.choice(scene.of(kind))
        return _swap(scene, obj, missing, PREFERRED_COLOUR[missing])
    if how == "colour":
        obj = rng.choice(scene.objects)
        wrong = (
            PREFERRED_COLOUR[obj.kind]
            if obj.colour != PREFERRED_COLOUR[obj.kind]
            else rng.choice([c for c in COLOURS if c != obj.colour])
        )
        return with_objects(scene, [replace(o, colour=wrong) if o is obj else o for o in scene.objects])
    if how == "size":
        obj = rng.choice(scene.objects)
        return with_objects(scene, [replace(o, hard=not o.hard) if o is obj else o for o in scene.objects])
    if how == "count":  # one kind gains an object that another kind loses
        kinds = scene.kinds()
        if len(kinds) < 2:
            return None
        grow, shrink = rng.sample(kinds, 2)
        model = scene.of(grow)[0]
        return _swap(scene, rng.choice(scene.of(shrink)), grow, model.colour)
    if how == "position" and scene.empty_cells():
        obj = rng.choice(scene.objects)
        moved = replace(obj, cell=rng.choice(scene.empty_cells()))
        return with_objects(scene, [o for o in scene.objects if o is not obj] + [moved])
    if how == "object":
        absent = [k for k in KINDS if not scene.of(k)]
        if not absent:
            return None
        return _swap(scene, rng.choice(scene.objects), rng.choice(absent), rng.choice(COLOURS))
    return None


CORRUPTIONS = ("partner", "colour", "size", "count", "position", "object")


def _contradicts(answer: str, scene: Scene) -> bool:
    """Whether the scene judge would find a hallucination (a reordered caption is none)."""
    from mmbench.world.claims import extract_facts, question_context
    from mmbench.world.truth import false_claims

    return bool(false_claims(extract_facts(answer, question_context("", scene)), scene))


def preference_pair(scene: Scene, seed: int, key: str) -> dict | None:
    """One POVID-style pair: chosen = ground truth, rejected = the same answer about a
    corrupted scene (hallucinations injected), the co-occurrence partner first when possible."""
    rng = random.Random(stable_int("pref", seed, key))
    family = rng.choices([f for f, _ in PREF_MIX], weights=[w for _, w in PREF_MIX], k=1)[0]
    short = family == "exist" and rng.random() < 0.3
    if family == "exist":
        partners = [p for _, p in scene.broken_pairs()]
        kind = rng.choice(partners) if partners and rng.random() < 0.7 else rng.choice(KINDS)
        chosen = exist(scene, rng, kind=kind)
        if scene.of(kind):  # flip a true "yes": the object was taken for another kind
            absent = [k for k in KINDS if not scene.of(k)] or [k for k in KINDS if k != kind]
            other = PARTNER[kind] if PARTNER[kind] in absent else rng.choice(absent)
            bad = scene
            for obj in scene.of(kind):
                bad = _swap(bad, next(o for o in bad.objects if o.cell == obj.cell), other, PREFERRED_COLOUR[other])
            how = "deny"
        elif scene.objects:
            # Flip a true "no": an object other than the one that suggests `kind` is taken for it.
            options = [o for o in scene.objects if PARTNER[o.kind] != kind] or list(scene.objects)
            bad = _swap(scene, rng.choice(options), kind, PREFERRED_COLOUR[kind])
            how = "partner" if kind in partners else "object"
        else:
            return None
        rejected = exist(bad, rng, kind=kind)
        # The flipped answer keeps the true answer's shape and length, as a GPT-4V rewrite does:
        # a false "No" names what the object was taken for; a false "Yes" lists the rewritten scene.
        if how == "deny":
            cells = {o.cell for o in scene.of(kind)}
            taken = [o for o in bad.objects if o.cell in cells]
            rejected = replace(rejected, long=f"No, there is no {kind} in the image. {they_are(taken)}")
        else:
            rejected = replace(rejected, long=f"{rejected.long.split('. ')[0]}. {shows(bad)}")
    else:
        qa_seed = rng.randrange(2**32)
        chosen = FAMILIES[family](scene, random.Random(qa_seed))
        if chosen is None:
            return None
        order = ["partner"] + rng.sample(CORRUPTIONS[1:], len(CORRUPTIONS) - 1)
        rejected, how = None, None
        for how in order:
            bad = corrupt(scene, rng, how)
            candidate = FAMILIES[family](bad, random.Random(qa_seed)) if bad is not None else None
            # POVID rewrites an answer at about its length: a rewrite that grows or shrinks the
            # answer would teach "say less" (or more) instead of "say what is there".
            if candidate and candidate.question == chosen.question and _contradicts(candidate.long, scene) \
                    and abs(len(candidate.long.split()) - len(chosen.long.split())) <= 1:
                rejected = candidate
                break
        if rejected is None:
            return None
    prompt, good = _prompt(chosen, short)
    _, worse = _prompt(rejected, short)
    if good == worse:
        return None
    return {"prompt": prompt, "chosen": good, "rejected": worse, "task": chosen.family, "corruption": how}


def preference_rows(seed: int, scenes: list[Scene], per_scene: int = 3) -> tuple[list[dict], list[dict]]:
    """(train rows, prompt-only rows for online sampling — same ids, with the reference answer)."""
    train, prompts = [], []
    for scene in scenes:
        k, asked = 0, set()
        for attempt in range(per_scene * 6):
            if k == per_scene:
                break
            pair = preference_pair(scene, seed, f"{scene.id}/{attempt}")
            if pair is None or pair["prompt"] in asked:  # one pair per prompt and image
                continue
            asked.add(pair["prompt"])
            rid, image = f"{scene.id}-{k}", f"images/{scene.id}.png"
            train.append({"id": rid, "image": image, **pair})
            prompts.append(
                {
                    "id": rid,
                    "image": image,
                    "prompt": pair["prompt"],
                    "reference": pair["chosen"],
                    "task": pair["task"],
                }
            )
            k += 1
    return train, prompts


def pair_statistics(rows: list[dict]) -> dict:
    """Chosen vs rejected: length in words, object mentions, and what the corruptions were."""
    import re
    from collections import Counter

    def words(text: str) -> int:
        return len(text.split())

    def objects(text: str) -> int:
        return sum(1 for w in re.findall(r"[a-z]+", text.lower()) if w in KINDS or w.rstrip("s") in KINDS)

    n = max(1, len(rows))
    longer = sum(words(r["rejected"]) > words(r["chosen"]) for r in rows)
    shorter = sum(words(r["rejected"]) < words(r["chosen"]) for r in rows)
    return {
        "pairs": len(rows),
        "words": {"chosen": round(sum(words(r["chosen"]) for r in rows) / n, 2),
                  "rejected": round(sum(words(r["rejected"]) for r in rows) / n, 2)},
        "objects": {"chosen": round(sum(objects(r["chosen"]) for r in rows) / n, 2),
                    "rejected": round(sum(objects(r["rejected"]) for r in rows) / n, 2)},
        "rejected_longer": round(longer / n, 3), "rejected_shorter": round(shorter / n, 3),
        "short_answers": round(sum(words(r["chosen"]) <= 2 for r in rows) / n, 3),
        "corruptions": dict(sorted(Counter(r["corruption"] for r in rows).items())),
    }


# ---------------------------------------------------------------- reading back


@lru_cache(maxsize=4)
def _read_cached(path: str, stamp: int) -> dict[str, Scene]:
    return read_scenes(Path(path))


def _scenes(path: str) -> dict[str, Scene]:
    # Keyed by modification time too: a world rebuilt in place is read afresh.
    return _read_cached(path, Path(path).stat().st_mtime_ns)


def scene_file(world_dir: Path, scene_id: str) -> Path:
    name = {"t": "train", "p": "prefs", "h": "heldout"}[scene_id[0]]
    return Path(world_dir) / "scenes" / f"{name}.jsonl"


def load_world_image(world_dir: str | Path, ref: str):
    """A PIL image for an `image` field of a world file: "scene:<id>" renders the scene,
    anything else is a path relative to the world folder."""
    from PIL import Image

    from mmbench.world.render import render_scene

    world_dir = Path(world_dir)
    if ref.startswith("scene:"):
        sid = ref.split(":", 1)[1]
        return render_scene(_scenes(str(scene_file(world_dir, sid)))[sid])
    with Image.open(world_dir / ref) as image:
        return image.convert("RGB")


def read_jsonl(path: Path) -> Iterator[dict]:
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def iter_sft_examples(
    world_dir: str | Path, *, limit: int | None = None, tasks: set[str] | None = None
) -> Iterator[tuple]:
    """(PIL image, prompt, response) per SFT row, in file order; images rendered on the fly.
    `tasks` keeps only some families (row "task"), e.g. {"exist"} for a binding phase.  Rows of
    one scene share one image object (copy it before drawing on it)."""
    from mmbench.world.render import render_scene

    world_dir = Path(world_dir)
    scenes = _scenes(str(world_dir / "scenes" / "train.jsonl"))
    last_id, last_image, count = None, None, 0
    for row in read_jsonl(world_dir / "sft" / "train.jsonl"):
        if tasks is not None and row["task"] not in tasks:
            continue
        if row["scene"] != last_id:  # consecutive rows share a scene: render it once
            last_id, last_image = row["scene"], render_scene(scenes[row["scene"]])
        yield last_image, row["prompt"], row["response"]
        count += 1
        if limit is not None and count >= limit:
            return


class SftExamples(Sequence):
    """The SFT set as a lazy sequence of (PIL image, prompt, response): random access for a
    shuffling training loop without holding 30k images in memory (each is rendered on access)."""

    def __init__(self, world_dir: str | Path, *, tasks: set[str] | None = None):
        world_dir = Path(world_dir)
        self.scenes = _scenes(str(world_dir / "scenes" / "train.jsonl"))
        rows = read_jsonl(world_dir / "sft" / "train.jsonl")
        self.rows = [(r["scene"], r["prompt"], r["response"], r["task"]) for r in rows
                     if tasks is None or r["task"] in tasks]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        from mmbench.world.render import render_scene

        scene, prompt, response, _ = self.rows[index]
        return render_scene(self.scenes[scene]), prompt, response

    def task(self, index: int) -> str:
        return self.rows[index][3]

    def scene(self, index: int) -> Scene:
        """The scene graph behind an example (e.g. for `scenes.patch_labels` auxiliary targets)."""
        return self.scenes[self.rows[index][0]]
