"""A plug-in trainer with options of its own and a knob: `mmbench ablate <its knob>` sweeps it.

The toy package is what a lab would ship: an IPO trainer made by composition (mmbench's
`StepTrainer`, shared loop, `scored_logps` and the one `preference_loss` with its own pair loss),
an options dataclass (its section of the config) and `knobs = ("tau",)`."""

import json
import subprocess
import sys

import pytest
from plugin_site import doc_example, install_plugin

# The worked example of docs/architecture.md, plus two adversarial entries: a plug-in trainer
# and a `mmbench.knobs` entry point that both try to take over a built-in knob.
TOY = doc_example("toy_trainer") + '''

@dataclass
class Greedy:
    gamma: float = 0.5


def shadow():  # declares a knob a built-in trainer owns: it must not take it over
    return StepTrainer("shadow", "claims gamma", ipo_step, needs_rejected=lambda c: True, options_class=Greedy,
                       knobs=("gamma",))


P_KNOB = ("shadow", "gamma")  # an entry point in `mmbench.knobs` naming a built-in knob
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "mmbench-toy",
                   {"mmbench.trainers": {"toy-ipo": "mmbench_toy:make", "shadow": "mmbench_toy:shadow"},
                    "mmbench.knobs": {"p": "mmbench_toy:P_KNOB"}},
                   {"mmbench_toy/__init__.py": TOY}, monkeypatch)


def test_the_knob_registry_lists_a_plugin_trainers_knob(toy):
    from mmbench.trainers.config import TrainConfig
    from mmbench.trainers.registry import get_knob, knob_registry

    assert get_knob("tau") == ("toy-ipo", "tau") and {"gamma", "p", "tau"} <= set(knob_registry().names())
    assert get_knob("gamma") == ("bdhs", "gamma") and get_knob("p") == ("mixed-dpo", "p")  # built-ins stay
    config = TrainConfig.from_dict({"trainer": "toy-ipo", "tau": 0.5, "toy-ipo": {"label": "x"}, "lr": 1e-3})
    assert (config.options.tau, config.options.label) == (0.5, "x")
    assert config.to_dict()["toy-ipo"] == {"tau": 0.5, "label": "x"}
    from mmbench.errors import MmbenchError

    with pytest.raises(MmbenchError, match="unknown training option.*taus"):
        TrainConfig.from_dict({"trainer": "toy-ipo", "taus": 0.5})
    with pytest.raises(MmbenchError, match="tau must be positive"):
        TrainConfig.from_dict({"trainer": "toy-ipo", "tau": 0.0}).validate()


@pytest.mark.slow
def test_ablate_sweeps_the_plugin_knob_through_the_cli(toy, tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text('max_new_tokens = 4\nbatch_size = 4\n\n[train]\nlr = 0.001\n\n[train.toy-ipo]\nlabel = "abc"\n')
    out = tmp_path / "abl"
    result = subprocess.run([sys.executable, "-m", "mmbench", "ablate", "tau", "--values", "0.25,2", "--max-steps", "1",
                             "--limit", "2", "--benchmarks", "pope", "--config", str(config), "--set", "batch_size=2",
                             "--out", str(out)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (out / "leaderboard.csv").read_text().splitlines()
    assert [r.split(",")[:4] for r in rows[1:]] == [["base", "base", "", ""], ["tau=0.25-seed1", "tau", "0.25", "1"],
                                                    ["tau=2-seed1", "tau", "2.0", "1"]]
    for value in (0.25, 2.0):
        checkpoint = out / "checkpoints" / f"tau={value:g}-seed1"
        saved = json.loads((checkpoint / "train_config.json").read_text())
        assert saved["trainer"] == "toy-ipo" and saved["toy-ipo"] == {"tau": value, "label": "abc"}
        assert saved["batch_size"] == 2 and saved["lr"] == 0.001
        logged = json.loads((checkpoint / "log.jsonl").read_text().splitlines()[0])
        assert logged["tau"] == value and logged["label_len"] == 3  # what the running step was given
    key = [json.loads((out / "checkpoints" / f"tau={v}-seed1" / "provenance.json").read_text())["key"]["config"]
           for v in ("0.25", "2")]
    assert key[0]["toy-ipo"]["tau"] == 0.25 and key[1]["toy-ipo"]["tau"] == 2.0
    assert (out / "ablation_tau.png").exists()
