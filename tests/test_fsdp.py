"""FSDP through an accelerate config file, on CPU (gloo): the shipped docs/accelerate/fsdp2_cpu.yaml
runs 2 processes that really shard (FSDP2, not a silent DDP fallback), give the weights of the
1-process run with the same global batch, resume after a kill, and write a loadable checkpoint."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from mmbench.errors import MmbenchError

from trainer_fixtures import make_model, make_prefs

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "docs" / "accelerate" / "fsdp2_cpu.yaml"
# SGD: Adam's first step is lr·sign(g), so float noise in near-zero gradients flips updates (loop.py).
ARGS = ["--batch-size", "4", "--max-steps", "4", "--save-every", "2", "--lr", "0.01", "--optimizer", "sgd"]
KILL = """import os, sys
from mmbench.trainers import steps
real = steps.dpo_step
def dying(ctx, examples, step):
    if step == int(os.environ["DIE_AT"]):
        raise KeyboardInterrupt("simulated kill")
    return real(ctx, examples, step)
steps.dpo_step = dying
from mmbench.cli import main
main(sys.argv[1:])
"""


# ---- the promotion and the refusals, on a stand-in accelerator (no process group) ----------------

class _Accelerator:
    """What `sharding.setup` reads of an accelerate.Accelerator, as a 2-process CPU (gloo) run has it."""

    def __init__(self, monkeypatch, fsdp=True, version="2", state_dict_type="SHARDED_STATE_DICT"):
        from accelerate.state import PartialState
        from accelerate.utils import DistributedType

        for name, value in (("ACCELERATE_USE_FSDP", str(fsdp).lower()), ("FSDP_VERSION", version),
                            ("FSDP_STATE_DICT_TYPE", state_dict_type), ("FSDP_SYNC_MODULE_STATES", "false")):
            monkeypatch.setenv(name, value)
        monkeypatch.setitem(PartialState._shared_state, "distributed_type", DistributedType.MULTI_CPU)
        self.device, self.is_main_process, self.num_processes = torch.device("cpu"), True, 2
        self.state = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, device=self.device,
                                     mixed_precision="no", backend="gloo")

    @property
    def distributed_type(self):
        return self.state.distributed_type


def _config(**changes):
    return SimpleNamespace(**{"lora": False, "optimizer": "adamw", "save_every": 25, "max_steps": 10, **changes})


def test_an_fsdp_request_on_cpu_becomes_fsdp2_and_refuses_what_cannot_work(monkeypatch, capsys):
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    from mmbench.trainers import sharding

    accelerator = _Accelerator(monkeypatch)
    sharding.setup(accelerator, _config())
    assert accelerator.state.distributed_type == DistributedType.FSDP
    assert PartialState._shared_state["distributed_type"] == DistributedType.FSDP  # survives AcceleratorState()
    assert accelerator.state.fsdp_plugin.fsdp_version == 2
    assert capsys.readouterr().err.strip() == "sharding: FSDP2 over 2 processes (cpu, gloo)"
    plain = _Accelerator(monkeypatch, fsdp=False)  # no FSDP asked for: data parallel, untouched
    sharding.setup(plain, _config())
    assert plain.state.distributed_type == DistributedType.MULTI_CPU and not hasattr(plain.state, "fsdp_plugin")
    for options, config, message in (  # each accelerator made just before its run: it sets the environment
            ({"version": "1"}, _config(), "fsdp_version: 2"),
            ({}, _config(lora=True), "--lora is not supported with FSDP"),
            ({"state_dict_type": "FULL_STATE_DICT"}, _config(optimizer="sgd", save_every=2), "SHARDED_STATE_DICT")):
        with pytest.raises(MmbenchError, match=message):
            sharding.setup(_Accelerator(monkeypatch, **options), config)
    from mmbench.trainers.config import TrainConfig

    for config, message in ((TrainConfig(trainer="bdhs", gamma=0.5, online_bdhs=True), "online BDHS negatives are"),
                            (TrainConfig(trainer="mixed-dpo", p=0.5), "online pairs are sampled")):
        with pytest.raises(MmbenchError, match=message):
            sharding.setup(_Accelerator(monkeypatch), config)
    for config in (TrainConfig(trainer="bdhs", gamma=0.5), TrainConfig(trainer="mixed-dpo", p=1.0)):  # nothing sampled
        sharding.setup(_Accelerator(monkeypatch), config)
    full = _Accelerator(monkeypatch, state_dict_type="FULL_STATE_DICT")  # never resumed: nothing to refuse
    sharding.setup(full, _config(optimizer="sgd", save_every=4, max_steps=4))
    assert full.state.distributed_type == DistributedType.FSDP


# ---- end to end: 2 processes under the shipped config ------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdpworld")
    world = {"prefs": make_prefs(root / "data"), "base": make_model(root / "models"), "root": root}
    world["common"] = ["train", "dpo", "--base", str(world["base"]), "--data", str(world["prefs"]), *ARGS]
    world["env"] = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "mmbench", *world["common"], "--out", str(root / "one")],
                         capture_output=True, text=True, env=world["env"])
    assert one.returncode == 0, one.stderr[-2000:]
    world["one"] = root / "one"
    return world


def _launch(world, out: Path, script: list[str], env: dict | None = None):
    with socket.socket() as free:  # a port of its own: never collides with another launch
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    return subprocess.run([accelerate, "launch", "--config_file", str(CONFIG), "--main_process_port", str(port),
                           *script, *world["common"], "--out", str(out)],
                          capture_output=True, text=True, env={**world["env"], **(env or {})})


def _log(folder: Path) -> list[float]:
    return [round(json.loads(line)["loss"], 5) for line in (folder / "log.jsonl").read_text().splitlines()]


def _assert_same_run(one: Path, two: Path) -> None:
    assert _log(one) == _log(two) and _log(one)[-1] != _log(one)[0]
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert set(a) == set(b)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


@pytest.mark.slow
def test_fsdp2_on_cpu_equals_one_process_and_saves_a_full_checkpoint(world, tmp_path):
    out = tmp_path / "fsdp"
    run = _launch(world, out, ["-m", "mmbench"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sharding: FSDP2 over 2 processes (cpu, gloo)" in run.stderr  # sharded, not a DDP fallback
    _assert_same_run(world["one"], out)
    base, after = load_file(str(world["base"] / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(after) == set(base)  # the full model, in the base's own key names
    changed = {k for k in base if not torch.equal(base[k], after[k])}
    assert changed == {k for k in base if "vision_tower" not in k}  # every trainable one; the tower is frozen
    from mmbench.harness.model import load_model

    loaded = load_model(out, device="cpu")
    state = loaded.model.state_dict()
    lm_head = next(v for k, v in state.items() if k.endswith("lm_head.weight"))
    assert torch.equal(lm_head, after["language_model.lm_head.weight"])


@pytest.mark.slow
def test_fsdp2_run_killed_after_a_saved_state_resumes_to_the_same_weights(world, tmp_path):
    out, script = tmp_path / "resumed", tmp_path / "dying.py"
    script.write_text(KILL)
    killed = _launch(world, out, [str(script)], env={"DIE_AT": "3"})
    assert killed.returncode != 0 and "interrupted; rerun the same command to resume" in killed.stderr, \
        killed.stderr[-4000:]
    partial = tmp_path / "resumed.partial"
    assert json.loads((partial / "step.json").read_text())["step"] == 2 and not out.exists()
    assert (partial / "state" / "pytorch_model_fsdp_0").is_dir()  # each process's shard (SHARDED_STATE_DICT)
    resumed = _launch(world, out, ["-m", "mmbench"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(world["one"], out)


@pytest.mark.slow
@pytest.mark.parametrize("share_prefix", [False, True])
def test_fsdp2_bdhs_with_offline_negatives_equals_one_process(world, tmp_path, share_prefix):
    """BDHS γ = 0.5 under FSDP2: both processes share the offline negatives (one generates them
    under the file lock, from the unsharded base, before any sharding) and train as one process."""
    bdhs = ["train", "bdhs", "--base", str(world["base"]), "--data", str(world["prefs"]), "--gamma", "0.5", *ARGS,
            "--share-prefix" if share_prefix else "--no-share-prefix"]
    one = tmp_path / "one" / "run"  # each run its own parent folder: its own negatives cache
    done = subprocess.run([sys.executable, "-m", "mmbench", *bdhs, "--out", str(one)], capture_output=True, text=True,
                          env=world["env"])
    assert done.returncode == 0, done.stderr[-2000:]
    two = tmp_path / "two" / "run"
    run = _launch({**world, "common": bdhs}, two, ["-m", "mmbench"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sharding: FSDP2 over 2 processes (cpu, gloo)" in run.stderr
    for folder in (one, two):
        (negatives,) = (folder.parent / ".mmbench-cache").glob("bdhs-*.jsonl")
        assert len(negatives.read_text().splitlines()) == 8  # generated here, not borrowed
    assert [json.loads(line)["bdhs/loss"] for line in (one / "log.jsonl").read_text().splitlines()] == pytest.approx(
        [json.loads(line)["bdhs/loss"] for line in (two / "log.jsonl").read_text().splitlines()], abs=1e-5)
    _assert_same_run(one, two)
