"""Scene graphs of the embedded world: what is where, sampled from seeded priors.

A scene is a 64×64 image split into a 2×2 grid of 32-px cells (aligned with 16-px patches);
each cell holds at most one object or the printed word.  The priors are deliberate: four
pairs of kinds that usually appear together and a preferred colour per kind, so that a model
trained on the world learns a language prior that can make it hallucinate.  30% of objects are
"hard" (small and faint), which is what let the prior fill perception gaps in world-notes.md.

Every scene is drawn from its own random stream, keyed by the world seed and the scene id, so
ids alone decide which scenes exist: training (`t…`), preference (`p…`) and held-out
benchmark (`h…`) scenes never share a stream.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

IMAGE_SIZE = 64
CELL = 32
PATCH = 16
KINDS = ("circle", "square", "triangle", "star", "heart", "cross", "diamond", "moon")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("large", "small")
POSITIONS = ("top left", "top right", "bottom left", "bottom right")  # cell index -> name
# Pairs that co-occur by design (the source of the language prior), and each kind's usual colour.
PAIRS = (("star", "moon"), ("heart", "diamond"), ("cross", "circle"), ("square", "triangle"))
PARTNER = {a: b for a, b in PAIRS} | {b: a for a, b in PAIRS}
PREFERRED_COLOUR = {
    "circle": "orange",
    "square": "blue",
    "triangle": "green",
    "star": "yellow",
    "heart": "red",
    "cross": "red",
    "diamond": "purple",
    "moon": "yellow",
}
# Unequal base frequencies so that POPE's "popular" negatives differ from random ones.
KIND_WEIGHTS = {
    "circle": 1.6,
    "square": 1.4,
    "triangle": 1.2,
    "star": 1.1,
    "heart": 0.9,
    "cross": 0.8,
    "diamond": 0.7,
    "moon": 0.7,
}
# Printed words: none is an object word, synonym, colour, number word or position word.
WORDS = (
    "MILK",
    "CAFE",
    "TAXI",
    "EXIT",
    "OPEN",
    "SHOP",
    "PARK",
    "BANK",
    "HOTEL",
    "PIZZA",
    "BOOK",
    "FISH",
    "LAMP",
    "TEA",
    "BUS",
    "ZOO",
    "JAZZ",
    "GOLF",
    "SALE",
    "FOOD",
    "TOYS",
    "KIWI",
    "MENU",
    "FARM",
    "7",
    "12",
    "25",
    "42",
    "50",
    "88",
    "99",
    "100",
)


@dataclass(frozen=True)
class Prior:
    """How a family of scenes is drawn."""

    pair_prob: float  # a scene with room for two objects opens with a full co-occurring pair
    partner_prob: float  # a randomly drawn object brings its partner along when there is room
    colour_prior: float  # an object takes its kind's preferred colour
    hard_rate: float = 0.3  # objects drawn small and faint
    word_rate: float = 0.2  # scenes carrying a printed word


# Training scenes: the partner is present ~86% of the time (world-notes: strong but not total).
TRAIN_PRIOR = Prior(pair_prob=0.8, partner_prob=0.75, colour_prior=0.7)
# Held-out scenes break the prior often, so adversarial POPE and CHAIR have partners to bite on.
HELDOUT_PRIOR = Prior(pair_prob=0.35, partner_prob=0.25, colour_prior=0.45)


@dataclass(frozen=True)
class Obj:
    kind: str
    colour: str
    cell: int  # 0 top left, 1 top right, 2 bottom left, 3 bottom right
    hard: bool  # small and faint: hard to see on purpose
    px: int  # drawn extent in pixels
    dx: int  # centre offset from the cell centre
    dy: int
    alpha: float  # share of the colour left against the white background (1.0 = full)

    @property
    def size(self) -> str:
        return "small" if self.hard else "large"

    @property
    def row(self) -> int:
        return self.cell // 2

    @property
    def col(self) -> int:
        return self.cell % 2

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]


@dataclass(frozen=True)
class Scene:
    id: str
    noise_seed: int
    objects: tuple[Obj, ...]
    word: str | None = None
    word_cell: int | None = None

    # ---- queries used by the language generator, the benchmarks and the judge
    def kinds(self) -> list[str]:
        """Distinct kinds present, in cell order."""
        return list(dict.fromkeys(o.kind for o in self.objects))

    def annotated_kinds(self) -> list[str]:
        """What a COCO-style annotator lists: kinds with an object it can see (not small and faint)."""
        return list(dict.fromkeys(o.kind for o in self.objects if not o.hard))

    def of(self, kind: str | None = None, colour: str | None = None) -> list[Obj]:
        return [
            o
            for o in self.objects
            if (kind is None or o.kind == kind) and (colour is None or o.colour == colour)
        ]

    def at(self, cell: int) -> Obj | None:
        return next((o for o in self.objects if o.cell == cell), None)

    def empty_cells(self) -> list[int]:
        used = {o.cell for o in self.objects} | ({self.word_cell} if self.word_cell is not None else set())
        return [c for c in range(4) if c not in used]

    def broken_pairs(self) -> list[tuple[str, str]]:
        """(present kind, its absent partner) — where the prior would mislead."""
        kinds = self.kinds()
        return [(k, PARTNER[k]) for k in kinds if PARTNER[k] not in kinds]

    def to_dict(self) -> dict:
        # Field by field: dataclasses.asdict is the slowest part of writing 30k scenes.
        objects = [
            {
                "kind": o.kind,
                "colour": o.colour,
                "cell": o.cell,
                "hard": o.hard,
                "px": o.px,
                "dx": o.dx,
                "dy": o.dy,
                "alpha": o.alpha,
            }
            for o in self.objects
        ]
        return {
            "id": self.id,
            "noise_seed": self.noise_seed,
            "word": self.word,
            "word_cell": self.word_cell,
            "objects": objects,
        }

    @staticmethod
    def from_dict(data: dict) -> Scene:
        return Scene(
            id=data["id"],
            noise_seed=int(data["noise_seed"]),
            word=data.get("word"),
            word_cell=data.get("word_cell"),
            objects=tuple(Obj(**o) for o in data["objects"]),
        )


def relation(a: Obj, b: Obj, rel: str) -> bool:
    """Spatial relation between two objects by grid cell (diagonal cells satisfy two relations)."""
    return {"left": a.col < b.col, "right": a.col > b.col, "above": a.row < b.row, "below": a.row > b.row}[
        rel
    ]


RELATIONS = ("left", "right", "above", "below")


# ---------------------------------------------------------------- sampling


def stable_int(*parts: object) -> int:
    """A 63-bit integer from the parts, identical on every machine and Python run."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def scene_rng(seed: int, scene_id: str) -> random.Random:
    return random.Random(stable_int("scene", seed, scene_id))


