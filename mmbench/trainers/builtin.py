"""The built-in trainers, and `StepTrainer`: a trainer made of the shared loop plus one step
function, which plug-ins may use too (by composition; tests/test_plugin_knob.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from mmbench.trainers.config import TrainConfig


@dataclass
class StepTrainer:
    """A trainer made of the shared loop plus one step function (no inheritance involved)."""

    name: str
    description: str
    step: Callable
    needs_rejected: Callable[[TrainConfig], bool]
    needs_bdhs: Callable[[TrainConfig], bool] = lambda c: False
    needs_annotator: Callable[[TrainConfig], bool] = lambda c: False
    needs_prompts: Callable[[TrainConfig], bool] = lambda c: False  # online pairs from the prompt source
    # What the step samples from the policy as it trains ("online pairs"), if anything: those
    # completions' reference log-probs cannot be precomputed, so the reference model is live.
    samples_online: Callable[[TrainConfig], str | None] = lambda c: None
    options_class: type | None = None  # (a class from trainers/options.py; imported lazily, it needs torch)
    knobs: tuple[str, ...] = ()
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


def dpo() -> StepTrainer:
    from mmbench.trainers import steps

    return StepTrainer("dpo", BUILTIN_DESCRIPTIONS["dpo"], steps.dpo_step, needs_rejected=lambda c: True)


def bdhs() -> StepTrainer:
    from mmbench.trainers import steps
    from mmbench.trainers.options import BDHSOptions

    return StepTrainer("bdhs", BUILTIN_DESCRIPTIONS["bdhs"], steps.gamma_step, options_class=BDHSOptions,
                       knobs=("gamma",), needs_rejected=lambda c: c.options.gamma > 0,
                       needs_bdhs=lambda c: c.options.gamma < 1,
                       samples_online=lambda c: "online BDHS negatives" if c.options.gamma < 1
                       and c.options.online_bdhs else None)


def mixed_dpo() -> StepTrainer:
    from mmbench.trainers import steps
    from mmbench.trainers.options import MixedDPOOptions

    online = lambda c: c.options.p < 1
    return StepTrainer("mixed-dpo", BUILTIN_DESCRIPTIONS["mixed-dpo"], steps.mixed_step,
                       options_class=MixedDPOOptions, knobs=("p",), needs_rejected=lambda c: c.options.p > 0,
                       needs_annotator=online, needs_prompts=online,
                       samples_online=lambda c: "online pairs" if online(c) else None)


BUILTIN_DESCRIPTIONS = {
    "dpo": "plain DPO on (chosen, rejected) preference pairs",
    "bdhs": "Eq. 5: γ·DPO(chosen, external) + (1−γ)·DPO(chosen, BDHS negative)",
    "mixed-dpo": "Eq. 4: offline pair with probability p, else an online pair ranked by the annotator",
}
