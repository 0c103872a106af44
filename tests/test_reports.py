"""Reports from hand-made run folders: CSV contract, escaping, bootstrap intervals, plots."""

import csv
import random
import subprocess
import sys

import pytest

from mmbench.benchmarks import get_benchmark
from mmbench.harness.runfiles import atomic_write_json, write_samples
from mmbench.harness.scoring import build_results, score_samples
from mmbench.reports.leaderboard import md_cell, write_report
from mmbench.reports.stats import bootstrap_interval, paired_difference


def make_run(root, model, meta, answers):
    """answers: benchmark -> list of (reference, response)."""
    folder = root / model
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "model.json", {"model": model, **meta})
    for name, pairs in answers.items():
        bench = get_benchmark(name)
        samples = [{"benchmark": name, "id": f"{name}-{i}", "prompt": "p", "response": resp, "reference": ref}
                   for i, (ref, resp) in enumerate(pairs)]
        write_samples(folder / name / "samples.jsonl", samples)
        per_sample, metrics = score_samples(bench, samples)
        atomic_write_json(folder / name / "results.json", build_results(bench, per_sample, metrics, {}))


def gqa_pairs(n_right, n=20):
    return [({"answer": "red"}, "red" if i < n_right else "blue") for i in range(n)]


def pope_pairs(n_right, n=20):
    return [({"answer": "yes" if i % 2 else "no", "split": "random"},
             ("yes" if i % 2 else "no") if i < n_right else ("no" if i % 2 else "yes")) for i in range(n)]


