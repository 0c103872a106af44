"""The judge interface: what the eval runner, `mmbench score --rejudge`, the embedded world's
scene judge and the Mixed-DPO annotator agree on.

A judged benchmark contributes two pure functions (build messages, parse verdict; see
`JudgeSpec`); a `Judge` turns requests into raw verdict texts.  The OpenAI-compatible client
and the scene-grounded world judge both implement `Judge`; `PairwiseAnnotator` is the
"which of two responses is better" interface used to rank online pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call.  `context` is for judges that do not read text (the world's scene judge):
    it holds the benchmark id, the sample id, the reference and the response, and is never sent
    over the network nor hashed into cache keys beyond what `messages` already carry."""

    benchmark: str
    sample_id: str
    messages: list[dict]  # OpenAI chat messages with plain-text content
    image: bytes | None = None  # vision judges only: attached to the last user message
    image_mime: str = "image/png"
    temperature: float = 0.0
    max_tokens: int = 512
    run: int = 0  # index of a repeated judge run (MM-Vet's K runs); part of the cache key
    # the benchmark's JudgeSpec.prompt_version, or "<version>+custom-<hash>" for a --judge-prompt file
    prompt_version: int | str = 1
    context: dict = field(default_factory=dict, compare=False, hash=False)


class Judge(Protocol):
    """Anything that returns one raw verdict per request."""

    model: str

    def judge(self, requests: Sequence[JudgeRequest], parse: Callable[[str], Any]) -> list[str | None]:
        """Raw verdict text per request, in order.  `parse` returns None for an unusable verdict;
        a judge may ask again (at rising temperature) until it parses, and returns the last text
        it got (or None when no answer could be had at all)."""
        ...


@dataclass(frozen=True)
class PairwiseItem:
    prompt: str
    response_a: str
    response_b: str
    image: bytes | None = None
    context: dict = field(default_factory=dict, compare=False, hash=False)


class PairwiseAnnotator(Protocol):
    """Ranks two responses to the same prompt+image: less hallucination, more helpful wins."""

    model: str

    def prefer(self, items: Sequence[PairwiseItem]) -> list[int | None]:
        """0 if response A is better, 1 if B is, None for a tie or an unusable verdict."""
        ...
