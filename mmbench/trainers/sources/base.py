"""What every preference source module provides: a `SourceFormat` that recognises its columns
and turns one row (image bytes left out) into zero or more `Candidate`s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmbench.harness.generation import GenerationRequest


@dataclass(frozen=True)
class PreferenceExample:
    """One training row as the steps see it (prompt-only rows have no chosen/rejected)."""

    id: str
    prompt: str
    image: Path | None
    chosen: str | None = None
    rejected: str | None = None

    @property
    def request(self) -> GenerationRequest:
        return GenerationRequest(prompt=self.prompt, image=self.image)


class BadRow(Exception):
    """A row that cannot be used; the loader names it by file and row."""


@dataclass
class ParseOptions:
    need_chosen: bool = True
    need_rejected: bool = True
    pairs: str = "best"  # VLFeedback: best | all
    seed: int = 0


@dataclass
class Candidate:
    id: str
    index: int  # row in the source
    prompt: str
    chosen: str | None
    rejected: str | None
    image: object  # the row's image value without bytes: a path string, {"path": ...} or None
    image_column: str | None
    image_pos: int | None = None  # position in a list column (TRL's `images`)


@dataclass(frozen=True)
class SourceFormat:
    name: str
    summary: str  # one line for the README table and `mmbench data inspect`
    hub_ids: tuple[str, ...]
    card: str  # the dataset card / repository the schema was checked against
    columns: tuple[str, ...]  # columns that identify the format
    detect: Callable[[set[str]], bool]
    parse: Callable[[dict, int, ParseOptions], list[Candidate]]


def answer(value, what: str, needed: bool) -> str | None:
    """A non-empty answer string, or None when the caller does not need it."""
    if not needed:
        return value if isinstance(value, str) and value.strip() else None
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRow(f"empty {what} answer")
    if not isinstance(value, str):
        raise BadRow(f"{what} answer is not text")
    return value


def prompt_text(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRow("empty prompt")
    return value


def check_pair(chosen: str | None, rejected: str | None) -> None:
    if chosen is not None and rejected is not None and chosen == rejected:
        raise BadRow("chosen and rejected answers are identical")


def row_id(row: dict, index: int, *keys: str) -> str:
    for key in keys:
        value = row.get(key)
        if value is not None and str(value) != "":
            return str(value)
    return f"row{index}"
