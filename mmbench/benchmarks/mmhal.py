"""MMHal-Bench — 96 open questions (8 types × 12) rated 0–6 by a judge for informativeness
and hallucination.

Data: hub `Shengcao1006/MMHal-Bench` split `test`, or the official `response_template.json`
(a list of rows) plus the images (named after `image_src`'s file name, or `<image_id>.jpg`).
The judge sees the image contents (class names), the question, the human reference answer and
the model's answer, explains, and ends with `Rating: N`.  Metrics: mean rating (0–6),
hallucination rate (share of ratings < 3, in %), and the mean rating per question type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmbench.benchmarks.base import (Benchmark, DetailGroup, GenerationSettings, JudgeSpec, LmmsEvalTasks,
                                     Record, mean)
from mmbench.benchmarks.loading import first_field, row_image
from mmbench.benchmarks.textnorm import fill_template, parse_rating

VERSION = 1
PROMPT_VERSION = 1
QUESTION_TYPES = ("attribute", "adversarial", "comparison", "counting", "relation", "environment",
                  "holistic", "other")

_INTRO_TEXT = """\
You are grading how well an AI assistant answered a question about an image, with a focus on \
hallucination. You cannot see the image; instead you get the names of the objects annotated in \
it, the question, a correct answer written by a person, and the assistant's answer.
"""
# MMHal-V: same rubric and format, but the judge is shown the image itself.
_INTRO_VISION = """\
You are grading how well an AI assistant answered a question about the attached image, with a \
focus on hallucination. Look at the image; you also get the names of the objects annotated in \
it, the question, a correct answer written by a person, and the assistant's answer.
"""

_RUBRIC = """
A hallucination is a claim in the assistant's answer that is false for the image: it names \
objects, attributes, counts, positions or text that are not there, or contradicts the person's \
answer. Saying less than the person's answer is not a hallucination. Judge only what the \
assistant asserts; be strict about invented details and generous about wording.

Rate the answer on this scale:
6 - very informative, with good analysis or reasoning, and no hallucination
5 - very informative, no hallucination
4 - somewhat informative, no hallucination
3 - not informative, no hallucination
2 - very informative, with hallucination
1 - somewhat informative, with hallucination
0 - not informative, with hallucination

Write one or two sentences of explanation, then finish with a line of the form "Rating: N".

Worked examples:

Objects in the image: Dog, Frisbee, Grass
Question: What is the dog holding?
Correct answer: The dog is holding a red frisbee in its mouth.
Assistant's answer: The dog has a red frisbee in its mouth while standing on the grass.
Explanation: Every claim matches the image and the answer covers what was asked.
Rating: 5

Objects in the image: Car, Person, Traffic light
Question: How many people are crossing the street?
Correct answer: One person is crossing the street.
Assistant's answer: Three people are crossing the street at the traffic light.
Explanation: The count is wrong, which is a hallucination, though the answer addresses the question.
Rating: 1

Objects in the image: Cake, Candle, Table
Question: What is the occasion in this picture?
Correct answer: It appears to be a birthday, given the cake with candles.
Assistant's answer: I cannot tell what the occasion is.
Explanation: Nothing false is claimed, but the answer gives no information.
Rating: 3

Objects in the image: Bicycle, Wall
Question: Describe the bicycle's position and the reason it might be there.
Correct answer: A bicycle leans against a brick wall, probably parked by its owner.
Assistant's answer: The bicycle leans against the wall, likely parked there while its owner \
is nearby; the kickstand is not used, which suggests a short stop.
Explanation: Accurate, and the answer reasons about the scene beyond the person's answer.
Rating: 6

Now grade this one.

Objects in the image: {image_content}
Question: {question}
Correct answer: {gt_answer}
Assistant's answer: {response}
"""

JUDGE_TEMPLATE = _INTRO_TEXT + _RUBRIC
VISION_JUDGE_TEMPLATE = _INTRO_VISION + _RUBRIC


def record_from_row(row: dict, folder: Path | None) -> Record:
    image = first_field(row, "image")
    if image is None:  # official template: images are named after image_src's file name
        src = row.get("image_src") or f"{row.get('image_id')}.jpg"
        image = src.rsplit("/", 1)[-1]
    content = row.get("image_content") or []
    if isinstance(content, str):
        content = [c.strip() for c in content.split(",") if c.strip()]
    qid = first_field(row, "id", "question_id", default=None)
    return Record(
        id=str(qid if qid is not None else f"{row.get('image_id')}/{row.get('question_topic', '')}/{row.get('question_type')}"),
        prompt=row["question"],
        image=row_image(image, folder),
        reference={"question": row["question"], "question_type": row["question_type"],
                   "image_content": list(content), "gt_answer": row["gt_answer"]},
    )


def build_judge_messages(reference: dict, response: str, template: str) -> list[dict]:
    text = fill_template(
        template,
        image_content=", ".join(reference["image_content"]),
        question=reference["question"],
        gt_answer=reference["gt_answer"],
        response=response,
    )
    return [{"role": "user", "content": text}]


def score(reference: dict, response: str, judge_outputs=None, **_) -> dict:
    ratings = [r for r in (parse_rating(o) for o in (judge_outputs or [])) if r is not None]
    if not ratings:
        return {"failed": True, "question_type": reference["question_type"]}
    return {"rating": mean(ratings), "question_type": reference["question_type"]}


def aggregate(samples: Sequence[dict]) -> dict[str, float]:
    rated = [s for s in samples if not s.get("failed")]
    metrics = {
        "score": mean([s["rating"] for s in rated]),
        "hallucination_rate": 100 * mean([float(s["rating"] < 3) for s in rated]),
    }
    for question_type in sorted({s["question_type"] for s in rated}):
        metrics[f"type/{question_type}"] = mean([s["rating"] for s in rated if s["question_type"] == question_type])
    return metrics


JUDGE = JudgeSpec(
    default_model="gpt-4.1-2025-04-14",
    vision=False,
    prompt_version=PROMPT_VERSION,
    default_template=JUDGE_TEMPLATE,
    build_messages=build_judge_messages,
    parse=parse_rating,
    max_tokens=512,
)

BENCHMARK = Benchmark(
    name="mmhal",
    version=VERSION,
    headline="score",
    hub_id="Shengcao1006/MMHal-Bench",
    hub_config=None,
    hub_splits=("test",),
    description="MMHal-Bench, text judge (0-6 rating, hallucination rate)",
    generation=GenerationSettings(max_new_tokens=512, short_answer=False),
    record_from_row=record_from_row,
    score=score,
    aggregate=aggregate,
    reference_keys=("question", "question_type", "image_content", "gt_answer"),
    judge=JUDGE,
    higher_is_better={"hallucination_rate": False},
    details=(DetailGroup("MMHal question types", tuple(f"type/{t}" for t in QUESTION_TYPES)),),
    lmms=LmmsEvalTasks(metrics=("score", "hallucination_rate")),  # lmms-eval has no MMHal task
)
