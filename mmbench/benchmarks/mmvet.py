"""MM-Vet — 218 open questions tagged with capabilities (rec, ocr, know, gen, spat, math),
graded 0.0–1.0 by an LLM from few-shot examples.

Data: hub `lmms-lab/MMVet` split `test`, or the official `mm-vet.json` (id -> {imagename,
capability, question, answer}) plus `images/`.  Answers may use `<AND>` (all parts needed) and
`<OR>` (any alternative).  An item's score is the mean of its parsed grader runs; an item with
no parsed run is a failure.  Total and per-capability scores are means × 100.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmbench.benchmarks.base import (Benchmark, DetailGroup, GenerationSettings, JudgeSpec, LmmsEvalTasks,
                                     Record, mean)
from mmbench.benchmarks.loading import first_field, row_image
from mmbench.benchmarks.textnorm import fill_template, parse_unit_score

VERSION = 1
PROMPT_VERSION = 1
CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")

JUDGE_TEMPLATE = """\
Compare the ground truth and the prediction from an AI model, and give a correctness score for \
the prediction. In the ground truth, <AND> means every listed part must be present for a fully \
correct answer, and <OR> means any one of the alternatives is enough. The score is a number \
from 0.0 (completely wrong) to 1.0 (completely correct); give partial credit in steps of 0.1 \
for answers that are partly right. Reply with the score only.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What colour is the bus? | red | The bus is red. | 1.0
What colour is the bus? | red | The bus is blue. | 0.0
Which two fruits are on the plate? | apple <AND> banana | An apple and a pear. | 0.5
Which two fruits are on the plate? | apple <AND> banana | There is a banana next to an apple. | 1.0
What time does the clock show? | 3:30 <OR> half past three | It is half past three. | 1.0
How many birds are on the wire? | 4 | There are three birds. | 0.0
Why is the man holding an umbrella? | it is raining | To keep dry, as it seems to be raining, though it might also be for shade. | 0.8
{question} | {answer} | {prediction} |"""


def record_from_row(row: dict, folder: Path | None) -> Record:
    capability = first_field(row, "capability", default=[])
    if isinstance(capability, str):
        capability = [c.strip() for c in capability.split(",") if c.strip()]
    image = first_field(row, "image", "imagename")
    return Record(
        id=str(first_field(row, "question_id", "id", "_key")),
        prompt=row["question"],
        image=row_image(image, folder),
        reference={"question": row["question"], "answer": str(row["answer"]), "capability": list(capability)},
    )


def build_judge_messages(reference: dict, response: str, template: str) -> list[dict]:
    # Newlines would break the one-row table the grader completes.
    text = fill_template(template, question=reference["question"].replace("\n", " "),
                         answer=reference["answer"], prediction=response.replace("\n", " "))
    return [{"role": "user", "content": text}]


def score(reference: dict, response: str, judge_outputs=None, **_) -> dict:
    runs = [v for v in (parse_unit_score(o) for o in (judge_outputs or [])) if v is not None]
    if not runs:
        return {"failed": True, "capability": reference["capability"]}
    return {"score": mean(runs), "capability": reference["capability"]}


def aggregate(samples: Sequence[dict]) -> dict[str, float]:
    graded = [s for s in samples if not s.get("failed")]
    metrics = {"score": 100 * mean([s["score"] for s in graded])}
    for capability in CAPABILITIES:
        having = [s["score"] for s in graded if capability in s["capability"]]
        if having:
            metrics[f"cap/{capability}"] = 100 * mean(having)
    return metrics


JUDGE = JudgeSpec(
    default_model="gpt-4.1-2025-04-14",
    vision=False,
    prompt_version=PROMPT_VERSION,
    default_template=JUDGE_TEMPLATE,
    build_messages=build_judge_messages,
    parse=parse_unit_score,
    max_tokens=8,
    response_slot="prediction",
)

BENCHMARK = Benchmark(
    name="mmvet",
    version=VERSION,
    headline="score",
    hub_id="lmms-lab/MMVet",
    hub_config=None,
    hub_splits=("test",),
    description="MM-Vet, LLM-graded integrated capabilities",
    generation=GenerationSettings(max_new_tokens=512, short_answer=False),
    record_from_row=record_from_row,
    score=score,
    aggregate=aggregate,
    reference_keys=("question", "answer", "capability"),
    judge=JUDGE,
    details=(DetailGroup("MM-Vet capabilities", tuple(f"cap/{c}" for c in CAPABILITIES)),),
    # lmms-eval's scoring of its task calls GPT: its engine only generates, mmbench judges
    lmms=LmmsEvalTasks(tasks=(("mmvet", "mmvet/mmvet.yaml", None),), scores_offline=False,
                       metrics=("score",)),
)
