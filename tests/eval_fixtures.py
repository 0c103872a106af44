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


def small_grid(root: Path, train_extra: str = "") -> Path:
    """A two-point γ grid config (TOML) on a small world and a tiny model, built under root."""
    world = small_world(root)
    model = world_model(root / "models", world)
    config = root / "grid.toml"
    config.write_text(f"""
values = [0.0, 1.0]
seeds = [1]
base = "{model}"
data = "{world / 'prefs' / 'train.jsonl'}"
eval_data = "{world}"
benchmarks = "pope,mmhal"
max_steps = 2
limit = 2
max_new_tokens = 6
batch_size = 8

[train]
batch_size = 2
lr = 0.001
{train_extra}""")
    return config
