"""Option objects and small parsers shared by several `mmbench` commands (cli.py, cli_sub.py)."""

from __future__ import annotations

from typing import Optional

import typer

from mmbench.errors import MmbenchError

# Judge options shared by `score --rejudge` and `eval` (one definition, used by both commands).
JUDGE_MODEL = typer.Option(None, "--judge-model", help="judge model (default: the benchmark's)")
JUDGE_BASE_URL = typer.Option(None, "--judge-base-url", help="OpenAI-compatible endpoint: vLLM, Azure, ...")
JUDGE_API_KEY_ENV = typer.Option("OPENAI_API_KEY", "--judge-api-key-env",
                                 help="NAME of the variable holding the key (never stored)")
JUDGE_CONCURRENCY = typer.Option(8, "--judge-concurrency", min=1, help="judge requests in flight")
JUDGE_CACHE = typer.Option(None, "--judge-cache", help="SQLite file (default ~/.cache/mmbench)")
NO_JUDGE_CACHE = typer.Option(False, "--no-judge-cache", help="neither read nor write the cache")
JUDGE_PROMPT = typer.Option(None, "--judge-prompt", help="template replacing the judge prompt")
JUDGE_RUNS = typer.Option(None, "--judge-runs", min=1, help="judge runs per sample (MM-Vet K)")
JUDGE_API_VERSION = typer.Option(None, "--judge-api-version", help="Azure OpenAI API version")
# Reuse is keyed by provenance (checkpoint, data, settings); these two act on a mismatch.
OVERWRITE = typer.Option(False, "--overwrite", help="recompute stored work that another checkpoint, data or "
                         "settings produced (default: refuse with the difference)")
WHY = typer.Option(False, "--why", help="only print what would be reused or recomputed, and why")


def _judge_config(model, base_url, api_key_env, concurrency, cache, no_cache, prompt, runs, api_version):
    from mmbench.harness.judge_client import JudgeConfig

    return JudgeConfig(model=model, base_url=base_url, api_key_env=api_key_env, cache_path=cache,
                       use_cache=not no_cache, concurrency=concurrency, prompt_file=prompt, runs=runs,
                       azure_api_version=api_version)


# Preference-source options shared by `train`, `ablate` and `data` (mmbench/trainers/sources).
DATA_FORMAT = typer.Option(None, "--data-format", help="mmbench | rlaif-v | rlhf-v | povid | vlfeedback | trl "
                           "(default: detected from the columns)")
IMAGE_ROOT = typer.Option(None, "--image-root", help="folder relative image paths resolve against (POVID: COCO)")
SUBSET = typer.Option(None, "--subset", min=1, help="a seeded random subset of N examples (ids saved beside "
                      "the checkpoint)")
SUBSET_SEED = typer.Option(None, "--subset-seed", help="seed of --subset and of VLFeedback's pair draw (default 0)")
SKIP_BAD_ROWS = typer.Option(False, "--skip-bad-rows", help="drop bad rows (counted) instead of stopping")
PAIRS = typer.Option(None, "--pairs", help="VLFeedback: best (top vs a random lower-rated, default) | all")


def _data_options(data_format, image_root, subset, subset_seed, skip_bad_rows, pairs) -> dict:
    options = dict(data_format=data_format, image_root=image_root, subset=subset, subset_seed=subset_seed,
                   skip_bad_rows=skip_bad_rows or None, pairs=pairs)
    return {k: v for k, v in options.items() if v is not None}


def _floats(text: Optional[str], option: str):
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MmbenchError(f"{option} must be comma-separated numbers, got {text!r}") from None


def _ints(text: Optional[str], option: str):
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MmbenchError(f"{option} must be comma-separated integers, got {text!r}") from None
