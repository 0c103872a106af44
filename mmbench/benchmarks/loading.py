"""Reading benchmark rows from the hub, a hub snapshot, a `save_to_disk` folder, or official files.

Every source yields plain dict rows with the benchmark's own field names; image fields come out
as PIL images (hub/parquet/arrow) or as absolute paths (official JSON plus an image folder).
`datasets` is imported only when a hub id, parquet or arrow folder is actually used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from mmbench.errors import MmbenchError, read_text

IMAGE_DIR_NAMES = ("images", "image", "imgs", "val2014", "train_images", "test_images")


def read_json_rows(path: Path) -> list[dict]:
    """A JSON list, `{"data": [...]}`, a dict of id -> row, or JSON Lines."""
    text = read_text(path)
    if path.suffix == ".jsonl":
        return _tag_file(_read_jsonl(path, text), path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # Several official files (POPE's) are JSON Lines under a .json name.
        return _tag_file(_read_jsonl(path, text), path)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if isinstance(data, list):
        _check_objects(data, path)
        return _tag_file(data, path)
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        return _tag_file([{"_key": key, **value} for key, value in data.items()], path)
    raise MmbenchError(f"{path}: expected a list of rows, {{'data': [...]}}, or an id -> row mapping")


def _check_objects(rows: list, path: Path, lines: list[int] | None = None) -> None:
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            where = f"{path}:{lines[index]}" if lines else f"{path} row {index + 1}"
            raise MmbenchError(f"{where}: expected a JSON object, got {type(row).__name__}")


def _tag_file(rows: list[dict], path: Path) -> list[dict]:
    """Remember which file a row came from: POPE's official files name their split."""
    return [dict(row, _file=path.stem) if isinstance(row, dict) else row for row in rows]


def _read_jsonl(path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise MmbenchError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(rows[-1], dict):
                raise MmbenchError(f"{path}:{number}: expected a JSON object, got {type(rows[-1]).__name__}")
    return rows


def find_image(folder: Path, name: str | None) -> Path | None:
    """Resolve an image reference from an official file against the folder and its image dirs."""
    if not name:
        return None
    candidate = Path(name)
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    base = candidate.name if "://" in name else name
    # The parent too: a data root with one folder per benchmark may keep images beside them.
    roots = (folder, *(folder / d for d in IMAGE_DIR_NAMES), folder.parent, folder.parent / "images")
    for root in roots:
        for option in (root / base, root / Path(base).name):
            if option.exists():
                return option
    return None


def _load_hub(hub_id: str, config: str | None, splits: Iterable[str]) -> list[dict]:
    import datasets

    rows: list[dict] = []
    for split in splits:
        try:
            part = datasets.load_dataset(hub_id, config, split=split)
        except MmbenchError:
            raise
        except Exception as exc:  # offline, unknown repo, gated: errors from several libraries
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise MmbenchError(f"cannot load the hub dataset {hub_id} ({type(exc).__name__}: {reason}); offline, "
                               "pass --data world (the embedded world) or --data FOLDER (local files)") from None
        rows.extend(_tag_split(part, split))
    return rows


def _tag_split(dataset, split: str) -> list[dict]:
    return [dict(row, _split=split) for row in dataset]


def _load_arrow(folder: Path, splits: Iterable[str]) -> list[dict]:
    import datasets

    loaded = datasets.load_from_disk(str(folder))
    if isinstance(loaded, datasets.DatasetDict):
        chosen = [s for s in splits if s in loaded] or list(loaded.keys())
        return [row for s in chosen for row in _tag_split(loaded[s], s)]
    return _tag_split(loaded, "")


def _load_parquet(files: list[Path], config: str | None, splits: Iterable[str]) -> list[dict]:
    """A snapshot of a hub dataset repo: `<config>/<split>-*.parquet` or `data/<split>-*.parquet`."""
    import datasets

    if config:
        in_config = [f for f in files if config in f.parts]
        files = in_config or files
    rows: list[dict] = []
    splits = list(splits)
    for split in splits:
        for_split = sorted(f for f in files if f.name.startswith(split) or f.parent.name == split)
        if for_split:
            part = datasets.load_dataset("parquet", data_files=[str(f) for f in for_split], split="train")
            rows.extend(_tag_split(part, split))
    if not rows:  # file names do not say the split: take everything
        part = datasets.load_dataset("parquet", data_files=[str(f) for f in sorted(files)], split="train")
        rows.extend(_tag_split(part, splits[0] if len(splits) == 1 else ""))
    return rows


def load_rows(source: str | Path | None, *, name: str, hub_id: str, config: str | None,
              splits: Iterable[str], read_official=None) -> tuple[list[dict], Path | None]:
    """Rows for one benchmark, plus the folder that relative image paths resolve against.

    `source` is None or "hub" for the hub id, a hub id string, or a local folder.  A folder
    may hold one sub-folder per benchmark (`DIR/pope/...`); otherwise it is used as is."""
    splits = tuple(splits)
    if source is None or str(source) == "hub":
        return _load_hub(hub_id, config, splits), None
    folder = Path(source)
    if not folder.exists():
        if "/" in str(source) and not str(source).startswith((".", "/")):
            return _load_hub(str(source), config, splits), None
        raise MmbenchError(f"data folder not found: {folder}")
    if (folder / name).is_dir():
        folder = folder / name
    if folder.is_file():
        return read_json_rows(folder), folder.parent
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        return _load_arrow(folder, splits), folder
    parquet = sorted(folder.rglob("*.parquet"))
    if parquet:
        return _load_parquet(parquet, config, splits), folder
    if read_official is not None:
        rows = read_official(folder)
        if rows is not None:
            return rows, folder
    files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".jsonl"))
    if not files:
        raise MmbenchError(f"{folder}: no parquet, save_to_disk or JSON/JSONL data for {name}")
    rows = [row for f in files for row in read_json_rows(f)]
    return rows, folder


def row_image(value, folder: Path | None):
    """An image field as the model adapter wants it: a PIL image or an existing file path."""
    if value is None or hasattr(value, "size"):
        return value
    if isinstance(value, dict):
        if value.get("bytes"):
            import io

            from PIL import Image

            return Image.open(io.BytesIO(value["bytes"]))
        value = value.get("path")
    if isinstance(value, (str, Path)):
        found = find_image(folder, str(value)) if folder is not None else (Path(value) if Path(value).exists() else None)
        if found is None:
            raise MmbenchError(f"image not found: {value}" + (f" (looked in {folder})" if folder else ""))
        return found
    raise MmbenchError(f"unsupported image field of type {type(value).__name__}")


def first_field(row: dict, *names: str, default=None):
    """The first of several alternative field names (hub vs official files) present in a row."""
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    return default


def join_images(rows: list[dict], source, benchmark) -> list[dict]:
    """Attach images kept in a separate config (GQA's `testdev_balanced_images`) by id."""
    config, row_key, table_key = benchmark.image_join
    if source is None or str(source) == "hub" or not Path(str(source)).exists():
        hub_id = benchmark.hub_id if source in (None, "hub") else str(source)
        table = _load_hub(hub_id, config, benchmark.hub_splits)
    else:
        folder = Path(source)
        folder = folder / benchmark.name if (folder / benchmark.name).is_dir() else folder
        files = [f for f in folder.rglob("*.parquet") if config in f.parts]
        if not files:
            return rows  # official layout: record_from_row finds images/<imageId>.jpg itself
        table = _load_parquet(files, None, benchmark.hub_splits)
    images = {str(t[table_key]): t.get("image") for t in table}
    return [dict(r, image=images.get(str(r[row_key]))) for r in rows]
