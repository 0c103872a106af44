"""`mmbench import-lmms`: an lmms-eval output folder (results JSON + --log_samples logs) becomes
mmbench run files, which `score` and `report` then read like any other run."""

from __future__ import annotations

import sys
from pathlib import Path

from mmbench.benchmarks import get_benchmark
from mmbench.errors import MmbenchError
from mmbench.harness.lmms import read_log, convert_rows, finish_benchmark, own_metrics, read_output, task_benchmark
from mmbench.harness.runfiles import atomic_write_json
from mmbench.harness.scoring import requested_parse


def _check_import_target(folder: Path, source: Path) -> None:
    """Import only into an empty run folder or one imported from the same lmms-eval output."""
    from mmbench.harness.provenance import Conflict, read_json

    meta = read_json(folder / "model.json") or {}
    stored = [*folder.glob("*/results.json"), *folder.glob("*/samples.jsonl")] if folder.exists() else []
    if stored and meta.get("imported_from") != str(source):
        raise Conflict(f"{folder} holds other results (not imported from {source}); use --name or another --out")


def import_lmms(results_dir: Path, out: Path, name: str | None = None, strict: bool = False) -> dict[str, dict]:
    """`mmbench import-lmms`: an lmms-eval output folder (results JSON + --log_samples logs) -> run files."""
    results, logs = read_output(results_dir)
    if not results["results"] and not logs:
        raise MmbenchError(f"{results_dir}: no lmms-eval *_results.json or *_samples_*.jsonl found")
    failed = sorted(t for t in logs if t not in results["results"] and task_benchmark(t))
    by_bench: dict[str, list[tuple[str, str | None]]] = {}
    for task in sorted(set(results["results"]) | set(logs)):
        mapped = task_benchmark(task)
        if mapped is None:
            print(f"import-lmms: skipping task {task} (no mmbench benchmark)", file=sys.stderr)
        elif task not in logs:
            print(f"import-lmms: skipping task {task} (no samples log: rerun with --log_samples)", file=sys.stderr)
        elif task not in failed:
            by_bench.setdefault(mapped[0], []).append((task, mapped[1]))
    name = name or Path(results_dir).resolve().name
    _check_import_target(Path(out) / name, Path(results_dir).resolve())
    out_results: dict[str, dict] = {}
    for bench_name, tasks in by_bench.items():
        bench = get_benchmark(bench_name)
        samples = [s for task, split in tasks
                   for s in convert_rows(bench, split, read_log(logs[task]), None, str(logs[task]))]
        config = {"engine": "lmms-eval", "source": str(Path(results_dir).resolve()),
                  **bench.parse_config(requested_parse(strict)),
                  "lmms_eval": {"version": results.get("lmms_eval_version"), "tasks": [t for t, _ in tasks],
                                "metrics": {t: own_metrics(results, t) for t, _ in tasks}}}
        done = finish_benchmark(bench, samples, Path(out) / name / bench.name, config, strict)
        if done is None:
            print(f"import-lmms: {bench.name}: samples written without judge verdicts; score them with "
                  f"`mmbench score {bench.name} {Path(out) / name / bench.name / 'samples.jsonl'} --rejudge`",
                  file=sys.stderr)
        else:
            out_results[bench.name] = done
    atomic_write_json(Path(out) / name / "model.json",
                      {"model": name, "checkpoint": results["config"].get("model_args", ""), "engine": "lmms-eval",
                       "knob": "", "lmms_eval_version": results.get("lmms_eval_version"), "imported_from":
                       str(Path(results_dir).resolve())})
    if failed:
        raise MmbenchError(f"lmms-eval logged samples but no results for {', '.join(failed)}: those tasks "
                           "failed (run files were written for the rest)")
    return out_results
