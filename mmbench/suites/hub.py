"""The `hub` suite: the published benchmarks from their hub ids (or hub snapshots already in the
Hugging Face cache), GPT judges and a GPT annotator, COCO's vocabulary.  It has no default base
and no default preference data: a real study names its own."""

from __future__ import annotations

from pathlib import Path

from mmbench.errors import MmbenchError


class HubSuite:
    """published benchmarks from their hub ids, GPT judges and annotator; no default base"""

    name = "hub"

    def base_model(self) -> str:
        raise MmbenchError("the hub suite has no default base model; pass a checkpoint folder or hub id")

    def benchmark_data(self, benchmark) -> str | None:
        return "hub"

    def judge(self, benchmark):
        return None  # the benchmark's default GPT judge, with the CLI's --judge-* options

    def preference_data(self) -> str:
        raise MmbenchError("the hub suite has no default preference data; pass --data (a hub id, snapshot "
                           "folder or file: RLAIF-V, RLHF-V, POVID, VLFeedback, TRL or mmbench JSONL)")

    def prompt_data(self) -> str | None:
        return None

    def annotator(self):
        return None

    def vocabulary(self):
        return None

    def claim(self, path: Path):
        return None
