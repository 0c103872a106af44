"""LLaVA-Bench in-the-wild (LLaVA-W) — 60 open questions on 24 images, judged against a
reference answer.

Data: hub `lmms-lab/llava-bench-in-the-wild` split `train`, or the official folder
(`questions.jsonl`, `context.jsonl`, `answers_gpt4.jsonl`, `images/`).  The judge sees the
context captions, the question, Assistant 1 = the reference answer and Assistant 2 = the model,
and writes both 1–10 scores on its first line.  Relative score = mean(model) / mean(reference)
× 100, per category (conv, detail, complex) and overall; unparseable verdicts are excluded and
counted, never averaged in as -1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmbench.benchmarks.base import (Benchmark, DetailGroup, GenerationSettings, JudgeSpec, LmmsEvalTasks,
                                     Record, mean)
from mmbench.benchmarks.loading import first_field, read_json_rows, row_image
from mmbench.benchmarks.textnorm import fill_template, parse_score_pair

VERSION = 1
PROMPT_VERSION = 1
CATEGORIES = ("conv", "detail", "complex")

_RULES = {
    "conv": "The question comes from a conversation about the image. Judge whether each answer "
            "responds directly, correctly and helpfully, as a person who sees the image would.",
    "detail": "The question asks for a detailed description. Judge how accurately and how "
              "completely each answer describes the image, and penalise details that are not there.",
    "complex": "The question needs reasoning about the image. Judge the correctness of each "
               "answer's reasoning and conclusion, and how helpful and well explained it is.",
}

JUDGE_TEMPLATE = """\
You are a careful and fair reviewer of answers to questions about an image. You cannot see the \
image; its content is described by the context below (captions and object descriptions).

[Context]
{caption}

[Question]
{question}

[Assistant 1]
{answer_1}
[End of Assistant 1]

[Assistant 2]
{answer_2}
[End of Assistant 2]

[Instructions]
{rule} Rate the helpfulness, relevance, accuracy and level of detail of both answers. Give each \
assistant an overall score from 1 to 10; a higher score means a better answer.
On the first line, write only the two scores, Assistant 1's then Assistant 2's, separated by a \
space. From the second line on, explain your judgement without bias from the order in which the \
answers were shown or from their length.
"""


def read_official(folder: Path) -> list[dict] | None:
    """Join LLaVA's three official files into hub-shaped rows."""
    questions = folder / "questions.jsonl"
    if not questions.exists():
        return None
    contexts = {c.get("image"): c.get("caption", "") for c in read_json_rows(folder / "context.jsonl")}
    answers_file = next((folder / n for n in ("answers_gpt4.jsonl", "answers.jsonl") if (folder / n).exists()), None)
    answers = {a["question_id"]: a["text"] for a in read_json_rows(answers_file)} if answers_file else {}
    rows = []
    for q in read_json_rows(questions):
        rows.append({"question_id": q["question_id"], "question": q["text"], "image": q["image"],
                     "category": q["category"], "caption": contexts.get(q["image"], ""),
                     "gpt_answer": answers.get(q["question_id"], "")})
    return rows


def record_from_row(row: dict, folder: Path | None) -> Record:
    return Record(
        id=str(first_field(row, "question_id", "id")),
        prompt=row["question"],
        image=row_image(first_field(row, "image"), folder),
        reference={"question": row["question"], "category": row["category"],
                   "caption": row.get("caption") or "", "gpt_answer": row["gpt_answer"]},
    )


def build_judge_messages(reference: dict, response: str, template: str) -> list[dict]:
    text = fill_template(
        template,
        caption=reference["caption"],
        question=reference["question"],
        answer_1=reference["gpt_answer"],
        answer_2=response,
        rule=_RULES.get(reference["category"], _RULES["conv"]),
    )
    return [{"role": "system", "content": "You review answers precisely and helpfully."},
            {"role": "user", "content": text}]


def score(reference: dict, response: str, judge_outputs=None, **_) -> dict:
    pairs = [p for p in (parse_score_pair(o) for o in (judge_outputs or [])) if p is not None]
    if not pairs:
        return {"failed": True, "category": reference["category"]}
    return {"category": reference["category"], "reference_score": mean([p[0] for p in pairs]),
            "model_score": mean([p[1] for p in pairs])}


def _relative(samples: Sequence[dict]) -> float:
    reference = mean([s["reference_score"] for s in samples])
    return 100 * mean([s["model_score"] for s in samples]) / reference if reference else float("nan")


def aggregate(samples: Sequence[dict]) -> dict[str, float]:
    scored = [s for s in samples if not s.get("failed")]
    metrics = {
        "relative_score": _relative(scored),
        "model_score": mean([s["model_score"] for s in scored]),
        "reference_score": mean([s["reference_score"] for s in scored]),
    }
    for category in CATEGORIES:
        in_category = [s for s in scored if s["category"] == category]
        if in_category:
            metrics[f"{category}/relative_score"] = _relative(in_category)
    return metrics


JUDGE = JudgeSpec(
    default_model="gpt-4.1-2025-04-14",
    vision=False,
    prompt_version=PROMPT_VERSION,
    default_template=JUDGE_TEMPLATE,
    build_messages=build_judge_messages,
    parse=parse_score_pair,
    max_tokens=1024,
    response_slot="answer_2",
)

BENCHMARK = Benchmark(
    name="llava_w",
    version=VERSION,
    headline="relative_score",
    hub_id="lmms-lab/llava-bench-in-the-wild",
    hub_config=None,
    hub_splits=("train",),
    description="LLaVA-Bench in-the-wild, judged relative score (conv/detail/complex)",
    generation=GenerationSettings(max_new_tokens=512, short_answer=False),
    record_from_row=record_from_row,
    score=score,
    aggregate=aggregate,
    reference_keys=("question", "category", "caption", "gpt_answer"),
    judge=JUDGE,
    read_official=read_official,
    details=(DetailGroup("LLaVA-W categories", tuple(f"{c}/relative_score" for c in CATEGORIES)),),
    # lmms-eval's scoring of its task calls GPT: its engine only generates, mmbench judges
    lmms=LmmsEvalTasks(tasks=(("llava_in_the_wild", "llava-in-the-wild/llava-in-the-wild.yaml", None),),
                       scores_offline=False, metrics=("relative_score",)),
)
