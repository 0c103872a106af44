"""COCO object recall (Recall_coco) with CHAIR — how many annotated objects a detailed
description mentions, and how many mentioned objects are not there.

Data: detailed-description prompts on COCO images with each image's ground-truth categories
(lmms-eval's `tsunghanwu/mscoco_chair`, field `gt_object`; official-style JSON rows with
`image` and `objects`).  Recall is micro-averaged: Σ|GT ∩ mentioned| / Σ|GT| × 100.
CHAIR_i = hallucinated mentions / all mentions; CHAIR_s = share of descriptions with one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmbench.benchmarks.base import Benchmark, DetailGroup, GenerationSettings, LmmsEvalTasks, Record
from mmbench.benchmarks.chair import get_vocabulary
from mmbench.benchmarks.loading import first_field, row_image

VERSION = 1
DEFAULT_PROMPT = "Please describe this image in detail."


def record_from_row(row: dict, folder: Path | None) -> Record:
    objects = first_field(row, "objects", "gt_object", "gt_objects", default=[])
    if isinstance(objects, str):
        objects = [o.strip() for o in objects.split(",") if o.strip()]
    vocabulary = row.get("vocabulary", "coco")
    # Ground-truth names go through the same vocabulary so "men" in an annotation is "person".
    canonical = sorted({get_vocabulary(vocabulary).canonical(o) for o in objects})
    return Record(
        id=str(first_field(row, "id", "question_id", "image_id", "_key")),
        prompt=first_field(row, "prompt", "question", default=DEFAULT_PROMPT),
        image=row_image(first_field(row, "image", "image_path", "file_name"), folder),
        reference={"objects": canonical, "vocabulary": vocabulary},
    )


def score(reference: dict, response: str, judge_outputs=None, **_) -> dict:
    mentioned = get_vocabulary(reference.get("vocabulary", "coco")).mentions(response)
    truth = set(reference["objects"])
    return {
        "gt": len(truth),
        "covered": len(truth & set(mentioned)),
        "mentions": len(mentioned),
        "hallucinated": sum(obj not in truth for obj in mentioned),
    }


def aggregate(samples: Sequence[dict]) -> dict[str, float]:
    gt = sum(s["gt"] for s in samples)
    mentions = sum(s["mentions"] for s in samples)
    return {
        "recall": 100 * sum(s["covered"] for s in samples) / gt if gt else 0.0,
        "chair_i": 100 * sum(s["hallucinated"] for s in samples) / mentions if mentions else 0.0,
        "chair_s": 100 * sum(s["hallucinated"] > 0 for s in samples) / len(samples),
    }


BENCHMARK = Benchmark(
    name="coco_recall",
    version=VERSION,
    headline="recall",
    hub_id="tsunghanwu/mscoco_chair",
    hub_config=None,
    hub_splits=("test",),
    description="Detailed descriptions: object recall, CHAIR_i, CHAIR_s",
    generation=GenerationSettings(max_new_tokens=512, short_answer=False),
    record_from_row=record_from_row,
    score=score,
    aggregate=aggregate,
    reference_keys=("objects",),
    higher_is_better={"recall": True, "chair_i": False, "chair_s": False},
    details=(DetailGroup("Object recall and CHAIR", ("recall", "chair_i", "chair_s")),),
    # lmms-eval's CHAIR scoring needs the COCO annotation files: its engine only generates
    lmms=LmmsEvalTasks(tasks=(("coco_cap_chair", "coco_cap_chair/coco_cap_chair.yaml", None),),
                       scores_offline=False, metrics=("recall", "chair_i", "chair_s")),
)
