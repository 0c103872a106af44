"""How the world talks about a scene: noun phrases, captions and detailed descriptions.

One fixed style everywhere (SFT targets, benchmark references, preference pairs) so that the
scene judge's parser in `claims.py` reads back exactly what these functions write: every
object is named with its kind, attributes sit right before the kind or after "is", and a
position follows the object it belongs to ("a red star in the top left").
"""

from __future__ import annotations

from collections.abc import Sequence

from mmbench.world.scenes import POSITIONS, Obj, Scene
from mmbench.world.vocabulary import plural

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
REL_PHRASE = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def number(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def kinds_phrase(kind: str, n: int) -> str:
    """ "one star", "two stars"."""
    return f"{number(n)} {kind if n == 1 else plural(kind)}"


def np(obj: Obj, *, size: bool = False, colour: bool = True, position: bool = False) -> str:
    """ "a large red star in the top left" (parts optional)."""
    words = ([obj.size] if size else []) + ([obj.colour] if colour else []) + [obj.kind]
    text = f"{article(words[0])} {' '.join(words)}"
    return f"{text} in the {obj.position}" if position else text


def join(items: Sequence[str]) -> str:
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def listing(objects: Sequence[Obj], *, position: bool = True, size: bool = False) -> str:
    return join([np(o, position=position, size=size) for o in objects])


def word_sentence(scene: Scene) -> str:
    if scene.word is None:
        return ""
    noun = "number" if scene.word.isdigit() else "word"
    return f'The {noun} "{scene.word}" is printed in the {POSITIONS[scene.word_cell]}.'


def shapes_count(n: int) -> str:
    return f"{number(n)} {'shape' if n == 1 else 'shapes'}"


def there_are(n: int, noun_phrase: str) -> str:
    return f"There {'is' if n == 1 else 'are'} {noun_phrase}"


def caption(scene: Scene) -> str:
    """Short caption: the objects in reading order with colours, then the word if any."""
    text = capital(listing(scene.objects, position=False)) + "."
    extra = word_sentence(scene)
    return f"{text} {extra}" if extra else text


def describe(scene: Scene) -> str:
    """Detailed description: how many shapes, then each with size, colour and position."""
    n = len(scene.objects)
    parts = [there_are(n, shapes_count(n)) + " in the image."]
    for obj in scene.objects:
        parts.append(f"{capital(np(obj, size=True))} is in the {obj.position}.")
    extra = word_sentence(scene)
    if extra:
        parts.append(extra)
    return " ".join(parts)


def shows(scene: Scene) -> str:
    """Grounding sentence listing what is there, used after answers about absent things."""
    if not scene.objects:
        return "The image shows no shapes."
    return f"The image shows {listing(scene.objects)}."


def they_are(objects: Sequence[Obj]) -> str:
    """ "They are a red star in the top left and ..." / "It is a red star in the top left."."""
    if len(objects) == 1:
        return f"It is {np(objects[0], size=True, position=True)}."
    return f"They are {listing(objects)}."


PROMPT_DETAIL = "Describe this image in detail."
DETAIL_PROMPTS = (
    PROMPT_DETAIL,
    "Please describe this image in detail.",
    "Give a detailed description of the image.",
    "What do you see in this image? Describe it thoroughly.",
)
CAPTION_PROMPTS = (
    "Describe the image briefly.",
    "What is in the image?",
    "Give a short caption for the image.",
)
