"""The paper-direction scorecard on hand-made run folders with known differences."""

import pytest

from mmbench.reports.collect import collect_runs
from mmbench.reports.leaderboard import write_report
from mmbench.reports.scorecard import PAPER_ROWS, build_scorecard, scorecard_markdown, summary

from test_reports import gqa_pairs, make_run


def grid(root, gqa_right: dict):
    """base and γ ∈ {0, 1} (seed 1), each with 20 GQA answers of which `gqa_right[name]` are right."""
    make_run(root, "base", {"knob": "base"}, {"gqa": gqa_pairs(gqa_right["base"])})
    for value in (0.0, 1.0):
        name = f"gamma={value:g}-seed1"
        make_run(root, name, {"knob": "gamma", "value": value, "seed": 1}, {"gqa": gqa_pairs(gqa_right[name])})


def test_differences_signs_and_intervals(tmp_path):
    grid(tmp_path / "runs", {"base": 10, "gamma=0-seed1": 4, "gamma=1-seed1": 20})
    rows = dict(build_scorecard(collect_runs([tmp_path / "runs"]), replicates=300))
    # only the comparisons whose grid points exist
    assert set(rows) == {"DPO (γ=1) vs base", "BDHS only (γ=0) vs base", "BDHS only (γ=0) vs DPO (γ=1)"}
    dpo = rows["DPO (γ=1) vs base"]["gqa"]
    # paper: 64.34 − 64.23 = +0.11; run: 100% − 50% = +50 points, interval well above 0
    assert dpo.paper == pytest.approx(PAPER_ROWS["dpo_5k"][5] - PAPER_ROWS["base"][5])
    assert dpo.run == pytest.approx(50.0) and dpo.agrees and dpo.excludes_zero
    bdhs = rows["BDHS only (γ=0) vs base"]["gqa"]  # paper −0.26, run 20% − 50% = −30
    assert bdhs.paper == pytest.approx(63.97 - 64.23) and bdhs.run == pytest.approx(-30.0) and bdhs.agrees
    versus = rows["BDHS only (γ=0) vs DPO (γ=1)"]["gqa"]  # paper −0.37, run −80
    assert versus.run == pytest.approx(-80.0) and versus.agrees
    assert rows["DPO (γ=1) vs base"]["pope"].run is None  # POPE was not run: paper value only
    compared, agree, firm = summary(list(rows.items()))
    assert (compared, agree, firm) == (3, 3, 3)


def test_disagreement_and_report_section(tmp_path):
    grid(tmp_path / "runs", {"base": 10, "gamma=0-seed1": 11, "gamma=1-seed1": 9})
    rows = build_scorecard(collect_runs([tmp_path / "runs"]), replicates=300)
    cells = {label: entries["gqa"] for label, entries in rows}
    assert cells["BDHS only (γ=0) vs base"].agrees is False  # paper −0.26, run +5
    assert not cells["BDHS only (γ=0) vs base"].excludes_zero  # 11/20 vs 10/20 is noise
    text = scorecard_markdown(rows)
    assert "| BDHS only (γ=0) vs base |" in text and "✗" in text and "Signs agree in 0 of 3 cells" in text  # every run sign is the opposite here
    written = write_report([tmp_path / "runs"], tmp_path / "report", replicates=100)
    assert "## Paper-direction scorecard" in written["markdown"].read_text()
    assert written["scorecard"].read_text().startswith("## Paper-direction scorecard")


def test_no_grid_no_scorecard(tmp_path):
    make_run(tmp_path / "runs", "base", {"knob": "base"}, {"gqa": gqa_pairs(10)})
    assert build_scorecard(collect_runs([tmp_path / "runs"])) == []
    assert "scorecard" not in write_report([tmp_path / "runs"], tmp_path / "report", replicates=0)
