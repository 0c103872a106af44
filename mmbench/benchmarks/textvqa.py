"""TextVQA (VQA^T) — reading text in images; 10 human answers per question.

Data: hub `lmms-lab/textvqa` split `validation`, or the official `TextVQA_0.5.1_val.json`
(`{"data": [...]}`, images `train_images/<image_id>.jpg`).  Scoring: EvalAI normalisation of
prediction and answers, then the leave-one-out VQA accuracy averaged over the 10 answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmbench.benchmarks.base import SINGLE_WORD, Benchmark, GenerationSettings, LmmsEvalTasks, Record, mean
from mmbench.benchmarks.loading import first_field, row_image
from mmbench.benchmarks.textnorm import normalize_vqa_answer

VERSION = 1


def record_from_row(row: dict, folder: Path | None, *, with_ocr: bool = False) -> Record:
    image = first_field(row, "image")
    if image is None and row.get("image_id"):
        image = f"{row['image_id']}.jpg"
    prompt = row["question"]
    if with_ocr and row.get("ocr_tokens"):  # LLaVA-1.5 style: hand the reference OCR tokens over
        prompt += "\nReference OCR token: " + ", ".join(row["ocr_tokens"])
    return Record(
        id=str(first_field(row, "question_id", "id")),
        prompt=f"{prompt}\n{SINGLE_WORD}",
        image=row_image(image, folder),
        reference={"answers": [str(a) for a in row["answers"]]},
    )


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """min(1, matches among the other answers / 3), averaged over leaving each answer out."""
    pred = normalize_vqa_answer(prediction)
    gold = [normalize_vqa_answer(a) for a in answers]
    scores = []
    for i in range(len(gold)):
        others = gold[:i] + gold[i + 1:]
        scores.append(min(1.0, sum(g == pred for g in others) / 3))
    return mean(scores)


def score(reference: dict, response: str, judge_outputs=None, **_) -> dict:
    return {"accuracy": vqa_accuracy(response, reference["answers"])}


def aggregate(samples: Sequence[dict]) -> dict[str, float]:
    return {"accuracy": 100 * mean([s["accuracy"] for s in samples])}


BENCHMARK = Benchmark(
    name="textvqa",
    version=VERSION,
    headline="accuracy",
    hub_id="lmms-lab/textvqa",
    hub_config=None,
    hub_splits=("validation",),
    description="Reading text in images (VQA accuracy over 10 answers)",
    generation=GenerationSettings(max_new_tokens=16, short_answer=True),
    record_from_row=record_from_row,
    score=score,
    aggregate=aggregate,
    reference_keys=("answers",),
    lmms=LmmsEvalTasks(tasks=(("textvqa_val", "textvqa/textvqa_val.yaml", None),), metrics=("accuracy",)),
)
