"""Trainers are plug-ins behind one small protocol (set up, train, save).

The built-ins (dpo, bdhs, mixed-dpo; mmbench/trainers/builtin.py) are one `StepTrainer` each,
differing only in their step function and options; third-party packages add trainers through the entry-point group
`mmbench.trainers`, whose objects are zero-argument factories returning a `Trainer`.

A trainer may declare its own options (`options_class`, a dataclass: its section of the config)
and which of them can be ablated (`knobs`); `mmbench ablate <knob>` finds the trainer through the
knob registry, built from those declarations (plus any `mmbench.knobs` entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple, Protocol

from mmbench.errors import MmbenchError
from mmbench.registry import Registry

if TYPE_CHECKING:  # the config imports torch; `mmbench --help` must stay fast
    from mmbench.trainers.config import TrainConfig

ENTRY_POINT_GROUP = "mmbench.trainers"


class Trainer(Protocol):
    name: str
    description: str
    # Optional: `options_class` (a dataclass; none: no options) and `knobs` (names of its fields
    # that `mmbench ablate` may sweep).

    def setup(self, config: TrainConfig) -> None: ...

    def train(self) -> dict: ...

    def save(self) -> Path: ...


# Built-ins by "module:attr" (nothing imported until used); plug-ins may not shadow them.
TRAINERS: Registry[Trainer] = Registry(
    "trainer", group=ENTRY_POINT_GROUP, factory=True,
    builtins={"dpo": "mmbench.trainers.builtin:dpo", "bdhs": "mmbench.trainers.builtin:bdhs",
              "mixed-dpo": "mmbench.trainers.builtin:mixed_dpo"})


def installed_trainer_names() -> list[str]:
    """Names only (no plug-in is imported): for `mmbench train --help`."""
    return TRAINERS.names()


def available_trainers() -> dict[str, Callable[[], Trainer]]:
    """Name -> factory of every installed trainer, built-ins first."""
    return {name: (lambda name=name: TRAINERS.get(name)) for name in TRAINERS.names()}


def get_trainer(name: str) -> Trainer:
    """A fresh trainer (one per run)."""
    return TRAINERS.get(name)


class Knob(NamedTuple):
    """An ablatable option: the trainer that owns it and the option's name in its section."""

    trainer: str
    option: str


def _declared_knobs(names) -> dict[str, Knob]:
    found: dict[str, Knob] = {}
    for name in names:
        try:
            trainer = TRAINERS.get(name)
        except MmbenchError:  # a broken plug-in adds no knob; `mmbench train <it>` reports why
            continue
        for option in getattr(trainer, "knobs", ()) or ():
            found.setdefault(option, Knob(name, option))
    return found


_KNOBS: Registry | None = None


def knob_registry() -> Registry:
    """Knob name -> `Knob`, from the trainers' declarations (built on first use: it instantiates
    the trainers).  The built-in trainers' knobs are the registry's built-ins, so neither a
    plug-in trainer nor a `mmbench.knobs` entry point can redefine `gamma` or `p`."""
    global _KNOBS
    if _KNOBS is None:
        builtin = TRAINERS.builtin_names()
        _KNOBS = Registry("knob", group="mmbench.knobs", builtins=_declared_knobs(builtin),
                          extra=lambda: _declared_knobs([n for n in TRAINERS.names() if n not in builtin]))
    return _KNOBS


def get_knob(name: str) -> Knob:
    value = knob_registry().get(name)
    return value if isinstance(value, Knob) else Knob(*value)  # an entry point may give a (trainer, option) pair
