"""Provenance keys: what produced an artefact, so that a rerun reuses it only when all of it is
identical.  One place computes every key; eval, training, ablations and reports compare them.

- checkpoint fingerprint: the content of a model folder (config, weights, tokenizer/processor
  files and chat template — everything that decides what the model answers).  File hashes are
  cached by (path, size, mtime) so a 15 GB checkpoint is hashed once, not on every run;
- input key: one prompt + image (image bytes hashed) — benchmark records and preference rows;
- generation / scoring / training keys: plain dicts, compared field by field so that a refusal
  can say what differs.

Content-addressed caches (reference log-probs, offline BDHS negatives, judge verdicts) put the key
in the cache key itself: they never mismatch, they miss.  Run folders and checkpoints are keyed
by name, so they carry the key in a file and a mismatch stops the command (or, with
`--overwrite`, recomputes).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable

from mmbench.errors import MmbenchError, read_json_object

SCORER_VERSION = 1  # bump when shared scoring code (harness/scoring.py, textnorm) changes results

# Files of a model folder that mmbench itself writes next to the weights; they do not change
# what the model answers, so they stay out of its fingerprint.
_NOT_MODEL = {"train_config.json", "metrics.json", "provenance.json", "subset_ids.json", "log.jsonl"}
_MODEL_SUFFIXES = (".safetensors", ".json", ".jinja", ".model", ".txt", ".tiktoken", ".bin")


def sha(*parts: Any) -> str:
    """Short stable hash of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def mmbench_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmbench")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- file hashes (cached)

def _cache_path() -> Path:
    root = Path(os.environ.get("MMBENCH_CACHE") or Path.home() / ".cache" / "mmbench")
    return root / "file-hashes.sqlite"


_memo: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) in memory and on disk."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise MmbenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _memo:
        return _memo[key]
    db = None
    try:
        _cache_path().parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(_cache_path()), timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS h (path TEXT, size INT, mtime INT, sha TEXT, "
                   "PRIMARY KEY (path, size, mtime))")
        row = db.execute("SELECT sha FROM h WHERE path=? AND size=? AND mtime=?", key).fetchone()
        if row:
            _memo[key] = row[0]
            return row[0]
    except sqlite3.Error:
        db = None  # a read-only or locked cache only costs time
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    _memo[key] = value
    if db is not None and stat.st_size >= 1 << 20:  # small files are cheaper to hash than to look up
        try:
            db.execute("INSERT OR REPLACE INTO h VALUES (?, ?, ?, ?)", (*key, value))
            db.commit()
        except sqlite3.Error:
            pass
    if db is not None:
        db.close()
    return value


# ---------------------------------------------------------------- checkpoints

def checkpoint_fingerprint(spec: str | Path) -> str:
    """Content hash of a local model folder; a hub id is named by id (and revision, if given)."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return f"hub:{spec}"
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and p.name not in _NOT_MODEL and p.name.endswith(_MODEL_SUFFIXES))
    if not files:
        raise MmbenchError(f"{spec}: no model files to fingerprint")
    return sha([(p.name, file_sha256(p)) for p in files])


# ---------------------------------------------------------------- inputs

def image_sha(image: Any) -> str:
    """Hash of an image's content: file bytes for a path, decoded pixels for a PIL image."""
    if image is None:
        return ""
    if hasattr(image, "tobytes"):
        digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()[:32]
    if isinstance(image, (bytes, bytearray)):
        return hashlib.sha256(bytes(image)).hexdigest()[:32]
    return file_sha256(Path(image))[:32]


def input_key(prompt: str, image: Any) -> str:
    """What a model sees for one request, before the chat template (which is in the checkpoint)."""
    return sha(prompt, image_sha(image))


def input_keys(requests: Iterable[tuple[str, Any]]) -> list[str]:
    """`input_key` of many (prompt, image) pairs, each image file looked up once (world POPE:
    2,964 records on 200 image files; the lookup resolves and stats the path)."""
    files: dict = {}

    def image_digest(image) -> str:
        if not isinstance(image, (str, os.PathLike)):
            return image_sha(image)
        if image not in files:
            files[image] = image_sha(image)
        return files[image]

    return [sha(prompt, image_digest(image)) for prompt, image in requests]


def combine(keys: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode() + b"\n")
    return digest.hexdigest()[:32]


# ---------------------------------------------------------------- comparing

def differences(old: dict | None, new: dict, prefix: str = "") -> list[str]:
    """Human-readable 'field old → new' for every leaf that differs."""
    old = old or {}
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key} {_short(a)} → {_short(b)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:10] + "…" + text[-6:]


def describe(diffs: list[str], limit: int = 3) -> str:
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


def read_json(path: Path) -> dict | None:
    """A provenance file, or None when absent; an unreadable one is a one-line error."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read_json_object(path)
    except MmbenchError as exc:
        raise MmbenchError(f"unreadable provenance: {exc}; use --overwrite") from None


class Conflict(MmbenchError):
    """A stored artefact was produced by something else than what is asked for now."""


# ---------------------------------------------------------------- training

# Where things are, not what they are: a moved checkpoint, data folder or cache trains the same
# model.  The data's content is in the key through its own fingerprint.
_ADDED_FIELDS = {"share_prefix": False}  # options added after runs were keyed without them
_LOCATION_FIELDS = {"out", "cache_dir", "suite", "base", "data", "prompts", "image_root", "save_every", "overwrite"}


def training_key(config: dict, base_fingerprint: str, data_fingerprint: str) -> dict:
    """What a trained checkpoint depends on: resolved options, base content, data content."""
    from mmbench.harness.judge_client import public_url

    options = {k: v for k, v in config.items() if k not in _LOCATION_FIELDS}
    for name, default in _ADDED_FIELDS.items():  # at their default: the key of runs from before they existed
        if options.get(name, default) == default:
            options.pop(name, None)
    if options.get("annotator_base_url"):
        options["annotator_base_url"] = public_url(options["annotator_base_url"])
    return {"config": options, "base": base_fingerprint, "data": data_fingerprint}
