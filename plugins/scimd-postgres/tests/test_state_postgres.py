"""scimd_postgres.state: the behaviours of the SQLite state store (tests/test_state_sqlite.py
and the JIT state), against a real PostgreSQL: tokens hashed at rest, events, secrets shared
by processes, identity links, tombstones, replay and idempotency caches."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from scimd_postgres.plugin import PostgresStateStoreFactory, scimd_state_stores
from scimd_postgres.state import PostgresStateStore
from scimd_postgres.testing import PostgresCluster

from scimd.errors import ServiceUnavailable
from scimd.settings import EventSettings, Settings, StateSettings
from scimd.state.base import Event, IdempotencyRecord, JitStateStore, StateStore


@pytest.fixture
async def store(fresh_dsn: str) -> AsyncIterator[PostgresStateStore]:
    s = PostgresStateStore(fresh_dsn, migrate_on_start=True)
    await s.start()
    yield s
    await s.aclose()


def event(n: int, **kw: object) -> Event:
    base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    fields: dict[str, object] = {
        "id": f"ev{n}",
        "type": "scim.user.created",
        "time": base + timedelta(minutes=n),
        "tenant": "default",
        "resource_type": "User",
        "resource_id": f"u{n}",
        "actor": "tok_1",
        "changed_attributes": ("userName",),
        "data": {"outcome": "ok"},
    }
    fields.update(kw)
    return Event(**fields)  # type: ignore[arg-type]


async def test_implements_both_protocols(store: PostgresStateStore) -> None:
    assert isinstance(store, StateStore)
    assert isinstance(store, JitStateStore)


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


async def test_restart_keeps_data(fresh_dsn: str) -> None:
    s = PostgresStateStore(fresh_dsn, migrate_on_start=True)
    await s.start()
    _, token = await s.create_token(tenant="t", scopes=["read"])
    await s.aclose()
    s2 = PostgresStateStore(fresh_dsn)
    await s2.start()
    assert (await s2.verify_token(token)) is not None
    await s2.aclose()


async def test_use_before_start_is_an_error(fresh_dsn: str) -> None:
    with pytest.raises(RuntimeError, match="before start"):
        await PostgresStateStore(fresh_dsn).count_tokens()


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


async def test_token_is_prefixed_random_and_only_its_hash_is_stored(
    store: PostgresStateStore, fresh_dsn: str
) -> None:
    record, token = await store.create_token(tenant="acme", scopes=["read", "write"])
    assert token.startswith("scimd_")
    assert len(token) >= len("scimd_") + 43
    assert record.id.startswith("tok_")
    assert record.scopes == ("read", "write")
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


async def test_tokens_differ(store: PostgresStateStore) -> None:
    tokens = {(await store.create_token(tenant="t", scopes=["read"]))[1] for _ in range(5)}
    assert len(tokens) == 5


async def test_verify_returns_the_record(store: PostgresStateStore) -> None:
    record, token = await store.create_token(
        tenant="acme", scopes=["write"], description="okta", me_user_id="u1"
    )
    got = await store.verify_token(token)
    assert got is not None
    assert (got.id, got.tenant, got.scopes, got.description, got.me_user_id) == (
        record.id,
        "acme",
        ("write",),
        "okta",
        "u1",
    )
    assert got.revoked is None
    assert got.created.tzinfo is not None


@pytest.mark.parametrize(
    "candidate",
    ["", "scimd_", "scimd_nope", "Bearer x", "x" * 10_000, "scimd_" + "A" * 43, "scimd_\x00"],
)
async def test_verify_rejects_unknown_tokens(store: PostgresStateStore, candidate: str) -> None:
    await store.create_token(tenant="acme", scopes=["read"])
    assert await store.verify_token(candidate) is None


async def test_verify_rejects_a_token_differing_in_one_character(
    store: PostgresStateStore,
) -> None:
    _, token = await store.create_token(tenant="acme", scopes=["read"])
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert await store.verify_token(flipped) is None


async def test_verify_uses_constant_time_comparison(
    store: PostgresStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("scimd_postgres.state.hmac.compare_digest", spy)
    _, token = await store.create_token(tenant="acme", scopes=["read"])
    assert await store.verify_token(token) is not None
    assert calls == [(hashlib.sha256(token.encode()).digest(),) * 2]


async def test_revoke_is_seen_by_another_process(store: PostgresStateStore, fresh_dsn: str) -> None:
    other = PostgresStateStore(fresh_dsn)
    await other.start()
    try:
        record, token = await store.create_token(tenant="acme", scopes=["read"])
        assert await other.verify_token(token) is not None
        assert await store.count_tokens() == 1
        assert await other.revoke_token(record.id) is True
        assert await store.verify_token(token) is None
        assert await store.revoke_token(record.id) is False  # already revoked
        assert await store.revoke_token("tok_missing") is False
        assert await store.count_tokens() == 0
        (listed,) = await store.list_tokens()
        assert listed.revoked is not None
    finally:
        await other.aclose()


async def test_list_tokens_by_tenant(store: PostgresStateStore) -> None:
    a, _ = await store.create_token(tenant="a", scopes=["read"])
    b, _ = await store.create_token(tenant="b", scopes=["read", "write"])
    assert [t.id for t in await store.list_tokens()] == [a.id, b.id]
    assert [t.id for t in await store.list_tokens("b")] == [b.id]


@pytest.mark.parametrize("scopes", [[], ["admin"], ["read", "delete"]])
async def test_invalid_scopes_are_refused(store: PostgresStateStore, scopes: list[str]) -> None:
    with pytest.raises(ValueError, match="scopes"):
        await store.create_token(tenant="a", scopes=scopes)


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


# --------------------------------------------------------------------------- events


async def test_events_roundtrip_and_filters(store: PostgresStateStore) -> None:
    await store.record_events(
        [
            event(1),
            event(2, type="scim.group.patched", resource_type="Group", resource_id="g1"),
            event(3, tenant="other"),
            event(4, resource_id="u1", type="scim.user.deleted"),
            event(5, type="jit.login.denied", resource_id=None, data={"reason": "policy"}),
        ]
    )
    all_ = await store.list_events()
    assert [e.id for e in all_] == ["ev1", "ev2", "ev3", "ev4", "ev5"]
    assert all_[0].changed_attributes == ("userName",)
    assert all_[0].data == {"outcome": "ok"}
    assert all_[0].time == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)

    async def ids(**kw: object) -> list[str]:
        return [e.id for e in await store.list_events(**kw)]  # type: ignore[arg-type]

    assert await ids(tenant="other") == ["ev3"]
    assert await ids(resource_id="u1") == ["ev1", "ev4"]
    assert await ids(type_prefix="scim.user") == ["ev1", "ev3", "ev4"]
    assert await ids(type_prefix="scim.group.patched") == ["ev2"]
    assert await ids(type_prefix="jit.") == ["ev5"]
    assert await ids(since=datetime(2024, 5, 1, 12, 3, tzinfo=UTC)) == ["ev3", "ev4", "ev5"]
    assert await ids(tenant="default", type_prefix="scim.user", since=all_[1].time) == ["ev4"]
    assert await ids(limit=2) == ["ev4", "ev5"]  # the newest, oldest first


async def test_recording_the_same_event_twice_is_harmless(store: PostgresStateStore) -> None:
    await store.record_events([event(1)])
    await store.record_events([event(1), event(2)])
    assert [e.id for e in await store.list_events()] == ["ev1", "ev2"]


async def test_old_events_are_pruned_at_start(fresh_dsn: str) -> None:
    s = PostgresStateStore(fresh_dsn, retention_days=30, migrate_on_start=True)
    await s.start()
    now = datetime.now(UTC)
    await s.record_events([event(1, time=now - timedelta(days=31)), event(2, time=now)])
    await s.aclose()
    await s.start()
    assert [e.id for e in await s.list_events()] == ["ev2"]
    await s.aclose()


# --------------------------------------------------------------------------- secrets


async def test_get_or_create_secret_is_shared_by_processes(fresh_dsn: str) -> None:
    a = PostgresStateStore(fresh_dsn, migrate_on_start=True)
    b = PostgresStateStore(fresh_dsn)
    await a.start()
    await b.start()
    try:
        # Both ask at once for a secret that does not exist yet: both get the winner's.
        ka, kb = await asyncio.gather(
            a.get_or_create_secret("cursor"), b.get_or_create_secret("cursor")
        )
        assert ka == kb
        assert len(ka) == 32
        assert await a.get_or_create_secret("cursor") == ka
        assert await a.get_or_create_secret("other") != ka
        assert len(await a.get_or_create_secret("short", 16)) == 16
    finally:
        await a.aclose()
        await b.aclose()


# --------------------------------------------------------------------------- JIT state


async def test_identity_links_first_writer_wins_unless_replace(store: PostgresStateStore) -> None:
    assert await store.get_identity_link("t", "okta", "s") is None
    assert await store.put_identity_link("t", "okta", "s", "u1") == "u1"
    assert await store.put_identity_link("t", "okta", "s", "u2") == "u1"
    assert await store.get_identity_link("t", "okta", "s") == "u1"
    assert await store.get_identity_link("other", "okta", "s") is None  # tenant-scoped
    assert await store.put_identity_link("t", "okta", "s", "u2", replace=True) == "u2"
    await store.put_identity_link("t", "entra", "x", "u2")
    assert await store.identity_links_of("t", "u2") == [("entra", "x"), ("okta", "s")]
    assert await store.identity_links_of("t", "u1") == []


async def test_concurrent_links_of_one_subject_agree(fresh_dsn: str) -> None:
    a = PostgresStateStore(fresh_dsn, migrate_on_start=True)
    b = PostgresStateStore(fresh_dsn)
    await a.start()
    await b.start()
    try:
        got = await asyncio.gather(
            *((a if n % 2 else b).put_identity_link("t", "okta", "sub", f"u{n}") for n in range(10))
        )
        assert len(set(got)) == 1
        assert await a.get_identity_link("t", "okta", "sub") == got[0]
    finally:
        await a.aclose()
        await b.aclose()


async def test_tombstones(store: PostgresStateStore) -> None:
    assert await store.find_tombstone("t", []) is None
    await store.add_tombstone("t", "u1", ["externalId:e1", "email:a@example.com"])
    assert await store.find_tombstone("t", ["id:u1"]) == "u1"  # id key always added
    assert await store.find_tombstone("t", ["email:x", "externalId:e1"]) == "u1"
    assert await store.find_tombstone("other", ["externalId:e1"]) is None
    await store.add_tombstone("t", "u2", ["email:a@example.com"])  # the newest wins
    assert await store.find_tombstone("t", ["email:a@example.com"]) == "u2"
    await store.remove_tombstone("t", "u2")
    assert await store.find_tombstone("t", ["email:a@example.com", "id:u2"]) is None
    assert await store.find_tombstone("t", ["id:u1"]) == "u1"


async def test_replay_claims_are_one_time_until_expiry(store: PostgresStateStore) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await store.claim_replay("okta:jti:1", later) is True
    assert await store.claim_replay("okta:jti:1", later) is False
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert await store.claim_replay("okta:jti:2", past) is True
    # An expired claim is pruned, so the key can be claimed again.
    assert await store.claim_replay("okta:jti:2", later) is True
    results = await asyncio.gather(*(store.claim_replay("race", later) for _ in range(8)))
    assert results.count(True) == 1


async def test_idempotency_records(store: PostgresStateStore) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    rec = IdempotencyRecord("gw", "msg_1", "ab" * 32, 201, b'{"ok":true}', later)
    assert await store.get_idempotency("gw", "msg_1") is None
    await store.put_idempotency(rec)
    got = await store.get_idempotency("gw", "msg_1")
    assert got is not None
    assert (got.body_sha256, got.status, got.response) == ("ab" * 32, 201, b'{"ok":true}')
    await store.put_idempotency(IdempotencyRecord("gw", "msg_1", "cd" * 32, 500, b"x", later))
    again = await store.get_idempotency("gw", "msg_1")
    assert again is not None and again.status == 201  # the first response stays
    assert await store.get_idempotency("other", "msg_1") is None
    expired = IdempotencyRecord("gw", "old", "00", 200, b"", datetime.now(UTC) - timedelta(1))
    await store.put_idempotency(expired)
    assert await store.get_idempotency("gw", "old") is None


async def test_nul_in_a_key_is_a_client_error_not_a_500(store: PostgresStateStore) -> None:
    from scimd.errors import InvalidValue

    with pytest.raises(InvalidValue):
        await store.find_tombstone("t", ["email:a\x00b"])


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