def _weighted(rng: random.Random, options: Sequence[str], weights: Sequence[float]) -> str:
    return rng.choices(list(options), weights=list(weights), k=1)[0]


def _pick_kinds(rng: random.Random, n: int, prior: Prior) -> list[str]:
    kinds: list[str] = []
    if n >= 2 and rng.random() < prior.pair_prob:
        pair = _weighted(
            rng, [f"{a}|{b}" for a, b in PAIRS], [KIND_WEIGHTS[a] + KIND_WEIGHTS[b] for a, b in PAIRS]
        )
        first, second = pair.split("|")
        kinds += [first, second] if rng.random() < 0.5 else [second, first]
    while len(kinds) < n:
        if len(kinds) == n - 1 and kinds and rng.random() < prior.partner_prob:
            # The last free slot repeats a present kind rather than opening a pair it cannot close.
            kinds.append(rng.choice(kinds))
            continue
        kind = _weighted(rng, KINDS, [KIND_WEIGHTS[k] for k in KINDS])
        kinds.append(kind)
        if len(kinds) < n and PARTNER[kind] not in kinds and rng.random() < prior.partner_prob:
            kinds.append(PARTNER[kind])
    return kinds


def _make_object(rng: random.Random, kind: str, cell: int, prior: Prior) -> Obj:
    preferred = PREFERRED_COLOUR[kind]
    if rng.random() < prior.colour_prior:
        colour = preferred
    else:
        colour = rng.choice([c for c in COLOURS if c != preferred])
    hard = rng.random() < prior.hard_rate
    # Normal objects nearly fill the cell (22-27 px); hard ones are 0.35-0.55 of it and faint.
    px = rng.randint(11, 17) if hard else rng.randint(22, 27)
    slack = max(0, (CELL - px) // 2 - 1)
    dx, dy = rng.randint(-slack, slack), rng.randint(-slack, slack)
    alpha = round(rng.uniform(0.05, 0.30), 3) if hard else 1.0
    return Obj(kind=kind, colour=colour, cell=cell, hard=hard, px=px, dx=dx, dy=dy, alpha=alpha)


def sample_scene(
    seed: int,
    scene_id: str,
    prior: Prior,
    *,
    word: bool | None = None,
    accept: Callable[[Scene], bool] | None = None,
) -> Scene:
    """Draw one scene; `word` forces (True) or forbids (False) a printed word; `accept` redraws
    from the same stream until the scene fits (benchmarks that need, e.g., a broken pair)."""
    rng = scene_rng(seed, scene_id)
    for _ in range(1000):
        has_word = (rng.random() < prior.word_rate) if word is None else word
        if has_word:
            n = _weighted(rng, "123", (0.3, 0.4, 0.3))
        else:
            n = _weighted(rng, "1234", (0.1, 0.3, 0.3, 0.3))
        kinds = _pick_kinds(rng, int(n), prior)
        cells = [0, 1, 2, 3]
        rng.shuffle(cells)
        word_cell = cells.pop() if has_word else None
        objects = tuple(
            sorted((_make_object(rng, k, c, prior) for k, c in zip(kinds, cells)), key=lambda o: o.cell)
        )
        scene = Scene(
            id=scene_id,
            noise_seed=stable_int("noise", seed, scene_id),
            objects=objects,
            word=rng.choice(WORDS) if has_word else None,
            word_cell=word_cell,
        )
        if accept is None or accept(scene):
            return scene
    raise RuntimeError(f"no acceptable scene for {scene_id} in 1000 draws")


def scene_ids(prefix: str, start: int, count: int) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(start, start + count)]


