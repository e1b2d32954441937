"""``scimd import`` bulk mode on PostgreSQL (``scimd_postgres.bulk.BulkMode``): the
secondary indexes are dropped for the load and rebuilt after it; what is stored is what
the normal mode stores; an import killed at any point leaves a database that rerunning
the import, or ``scimd migrate``, completes (every index back); queries during the load
give the same answers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
from scimd_postgres import bulk
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.migrations import migrate

from scimd.backend import BackendEnv, OpContext, Query
from scimd.bulk_import import import_file
from scimd.cli import main
from scimd.query.parse import parse_filter
from scimd.schema.loader import builtin_registry
from tests.test_cli_import import check_jsonl_import
from tests.test_import_rules import check_import_rules

from .test_import_postgres import pg_config

CTX = OpContext(tenant="default", principal="t", request_id="t")


def user(i: int) -> dict[str, object]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": f"bulk{i:06d}@example.com",
        "externalId": f"ext-{i}",
        "name": {"givenName": f"Given{i}", "familyName": f"Family{i % 7}"},
        "displayName": f"Bulk User {i}",
        "emails": [{"value": f"bulk{i:06d}@example.com", "type": "work", "primary": True}],
        "active": i % 2 == 0,
    }


def write_users(path: Path, n: int) -> Path:
    path.write_bytes(b"".join(orjson.dumps(user(i)) + b"\n" for i in range(n)))
    return path


async def index_state(dsn: str) -> tuple[set[str], bool]:
    """(the ``BULK_INDEXES`` that exist, whether a bulk import's record is stored)."""
    conn = await asyncpg.connect(dsn)
    try:
        names = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE indexname = ANY($1::text[])",
            list(bulk.BULK_INDEXES),
        )
        marker = await conn.fetchval(
            "SELECT count(*) FROM scimd_store_meta WHERE key = $1", bulk.BULK_MARKER
        )
        return {r[0] for r in names}, bool(marker)
    finally:
        await conn.close()


async def started(dsn: str, tmp_path: Path) -> PostgresBackend:
    backend = PostgresBackend(
        BackendEnv(options={"dsn": dsn}, registry=builtin_registry(), base_dir=tmp_path)
    )
    await backend.start()
    return backend


async def find(backend: PostgresBackend, text: str) -> list[str]:
    users = backend.registry.resource_type("User")
    assert users is not None
    page = await backend.query(CTX, users, Query(filter=parse_filter(text, users), count=1000))
    return sorted(str(u["userName"]) for u in page.resources)


ALL = set(bulk.BULK_INDEXES)


