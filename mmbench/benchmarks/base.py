"""What every benchmark module provides, as plain data and functions.

A benchmark turns data rows into `Record`s, each record into a model prompt, and
(reference, response, judge outputs) into per-sample numbers; an aggregator turns the
list of per-sample numbers into metrics.  Scorers are pure: no model, data or network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

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


class DetailGroup(NamedTuple):
    """One detail table in reports: a title and the benchmark's metrics it shows, in order."""

    title: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class LmmsEvalTasks:
    """How lmms-eval knows a benchmark (harness/lmms.py runs, lmms_export.py exports)."""

    # lmms-eval's own tasks: (task, its YAML inside lmms_eval/tasks, the split it holds or None);
    # none: lmms-eval lacks the benchmark and exported tasks carry its own name
    tasks: tuple[tuple[str, str, str | None], ...] = ()
    # lmms-eval's scoring of its tasks runs offline (False: it needs a hub file or a GPT key,
    # so the engine only generates and mmbench judges and scores)
    scores_offline: bool = True
    # metrics declared by exported tasks, headline first (empty: the headline alone)
    metrics: tuple[str, ...] = ()
    # (lmms-eval's per-sample metric entry, the task's split, doc_id) -> Record, for logs that
    # carry no document but a reference in the entry (POPE's ground_truth); None if it has none
    record_from_entry: Callable[[dict, str | None, Any], Record | None] | None = None


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
    # keys every sample's `reference` must hold (the samples.jsonl contract, README "Run files")
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
    # the ways `score` can read an answer, its default first (POPE: official, strict).  A run
    # asks for one by name (`--strict`: "strict"); a benchmark without it uses its default, and
    # `score` gets `parse=` only when there is a choice
    parses: tuple[str, ...] = ("official",)
    # detail tables in reports (splits, question types, capabilities, ...)
    details: tuple[DetailGroup, ...] = ()
    lmms: LmmsEvalTasks = LmmsEvalTasks()

    @property
    def judged(self) -> bool:
        return self.judge is not None

    def parse_for(self, requested: str | None) -> str:
        """The parse a run that asks for `requested` (None: the default) gets."""
        return requested if requested in self.parses else self.parses[0]

    def parse_config(self, requested: str | None) -> dict:
        """What results.json records about the parse: only benchmarks with a choice name it."""
        return {"parse": self.parse_for(requested)} if len(self.parses) > 1 else {}

    def score_sample(self, sample: dict, parse: str | None = None) -> dict:
        """One stored sample (reference, response, judge outputs) -> its per-sample numbers: the
        one path the eval runner, `mmbench score` and reports score through."""
        outputs = (sample.get("judge") or {}).get("outputs")
        options = {"parse": self.parse_for(parse)} if len(self.parses) > 1 else {}
        return self.score(sample["reference"], sample["response"], outputs, **options)

    def higher_is_better_for(self, metric: str) -> bool:
        return self.higher_is_better.get(metric, True)

    def best(self, values: Sequence[float], metric: str) -> float | None:
        """The best of `values` of `metric`, by the metric's direction (CHAIR: the lowest)."""
        values = list(values)
        if not values:
            return None
        return max(values) if self.higher_is_better_for(metric) else min(values)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
