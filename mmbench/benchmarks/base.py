"""What every benchmark module provides, as plain data and functions.

A benchmark turns data rows into `Record`s, each record into a model prompt, and
(reference, response, judge outputs) into per-sample numbers; an aggregator turns the
list of per-sample numbers into metrics.  Scorers are pure: no model, data or network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

SINGLE_WORD = "Answer the question using a single word or phrase."


@dataclass
class Record:
    """One benchmark item, ready for the model: prompt text, image and reference."""

    id: str
    prompt: str
    image: Any  # PIL.Image.Image, a path, or None
    reference: dict


@dataclass(frozen=True)
class GenerationSettings:
    """How long the model may answer; long answers must not stop at a blank line."""

    max_new_tokens: int
    short_answer: bool


@dataclass(frozen=True)
class JudgeSpec:
    """A judged benchmark's two pure functions around the shared judge client."""

    default_model: str
    vision: bool
    prompt_version: int
    default_template: str
    # (reference, response, template) -> chat messages (text only; the client attaches images)
    build_messages: Callable[[dict, str, str], list[dict]]
    # raw verdict -> parsed value, or None when the text cannot be parsed
    parse: Callable[[str], Any]
    temperature: float = 0.0
    runs: int = 1
    max_tokens: int = 512
    # the template slot that shows the judge the model's answer (a custom prompt must have it)
    response_slot: str = "response"


@dataclass(frozen=True)
class Benchmark:
    name: str
    version: int
    headline: str
    hub_id: str
    hub_config: str | None
    hub_splits: tuple[str, ...]
    description: str
    generation: GenerationSettings
    # (one data row with hub or official field names, folder for relative image paths) -> Record
    record_from_row: Callable[[dict, Path | None], Record]
    # (reference, response, judge outputs or None, options) -> per-sample numbers;
    # a sample whose judge outputs cannot be parsed returns {"failed": True}
    score: Callable[..., dict]
    # list of per-sample dicts -> metrics (percentages, MMHal on 0-6)
    aggregate: Callable[[Sequence[dict]], dict[str, float]]
    # keys every sample's `reference` must hold (the samples.jsonl contract in DESIGN.md)
    reference_keys: tuple[str, ...] = ()
    judge: JudgeSpec | None = None
    # optional reader for official layouts that are not one flat JSON/JSONL file
    read_official: Callable[..., list[dict] | None] | None = None
    # hub datasets that keep images in another config (GQA): (config, row key, image-table key)
    image_join: tuple[str, str, str] | None = None
    # metrics where lower is better (CHAIR, hallucination rate); everything else is higher
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    # reference -> why it cannot be scored (unknown label or split), or None; checked by `score`
    check_reference: Callable[[dict], str | None] | None = None

    @property
    def judged(self) -> bool:
        return self.judge is not None


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
