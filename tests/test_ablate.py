"""`mmbench ablate` end to end on a small world: the grid, kills at every stage, parallel workers."""

import os
import signal
import subprocess
import sys
import time

import pytest

# Whole grids through the CLI: the slow tier (CI runs it; `-m 'not slow'` skips it).
pytestmark = pytest.mark.slow

from eval_fixtures import small_grid


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    return {"config": small_grid(root, "save_every = 1\n"), "root": root}


def ablate(setup, out, *extra, wait=True):
    cmd = [sys.executable, "-m", "mmbench", "ablate", "gamma", "--config", str(setup["config"]), "--out", str(out),
           *extra]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True)


def kill_when(process, path_glob, folder, timeout=180):
    """SIGKILL the process as soon as a file matching the glob appears under folder."""
    start = time.time()
    while time.time() - start < timeout:
        if list(folder.glob(path_glob)):
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    process.kill()
    return False


@pytest.fixture(scope="module")
def uninterrupted(setup):
    out = setup["root"] / "reference"
    result = ablate(setup, out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_grid_runs_end_to_end(uninterrupted):
    out, result = uninterrupted
    csv = (out / "leaderboard.csv").read_text().splitlines()
    assert csv[0] == "model,knob,value,seed,pope,mmhal,mmhal_v,llava_w,textvqa,gqa,mmvet,coco_recall"
    assert [line.split(",")[0] for line in csv[1:]] == ["base", "gamma=0-seed1", "gamma=1-seed1"]
    assert (out / "ablation_gamma.png").stat().st_size > 1000
    assert (out / "ablation.json").exists() and list((out / "cache").glob("bdhs-*.jsonl"))
    assert "to run" in result.stdout  # the plan was printed first
    assert "ablation_gamma.png" in result.stdout


def test_kill_at_every_stage_then_rerun_gives_the_same_leaderboard(setup, uninterrupted):
    reference, _ = uninterrupted
    out = setup["root"] / "killed"
    stages = ["runs/base/pope/samples.jsonl",  # precompute: base evaluation
              "checkpoints/*.partial/step.json",  # training
              "runs/gamma=0-seed1/pope/samples.jsonl"]  # evaluation of a point
    for stage in stages:
        process = ablate(setup, out, wait=False)
        assert kill_when(process, stage, out), f"run ended before reaching {stage}"
    final = ablate(setup, out)
    assert final.returncode == 0, final.stderr[-3000:]
    for name in ("leaderboard.csv", "leaderboard.md"):
        assert (out / name).read_text() == (reference / name).read_text()


def test_two_point_workers_at_once_match_a_sequential_run(setup, uninterrupted):
    reference, _ = uninterrupted
    out = setup["root"] / "parallel"
    workers = [ablate(setup, out, "--point", str(k), wait=False) for k in (0, 1)]
    assert [w.wait(timeout=600) for w in workers] == [0, 0]
    report = subprocess.run([sys.executable, "-m", "mmbench", "report", str(out / "runs"), "--out", str(out)],
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (out / "leaderboard.csv").read_text() == (reference / "leaderboard.csv").read_text()
    assert (out / "leaderboard.md").read_text() == (reference / "leaderboard.md").read_text()
