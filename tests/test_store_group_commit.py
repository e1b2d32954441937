"""Group commit in the embedded store: writes waiting for the single writer are committed
together, each under its own SAVEPOINT, so that one failing write is rolled back alone and
the others are stored — exactly as if they had run one after the other.

Batching is made deterministic by holding the writer thread on an event while the writes
queue up behind it (no sleeps, no timing)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import Query
from scimd.errors import ScimError, ServiceUnavailable, Uniqueness
from scimd.query.parse import parse_filter
from scimd.store.sqlite import SQLiteBackend
from tests._store_helpers import ctx, make_backend, user, user_type


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    backend = make_backend(tmp_path / "s.db")
    statements: list[str] = []
    backend.trace = statements.append
    await backend.start()
    backend.statements = statements  # type: ignore[attr-defined]
    try:
        yield backend
    finally:
        await backend.aclose()


async def _batched(
    store: SQLiteBackend, writes: Sequence[Awaitable[Any]], *, commits: int = 1
) -> list[Any]:
    """Run ``writes`` so that they all wait for the writer at once: one batch."""
    hold = threading.Event()
    assert store._wpool is not None
    blocker = store._wpool.submit(hold.wait)
    tasks = [asyncio.ensure_future(w) for w in writes]
    for _ in range(10):  # let every task run up to its enqueue (no time passes)
        if len(store._pending) == len(writes):
            break
        await asyncio.sleep(0)
    assert len(store._pending) == len(writes)
    before = store.statements.count("COMMIT")  # type: ignore[attr-defined]
    hold.set()
    blocker.result()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    done = store.statements.count("COMMIT") - before  # type: ignore[attr-defined]
    assert done == commits, "the waiting writes were committed together"
    return results


async def _names(store: SQLiteBackend) -> list[str]:
    page = await store.query(ctx(), user_type(), Query(count=100))
    return sorted(r["userName"] for r in page.resources)


async def test_waiting_writes_are_committed_together(store: SQLiteBackend) -> None:
    results = await _batched(
        store, [store.create(ctx(), user_type(), user(f"u{i}")) for i in range(10)]
    )
    assert all(isinstance(r, dict) for r in results)
    assert await _names(store) == [f"u{i}" for i in range(10)]
    # Each write is its own savepoint inside the one transaction.
    assert store.statements.count("SAVEPOINT w") >= 10  # type: ignore[attr-defined]


async def test_a_failing_write_is_rolled_back_alone(store: SQLiteBackend) -> None:
    taken = await store.create(ctx(), user_type(), user("taken"))
    writes = [
        store.create(ctx(), user_type(), user("a1")),
        store.create(ctx(), user_type(), user("TAKEN")),  # userName is caseExact=false
        store.create(ctx(), user_type(), user("a2")),
        store.delete(ctx(), user_type(), "no-such-id", if_match=None),
        store.create(ctx(), user_type(), user("a3")),
    ]
    results = await _batched(store, writes)
    assert isinstance(results[1], Uniqueness)
    assert isinstance(results[3], ScimError) and results[3].status == 404
    assert [isinstance(results[i], dict) for i in (0, 2, 4)] == [True, True, True]
    assert await _names(store) == ["a1", "a2", "a3", "taken"]
    got = await store.get(ctx(), user_type(), taken["id"])
    assert got["userName"] == "taken"


async def test_writes_in_one_batch_see_each_other_in_order(store: SQLiteBackend) -> None:
    """The second of two creates of one userName in a batch gets the 409, as it would
    one after the other."""
    results = await _batched(
        store,
        [
            store.create(ctx(), user_type(), user("twin", displayName="first")),
            store.create(ctx(), user_type(), user("TWIN", displayName="second")),
        ],
    )
    assert isinstance(results[0], dict) and isinstance(results[1], Uniqueness)
    flt = parse_filter('userName eq "twin"', user_type())
    page = await store.query(ctx(), user_type(), Query(filter=flt))
    assert [r["displayName"] for r in page.resources] == ["first"]


async def test_a_rolled_back_write_leaves_no_attribute_path_behind(
    store: SQLiteBackend,
) -> None:
    """A write that introduced an attribute never stored before and then failed: the path
    id it took is forgotten, and a later write of that attribute is stored and found."""
    await store.create(ctx(), user_type(), user("holder"))
    results = await _batched(
        store,
        [
            # title is new to this store; the userName clash fails the write after the
            # title's path id was taken inside its savepoint.
            store.create(ctx(), user_type(), user("HOLDER", title="Boss")),
            store.create(ctx(), user_type(), user("other")),
        ],
    )
    assert isinstance(results[0], Uniqueness) and isinstance(results[1], dict)
    await store.create(ctx(), user_type(), user("chief", title="Boss"))
    flt = parse_filter('title eq "Boss"', user_type())
    page = await store.query(ctx(), user_type(), Query(filter=flt))
    assert [r["userName"] for r in page.resources] == ["chief"]


class _CommitFails:
    """The writer connection, except that COMMIT fails like a full disk."""

    def __init__(self, inner: sqlite3.Connection) -> None:
        self._inner = inner

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._inner.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_failed_commit_fails_every_write_of_the_batch(store: SQLiteBackend) -> None:
    await store.create(ctx(), user_type(), user("before"))
    real = store._writer
    assert real is not None
    store._writer = _CommitFails(real)  # type: ignore[assignment]
    try:
        results = await _batched(
            store,
            [store.create(ctx(), user_type(), user(f"lost{i}")) for i in range(3)],
            commits=0,  # attempted once, failed (the proxy stops it before the trace)
        )
    finally:
        store._writer = real
    assert all(isinstance(r, ServiceUnavailable) for r in results), results
    assert not real.in_transaction
    assert await _names(store) == ["before"]
    # The store goes on working.
    await store.create(ctx(), user_type(), user("after"))
    assert await _names(store) == ["after", "before"]
