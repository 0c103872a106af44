"""`mmbench eval` end to end on a small world with a tiny model built in the test."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmbench.benchmarks import get_benchmark
from mmbench.harness.evaluate import EvalSettings, evaluate_benchmark
from mmbench.harness.model import load_model

from eval_fixtures import small_world, world_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    world = small_world(root)
    return {"world": world, "model": world_model(root / "models", world), "root": root}


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mmbench", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow  # all eight benchmarks end to end through the CLI
def test_eval_all_benchmarks_through_the_cli(setup, tmp_path):
    out = tmp_path / "runs"
    result = cli("eval", str(setup["model"]), "--data", str(setup["world"]), "--limit", "2",
                 "--max-new-tokens", "12", "--out", str(out), "--batch-size", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("pope", "mmhal", "mmhal_v", "llava_w", "textvqa", "gqa", "mmvet", "coco_recall"):
        results = json.loads((out / "tiny-llava" / name / "results.json").read_text())
        assert results["benchmark"] == name and results["n"] == (6 if name == "pope" else 2)
        assert results["metrics"][results["headline"]] is not None
        samples = [json.loads(x) for x in (out / "tiny-llava" / name / "samples.jsonl").read_text().splitlines()]
        assert all({"benchmark", "id", "prompt", "response", "reference"} <= set(s) for s in samples)
        if get_benchmark(name).judged:
            assert results["config"]["judge"]["model"] == "world-scene-judge-v2"
            assert all(s["judge"]["outputs"] for s in samples)
    assert all((out / "tiny-llava" / "mmhal_v" / s).exists() for s in ["samples.jsonl"])
    mmhal_v = json.loads((out / "tiny-llava" / "mmhal_v" / "samples.jsonl").read_text().splitlines()[0])
    assert Path(mmhal_v["image"]).exists()  # the vision judge can find the image again
    assert json.loads((out / "tiny-llava" / "model.json").read_text())["model"] == "tiny-llava"
    assert "coco_recall" in result.stdout and "headline" in result.stdout
    # rerun: everything is finished, nothing is generated again
    again = cli("eval", str(setup["model"]), "--data", str(setup["world"]), "--limit", "2",
                "--max-new-tokens", "12", "--out", str(out), "--benchmarks", "pope")
    assert again.returncode == 0 and "pope" in again.stdout


class Dying:
    """Wraps a model; raises after `chunks` generate calls, like a killed process."""

    def __init__(self, model, chunks):
        self.model, self.name, self.left = model, model.name, chunks
        self.render_prompt = model.render_prompt

    def generate(self, *args, **kwargs):
        if self.left == 0:
            raise KeyboardInterrupt("killed")
        self.left -= 1
        return self.model.generate(*args, **kwargs)


def test_resume_mid_benchmark_gives_identical_files(setup, tmp_path):
    model = load_model(setup["model"])
    bench = get_benchmark("pope")
    settings = EvalSettings(data=str(setup["world"]), limit=4, batch_size=4, chunk=3, max_new_tokens=8)
    evaluate_benchmark(model, bench, tmp_path / "full", settings)
    with pytest.raises(KeyboardInterrupt):
        evaluate_benchmark(Dying(model, 2), bench, tmp_path / "cut", settings)
    partial = (tmp_path / "cut" / "tiny-llava" / "pope" / "samples.jsonl").read_text().splitlines()
    assert len(partial) == 6 and not (tmp_path / "cut" / "tiny-llava" / "pope" / "results.json").exists()
    evaluate_benchmark(model, bench, tmp_path / "cut", settings)
    for name in ("samples.jsonl", "results.json"):
        assert (tmp_path / "cut" / "tiny-llava" / "pope" / name).read_text() == \
            (tmp_path / "full" / "tiny-llava" / "pope" / name).read_text().replace("/full/", "/cut/")


@pytest.mark.slow
def test_two_processes_equal_one(setup, tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    common = [str(setup["model"]), "--data", str(setup["world"]), "--benchmarks", "pope,mmhal",
              "--limit", "3", "--max-new-tokens", "8"]
    one = cli("eval", *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    # accelerate's --cpu flag starts ONE process (several need mpirun); its torchrun-based launcher
    # starts two, and mmbench sets up a gloo group on CPU.
    two = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "-m", "mmbench", "eval",
                          *common, "--out", str(tmp_path / "two")], capture_output=True, text=True)
    assert "sharded over 2 processes" in two.stdout + two.stderr
    assert two.returncode == 0, two.stderr[-3000:]
    for name in ("pope", "mmhal"):
        a = json.loads((tmp_path / "one" / "tiny-llava" / name / "results.json").read_text())
        b = json.loads((tmp_path / "two" / "tiny-llava" / name / "results.json").read_text())
        assert a["metrics"] == b["metrics"] and a["n"] == b["n"]
        assert (tmp_path / "one" / "tiny-llava" / name / "samples.jsonl").read_text() == \
            (tmp_path / "two" / "tiny-llava" / name / "samples.jsonl").read_text()
        assert not list((tmp_path / "two" / "tiny-llava" / name).glob("samples.part*"))


@pytest.mark.slow  # four CLI subprocesses (3-4 s); the quick tier stays under 2 min, CI runs it
def test_clear_errors(setup, tmp_path):
    missing = cli("eval", str(tmp_path / "nope"), "--data", str(setup["world"]))
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    text_only = tmp_path / "llama"
    text_only.mkdir()
    (text_only / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    bad = cli("eval", str(text_only), "--data", str(setup["world"]))
    assert bad.returncode == 2 and "not an image-text-to-text model" in bad.stderr
    # a judged benchmark on non-world data with no key and no judge URL: stop before generating
    data = tmp_path / "mmhal_data"
    shutil.copytree(setup["world"] / "mmhal", data / "mmhal")
    shutil.copytree(setup["world"] / "images", data / "images")
    nokey = cli("eval", str(setup["model"]), "--data", str(data), "--benchmarks", "mmhal", "--out",
                str(tmp_path / "r"), env={"OPENAI_API_KEY": ""})
    assert nokey.returncode == 2 and "OPENAI_API_KEY" in nokey.stderr
    assert len(nokey.stderr.strip().splitlines()) == 1 and not (tmp_path / "r" / "tiny-llava" / "mmhal").exists()
    unknown = cli("eval", "--benchmarks", "popp")
    assert unknown.returncode == 2 and "did you mean 'pope'" in unknown.stderr
