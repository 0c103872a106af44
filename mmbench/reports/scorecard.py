"""The paper-direction scorecard: for each comparison the study reports for the two knobs, the
study's difference next to the run's (with a paired bootstrap interval), and whether the signs
agree.  It reads any run folder — the world's grids or a real reproduction — and needs only the
grid points a comparison names; comparisons whose points are missing are left out.

The study's figures are Amirloo et al. 2024 (arXiv 2407.02477), LLaVA-1.6-7B on POVID: the base,
DPO (γ = 1 analogue), BDHS only (γ = 0 analogue) and γ = 0.5 with offline BDHS on the 5k subset;
DPO on the full set (p = 1), Online-DPO (p = 0) and Mixed-DPO (p = 0.5).  The mechanisms behind
a world run are not tuned to these rows; this table reports what comes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mmbench.benchmarks import IDS, get_benchmark
from mmbench.reports.collect import ModelRun
from mmbench.reports.stats import paired_difference

# Columns: pope, mmhal, mmhal_v, llava_w, textvqa, gqa, mmvet, coco_recall (the paper's reference rows).
PAPER_ROWS = {
    "base": (86.40, 2.95, 2.75, 80.85, 64.85, 64.23, 43.94, 68.13),
    "dpo_5k": (88.18, 2.93, 2.93, 81.89, 64.90, 64.34, 43.39, 71.80),
    "bdhs_5k": (88.75, 2.61, 2.71, 86.33, 65.07, 63.97, 43.40, 75.58),
    "gamma_half_offline": (88.56, 2.85, 2.72, 85.35, 65.39, 64.11, 43.26, 75.05),
    "dpo_full": (88.09, 3.16, 3.07, 78.63, 64.56, 64.12, 40.60, 73.48),
    "online_dpo": (86.49, 2.88, 2.94, 82.61, 64.88, 64.31, 43.26, 68.45),
    "mixed_half": (88.03, 2.83, 3.10, 82.75, 64.93, 64.47, 42.80, 74.53),
}

# (label, run side A, run side B, paper row A, paper row B); a side is "base" or (knob, value).
COMPARISONS = [
    ("DPO (γ=1) vs base", ("gamma", 1.0), "base", "dpo_5k", "base"),
    ("BDHS only (γ=0) vs base", ("gamma", 0.0), "base", "bdhs_5k", "base"),
    ("BDHS only (γ=0) vs DPO (γ=1)", ("gamma", 0.0), ("gamma", 1.0), "bdhs_5k", "dpo_5k"),
    ("γ=0.5 vs DPO (γ=1)", ("gamma", 0.5), ("gamma", 1.0), "gamma_half_offline", "dpo_5k"),
    ("γ=0.5 vs BDHS only (γ=0)", ("gamma", 0.5), ("gamma", 0.0), "gamma_half_offline", "bdhs_5k"),
    ("online only (p=0) vs offline only (p=1)", ("p", 0.0), ("p", 1.0), "online_dpo", "dpo_full"),
    ("mixed (p=0.5) vs offline only (p=1)", ("p", 0.5), ("p", 1.0), "mixed_half", "dpo_full"),
    ("mixed (p=0.5) vs online only (p=0)", ("p", 0.5), ("p", 0.0), "mixed_half", "online_dpo"),
]


@dataclass
class Entry:
    paper: float
    run: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def agrees(self) -> bool | None:
        if self.run is None or self.paper == 0 or self.run == 0:
            return None
        return (self.paper > 0) == (self.run > 0)

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def _side(runs: list[ModelRun], side) -> list[ModelRun]:
    if side == "base":
        return [r for r in runs if r.is_base]
    knob, value = side
    return [r for r in runs if r.knob == knob and r.value is not None and math.isclose(r.value, value)]


def _pooled(members: list[ModelRun], benchmark: str, seeds: list) -> dict[str, dict]:
    """Per-sample scores keyed by (seed, id): seeds pool; a seedless side (the base) repeats."""
    out = {}
    for run in members:
        scores = run.sample_scores(benchmark)
        for seed in (seeds if run.seed is None else [run.seed]):
            out.update({f"{seed}/{i}": s for i, s in scores.items()})
    return out


def build_scorecard(runs: list[ModelRun], replicates: int = 1000,
                    progress=lambda: None) -> list[tuple[str, dict[str, Entry]]]:
    """`progress()` is called once per (comparison, benchmark) cell, made or skipped."""
    rows = []
    for label, side_a, side_b, paper_a, paper_b in COMPARISONS:
        a, b = _side(runs, side_a), _side(runs, side_b)
        if not a or not b:
            for _ in IDS:
                progress()
            continue
        seeds = sorted({r.seed for r in a + b if r.seed is not None}) or [None]
        entries = {}
        for column, benchmark in enumerate(IDS):
            progress()
            entry = Entry(PAPER_ROWS[paper_a][column] - PAPER_ROWS[paper_b][column])
            if all(benchmark in r.results for r in a + b):
                bench = get_benchmark(benchmark)
                pa, pb = _pooled(a, benchmark, seeds), _pooled(b, benchmark, seeds)
                diff = paired_difference(pa, pb, bench.aggregate, bench.headline, replicates=max(replicates, 1))
                if diff is not None and math.isfinite(diff.estimate):
                    entry.run = diff.estimate
                    if replicates:
                        entry.low, entry.high = diff.low, diff.high
            entries[benchmark] = entry
        rows.append((label, entries))
    return rows


def _cell(entry: Entry) -> str:
    if entry.run is None:
        return f"{entry.paper:+.2f} / —"
    mark = {True: "✓", False: "✗", None: "·"}[entry.agrees]
    star = "*" if entry.excludes_zero else ""
    interval = f" [{entry.low:+.2f}, {entry.high:+.2f}]" if entry.low is not None else ""
    return f"{entry.paper:+.2f} / {entry.run:+.2f}{star}{interval} {mark}"


def summary(rows) -> tuple[int, int, int]:
    """(cells with a direction on both sides, cells whose signs agree, agreeing cells with the
    run's interval excluding 0)."""
    entries = [e for _, row in rows for e in row.values() if e.agrees is not None]
    agree = [e for e in entries if e.agrees]
    return len(entries), len(agree), sum(e.excludes_zero for e in agree)


def scorecard_markdown(rows) -> str:
    if not rows:
        return ""
    compared, agree, firm = summary(rows)
    lines = ["## Paper-direction scorecard", "",
             "Each cell: the study's difference / this run's difference (`*`: paired bootstrap 95% interval "
             "excludes 0, shown in brackets); ✓ signs agree, ✗ they differ, · no direction. Study: "
             "Amirloo et al. 2024, LLaVA-1.6-7B on POVID. Seeds are pooled.", "",
             "| comparison | " + " | ".join(IDS) + " |", "|---|" + "---|" * len(IDS)]
    for label, entries in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(entries[b]) for b in IDS) + " |")
    lines += ["", f"Signs agree in {agree} of {compared} cells; {firm} of those have an interval excluding 0.", ""]
    return "\n".join(lines)
