"""Suites: where evaluation and training get their defaults.

A suite answers seven questions — the base checkpoint, the data of each benchmark, the judge of
each judged benchmark, the preference data, the prompt-only data for online sampling, the
pairwise annotator, and the object vocabulary CHAIR reads captions with.  The harness, the
trainers and `ablate` ask the selected suite and never know which one it is:

  world   the embedded offline world (mmbench/world/suite.py): shipped base, world data,
          scene judge and annotator, the world's vocabulary.  The default.
  hub     the published benchmarks from their hub ids, GPT judges, no default base.
  FILE    a user's TOML/YAML describing their own folders (mmbench/harness/suite_file.py).

Third-party suites register through the entry-point group `mmbench.suites` (a zero-argument
factory returning an object with the methods of `Suite`).  This package sits at the bottom of
the import graph (registry and errors only): implementations are named by "module:attr" strings
and loaded on first use, so the harness and benchmarks can ask a suite without importing one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from mmbench.registry import Registry

DEFAULT_SUITE = "world"  # what `mmbench eval` / `train` / `ablate` use when nothing is named
FILE_SUITE = "mmbench.harness.suite_file:FolderSuite.from_file"  # `--suite lab.toml`


class Suite(Protocol):
    name: str

    def base_model(self) -> str:
        """The default checkpoint (a folder or hub id); MmbenchError when the suite has none."""

    def benchmark_data(self, benchmark) -> str | None:
        """Where one benchmark's records come from (folder, hub id, "hub"); None: the hub."""

    def judge(self, benchmark):
        """A `Judge` of the suite's own, a `JudgeConfig` for an OpenAI-compatible judge, or None
        (the benchmark's default GPT judge and the CLI's --judge-* options)."""

    def preference_data(self) -> str:
        """The default preference source for training."""

    def prompt_data(self) -> str | None:
        """Prompt-only rows for online sampling (None: the preference data's prompts)."""

    def annotator(self):
        """The pairwise annotator of online pairs: an object with `model` and `prefer(items)`,
        a `JudgeConfig`, or None (a GPT annotator from the CLI's --annotator options)."""

    def vocabulary(self):
        """The CHAIR `Vocabulary` of the suite's objects, or None (COCO)."""

    def claim(self, path: Path) -> "Suite | None":
        """This suite (bound to the path's folder where that matters) when a checkpoint or data
        path belongs to it — its base, its data, or a checkpoint trained from them — so that
        `mmbench eval ckpt/` picks the suite by itself; else None."""


SUITES: Registry = Registry("suite", builtins={
    "world": "mmbench.world.suite:WorldSuite",
    "hub": "mmbench.suites.hub:HubSuite",
}, factory=True)


def get_suite(spec: str | Path | None = None) -> Any:
    """A suite by name, or from a TOML/YAML file describing the user's own folders."""
    if spec is None:
        return SUITES.get(DEFAULT_SUITE)
    if not isinstance(spec, str) or spec not in SUITES:
        path = Path(spec).expanduser()
        if path.suffix.lower() in (".toml", ".yaml", ".yml", ".json") or path.is_file():
            from mmbench.registry import load_spec

            return load_spec(FILE_SUITE)(path)
    return SUITES.get(str(spec))


def claimed_suite(*paths: str | Path | None) -> Any:
    """The suite that claims the first of `paths` any suite claims, or None.  Every installed
    suite is asked, so a plug-in's checkpoints are recognised like the world's."""
    for path in [Path(str(p)).expanduser() for p in paths if p is not None]:
        if not path.exists():
            continue
        for name in SUITES.names():
            claim = getattr(SUITES.get(name), "claim", None)
            suite = claim(path) if claim is not None else None
            if suite is not None:
                return suite
    return None


def suite_vocabulary(name: str):
    """The CHAIR vocabulary a suite provides, for records that name it (`"vocabulary": "world"`)."""
    if name not in SUITES:
        return None
    return SUITES.get(name).vocabulary()


__all__ = ["DEFAULT_SUITE", "SUITES", "Suite", "claimed_suite", "get_suite", "suite_vocabulary"]
