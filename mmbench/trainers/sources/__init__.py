"""Preference sources behind one loader: RLAIF-V, RLHF-V, POVID, VLFeedback, TRL's vision format and
mmbench's JSONL, each from a hub id, a hub snapshot folder, a `save_to_disk` folder or the files.

Reading is lazy: a first pass reads the text of every row (image bytes are never read), checks it
and builds candidates; the subset (or `limit`) is then taken, and only the images of the rows
used are read and written, once, to a cache folder keyed by their content hash.  The format is
detected from the columns; `data_format` overrides.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mmbench.errors import MmbenchError
from mmbench.trainers.sources import mmbench_jsonl, povid, rlaif_v, rlhf_v, trl, vlfeedback
from mmbench.trainers.sources.base import BadRow, Candidate, ParseOptions, PreferenceExample, SourceFormat
from mmbench.trainers.sources.tables import ArrowTable, JsonTable, ParquetTable, Table

# Detection order matters: the first format whose columns match wins.
FORMATS: dict[str, SourceFormat] = {
    f.name: f for f in (vlfeedback.FORMAT, trl.FORMAT, povid.FORMAT, rlaif_v.FORMAT, rlhf_v.FORMAT,
                        mmbench_jsonl.FORMAT)
}
NAMES: tuple[str, ...] = tuple(FORMATS)
PAIR_RULES = ("best", "all")
IMAGE_DIRS = ("images", "image", "imgs", "merged_images", "train2014", "val2014")


def get_format(name: str) -> SourceFormat:
    if name in FORMATS:
        return FORMATS[name]
    close = difflib.get_close_matches(name, NAMES, n=1, cutoff=0.5)
    hint = f" — did you mean {close[0]!r}?" if close else ""
    raise MmbenchError(f"unknown data format {name!r}{hint} (supported: {', '.join(NAMES)})")


def detect_format(columns: Iterable[str], label: str, data_format: str | None = None) -> SourceFormat:
    cols = set(columns)
    if data_format:
        fmt = get_format(data_format)
        if not fmt.detect(cols):
            raise MmbenchError(f"{label}: --data-format {fmt.name} expects columns {', '.join(fmt.columns)}; "
                               f"found {', '.join(sorted(cols)) or 'none'}")
        return fmt
    for fmt in FORMATS.values():
        if fmt.detect(cols):
            return fmt
    raise MmbenchError(f"{label}: cannot tell the preference format from its columns "
                       f"({', '.join(sorted(cols)) or 'none'}); supported: {', '.join(NAMES)} "
                       "(pass --data-format NAME)")


# ---- opening a source -----------------------------------------------------------------------
@dataclass
class OpenedSource:
    table: Table
    format: SourceFormat
    label: str
    notes: list[str] = field(default_factory=list)


def _looks_like_hub_id(text: str) -> bool:
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).suffix


def _hub(hub_id: str):
    import datasets

    try:
        return datasets.load_dataset(hub_id, split="train")
    except Exception as exc:  # noqa: BLE001 — network, missing repo, scripts: many error types
        raise MmbenchError(f"could not load {hub_id} from the hub: {str(exc).splitlines()[0] if str(exc) else exc!r}") \
            from None


def _from_disk(folder: Path):
    import datasets

    loaded = datasets.load_from_disk(str(folder))
    if isinstance(loaded, datasets.DatasetDict):
        split = "train" if "train" in loaded else next(iter(loaded))
        return loaded[split], split
    return loaded, None


def _train_files(files: list[Path]) -> list[Path]:
    """A snapshot's train split when the file names say so (`data/train-0000x-of-...`), else all."""
    train = [f for f in files if f.name.startswith("train") or f.parent.name == "train"]
    return sorted(train or files)


