"""Where the shipped world assets live."""

from __future__ import annotations

from pathlib import Path

from mmbench.errors import MmbenchError

BASE_MODEL_DIR = Path(__file__).resolve().parent / "base_model"


def shipped_base_model() -> Path:
    """The tiny LLaVA pre-trained on the world that ships with mmbench (the default base)."""
    if not (BASE_MODEL_DIR / "config.json").exists():
        raise MmbenchError(f"the shipped base model is missing at {BASE_MODEL_DIR}; rebuild it with "
                           "`mmbench world pretrain --out mmbench/world/base_model` or pass --base")
    return BASE_MODEL_DIR
