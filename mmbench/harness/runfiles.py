"""The run-file contract (DESIGN.md): `<out>/<model>/<benchmark>/results.json` and `samples.jsonl`.

Every write goes to a temporary file in the same folder and is renamed into place, so a killed
process never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable

from mmbench.errors import MmbenchError


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite(value):
    """JSON has no NaN: metrics that are undefined (no scored sample) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def atomic_write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(_finite(data), indent=2, ensure_ascii=False) + "\n")


def write_samples(path: Path, samples: Iterable[dict]) -> None:
    lines = [json.dumps(s, ensure_ascii=False) for s in samples]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_samples(path: Path) -> list[dict]:
    """Parse a samples file; a malformed line is reported with its number."""
    path = Path(path)
    if not path.exists():
        raise MmbenchError(f"samples file not found: {path}")
    samples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MmbenchError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(sample, dict):
                raise MmbenchError(f"{path}:{number}: expected a JSON object")
            sample["_line"] = number
            samples.append(sample)
    return samples


def run_dir(out: Path, model_name: str, benchmark: str) -> Path:
    return Path(out) / model_name / benchmark
