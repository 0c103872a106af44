"""The `mmbench` command line: parses options and calls one function per command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mmbench.errors import MmbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure how γ (BDHS) and p (Mixed-DPO) move eight multimodal benchmarks.")


@app.command("list")
def list_benchmarks() -> None:
    """List the eight benchmarks with headline metric, version and hub id."""
    from mmbench.benchmarks import BENCHMARKS
    from mmbench.reports.console import print_benchmark_list

    print_benchmark_list(BENCHMARKS.values())


@app.command()
def inspect(
    benchmark: str = typer.Argument(..., help="benchmark id, e.g. pope"),
    n: int = typer.Option(3, "-n", help="how many records to show"),
    data: Optional[str] = typer.Option(None, "--data", help="data folder, a hub id, or 'hub'"),
) -> None:
    """Show records of a benchmark and the exact prompts the model gets."""
    from mmbench.benchmarks import get_benchmark, load_records
    from mmbench.reports.console import print_records

    bench = get_benchmark(benchmark)
    print_records(bench, load_records(bench, data, limit=None)[:n])


@app.command()
def score(
    benchmark: str = typer.Argument(..., help="benchmark id"),
    samples: Path = typer.Argument(..., help="samples.jsonl to score"),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write results.json"),
    strict: bool = typer.Option(False, "--strict", help="POPE: lmms-eval's exact-match yes/no parse"),
) -> None:
    """Score a samples file with the stored judge outputs (no model, data or network)."""
    from mmbench.benchmarks import get_benchmark
    from mmbench.harness.runfiles import atomic_write_json
    from mmbench.harness.scoring import score_file
    from mmbench.reports.console import print_metrics

    results = score_file(get_benchmark(benchmark), samples, strict=strict)
    if out is not None:
        atomic_write_json(out, results)
    print_metrics(results)


def main() -> None:
    """Entry point: a user-facing problem is one line on stderr and exit code 2, no traceback."""
    try:
        app()
    except MmbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
