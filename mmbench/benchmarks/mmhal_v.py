"""MMHal-V — MMHal-Bench's data, prompt, rubric, parse and metrics, but judged by a vision model
that also sees the image (the study's main hallucination metric; the paper used GPT-4o).

The only differences from `mmhal` are the judge model and that the image is sent along.
"""

from __future__ import annotations

from dataclasses import replace

from mmbench.benchmarks.base import DetailGroup
from mmbench.benchmarks.mmhal import BENCHMARK as MMHAL, JUDGE as TEXT_JUDGE, VISION_JUDGE_TEMPLATE

VERSION = 1

JUDGE = replace(TEXT_JUDGE, default_model="gpt-4o-2024-08-06", vision=True,
                default_template=VISION_JUDGE_TEMPLATE)

BENCHMARK = replace(
    MMHAL,
    name="mmhal_v",
    version=VERSION,
    description="MMHal-Bench, vision judge that also sees the image",
    judge=JUDGE,
    details=(DetailGroup("MMHal-V question types", MMHAL.details[0].metrics),),
)
