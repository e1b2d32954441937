"""scimd_postgres.state: the state store contract suite (``scimd.testing.state``) against a
real PostgreSQL, plus what only this store has: migrations required before start, an
unreachable server, the event indexes, the tables holding no token, the ``last_used``
write interval, the plugin's factory."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from scimd_postgres.plugin import PostgresStateStoreFactory, scimd_state_stores
from scimd_postgres.state import PostgresStateStore
from scimd_postgres.testing import PostgresCluster

from scimd.errors import ServiceUnavailable
from scimd.hookspecs import StateStoreFactory
from scimd.settings import EventSettings, Settings, StateSettings
from scimd.testing.state import StateStoreContract


class TestPostgresStateContract(StateStoreContract):
    """Implements ``JitStateStore`` and ``EmailMarkStore`` too, so nothing here may skip."""

    @pytest.fixture
    def state_store_factory(self) -> StateStoreFactory:
        return PostgresStateStoreFactory()

    @pytest.fixture
    def state_settings(self, fresh_dsn: str, tmp_path: Path) -> Settings:
        options = {"dsn": fresh_dsn, "migrate_on_start": True, "max_pool": 3}
        return Settings(state=StateSettings(backend="postgres", options=options), base_dir=tmp_path)


@pytest.fixture
async def store(fresh_dsn: str) -> AsyncIterator[PostgresStateStore]:
    s = PostgresStateStore(fresh_dsn, migrate_on_start=True)
    await s.start()
    yield s
    await s.aclose()


async def test_unmigrated_database_is_refused_until_migrated(fresh_dsn: str) -> None:
    s = PostgresStateStore(fresh_dsn)
    with pytest.raises(ServiceUnavailable, match="scimd migrate"):
        await s.start()
    assert s.pool is None


async def test_unreachable_database_is_service_unavailable(
    postgres_cluster: PostgresCluster,
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = PostgresStateStore(f"postgresql://postgres@127.0.0.1:{port}/x", command_timeout=5)
    with pytest.raises(ServiceUnavailable) as info:
        await s.start()
    assert info.value.headers.get("Retry-After") == "5"


async def test_events_are_indexed(store: PostgresStateStore) -> None:
    assert store.pool is not None
    names = {
        r[0]
        for r in await store.pool.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'scimd_state_events'"
        )
    }
    assert {
        "scimd_state_events_tenant_time",
        "scimd_state_events_resource",
        "scimd_state_events_type",
    } <= names


# --------------------------------------------------------------------------- tokens


async def test_only_the_token_hash_is_in_the_tables(
    store: PostgresStateStore, fresh_dsn: str
) -> None:
    _, token = await store.create_token(tenant="acme", scopes=["read", "write"])
    conn = await asyncpg.connect(fresh_dsn)
    try:
        # Every text and bytea column of every table: the token is nowhere, its hash is.
        values: list[str] = []
        for table in ("scimd_state_tokens", "scimd_state_kv", "scimd_state_events"):
            for row in await conn.fetch(f"SELECT * FROM {table}"):
                values += [str(v) for v in row.values()]
        dump = "\n".join(values)
        stored = await conn.fetchval("SELECT hash FROM scimd_state_tokens")
    finally:
        await conn.close()
    assert token.removeprefix("scimd_") not in dump
    assert stored == hashlib.sha256(token.encode()).digest()


async def test_last_used_is_written_at_most_once_per_interval(
    store: PostgresStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("scimd_postgres.state.time.monotonic", lambda: clock[0])
    record, token = await store.create_token(tenant="a", scopes=["read"])
    assert store.pool is not None

    async def last_used() -> datetime | None:
        assert store.pool is not None
        value: datetime | None = await store.pool.fetchval(
            "SELECT last_used FROM scimd_state_tokens WHERE id = $1", record.id
        )
        return value

    await store.verify_token(token)
    first = await last_used()
    assert first is not None
    await store.verify_token(token)
    clock[0] += 59
    await store.verify_token(token)
    assert await last_used() == first
    clock[0] += 2
    await store.verify_token(token)
    second = await last_used()
    assert second is not None and second > first


# --------------------------------------------------------------------------- plugin


def test_plugin_factory_reads_state_options(tmp_path: Path) -> None:
    (factory,) = scimd_state_stores()
    assert isinstance(factory, PostgresStateStoreFactory)
    assert factory.name == "postgres"
    settings = Settings(
        state=StateSettings(
            backend="postgres",
            options={"dsn": "postgresql://x@127.0.0.1/db", "max_pool": 3, "command_timeout": 2},
        ),
        events=EventSettings(retention_days=7),
        base_dir=tmp_path,
    )
    built = factory(settings)
    assert isinstance(built, PostgresStateStore)
    assert (built.dsn, built.max_pool, built.command_timeout, built.retention_days) == (
        "postgresql://x@127.0.0.1/db",
        3,
        2.0,
        7,
    )


def test_missing_dsn_is_refused(tmp_path: Path) -> None:
    (factory,) = scimd_state_stores()
    with pytest.raises(ServiceUnavailable, match="dsn"):
        factory(Settings(state=StateSettings(backend="postgres"), base_dir=tmp_path))
