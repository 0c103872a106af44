"""Preference data: POVID-style JSONL rows {"id", "image", "prompt", "chosen", "rejected"} and
prompt-only rows {"id", "image", "prompt"} for online sampling.  Image paths are absolute or relative to the
JSONL file's folder (or its parent).

`load_preference_source` reads every supported source (RLAIF-V, RLHF-V, POVID, VLFeedback, TRL's
vision format, this JSONL) from a hub id, a hub snapshot, a `save_to_disk` folder or the files;
see mmbench/trainers/sources/."""

from __future__ import annotations

import json
from pathlib import Path

from mmbench.errors import MmbenchError, iter_lines
from mmbench.trainers.sources.base import PreferenceExample


def _resolve_image(path: Path, image: str) -> Path | None:
    """Absolute, or relative to the JSONL file's folder or the folder above it (a data root
    that keeps `prefs/train.jsonl` beside `images/`)."""
    candidate = Path(image)
    options = [candidate] if candidate.is_absolute() else [path.parent / candidate, path.parent.parent / candidate]
    return next((o for o in options if o.is_file()), None)


def load_preferences(path: Path, *, need_chosen: bool = True, need_rejected: bool = True,
                     limit: int | None = None) -> list[PreferenceExample]:
    """Read and check a preference file; a bad row is named by file and line number."""
    path = Path(path)
    if not path.is_file():
        raise MmbenchError(f"preference file not found: {path}")
    required = ["id", "prompt", "image", *(["chosen"] if need_chosen else []),
                *(["rejected"] if need_rejected else [])]
    examples, seen = [], set()
    for number, line in iter_lines(path):  # decoded line by line: a bad byte is named with its line
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MmbenchError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise MmbenchError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in required if not isinstance(row.get(k), str) or not row.get(k)]
        if missing:
            raise MmbenchError(f"{where}: preference row lacks {', '.join(missing)}")
        image = _resolve_image(path, row["image"])
        if image is None:
            raise MmbenchError(f"{where}: image not found: {row['image']}")
        if row["id"] in seen:
            raise MmbenchError(f"{where}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        examples.append(PreferenceExample(id=str(row["id"]), prompt=row["prompt"], image=image,
                                          chosen=row.get("chosen"), rejected=row.get("rejected")))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise MmbenchError(f"{path}: no preference rows")
    return examples


def load_preference_source(source: str | Path, *, need_chosen: bool = True, need_rejected: bool = True,
                           limit: int | None = None, data_format: str | None = None,
                           image_root: str | Path | None = None, subset: int | None = None, subset_seed: int = 0,
                           skip_bad_rows: bool = False, pairs: str = "best", image_cache: str | Path | None = None,
                           subset_ids: str | Path | None = None, quiet: bool = False) -> list[PreferenceExample]:
    """Examples from any supported preference source (format detected from its columns unless
    `data_format` names it).  Only the rows used have their images read; embedded images are
    written once to `image_cache`, keyed by content hash.  With `subset`, a seeded random subset
    (identical on every run and process) whose ids go to `subset_ids` when given."""
    from mmbench.trainers.sources import load_source, report, write_subset_ids

    result = load_source(source, data_format=data_format, image_root=image_root, need_chosen=need_chosen,
                         need_rejected=need_rejected, limit=limit, subset=subset, subset_seed=subset_seed,
                         skip_bad_rows=skip_bad_rows, pairs=pairs, image_cache=image_cache)
    if subset is not None and subset_ids is not None:
        write_subset_ids(Path(subset_ids), result, str(source))
    if not quiet:
        report(result)
    return result.examples
