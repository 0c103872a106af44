"""The words the claim reader knows: sizes, numbers, negations, clause separators, generic
nouns, and the tokeniser that turns a sentence into typed items (kind, colour, position...)."""

from __future__ import annotations

import re

from mmbench.benchmarks.chair import singularize
from mmbench.world.scenes import COLOURS
from mmbench.world.vocabulary import VOCABULARY

Fact = tuple
SIZE_WORDS = {
    "large": "large",
    "big": "large",
    "larger": "large",
    "bigger": "large",
    "small": "small",
    "little": "small",
    "tiny": "small",
    "smaller": "small",
}
NUMBERS = {
    w: i
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}
NEGATIONS = {"no", "not", "none", "neither", "nor", "never", "without", "cannot"}
SEPARATORS = {",", ";", ":", "and", "but", "while", "whereas", "although", "though", "however", "yet"}
FILLERS = {
    "a",
    "an",
    "the",
    "faint",
    "pale",
    "bright",
    "solid",
    "light",
    "dark",
    "single",
    "plain",
    "also",
    "both",
}
GENERIC = {"shape", "object", "item", "thing", "figure"}
WORD_REFS = {"word", "words", "text", "written", "printed", "says", "say", "reads", "letters", "sign"}
PRONOUNS = {"it", "its", "they", "this", "that"}
READING_STOP = {
    "the",
    "a",
    "an",
    "it",
    "is",
    "says",
    "say",
    "reads",
    "read",
    "word",
    "text",
    "written",
    "printed",
    "in",
    "image",
    "picture",
    "of",
    "on",
    "shows",
    "number",
    "that",
    "this",
    "there",
    "top",
    "bottom",
    "left",
    "right",
    "upper",
    "lower",
    "corner",
    "i",
    "think",
    "see",
    "can",
    "be",
    "as",
    "at",
    "tell",
    "know",
    "sure",
    "unclear",
    "unknown",
    "nothing",
    "something",
    "maybe",
    "probably",
    "looks",
    "like",
}


def kind_of(token: str) -> str | None:
    syn = VOCABULARY.synonyms
    return syn.get(token) or syn.get(singularize(token))


def tokens_of(sentence: str) -> list[str]:
    text = sentence.lower().replace("-", " ")
    raw = re.findall(r"[a-z]+(?:'[a-z]+)?|\d+|[,;:]", text)
    out, i = [], 0
    while i < len(raw):  # join the vocabulary's two-word names ("plus sign", "crescent moon")
        pair = f"{raw[i]} {singularize(raw[i + 1])}" if i + 1 < len(raw) else ""
        if pair in VOCABULARY.phrases:
            out.append(pair)
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return out


def _kind_ahead(tokens: list[str], start: int) -> bool:
    """Is a kind named soon after `start`, before the clause ends (for "left of the star")?"""
    for tok in tokens[start : start + 5]:
        if tok in SEPARATORS:
            return False
        if kind_of(tok):
            return True
    return False


def items_of(tokens: list[str]) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    i = 0
    while i < len(tokens):
        tok, nxt = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in ("top", "upper", "bottom", "lower") and nxt in ("left", "right"):
            items.append(("pos", (0 if tok in ("top", "upper") else 1, 0 if nxt == "left" else 1)))
            i += 2
            continue
        if tok in ("left", "right"):
            if nxt == "of" and _kind_ahead(tokens, i + 2):
                items.append(("rel", tok))
                i += 2
                continue
            items.append(("pos", (None, 0 if tok == "left" else 1)))
        elif tok == "top" and nxt == "of" and _kind_ahead(tokens, i + 2):
            items.append(("rel", "above"))
            i += 2
            continue
        elif tok in ("top", "bottom"):
            items.append(("pos", (0 if tok == "top" else 1, None)))
        elif tok in ("above", "over", "atop") and _kind_ahead(tokens, i + 1):
            items.append(("rel", "above"))
        elif tok in ("below", "under", "beneath", "underneath") and _kind_ahead(tokens, i + 1):
            items.append(("rel", "below"))
        elif tok in SEPARATORS:
            items.append(("sep", tok))
        elif tok in NEGATIONS or tok.endswith("n't"):
            items.append(("neg", tok))
        elif tok in COLOURS:
            items.append(("colour", tok))
        elif tok in SIZE_WORDS:
            items.append(("size", SIZE_WORDS[tok]))
        elif tok in NUMBERS or tok.isdigit():
            items.append(("num", NUMBERS.get(tok, int(tok) if tok.isdigit() else 0)))
        elif kind_of(tok):
            items.append(("kind", kind_of(tok)))
        elif singularize(tok) in GENERIC:
            items.append(("generic", None))
        elif tok in WORD_REFS:
            items.append(("wordref", tok))
        elif tok in FILLERS:
            items.append(("fill", tok))
        else:
            items.append(("other", tok))
        i += 1
    return items
