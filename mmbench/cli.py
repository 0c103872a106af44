"""The `mmbench` command line: parses options and calls one function per command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mmbench.errors import MmbenchError
from mmbench.cli_options import SET, _assignments  # training options by name (train, ablate)
from mmbench.cli_options import (DATA_FORMAT, IMAGE_ROOT, JUDGE_API_KEY_ENV, JUDGE_API_VERSION, JUDGE_BASE_URL, JUDGE_CACHE, JUDGE_CONCURRENCY, JUDGE_MODEL, JUDGE_PROMPT, JUDGE_RUNS, NO_JUDGE_CACHE, OVERWRITE, PAIRS, SKIP_BAD_ROWS, SUBSET, SUBSET_SEED, SUITE, WHY, _data_options, _floats, _ints, _judge_config)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure how γ (BDHS) and p (Mixed-DPO) move eight multimodal benchmarks.")


@app.command("list")
def list_benchmarks() -> None:
    """List the benchmarks (the eight built-ins, then installed plug-ins) with headline metric,
    version and hub id."""
    from mmbench.benchmarks import benchmark_names, get_benchmark
    from mmbench.reports.console import print_benchmark_list

    print_benchmark_list([get_benchmark(name) for name in benchmark_names()])


@app.command("suites")
def suites_command() -> None:
    """List the installed suites (where eval, train and ablate get their defaults)."""
    from mmbench.suites import DEFAULT_SUITE, SUITES

    for name in SUITES.names():
        doc = (getattr(SUITES.get(name), "__doc__", None) or "").strip().splitlines()
        print(f"{name}{' (default)' if name == DEFAULT_SUITE else ''}: {doc[0] if doc else ''}")


@app.command()
def inspect(
    benchmark: str = typer.Argument(..., help="benchmark id, e.g. pope"),
    n: int = typer.Option(3, "-n", min=0, help="how many records to show"),
    data: Optional[str] = typer.Option(None, "--data", help="a suite's data (world, hub, ...), a hub id, or a folder "
                                       "(default: the default suite's, the world built on demand)"),
) -> None:
    """Show records of a benchmark and the exact prompts the model gets."""
    from mmbench.benchmarks import get_benchmark, load_records
    from mmbench.reports.console import print_records
    from mmbench.suites import SUITES, get_suite

    bench = get_benchmark(benchmark)
    if data is None or data in SUITES:
        data = get_suite(data).benchmark_data(bench)
    print_records(bench, load_records(bench, data, limit=None)[:n])


@app.command()
def score(
    benchmark: str = typer.Argument(..., help="benchmark id"),
    samples: Path = typer.Argument(..., help="samples.jsonl to score"),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write results.json"),
    strict: bool = typer.Option(False, "--strict", help="POPE: lmms-eval's exact-match yes/no parse"),
    rejudge: bool = typer.Option(False, "--rejudge", help="call the judge again; write new outputs to the "
                                 "samples file next to the results (default: results beside the samples)"),
    judge_model: Optional[str] = JUDGE_MODEL,
    judge_base_url: Optional[str] = JUDGE_BASE_URL,
    judge_api_key_env: str = JUDGE_API_KEY_ENV,
    judge_concurrency: int = JUDGE_CONCURRENCY,
    judge_cache: Optional[Path] = JUDGE_CACHE,
    no_judge_cache: bool = NO_JUDGE_CACHE,
    judge_prompt: Optional[Path] = JUDGE_PROMPT,
    judge_runs: Optional[int] = JUDGE_RUNS,
    judge_api_version: Optional[str] = JUDGE_API_VERSION,
) -> None:
    """Score a samples file with the stored judge outputs (no model, data or network), or --rejudge it."""
    from mmbench.benchmarks import get_benchmark
    from mmbench.harness.runfiles import atomic_write_json
    from mmbench.harness.scoring import score_file
    from mmbench.reports.console import print_metrics

    if rejudge:
        from mmbench.harness.judge_runner import rejudge_file

        config = _judge_config(judge_model, judge_base_url, judge_api_key_env, judge_concurrency, judge_cache,
                               no_judge_cache, judge_prompt, judge_runs, judge_api_version)
        print_metrics(rejudge_file(get_benchmark(benchmark), samples, config, out=out))
        return
    if out is not None and out.is_dir():
        raise MmbenchError(f"--out {out} is a folder; give the results.json path to write")
    results = score_file(get_benchmark(benchmark), samples, strict=strict)
    if out is not None:
        atomic_write_json(out, results)
    print_metrics(results)


@app.command("eval")
def eval_command(
    ckpt: Optional[str] = typer.Argument(None, help="checkpoint folder or hub id (default: the shipped world base)"),
    benchmarks: str = typer.Option("all", "--benchmarks", help="'all' or ids, e.g. pope,gqa"),
    data: Optional[str] = typer.Option(None, "--data", help="a suite's data (world | hub | ...), a hub id or a folder "
                                       "for every benchmark (default: the suite's)"),
    suite: Optional[str] = SUITE,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="records per benchmark (per POPE split)"),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1,
                                                 help="cap on answer length for every benchmark"),
    out: Path = typer.Option(Path("runs"), "--out", help="run folder root"),
    name: Optional[str] = typer.Option(None, "--name", help="run name (default: the checkpoint's folder name)"),
    strict: bool = typer.Option(False, "--strict", help="POPE: lmms-eval's exact-match parse"),
    dtype: str = typer.Option("auto", "--dtype", help="auto | float32 | bfloat16 | float16"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="run the checkpoint's own code"),
    engine: str = typer.Option("mmbench", "--engine", help="mmbench | lmms-eval | an installed engine (lmms-eval: its tasks and LLaVA "
                               "class; MMHal/MMHal-V fall back to mmbench; see docs/lmms_eval.md)"),
    overwrite: bool = OVERWRITE,
    why: bool = WHY,
    judge_model: Optional[str] = JUDGE_MODEL,
    judge_base_url: Optional[str] = JUDGE_BASE_URL,
    judge_api_key_env: str = JUDGE_API_KEY_ENV,
    judge_concurrency: int = JUDGE_CONCURRENCY,
    judge_cache: Optional[Path] = JUDGE_CACHE,
    no_judge_cache: bool = NO_JUDGE_CACHE,
    judge_prompt: Optional[Path] = JUDGE_PROMPT,
    judge_runs: Optional[int] = JUDGE_RUNS,
    judge_api_version: Optional[str] = JUDGE_API_VERSION,
) -> None:
    """Score a checkpoint on the benchmarks; resumable (rerun the same command to continue)."""
    from mmbench.benchmarks import resolve_benchmarks
    from mmbench.harness.eval_api import EvalRequest, run_eval
    from mmbench.reports.console import print_headlines

    config = _judge_config(judge_model, judge_base_url, judge_api_key_env, judge_concurrency, judge_cache,
                           no_judge_cache, judge_prompt, judge_runs, judge_api_version)
    request = EvalRequest(model=ckpt, benchmarks=resolve_benchmarks(benchmarks), data=data, out=out,
                          limit=limit, batch_size=batch_size, max_new_tokens=max_new_tokens, strict=strict,
                          name=name, judge=config,
                          judge_explicit=bool(judge_model or judge_base_url or judge_prompt), dtype=dtype,
                          device=device, trust_remote_code=trust_remote_code, engine=engine,
                          overwrite=overwrite, why=why, suite=suite)
    results = run_eval(request)
    if why:
        from mmbench.reports.console import print_plan_rows

        print_plan_rows(f"eval plan — {out}", results["plans"])
    elif results:
        print_headlines(results, out)


@app.command()
def ablate(
    knob: str = typer.Argument(..., help="an option a trainer declares ablatable: gamma (bdhs, loss mixing), p "
                              "(mixed-dpo, offline share) or an installed plug-in's"),
    values: Optional[str] = typer.Option(None, "--values", help="grid, e.g. 0,0.25,0.5,0.75,1"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="training seeds, e.g. 1,2,3"),
    suite: Optional[str] = SUITE,
    base: Optional[str] = typer.Option(None, "--base", help="base checkpoint (default: the suite's, the shipped world base)"),
    data: Optional[str] = typer.Option(None, "--data", help="preference source (default: the suite's, the world's set)"),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="benchmark data (default as in eval)"),
    benchmarks: Optional[str] = typer.Option(None, "--benchmarks", help="'all' or ids"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="training steps per point"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="records per benchmark in every evaluation"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML or YAML file; options given here win"),
    out: Optional[str] = typer.Option(None, "--out", help="output folder (default: ablations/<knob>)"),
    point: Optional[int] = typer.Option(None, "--point", help="run only grid value K (0-based), for array jobs"),
    overwrite: bool = OVERWRITE,
    why: bool = WHY,
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and a cost estimate per phase from a short "
                                 "calibration on the base and this device; run nothing, write nothing"),
    data_format: Optional[str] = DATA_FORMAT,
    image_root: Optional[str] = IMAGE_ROOT,
    subset: Optional[int] = SUBSET,
    subset_seed: Optional[int] = SUBSET_SEED,
    skip_bad_rows: bool = SKIP_BAD_ROWS,
    pairs: Optional[str] = PAIRS,
    assignments: Optional[list[str]] = SET,
) -> None:
    """Train a checkpoint per grid point, evaluate each and the base, write leaderboard and plot."""
    from mmbench.ablate import resolve_config, run_ablation

    overrides = dict(values=_floats(values, "--values"), seeds=_ints(seeds, "--seeds"), suite=suite, base=base, data=data,
                     eval_data=eval_data, benchmarks=benchmarks, max_steps=max_steps, limit=limit, out=out,
                     point=point, train=_assignments(assignments) or None)
    overrides.update(_data_options(data_format, image_root, subset, subset_seed, skip_bad_rows, pairs))
    run_ablation(resolve_config(knob, config, overrides), overwrite=overwrite, why=why, dry_run=dry_run)


def _train_help() -> str:
    from mmbench.trainers.registry import installed_trainer_names

    return ("Train a checkpoint with a preference trainer. Installed trainers: "
            + ", ".join(installed_trainer_names()) + ".")


@app.command(help=_train_help())
def train(
    ctx: typer.Context,
    trainer: str = typer.Argument(..., help="trainer name (dpo, bdhs, mixed-dpo, or an installed plug-in)"),
    suite: Optional[str] = SUITE,
    base: Optional[str] = typer.Option(None, "--base", help="base checkpoint folder or hub id (default: the suite's, "
                                       "the shipped world base)"),
    data: Optional[str] = typer.Option(None, "--data", help="preference source: JSONL, parquet/JSON files, a hub "
                                       "snapshot or save_to_disk folder, or a hub id (default: the suite's)"),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="prompt source for online pairs (mixed-dpo): "
                                          "any --data format, or JSONL rows {id, image, prompt}"),
    out: str = typer.Option("checkpoints/run", "--out", help="checkpoint folder to write"),
    gamma: float = typer.Option(0.5, "--gamma", help="bdhs: weight of DPO on the external rejected answer"),
    p: float = typer.Option(0.5, "--p", help="mixed-dpo: probability of the offline pair"),
    beta: float = typer.Option(0.1, "--beta", help="DPO β"),
    lr: float = typer.Option(5e-6, "--lr"),
    max_steps: int = typer.Option(100, "--max-steps"),
    batch_size: int = typer.Option(8, "--batch-size", help="examples per optimizer step"),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    seed: int = typer.Option(0, "--seed"),
    limit: Optional[int] = typer.Option(None, "--limit", help="use the first N preference rows"),
    lora: bool = typer.Option(False, "--lora", help="train LoRA adapters (reference = adapters off)"),
    online_bdhs: bool = typer.Option(False, "--online-bdhs", help="BDHS negatives from the current policy"),
    rho_th: float = typer.Option(0.99, "--rho-th", help="BDHS image-token masking threshold"),
    epsilon_s: float = typer.Option(0.97, "--epsilon-s", help="BDHS similarity threshold"),
    embedder: str = typer.Option("all-MiniLM-L6-v2", "--embedder", help="sentence embedder for BDHS"),
    annotator: Optional[str] = typer.Option(None, "--annotator", help="mixed-dpo: a judge model id (default: the "
                                            "suite's annotator, the scene annotator on world data)"),
    annotator_base_url: Optional[str] = typer.Option(None, "--annotator-base-url"),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no | bf16 | fp16"),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing",
                                                help="recompute activations in the backward pass (less memory)"),
    attn_implementation: Optional[str] = typer.Option(None, "--attn-implementation",
                                                      help="eager | sdpa | flash_attention_2 (when installed)"),
    logp_chunk_size: int = typer.Option(0, "--logp-chunk-size", help="log-probs on completion tokens only, N "
                                        "tokens at a time, never full-vocabulary logits for the batch (0: off)"),
    share_prefix: Optional[bool] = typer.Option(None, "--share-prefix/--no-share-prefix", help="run prompt and image "
                                                "once per example; every completion continues from its KV cache "
                                                "(LLaVA, LLaVA-NeXT/OneVision, Idefics3, PaliGemma, Gemma 3; others "
                                                "ignore it). Default: on, off with --gradient-checkpointing"),
    live_reference: bool = typer.Option(False, "--live-reference",
                                        help="build the reference model even when every reference log-prob is cached"),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | sgd"),
    save_every: int = typer.Option(25, "--save-every", help="steps between resumable training states"),
    overwrite: bool = OVERWRITE,
    data_format: Optional[str] = DATA_FORMAT,
    image_root: Optional[str] = IMAGE_ROOT,
    subset: Optional[int] = SUBSET,
    subset_seed: Optional[int] = SUBSET_SEED,
    skip_bad_rows: bool = SKIP_BAD_ROWS,
    pairs: Optional[str] = PAIRS,
    config_file: Optional[Path] = typer.Option(None, "--config", help="TOML or YAML file of training options, a "
                                               "section per trainer (\\[bdhs] gamma = 0.3); flags given here win"),
    assignments: Optional[list[str]] = SET,
) -> None:
    from mmbench.errors import read_table_file
    from mmbench.reports.console import console
    from mmbench.trainers.config import TrainConfig, merge, sectioned
    from mmbench.trainers.registry import get_trainer

    # Layers, later wins: the file, then the flags given on the command line, then --set.
    given = {name: value for name, value in ctx.params.items()
             if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}
    for name in ("trainer", "config_file", "assignments"):
        given.pop(name, None)
    sampler = {name: given.pop(name) for name in ("rho_th", "epsilon_s", "embedder") if name in given}
    if sampler:  # BDHS sampler flags: the bdhs trainer's section (checked, unused by other trainers)
        given["bdhs"] = {"sampler": sampler}
    layers = [read_table_file(config_file) if config_file else {}, given, _assignments(assignments)]
    options: dict = {}
    for layer in layers:
        options = merge(options, sectioned({**layer, "trainer": trainer}, str(config_file or "training options")))
    config = TrainConfig.from_dict(options)
    plugin = get_trainer(trainer)
    plugin.setup(config)
    metrics = plugin.train()
    path = plugin.save()
    if getattr(plugin, "reused", False):
        console.print(f"{path} is up to date: trained with the same base, data and options (nothing to do)")
    console.print(f"checkpoint: {path}  (last step: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                                                              if k in ("loss", "step")) + ")")


@app.command()
def report(
    dirs: list[Path] = typer.Argument(..., help="run folders (several are merged)"),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write the report (default: first DIR)"),
    replicates: int = typer.Option(1000, "--replicates", help="bootstrap replicates (0: no intervals)"),
) -> None:
    """Leaderboards (Markdown, CSV), detail tables and ablation plots from run files."""
    from mmbench.reports.console import console
    from mmbench.reports.leaderboard import write_report

    from mmbench.harness.runfiles import check_writable

    if replicates < 0:
        raise MmbenchError(f"--replicates must be 0 or more, got {replicates}")
    check_writable(out or dirs[0])
    written = write_report(list(dirs), out or dirs[0], replicates=replicates)
    console.print(written["markdown"].read_text().split("\n## ")[0])
    for kind, path in written.items():
        console.print(f"{kind}: {path}")


from mmbench.cli_sub import add_lmms_commands, data_app, world_app  # noqa: E402

app.add_typer(world_app, name="world")
app.add_typer(data_app, name="data")
add_lmms_commands(app)

_DEBUG = False


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="show the full traceback of an unexpected error "
                                     "(also MMBENCH_DEBUG=1)"),
          verbose: bool = typer.Option(False, "--verbose", help="show the libraries' own progress bars, such as "
                                       "transformers' per-load 'Loading weights' (also MMBENCH_VERBOSE=1)")) -> None:
    """Measure how γ (BDHS) and p (Mixed-DPO) move eight multimodal benchmarks."""
    global _DEBUG
    _DEBUG = _DEBUG or debug


def _expected(exc: BaseException) -> str | None:
    """The one-line message of an expected failure that was not converted where it happened
    (OSError from a write, a decode error, a corrupt safetensors file); None if unexpected."""
    from mmbench.errors import os_error_message

    if isinstance(exc, OSError):
        return os_error_message(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8"
    if type(exc).__name__ == "SafetensorError":
        return f"corrupt .safetensors file ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})"
    return None


def _click_exceptions() -> tuple[tuple, tuple, tuple]:
    """(usage errors, no-args help, aborts) of click and of typer's own copy of click."""
    import click

    usage, no_args, aborts = [click.ClickException], [click.exceptions.NoArgsIsHelpError], [click.exceptions.Abort]
    try:
        from typer._click import exceptions as vendored

        usage.append(vendored.ClickException)
        no_args.append(vendored.NoArgsIsHelpError)
    except ImportError:
        pass
    aborts.append(typer.Abort)
    return tuple(usage), tuple(no_args), tuple(aborts)


