"""One PNG per ablation: every headline metric against the knob, base as a horizontal line,
95% bootstrap intervals as error bars; with several seeds per point, each seed's value as a dot
and the band between the lowest and highest seed shaded."""

from __future__ import annotations

import math
from pathlib import Path

from mmbench.benchmarks import get_benchmark
from mmbench.reports.collect import seed_values

KNOB_LABELS = {"gamma": "γ (weight of the external-rejected DPO term)", "p": "p (share of offline pairs)"}


def plot_ablation(knob: str, points, base, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(points[0].cells) if points else []  # the leaderboard's columns
    present = [b for b in columns if any(p.cells[b].value is not None for p in points)]
    cols = 4
    rows = max(1, math.ceil(len(present) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    ordered = sorted((p for p in points if p.value is not None), key=lambda p: p.value)
    for ax, benchmark in zip(axes.flat, present):
        xs, ys, lows, highs, band = [], [], [], [], []
        for point in ordered:
            cell = point.cells[benchmark]
            if cell.value is None:
                continue
            seeds = seed_values(point.runs, benchmark)
            if len(seeds) > 1:
                ax.scatter([point.value] * len(seeds), seeds, s=10, color="tab:blue", alpha=0.4, zorder=3)
                band.append((point.value, min(seeds), max(seeds)))
            xs.append(point.value)
            ys.append(cell.value)
            interval = cell.interval
            ok = interval is not None and math.isfinite(interval.low)
            lows.append(cell.value - interval.low if ok else 0.0)
            highs.append(interval.high - cell.value if ok else 0.0)
        if len(band) == len(xs) and band:
            ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                            color="tab:blue", alpha=0.15, label="seed range")
        ax.errorbar(xs, ys, yerr=[lows, highs], marker="o", capsize=3,
                    label="trained (mean over seeds)" if band else "trained")
        if base is not None and base.cells[benchmark].value is not None:
            cell = base.cells[benchmark]
            ax.axhline(cell.value, color="grey", linestyle="--", label="base")
            if cell.interval is not None and math.isfinite(cell.interval.low):
                ax.axhspan(cell.interval.low, cell.interval.high, color="grey", alpha=0.15)
        ax.set_title(f"{benchmark} ({get_benchmark(benchmark).headline})")
        ax.set_xlabel(knob)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    if present:
        axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Ablation over {KNOB_LABELS.get(knob, knob)}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
