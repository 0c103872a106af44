"""Leaderboards (Markdown and CSV), detail tables and ablation plots from run files.

Pure functions of the run files: per-sample scores are recomputed from `samples.jsonl` with the
stored judge outputs (no model, no network) to get bootstrap intervals and paired tests."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

from mmbench.benchmarks import get_benchmark
from mmbench.reports.collect import ModelRun, benchmark_columns, collect_runs, seed_values
from mmbench.reports.stats import Interval, bootstrap_interval, paired_difference

def md_cell(value) -> str:
    """Escape anything that could break a Markdown table: pipes, newlines, HTML."""
    text = "" if value is None else str(value)
    text = html.escape(text.replace("\r", " ").replace("\n", " "), quote=False)
    return text.replace("|", "\\|")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


@dataclass
class Cell:
    value: float | None
    interval: Interval | None = None
    delta: float | None = None
    significant: bool = False
    n_failed: int = 0


@dataclass
class Row:
    model: str
    knob: str
    value: float | None
    seed: int | None
    engine: str
    cells: dict[str, Cell]
    runs: list[ModelRun]


def build_rows(runs: list[ModelRun], replicates: int = 1000, aggregate_seeds: bool = False,
               progress=lambda: None) -> list[Row]:
    """One row per model (or per grid point with seeds averaged when aggregate_seeds);
    `progress()` is called once per (row, benchmark) cell."""
    groups: dict[tuple, list[ModelRun]] = {}
    for run in runs:
        key = (run.knob, run.value) if aggregate_seeds and run.knob not in ("", "base") else (run.model,)
        groups.setdefault(key, []).append(run)
    base = next((r for r in runs if r.is_base), None)
    base_scores = {b: base.sample_scores(b) for b in base.results} if base else {}
    rows = []
    for members in groups.values():
        first = members[0]
        cells = {}
        for benchmark in benchmark_columns(runs):
            progress()
            values = [v for v in (m.headline(benchmark) for m in members) if v is not None]
            if not values:
                cells[benchmark] = Cell(None)
                continue
            bench = get_benchmark(benchmark)
            scores = [m.sample_scores(benchmark) for m in members if benchmark in m.results]
            cell = Cell(sum(values) / len(values), n_failed=sum(m.results[benchmark].get("n_failed", 0)
                                                                 for m in members if benchmark in m.results))
            if replicates and all(scores):
                cell.interval = bootstrap_interval([list(s.values()) for s in scores], bench.aggregate,
                                                   bench.headline, replicates=replicates)
            if base is not None and not first.is_base and benchmark in base.results:
                base_value = base.headline(benchmark)
                cell.delta = None if base_value is None else cell.value - base_value
                if replicates and len(members) == 1 and scores and base_scores.get(benchmark):
                    diff = paired_difference(scores[0], base_scores[benchmark], bench.aggregate, bench.headline,
                                             replicates=replicates)
                    cell.significant = bool(diff and (diff.low > 0 or diff.high < 0))
            cells[benchmark] = cell
        name = first.model if len(members) == 1 else f"{first.knob}={first.value:g}"
        seed = first.seed if len(members) == 1 else None
        rows.append(Row(name, first.knob, first.value, seed, first.engine, cells, members))
    return rows


def leaderboard_frame(rows: list[Row]):
    """The CSV contract: model, knob, value, seed, then the eight headline metrics (and those of
    plug-in benchmarks the runs hold)."""
    import pandas as pd

    columns = _columns(rows)
    records = []
    for row in rows:
        record = {"model": row.model, "knob": row.knob, "value": row.value, "seed": row.seed}
        record.update({b: row.cells[b].value for b in columns})
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=["model", "knob", "value", "seed", *columns])
    frame["seed"] = frame["seed"].astype("Int64")  # the base row has no seed; keep the others integers
    return frame


def _columns(rows: list[Row]) -> list[str]:
    return list(rows[0].cells) if rows else []


def _best(rows: list[Row], benchmark: str) -> float | None:
    """The best headline value in a column, by its direction (lower is better for CHAIR-like
    headlines)."""
    bench = get_benchmark(benchmark)
    values = [r.cells[benchmark].value for r in rows if r.cells[benchmark].value is not None]
    return bench.best(values, bench.headline)


def leaderboard_markdown(rows: list[Row], runs: list[ModelRun]) -> str:
    from tabulate import tabulate

    present = [b for b in _columns(rows) if any(r.cells[b].value is not None for r in rows)]
    show_engine = any(r.engine != "mmbench" for r in rows)
    headers = ["model", "knob", "value", "seed", *(["engine"] if show_engine else []),
               *[f"{b} ({get_benchmark(b).headline})" for b in present]]
    table = []
    for row in rows:
        line = [md_cell(row.model), md_cell(row.knob), _fmt(row.value, 2) if row.value is not None else "",
                "" if row.seed is None else str(row.seed), *([md_cell(row.engine)] if show_engine else [])]
        for benchmark in present:
            cell = row.cells[benchmark]
            if cell.value is None:
                line.append("")
                continue
            text = _fmt(cell.value)
            if cell.value == _best(rows, benchmark):
                text = f"**{text}**"
            if cell.delta is not None:
                text += f" ({cell.delta:+.2f}{'*' if cell.significant else ''})"
            if cell.interval is not None and math.isfinite(cell.interval.low):
                text += f" [{cell.interval.low:.1f}, {cell.interval.high:.1f}]"
            if cell.n_failed:
                text += f" ⚠{cell.n_failed} failed"
            line.append(text)
        table.append(line)
    parts = ["# Leaderboard", "", tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), "",
             "Bold: best in column. (±x): difference from the base model; `*`: the paired bootstrap 95% "
             "interval of that difference excludes 0. [a, b]: bootstrap 95% interval over samples (and seeds).",
             "", _footer(runs, present)]
    for benchmark in present:  # each benchmark's own detail tables (splits, types, capabilities)
        for group in get_benchmark(benchmark).details:
            detail = _detail_table(rows, benchmark, list(group.metrics))
            if detail:
                parts += ["", f"## {group.title}", "", detail]
    return "\n".join(parts) + "\n"


def seeds_markdown(points: list[Row], base: Row | None) -> str:
    """Grid points averaged over their seeds: mean (difference from the base) [95% interval over
    seeds and samples] and the seed range, for runs with more than one seed per point."""
    from tabulate import tabulate

    if not points or max(len(p.runs) for p in points) < 2:
        return ""
    present = [b for b in _columns(points) if any(p.cells[b].value is not None for p in points)]
    table = []
    for point in sorted(points, key=lambda p: (p.knob, p.value if p.value is not None else -1)):
        line = [md_cell(point.knob), _fmt(point.value), str(len(point.runs))]
        for benchmark in present:
            cell, values = point.cells[benchmark], seed_values(point.runs, benchmark)
            if cell.value is None:
                line.append("")
                continue
            text = _fmt(cell.value)
            if base is not None and base.cells[benchmark].value is not None:
                text += f" ({cell.value - base.cells[benchmark].value:+.2f})"
            if cell.interval is not None and math.isfinite(cell.interval.low):
                text += f" [{cell.interval.low:.1f}, {cell.interval.high:.1f}]"
            if len(values) > 1:
                text += f" {min(values):.1f}–{max(values):.1f}"
            line.append(text)
        table.append(line)
    headers = ["knob", "value", "seeds", *[f"{b} ({get_benchmark(b).headline})" for b in present]]
    return "\n".join(["## Grid points over seeds", "",
                      "Mean over seeds (difference from the base) [bootstrap 95% interval resampling seeds, "
                      "then samples within each seed], then the range of the seeds' own values.", "",
                      tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)])


def _footer(runs: list[ModelRun], present: list[str]) -> str:
    lines = ["## Versions and judges", ""]
    for benchmark in present:
        versions = sorted({r.results[benchmark]["version"] for r in runs if benchmark in r.results})
        judges = sorted({str((r.results[benchmark].get("config", {}).get("judge") or {}).get("model"))
                         for r in runs if benchmark in r.results} - {"None"})
        failed = {r.model: r.results[benchmark].get("n_failed", 0) for r in runs
                  if benchmark in r.results and r.results[benchmark].get("n_failed")}
        text = f"- `{benchmark}` v{', v'.join(map(str, versions))}"
        if judges:
            text += f"; judge {', '.join(md_cell(j) for j in judges)}"
        if failed:
            text += "; n_failed " + ", ".join(f"{md_cell(m)}: {n}" for m, n in failed.items())
        lines.append(text)
    return "\n".join(lines)


def _detail_table(rows: list[Row], benchmark: str, metrics: list[str]) -> str:
    from tabulate import tabulate

    body = []
    for row in rows:
        values = []
        for metric in metrics:
            found = [m.results[benchmark]["metrics"].get(metric) for m in row.runs if benchmark in m.results]
            found = [v for v in found if v is not None]
            values.append(_fmt(sum(found) / len(found)) if found else "")
        if any(values):
            body.append([md_cell(row.model), *values])
    if not body:
        return ""
    return tabulate(body, headers=["model", *metrics], tablefmt="github", disable_numparse=True)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading
    apostrophe (OWASP's advice for CSV injection); numbers, negative ones included, stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
            return value  # "-1.5" is a number, not a formula
        except ValueError:
            return "'" + value
    return value


def csv_safe(frame):
    """The frame with every text cell (and column name) passed through `csv_cell`."""
    frame = frame.copy()
    frame.columns = [csv_cell(str(c)) for c in frame.columns]
    from pandas.api.types import is_numeric_dtype

    for column in frame.columns:
        if not is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(csv_cell).astype(object)
    return frame


def write_report(roots: list[Path], out: Path, replicates: int = 1000) -> dict[str, Path]:
    """Write leaderboard.md/.csv and one plot per ablation knob; return the paths written."""
    from rich.progress import Progress

    from mmbench.harness.runfiles import atomic_write_text
    from mmbench.reports.plots import plot_ablation
    from mmbench.reports.scorecard import COMPARISONS, IDS, build_scorecard, scorecard_markdown

    runs = collect_runs(roots)
    out = Path(out)
    written = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv"}
    knobs = sorted({r.knob for r in runs} - {"", "base"})
    # Bootstrap intervals take minutes on a 3-seed grid (1,000 replicates per cell): show progress.
    points_count = sum(len({r.value for r in runs if r.knob == k}) for k in knobs)
    cells = (len(runs) + points_count) * len(benchmark_columns(runs)) + len(COMPARISONS) * len(IDS)
    with Progress(transient=True, disable=not replicates) as bar:
        task = bar.add_task("report: bootstrap intervals", total=cells)
        tick = lambda: bar.advance(task)  # noqa: E731
        rows = build_rows(runs, replicates=replicates, progress=tick)
        card = scorecard_markdown(build_scorecard(runs, replicates=replicates, progress=tick))
        points = {k: build_rows([r for r in runs if r.knob == k], replicates=replicates, aggregate_seeds=True,
                                progress=tick) for k in knobs}
    base_rows = [r for r in rows if r.knob == "base"]
    base_row = base_rows[0] if base_rows else None
    seeds = seeds_markdown([p for k in knobs for p in points[k]], base_row)
    atomic_write_text(written["markdown"], leaderboard_markdown(rows, runs) + ("\n" + seeds + "\n" if seeds else "")
                      + ("\n" + card if card else ""))
    if card:
        written["scorecard"] = out / "scorecard.md"
        atomic_write_text(written["scorecard"], card)
    atomic_write_text(written["csv"], csv_safe(leaderboard_frame(rows)).to_csv(index=False))
    for knob in knobs:
        written[f"plot_{knob}"] = plot_ablation(knob, points[knob], base_row, out / f"ablation_{knob}.png")
    return written