def test_report_writes_csv_markdown_and_plot(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "base", {"knob": "base"}, {"gqa": gqa_pairs(10), "pope": pope_pairs(12)})
    make_run(runs, "gamma=0-seed1", {"knob": "gamma", "value": 0.0, "seed": 1}, {"gqa": gqa_pairs(20), "pope": pope_pairs(12)})
    make_run(runs, "gamma=1-seed1", {"knob": "gamma", "value": 1.0, "seed": 1}, {"gqa": gqa_pairs(11), "pope": pope_pairs(18)})
    written = write_report([runs], tmp_path / "report", replicates=200)

    with open(written["csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0].keys()) == ["model", "knob", "value", "seed", "pope", "mmhal", "mmhal_v", "llava_w",
                                    "textvqa", "gqa", "mmvet", "coco_recall"]
    assert [r["model"] for r in rows] == ["base", "gamma=0-seed1", "gamma=1-seed1"]
    assert float(rows[0]["gqa"]) == pytest.approx(50.0) and float(rows[1]["gqa"]) == pytest.approx(100.0)
    assert rows[0]["mmhal"] == ""  # not run -> empty

    md = written["markdown"].read_text()
    assert "**100.00** (+50.00*)" in md  # best marked, delta vs base, significant
    assert "(+5.00)" in md  # 11/20 vs 10/20: not significant -> no star
    assert "## POPE splits" in md and "`gqa` v1" in md
    assert written["plot_gamma"].exists() and written["plot_gamma"].stat().st_size > 1000


def test_seeds_are_averaged_with_their_range_and_drawn_as_a_band(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    make_run(runs, "base", {"knob": "base"}, {"gqa": gqa_pairs(10)})
    right = {(0.0, 1): 12, (0.0, 2): 14, (0.0, 3): 16, (1.0, 1): 10, (1.0, 2): 10, (1.0, 3): 13}
    for (value, seed), n in right.items():
        make_run(runs, f"gamma={value:g}-seed{seed}", {"knob": "gamma", "value": value, "seed": seed},
                 {"gqa": gqa_pairs(n)})
    import mmbench.reports.plots as plots

    drawn = {}
    real = plots.plot_ablation

    def spy(knob, points, base, path):
        drawn[knob] = {p.value: sorted(plots.seed_values(p.runs, "gqa")) for p in points}
        return real(knob, points, base, path)

    monkeypatch.setattr(plots, "plot_ablation", spy)
    written = write_report([runs], tmp_path / "report", replicates=200)
    md = written["markdown"].read_text()
    section = md[md.index("## Grid points over seeds"):]
    lines = {line.split("|")[2].strip(): line for line in section.splitlines() if line.startswith("| gamma")}
    # gamma=0: 60, 70, 80 -> mean 70, +20 over the base's 50, seeds 60-80; gamma=1: 50, 50, 65
    assert "| 3 " in lines["0.00"] and "70.00 (+20.00) [" in lines["0.00"] and "60.0–80.0" in lines["0.00"]
    assert "55.00 (+5.00) [" in lines["1.00"] and "50.0–65.0" in lines["1.00"]
    low, high = (float(x) for x in lines["0.00"].split("[")[1].split("]")[0].split(","))
    assert 55 <= low < 70 < high <= 85  # resamples seeds too: wider than one seed's interval alone
    assert drawn["gamma"] == {0.0: [60.0, 70.0, 80.0], 1.0: [50.0, 50.0, 65.0]}
    assert written["plot_gamma"].stat().st_size > 1000
    one_seed = tmp_path / "one"
    make_run(one_seed, "base", {"knob": "base"}, {"gqa": gqa_pairs(10)})
    make_run(one_seed, "gamma=0-seed1", {"knob": "gamma", "value": 0.0, "seed": 1}, {"gqa": gqa_pairs(12)})
    assert "over seeds" not in write_report([one_seed], tmp_path / "r1", replicates=50)["markdown"].read_text()


def test_hostile_model_text_is_escaped(tmp_path):
    assert md_cell("a|b\nc<script>") == "a\\|b c&lt;script&gt;"
    runs = tmp_path / "runs"
    make_run(runs, "evil", {"model": "x|y\n<b>z</b>", "knob": ""}, {"gqa": gqa_pairs(5)})
    md = write_report([runs], tmp_path / "out", replicates=0)["markdown"].read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert all(line.count("|") - line.count("\\|") == table_lines[0].count("|") for line in table_lines[:3])
    assert "<b>" not in md


def test_bootstrap_interval_matches_known_variance():
    # Bernoulli(0.5) accuracy over n=400: sd of the mean = sqrt(0.25/400) = 2.5 points -> 95% CI ±4.9.
    rng = random.Random(0)
    samples = [{"correct": float(rng.random() < 0.5)} for _ in range(400)]
    aggregate = get_benchmark("gqa").aggregate
    interval = bootstrap_interval([samples], aggregate, "accuracy", replicates=2000)
    half_width = (interval.high - interval.low) / 2
    assert half_width == pytest.approx(1.96 * 2.5, rel=0.15)
    assert interval.low < interval.estimate < interval.high


def test_bootstrap_draws_the_same_stream_as_randrange():
    """Intervals already published (the README's) must not move when the resampler gets faster:
    the same seed gives the same replicates as drawing each index with Random.randrange."""
    rng = random.Random(1)
    pope = get_benchmark("pope")
    samples = [{"split": split, "label": rng.choice("yes no".split()), "pred": rng.choice(["yes", "no", None])}
               for split in ("random", "popular", "adversarial") for _ in range(40)]
    by_split: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_split.setdefault(s["split"], []).append(i)
    draw = random.Random(7)
    values = sorted(pope.aggregate([samples[g[draw.randrange(len(g))]] for g in by_split.values() for _ in g])["f1"]
                    for _ in range(200))
    interval = bootstrap_interval([samples], pope.aggregate, "f1", replicates=200, seed=7)
    # 2.5th and 97.5th percentiles of 200 sorted values, linearly interpolated (positions 4.975, 194.025).
    assert interval.low == pytest.approx(values[4] + (values[5] - values[4]) * 0.975, abs=1e-12)
    assert interval.high == pytest.approx(values[194] + (values[195] - values[194]) * 0.025, abs=1e-12)


def test_paired_difference_detects_real_gap_only():
    aggregate = get_benchmark("gqa").aggregate
    base = {str(i): {"correct": float(i % 2)} for i in range(200)}
    same = dict(base)
    better = {str(i): {"correct": 1.0 if i % 2 or i % 4 == 0 else 0.0} for i in range(200)}
    assert paired_difference(same, base, aggregate, "accuracy", replicates=300).low == 0.0
    gap = paired_difference(better, base, aggregate, "accuracy", replicates=300)
    assert gap.estimate == pytest.approx(25.0) and gap.low > 0


def test_report_cli_and_missing_folder(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "base", {"knob": "base"}, {"gqa": gqa_pairs(3)})
    ok = subprocess.run([sys.executable, "-m", "mmbench", "report", str(runs), "--out", str(tmp_path / "r"),
                         "--replicates", "50"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "r" / "leaderboard.csv").exists() and "leaderboard.md" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "mmbench", "report", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr


def test_report_advances_a_progress_bar_once_per_interval_cell(tmp_path, monkeypatch):
    """Bootstrap intervals take minutes on a 3-seed grid: the report shows a bar that reaches its total."""
    import rich.progress

    runs = tmp_path / "runs"
    make_run(runs, "base", {"knob": "base"}, {"gqa": gqa_pairs(10)})
    for value, seed in ((0.0, 1), (0.0, 2), (1.0, 1), (1.0, 2)):
        make_run(runs, f"gamma={value:g}-seed{seed}", {"knob": "gamma", "value": value, "seed": seed},
                 {"gqa": gqa_pairs(12)})
    seen = {}
    real = rich.progress.Progress.advance

    def advance(self, task, advance=1):
        seen["done"] = seen.get("done", 0) + advance
        seen["total"] = self.tasks[0].total
        return real(self, task, advance)

    monkeypatch.setattr(rich.progress.Progress, "advance", advance)
    write_report([runs], tmp_path / "report", replicates=20)
    from mmbench.benchmarks import IDS
    from mmbench.reports.collect import benchmark_columns, collect_runs
    from mmbench.reports.scorecard import COMPARISONS

    # 5 runs and 2 grid points, a cell per benchmark column each, plus every scorecard cell.
    columns = len(benchmark_columns(collect_runs([runs])))
    assert seen["done"] == seen["total"] == (5 + 2) * columns + len(COMPARISONS) * len(IDS)
