"""The `mmbench world` and `mmbench data` sub-commands and the lmms-eval interop commands (added
to the app in cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmbench.errors import MmbenchError
from mmbench.cli_options import (DATA_FORMAT, IMAGE_ROOT, JUDGE_BASE_URL, JUDGE_MODEL, PAIRS, SKIP_BAD_ROWS,
                                 SUBSET, SUBSET_SEED, _data_options)

world_app = typer.Typer(no_args_is_help=True,
                        help="The embedded world: generated scenes, its eight benchmarks, SFT and preference sets.")


@world_app.command("build")
def world_build(
    seed: int = typer.Option(0, "--seed", help="world seed; the same seed writes byte-identical files"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder to write (default: the world cache, "
                                                           "$MMBENCH_CACHE or ~/.cache/mmbench)"),
    small: bool = typer.Option(False, "--small", help="a tiny world (tests, demos)"),
) -> None:
    """Generate the world: scenes and images, the eight benchmarks, the SFT and preference sets."""
    from mmbench.world.build import build_command

    if out is not None:
        from mmbench.harness.runfiles import check_writable

        check_writable(out)
    build_command(seed=seed, out=out, small=small)


@world_app.command("pretrain")
def world_pretrain(
    steps: int = typer.Option(2600, "--steps", min=3, help="optimizer steps over all stages"),
    seed: int = typer.Option(0, "--seed", help="model and data-order seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="model folder to write (default: the shipped "
                                                           "base, mmbench/world/base_model)"),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: every core)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N | auto (a GPU build takes minutes "
                                                       "and is not bit-identical to the CPU one)"),
) -> None:
    """Pre-train the world's tiny LLaVA from scratch (resumable: rerun the same command)."""
    from mmbench.harness.checkpoint import resolve_device
    from mmbench.world.paths import BASE_MODEL_DIR
    from mmbench.world.recipe import pretrain_base

    options = {"seed": seed, "steps": steps, "threads": threads}
    device = resolve_device(device)  # an unusable device fails here, before the world is built
    if device != "cpu":
        options["device"] = device
    print(f"model: {pretrain_base(out or BASE_MODEL_DIR, **options)}")


data_app = typer.Typer(no_args_is_help=True, help="Preference sources: inspect one, or convert it to mmbench's JSONL.")


@data_app.command("inspect")
def data_inspect(
    source: str = typer.Argument(..., help="a file, a hub snapshot or save_to_disk folder, or a hub id"),
    base: Optional[str] = typer.Option(None, "--base", help="render prompts with this model's chat template and "
                                       "count tokens with its tokenizer (default: raw prompts, words)"),
    n: int = typer.Option(3, "-n", min=0, help="rows to show"),
    stats_rows: int = typer.Option(1000, "--stats-rows", min=1, help="examples the length statistics cover"),
    prompt_only: bool = typer.Option(False, "--prompt-only", help="a prompt source for online sampling"),
    data_format: Optional[str] = DATA_FORMAT,
    image_root: Optional[str] = IMAGE_ROOT,
    subset_seed: Optional[int] = SUBSET_SEED,
    skip_bad_rows: bool = SKIP_BAD_ROWS,
    pairs: Optional[str] = PAIRS,
) -> None:
    """Detected format, row count, a few rows as the model sees them, answer lengths."""
    from mmbench.trainers.sources.tools import inspect_source

    inspect_source(source, base=base, n=n, stats_rows=stats_rows, prompt_only=prompt_only,
                   **_data_options(data_format, image_root, None, subset_seed, skip_bad_rows, pairs))


@data_app.command("convert")
def data_convert(
    source: str = typer.Argument(..., help="a file, a hub snapshot or save_to_disk folder, or a hub id"),
    out: Path = typer.Argument(..., help="the mmbench JSONL to write"),
    images: Optional[Path] = typer.Option(None, "--images", help="folder for extracted images (default: "
                                          "OUT's folder/images)"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="the first N examples"),
    prompt_only: bool = typer.Option(False, "--prompt-only", help="write prompt-only rows"),
    data_format: Optional[str] = DATA_FORMAT,
    image_root: Optional[str] = IMAGE_ROOT,
    subset: Optional[int] = SUBSET,
    subset_seed: Optional[int] = SUBSET_SEED,
    skip_bad_rows: bool = SKIP_BAD_ROWS,
    pairs: Optional[str] = PAIRS,
) -> None:
    """Write mmbench's JSONL ({id, image, prompt, chosen, rejected}) with images extracted to a folder."""
    from mmbench.harness.runfiles import check_writable
    from mmbench.trainers.sources import report
    from mmbench.trainers.sources.tools import convert_source

    if out.is_dir():
        raise MmbenchError(f"{out} is a folder; give the .jsonl file to write")
    check_writable(out.parent, "OUT")
    if images is not None:
        check_writable(images, "--images")
    path, count, result = convert_source(source, out, images=images, limit=limit, prompt_only=prompt_only,
                                         **_data_options(data_format, image_root, subset, subset_seed,
                                                         skip_bad_rows, pairs))
    report(result)
    print(f"wrote {count} rows to {path}")


def import_lmms_command(
    results_dir: Path = typer.Argument(..., help="an lmms-eval --output_path folder (run with --log_samples)"),
    out: Path = typer.Option(Path("runs"), "--out", help="run folder root"),
    name: Optional[str] = typer.Option(None, "--name", help="run name (default: the folder's name)"),
    strict: bool = typer.Option(False, "--strict", help="POPE: lmms-eval's exact-match parse"),
) -> None:
    """Convert an lmms-eval output folder into mmbench run files (then `score` and `report` work)."""
    from mmbench.harness.eval_api import check_run_name
    from mmbench.harness.lmms_import import import_lmms
    from mmbench.harness.runfiles import check_writable
    from mmbench.reports.console import print_headlines

    if not results_dir.is_dir():
        raise MmbenchError(f"lmms-eval output folder not found: {results_dir}")
    check_run_name(name or results_dir.resolve().name)
    check_writable(out)
    results = import_lmms(results_dir, out, name=name, strict=strict)
    if results:
        print_headlines(results, out)


def export_lmms_tasks_command(
    out: Path = typer.Argument(..., help="folder to write lmms-eval task folders into (--include_path)"),
    data: Optional[str] = typer.Option(None, "--data", help="a suite's local data (world: the default) or a data folder"),
    benchmarks: str = typer.Option("all", "--benchmarks", help="'all' or ids, e.g. mmhal,mmhal_v"),
    judge_model: Optional[str] = JUDGE_MODEL,
    judge_base_url: Optional[str] = JUDGE_BASE_URL,
) -> None:
    """Write lmms-eval tasks (mmhal, mmhal_v, mmbench_<id>) that use mmbench's loaders, judge and scorers."""
    from mmbench.benchmarks import resolve_benchmarks
    from mmbench.harness.lmms_export import export_tasks, task_name

    names = [b.name for b in resolve_benchmarks(benchmarks)]
    for path in export_tasks(out, data=data, benchmarks=names, judge_model=judge_model,
                             judge_base_url=judge_base_url):
        print(path)
    print(f"run: lmms_eval --model llava_hf --include_path {out} --tasks {','.join(task_name(n) for n in names)} "
          "--log_samples --output_path OUT ...")


def add_lmms_commands(app: typer.Typer) -> None:
    app.command("import-lmms")(import_lmms_command)
    app.command("export-lmms-tasks")(export_lmms_tasks_command)
