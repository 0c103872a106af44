"""`mmbench ablate … --dry-run`: the plan plus a cost estimate per phase from a short calibration on
the base model and this machine; nothing under --out (or anywhere else) is written."""

import os
import subprocess
import sys

import pytest
from eval_fixtures import small_grid


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dry-run")
    return {"config": small_grid(root), "root": root}


def ablate(setup, out, *extra, knob="gamma"):
    tmp = setup["root"] / "tmp"  # the calibration's temporary folder must be gone afterwards
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "MMBENCH_VERBOSE": ""}
    return subprocess.run([sys.executable, "-m", "mmbench", "ablate", knob, "--config", str(setup["config"]),
                           "--out", str(out), *extra], capture_output=True, text=True, env=env, check=False)


def tree(folder):
    """Every path under the folder with its size and modification time (None: no folder)."""
    if not folder.exists():
        return None
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
                  for p in folder.rglob("*"))


def estimate_rows(output: str) -> dict[str, list[str]]:
    """phase -> [count, measured per unit, estimate, note] from the printed estimate table."""
    table = output.split("cost estimate")[1].split("measured generation per benchmark")[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 5 and cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow  # a CLI run end to end; CI runs the slow tier too
def test_dry_run_prints_every_phase_and_writes_nothing(setup):
    out = setup["root"] / "grid"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "keep.txt").write_text("a user's file")
    before = tree(out)
    result = ablate(setup, out, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert tree(out) == before and not (out / "cache").exists() and not (out / "checkpoints").exists()
    assert not list((setup["root"] / "tmp").iterdir())
    assert "ablation over gamma" in result.stdout and "to run" in result.stdout  # the plan, as --why prints it
    rows = estimate_rows(result.stdout)
    for phase in ("start-up and plan", "precompute: set-up (data, model, embedder)", "precompute: offline BDHS negatives",
                  "precompute: reference log-probs", "train gamma=0-seed1", "train gamma=1-seed1",
                  "train: set-up (data, model, run start)", "eval base", "eval gamma=0-seed1", "eval gamma=1-seed1",
                  "eval: set-up (model, records)", "total"):
        assert phase in rows, (phase, list(rows))
        assert rows[phase][2] not in ("0", "—", ""), (phase, rows[phase])
    assert rows["train gamma=0-seed1"][0] == "2 steps"
    assert rows["eval base"][0] == "8 answers"  # --limit 2: POPE 2 per split (3 splits) + MMHal 2
    assert "judge not timed" in rows["eval base"][3]
    assert "extrapolation" in result.stdout and "2 optimizer steps" in result.stdout


@pytest.mark.slow
def test_a_finished_grid_estimates_no_training_and_no_precompute(setup):
    out = setup["root"] / "done"
    done = ablate(setup, out)
    assert done.returncode == 0, done.stderr[-3000:]
    before = tree(out)
    result = ablate(setup, out, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert tree(out) == before
    rows = estimate_rows(result.stdout)
    for point in ("gamma=0-seed1", "gamma=1-seed1"):
        assert rows[f"train {point}"][0] == "0 steps" and rows[f"train {point}"][2] == "0"
        assert "checkpoint reused" in rows[f"train {point}"][3]
        assert rows[f"eval {point}"][0] == "0 answers"
    assert "train: set-up (data, model, run start)" not in rows
    assert rows["precompute: offline BDHS negatives"][0] == "0 rows"
    assert rows["precompute: reference log-probs"][0] == "0 rows"
    assert rows["eval base"][0] == "0 answers"


@pytest.mark.slow  # quick tier < 2 min on 2 cores; CI runs it
def test_bad_input_is_one_line_before_any_calibration(setup, tmp_path):
    for knob, extra, words in (("gama", (), "gamma"), ("gamma", ("--values", "0,2"), "gamma")):
        result = ablate(setup, tmp_path / "out", "--dry-run", *extra, knob=knob)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr, result.stderr
        assert "calibrating" not in result.stdout and not (tmp_path / "out").exists()
