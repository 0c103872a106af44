"""SQLite files shared by several processes (the judge cache, the reference log-prob cache)."""

from __future__ import annotations

import sqlite3
import time


def enable_wal(conn: sqlite3.Connection, patience_s: float = 30.0) -> None:
    """Switch `conn`'s file to WAL.  While another process creates or opens the same file the switch
    reports "database is locked" at once, without waiting for the busy timeout (measured: 1 of 3
    simultaneous two-process opens), so it is retried by hand for up to `patience_s`."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
