"""Read run folders into tidy rows: one model per `<dir>/<model>/`, with its knob/value/seed
from `model.json` (written by eval/ablate) and every benchmark's results and samples.

Reports are pure functions of these files; nothing here runs a model or a judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmbench.benchmarks import IDS, benchmark_names, get_benchmark
from mmbench.errors import MmbenchError, read_json_object


@dataclass
class ModelRun:
    model: str
    folder: Path
    knob: str = ""
    value: float | None = None
    seed: int | None = None
    engine: str = "mmbench"
    results: dict[str, dict] = field(default_factory=dict)  # benchmark -> results.json
    folders: dict[str, Path] = field(default_factory=dict)  # benchmark -> model folder holding it
    # benchmark -> sample id -> score; run files do not change while a report is made
    _scores: dict[str, dict[str, dict]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def is_base(self) -> bool:
        return self.knob == "base"

    def headline(self, benchmark: str) -> float | None:
        results = self.results.get(benchmark)
        if not results:
            return None
        value = results["metrics"].get(results["headline"])
        return None if value is None else float(value)

    def samples_path(self, benchmark: str) -> Path:
        return self.folders.get(benchmark, self.folder) / benchmark / "samples.jsonl"

    def parse(self, benchmark: str) -> str | None:
        """The parse the stored results asked for: `mmbench score` and imports record it in
        config, `mmbench eval` in config.fingerprint."""
        config = self.results.get(benchmark, {}).get("config") or {}
        return config.get("parse") or (config.get("fingerprint") or {}).get("parse")

    def sample_scores(self, benchmark: str) -> dict[str, dict]:
        """id -> per-sample score from samples.jsonl and its stored judge outputs, scored as the
        results were (`Benchmark.score_sample`, the eval runner's path); failures dropped, empty
        when the samples file is absent."""
        if benchmark not in self._scores:
            from mmbench.harness.runfiles import read_samples

            path = self.samples_path(benchmark)
            bench, parse = get_benchmark(benchmark), self.parse(benchmark)
            samples = read_samples(path) if path.exists() else []
            scored = ((s["id"], bench.score_sample(s, parse)) for s in samples)
            self._scores[benchmark] = {i: score for i, score in scored if not score.get("failed")}
        return self._scores[benchmark]


def benchmark_columns(runs: list[ModelRun]) -> list[str]:
    """Leaderboard columns: the eight built-ins (the CSV contract), then any other installed
    benchmark (a plug-in) the runs hold results for."""
    held = {b for run in runs for b in run.results}
    return [*IDS, *(b for b in benchmark_names() if b in held and b not in IDS)]


def _model_folders(root: Path, names: set[str]) -> list[Path]:
    """Folders that hold `<benchmark>/results.json`, anywhere below root (root itself included)."""
    found = set()
    for results in root.rglob("results.json"):
        if results.parent.name in names:
            found.add(results.parent.parent)
    return sorted(found)


def collect_runs(roots: list[Path]) -> list[ModelRun]:
    """Every model folder under `roots`; folders that share a run name are merged only when they
    hold the same checkpoint's answers (model.json's fingerprint) and no benchmark twice."""
    names = benchmark_names()  # built-ins and installed plug-ins (entry points are read once)
    runs: dict[str, ModelRun] = {}
    fingerprints: dict[str, tuple[str | None, Path]] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise MmbenchError(f"run folder not found: {root}")
        for folder in _model_folders(root, set(names)):
            meta_path = folder / "model.json"
            meta = read_json_object(meta_path) if meta_path.exists() else {}
            name = str(meta.get("model", folder.name))
            fingerprint = meta.get("checkpoint_fingerprint")
            if name in fingerprints and fingerprints[name][1] != folder:
                other, where = fingerprints[name]
                if other != fingerprint or fingerprint is None:
                    raise MmbenchError(f"two runs are named {name!r} but come from different (or unrecorded) "
                                       f"checkpoints: {where} and {folder}; rerun one with --name")
            fingerprints.setdefault(name, (fingerprint, folder))
            run = runs.setdefault(name, ModelRun(model=name, folder=folder, knob=meta.get("knob", ""),
                                                 value=meta.get("value"), seed=meta.get("seed"),
                                                 engine=meta.get("engine", "mmbench")))
            for benchmark in names:
                path = folder / benchmark / "results.json"
                if path.exists():
                    results = read_json_object(path)
                    if not isinstance(results.get("metrics", {}), dict):
                        raise MmbenchError(f"{path}: 'metrics' must be an object")
                    if benchmark in run.results and run.folders[benchmark] != folder:
                        raise MmbenchError(f"{name!r} has {benchmark} results in two folders "
                                           f"({run.folders[benchmark]} and {folder}); report one of them")
                    run.results[benchmark], run.folders[benchmark] = results, folder
    if not runs:
        raise MmbenchError(f"no results.json found under {', '.join(str(r) for r in roots)}")
    return sorted(runs.values(), key=lambda r: (not r.is_base, r.knob, r.value if r.value is not None else -1,
                                                r.seed if r.seed is not None else -1, r.model))


def seed_values(runs: list[ModelRun], benchmark: str) -> list[float]:
    """The headline of each run behind an aggregated grid point (one value per seed)."""
    return [v for v in (r.headline(benchmark) for r in runs) if v is not None]
