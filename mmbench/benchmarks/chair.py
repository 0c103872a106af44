"""CHAIR object matching: find which objects of a vocabulary a free-form description mentions.

A vocabulary maps words (and known two-word names) onto canonical object names.  The COCO
vocabulary is built from the CHAIR synonym table (`coco_synonyms.txt`, one category per line,
canonical name first); a suite supplies its own (the world's: `WorldSuite.vocabulary()`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Two-word names CHAIR joins before lookup, and qualifier phrases that must not fire "person".
_COCO_DOUBLE_WORDS = [
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
    "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball",
    "baseball bat", "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone",
    "mobile phone", "teddy bear", "hair drier", "potted plant", "bow tie", "laptop computer",
    "stove top oven", "home plate",
]
_ANIMALS = ["bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
            "animal", "cub"]

_IRREGULAR = {"men": "man", "women": "woman", "children": "child", "people": "person", "mice": "mouse",
              "geese": "goose", "feet": "foot", "teeth": "tooth", "knives": "knife", "wives": "wife",
              "leaves": "leaf", "shelves": "shelf", "wolves": "wolf", "loaves": "loaf", "oxen": "ox",
              "calves": "calf", "halves": "half", "scarves": "scarf", "dice": "die", "buses": "bus",
              "shoes": "shoe", "toes": "toe", "canoes": "canoe", "potatoes": "potato",
              "tomatoes": "tomato", "mangoes": "mango", "heroes": "hero", "cookies": "cookie",
              "movies": "movie", "pies": "pie", "brownies": "brownie", "hoodies": "hoodie"}
_UNCHANGED = {"sheep", "deer", "fish", "bus", "glass", "grass", "class", "scissors", "skis", "pants",
              "jeans", "shorts", "series", "species", "news", "dress", "cross", "boss",
              "gas", "lens", "canvas", "walrus", "cactus", "octopus", "asparagus", "hummus", "couscous"}


def singularize(word: str) -> str:
    """A small rule-based singulariser covering the plural forms object words take in English."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word in _UNCHANGED or len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zzes", "sses")):
        return word[:-2]
    return word[:-1]


@dataclass(frozen=True)
class Vocabulary:
    """word or two-word name -> canonical object; `phrases` are joined before lookup."""

    name: str
    synonyms: dict[str, str]
    phrases: dict[str, str]  # two-word phrase -> single token it becomes

    def mentions(self, text: str) -> list[str]:
        """Canonical objects mentioned, one entry per mention, in order."""
        raw = re.findall(r"[a-z]+", text.lower())
        words = []
        for word in raw:
            # Keep a word the vocabulary knows as is ("glasses", "scissors"); else singularise.
            words.append(word if word in self.synonyms and word not in _IRREGULAR else singularize(word))
        joined, i = [], 0
        while i < len(words):
            pair = " ".join(words[i:i + 2])
            if pair in self.phrases:
                joined.append(self.phrases[pair])
                i += 2
            else:
                joined.append(words[i])
                i += 1
        if "toilet" in joined and "seat" in joined:  # a toilet seat is not a chair
            joined = [w for w in joined if w != "seat"]
        return [self.synonyms[w] for w in joined if w in self.synonyms]

    def canonical(self, name: str) -> str:
        """An annotation's object name as a category ("men" -> "person"); unknown names stay."""
        if name in self.synonyms:
            return self.synonyms[name]
        found = self.mentions(name)
        return found[0] if len(found) == 1 else name


def vocabulary_from_table(name: str, lines: list[str], extra_phrases: dict[str, str] | None = None) -> Vocabulary:
    synonyms: dict[str, str] = {}
    phrases: dict[str, str] = dict(extra_phrases or {})
    for line in lines:
        # Split on ", " exactly like the original table reader: an entry with a stray leading
        # space (" motor bike") never matches, as in the reference implementation.
        entries = [e for e in line.rstrip("\n").split(", ") if e]
        if not entries:
            continue
        canonical = entries[0].strip()
        for entry in entries:
            synonyms[entry] = canonical
            if " " in entry.strip() and not entry.startswith(" "):
                phrases.setdefault(entry, entry)
    return Vocabulary(name=name, synonyms=synonyms, phrases=phrases)


@lru_cache(maxsize=None)
def coco_vocabulary() -> Vocabulary:
    lines = (Path(__file__).with_name("coco_synonyms.txt")).read_text(encoding="utf-8").splitlines()
    extra = {w: w for w in _COCO_DOUBLE_WORDS}
    for animal in _ANIMALS:
        extra[f"baby {animal}"] = animal
        extra[f"adult {animal}"] = animal
    for vehicle in ("jet", "train"):
        extra[f"passenger {vehicle}"] = vehicle
    extra.update({"bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass"})
    return vocabulary_from_table("coco", lines, extra)


_REGISTERED: dict[str, Vocabulary] = {}


def register_vocabulary(vocabulary: Vocabulary) -> None:
    _REGISTERED[vocabulary.name] = vocabulary


def get_vocabulary(name: str) -> Vocabulary:
    """COCO's table, one registered in Python, or the vocabulary of the suite of that name
    (records of a suite's recall benchmark name it: `"vocabulary": "world"`)."""
    if name == "coco":
        return coco_vocabulary()
    if name not in _REGISTERED:
        from mmbench.suites import SUITES, get_suite

        vocabulary = get_suite(name).vocabulary() if name in SUITES else None
        if vocabulary is not None:
            _REGISTERED[name] = vocabulary
    try:
        return _REGISTERED[name]
    except KeyError:
        from mmbench.errors import MmbenchError
        from mmbench.suites import SUITES

        raise MmbenchError(f"unknown object vocabulary {name!r} (known: coco, "
                           f"{', '.join(dict.fromkeys([*_REGISTERED, *SUITES.names()]))})") from None