def _visible(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.rglob(pattern)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _first_json_row(path: Path):
    table = JsonTable([path], str(path))
    for _, row in table.text_rows():
        return table, row
    return table, None


def open_source(source: str | Path, data_format: str | None = None) -> OpenedSource:
    text = str(source)
    path = Path(text).expanduser()
    if not path.exists():
        if _looks_like_hub_id(text):
            fmt_name = data_format or next((f.name for f in FORMATS.values() if text in f.hub_ids), None)
            table = ArrowTable(_hub(text), text)
            return OpenedSource(table, detect_format(table.columns, text, fmt_name), text)
        raise MmbenchError(f"preference data not found: {source} (a file, a folder or a hub id such as "
                           "openbmb/RLAIF-V-Dataset)")
    if path.is_file():
        if path.suffix == ".parquet":
            table = ParquetTable([path], str(path))
        elif path.suffix in (".json", ".jsonl"):
            table = JsonTable([path], str(path))
        else:
            raise MmbenchError(f"{path}: unsupported file type (expected .parquet, .json or .jsonl)")
        if len(table) == 0:
            raise MmbenchError(f"{path}: no preference rows")
        return OpenedSource(table, detect_format(table.columns, str(path), data_format), str(path))
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        dataset, split = _from_disk(path)
        label = f"{path}" + (f" [{split}]" if split else "")
        table = ArrowTable(dataset, label, folder=path)
        return OpenedSource(table, detect_format(table.columns, label, data_format), label)
    parquet = _visible(path, "*.parquet")
    if parquet:
        table = ParquetTable(_train_files(parquet), str(path))
        return OpenedSource(table, detect_format(table.columns, str(path), data_format), str(path))
    files = [p for p in _visible(path, "*.json*") if p.suffix in (".json", ".jsonl")]
    if not files:
        raise MmbenchError(f"{path}: no parquet, save_to_disk, JSON or JSONL preference data")
    chosen_fmt, keep, notes, first_cols = None, [], [], None
    for file in files:
        _, row = _first_json_row(file)
        cols = set(row) if isinstance(row, dict) else set()
        first_cols = first_cols if first_cols is not None else cols
        try:
            fmt = detect_format(cols, str(file), data_format or (chosen_fmt.name if chosen_fmt else None))
        except MmbenchError:
            notes.append(f"ignored {file.name} (not {chosen_fmt.name if chosen_fmt else 'a preference file'})")
            continue
        chosen_fmt = chosen_fmt or fmt
        keep.append(file)
    if not keep:
        detect_format(first_cols or set(), str(path), data_format)  # raises the one-line error
    table = JsonTable(keep, str(path))
    return OpenedSource(table, chosen_fmt, str(path), notes)


# ---- images ---------------------------------------------------------------------------------
def default_image_cache() -> Path:
    root = Path(os.environ.get("MMBENCH_CACHE") or Path.home() / ".cache" / "mmbench")
    return root / "pref-images"


def _suffix(data: bytes) -> str:
    for magic, suffix in ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp")):
        if data.startswith(magic):
            return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".img"


def write_image(data: bytes, cache: Path) -> Path:
    """Image bytes as a file named by their content hash (written once; safe under several processes)."""
    from PIL import Image, UnidentifiedImageError

    target = cache / f"{hashlib.sha256(data).hexdigest()[:24]}{_suffix(data)}"
    if target.exists():
        return target
    try:
        Image.open(io.BytesIO(data))  # the header only: catches bytes that are no image at all
    except (UnidentifiedImageError, OSError):
        raise BadRow("image bytes are not a readable image") from None
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def _find_path(name: str, roots: list[Path]) -> Path | None:
    candidate = Path(name).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for root in roots:
        for option in (root / candidate, root / candidate.name):
            if option.is_file():
                return option
    return None


def _roots(image_root: Path | None, folder: Path | None) -> list[Path]:
    roots = [image_root] if image_root is not None else []
    if folder is not None:
        roots += [folder, folder.parent, *(folder / d for d in IMAGE_DIRS)]
    return roots


def resolve_image(value, roots: list[Path], cache: Path) -> Path:
    if isinstance(value, dict):
        if value.get("bytes"):
            return write_image(value["bytes"], cache)
        value = value.get("path")
    if isinstance(value, str) and value:
        found = _find_path(value, roots)
        if found is None:
            if Path(value).expanduser().is_absolute():
                raise BadRow(f"image not found: {value}")
            looked = ", ".join(str(r) for r in roots[:2]) or "nowhere: pass --image-root"
            raise BadRow(f"image not found: {value} (looked in {looked})")
        return found
    raise BadRow("no image")


# ---- loading --------------------------------------------------------------------------------
@dataclass
class LoadResult:
    examples: list[PreferenceExample]
    format: str
    label: str
    rows: int  # rows in the source
    usable: int  # candidates that passed the text checks (before subset / limit)
    skipped: int = 0
    dropped_ties: int = 0
    notes: list[str] = field(default_factory=list)
    subset: int | None = None
    subset_seed: int | None = None
    candidates: list[Candidate] = field(default_factory=list, repr=False)  # every usable one (text only)


def _fail_or_skip(bad: list[str], skip: bool) -> None:
    if bad and not skip:
        more = f" ({len(bad)} bad rows in all; --skip-bad-rows drops them)" if len(bad) > 1 else \
            " (--skip-bad-rows drops bad rows)"
        raise MmbenchError(bad[0] + more)


def load_source(source: str | Path, *, data_format: str | None = None, image_root: str | Path | None = None,
                need_chosen: bool = True, need_rejected: bool = True, limit: int | None = None,
                subset: int | None = None, subset_seed: int = 0, skip_bad_rows: bool = False,
                pairs: str = "best", image_cache: str | Path | None = None, scan_all: bool = False) -> LoadResult:
    """Check every row's text, take the subset (or the first `limit`), then read and resolve the
    images of the examples used only.  `scan_all` reads every row's text even with a `limit`."""
    if pairs not in PAIR_RULES:
        raise MmbenchError(f"--pairs must be one of {', '.join(PAIR_RULES)}, got {pairs!r}")
    root = Path(image_root).expanduser() if image_root else None
    if root is not None and not root.is_dir():
        raise MmbenchError(f"--image-root is not a folder: {root}")
    opened = open_source(source, data_format)
    table, fmt = opened.table, opened.format
    options = ParseOptions(need_chosen=need_chosen, need_rejected=need_rejected, pairs=pairs, seed=subset_seed)
    candidates: list[Candidate] = []
    bad: list[str] = []
    ties = 0
    seen: dict[str, int] = {}
    for index, row in table.text_rows():
        try:
            if not isinstance(row, dict):
                raise BadRow("not a JSON object")
            found = fmt.parse(row, index, options)
        except BadRow as exc:
            bad.append(f"{table.where(index)}: {exc}")
            continue
        if not found:
            ties += 1
        for cand in found:
            if cand.id in seen:
                if fmt.name == "mmbench":
                    bad.append(f"{table.where(index)}: duplicate id {cand.id!r}")
                    continue
                cand.id = f"{cand.id}@{index}"
            seen[cand.id] = index
            candidates.append(cand)
        if limit is not None and subset is None and not scan_all and len(candidates) >= limit:
            break  # like the JSONL reader: the first `limit` rows are enough
    _fail_or_skip(bad, skip_bad_rows)
    usable = len(candidates)
    if subset is not None and subset > usable:
        raise MmbenchError(f"{opened.label}: --subset {subset} asks for more than the {usable} usable examples")
    order = list(range(usable))
    if subset is not None:
        random.Random(subset_seed).shuffle(order)
    target = min(x for x in (subset, limit, usable) if x is not None)
    cache = Path(image_cache) if image_cache else default_image_cache()
    picked: list[tuple[int, Path]] = []
    position = 0
    while len(picked) < target and position < len(order):
        chunk = order[position:position + max(target - len(picked), 16)]
        position += len(chunk)
        fetched: dict[str, dict[int, object]] = {}
        for column in {candidates[k].image_column for k in chunk} & table.embedded:
            fetched[column] = table.fetch(sorted({candidates[k].index for k in chunk
                                                  if candidates[k].image_column == column}), column)
        for k in chunk:
            if len(picked) >= target:
                break
            cand = candidates[k]
            value = cand.image
            if cand.image_column in fetched:
                value = fetched[cand.image_column].get(cand.index, value)
                if cand.image_pos is not None and isinstance(value, list):
                    value = value[cand.image_pos] if len(value) > cand.image_pos else None
            try:
                picked.append((k, resolve_image(value, _roots(root, table.folder(cand.index)), cache)))
            except BadRow as exc:
                bad.append(f"{table.where(cand.index)}: {exc}")
                if not skip_bad_rows:
                    raise MmbenchError(bad[-1]) from None
    if subset is not None:
        picked.sort()
        if len(picked) < subset:
            raise MmbenchError(f"{opened.label}: only {len(picked)} usable examples with images for --subset {subset}")
    if limit is not None:
        picked = picked[:limit]
    examples = [PreferenceExample(id=candidates[k].id, prompt=candidates[k].prompt, image=image,
                                  chosen=candidates[k].chosen,
                                  rejected=candidates[k].rejected) for k, image in picked]
    if not examples:
        raise MmbenchError(f"{opened.label}: no preference rows" + (f" (first bad row: {bad[0]})" if bad else ""))
    notes = list(opened.notes)
    if bad:
        notes.append(f"skipped {len(bad)} bad rows (first: {bad[0]})")
    if ties:
        notes.append(f"dropped {ties} rows that give no pair (all rated completions tie)")
    return LoadResult(examples=examples, format=fmt.name, label=opened.label, rows=len(table), usable=usable,
                      skipped=len(bad), dropped_ties=ties, notes=notes, subset=subset,
                      subset_seed=subset_seed if subset is not None else None, candidates=candidates)


def write_subset_ids(path: Path, result: LoadResult, source: str) -> Path:
    """The ids of a subset, beside the checkpoint, so that the study's subset can be audited."""
    payload = {"source": source, "format": result.format, "subset": result.subset, "subset_seed": result.subset_seed,
               "usable": result.usable, "ids": [e.id for e in result.examples]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)
    return path


def report(result: LoadResult) -> None:
    line = f"data: {result.label} ({result.format}, {result.rows} rows, {len(result.examples)} examples"
    if result.subset is not None:
        line += f", subset {result.subset} seed {result.subset_seed}"
    print(line + ")", file=sys.stderr)
    for note in result.notes:
        print(f"data: {note}", file=sys.stderr)


__all__ = ["FORMATS", "NAMES", "PAIR_RULES", "LoadResult", "OpenedSource", "default_image_cache", "detect_format",
           "get_format", "load_source", "open_source", "report", "write_subset_ids"]
