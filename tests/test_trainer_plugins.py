"""Third-party trainers plug in through the `mmbench.trainers` entry-point group."""

import importlib.metadata
import subprocess
import sys
import textwrap

from mmbench.trainers.registry import available_trainers, get_trainer, installed_trainer_names


class IPOTrainer:
    """What a lab's plug-in provides: the three-method protocol, no mmbench base class."""

    name = "ipo"
    description = "IPO, from a plug-in"

    def setup(self, config):
        self.config = config

    def train(self):
        return {"loss": 0.0}

    def save(self):
        return self.config.out


def test_entry_point_trainers_are_found_and_cannot_shadow_builtins(monkeypatch):
    plugin = importlib.metadata.EntryPoint(name="ipo", value="test_trainer_plugins:IPOTrainer",
                                           group="mmbench.trainers")
    shadow = importlib.metadata.EntryPoint(name="dpo", value="test_trainer_plugins:IPOTrainer",
                                           group="mmbench.trainers")
    real = importlib.metadata.entry_points

    def fake(**kwargs):
        if kwargs.get("group") == "mmbench.trainers":
            return [plugin, shadow]
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    assert installed_trainer_names() == ["dpo", "bdhs", "mixed-dpo", "ipo"]
    assert set(available_trainers()) == {"dpo", "bdhs", "mixed-dpo", "ipo"}
    assert isinstance(get_trainer("ipo"), IPOTrainer)
    assert not isinstance(get_trainer("dpo"), IPOTrainer)


def test_train_help_lists_installed_trainers(tmp_path):
    # A real installed distribution with an entry point, visible to a fresh interpreter.
    dist = tmp_path / "site" / "mmbench_ipo-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmbench-ipo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mmbench.trainers]\nipo = mmbench_ipo:Trainer\n")
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(tmp_path / 'site')!r})
        sys.argv = ["mmbench", "train", "--help"]
        from mmbench.cli import main; main()
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "ipo" in result.stdout and "mixed-dpo" in result.stdout
