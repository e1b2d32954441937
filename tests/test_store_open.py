"""Opening the embedded store while other processes open the same new database.

Switching a new database to WAL takes an exclusive lock, and SQLite reports
SQLITE_BUSY for it at once (without calling the busy handler) when another process is
switching or recovering at that instant; two ``scimd serve`` workers or two processes
starting together on a new file hit it. The store retries within its busy timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from scimd.sqlite_wal import enter_wal

ROOT = Path(__file__).resolve().parent.parent


class _FlakyConn:
    """Stands in for a connection whose WAL switch fails ``busy`` times first."""

    def __init__(self, busy: int, code: int = sqlite3.SQLITE_BUSY) -> None:
        self.busy = busy
        self.code = code
        self.calls = 0

    def execute(self, sql: str, *args: Any) -> None:
        assert sql == "PRAGMA journal_mode = WAL"
        self.calls += 1
        if self.calls <= self.busy:
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = self.code
            raise exc


# 261 is SQLITE_BUSY_RECOVERY: another connection is recovering the WAL
@pytest.mark.parametrize("code", [sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, 261])
def test_busy_wal_switch_is_retried(code: int) -> None:
    conn = _FlakyConn(busy=3, code=code)
    enter_wal(conn, 5.0)  # type: ignore[arg-type]
    assert conn.calls == 4


def test_other_errors_are_not_retried() -> None:
    conn = _FlakyConn(busy=1, code=sqlite3.SQLITE_IOERR)
    with pytest.raises(sqlite3.OperationalError):
        enter_wal(conn, 5.0)  # type: ignore[arg-type]
    assert conn.calls == 1


def test_busy_past_the_timeout_is_an_error() -> None:
    conn = _FlakyConn(busy=10_000)
    with pytest.raises(sqlite3.OperationalError):
        enter_wal(conn, 0.05)  # type: ignore[arg-type]
    assert 1 < conn.calls < 10_000


_OPEN = """
import asyncio, sys
from pathlib import Path
from tests._store_helpers import make_backend

async def main() -> None:
    backend = make_backend(Path(sys.argv[1]))
    await backend.start()
    await backend.aclose()

asyncio.run(main())
"""


async def _start_together(script: str, db: Path, processes: int = 4) -> None:
    """Run ``script`` on the new database ``db`` in several processes at once; all must start."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(db), cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(processes)
    ]
    for p in procs:
        _, err = await asyncio.wait_for(p.communicate(), 60)
        assert p.returncode == 0, err.decode()[-2000:]


async def test_processes_opening_one_new_database_together_all_start(tmp_path: Path) -> None:
    for round_ in range(5):
        db = tmp_path / f"new{round_}.db"
        await _start_together(_OPEN, db)
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


_OPEN_STATE = """
import asyncio, sys
from pathlib import Path
from scimd.state.sqlite import SqliteStateStore

async def main() -> None:
    store = SqliteStateStore(Path(sys.argv[1]))
    await store.start()
    await store.aclose()

asyncio.run(main())
"""


async def test_processes_opening_one_new_state_database_together_all_start(
    tmp_path: Path,
) -> None:
    for round_ in range(5):
        await _start_together(_OPEN_STATE, tmp_path / f"state{round_}.db")