def test_cli_import_in_bulk_mode(
    tmp_path: Path,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The core CLI import checks (bad lines, resume) pass with bulk mode chosen for
    every file, and the indexes are all back afterwards."""
    monkeypatch.setattr(bulk, "BULK_MIN_RECORDS", 0)
    check_jsonl_import(pg_config(tmp_path, pg_dsn, monkeypatch), tmp_path, capsys)
    assert asyncio.run(index_state(pg_dsn)) == (ALL, False)


async def test_import_rules_in_bulk_mode(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """unique_email, resume, passwords and events are the same in bulk mode."""
    monkeypatch.setattr(bulk, "BULK_MIN_RECORDS", 0)
    backend = await started(pg_dsn, tmp_path)
    try:
        await check_import_rules(backend, tmp_path, workers=2)
    finally:
        await backend.aclose()
    assert await index_state(pg_dsn) == (ALL, False)


async def test_bulk_import_is_findable_by_every_filter(pg_dsn: str, tmp_path: Path) -> None:
    """Users loaded in bulk mode: found by eq, co, ew, sw, booleans and numbers like the
    ones a POST stores, while the indexes are missing (a concurrent reader: scans) and
    after the rebuild (index scans)."""
    data = write_users(tmp_path / "users.jsonl", 300)
    backend = await started(pg_dsn, tmp_path)
    queries = {
        'userName eq "BULK000123@example.com"': ["bulk000123@example.com"],
        'emails[type eq "work"].value eq "bulk000007@example.com"': ["bulk000007@example.com"],
        'userName co "00029"': [
            f"bulk{i:06d}@example.com" for i in range(300) if "00029" in f"bulk{i:06d}"
        ],
        'displayName ew "User 299"': ["bulk000299@example.com"],
        'name.familyName eq "Family3" and userName sw "bulk00001"': [
            "bulk000010@example.com",
            "bulk000017@example.com",
        ],
        'active eq false and externalId eq "ext-11"': ["bulk000011@example.com"],
    }
    try:
        mode = backend.import_bulk(300, True)
        assert await mode.__aenter__() is True
        try:
            assert await index_state(pg_dsn) == (set(), True)
            stats = await import_file(
                data, backend, backend.registry, tenant="default", batch_size=64, bulk=False
            )
            assert (stats.created, stats.errors) == (300, 0)
            for text, expected in queries.items():
                assert await find(backend, text) == expected, text
        finally:
            await mode.__aexit__(None, None, None)
        assert await index_state(pg_dsn) == (ALL, False)
        for text, expected in queries.items():
            assert await find(backend, text) == expected, text
        users = backend.registry.resource_type("User")
        assert users is not None
        stored = await backend.get(CTX, users, await find_id(backend, 5))
        assert stored["meta"]["version"] == 'W/"1"' and stored["meta"]["resourceType"] == "User"
        assert stored["emails"] == user(5)["emails"] and stored["active"] is False
    finally:
        await backend.aclose()


async def find_id(backend: PostgresBackend, i: int) -> str:
    users = backend.registry.resource_type("User")
    assert users is not None
    flt = parse_filter(f'userName eq "bulk{i:06d}@example.com"', users)
    page = await backend.query(CTX, users, Query(filter=flt, count=1))
    return str(page.resources[0]["id"])


async def test_interrupted_bulk_import_is_completed_by_migrate_or_rerun(
    pg_dsn: str, tmp_path: Path
) -> None:
    """The state a crash after the DROP leaves (indexes gone, record stored): ``migrate``
    rebuilds them; so does the next import, which runs in bulk mode even if not asked."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert set(await bulk.drop_bulk_indexes(conn)) == ALL
    finally:
        await conn.close()  # the "crash": the lock goes, the record stays
    assert await index_state(pg_dsn) == (set(), True)
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await migrate(conn) == []
    finally:
        await conn.close()
    assert await index_state(pg_dsn) == (ALL, False)

    conn = await asyncpg.connect(pg_dsn)
    try:
        await bulk.drop_bulk_indexes(conn)
    finally:
        await conn.close()
    data = write_users(tmp_path / "few.jsonl", 5)
    backend = await started(pg_dsn, tmp_path)
    try:
        stats = await import_file(data, backend, backend.registry, tenant="default")
        assert stats.created == 5
    finally:
        await backend.aclose()
    assert await index_state(pg_dsn) == (ALL, False)


async def test_bulk_import_waits_for_no_one_while_another_runs(pg_dsn: str, tmp_path: Path) -> None:
    """A second bulk import while one holds the lock loads in the normal mode, and
    ``migrate`` leaves the running import's indexes to it."""
    first = bulk.BulkMode(pg_dsn, 10, True, 10.0)
    assert await first.__aenter__() is True
    try:
        second = bulk.BulkMode(pg_dsn, 10, True, 10.0)
        assert await second.__aenter__() is False
        await second.__aexit__(None, None, None)
        conn = await asyncpg.connect(pg_dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        assert await index_state(pg_dsn) == (set(), True)
    finally:
        await first.__aexit__(None, None, None)
    assert await index_state(pg_dsn) == (ALL, False)


async def _stored_after_kill(dsn: str, proc: subprocess.Popen[bytes], n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(600):  # bounded: at most about 60 s
            if proc.poll() is not None:
                break
            if await conn.fetchval("SELECT count(*) FROM scimd_resources") >= 500:
                break
            await asyncio.sleep(0.1)
        assert proc.poll() is None, "the import ended before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        stored = await conn.fetchval("SELECT count(*) FROM scimd_resources")
        assert 500 <= stored < n
        # every committed User has its value rows (one transaction per batch)
        partial = await conn.fetchval(
            "SELECT count(*) FROM scimd_resources r WHERE NOT EXISTS"
            " (SELECT 1 FROM scimd_attr_values a WHERE a.pk = r.pk AND a.uniq)"
        )
        assert partial == 0
    finally:
        await conn.close()


async def _check_complete(dsn: str, tmp_path: Path, n: int) -> None:
    assert await index_state(dsn) == (ALL, False)
    backend = await started(dsn, tmp_path)
    try:
        users = backend.registry.resource_type("User")
        assert users is not None
        page = await backend.query(CTX, users, Query(count=0))
        assert page.total_results == n
        last = f"bulk{n - 1:06d}@example.com"
        assert await find(backend, f'userName eq "{last}"') == [last]
        assert await find(backend, f'userName co "{last[4:10]}"') == [last]
    finally:
        await backend.aclose()


def test_kill_9_during_bulk_import_then_rerun(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``scimd import --bulk`` killed (SIGKILL) once some batches are committed: the
    committed Users are whole, the indexes' record stays, and the rerun skips what is
    stored, loads the rest and rebuilds every index."""
    n = 6000
    data = write_users(tmp_path / "users.jsonl", n)
    config = pg_config(tmp_path, pg_dsn, monkeypatch)
    scimd = str(Path(sys.executable).parent / "scimd")
    cmd = [scimd, "import", "-c", str(config), "--bulk", "--batch", "100", "--workers", "0"]
    env = {**os.environ, "SCIMD_PG_DSN": pg_dsn}
    out = subprocess.DEVNULL
    proc = subprocess.Popen([*cmd, "--no-progress", str(data)], env=env, stderr=out)  # noqa: S603
    try:
        asyncio.run(_stored_after_kill(pg_dsn, proc, n))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert asyncio.run(index_state(pg_dsn))[1] is True
    assert main(["import", "-c", str(config), "--no-progress", str(data)]) == 0
    asyncio.run(_check_complete(pg_dsn, tmp_path, n))
