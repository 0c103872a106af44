"""From samples (response, reference, stored judge outputs) to `results.json` — no model,
data or network involved."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmbench.benchmarks import Benchmark
from mmbench.errors import MmbenchError

FAILED_SHARE_FLAG = 0.05  # flag a benchmark when more than 5% of its judgements failed


def validate_sample(benchmark: Benchmark, sample: dict, where: str) -> None:
    """Check one sample against the samples.jsonl contract; raise naming the place."""
    if sample.get("benchmark", benchmark.name) != benchmark.name:
        raise MmbenchError(f"{where}: sample is for benchmark {sample['benchmark']!r}, not {benchmark.name!r}")
    if not isinstance(sample.get("response"), str):
        raise MmbenchError(f"{where}: 'response' must be a string")
    reference = sample.get("reference")
    if not isinstance(reference, dict):
        raise MmbenchError(f"{where}: 'reference' must be an object")
    missing = [k for k in benchmark.reference_keys if k not in reference]
    if missing:
        raise MmbenchError(f"{where}: reference lacks {', '.join(missing)} (needed by {benchmark.name})")
    problem = benchmark.check_reference(reference) if benchmark.check_reference else None
    if problem:
        raise MmbenchError(f"{where}: {problem}")
    if benchmark.judged:
        judge = sample.get("judge")
        if not isinstance(judge, dict) or not isinstance(judge.get("outputs"), list):
            raise MmbenchError(f"{where}: no stored judge outputs ('judge': {{'outputs': [...]}}); "
                               "use --rejudge to call the judge")


def score_samples(benchmark: Benchmark, samples: Sequence[dict], *, parse: str | None = None
                  ) -> tuple[list[dict], dict]:
    """Per-sample scores and the metrics; samples must already be validated.  `parse` names the
    parse the run asks for (None: each benchmark's default; see `Benchmark.parses`)."""
    per_sample = [benchmark.score_sample(sample, parse) for sample in samples]
    scored = [s for s in per_sample if not s.get("failed")]
    metrics = benchmark.aggregate(scored) if scored else {}
    return per_sample, metrics


def build_results(benchmark: Benchmark, per_sample: Sequence[dict], metrics: dict, config: dict) -> dict:
    n = len(per_sample)
    n_failed = sum(bool(s.get("failed")) for s in per_sample)
    results = {
        "benchmark": benchmark.name,
        "version": benchmark.version,
        "headline": benchmark.headline,
        "metrics": metrics,
        "n": n,
        "n_failed": n_failed,
        "config": config,
    }
    if n and n_failed / n > FAILED_SHARE_FLAG:
        results["flagged"] = f"{n_failed} of {n} judgements failed (more than {FAILED_SHARE_FLAG:.0%})"
    return results


def requested_parse(strict: bool) -> str | None:
    """`--strict` as a parse request: benchmarks that have a "strict" parse use it."""
    return "strict" if strict else None


def score_file(benchmark: Benchmark, path: Path, *, strict: bool = False) -> dict:
    from mmbench.harness.runfiles import read_samples

    samples = read_samples(path)
    if not samples:
        raise MmbenchError(f"{path}: no samples to score (the file is empty)")
    for sample in samples:
        validate_sample(benchmark, sample, f"{path}:{sample['_line']}")
    per_sample, metrics = score_samples(benchmark, samples, parse=requested_parse(strict))
    judge_models = sorted({(s.get("judge") or {}).get("model") for s in samples if s.get("judge")} - {None})
    config = {"source": str(path), **benchmark.parse_config(requested_parse(strict))}
    if judge_models:
        config["judge_model"] = judge_models[0] if len(judge_models) == 1 else judge_models
    return build_results(benchmark, per_sample, metrics, config)
