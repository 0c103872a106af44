"""Question families over a scene: each returns a question with a short answer (for the
single-word prompt format) and a long answer whose first sentence answers directly and whose
later sentences ground it.  The scene judge rates coverage of exactly those two parts.

A family returns None when the scene cannot support it (no word to read, no unique kind...),
and callers draw another; all choices go through the caller's seeded `rng`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mmbench.world.language import (
    REL_PHRASE, article, kinds_phrase, np, number, shapes_count, shows, there_are, they_are,
)
from mmbench.world.scenes import COLOURS, KINDS, PARTNER, POSITIONS, RELATIONS, Scene, relation
from mmbench.world.vocabulary import plural


@dataclass(frozen=True)
class QA:
    family: str
    question: str
    short: str | None  # None: the family has no single-word form (descriptions, premises)
    long: str


def _yes(flag: bool) -> str:
    return "Yes" if flag else "No"


def unique_objects(scene: Scene) -> list:
    """Objects whose kind occurs once, so that "the star" names exactly one thing."""
    return [o for o in scene.objects if len(scene.of(o.kind)) == 1]


def exist(
    scene: Scene, rng: random.Random, *, present: bool | None = None, kind: str | None = None
) -> QA | None:
    if kind is None:
        present = rng.random() < 0.5 if present is None else present
        absent = [k for k in KINDS if k not in scene.kinds()]
        if present:
            if not scene.objects:
                return None
            kind = rng.choice(scene.kinds())
        else:
            partners = [p for _, p in scene.broken_pairs()]
            kind = rng.choice(partners if partners and rng.random() < 0.5 else absent)
    found = scene.of(kind)
    question = f"Is there {article(kind)} {kind} in the image?"
    if not found:
        return QA("exist", question, "No", f"No, there is no {kind} in the image. {shows(scene)}")
    what = f"is a {kind}" if len(found) == 1 else f"are {kinds_phrase(kind, len(found))}"
    return QA("exist", question, "Yes", f"Yes, there {what} in the image. {they_are(found)}")


def colour(scene: Scene, rng: random.Random) -> QA | None:
    if not scene.objects:
        return None
    obj = rng.choice(scene.objects)
    if len(scene.of(obj.kind)) == 1:
        q, subject = f"What colour is the {obj.kind}?", f"The {obj.kind}"
        ground = f"It is {np(obj, size=True, position=True)}."
    else:
        q, subject = (
            f"What colour is the {obj.kind} in the {obj.position}?",
            f"The {obj.kind} in the {obj.position}",
        )
        ground = f"It is {np(obj, size=True)}."
    return QA("colour", q, obj.colour, f"{subject} is {obj.colour}. {ground}")


def size(scene: Scene, rng: random.Random) -> QA | None:
    options = unique_objects(scene)
    if not options:
        return None
    obj = rng.choice(options)
    q = rng.choice([f"Is the {obj.kind} large or small?", f"What size is the {obj.kind}?"])
    return QA(
        "size", q, obj.size, f"The {obj.kind} is {obj.size}. It is {np(obj, size=True, position=True)}."
    )


def count(scene: Scene, rng: random.Random, *, kind: str | None = None) -> QA | None:
    if kind is None:
        kind = rng.choice(scene.kinds()) if scene.objects and rng.random() < 0.8 else rng.choice(KINDS)
    found = scene.of(kind)
    q = f"How many {plural(kind)} are there in the image?"
    if not found:
        return QA("count", q, "0", f"There are no {plural(kind)} in the image. {shows(scene)}")
    return QA(
        "count",
        q,
        str(len(found)),
        f"{there_are(len(found), kinds_phrase(kind, len(found)))}. {they_are(found)}",
    )


def total(scene: Scene, rng: random.Random) -> QA | None:
    n = len(scene.objects)
    q = rng.choice(["How many shapes are there in the image?", "How many shapes are in the image?"])
    return QA("total", q, str(n), f"{there_are(n, shapes_count(n))} in the image. {they_are(scene.objects)}")


def colour_count(scene: Scene, rng: random.Random) -> QA | None:
    hue = (
        rng.choice([o.colour for o in scene.objects] or list(COLOURS))
        if rng.random() < 0.8
        else rng.choice(COLOURS)
    )
    found = scene.of(colour=hue)
    q = f"How many {hue} shapes are there?"
    if not found:
        return QA("colour_count", q, "0", f"There are no {hue} shapes in the image. {shows(scene)}")
    noun = f"{number(len(found))} {hue} {'shape' if len(found) == 1 else 'shapes'}"
    return QA("colour_count", q, str(len(found)), f"{there_are(len(found), noun)}. {they_are(found)}")


def position(scene: Scene, rng: random.Random) -> QA | None:
    options = unique_objects(scene)
    if not options:
        return None
    obj = rng.choice(options)
    q = rng.choice([f"Where is the {obj.kind}?", f"Where is the {obj.kind} in the image?"])
    return QA(
        "position", q, obj.position, f"The {obj.kind} is in the {obj.position}. It is {np(obj, size=True)}."
    )


def what_at(scene: Scene, rng: random.Random) -> QA | None:
    if not scene.objects:
        return None
    obj = rng.choice(scene.objects)
    q = f"What shape is in the {obj.position}?"
    return QA(
        "what_at",
        q,
        obj.kind,
        f"It is {article(obj.kind)} {obj.kind}. The {obj.kind} in the {obj.position} "
        f"is {obj.size} and {obj.colour}.",
    )


def colour_at(scene: Scene, rng: random.Random) -> QA | None:
    if not scene.objects:
        return None
    obj = rng.choice(scene.objects)
    q = f"What colour is the shape in the {obj.position}?"
    return QA(
        "colour_at",
        q,
        obj.colour,
        f"It is {obj.colour}. The shape in the {obj.position} is {np(obj, size=True)}.",
    )


def _two_unique(scene: Scene, rng: random.Random):
    options = unique_objects(scene)
    if len(options) < 2:
        return None
    a, b = rng.sample(options, 2)
    return a, b


def rel_yesno(scene: Scene, rng: random.Random) -> QA | None:
    pair = _two_unique(scene, rng)
    if pair is None:
        return None
    a, b = pair
    rel = rng.choice(RELATIONS)
    truth = relation(a, b, rel)
    q = f"Is the {a.kind} {REL_PHRASE[rel]} the {b.kind}?"
    first = (
        f"Yes, the {a.kind} is {REL_PHRASE[rel]}" if truth else f"No, the {a.kind} is not {REL_PHRASE[rel]}"
    )
    ground = f"The {a.kind} is in the {a.position} and the {b.kind} is in the {b.position}."
    return QA("rel_yesno", q, _yes(truth), f"{first} the {b.kind}. {ground}")


def _related(scene: Scene, anchor, rel: str) -> list:
    return [o for o in scene.objects if o is not anchor and relation(o, anchor, rel)]


def rel_what(scene: Scene, rng: random.Random) -> QA | None:
    anchors = unique_objects(scene)
    rng.shuffle(anchors)
    for anchor in anchors:
        rel = rng.choice(RELATIONS)
        found = _related(scene, anchor, rel)
        if len(found) == 1:
            x = found[0]
            q = f"What shape is {REL_PHRASE[rel]} the {anchor.kind}?"
            ground = f"The {x.kind} is in the {x.position} and the {anchor.kind} is in the {anchor.position}."
            return QA("rel_what", q, x.kind, f"It is {article(x.kind)} {x.kind}. {ground}")
    return None


def rel_colour(scene: Scene, rng: random.Random) -> QA | None:
    anchors = unique_objects(scene)
    rng.shuffle(anchors)
    for anchor in anchors:
        rel = rng.choice(RELATIONS)
        found = _related(scene, anchor, rel)
        if len(found) == 1:
            x = found[0]
            q = f"What colour is the shape {REL_PHRASE[rel]} the {anchor.kind}?"
            return QA(
                "rel_colour",
                q,
                x.colour,
                f"It is {x.colour}. The shape {REL_PHRASE[rel]} the {anchor.kind} "
                f"is {np(x)} in the {x.position}.",
            )
    return None


def choose(scene: Scene, rng: random.Random) -> QA | None:
    hues = [o for o in scene.objects if len(scene.of(colour=o.colour)) == 1]
    if not hues:
        return None
    obj = rng.choice(hues)
    other = rng.choice([k for k in KINDS if k != obj.kind])
    first, second = (obj.kind, other) if rng.random() < 0.5 else (other, obj.kind)
    q = f"Is the {obj.colour} shape {article(first)} {first} or {article(second)} {second}?"
    return QA(
        "choose",
        q,
        obj.kind,
        f"It is {article(obj.kind)} {obj.kind}. The {obj.kind} is {obj.colour} and it is "
        f"in the {obj.position}.",
    )


def both(scene: Scene, rng: random.Random) -> QA | None:
    if not scene.objects:
        return None
    a = rng.choice(scene.kinds())
    b = PARTNER[a] if rng.random() < 0.7 else rng.choice([k for k in KINDS if k != a])
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    q = f"Are there both {article(first)} {first} and {article(second)} {second} in the image?"
    if scene.of(b):
        ground = (
            f"The {a} is in the {scene.of(a)[0].position} and the {b} is in the {scene.of(b)[0].position}."
        )
        return QA(
            "both",
            q,
            "Yes",
            f"Yes, there are both {article(first)} {first} and {article(second)} {second}. {ground}",
        )
    return QA(
        "both",
        q,
        "No",
        f"No, there is {article(a)} {a} but no {b} in the image. "
        f"The {a} is in the {scene.of(a)[0].position}.",
    )


def same_colour(scene: Scene, rng: random.Random) -> QA | None:
    pair = _two_unique(scene, rng)
    if pair is None:
        return None
    a, b = pair
    q = f"Do the {a.kind} and the {b.kind} have the same colour?"
    same = a.colour == b.colour
    tail = " too" if same else ""
    return QA(
        "same_colour",
        q,
        _yes(same),
        f"{_yes(same)}, the {a.kind} is {a.colour} and the {b.kind} is {b.colour}{tail}.",
    )


def larger(scene: Scene, rng: random.Random) -> QA | None:
    options = unique_objects(scene)
    pairs = [(a, b) for a in options for b in options if a.size == "large" and b.size == "small"]
    if not pairs:
        return None
    big, small = rng.choice(pairs)
    first, second = (big, small) if rng.random() < 0.5 else (small, big)
    q = f"Which is larger, the {first.kind} or the {second.kind}?"
    return QA(
        "larger",
        q,
        big.kind,
        f"The {big.kind} is larger. The {big.kind} is large and the {small.kind} is small.",
    )


def more(scene: Scene, rng: random.Random) -> QA | None:
    kinds = scene.kinds()
    if len(kinds) < 2:
        return None
    a, b = rng.sample(kinds, 2)
    na, nb = len(scene.of(a)), len(scene.of(b))
    q = f"Are there more {plural(a)} than {plural(b)}?"
    ground = f"There {'is' if na == 1 else 'are'} {kinds_phrase(a, na)} and {kinds_phrase(b, nb)}."
    return QA("more", q, _yes(na > nb), f"{_yes(na > nb)}. {ground}")


def _noun(scene: Scene) -> str:
    return "number" if scene.word and scene.word.isdigit() else "word"


def reading(scene: Scene, rng: random.Random) -> QA | None:
    if scene.word is None:
        return None
    noun = _noun(scene)
    q = rng.choice(
        [
            f"What {noun} is printed in the image?",
            "What does the text in the image say?",
            "What is written in the image?",
        ]
    )
    return QA(
        "reading",
        q,
        scene.word.lower(),
        f'The {noun} is "{scene.word}". It is printed in the {POSITIONS[scene.word_cell]}.',
    )


def reading_at(scene: Scene, rng: random.Random) -> QA | None:
    if scene.word is None:
        return None
    q = rng.choice(
        [
            f"What is written in the {POSITIONS[scene.word_cell]}?",
            f"What {_noun(scene)} is shown in the {POSITIONS[scene.word_cell]} of the image?",
        ]
    )
    return QA(
        "reading_at",
        q,
        scene.word.lower(),
        f'It says "{scene.word}". The text is printed in the {POSITIONS[scene.word_cell]}.',
    )


def word_pos(scene: Scene, rng: random.Random) -> QA | None:
    if scene.word is None:
        return None
    where = POSITIONS[scene.word_cell]
    return QA(
        "word_pos",
        f"Where is the {_noun(scene)} printed?",
        where,
        f'It is printed in the {where}. The {_noun(scene)} is "{scene.word}".',
    )
