"""Per-trainer options, like torchtune's recipe config sections.

`TrainConfig` holds what every trainer shares (base, data, optimiser, batch, steps, LoRA, ...);
each trainer owns a dataclass of its own options (`trainer.options_class`), written as a section
named after the trainer in config files (`[bdhs] gamma = 0.3`), `train_config.json` and the
training provenance key.  An options class may define `validate()` (ranges; one-line errors).

A nested dataclass field (the BDHS sampler) may be written flat in its section
(`[bdhs] rho_th = 0.9` is `[bdhs.sampler] rho_th = 0.9`), which also keeps the old
`[train.bdhs] rho_th = ...` files valid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

from mmbench.errors import MmbenchError, check_fields
from mmbench.trainers.bdhs import BDHSConfig


@dataclass
class NoOptions:
    """A trainer without options of its own (dpo)."""


@dataclass
class BDHSOptions:
    gamma: float = 0.5  # Eq. 5 weight of DPO on external rejected answers (1 − γ on BDHS negatives)
    online_bdhs: bool = False  # BDHS negatives from the current policy instead of the base
    sampler: BDHSConfig = field(default_factory=BDHSConfig)

    def validate(self) -> None:
        _unit("gamma", self.gamma)
        if not 0.0 <= self.sampler.rho_th <= 1.0:
            raise MmbenchError(f"--rho-th must be within [0, 1], got {self.sampler.rho_th}")
        if not 0.0 <= self.sampler.epsilon_s <= 1.0:
            raise MmbenchError(f"--epsilon-s must be within [0, 1], got {self.sampler.epsilon_s}")


@dataclass
class MixedDPOOptions:
    p: float = 0.5  # share of offline pairs (Eq. 4); the rest are online pairs ranked by the annotator
    online_temperature: float = 1.0
    online_max_tokens: int = 96

    def validate(self) -> None:
        _unit("p", self.p)
        if not (math.isfinite(self.online_temperature) and self.online_temperature > 0):
            raise MmbenchError(f"online_temperature must be positive, got {self.online_temperature}")
        if self.online_max_tokens < 1:
            raise MmbenchError(f"online_max_tokens must be at least 1, got {self.online_max_tokens}")


def _unit(name: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise MmbenchError(f"--{name} must be a finite number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise MmbenchError(f"--{name} must be within [0, 1], got {value}")


# The built-in trainers' options as they were named when every option lived in one flat config
# (`gamma`, `p`, `bdhs` = the sampler, ...): still accepted flat, routed to their trainer's section.
LEGACY = {"gamma": ("bdhs", "gamma"), "online_bdhs": ("bdhs", "online_bdhs"), "bdhs": ("bdhs", "sampler"),
          "p": ("mixed-dpo", "p"), "online_temperature": ("mixed-dpo", "online_temperature"),
          "online_max_tokens": ("mixed-dpo", "online_max_tokens")}


def section_keys(cls) -> set[str]:
    """Keys a section of `cls` takes: its fields and, written flat, those of its nested dataclasses."""
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for f in fields(cls):
        if is_dataclass(hints.get(f.name)):
            names |= {g.name for g in fields(hints[f.name])}
    return names


def unflatten(cls, data: dict) -> dict:
    """Keys of a nested dataclass field given flat move into it (only where unambiguous)."""
    names = {f.name for f in fields(cls)}
    hints = get_type_hints(cls)
    nested = {f.name: hints[f.name] for f in fields(cls) if is_dataclass(hints.get(f.name))}
    out = {k: (dict(v) if k in nested and isinstance(v, dict) else v) for k, v in data.items()}
    for key in [k for k in data if k not in names]:
        owners = [n for n, kind in nested.items() if key in {f.name for f in fields(kind)}]
        if len(owners) == 1:
            target = out.setdefault(owners[0], {})
            if isinstance(target, dict):
                target.setdefault(key, out.pop(key))
    return out


def build_options(cls, data: dict, where: str, prefix: str = ""):
    """An options dataclass from a mapping, types checked (unknown keys named with `prefix`)."""
    data = unflatten(cls, data)
    check_fields(cls, data, where, prefix)
    hints = get_type_hints(cls)
    values = {}
    for key, value in data.items():
        kind = hints.get(key)
        values[key] = build_options(kind, value, where, f"{prefix}{key}.") \
            if is_dataclass(kind) and isinstance(value, dict) else value
    return cls(**values)


def options_dict(options: Any) -> dict:
    return asdict(options) if is_dataclass(options) else {}