# ---------------------------------------------------------------- storage


def write_scenes(path: Path, scenes: Iterable[Scene]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for scene in scenes:
            handle.write(json.dumps(scene.to_dict(), separators=(",", ":")) + "\n")


def read_scenes(path: Path) -> dict[str, Scene]:
    scenes = {}
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                scene = Scene.from_dict(json.loads(line))
                scenes[scene.id] = scene
    return scenes


def patch_labels(scene: Scene, patch: int = PATCH) -> list[tuple[int, int]]:
    """Per image patch (row-major): (kind index + 1, colour index + 1), 0 for none — targets for
    the auxiliary "what is in this patch" loss that helped the tiny vision tower (world-notes)."""
    per_side = IMAGE_SIZE // patch
    labels = []
    for r in range(per_side):
        for c in range(per_side):
            cell = (r * patch // CELL) * 2 + (c * patch // CELL)
            obj = scene.at(cell)
            labels.append((KINDS.index(obj.kind) + 1, COLOURS.index(obj.colour) + 1) if obj else (0, 0))
    return labels


# ---------------------------------------------------------------- statistics


@dataclass
class CooccurrenceStats:
    scenes: int = 0
    kind_scenes: dict[str, int] = field(default_factory=dict)  # scenes holding the kind
    partner_present: dict[str, float] = field(default_factory=dict)  # P(partner | kind)
    overall_partner_present: float = 0.0
    preferred_colour_rate: float = 0.0
    hard_rate: float = 0.0
    word_rate: float = 0.0
    broken_pair_scenes: int = 0

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()} | {
            "partner_present": {k: round(v, 4) for k, v in self.partner_present.items()}
        }


def cooccurrence_stats(scenes: Sequence[Scene]) -> CooccurrenceStats:
    holding, with_partner = Counter(), Counter()
    objects = [o for s in scenes for o in s.objects]
    for scene in scenes:
        kinds = scene.kinds()
        for kind in kinds:
            holding[kind] += 1
            with_partner[kind] += PARTNER[kind] in kinds
    total = sum(holding.values())
    return CooccurrenceStats(
        scenes=len(scenes),
        kind_scenes={k: holding[k] for k in KINDS},
        partner_present={k: with_partner[k] / holding[k] if holding[k] else 0.0 for k in KINDS},
        overall_partner_present=sum(with_partner.values()) / total if total else 0.0,
        preferred_colour_rate=sum(o.colour == PREFERRED_COLOUR[o.kind] for o in objects)
        / max(1, len(objects)),
        hard_rate=sum(o.hard for o in objects) / max(1, len(objects)),
        word_rate=sum(s.word is not None for s in scenes) / max(1, len(scenes)),
        broken_pair_scenes=sum(bool(s.broken_pairs()) for s in scenes),
    )


def with_objects(scene: Scene, objects: Iterable[Obj]) -> Scene:
    """The same scene with another object list (used to inject hallucinations)."""
    return replace(scene, objects=tuple(sorted(objects, key=lambda o: o.cell)))
