"""Whether the claims read by `claims.py` hold in a scene, and whether one answer's claims
cover another's (the scene judge's two axes: hallucination and informativeness)."""

from __future__ import annotations

from mmbench.world.claims import Fact, norm_word
from mmbench.world.scenes import Scene, relation


def _cell_ok(obj, row, col) -> bool:
    return (row is None or obj.row == row) and (col is None or obj.col == col)


def is_true(fact: Fact, scene: Scene) -> bool | None:
    """Whether the scene makes the fact true; None where the scene alone cannot say."""
    kind = fact[0]
    if kind == "obj":
        return bool(scene.of(fact[1]))
    if kind == "colour":
        return bool(scene.of(fact[1], fact[2]))
    if kind == "size":
        return any(o.size == fact[2] for o in scene.of(fact[1]))
    if kind == "pos":
        return any(_cell_ok(o, fact[2], fact[3]) for o in scene.of(fact[1]))
    if kind == "thing":
        return any(
            (fact[2] is None or o.colour == fact[2])
            and (fact[3] is None or o.size == fact[3])
            and _cell_ok(o, fact[4], fact[5])
            for o in scene.of(fact[1])
        )
    if kind == "wordpos":
        return (
            scene.word_cell is not None
            and (fact[1] is None or scene.word_cell // 2 == fact[1])
            and (fact[2] is None or scene.word_cell % 2 == fact[2])
        )
    if kind == "rel":
        return any(relation(a, b, fact[2]) for a in scene.of(fact[1]) for b in scene.of(fact[3]))
    if kind == "count":
        return len(scene.of(fact[1], fact[2])) == fact[3]
    if kind == "absent":
        return not scene.of(fact[1], fact[2])
    if kind == "word":
        return scene.word is not None and norm_word(scene.word) == fact[1]
    return None  # answer, number: judged against the reference, not the scene


def false_claims(facts: set[Fact], scene: Scene, reference: set[Fact] = frozenset()) -> list[Fact]:
    """Claims the scene (or, for yes/no and computed numbers, the reference) contradicts."""
    wrong = []
    ref_answers = {f[1] for f in reference if f[0] == "answer"}
    ref_numbers = {f[1] for f in reference if f[0] == "number"}
    for fact in sorted(facts, key=repr):
        truth = is_true(fact, scene)
        if (
            truth is False
            or fact[0] == "answer"
            and ref_answers
            and fact[1] not in ref_answers
            or fact[0] == "number"
            and ref_numbers
            and fact[1] not in ref_numbers
        ):
            wrong.append(fact)
    return wrong


_INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}


def entailed(fact: Fact, facts: set[Fact]) -> bool:
    """Does the answer's set of claims cover this reference claim?"""
    if fact in facts:
        return True
    kind = fact[0]
    if kind == "obj":
        return (
            any(f[0] in ("colour", "size", "pos") and f[1] == fact[1] for f in facts)
            or any(f[0] == "count" and f[1] == fact[1] and f[3] for f in facts)
            or any(f[0] == "rel" and fact[1] in (f[1], f[3]) for f in facts)
        )
    if kind == "rel":
        return ("rel", fact[3], _INVERSE[fact[2]], fact[1]) in facts
    if kind == "absent":
        return ("absent", fact[1], None) in facts or ("count", fact[1], fact[2], 0) in facts
    if kind == "count" and fact[3] == 0 and fact[1] is not None:
        return ("absent", fact[1], fact[2]) in facts
    return False
