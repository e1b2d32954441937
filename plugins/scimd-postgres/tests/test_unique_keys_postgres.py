"""The normalised primary email is unique per tenant, enforced by PostgreSQL in the write's
own transaction (docs/jit.md "Email as the primary identifier", issue 7 item 4): the shared
contract runs in test_contract_postgres.py; here the backfill of migration 0005 for users stored
before it, and the keys of imported users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from scimd_postgres.backend import BACKFILL_TASK
from scimd_postgres.migrations import MIGRATIONS, migrate

from scimd import errors
from scimd.backend import OpContext, Query
from scimd.query import parse_filter
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.store.unique_keys import EMAIL
from scimd.testing.unique import with_email

from ._backend import open_backend

T = OpContext("default", "test", "r1")
E = OpContext("default", "test", "r2", unique_keys=frozenset({EMAIL}))


@pytest.fixture
async def conn(fresh_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(fresh_dsn)
    yield c
    await c.close()


def _by_name(users: ResourceType, name: str) -> Query:
    return Query(filter=parse_filter(f'userName eq "{name}"', users), count=10)


async def _keys(conn: asyncpg.Connection) -> list[tuple[str, str, bool]]:
    rows = await conn.fetch(
        "SELECT r.data ->> 'userName', k.key, k.shared FROM scimd_unique_keys k"
        " JOIN scimd_resources r ON r.pk = k.pk ORDER BY k.pk"
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def test_migration_backfills_legacy_users_oldest_owns(
    fresh_dsn: str,
    conn: asyncpg.Connection,
    registry: SchemaRegistry,
    users: ResourceType,
    tmp_path: Path,
) -> None:
    # Users stored by a scimd-postgres from before migration 0005 (no keys, a duplicate
    # email in two spellings, a non-primary duplicate), then `scimd migrate`.
    await migrate(conn)
    backend = await open_backend(fresh_dsn, registry, tmp_path, max_pool=2)
    try:
        for name, email in [("old", "Dup@Example.com"), ("b", "b@example.com")]:
            await backend.create(T, users, with_email(name, email))
        await backend.create(T, users, with_email("young", "dup@EXAMPLE.com"))
        other_tenant = OpContext("acme", "test", "r3")
        await backend.create(other_tenant, users, with_email("old", "dup@example.com"))
    finally:
        await backend.aclose()
    await conn.execute("DELETE FROM scimd_unique_keys")
    await conn.execute("INSERT INTO scimd_pending_tasks (name) VALUES ($1)", BACKFILL_TASK)

    migrated = await open_backend(fresh_dsn, registry, tmp_path, max_pool=2)  # backfills at start
    try:
        assert await _keys(conn) == [
            ("old", "dup@example.com", False),
            ("b", "b@example.com", False),
            ("young", "dup@example.com", True),  # the younger duplicate shares the key
            ("old", "dup@example.com", False),  # the other tenant's own key
        ]
        assert await conn.fetchval("SELECT count(*) FROM scimd_pending_tasks") == 0
        # Both holders stay editable while they keep the email; a new holder is refused.
        for name in ("old", "young"):
            page = await migrated.query(T, users, _by_name(users, name))
            (found,) = page.resources
            await migrated.replace(
                E, users, found["id"], with_email(name, "DUP@example.com"), if_match=None
            )
        with pytest.raises(errors.Uniqueness, match=r"dup@example\.com"):
            await migrated.create(E, users, with_email("third", "dup@example.com"))
    finally:
        await migrated.aclose()
    # Nothing pending: no second fill.
    again = await open_backend(fresh_dsn, registry, tmp_path, max_pool=2)
    await again.aclose()
    assert len(await _keys(conn)) == 4


async def test_the_layout_has_the_partial_unique_index(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    definition = await conn.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'scimd_unique_keys_key'"
    )
    assert "UNIQUE" in definition
    assert "(tenant, kind, key)" in definition
    assert "WHERE (NOT shared)" in definition
    assert [m.name for m in MIGRATIONS][4] == "unique_keys"


async def test_imported_users_get_keys_shared_when_they_duplicate(
    pg_dsn: str, registry: SchemaRegistry, users: ResourceType, tmp_path: Path
) -> None:
    backend = await open_backend(pg_dsn, registry, tmp_path, max_pool=2)
    try:
        await backend.create(T, users, with_email("stored", "ann@example.com"))
        results = await backend.import_resources(
            T,
            users,
            [
                with_email("i1", "ANN@example.com"),
                with_email("i2", "new@example.com"),
                with_email("i3", "New@Example.com"),
            ],
        )
        assert [status for status, _ in results] == ["created"] * 3
        c = await asyncpg.connect(pg_dsn)
        try:
            assert await _keys(c) == [
                ("stored", "ann@example.com", False),
                ("i1", "ann@example.com", True),
                ("i2", "new@example.com", False),
                ("i3", "new@example.com", True),
            ]
        finally:
            await c.close()
        with pytest.raises(errors.Uniqueness):
            await backend.create(E, users, with_email("later", "new@example.com"))
        # An imported duplicate stays editable while it keeps its email.
        i3 = results[2][1]
        await backend.replace(
            E, users, i3, with_email("i3", "new@example.com", title="x"), if_match=None
        )
    finally:
        await backend.aclose()
