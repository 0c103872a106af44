"""The embedded world as a suite (mmbench/suites): the shipped base, the world's benchmarks,
its scene judge and pairwise annotator, and its object vocabulary.

It is registered by name in `mmbench.suites.SUITES` like any plug-in; nothing outside
mmbench/world imports this module.  A suite object is bound to one built world: the default one
(built on first use) or the world folder a given data path or checkpoint belongs to."""

from __future__ import annotations

from pathlib import Path



def world_root_of(path: Path) -> Path | None:
    """The world folder a path is or lies in (it holds world.json), if any."""
    path = Path(path).expanduser()
    for folder in [path, *path.parents]:
        if (folder / "world.json").is_file():
            return folder
    return None


class WorldSuite:
    """the embedded offline world: shipped base, world benchmarks, scene judge and annotator"""

    name = "world"
    # `ablate` on the shipped base: the tiny model moves at learning rates a 7B LoRA run would
    # never use (docs/base_model.md); options the user sets win.
    train_defaults = {"lr": 2e-5, "batch_size": 16, "beta": 0.1}

    def __init__(self, root: str | Path | None = None):
        self._root = Path(root) if root is not None else None

    @property
    def root(self) -> Path:
        """The built world (built on first use, under a lock, when no folder was given)."""
        if self._root is None:
            from mmbench.world.build import ensure_world

            self._root = ensure_world()
        return self._root

    def base_model(self) -> str:
        from mmbench.world.paths import shipped_base_model

        return str(shipped_base_model())

    def benchmark_data(self, benchmark) -> str | None:
        return str(self.root)

    def judge(self, benchmark):
        from mmbench.world.scene_judge import SceneJudge

        return SceneJudge(self.root)

    def preference_data(self) -> str:
        return str(self.root / "prefs" / "train.jsonl")

    def prompt_data(self) -> str | None:
        # None: online pairs take the preference rows' own prompts, as the README's p grid was
        # measured; the world's prompt-only set is `--prompts <world>/prefs/prompts.jsonl`.
        return None

    def annotator(self):
        from mmbench.world.scene_judge import ScenePairwiseAnnotator

        return ScenePairwiseAnnotator(self.root)

    def vocabulary(self):
        from mmbench.world.vocabulary import VOCABULARY

        return VOCABULARY

    def claim(self, path: Path) -> "WorldSuite | None":
        """World data (bound to its folder), the shipped base, or a checkpoint trained from the
        base on world data (its train_config.json names world data, or no data at all)."""
        from mmbench.world.paths import BASE_MODEL_DIR

        path = Path(path).expanduser()
        root = world_root_of(path)
        if root is not None:
            return WorldSuite(root)
        if path.is_dir() and path.resolve() == BASE_MODEL_DIR.resolve():
            return WorldSuite()
        config = path / "train_config.json" if path.is_dir() else None
        if config is not None and config.exists():
            from mmbench.errors import read_json_object

            data = read_json_object(config).get("data")
            if data is None:
                return WorldSuite()
            # The default world's benchmarks, as for the base (its training data's world may be a
            # small test world; evaluation is on the held-out benchmarks all checkpoints share).
            return WorldSuite() if Path(data).exists() and world_root_of(Path(data)) else None
        if path.is_dir() and (path / "world_model.json").exists():
            return WorldSuite()
        return None
