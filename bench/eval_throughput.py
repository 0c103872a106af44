"""Generation throughput of the model adapter on POPE-style short answers.

    python bench/eval_throughput.py [--model DIR] [--samples 256] [--batch-sizes 1 8 32] [--threads 2]

Uses the shipped world base model (mmbench/world/base_model) when it exists, otherwise a tiny
random LLaVA of the world model's size.  Images are 64×64 drawings, prompts are POPE's
"Is there a <object> in the image?" plus the single-word instruction, settings are POPE's own.
Prints samples/s per batch size and checks that every batch size gives the same responses.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OBJECTS = ["circle", "square", "triangle", "star", "heart", "cross", "moon", "diamond"]
COLOURS = [(220, 30, 30), (30, 160, 30), (30, 30, 220), (230, 200, 20), (150, 40, 180), (240, 130, 20)]


def requests(n: int, seed: int = 0):
    from PIL import Image, ImageDraw

    from mmbench.benchmarks.base import SINGLE_WORD
    from mmbench.harness.generation import GenerationRequest

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        image = Image.new("RGB", (64, 64), "white")
        draw = ImageDraw.Draw(image)
        for cell in rng.sample(range(4), rng.randint(1, 4)):
            x, y = 32 * (cell % 2) + 4, 32 * (cell // 2) + 4
            draw.ellipse([x, y, x + 24, y + 24], fill=rng.choice(COLOURS))
        out.append(GenerationRequest(f"Is there a {rng.choice(OBJECTS)} in the image?\n{SINGLE_WORD}", image))
    return out


def model_dir(given: str | None, scratch: Path) -> Path:
    if given:
        return Path(given)
    shipped = ROOT / "mmbench" / "world" / "base_model"
    if (shipped / "config.json").exists():
        return shipped
    from mmbench.world.tinyllava import tiny_llava_for_tests

    words = OBJECTS + ["is", "there", "a", "in", "the", "image", "?", "yes", "no", "answer", "question",
                       "using", "single", "word", "or", "phrase", ".", "\n"]
    print("no shipped base model: timing a random tiny LLaVA of the world model's size")
    return tiny_llava_for_tests(scratch, [" ".join(words)], vision_width=128, vision_layers=4, text_width=256,
                                text_layers=4, heads=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped base model)")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    args = parser.parse_args()

    import os

    import torch

    from mmbench.benchmarks.pope import BENCHMARK
    from mmbench.harness.model import load_model

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as scratch:
        lm = load_model(model_dir(args.model, Path(scratch)))
    batch = requests(args.samples)
    lm.generate(batch[:8], BENCHMARK.generation, batch_size=8)  # warm-up
    print(f"model {lm.name} on {lm.device}, {args.samples} samples, max_new_tokens "
          f"{BENCHMARK.generation.max_new_tokens}, {torch.get_num_threads()} threads")
    reference = None
    for size in args.batch_sizes:
        start = time.perf_counter()
        responses = lm.generate(batch, BENCHMARK.generation, batch_size=size)
        wall = time.perf_counter() - start
        same = "" if reference is None or responses == reference else "  (responses DIFFER from the first run)"
        reference = reference or responses
        print(f"batch {size:>3}: {args.samples / wall:8.1f} samples/s  ({wall:.2f} s){same}")


if __name__ == "__main__":
    main()
