"""Disk cache of raw judge answers: SQLite in WAL mode, one row per request, keyed by a hash of
everything that shapes the answer.

Each answer is committed the moment it arrives, so a crashed run keeps every verdict it paid
for, and several threads or processes may share one file (WAL lets readers and one writer work
at once; `busy_timeout` makes a second writer wait instead of failing).  Only the request hash,
the model id and the answer are stored, never credentials.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mmbench.harness.judging import JudgeRequest
from mmbench.harness.sqlite_files import enable_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    benchmark TEXT,
    sample_id TEXT,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CachedAnswer:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def default_cache_path() -> Path:
    """`judge_cache.sqlite` in mmbench's cache folder ($MMBENCH_CACHE, else $XDG_CACHE_HOME/mmbench,
    else ~/.cache/mmbench), resolved when a judge is built, so that reruns from any output folder
    share what was already paid for."""
    folder = os.environ.get("MMBENCH_CACHE")
    if not folder:
        folder = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmbench")
    return Path(folder) / "judge_cache.sqlite"


def request_key(model: str, request: JudgeRequest, temperature: float, attempt: int) -> str:
    """Hash of the full request as sent.  `attempt` (the parse-retry index) is part of the key
    because retries above the temperature cap repeat a temperature: every try of a retry
    sequence gets its own row, so a rerun replays the same sequence without any call."""
    payload = {
        "model": model,
        "messages": request.messages,
        "image_sha256": hashlib.sha256(request.image).hexdigest() if request.image is not None else None,
        "image_mime": request.image_mime if request.image is not None else None,
        "temperature": round(float(temperature), 6),
        "max_tokens": request.max_tokens,
        "run": request.run,
        "prompt_version": str(request.prompt_version),
        "attempt": attempt,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _setup(conn: sqlite3.Connection, patience_s: float = 30.0) -> None:
    """WAL mode (retried while another process opens the file) and the table."""
    enable_wal(conn, patience_s)
    conn.execute("PRAGMA synchronous=NORMAL")  # survives a process crash; fsync at checkpoints
    conn.execute(_SCHEMA)


class JudgeCache:
    """Thread-safe (one connection per thread) and process-safe (SQLite locking) answer store."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connect()  # create the file and table now, so errors surface before any call

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: autocommit, every put is durable on its own
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            _setup(conn)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def get(self, key: str) -> CachedAnswer | None:
        row = self._connect().execute(
            "SELECT text, prompt_tokens, completion_tokens FROM verdicts WHERE key = ?", (key,)).fetchone()
        return CachedAnswer(row[0], row[1], row[2]) if row else None

    def put(self, key: str, model: str, answer: CachedAnswer, benchmark: str = "",
            sample_id: str = "") -> None:
        self._connect().execute(
            "INSERT OR REPLACE INTO verdicts (key, model, benchmark, sample_id, text, prompt_tokens, "
            "completion_tokens, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, model, benchmark, sample_id, answer.text, answer.prompt_tokens, answer.completion_tokens,
             time.time()))

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
