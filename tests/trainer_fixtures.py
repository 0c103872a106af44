"""A tiny preference world for trainer tests: coloured squares, a tiny random LLaVA."""

import json
from pathlib import Path

from PIL import Image

from mmbench.world.tinyllava import tiny_llava_for_tests

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 40)}
TEXTS = ["what colour is the square ?", "describe the image .", "the square is red . it is small .",
         "the square is blue . it is big .", "the square is green .", "the square is yellow .",
         "yes no there is a square circle", "red blue green yellow"]


def make_prefs(root: Path, n: int = 8) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    names = list(COLOURS)
    rows = []
    for i in range(n):
        colour, wrong = names[i % 4], names[(i + 1) % 4]
        Image.new("RGB", (64, 64), COLOURS[colour]).save(root / "images" / f"{i}.png")
        rows.append({"id": f"ex{i}", "image": f"images/{i}.png", "prompt": "what colour is the square ?",
                     "chosen": f"the square is {colour} . it is small .",
                     "rejected": f"the square is {wrong} . it is small ."})
    path = root / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_model(root: Path, seed: int = 0) -> Path:
    return tiny_llava_for_tests(root, TEXTS, seed=seed)


class ShorterIsBetter:
    """A deterministic stand-in annotator: the shorter response wins, equal length is a tie."""

    model = "shorter-is-better"

    def __init__(self):
        self.calls = 0

    def prefer(self, items):
        self.calls += len(items)
        out = []
        for item in items:
            a, b = len(item.response_a), len(item.response_b)
            out.append(None if a == b else (0 if a < b else 1))
        return out
