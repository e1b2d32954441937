"""Per-type resource counts kept by triggers (migration 0008): an unfiltered list reads its
exact ``totalResults`` from a few shard rows instead of counting every resource, and the
counts stay exact through creates, deletes, imports (COPY), concurrent writers in other
processes, and for resources stored before the migration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
from scimd_postgres.migrations import _VERSION_TABLE, MIGRATIONS, migrate

from scimd.backend import OpContext, Query
from scimd.schema.model import ResourceType, SchemaRegistry

from ._backend import open_backend

T = OpContext("default", "test", "r1")
ACME = OpContext("acme", "test", "r2")


@pytest.fixture
async def conn(fresh_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(fresh_dsn)
    yield c
    await c.close()


def _user(name: str) -> dict[str, object]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}


async def _counted(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT tenant, rtype, sum(n) AS n FROM scimd_resource_counts GROUP BY tenant, rtype"
    )
    return {(r["tenant"], r["rtype"]): int(r["n"]) for r in rows if r["n"]}


async def _actual(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT tenant, rtype, count(*) AS n FROM scimd_resources GROUP BY tenant, rtype"
    )
    return {(r["tenant"], r["rtype"]): int(r["n"]) for r in rows}


async def test_resources_stored_before_the_migration_are_counted(conn: asyncpg.Connection) -> None:
    await conn.execute(_VERSION_TABLE)
    before = [m for m in MIGRATIONS if m.name != "resource_counts"]
    assert len(before) == len(MIGRATIONS) - 1
    for mig in before:
        await conn.execute(mig.sql)
        await conn.execute(
            "INSERT INTO scimd_schema_version (version, name) VALUES ($1, $2)",
            mig.version,
            mig.name,
        )
    for i, (tenant, rtype) in enumerate([("default", "User")] * 3 + [("acme", "Group")] * 2):
        await conn.execute(
            "INSERT INTO scimd_resources (tenant, rtype, id, version, data)"
            " VALUES ($1, $2, $3, 1, $4::jsonb)",
            tenant,
            rtype,
            f"id{i}",
            orjson.dumps({"id": f"id{i}"}).decode(),
        )
    applied = await migrate(conn)
    assert [m.name for m in applied] == ["resource_counts"]
    assert await _counted(conn) == {("default", "User"): 3, ("acme", "Group"): 2}


async def test_counts_follow_creates_deletes_imports_and_concurrent_processes(
    pg_dsn: str, registry: SchemaRegistry, users: ResourceType, tmp_path: Path
) -> None:
    # Two backends (two pools, so other PostgreSQL backend pids and shard rows) stand for
    # two scimd processes writing at once.
    a = await open_backend(pg_dsn, registry, tmp_path, max_pool=4)
    b = await open_backend(pg_dsn, registry, tmp_path, max_pool=4)
    conn = await asyncpg.connect(pg_dsn)
    try:
        created = await asyncio.gather(
            *(
                (a if i % 2 else b).create(T if i % 3 else ACME, users, _user(f"u{i}"))
                for i in range(40)
            )
        )
        for i, resource in enumerate(created[:7]):
            await b.delete(T if i % 3 else ACME, users, resource["id"], if_match=None)
        results = await a.import_resources(T, users, [_user(f"imp{i}") for i in range(25)])
        assert all(kind == "created" for kind, _ in results), results
        assert await _counted(conn) == await _actual(conn)
        expected = (await _actual(conn))[("default", "User")]
        page = await a.query(T, users, Query(count=5))
        assert page.total_results == expected and len(page.resources) == 5
        first = await b.query(T, users, Query(paging="cursor", count=5))
        assert first.total_results == expected
        # The unfiltered total is read from the shard rows, not by counting the rows.
        await conn.execute(
            "UPDATE scimd_resource_counts SET n = n + 1000 WHERE ctid = (SELECT ctid FROM"
            " scimd_resource_counts WHERE tenant = 'default' AND rtype = 'User' LIMIT 1)"
        )
        assert (await a.query(T, users, Query(count=1))).total_results == expected + 1000
    finally:
        await conn.close()
        await a.aclose()
        await b.aclose()
