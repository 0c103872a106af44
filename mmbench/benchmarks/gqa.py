"""GQA — compositional questions about objects, attributes and relations.

Data: hub `lmms-lab/GQA`, config `testdev_balanced_instructions`, split `testdev`, with images
from config `testdev_balanced_images` joined on `imageId`; or the official
`testdev_balanced_questions.json` (id -> question) plus `images/<imageId>.jpg`.
Scoring: exact match after lower-casing and removing punctuation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmbench.benchmarks.base import SINGLE_WORD, Benchmark, GenerationSettings, LmmsEvalTasks, Record, mean
from mmbench.benchmarks.loading import first_field, row_image
from mmbench.benchmarks.textnorm import normalize_exact

VERSION = 1


def record_from_row(row: dict, folder: Path | None) -> Record:
    image = first_field(row, "image")
    if image is None:
        image = f"{row['imageId']}.jpg"
    return Record(
        id=str(first_field(row, "id", "question_id", "_key")),
        prompt=f"{row['question']}\n{SINGLE_WORD}",
        image=row_image(image, folder),
        reference={"answer": str(row["answer"])},
    )


def score(reference: dict, response: str, judge_outputs=None, **_) -> dict:
    return {"correct": float(normalize_exact(response) == normalize_exact(reference["answer"]))}


def aggregate(samples: Sequence[dict]) -> dict[str, float]:
    return {"accuracy": 100 * mean([s["correct"] for s in samples])}


BENCHMARK = Benchmark(
    name="gqa",
    version=VERSION,
    headline="accuracy",
    hub_id="lmms-lab/GQA",
    hub_config="testdev_balanced_instructions",
    hub_splits=("testdev",),
    description="Compositional scene questions (exact match)",
    generation=GenerationSettings(max_new_tokens=16, short_answer=True),
    record_from_row=record_from_row,
    score=score,
    aggregate=aggregate,
    reference_keys=("answer",),
    image_join=("testdev_balanced_images", "imageId", "id"),
    lmms=LmmsEvalTasks(tasks=(("gqa", "gqa/gqa.yaml", None),), metrics=("accuracy",)),
)
