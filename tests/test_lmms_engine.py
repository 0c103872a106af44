"""lmms-eval itself, offline: `--engine lmms-eval` on world POPE with parity to mmbench's engine, an
exported mmbench task run by lmms-eval, and a failed task reported as a failure.  Skipped where
lmms-eval is not installed (the main venv); .ci/run runs it in the lmms venv (.venv-lmms)."""

import json
from dataclasses import replace
import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("MMBENCH_REQUIRE_LMMS") != "1":  # CI sets it in the lmms venv: no silent skip there
    pytest.importorskip("lmms_eval")

from mmbench.benchmarks import get_benchmark
from mmbench.errors import MmbenchError
from mmbench.harness.lmms_import import import_lmms
from mmbench.harness.eval_api import EvalRequest, run_eval

LIMIT = 3  # records per POPE split: 9 generations per engine
PAIRS = (("accuracy", "pope_accuracy"), ("precision", "pope_precision"), ("recall", "pope_recall"),
         ("f1", "pope_f1_score"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The shipped base on the full world when it exists, else the tiny random LLaVA on a small world."""
    from mmbench.world.paths import BASE_MODEL_DIR

    root = tmp_path_factory.mktemp("lmms_engine")
    if (BASE_MODEL_DIR / "config.json").exists():
        from mmbench.world.build import ensure_world

        return root, str(BASE_MODEL_DIR), str(ensure_world())
    from eval_fixtures import small_world, world_model

    world = small_world(root)
    return root, str(world_model(root, world)), str(world)


@pytest.fixture(autouse=True)
def this_python(monkeypatch):
    monkeypatch.setenv("MMBENCH_LMMS_PYTHON", sys.executable)
    monkeypatch.setenv("MMBENCH_LMMS_QUIET", "1")


def _request(model, world, out, engine):
    return EvalRequest(model=model, benchmarks=[get_benchmark("pope")], data=world, out=out, limit=LIMIT,
                       max_new_tokens=16, strict=True, device="cpu", engine=engine, show_progress=False)


def test_engine_on_world_pope_matches_mmbench_engine(setup):
    root, model, world = setup
    native = run_eval(_request(model, world, root / "runs", "mmbench"))["pope"]
    other = run_eval(_request(model, world, root / "runs", "lmms-eval"))["pope"]
    name = Path(model).name
    assert other["config"]["engine"] == "lmms-eval" and other["n"] == native["n"] == 3 * LIMIT
    ours = [json.loads(line) for line in (root / "runs" / name / "pope" / "samples.jsonl").open()]
    theirs = [json.loads(line) for line in (root / "runs" / f"{name}-lmms-eval" / "pope" / "samples.jsonl").open()]
    assert [s["id"] for s in ours] == [s["id"] for s in theirs]
    assert [s["prompt"] for s in ours] == [s["prompt"] for s in theirs]
    assert [s["response"] for s in ours] == [s["response"] for s in theirs]
    assert other["metrics"] == pytest.approx(native["metrics"])
    own = other["config"]["lmms_eval"]["metrics"]
    for task, split in (("mmbench_data_pope_random", "random"), ("mmbench_data_pope_pop", "popular"),
                        ("mmbench_data_pope_adv", "adversarial")):
        for key, theirs_key in PAIRS:  # lmms-eval's own numbers (fractions) = mmbench's strict parse
            assert 100 * own[task][theirs_key] == pytest.approx(native["metrics"][f"{split}/{key}"])
    model_json = json.loads((root / "runs" / f"{name}-lmms-eval" / "model.json").read_text())
    assert model_json["engine"] == "lmms-eval"


def test_exported_task_runs_in_lmms_eval_and_imports_back(setup):
    from mmbench.harness.lmms_export import export_tasks

    root, model, world = setup
    tasks = root / "exported"
    export_tasks(tasks, data=world, benchmarks=["mmhal_v"])
    output = root / "exported-out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "lmms_eval", "--model", "llava_hf", "--model_args",
               f"pretrained={model},device_map=cpu,dtype=float32", "--tasks", "mmhal_v", "--include_path",
               str(tasks), "--batch_size", "1", "--device", "cpu", "--limit", "2", "--gen_kwargs",
               "max_new_tokens=12", "--log_samples", "--output_path", str(output)]
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=900)
    results = import_lmms(output, root / "imported", name="exported")
    assert results["mmhal_v"]["n"] == 2 and results["mmhal_v"]["n_failed"] == 0
    own = results["mmhal_v"]["config"]["lmms_eval"]["metrics"]["mmhal_v"]
    assert own["score"] == pytest.approx(results["mmhal_v"]["metrics"]["score"])


def test_failed_lmms_task_is_reported(setup, monkeypatch):
    root, model, world = setup
    pope = get_benchmark("pope")
    broken = replace(pope, lmms=replace(pope.lmms, tasks=(("pope_random", "pope/no_such_task.yaml", "random"),)))
    request = replace(_request(model, world, root / "broken", "lmms-eval"), benchmarks=[broken])
    with pytest.raises(MmbenchError, match="lmms-eval failed on mmbench_data_pope_random"):
        run_eval(request)
    assert not (root / "broken" / f"{Path(model).name}-lmms-eval" / "pope" / "results.json").exists()
