"""On-disk cache of reference-model log-probs for offline completions.

Key: (the example's input key — prompt and image bytes, harness/provenance.py —, hash of the
completion token ids, reference-model fingerprint): content, never names, so a changed data
file or base misses instead of reusing another run's numbers.  The reference is the same model
for every point of a γ or p grid, so every point reuses the numbers the first one computed."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

from mmbench.harness.sqlite_files import enable_wal


def ids_hash(ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:32]


def example_key(example) -> str:
    """What the reference model sees of an example besides the completion (cached per object)."""
    from mmbench.harness.provenance import input_key

    memo = _keys.get(id(example))
    if memo is None or memo[0] is not example:
        memo = (example, input_key(example.prompt, example.image))
        _keys[id(example)] = memo
    return memo[1]


_keys: dict[int, tuple] = {}


class RefLogpCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        enable_wal(self._db, patience_s=60)  # every process of a multi-process run opens it at once
        self._db.execute("CREATE TABLE IF NOT EXISTS ref (example TEXT, ids TEXT, model TEXT, logp REAL, "
                         "PRIMARY KEY (example, ids, model))")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get_many(self, model: str, keys: Sequence[tuple[str, Sequence[int]]]) -> list[float | None]:
        out = []
        with self._lock:
            for example, ids in keys:
                row = self._db.execute("SELECT logp FROM ref WHERE example=? AND ids=? AND model=?",
                                       (example, ids_hash(ids), model)).fetchone()
                out.append(None if row is None else row[0])
        self.hits += sum(v is not None for v in out)
        self.misses += sum(v is None for v in out)
        return out

    def put_many(self, model: str, items: Sequence[tuple[str, Sequence[int], float]]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO ref VALUES (?, ?, ?, ?)",
                                 [(e, ids_hash(i), model, float(v)) for e, i, v in items])
            self._db.commit()

    def close(self) -> None:
        self._db.close()
