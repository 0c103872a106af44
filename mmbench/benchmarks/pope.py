"""POPE — object-existence yes/no questions with random, popular and adversarial negatives.

Data: hub `lmms-lab/POPE`, config `Full`, splits random/popular/adversarial (COCO val2014), or
the official `coco_pope_<split>.json` files (JSON Lines: question_id, image, text, label) plus
the image folder.  Headline: F1 averaged over the splits present (×100).
"""

from __future__ import annotations

from collections import Counter
from operator import itemgetter
from pathlib import Path
from typing import Sequence

from mmbench.benchmarks.base import (SINGLE_WORD, Benchmark, DetailGroup, GenerationSettings, LmmsEvalTasks,
                                     Record, mean)
from mmbench.benchmarks.loading import first_field, row_image
from mmbench.benchmarks.textnorm import parse_yes_no_official, parse_yes_no_strict
from mmbench.errors import MmbenchError

VERSION = 1
SPLITS = ("random", "popular", "adversarial")


def _split_of(row: dict) -> str:
    for value in (row.get("category"), row.get("_split"), row.get("split"), row.get("_file")):
        for split in SPLITS:
            if value and split in str(value):
                return split
    return "random"


LABELS = ("yes", "no")


def record_from_row(row: dict, folder: Path | None) -> Record:
    question = first_field(row, "question", "text")
    if not isinstance(question, str) or not question.strip():
        raise MmbenchError("POPE record has no question ('question' or 'text')")
    label = first_field(row, "answer", "label")
    if label is None:
        raise MmbenchError("POPE record has no answer ('answer' or 'label')")
    answer = str(label).strip().lower()
    if answer not in LABELS:
        raise MmbenchError(f"POPE answer must be yes or no, got {label!r}")
    split = _split_of(row)
    qid = first_field(row, "question_id", "id")
    return Record(
        id=f"{split}/{qid}",
        prompt=f"{question}\n{SINGLE_WORD}",
        image=row_image(first_field(row, "image", "image_path"), folder),
        reference={"answer": answer, "split": split},
    )


def check_reference(reference: dict) -> str | None:
    """Why a stored reference cannot be scored (unknown split or label), or None."""
    if reference.get("split") not in SPLITS:
        return f"unknown POPE split {reference.get('split')!r} (known: {', '.join(SPLITS)})"
    if reference.get("answer") not in LABELS:
        return f"POPE label must be yes or no, got {reference.get('answer')!r}"
    return None


PARSES = ("official", "strict")  # POPE's own parse (the default); lmms-eval's exact match


def score(reference: dict, response: str, judge_outputs=None, *, parse: str = "official") -> dict:
    """Per sample: the parsed prediction ("yes", "no", or None under the strict parse)."""
    if parse not in PARSES:
        raise ValueError(f"unknown POPE parse {parse!r} (known: {', '.join(PARSES)})")
    predicted = parse_yes_no_strict(response) if parse == "strict" else parse_yes_no_official(response)
    return {"split": reference["split"], "label": reference["answer"], "pred": predicted}


def _split_metrics(counts: Counter) -> dict[str, float]:
    """Metrics of one split from its (pred, label) counts."""
    tp, fp = counts["yes", "yes"], counts["yes", "no"]
    tn, fn = counts["no", "no"], counts["no", "yes"]
    n = sum(counts.values())  # unparsed strict answers count in n (as wrong) but in no class
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": 100 * (tp + tn) / n,
        "precision": 100 * precision,
        "recall": 100 * recall,
        "f1": 100 * f1,
        "yes_ratio": 100 * sum(c for (pred, _), c in counts.items() if pred == "yes") / n,
    }


_KEY = itemgetter("split", "pred", "label")


def aggregate(samples: Sequence[dict]) -> dict[str, float]:
    # One pass of counting: the bootstrap calls this 1,000 times per cell on thousands of samples.
    counts: dict[str, Counter] = {}
    for (split, pred, label), count in Counter(map(_KEY, samples)).items():
        counts.setdefault(split, Counter())[pred, label] = count
    per_split = {split: _split_metrics(counts[split]) for split in SPLITS if split in counts}
    metrics: dict[str, float] = {}
    for key in ("f1", "accuracy", "precision", "recall", "yes_ratio"):
        metrics[key] = mean([m[key] for m in per_split.values()])
    for split, values in per_split.items():
        metrics.update({f"{split}/{key}": value for key, value in values.items()})
    return metrics


def record_from_lmms_entry(entry: dict, split: str | None, doc_id) -> Record | None:
    """lmms-eval's POPE logs keep the label in the metric entry (`ground_truth`), not a doc."""
    if "ground_truth" not in entry:
        return None
    return Record(id=f"{split}/{entry.get('question_id', doc_id)}", prompt="", image=None,
                  reference={"answer": entry["ground_truth"], "split": split or "random"})


LMMS = LmmsEvalTasks(
    tasks=(("pope_random", "pope/pope_random.yaml", "random"), ("pope_pop", "pope/pope_pop.yaml", "popular"),
           ("pope_adv", "pope/pope_adv.yaml", "adversarial")),
    metrics=("f1", "accuracy", "precision", "recall", "yes_ratio"),
    record_from_entry=record_from_lmms_entry,
)

BENCHMARK = Benchmark(
    name="pope",
    version=VERSION,
    headline="f1",
    hub_id="lmms-lab/POPE",
    hub_config="Full",
    hub_splits=SPLITS,
    description="Object existence yes/no (random/popular/adversarial negatives)",
    generation=GenerationSettings(max_new_tokens=16, short_answer=True),
    record_from_row=record_from_row,
    score=score,
    aggregate=aggregate,
    reference_keys=("answer", "split"),
    check_reference=check_reference,
    parses=PARSES,
    details=(DetailGroup("POPE splits", (*(f"{split}/f1" for split in SPLITS), "yes_ratio")),),
    lmms=LMMS,
)
