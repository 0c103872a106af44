"""The run-file contract: `<out>/<model>/<benchmark>/results.json` and `samples.jsonl`
(docs/architecture.md, "Run files").

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

from mmbench.errors import MmbenchError, iter_lines, os_error_message


def _umask_mode() -> int:
    """The mode a plain `open(path, "w")` would give: 0666 less the umask (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_writable(folder: Path, option: str = "--out") -> Path:
    """Refuse an output folder that is a file, or below a file, or in a folder this user cannot
    write — before any work is done.  Nothing is created."""
    folder = Path(folder).expanduser()
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == folder else f"is below a file ({probe})"
        raise MmbenchError(f"{option} {folder} {what}; give a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise MmbenchError(f"{option} {folder}: {probe} is not writable")
    return folder


def sweep_stale_tmp(folder: Path) -> int:
    """Remove `.<name>.*.tmp` files a killed writer left in a run folder (and its benchmark
    folders); returns how many.  Call it at the start of a run, before anything is written."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for pattern in (".*.tmp", "*/.*.tmp"):
        for path in folder.glob(pattern):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except (FileExistsError, NotADirectoryError) as exc:
        raise MmbenchError(f"cannot write {path}: {os_error_message(exc)} (a file is in the way)") from None
    except OSError as exc:
        raise MmbenchError(f"cannot write {os_error_message(exc, path)}") from None
    try:
        os.fchmod(fd, _umask_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # disk full, quota, a folder where the file should go
        Path(tmp).unlink(missing_ok=True)
        raise MmbenchError(f"cannot write {path}: {os_error_message(exc)}") from None
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


def sample_line(sample: dict) -> str:
    """One samples.jsonl line (with its newline)."""
    return json.dumps(sample, ensure_ascii=False) + "\n"


def write_samples(path: Path, samples: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(sample_line(s) for s in samples))


def read_samples(path: Path) -> list[dict]:
    """Parse a samples file; a malformed line is reported with its number."""
    path = Path(path)
    if not path.exists():
        raise MmbenchError(f"samples file not found: {path}")
    samples = []
    for number, line in iter_lines(path):  # decoded line by line: a bad byte is named with its line
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
