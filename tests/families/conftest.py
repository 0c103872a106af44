"""Session fixtures for the family matrix: one small world, one tiny checkpoint per family."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
for folder in (HERE, HERE.parent):  # builders.py here, eval_fixtures/trainer_fixtures one up
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session")
def family_world(tmp_path_factory):
    from eval_fixtures import small_world, world_texts
    from trainer_fixtures import TEXTS

    root = tmp_path_factory.mktemp("families")
    world = small_world(root)
    return {"root": root, "world": world, "texts": [*world_texts(world, limit=500), *TEXTS], "ckpts": {}}


@pytest.fixture(scope="session")
def checkpoint(family_world):
    """family -> folder of its tiny checkpoint, built once per session."""
    from builders import build_checkpoint

    def get(family: str) -> Path:
        cache = family_world["ckpts"]
        if family not in cache:
            cache[family] = build_checkpoint(family, family_world["texts"], family_world["root"] / "ckpt" / family)
        return cache[family]

    return get
