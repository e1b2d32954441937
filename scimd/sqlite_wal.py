"""Putting a SQLite database in WAL mode when other processes may be doing the same.

Switching a new database to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY
for it at once, without calling the busy handler, when another connection holds that
lock or is recovering the WAL at that instant. Two ``scimd serve`` workers, or two
processes started together on a new file, would then fail to start. Both the embedded
resource store and the SQLite state store open their files through :func:`enter_wal`.
"""

from __future__ import annotations

import sqlite3
import time

BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
"""Primary result codes of a lock held by another connection (the low byte of extended codes)."""


def enter_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Run ``PRAGMA journal_mode = WAL``, retrying with backoff for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if (exc.sqlite_errorcode & 0xFF) not in BUSY_CODES or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
