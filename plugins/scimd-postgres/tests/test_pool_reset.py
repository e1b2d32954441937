"""The pools of the backend and of the state store release a connection without asyncpg's
reset query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``: a round
trip per request). That is only sound while no pooled connection keeps session state:
after every kind of operation, each pooled connection has no session setting, no advisory
lock and no open transaction; migrations (which take a session lock) run on a connection
of their own; a transaction left open is still rolled back on release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.state import PostgresStateStore

from scimd.backend import OpContext, Query
from scimd.query.parse import parse_filter

from ._backend import rtype_of

CTX = OpContext(tenant="t1", principal="system", request_id="r1")
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
def backend(one_connection_backend: PostgresBackend) -> PostgresBackend:
    return one_connection_backend


async def _session_state(pool: asyncpg.Pool) -> tuple[list[str], int, bool]:
    """(settings this session changed from their reset value, advisory locks held, in a
    transaction) of the pool's connection (the pools here have one). asyncpg itself sets
    ``jit`` off around its type introspection and back: same value, source "session"."""
    async with pool.acquire() as conn:
        in_tx = conn.is_in_transaction()
        changed = [
            r[0]
            for r in await conn.fetch(
                "SELECT name FROM pg_settings WHERE source = 'session' AND setting <> reset_val"
            )
        ]
        locks = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
    return changed, int(locks), in_tx


async def test_backend_connections_keep_no_session_state(backend: PostgresBackend) -> None:
    users, groups = rtype_of(backend, "User"), rtype_of(backend, "Group")
    sent: list[str] = []
    assert backend.pool is not None and backend.lookup_pool is not None
    for pool in (backend.pool, backend.lookup_pool):
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
    # every kind of operation: writes, reads, pages of both kinds, import, delete
    alice = await backend.create(CTX, users, {"schemas": [USER_URN], "userName": "alice"})
    group = await backend.create(
        CTX,
        groups,
        {"schemas": [GROUP_URN], "displayName": "g", "members": [{"value": alice["id"]}]},
    )
    await backend.get(CTX, users, alice["id"])
    await backend.query(CTX, users, Query(filter=parse_filter('userName eq "alice"', users)))
    await backend.query(CTX, users, Query(filter=parse_filter('userName co "li"', users)))
    await backend.query(CTX, users, Query(paging="cursor", count=1))
    imported = await backend.import_resources(
        CTX, users, [{"schemas": [USER_URN], "userName": f"u{i}"} for i in range(3)]
    )
    assert [kind for kind, _ in imported] == ["created"] * 3
    await backend.delete(CTX, groups, group["id"], if_match=None)
    await backend.delete(CTX, users, alice["id"], if_match=None)
    assert sent, "the statement loggers saw nothing"
    assert not [q for q in sent if "RESET ALL" in q or "UNLISTEN" in q], sent
    for pool in (backend.pool, backend.lookup_pool):
        assert await _session_state(pool) == ([], 0, False)


async def test_a_transaction_left_open_is_rolled_back_on_release(
    backend: PostgresBackend,
) -> None:
    assert backend.pool is not None
    async with backend.pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO scimd_store_meta (key, value) VALUES ('left', 'open')")
    async with backend.pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM scimd_store_meta WHERE key = 'left'") == 0


async def test_state_store_connections_keep_no_session_state(fresh_dsn: str) -> None:
    store = PostgresStateStore(fresh_dsn, min_pool=1, max_pool=1, migrate_on_start=True)
    await store.start()
    try:
        assert store.pool is not None
        sent: list[str] = []
        async with store.pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
        record, token = await store.create_token(tenant="t1", scopes=["read", "write"])
        assert (await store.verify_token(token)) is not None
        assert await store.claim_replay("k1", datetime.now(UTC) + timedelta(minutes=5))
        await store.put_identity_link("t1", "idp", "sub", "user-1")
        assert await store.revoke_token(record.id)
        assert sent and not [q for q in sent if "RESET ALL" in q], sent
        assert await _session_state(store.pool) == ([], 0, False)
    finally:
        await store.aclose()
