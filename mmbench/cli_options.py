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
SUITE = typer.Option(None, "--suite", help="where defaults come from (base, data, judges, annotator): world | hub "
                     "| an installed suite | a suite file (TOML/YAML); default: detected from the checkpoint or "
                     "data, else world")
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


# Training options by name, for any trainer (`train`, `ablate`): a plug-in's own options too.
SET = typer.Option(None, "--set", help="NAME=VALUE (repeatable): any training option by name, e.g. a plug-in "
                   "trainer's (--set scale=2) or one in a trainer's section (--set bdhs.rho_th=0.9); VALUE is a "
                   "number, true/false, none or text. Wins over --config and the other flags")


def _scalar(text: str):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _assignments(items: Optional[list[str]]) -> dict:
    """--set NAME=VALUE items as a (nested, for dotted names) mapping of typed values."""
    out: dict = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        parts = name.strip().split(".")
        if not sep or not all(parts):
            raise MmbenchError(f"--set expects NAME=VALUE (NAME may be section.name), got {item!r}")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise MmbenchError(f"--set {item}: {part} is set as a value and as a section")
        target[parts[-1]] = _scalar(text)
    return out
