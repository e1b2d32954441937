"""Versioned migrations: idempotent, recorded, serialised by an advisory lock; the
``scimd migrate`` command; a backend refuses an unmigrated database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.migrations import MIGRATIONS, MigrationError, current_version, migrate

from scimd.backend import BackendEnv
from scimd.cli import main
from scimd.errors import ServiceUnavailable
from scimd.testing import build_contract_registry


async def test_migrate_applies_all_then_nothing(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await current_version(conn) == 0
        first = await migrate(conn)
        assert [m.version for m in first] == list(range(1, len(MIGRATIONS) + 1))
        assert await migrate(conn) == []
        assert await current_version(conn) == len(MIGRATIONS)
        rows = await conn.fetch("SELECT version, name FROM scimd_schema_version ORDER BY 1")
        assert [(r[0], r[1]) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
        tables = {
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'scimd_%'"
            )
        }
        assert {"scimd_resources", "scimd_attr_values", "scimd_members"} <= tables
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_once(fresh_dsn: str) -> None:
    conns = [await asyncpg.connect(fresh_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [m.version for r in results for m in r]
        assert sorted(applied) == list(range(1, len(MIGRATIONS) + 1))
        count = await conns[0].fetchval("SELECT count(*) FROM scimd_schema_version")
        assert count == len(MIGRATIONS)
    finally:
        for c in conns:
            await c.close()


async def test_newer_layout_is_refused(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO scimd_schema_version (version, name) VALUES ($1, 'from_the_future')",
            len(MIGRATIONS) + 1,
        )
        with pytest.raises(MigrationError, match="upgrade scimd-postgres"):
            await migrate(conn)
    finally:
        await conn.close()


def _backend(dsn: str, tmp_path: Path, **options: object) -> PostgresBackend:
    registry = build_contract_registry(tmp_path)
    return PostgresBackend(
        BackendEnv(options={"dsn": dsn, **options}, registry=registry, base_dir=tmp_path)
    )


async def test_backend_refuses_an_unmigrated_database(fresh_dsn: str, tmp_path: Path) -> None:
    backend = _backend(fresh_dsn, tmp_path)
    with pytest.raises(ServiceUnavailable, match="scimd migrate"):
        await backend.start()
    assert backend.pool is None


async def test_migrate_on_start(fresh_dsn: str, tmp_path: Path) -> None:
    backend = _backend(fresh_dsn, tmp_path, migrate_on_start=True)
    await backend.start()
    try:
        assert backend.pool is not None
        async with backend.pool.acquire() as conn:
            assert await current_version(conn) == len(MIGRATIONS)
    finally:
        await backend.aclose()


def test_scimd_migrate_command(
    fresh_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "scimd.toml"
    config.write_text(
        '[storage]\nbackend = "postgres"\n\n[storage.postgres]\n'
        'dsn = { "$env" = "SCIMD_PG_DSN" }\n\n'
        f'[state]\nbackend = "sqlite"\npath = "{tmp_path / "state.db"}"\n'
    )
    monkeypatch.setenv("SCIMD_PG_DSN", fresh_dsn)
    assert main(["migrate", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "applied 0001_initial" in out
    assert main(["migrate", "-c", str(config)]) == 0
    assert "up to date" in capsys.readouterr().out

    async def version() -> int:
        conn = await asyncpg.connect(fresh_dsn)
        try:
            return await current_version(conn)
        finally:
            await conn.close()

    assert asyncio.run(version()) == len(MIGRATIONS)


def test_scimd_migrate_unreachable_database_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    config = tmp_path / "scimd.toml"
    config.write_text(
        '[storage]\nbackend = "postgres"\n\n[storage.postgres]\n'
        'dsn = { "$env" = "SCIMD_PG_DSN" }\ncommand_timeout = "5s"\n'
    )
    monkeypatch.setenv("SCIMD_PG_DSN", f"postgresql://postgres@127.0.0.1:{port}/nope")
    assert main(["migrate", "-c", str(config)]) == 1
    assert "migrate:" in capsys.readouterr().err