def main(argv: list[str] | None = None) -> None:
    """Entry point: a user-facing problem is one line on stderr and exit code 2, no traceback;
    anything unexpected is one line and exit 1 (the traceback with --debug or MMBENCH_DEBUG=1)."""
    import os

    global _DEBUG
    usage_errors, no_args, aborts = _click_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    for flag in ("--verbose", "--debug"):  # global options, accepted after the command name too
        if flag in args:
            args = [flag, *(a for a in args if a != flag)]
    if "--verbose" in args:
        os.environ["MMBENCH_VERBOSE"] = "1"
    _DEBUG = "--debug" in args or os.environ.get("MMBENCH_DEBUG", "").strip().lower() not in ("", "0", "false",
                                                                                             "no")
    try:
        code = app(args=args, prog_name="mmbench", standalone_mode=False)
    except MmbenchError as exc:
        if _DEBUG:
            import traceback

            traceback.print_exc()
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except no_args as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except usage_errors as exc:  # usage errors: bad option values, missing arguments
        print(f"error: {exc.format_message().splitlines()[0]}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except aborts:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one boundary
        if _DEBUG:
            raise
        message = _expected(exc)
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        text = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: {type(exc).__name__}{': ' + text if text else ''} (unexpected; rerun with --debug for the "
              "traceback)", file=sys.stderr)
        sys.exit(1)
    if code == 130:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
