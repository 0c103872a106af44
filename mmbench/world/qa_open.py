"""Open-ended question families (descriptions, false premises, reasoning about the priors) and
the registry of every family with a weighted draw."""

from __future__ import annotations

import random
from collections.abc import Callable

from mmbench.world.language import (
    CAPTION_PROMPTS, DETAIL_PROMPTS, article, capital, caption, describe, join, listing, shapes_count, shows,
    they_are, word_sentence,
)
from mmbench.world.qa import (
    QA, both, choose, colour, colour_at, colour_count, count, exist, larger, more, position, reading,
    reading_at, rel_colour, rel_what, rel_yesno, same_colour, size, total, what_at, word_pos,
)
from mmbench.world.scenes import COLOURS, PREFERRED_COLOUR, Scene


def caption_qa(scene: Scene, rng: random.Random) -> QA | None:
    text = caption(scene)
    return QA("caption", rng.choice(CAPTION_PROMPTS), None, text)


def detail(scene: Scene, rng: random.Random) -> QA | None:
    return QA("detail", rng.choice(DETAIL_PROMPTS), None, describe(scene))


def false_premise(scene: Scene, rng: random.Random) -> QA | None:
    """A question that takes an absent co-occurrence partner for granted (MMHal "adversarial")."""
    broken = scene.broken_pairs()
    if not broken:
        return None
    _, missing = rng.choice(broken)
    q = rng.choice(
        [
            f"What colour is the {missing}?",
            f"Where is the {missing} in the image?",
            f"Is the {missing} large or small?",
            f"What is next to the {missing}?",
        ]
    )
    return QA("false_premise", q, None, f"There is no {missing} in the image. {shows(scene)}")


def environment(scene: Scene, rng: random.Random) -> QA | None:
    n = len(scene.objects)
    q = rng.choice(["What is the setting of this image?", "Describe the background and layout of the image."])
    rest = " ".join(t for t in (they_are(scene.objects), word_sentence(scene)) if t)
    return QA(
        "environment", q, None, f"The image has a plain white background with {shapes_count(n)} on it. {rest}"
    )


def holistic(scene: Scene, rng: random.Random) -> QA | None:
    q = rng.choice(
        ["Describe the image.", "What is going on in this image?", "Summarize the contents of the image."]
    )
    places = join([f"the {o.colour} {o.kind} is in the {o.position}" for o in scene.objects])
    rest = " ".join(t for t in (capital(places) + ".", word_sentence(scene)) if t)
    return QA("holistic", q, None, f"The image shows {listing(scene.objects, position=False)}. {rest}")


def unusual(scene: Scene, rng: random.Random) -> QA | None:
    q = "Is there anything unusual about the shapes in this image?"
    broken = scene.broken_pairs()
    if broken:
        kind, missing = broken[0]
        obj = scene.of(kind)[0]
        return QA(
            "unusual",
            q,
            None,
            f"Yes. There is {article(kind)} {kind} but no {missing}, although the two usually "
            f"appear together. The {kind} is {obj.colour} and sits in the {obj.position}.",
        )
    odd = [o for o in scene.objects if o.colour != PREFERRED_COLOUR[o.kind]]
    if odd:
        obj = odd[0]
        return QA(
            "unusual",
            q,
            None,
            f"Yes. The {obj.kind} in the {obj.position} is {obj.colour}, which is not the usual "
            f"colour for it.",
        )
    return QA("unusual", q, None, f"No. {capital(listing(scene.objects))} all appear as they usually do.")


def removal(scene: Scene, rng: random.Random) -> QA | None:
    if len(scene.objects) < 2:
        return None
    gone = rng.choice(scene.objects)
    rest = [o for o in scene.objects if o is not gone]
    q = f"What would remain if the {gone.kind} in the {gone.position} were removed?"
    return QA("removal", q, None, f"{capital(listing(rest))} would remain.")


def shared_colour(scene: Scene, rng: random.Random) -> QA | None:
    q = "Which shapes in the image share a colour?"
    for hue in COLOURS:
        found = scene.of(colour=hue)
        if len(found) >= 2:
            a, b = found[0], found[1]
            return QA(
                "shared_colour",
                q,
                None,
                f"The {a.kind} in the {a.position} is {hue}, and the {b.kind} in the "
                f"{b.position} is also {hue}.",
            )
    if len(scene.objects) < 2:
        return None
    each = join([f"the {o.kind} is {o.colour}" for o in scene.objects])
    return QA("shared_colour", q, None, f"None of them share a colour: {each}.")


FAMILIES: dict[str, Callable[[Scene, random.Random], QA | None]] = {
    "exist": exist,
    "colour": colour,
    "size": size,
    "count": count,
    "total": total,
    "colour_count": colour_count,
    "position": position,
    "what_at": what_at,
    "colour_at": colour_at,
    "rel_yesno": rel_yesno,
    "rel_what": rel_what,
    "rel_colour": rel_colour,
    "choose": choose,
    "both": both,
    "same_colour": same_colour,
    "larger": larger,
    "more": more,
    "reading": reading,
    "reading_at": reading_at,
    "word_pos": word_pos,
    "caption": caption_qa,
    "detail": detail,
    "false_premise": false_premise,
    "environment": environment,
    "holistic": holistic,
    "unusual": unusual,
    "removal": removal,
    "shared_colour": shared_colour,
}


def draw_qa(
    scene: Scene, rng: random.Random, families: list[str], weights: list[float] | None = None
) -> QA | None:
    """A QA from the first applicable family in a weighted random order."""
    order = list(families)
    if weights is None:
        rng.shuffle(order)
    else:
        pool, w, order = list(families), list(weights), []
        while pool:
            pick = rng.choices(range(len(pool)), weights=w, k=1)[0]
            order.append(pool.pop(pick))
            w.pop(pick)
    for name in order:
        qa = FAMILIES[name](scene, rng)
        if qa is not None:
            return qa
    return None
