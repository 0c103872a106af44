"""The world's object vocabulary for CHAIR matching (the world suite's `vocabulary()`).

Same shape as CHAIR's COCO table: one line per kind, canonical name first, then synonyms.
Plural forms are listed too, because the rule-based singulariser does not know every one
("rhombuses").  No synonym is a colour, number, position or printed word of the world.
"""

from __future__ import annotations

from mmbench.benchmarks.chair import vocabulary_from_table

SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ring", "disc", "disk", "round shape"),
    "square": ("square", "box", "block", "tile"),
    "triangle": ("triangle", "wedge", "pyramid"),
    "star": ("star", "pentagram", "starburst"),
    "heart": ("heart", "valentine", "love heart"),
    "cross": ("cross", "plus", "plus sign"),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "moon": ("moon", "crescent", "crescent moon", "half moon"),
}


def plural(word: str) -> str:
    """English plural of an object word ("cross" -> "crosses", "plus sign" -> "plus signs")."""
    if word.endswith(("s", "x", "sh", "ch")):
        return word + "es"
    return word + "s"


def table_lines() -> list[str]:
    lines = []
    for names in SYNONYMS.values():
        forms = list(names) + [plural(n) for n in names]
        lines.append(", ".join(dict.fromkeys(forms)))
    return lines


VOCABULARY = vocabulary_from_table("world", table_lines())
