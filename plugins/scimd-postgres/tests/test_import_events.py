"""``scimd import`` with the ``postgres`` backend and the ``postgres`` state store on one
database: each batch's ``scim.user.imported`` event is recorded in the batch's own
transaction, as a SCIM write's is (JIT.md "emit audit events in the same transaction"). A
stored batch has its event even when the state store's own recording fails after it; the
event is recorded once, with the counts and ids of the batch; a batch that falls back to
one-by-one creates gets its event after it, once; and ``scimd import`` on the command
line attaches the state store as ``serve`` does."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.state import PostgresStateStore

from scimd.backend import OpContext, Query
from scimd.bulk_import import import_file
from scimd.events import EventEmitter
from tests.test_import_rules import LINES, Sink

from .test_import_bulk import started


async def _open(dsn: str, tmp_path: Path) -> tuple[PostgresBackend, PostgresStateStore]:
    backend = await started(dsn, tmp_path)
    state = PostgresStateStore(dsn)
    await state.start()
    backend.attach_state_store(state)
    assert backend.capabilities.events_in_transaction
    return backend, state


async def _run(
    backend: PostgresBackend, state: PostgresStateStore, tmp_path: Path, sink: Sink
) -> tuple[int, int, int]:
    data = tmp_path / "users.jsonl"
    data.write_bytes(b"\n".join(LINES) + b"\n")
    stats = await import_file(
        data,
        backend,
        backend.registry,
        tenant="default",
        batch_size=2,
        errors=io.StringIO(),
        events=EventEmitter(state, [sink], log_events=False),
        workers=0,
    )
    return stats.created, stats.skipped, stats.errors


async def _stored_ids(backend: PostgresBackend) -> list[str]:
    users = backend.registry.resource_type("User")
    assert users is not None
    ctx = OpContext(tenant="default", principal="t", request_id="t")
    page = await backend.query(ctx, users, Query(count=50))
    return sorted(str(u["id"]) for u in page.resources)


def _check(logged: list[Any], ids: list[str]) -> None:
    """One event per batch of LINES (5 lines, batches of 2), with the batch's counts."""
    assert sorted(tuple(e.data["lines"]) for e in logged) == [(1, 2), (3, 4), (5, 5)]
    assert len({e.id for e in logged}) == 3
    assert sorted(i for e in logged for i in e.data["ids"]) == ids
    by_span = {tuple(e.data["lines"]): e.data for e in logged}
    # line 3: ann's primary email (an error); line 4: ann's userName (skipped)
    assert (by_span[(3, 4)]["created"], by_span[(3, 4)]["skipped"]) == (0, 1)
    assert by_span[(3, 4)]["errors"] == 1
    assert by_span[(1, 2)]["created"] == 2 and by_span[(5, 5)]["created"] == 1


async def test_a_stored_batch_has_its_event_whatever_follows(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, state = await _open(pg_dsn, tmp_path)
    try:
        asked: list[Any] = []

        async def audit_log_down(events: Any) -> None:  # scimd's own recording, after
            asked.append(events)
            raise OSError("the audit log is unreachable")

        monkeypatch.setattr(state, "record_events", audit_log_down)
        sink = Sink()
        assert await _run(backend, state, tmp_path, sink) == (3, 1, 1)
        monkeypatch.undo()
        logged = await state.list_events(type_prefix="scim.user.imported")
        _check(logged, await _stored_ids(backend))
        assert asked == []  # recorded in the batches' transactions, not again after
        assert sorted(e.id for e in sink.events) == sorted(e.id for e in logged)
    finally:
        await state.aclose()
        await backend.aclose()


async def test_a_batch_stored_one_by_one_gets_its_event_after_it_once(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch's COPY clashes with a userName its check missed: the batch is
    rolled back (with the event recorded in it) and stored one by one; its event is then
    recorded by scimd, once."""
    backend, state = await _open(pg_dsn, tmp_path)
    try:
        users = backend.registry.resource_type("User")
        assert users is not None
        ctx = OpContext("default", "t", "t")
        real = backend._stored_unique
        calls: list[int] = []

        async def miss_first(*args: Any) -> dict[tuple[int, str], str]:
            calls.append(1)
            return {} if len(calls) == 1 else await real(*args)

        await backend.create(ctx, users, {"schemas": [users.schema.id], "userName": "bob"})
        monkeypatch.setattr(backend, "_stored_unique", miss_first)
        sink = Sink()
        assert await _run(backend, state, tmp_path, sink) == (2, 2, 1)
        logged = await state.list_events(type_prefix="scim.user.imported")
        assert len(logged) == 3 and len({e.id for e in logged}) == 3
        first = next(e for e in logged if e.data["lines"] == [1, 2])
        assert (first.data["created"], first.data["skipped"]) == (1, 1)
        bob = await _id_of(backend, "bob")
        stored = [i for i in await _stored_ids(backend) if i != bob]
        assert sorted(i for e in logged for i in e.data["ids"]) == stored
    finally:
        await state.aclose()
        await backend.aclose()


async def _id_of(backend: PostgresBackend, user_name: str) -> str:
    from scimd.query.parse import parse_filter

    users = backend.registry.resource_type("User")
    assert users is not None
    ctx = OpContext(tenant="default", principal="t", request_id="t")
    flt = parse_filter(f'userName eq "{user_name}"', users)
    page = await backend.query(ctx, users, Query(filter=flt, count=1))
    return str(page.resources[0]["id"])


def test_the_command_attaches_the_state_store(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``scimd import`` with both on the database: the events are recorded by the
    batches' transactions (the state store's own recording is never asked)."""
    from scimd.cli import main

    monkeypatch.setenv("SCIMD_PG_DSN", pg_dsn)
    config = tmp_path / "scimd.toml"
    config.write_text(
        '[storage]\nbackend = "postgres"\n'
        '[storage.postgres]\ndsn = { "$env" = "SCIMD_PG_DSN" }\n'
        '[state]\nbackend = "postgres"\n'
        '[state.postgres]\ndsn = { "$env" = "SCIMD_PG_DSN" }\n'
    )
    data = tmp_path / "users.jsonl"
    data.write_bytes(b"\n".join(LINES) + b"\n")
    asked: list[Any] = []

    async def not_asked(self: Any, events: Any) -> None:
        asked.append(events)

    monkeypatch.setattr(PostgresStateStore, "record_events", not_asked)
    assert main(["import", "-c", str(config), "--batch", "2", "--workers", "0", str(data)]) == 1
    assert asked == []

    async def count() -> int:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(pg_dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM scimd_state_events WHERE type = 'scim.user.imported'"
                )
            )
        finally:
            await conn.close()

    import asyncio

    assert asyncio.run(count()) == 3
