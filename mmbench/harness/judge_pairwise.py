"""An OpenAI-compatible `PairwiseAnnotator`: a vision model decides which of two responses to the
same prompt and image hallucinates less and helps more (used to rank online pairs in Mixed-DPO).

It goes through the same client, retries and cache as the benchmark judges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mmbench.benchmarks.textnorm import fill_template, parse_preference
from mmbench.harness.judge_client import JudgeConfig, OpenAIJudge
from mmbench.harness.judge_runner import image_payload
from mmbench.harness.judging import JudgeRequest, PairwiseItem

DEFAULT_MODEL = "gpt-4o-2024-08-06"
PROMPT_VERSION = 1

PAIRWISE_TEMPLATE = """\
Two answers were written by an AI assistant for the same request about the attached image. \
Decide which answer is better.

First look at the image. An answer hallucinates when it claims something that is not true of \
the image: an object that is not there, a wrong colour, count, position or piece of text, or an \
event the image does not show. Faithfulness to the image matters most: the answer with fewer \
and milder hallucinations wins. When both are equally faithful, the one that serves the request \
better (complete, specific, clear) wins. Length and the order of the answers are not merits.

[Request]
{prompt}

[Answer A]
{response_a}
[End of Answer A]

[Answer B]
{response_b}
[End of Answer B]

Compare the two in at most three sentences. Then write a last line that is exactly one of \
"Better: A", "Better: B" or "Better: tie".
"""

_CHOICE = {"a": 0, "b": 1, "tie": None}


def pairwise_messages(item: PairwiseItem, template: str = PAIRWISE_TEMPLATE) -> list[dict]:
    text = fill_template(template, prompt=item.prompt, response_a=item.response_a, response_b=item.response_b)
    return [{"role": "user", "content": text}]


class OpenAIPairwiseAnnotator:
    """`PairwiseAnnotator` over the OpenAI-compatible judge client (see judging.py)."""

    def __init__(self, config: JudgeConfig, model: str | None = None, max_tokens: int = 400):
        self.judge = OpenAIJudge(config, model or config.model or DEFAULT_MODEL)
        self.model = self.judge.model
        self.max_tokens = max_tokens

    def requests(self, items: Sequence[PairwiseItem]) -> list[JudgeRequest]:
        out = []
        for item in items:
            digest = hashlib.sha256(f"{item.prompt}\x00{item.response_a}\x00{item.response_b}".encode())
            image = image_payload(item.image)
            out.append(JudgeRequest(benchmark="pairwise", sample_id=digest.hexdigest()[:16],
                                    messages=pairwise_messages(item),
                                    image=image[0] if image else None,
                                    image_mime=image[1] if image else "image/png",
                                    temperature=0.0, max_tokens=self.max_tokens,
                                    prompt_version=PROMPT_VERSION, context=dict(item.context)))
        return out

    def prefer(self, items: Sequence[PairwiseItem]) -> list[int | None]:
        """0 when A is better, 1 when B is, None for a tie or a verdict that never parsed."""
        verdicts = self.judge.judge(self.requests(items), parse_preference)
        choices = [parse_preference(v) if v is not None else None for v in verdicts]
        return [_CHOICE[c.lower()] if c is not None else None for c in choices]


__all__ = ["PAIRWISE_TEMPLATE", "OpenAIPairwiseAnnotator", "pairwise_messages", "parse_preference"]
