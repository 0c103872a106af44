"""Answer parsing and normalisation shared by every benchmark (written once, used everywhere)."""

from __future__ import annotations

import re

# ---------------------------------------------------------------- yes / no answers

def parse_yes_no_official(text: str) -> str:
    """POPE's own rule (also LLaVA's eval): first sentence, commas deleted, split on single
    spaces; the answer is "no" if a word is exactly `No`, `no` or `not`, else "yes".

    Case-sensitive on purpose ("NO" and "Not" count as yes) and an empty answer is "yes":
    that quirk is what published POPE numbers were computed with."""
    first = text.split(".")[0] if "." in text else text
    words = first.replace(",", "").split(" ")
    return "no" if {"No", "no", "not"} & set(words) else "yes"


def parse_yes_no_strict(text: str) -> str | None:
    """lmms-eval's rule: lower-cased, stripped exact match; anything else is neither."""
    answer = text.strip().lower()
    return answer if answer in ("yes", "no") else None


def starts_with_yes_no(sentence: str) -> str | None:
    """"yes"/"no" when a sentence opens with that word (BDHS flips such answers)."""
    match = re.match(r"\s*(yes|no)\b", sentence, flags=re.IGNORECASE)
    return match.group(1).lower() if match else None


# ---------------------------------------------------------------- VQA (EvalAI) normalisation

_CONTRACTIONS = {
    w.replace("'", ""): w
    for w in (
        "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've "
        "hasn't haven't he'd he'd've he's how'd how'll how's i'd i'd've i'm i've isn't it'd it'd've "
        "it'll let's ma'am mightn't mightn't've might've mustn't must've needn't not've o'clock "
        "oughtn't 'ow's'at shan't she'd've she's should've shouldn't shouldn't've somebody'd "
        "somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's "
        "something'd something'd've something'll that's there'd there'd've there're there's "
        "they'd they'd've they'll they're they've 'twas wasn't we'd've we've weren't what'll "
        "what're what's what've when's where'd where's where've who'd who'd've who'll who's "
        "who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've "
        "you'd you'd've you'll you're you've"
    ).split()
}
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
                ">", "<", "@", "`", ",", "?", "!"]
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"\.(?!\d)")


def _strip_punctuation(text: str) -> str:
    out = text
    has_number_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in _PUNCTUATION:
        # A mark touching a space is dropped; one inside a word ("t-shirt") becomes a space.
        if f"{mark} " in text or f" {mark}" in text or has_number_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_DECIMAL.sub("", out)


def _digits_articles_contractions(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_vqa_answer(text: str) -> str:
    """The EvalAI/VQA answer normalisation used for TextVQA (prediction and every answer)."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles_contractions(_strip_punctuation(text))


def normalize_exact(text: str) -> str:
    """GQA-style exact-match form: lower-case, punctuation removed, whitespace collapsed."""
    text = re.sub(r"[^\w\s]", "", text.lower())
    return " ".join(text.split())


# ---------------------------------------------------------------- judge verdicts

_RATING = re.compile(r"rating:\s*([0-6])(?!\d)", re.IGNORECASE)


def parse_rating(verdict: str) -> int | None:
    """MMHal: the one rating N (0-6) written as `Rating: N`; none or two different ones -> None."""
    found = {int(m) for m in _RATING.findall(verdict)}
    return found.pop() if len(found) == 1 else None


def parse_score_pair(verdict: str) -> tuple[float, float] | None:
    """LLaVA-W: exactly two numbers on the first line (commas/semicolons count as spaces)."""
    first_line = verdict.strip().split("\n")[0] if verdict.strip() else ""
    parts = first_line.replace(",", " ").replace(";", " ").split()
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None


def parse_unit_score(verdict: str) -> float | None:
    """MM-Vet: the first token is a correctness score in [0, 1]."""
    parts = verdict.strip().split()
    if not parts:
        return None
    try:
        value = float(parts[0])
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def fill_template(template: str, **fields: str) -> str:
    """Replace `{name}` slots by value in one pass (a value containing "{rule}" is not filled
    again); other braces in a user-supplied prompt are left alone."""
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in fields)) if fields else None
    return pattern.sub(lambda m: fields[m.group(0)[1:-1]], template) if pattern else template


_BETTER = re.compile(r"better\W{0,4}:\W{0,4}(a|b|tie)\b", re.IGNORECASE)  # tolerates "**Better:** B"


def parse_preference(verdict: str) -> str | None:
    """Pairwise annotator: "A", "B" or "tie" when the verdict names exactly one, else None."""
    found = {m.lower() for m in _BETTER.findall(verdict)}
    if len(found) != 1:
        return None
    choice = found.pop()
    return choice.upper() if choice in ("a", "b") else "tie"


# ---------------------------------------------------------------- sentences

def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by whitespace, keeping the punctuation."""
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if p]
