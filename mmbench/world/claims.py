"""Read the claims a free-form answer makes about a world scene (`truth.py` checks them).

A claim ("fact") is a small tuple:
    ("obj", kind)  ("colour", kind, colour)  ("size", kind, size)  ("pos", kind, row, col)
    ("wordpos", row, col)  ("rel", kind_a, rel, kind_b)  ("count", kind|None, colour|None, n)
    ("absent", kind, colour|None)  ("answer", "yes"|"no")  ("word", text)  ("number", n)
    ("thing", kind, colour|None, size|None, row|None, col|None) — one object, several attributes
Rows and columns may be None for half-positions ("on the left").  The parser is tuned to the
world's own phrasing (language.py, qa.py) and degrades gracefully elsewhere: what it cannot
read is simply not a claim.  Object words go through the world vocabulary, as CHAIR does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmbench.world.lexicon import (
    NEGATIONS, PRONOUNS, READING_STOP, SEPARATORS, Fact, items_of, kind_of, tokens_of,
)
from mmbench.world.scenes import COLOURS, Scene, relation

@dataclass
class _NP:
    kind: str | None  # None for "shape"/"object"
    mods: list
    negated: bool
    index: int  # position among the clause's items
    bound: list = field(default_factory=list)  # predicates bound to this noun phrase later


@dataclass(frozen=True)
class QuestionContext:
    subject: str | None = None  # the kind a bare answer ("red", "yes") is about
    mode: str = "plain"  # plain | exist | count | number | reading
    count_kind: str | None = None
    count_colour: str | None = None


_POS_RE = r"(top|bottom) (left|right)"


def question_context(question: str, scene: Scene | None = None) -> QuestionContext:
    q = question.lower()
    kinds = [k for k in (kind_of(t) for t in tokens_of(q)) if k]
    if re.search(
        r"\b(add|adding|subtract|sum|minus|difference|double|times)\b|how many (more|fewer)", q
    ) or re.search(r"how many (corners|sides|points|edges)", q):
        mode = "number"
    elif "how many" in q:
        mode = "count"
    elif re.search(r"\b(word|text|written|printed|say|says|letters|read)\b|\bwhat number\b", q):
        mode = "reading"
    elif re.match(r"\s*(is|are) there\b", q) and len(set(kinds)) == 1:
        mode = "exist"
    else:
        mode = "plain"
    subject = kinds[0] if kinds else None
    if scene is not None:
        rel = re.search(
            r"\b(?:shape|object|one) (to the left of|to the right of|above|below) the (?:\w+ )?(\w+)", q
        )
        at = re.search(r"\b(?:shape|object|one) (?:is )?in the " + _POS_RE, q)
        hue = re.search(r"\bthe (" + "|".join(COLOURS) + r") (?:shape|object|one)\b", q)
        if rel and kind_of(rel.group(2)):
            name = rel.group(1).split()[-2] if rel.group(1).endswith("of") else rel.group(1)
            anchors = scene.of(kind_of(rel.group(2)))
            found = [
                o
                for o in scene.objects
                if len(anchors) == 1 and o is not anchors[0] and relation(o, anchors[0], name)
            ]
            subject = found[0].kind if len(found) == 1 else subject
        elif at:
            obj = scene.at((0 if at.group(1) == "top" else 2) + (0 if at.group(2) == "left" else 1))
            subject = obj.kind if obj else subject
        elif hue:
            found = scene.of(colour=hue.group(1))
            subject = found[0].kind if len(found) == 1 else subject
    count_kind = count_colour = None
    if mode == "count":
        tail = q.split("how many", 1)[1]
        tail_kinds = [k for k in (kind_of(t) for t in tokens_of(tail)) if k]
        count_kind = tail_kinds[0] if tail_kinds else None
        hue = re.search(r"\b(" + "|".join(COLOURS) + r")\b", tail)
        count_colour = hue.group(1) if hue else None
    return QuestionContext(subject=subject, mode=mode, count_kind=count_kind, count_colour=count_colour)


def _quoted(text: str) -> tuple[str, list[str]]:
    found = []
    pattern = r'"([^"]+)"|“([^”]+)”|(?<![A-Za-z])\'([A-Za-z0-9 ]+)\'(?![A-Za-z])'

    def keep(match: re.Match) -> str:
        found.append(next(g for g in match.groups() if g is not None))
        return " QUOTED "

    return re.sub(pattern, keep, text), found


def norm_word(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def extract_facts(text: str, ctx: QuestionContext = QuestionContext()) -> set[Fact]:
    """Every claim the text makes, bound to kinds (see the module docstring)."""
    text, quoted = _quoted(text)
    facts: set[Fact] = {("word", norm_word(w)) for w in quoted if norm_word(w)}
    first = re.match(r"\s*(yes|no)\b", text, flags=re.IGNORECASE)
    if first:
        answer = first.group(1).lower()
        facts.add(("answer", answer))
        text = text[first.end() :]
        if ctx.mode == "exist" and ctx.subject:
            facts.add(("obj", ctx.subject) if answer == "yes" else ("absent", ctx.subject, None))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    for number, sentence in enumerate(sentences):
        facts |= _sentence_facts(sentence, ctx, reading_fallback=not quoted and number == 0)
    return facts


def _sentence_facts(sentence: str, ctx: QuestionContext, *, reading_fallback: bool) -> set[Fact]:
    tokens = tokens_of(sentence)
    items = items_of(tokens)
    clauses: list[list[tuple[str, object]]] = [[]]
    for item in items:
        if item[0] == "sep":
            clauses.append([])
        else:
            clauses[-1].append(item)
    facts: set[Fact] = set()
    parsed = [_clause_nps(c) for c in clauses]
    kinds_in = [[np for np in nps if np.kind and not np.negated] for nps, _ in parsed]
    any_np = any(nps for nps, _ in parsed)
    for ci, (nps, free) in enumerate(parsed):
        for np in nps:
            facts |= _np_facts(np)
        clause = clauses[ci]
        wordish = (ctx.mode == "reading" or any(t == "wordref" for t, _ in clause)) and not kinds_in[ci]
        for index, (typ, value) in free:
            if typ == "pos" and wordish:
                facts.add(("wordpos", *value))
                continue
            if typ == "num":
                if not any_np:
                    facts |= _bare_number(value, ctx)
                continue
            if typ == "rel":
                facts |= _relation(index, value, kinds_in[ci], ctx)
                continue
            if wordish:
                continue
            target = _bind(ci, index, kinds_in, clause, ctx)
            if target is None:
                continue
            kind = target.kind if isinstance(target, _NP) else target
            if isinstance(target, _NP):
                target.bound.append((typ, value))
            if typ == "colour":
                facts.add(("colour", kind, value))
            elif typ == "size":
                facts.add(("size", kind, value))
            elif typ == "pos":
                facts.add(("pos", kind, *value))
    for nps in kinds_in:
        facts |= {t for t in (_thing(np) for np in nps) if t}
    # A bare reading ("milk", "It says milk") names the word without quotes; only short
    # first sentences count, so "I cannot tell what it says" is not read as a word.
    if (
        ctx.mode == "reading"
        and reading_fallback
        and len(tokens) <= 5
        and not any(f[0] == "word" for f in facts)
    ):
        rest = [
            t
            for t in tokens
            if t not in READING_STOP
            and t not in SEPARATORS
            and t not in NEGATIONS
            and not t.endswith("n't")
            and not kind_of(t)
            and t not in COLOURS
        ]
        if rest:
            facts.add(("word", norm_word(rest[0])))
    return facts


def _clause_nps(clause: list) -> tuple[list[_NP], list]:
    """Group modifiers with the kind they precede; what is left over is free (predicates).

    A negation is consumed by the next content item: a noun phrase ("no red moon") becomes an
    absence claim, an attribute or place ("not red", "not in the top left") is dropped."""
    nps, free, pending, negated = [], [], [], False
    for index, (typ, value) in enumerate(clause):
        if typ in ("colour", "size", "num"):
            pending.append((index, (typ, value)))
        elif typ in ("kind", "generic"):
            nps.append(_NP(value, [m for _, m in pending], negated, index))
            pending, negated = [], False
        elif typ == "neg":
            free += pending
            pending, negated = [], True
        elif typ in ("pos", "rel"):
            if not negated:
                free += pending + [(index, (typ, value))]
            pending, negated = [], False
        elif typ in ("other", "wordref") and not negated:
            free += pending  # "is red like ..." — a colour only modifies a kind right after it
            pending = []
    if not negated:
        free += pending
    return nps, free


def _np_facts(np: _NP) -> set[Fact]:
    colour = next((v for t, v in np.mods if t == "colour"), None)
    number = next((v for t, v in np.mods if t == "num"), None)
    if np.kind is None:
        if np.negated:
            return {("count", None, colour, 0)}
        return {("count", None, colour, number)} if number is not None else set()
    if np.negated or number == 0:
        return {("absent", np.kind, colour)}
    facts: set[Fact] = {("obj", np.kind)}
    facts |= {("colour", np.kind, v) for t, v in np.mods if t == "colour"}
    facts |= {("size", np.kind, v) for t, v in np.mods if t == "size"}
    if number is not None:
        facts.add(("count", np.kind, colour, number))
    return facts


def _bare_number(n: int, ctx: QuestionContext) -> set[Fact]:
    if ctx.mode == "count":
        return {("count", ctx.count_kind, ctx.count_colour, n)}
    if ctx.mode == "number":
        return {("number", n)}
    if ctx.mode == "reading":
        return {("word", str(n))}
    return set()


def _bind(
    ci: int, index: int, kinds_in: list[list[_NP]], clause: list, ctx: QuestionContext
) -> _NP | str | None:
    """The noun phrase a free attribute belongs to: nearest in its clause, then earlier in the
    sentence, then later; a clause opening with "it"/"they" and nothing before refers to the
    question's subject (returned as a kind name)."""
    here = kinds_in[ci]
    before = [np for np in here if np.index < index]
    after = [np for np in here if np.index > index]
    if before:
        return before[-1]
    if after:
        return after[0]
    earlier = [np for nps in kinds_in[:ci] for np in nps]
    if earlier:
        return earlier[-1]
    if clause and clause[0][0] == "other" and clause[0][1] in PRONOUNS:
        return ctx.subject
    later = [np for nps in kinds_in[ci + 1 :] for np in nps]
    return later[0] if later else ctx.subject


