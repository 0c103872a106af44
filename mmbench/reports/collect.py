"""Read run folders into tidy rows: one model per `<dir>/<model>/`, with its knob/value/seed
from `model.json` (written by eval/ablate) and every benchmark's results and samples.

Reports are pure functions of these files; nothing here runs a model or a judge."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mmbench.benchmarks import BENCHMARKS
from mmbench.errors import MmbenchError


@dataclass
class ModelRun:
    model: str
    folder: Path
    knob: str = ""
    value: float | None = None
    seed: int | None = None
    engine: str = "mmbench"
    results: dict[str, dict] = field(default_factory=dict)  # benchmark -> results.json

    @property
    def is_base(self) -> bool:
        return self.knob == "base"

    def samples_path(self, benchmark: str) -> Path:
        return self.folder / benchmark / "samples.jsonl"


def _model_folders(root: Path) -> list[Path]:
    """Folders that hold `<benchmark>/results.json`, anywhere below root (root itself included)."""
    found = set()
    for results in root.rglob("results.json"):
        if results.parent.name in BENCHMARKS:
            found.add(results.parent.parent)
    return sorted(found)


def collect_runs(roots: list[Path]) -> list[ModelRun]:
    runs: dict[str, ModelRun] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise MmbenchError(f"run folder not found: {root}")
        for folder in _model_folders(root):
            meta_path = folder / "model.json"
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            name = meta.get("model", folder.name)
            run = runs.setdefault(name, ModelRun(model=name, folder=folder, knob=meta.get("knob", ""),
                                                 value=meta.get("value"), seed=meta.get("seed"),
                                                 engine=meta.get("engine", "mmbench")))
            for benchmark in BENCHMARKS:
                path = folder / benchmark / "results.json"
                if path.exists():
                    try:
                        run.results[benchmark] = json.loads(path.read_text())
                    except json.JSONDecodeError:
                        raise MmbenchError(f"{path}: not valid JSON") from None
    if not runs:
        raise MmbenchError(f"no results.json found under {', '.join(str(r) for r in roots)}")
    return sorted(runs.values(), key=lambda r: (not r.is_base, r.knob, r.value if r.value is not None else -1,
                                                r.seed if r.seed is not None else -1, r.model))
