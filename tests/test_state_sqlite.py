"""scimd.state.sqlite: the state store contract suite (``scimd.testing.state``), plus what
only SQLite has: the file layout, schema versioning, the raw file holding no token, the
``last_used`` write interval, a locked database."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scimd.errors import ServiceUnavailable
from scimd.hookspecs import StateStoreFactory
from scimd.settings import Settings, StateSettings
from scimd.state.plugin import SqliteStateStoreFactory, scimd_state_stores
from scimd.state.sqlite import SCHEMA_VERSION, SqliteStateStore, StateStoreError
from scimd.testing.state import StateStoreContract


class TestSqliteStateContract(StateStoreContract):
    """The builtin store implements ``JitStateStore`` too, so nothing here may skip."""

    @pytest.fixture
    def state_store_factory(self) -> StateStoreFactory:
        return SqliteStateStoreFactory()

    @pytest.fixture
    def state_settings(self, tmp_path: Path) -> Settings:
        return Settings(state=StateSettings(path=Path("sub/state.db")), base_dir=tmp_path)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    s = SqliteStateStore(tmp_path / "sub" / "state.db")
    await s.start()
    yield s
    await s.aclose()


async def test_start_creates_directory_and_sets_user_version(tmp_path: Path) -> None:
    s = SqliteStateStore(tmp_path / "data" / "state.db")
    await s.start()
    await s.aclose()
    conn = sqlite3.connect(tmp_path / "data" / "state.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"events_tenant_time", "events_resource", "events_type"} <= indexes
    conn.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    s = SqliteStateStore(path)
    with pytest.raises(StateStoreError, match="newer than this scimd"):
        await s.start()
    await s.aclose()


# --------------------------------------------------------------------------- tokens


async def test_only_the_token_hash_is_in_the_file(store: SqliteStateStore) -> None:
    _, token = await store.create_token(tenant="acme", scopes=["read", "write"])
    await store.aclose()
    raw = store.path.read_bytes()
    for suffix in ("-wal", "-shm"):
        extra = store.path.with_name(store.path.name + suffix)
        if extra.exists():
            raw += extra.read_bytes()
    secret_part = token.removeprefix("scimd_")
    assert token.encode() not in raw
    assert secret_part.encode() not in raw
    assert hashlib.sha256(token.encode()).digest() in raw
    await store.start()


async def test_last_used_is_written_at_most_once_per_interval(
    store: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("scimd.state.sqlite.time.monotonic", lambda: clock[0])
    _, token = await store.create_token(tenant="a", scopes=["read"])
    writes: list[str] = []
    await store._run(lambda: store._db.set_trace_callback(writes.append))

    def updates() -> int:
        return sum("UPDATE tokens SET last_used" in w for w in writes)

    await store.verify_token(token)
    await store.verify_token(token)
    assert updates() == 1
    clock[0] += 59
    await store.verify_token(token)
    assert updates() == 1
    clock[0] += 2
    await store.verify_token(token)
    assert updates() == 2
    (listed,) = await store.list_tokens()
    assert listed.last_used is not None


# --------------------------------------------------------------------------- events


# --------------------------------------------------------------------------- secrets & errors


async def test_locked_database_is_service_unavailable(
    store: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(ServiceUnavailable):
        await store._run(locked)


# --------------------------------------------------------------------------- plugin


def test_plugin_factory_uses_state_path_relative_to_base_dir(tmp_path: Path) -> None:
    (factory,) = scimd_state_stores()
    assert isinstance(factory, SqliteStateStoreFactory)
    assert factory.name == "sqlite"
    settings = Settings(state=StateSettings(path=Path("data/state.db")), base_dir=tmp_path)
    built = factory(settings)
    assert isinstance(built, SqliteStateStore)
    assert built.path == tmp_path / "data/state.db"
