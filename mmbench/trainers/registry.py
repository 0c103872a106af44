"""Trainers are plug-ins behind one small protocol (set up, train, save).

The built-ins (dpo, bdhs, mixed-dpo) are one `StepTrainer` each, differing only in their step
function; third-party packages add trainers through the entry-point group `mmbench.trainers`,
whose objects are zero-argument factories returning a `Trainer`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from mmbench.errors import MmbenchError

if TYPE_CHECKING:  # the config imports torch; `mmbench --help` must stay fast
    from mmbench.trainers.config import TrainConfig

ENTRY_POINT_GROUP = "mmbench.trainers"


class Trainer(Protocol):
    name: str
    description: str

    def setup(self, config: TrainConfig) -> None: ...

    def train(self) -> dict: ...

    def save(self) -> Path: ...


@dataclass
class StepTrainer:
    """A trainer made of the shared loop plus one step function (no inheritance involved)."""

    name: str
    description: str
    step: Callable
    needs_rejected: Callable[[TrainConfig], bool]
    needs_bdhs: Callable[[TrainConfig], bool] = lambda c: False
    needs_annotator: Callable[[TrainConfig], bool] = lambda c: False
    _state: dict = field(default_factory=dict)

    def setup(self, config: TrainConfig) -> None:
        from mmbench.trainers.setup import prepare_run

        self._state = prepare_run(self, config)

    def train(self) -> dict:
        import json

        from mmbench.trainers.loop import run_training

        if not self._state:
            raise RuntimeError("setup() first")
        if "reuse" in self._state:  # an identical checkpoint exists (same base, data, options)
            metrics = self._state["reuse"] / "metrics.json"
            return json.loads(metrics.read_text()) if metrics.exists() else {}
        self._state["result"] = run_training(**self._state["loop"])
        return self._state["result"].last

    @property
    def reused(self) -> bool:
        return "reuse" in self._state

    def save(self) -> Path:
        from mmbench.trainers.loop import save_final

        if "reuse" in self._state:
            return self._state["reuse"]
        return save_final(self._state["result"])


def _builtins() -> dict[str, Callable[[], Trainer]]:
    from mmbench.trainers import steps

    text = BUILTIN_DESCRIPTIONS
    return {
        "dpo": lambda: StepTrainer("dpo", text["dpo"], steps.dpo_step, needs_rejected=lambda c: True),
        "bdhs": lambda: StepTrainer("bdhs", text["bdhs"], steps.gamma_step, needs_rejected=lambda c: c.gamma > 0,
                                    needs_bdhs=lambda c: c.gamma < 1),
        "mixed-dpo": lambda: StepTrainer("mixed-dpo", text["mixed-dpo"], steps.mixed_step,
                                         needs_rejected=lambda c: c.p > 0, needs_annotator=lambda c: c.p < 1),
    }


BUILTIN_DESCRIPTIONS = {
    "dpo": "plain DPO on (chosen, rejected) preference pairs",
    "bdhs": "Eq. 5: γ·DPO(chosen, external) + (1−γ)·DPO(chosen, BDHS negative)",
    "mixed-dpo": "Eq. 4: offline pair with probability p, else an online pair ranked by the annotator",
}


def installed_trainer_names() -> list[str]:
    """Names only (no plug-in is imported): for `mmbench train --help`."""
    from importlib.metadata import entry_points

    plugins = [e.name for e in entry_points(group=ENTRY_POINT_GROUP) if e.name not in BUILTIN_DESCRIPTIONS]
    return [*BUILTIN_DESCRIPTIONS, *plugins]


def available_trainers() -> dict[str, Callable[[], Trainer]]:
    """Built-ins plus every installed `mmbench.trainers` entry point (a plug-in may not shadow one)."""
    from importlib.metadata import entry_points

    found = _builtins()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in found:
            found[entry.name] = entry.load()
    return found


def get_trainer(name: str) -> Trainer:
    trainers = available_trainers()
    if name not in trainers:
        close = difflib.get_close_matches(name, list(trainers), n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise MmbenchError(f"unknown trainer {name!r}{hint} (installed: {', '.join(trainers)})")
    return trainers[name]()