def _thing(np: _NP) -> Fact | None:
    """("thing", kind, colour, size, row, col): one object described by several attributes at
    once — "a small red heart in the bottom right" must be one object, not three true facts."""
    attrs = [(t, v) for t, v in np.mods + np.bound if t in ("colour", "size", "pos")]
    colours = {v for t, v in attrs if t == "colour"}
    sizes = {v for t, v in attrs if t == "size"}
    rows = {v[0] for t, v in attrs if t == "pos" and v[0] is not None}
    cols = {v[1] for t, v in attrs if t == "pos" and v[1] is not None}
    if max(len(colours), len(sizes), len(rows), len(cols)) > 1:
        return None  # contradictory or plural description: leave it to the single facts
    known = len(colours) + len(sizes) + bool(rows or cols)
    if known < 2:
        return None
    colour, size, row, col = (next(iter(v), None) for v in (colours, sizes, rows, cols))
    return ("thing", np.kind, colour, size, row, col)


def _relation(index: int, rel: str, here: list[_NP], ctx: QuestionContext) -> set[Fact]:
    after = [np for np in here if np.index > index]
    before = [np for np in here if np.index < index]
    if not after:
        return set()
    b = after[0].kind
    a = before[-1].kind if before else (after[1].kind if len(after) > 1 else ctx.subject)
    return {("rel", a, rel, b)} if a and a != b else set()
