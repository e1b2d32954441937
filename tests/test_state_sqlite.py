"""scimd.state.sqlite: tokens hashed at rest, events, server secrets, schema versioning."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scimd.errors import ServiceUnavailable
from scimd.settings import Settings, StateSettings
from scimd.state.base import Event, StateStore
from scimd.state.plugin import SqliteStateStoreFactory, scimd_state_stores
from scimd.state.sqlite import SCHEMA_VERSION, SqliteStateStore, StateStoreError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    s = SqliteStateStore(tmp_path / "sub" / "state.db")
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


async def test_implements_the_protocol(store: SqliteStateStore) -> None:
    assert isinstance(store, StateStore)


async def test_start_creates_directory_and_sets_user_version(tmp_path: Path) -> None:
    s = SqliteStateStore(tmp_path / "data" / "state.db")
    await s.start()
    await s.aclose()
    conn = sqlite3.connect(tmp_path / "data" / "state.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"events_tenant_time", "events_resource", "events_type"} <= indexes
    conn.close()


async def test_restart_keeps_data(tmp_path: Path) -> None:
    s = SqliteStateStore(tmp_path / "state.db")
    await s.start()
    _, token = await s.create_token(tenant="t", scopes=["read"])
    await s.aclose()
    s2 = SqliteStateStore(tmp_path / "state.db")
    await s2.start()
    assert (await s2.verify_token(token)) is not None
    await s2.aclose()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    s = SqliteStateStore(path)
    with pytest.raises(StateStoreError, match="newer than this scimd"):
        await s.start()
    await s.aclose()


# --------------------------------------------------------------------------- tokens


async def test_token_is_prefixed_random_and_only_its_hash_is_stored(
    store: SqliteStateStore,
) -> None:
    record, token = await store.create_token(tenant="acme", scopes=["read", "write"])
    assert token.startswith("scimd_")
    assert len(token) >= len("scimd_") + 43  # 32 random bytes, urlsafe base64
    assert record.id.startswith("tok_")
    assert record.scopes == ("read", "write")
    await store.aclose()
    raw = store.path.read_bytes()
    for suffix in ("-wal", "-shm"):
        extra = store.path.with_name(store.path.name + suffix)
        if extra.exists():
            raw += extra.read_bytes()
    secret_part = token.removeprefix("scimd_")
    assert token.encode() not in raw
    assert secret_part.encode() not in raw
    assert hashlib.sha256(token.encode()).digest() in raw
    await store.start()


async def test_tokens_differ(store: SqliteStateStore) -> None:
    tokens = {(await store.create_token(tenant="t", scopes=["read"]))[1] for _ in range(5)}
    assert len(tokens) == 5


async def test_verify_returns_the_record(store: SqliteStateStore) -> None:
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


@pytest.mark.parametrize(
    "candidate",
    ["", "scimd_", "scimd_nope", "Bearer x", "x" * 10_000, "scimd_" + "A" * 43],
)
async def test_verify_rejects_unknown_tokens(store: SqliteStateStore, candidate: str) -> None:
    await store.create_token(tenant="acme", scopes=["read"])
    assert await store.verify_token(candidate) is None


async def test_verify_rejects_a_token_differing_in_one_character(store: SqliteStateStore) -> None:
    _, token = await store.create_token(tenant="acme", scopes=["read"])
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert await store.verify_token(flipped) is None


async def test_verify_uses_constant_time_comparison(
    store: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("scimd.state.sqlite.hmac.compare_digest", spy)
    _, token = await store.create_token(tenant="acme", scopes=["read"])
    assert await store.verify_token(token) is not None
    assert calls == [(hashlib.sha256(token.encode()).digest(),) * 2]


async def test_revoke(store: SqliteStateStore) -> None:
    record, token = await store.create_token(tenant="acme", scopes=["read"])
    assert await store.count_tokens() == 1
    assert await store.revoke_token(record.id) is True
    assert await store.verify_token(token) is None
    assert await store.revoke_token(record.id) is False  # already revoked
    assert await store.revoke_token("tok_missing") is False
    assert await store.count_tokens() == 0
    (listed,) = await store.list_tokens()
    assert listed.revoked is not None


async def test_list_tokens_by_tenant(store: SqliteStateStore) -> None:
    a, _ = await store.create_token(tenant="a", scopes=["read"])
    b, _ = await store.create_token(tenant="b", scopes=["read", "write"])
    assert [t.id for t in await store.list_tokens()] == [a.id, b.id]
    assert [t.id for t in await store.list_tokens("b")] == [b.id]


@pytest.mark.parametrize("scopes", [[], ["admin"], ["read", "delete"]])
async def test_invalid_scopes_are_refused(store: SqliteStateStore, scopes: list[str]) -> None:
    with pytest.raises(ValueError, match="scopes"):
        await store.create_token(tenant="a", scopes=scopes)


async def test_last_used_is_written_at_most_once_per_interval(
    store: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("scimd.state.sqlite.time.monotonic", lambda: clock[0])
    _, token = await store.create_token(tenant="a", scopes=["read"])
    writes: list[str] = []
    await store._run(lambda: store._db.set_trace_callback(writes.append))

    def updates() -> int:
        return sum("UPDATE tokens SET last_used" in w for w in writes)

    await store.verify_token(token)
    await store.verify_token(token)
    assert updates() == 1
    clock[0] += 59
    await store.verify_token(token)
    assert updates() == 1
    clock[0] += 2
    await store.verify_token(token)
    assert updates() == 2
    (listed,) = await store.list_tokens()
    assert listed.last_used is not None


# --------------------------------------------------------------------------- events


async def test_events_roundtrip_and_filters(store: SqliteStateStore) -> None:
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


async def test_recording_the_same_event_twice_is_harmless(store: SqliteStateStore) -> None:
    await store.record_events([event(1)])
    await store.record_events([event(1), event(2)])
    assert [e.id for e in await store.list_events()] == ["ev1", "ev2"]


async def test_old_events_are_pruned_at_start(tmp_path: Path) -> None:
    s = SqliteStateStore(tmp_path / "state.db", retention_days=30)
    await s.start()
    now = datetime.now(UTC)
    await s.record_events([event(1, time=now - timedelta(days=31)), event(2, time=now)])
    await s.aclose()
    await s.start()
    assert [e.id for e in await s.list_events()] == ["ev2"]
    await s.aclose()


# --------------------------------------------------------------------------- secrets & errors


async def test_get_or_create_secret_is_stable(tmp_path: Path) -> None:
    a = SqliteStateStore(tmp_path / "state.db")
    b = SqliteStateStore(tmp_path / "state.db")
    await a.start()
    await b.start()
    key = await a.get_or_create_secret("cursor")
    assert len(key) == 32
    assert await b.get_or_create_secret("cursor") == key  # another process sees the same
    assert await a.get_or_create_secret("other") != key
    await a.aclose()
    await b.aclose()


async def test_locked_database_is_service_unavailable(
    store: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(ServiceUnavailable):
        await store._run(locked)


async def test_use_before_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="before start"):
        await SqliteStateStore(tmp_path / "x.db").count_tokens()


# --------------------------------------------------------------------------- plugin


def test_plugin_factory_uses_state_path_relative_to_base_dir(tmp_path: Path) -> None:
    (factory,) = scimd_state_stores()
    assert isinstance(factory, SqliteStateStoreFactory)
    assert factory.name == "sqlite"
    settings = Settings(state=StateSettings(path=Path("data/state.db")), base_dir=tmp_path)
    built = factory(settings)
    assert isinstance(built, SqliteStateStore)
    assert built.path == tmp_path / "data/state.db"
