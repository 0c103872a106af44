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
    rejudge: bool = typer.Option(False, "--rejudge", help="call the judge again; write new outputs to the "
                                 "samples file next to the results (default: results beside the samples)"),
    judge_model: Optional[str] = typer.Option(None, "--judge-model",
                                              help="judge model (default: the benchmark's)"),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url",
                                                 help="OpenAI-compatible endpoint: vLLM, Azure, ..."),
    judge_api_key_env: str = typer.Option("OPENAI_API_KEY", "--judge-api-key-env",
                                          help="NAME of the variable holding the key (never stored)"),
    judge_concurrency: int = typer.Option(8, "--judge-concurrency", min=1, help="judge requests in flight"),
    judge_cache: Optional[Path] = typer.Option(None, "--judge-cache",
                                               help="SQLite file (default ~/.cache/mmbench)"),
    no_judge_cache: bool = typer.Option(False, "--no-judge-cache", help="neither read nor write the cache"),
    judge_prompt: Optional[Path] = typer.Option(None, "--judge-prompt",
                                                help="template replacing the judge prompt"),
    judge_runs: Optional[int] = typer.Option(None, "--judge-runs", min=1,
                                             help="judge runs per sample (MM-Vet K)"),
    judge_api_version: Optional[str] = typer.Option(None, "--judge-api-version",
                                                    help="Azure OpenAI API version"),
) -> None:
    """Score a samples file with the stored judge outputs (no model, data or network), or --rejudge it."""
    from mmbench.benchmarks import get_benchmark
    from mmbench.harness.runfiles import atomic_write_json
    from mmbench.harness.scoring import score_file
    from mmbench.reports.console import print_metrics

    if rejudge:
        from mmbench.harness.judge_client import JudgeConfig
        from mmbench.harness.judge_runner import rejudge_file

        config = JudgeConfig(model=judge_model, base_url=judge_base_url, api_key_env=judge_api_key_env,
                             cache_path=judge_cache, use_cache=not no_judge_cache,
                             concurrency=judge_concurrency, prompt_file=judge_prompt, runs=judge_runs,
                             azure_api_version=judge_api_version)
        print_metrics(rejudge_file(get_benchmark(benchmark), samples, config, out=out))
        return
    results = score_file(get_benchmark(benchmark), samples, strict=strict)
    if out is not None:
        atomic_write_json(out, results)
    print_metrics(results)


@app.command()
def report(
    dirs: list[Path] = typer.Argument(..., help="run folders (several are merged)"),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write the report (default: first DIR)"),
    replicates: int = typer.Option(1000, "--replicates", help="bootstrap replicates (0: no intervals)"),
) -> None:
    """Leaderboards (Markdown, CSV), detail tables and ablation plots from run files."""
    from mmbench.reports.console import console
    from mmbench.reports.leaderboard import write_report

    written = write_report(list(dirs), out or dirs[0], replicates=replicates)
    console.print(written["markdown"].read_text().split("\n## ")[0])
    for kind, path in written.items():
        console.print(f"{kind}: {path}")


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
