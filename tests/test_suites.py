"""Suites: the world is one pluggable suite among others (mmbench/suites).

Layers: a toy suite from a throw-away package registered by entry point, driving
`mmbench eval` with its own data, judge and vocabulary; a user's TOML suite with a per-benchmark
judge on a local OpenAI-compatible server; detection of the world from checkpoints and data."""

import json
import subprocess
import sys

import pytest

from fake_openai_server import FakeOpenAIServer
from mmbench.errors import MmbenchError
from mmbench.suites import SUITES, claimed_suite, get_suite
from plugin_site import doc_example, install_plugin

def test_world_claims_its_data_base_and_checkpoints(tmp_path):
    from eval_fixtures import small_world

    world = small_world(tmp_path)
    suite = claimed_suite(world / "pope" / "data.jsonl")
    assert suite.name == "world" and suite.root == world
    assert claimed_suite(get_suite("world").base_model()).name == "world"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "train_config.json").write_text(json.dumps({"data": str(world / "prefs" / "train.jsonl")}))
    assert claimed_suite(ckpt).name == "world"
    (ckpt / "train_config.json").write_text(json.dumps({"data": str(tmp_path / "elsewhere.jsonl")}))
    assert claimed_suite(ckpt) is None and claimed_suite(tmp_path) is None


def test_unknown_suite_says_did_you_mean():
    with pytest.raises(MmbenchError, match=r"unknown suite 'wrold' — did you mean 'world'\?"):
        get_suite("wrold")


TOY = doc_example("toy_suite")  # the worked example of docs/architecture.md


@pytest.fixture(scope="module")
def toy_world(tmp_path_factory):
    from eval_fixtures import small_world

    return small_world(tmp_path_factory.mktemp("toy_suite"))


@pytest.mark.slow  # a CLI run end to end; CI runs the slow tier too
def test_a_plugin_suite_drives_eval_with_its_own_data_and_judge(toy_world, tmp_path, monkeypatch):
    import shutil

    site = install_plugin(tmp_path / "site", "mmbench-toy-suite", {"mmbench.suites": {"toy": "toy_suite:ToySuite"}},
                          {"toy_suite/__init__.py": TOY}, monkeypatch)
    data = site / "toy_suite" / "data"
    # The lab's own folder: the world's files without world.json, so no world claims it.
    shutil.copytree(toy_world, data, ignore=shutil.ignore_patterns("world.json", "sft", "scenes"))
    listed = subprocess.run([sys.executable, "-m", "mmbench", "suites"], capture_output=True, text=True, cwd=tmp_path)
    assert "toy: a lab's suite" in listed.stdout and "world (default)" in listed.stdout
    run = subprocess.run([sys.executable, "-m", "mmbench", "eval", "--suite", "toy", "--benchmarks", "pope,mmhal",
                          "--limit", "2", "--max-new-tokens", "8", "--out", str(tmp_path / "runs")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    mmhal = json.loads((tmp_path / "runs" / "base" / "mmhal" / "results.json").read_text())
    assert mmhal["config"]["judge"]["model"] == "toy-judge-v1"
    assert mmhal["metrics"]["score"] == 6.0 and mmhal["metrics"]["hallucination_rate"] == 0.0
    samples = [json.loads(line) for line in (tmp_path / "runs" / "base" / "mmhal" / "samples.jsonl").open()]
    assert {s["judge"]["outputs"][0] for s in samples} == {"Rating: 6"}
    model = json.loads((tmp_path / "runs" / "base" / "model.json").read_text())
    assert model["data"] == str(data)  # the records came from the suite's folder
    # Detection: data inside the plug-in's folder selects the plug-in suite with no --suite.
    assert claimed_suite(data / "pope").name == "toy"
    bad = subprocess.run([sys.executable, "-m", "mmbench", "eval", "--suite", "tyo", "--benchmarks", "pope"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'toy'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a CLI run end to end; CI runs the slow tier too
def test_a_suite_file_gives_per_benchmark_data_and_judges(toy_world, tmp_path, monkeypatch):
    from mmbench.benchmarks import get_benchmark
    from mmbench.harness.eval_api import EvalRequest, run_eval

    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_JUDGE_KEY", "sk-test")
    (tmp_path / "lab").mkdir()
    with FakeOpenAIServer() as server:
        suite_file = tmp_path / "lab" / "lab.toml"
        suite_file.write_text(f'''
name = "lab"
base = "{get_suite("world").base_model()}"
vocabulary = "world"
[data]
"*" = "{toy_world}"
[judge]
base_url = "{server.url}"
api_key_env = "LAB_JUDGE_KEY"
[judges.mmhal]
model = "lab-judge-7b"
''')
        suite = get_suite(str(suite_file))
        assert suite.name == "lab" and suite.vocabulary().name == "world"
        assert suite.judge(get_benchmark("mmhal")).model == "lab-judge-7b"
        assert suite.judge(get_benchmark("mmvet")).model is None  # [judge] only: the benchmark's default model
        results = run_eval(EvalRequest(benchmarks=[get_benchmark("mmhal"), get_benchmark("pope")], suite=str(suite_file),
                                       out=tmp_path / "runs", limit=2, max_new_tokens=8, show_progress=False))
        models = {r.body.get("model") for r in server.received}
    assert models == {"lab-judge-7b"} and results["mmhal"]["config"]["judge"]["model"] == "lab-judge-7b"
    assert results["pope"]["n"] == 6  # two per split, from the file's folder


def test_suite_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "x"\n[dataa]\npope = "y"\n')
    with pytest.raises(MmbenchError, match=r"unknown suite key\(s\) dataa"):
        get_suite(str(bad))
    bad.write_text('[data]\npoop = "y"\n')
    with pytest.raises(MmbenchError, match="did you mean 'pope'"):
        get_suite(str(bad))
    bad.write_text('[judges.mmhal]\nmodle = "y"\n')
    with pytest.raises(MmbenchError, match=r"\[judges.mmhal\] unknown option\(s\) modle"):
        get_suite(str(bad))
    assert set(SUITES.builtin_names()) == {"world", "hub"}
