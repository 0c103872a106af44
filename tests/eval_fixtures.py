"""A small generated world and a tiny random LLaVA whose vocabulary covers it."""

import json
from pathlib import Path

from mmbench.world.build import SMALL, build_world
from mmbench.world.tinyllava import tiny_llava_for_tests


def small_world(root: Path) -> Path:
    return build_world(root / "world", seed=0, size=SMALL, progress=False)


def world_texts(world: Path, limit: int = 3000) -> list[str]:
    texts = []
    for line in (world / "sft" / "train.jsonl").read_text().splitlines()[:limit]:
        row = json.loads(line)
        texts += [row["prompt"], row["response"]]
    for name in ("pope", "gqa", "textvqa", "mmhal", "llava_w", "mmvet", "coco_recall"):
        for line in (world / name / "data.jsonl").read_text().splitlines():
            row = json.loads(line)
            texts += [str(v) for v in row.values() if isinstance(v, str)]
    return texts


def world_model(root: Path, world: Path) -> Path:
    return tiny_llava_for_tests(root, world_texts(world), seed=1)
