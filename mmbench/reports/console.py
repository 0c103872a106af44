"""Rich tables for the terminal (the files in reports/ write Markdown/CSV for disk)."""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Piped output (CI logs, files) gets a wide fixed width instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def print_metrics(results: dict) -> None:
    title = f"{results['benchmark']} v{results['version']}  (n={results['n']}, failed={results['n_failed']})"
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in results["metrics"].items():
        style = "bold" if name == results["headline"] else None
        table.add_row(Text(name, style=style), fmt(value))
    console.print(table)
    if results.get("flagged"):
        console.print(f"[yellow]warning: {results['flagged']}[/yellow]")


def print_benchmark_list(benchmarks) -> None:
    table = Table(title="mmbench benchmarks")
    for column in ("id", "headline", "version", "judge", "hub id", "description"):
        table.add_column(column)
    for b in benchmarks:
        judge = ("vision" if b.judge.vision else "text") if b.judge else "—"
        table.add_row(b.name, b.headline, str(b.version), judge, b.hub_id, b.description)
    console.print(table)


def print_records(benchmark, records) -> None:
    for record in records:
        console.rule(f"{benchmark.name} · {record.id}")
        console.print(Text("prompt:", style="bold"))
        console.print(Text(record.prompt))
        image = record.image
        shown = str(image) if not hasattr(image, "size") else f"<image {image.size[0]}x{image.size[1]}>"
        console.print(Text(f"image: {shown}"))
        console.print(Text(f"reference: {record.reference}"))


def print_headlines(all_results: dict, out) -> None:
    """The table `mmbench eval` ends with: one row per benchmark, headline metric first."""
    table = Table(title=f"headline metrics — run files under {out}")
    for column in ("benchmark", "version", "headline", "value", "n", "failed"):
        table.add_column(column, justify="right" if column in ("value", "n", "failed") else "left")
    for name, results in all_results.items():
        value = results["metrics"].get(results["headline"])
        table.add_row(name, str(results["version"]), results["headline"], fmt(value), str(results["n"]),
                      str(results["n_failed"]))
        if results.get("flagged"):
            console.print(f"[yellow]warning ({name}): {results['flagged']}[/yellow]")
    console.print(table)


def print_plan_rows(title: str, rows: list[dict]) -> None:
    """`--why`: what each benchmark or grid point would reuse or recompute, and why."""
    table = Table(title=title)
    columns = [c for c in ("point", "benchmark", "action", "todo", "reason") if any(c in r for r in rows)]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[Text(fmt(row.get(c))) for c in columns])
    console.print(table)
