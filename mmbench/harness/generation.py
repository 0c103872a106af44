"""The model interface the eval runner and trainers use: one batched generate over small requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from mmbench.benchmarks.base import GenerationSettings


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    image: Any = None  # PIL image, a path to one, or None


class Generator(Protocol):
    name: str  # used for the run folder `<out>/<name>/<benchmark>/`

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings,
                 batch_size: int = 8) -> list[str]:
        """Greedy responses, one per request, identical whatever the batch size."""
        ...
