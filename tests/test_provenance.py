"""Reuse is keyed by provenance: every rerun through the CLI either reuses work that the very same
checkpoint, data and settings produced, recomputes exactly what a fresh run would, or stops with
one line and exit 2 without touching a file."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval_fixtures import small_world, world_texts
from mmbench.world.tinyllava import tiny_llava_for_tests


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("prov")
    world = small_world(root)
    texts = world_texts(world)
    # Two different checkpoints that share a folder name, as `checkpoint-1000`s do.
    m1 = tiny_llava_for_tests(root / "m1", texts, seed=1, name="ckpt")
    m2 = tiny_llava_for_tests(root / "m2", texts, seed=2, name="ckpt")
    return {"world": world, "m1": m1, "m2": m2, "root": root}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mmbench", *map(str, args)], capture_output=True, text=True)


def tree(folder: Path) -> dict[str, str]:
    """Hash of every file under folder (the exact state on disk)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def refused(result, *words):
    """Exit 2, one stderr line, no traceback, naming the difference."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and "Loading weights" not in line]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def evaluate(setup, model, out, *extra, benchmarks="pope"):
    return cli("eval", model, "--data", setup["world"], "--benchmarks", benchmarks, "--limit", 2,
               "--max-new-tokens", 6, "--out", out, *extra)


def read(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_other_checkpoint_with_the_same_folder_name_is_refused(setup, tmp_path):
    out = tmp_path / "runs"
    assert evaluate(setup, setup["m1"], out).returncode == 0
    before = tree(out)
    line = refused(evaluate(setup, setup["m2"], out), "another checkpoint", "--overwrite")
    assert "runs/ckpt" in line and tree(out) == before  # nothing touched
    # --name keeps both; --overwrite replaces m1's answers with exactly what a fresh m2 run gives.
    assert evaluate(setup, setup["m2"], out, "--name", "ckpt-m2").returncode == 0
    assert evaluate(setup, setup["m2"], out, "--overwrite").returncode == 0
    fresh = tmp_path / "fresh"
    assert evaluate(setup, setup["m2"], fresh).returncode == 0
    assert (out / "ckpt" / "pope" / "samples.jsonl").read_text() == (fresh / "ckpt" / "pope" / "samples.jsonl").read_text()
    assert read(out / "ckpt-m2" / "pope" / "samples.jsonl") == read(fresh / "ckpt" / "pope" / "samples.jsonl")
    meta = json.loads((out / "ckpt" / "model.json").read_text())
    assert {"checkpoint_fingerprint", "data_fingerprints", "mmbench_version"} <= set(meta)


@pytest.mark.slow
def test_report_refuses_one_name_for_two_checkpoints(setup, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert evaluate(setup, setup["m1"], a).returncode == 0
    assert evaluate(setup, setup["m2"], b).returncode == 0
    refused(cli("report", a, b, "--out", tmp_path / "rep", "--replicates", 0), "'ckpt'", "different")
    assert not (tmp_path / "rep").exists()


@pytest.mark.slow
def test_changed_generation_settings_are_refused_then_overwritten(setup, tmp_path):
    out = tmp_path / "runs"
    assert evaluate(setup, setup["m1"], out, "--max-new-tokens", 3).returncode == 0
    before = tree(out)
    refused(evaluate(setup, setup["m1"], out), "other settings", "max_new_tokens")
    assert tree(out) == before
    why = evaluate(setup, setup["m1"], out, "--why")
    assert why.returncode == 0 and "refuse" in why.stdout and tree(out) == before
    assert evaluate(setup, setup["m1"], out, "--overwrite").returncode == 0
    fresh = tmp_path / "fresh"
    assert evaluate(setup, setup["m1"], fresh).returncode == 0
    for name in ("samples.jsonl", "results.json"):
        assert (out / "ckpt" / "pope" / name).read_text() == (fresh / "ckpt" / "pope" / name).read_text()


@pytest.mark.slow
def test_batch_size_reuses_and_a_longer_limit_recomputes_exactly(setup, tmp_path):
    out = tmp_path / "runs"
    assert evaluate(setup, setup["m1"], out, "--batch-size", 1).returncode == 0
    before = tree(out)
    again = evaluate(setup, setup["m1"], out, "--batch-size", 8, "--why")
    assert "reuse" in again.stdout and "results match" in again.stdout
    assert evaluate(setup, setup["m1"], out, "--batch-size", 8).returncode == 0
    assert tree(out) == before  # batch size is not part of any key: nothing regenerated or rewritten
    # limit 2 -> 3: the two stored answers per split are reused, one more generated; files equal a fresh run
    more = cli("eval", setup["m1"], "--data", setup["world"], "--benchmarks", "pope", "--limit", 3,
               "--max-new-tokens", 6, "--out", out, "--batch-size", 1)
    fresh = cli("eval", setup["m1"], "--data", setup["world"], "--benchmarks", "pope", "--limit", 3,
                "--max-new-tokens", 6, "--out", tmp_path / "fresh", "--batch-size", 1)
    assert more.returncode == 0 and fresh.returncode == 0
    for name in ("samples.jsonl", "results.json"):
        assert (out / "ckpt" / "pope" / name).read_text() == (tmp_path / "fresh" / "ckpt" / "pope" / name).read_text()


@pytest.mark.slow
def test_changed_data_is_refused(setup, tmp_path):
    data = tmp_path / "world"
    shutil.copytree(setup["world"], data)
    out = tmp_path / "runs"
    assert evaluate(setup, setup["m1"], out, "--data", data).returncode == 0
    before = tree(out)
    # same record ids, other question text
    pope = data / "pope" / "data.jsonl"
    rows = read(pope)
    rows[0]["question"] = rows[0]["question"].replace("Is there", "Do you see")
    pope.write_text("".join(json.dumps(r) + "\n" for r in rows))
    refused(evaluate(setup, setup["m1"], out, "--data", data), "other inputs")
    assert tree(out) == before


def train(setup, out, *extra, steps=2):
    return cli("train", "bdhs", "--base", setup["m1"], "--data", setup["world"] / "prefs" / "train.jsonl",
               "--out", out, "--max-steps", steps, "--batch-size", 2, "--lr", 1e-3, "--save-every", 1, *extra)


@pytest.mark.slow
def test_training_reuses_identical_and_refuses_other_checkpoints(setup, tmp_path):
    out = tmp_path / "ck"
    first = train(setup, out)
    assert first.returncode == 0, first.stderr[-2000:]
    stored = json.loads((out / "provenance.json").read_text())["key"]
    assert stored["base"] and stored["data"] and stored["config"]["max_steps"] == 2
    before = tree(out)
    again = train(setup, out)
    assert again.returncode == 0 and "up to date" in again.stdout and tree(out) == before
    refused(train(setup, out, steps=3), "trained otherwise", "max_steps 2 → 3")
    refused(train(setup, out, "--gamma", 0.25), "gamma 0.5 → 0.25")
    assert tree(out) == before
    # a smoke run generated BDHS negatives only for the rows its 2 steps × 2 examples use
    (negatives,) = (tmp_path / ".mmbench-cache").glob("bdhs-*.jsonl")
    assert len(negatives.read_text().splitlines()) == 4
    # a changed preference file: same ids, other chosen text -> refused
    prefs = tmp_path / "prefs.jsonl"
    rows = read(setup["world"] / "prefs" / "train.jsonl")
    for row in rows:
        row["image"] = str((setup["world"] / "prefs" / row["image"]).resolve()) \
            if (setup["world"] / "prefs" / row["image"]).exists() else str((setup["world"] / row["image"]).resolve())
    rows[0]["chosen"] = rows[0]["chosen"] + " Extra."
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    changed = cli("train", "bdhs", "--base", setup["m1"], "--data", prefs, "--out", out, "--max-steps", 2,
                  "--batch-size", 2, "--lr", 1e-3, "--save-every", 1)
    refused(changed, "data")
    assert tree(out) == before
    assert train(setup, out, "--overwrite", steps=3).returncode == 0
    assert json.loads((out / "provenance.json").read_text())["key"]["config"]["max_steps"] == 3


@pytest.mark.slow
def test_resume_with_another_config_is_refused(setup, tmp_path):
    out = tmp_path / "ck"
    process = subprocess.Popen([sys.executable, "-m", "mmbench", "train", "bdhs", "--base", str(setup["m1"]),
                                "--data", str(setup["world"] / "prefs" / "train.jsonl"), "--out", str(out),
                                "--max-steps", "40", "--batch-size", "2", "--lr", "1e-3", "--save-every", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out.with_name("ck.partial")
    import time

    start = time.time()
    while time.time() - start < 180 and not (partial / "step.json").exists():
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert (partial / "step.json").exists() and not out.exists()
    before = tree(partial)
    refused(train(setup, out, "--lr", 2e-3, steps=40), "partial run", "lr")
    assert tree(partial) == before
    # the same config resumes; the log has one line per step
    assert train(setup, out, steps=4).returncode == 2  # max_steps is part of the key too
    resumed = train(setup, out, steps=40)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))
