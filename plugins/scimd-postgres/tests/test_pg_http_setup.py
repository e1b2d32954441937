"""The rerun core HTTP modules (``tests/test_pg_*.py``) really run on PostgreSQL: the app
of ``scim`` has the ``postgres`` backend and state store, and what it writes is in the
database (tokens hashed, passwords as argon2id hashes only)."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.state import PostgresStateStore

from tests._http_helpers import Scim


async def test_scim_fixture_is_on_postgres(scim: Scim, pg_dsn: str) -> None:
    assert isinstance(scim.runtime.backend, PostgresBackend)
    assert isinstance(scim.runtime.state, PostgresStateStore)
    user = await scim.create_user("pg.user", password="t1meMa$heen")  # noqa: S106
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch("SELECT id, data::text FROM scimd_resources")
        tokens = await conn.fetchval("SELECT count(*) FROM scimd_state_tokens")
        events = await conn.fetchval(
            "SELECT count(*) FROM scimd_state_events WHERE resource_id = $1", user["id"]
        )
    finally:
        await conn.close()
    assert [r[0] for r in rows] == [user["id"]]
    assert "$argon2id$" in rows[0][1]
    assert "t1meMa$heen" not in rows[0][1]
    assert tokens == 1
    assert events == 1
