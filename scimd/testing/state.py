"""The state store contract suite: pytest test classes every ``scimd`` state store runs.

A state store plugin subclasses ``StateStoreContract`` in one of its test modules and
overrides two fixtures: ``state_store_factory`` (the plugin's ``StateStoreFactory``, the
object its ``scimd_state_stores`` hook returns) and ``state_settings`` (the ``Settings``
that point the factory at a fresh, empty store)::

    class TestMyStateStoreContract(StateStoreContract):
        @pytest.fixture
        def state_store_factory(self) -> StateStoreFactory:
            return MyStateStoreFactory()

        @pytest.fixture
        def state_settings(self, tmp_path: Path) -> Settings:
            return Settings(state=StateSettings(backend="mine", options={...}),
                            base_dir=tmp_path)

The suite checks the rules written in ``scimd.state.base`` through the protocols only:
tokens (secret shown once, only a hash kept, constant-time verification, revocation,
scopes), provisioning events (filters, order, limit, idempotent recording, retention),
server secrets (the cursor signing key: created once, the same for every process) and, for
stores that implement ``JitStateStore``, identity links, tombstones and the replay and
idempotency caches, and for stores that implement ``EmailMarkStore`` the JIT email marks.
"Another process" is a second store instance built by the same factory
with the same settings. A store that does not implement ``JitStateStore`` gets the JIT
tests skipped with a reason saying so (the JIT hook then answers 503), one without
``EmailMarkStore`` the email mark tests; nothing else skips.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from scimd.errors import ScimError
from scimd.hookspecs import StateStoreFactory
from scimd.settings import EventSettings, Settings
from scimd.state.base import (
    EmailMarkStore,
    Event,
    IdempotencyRecord,
    JitStateStore,
    RateLimitStore,
    StateStore,
)

__all__ = [
    "EMAIL_MARKS_ABSENT_REASON",
    "JIT_ABSENT_REASON",
    "RATE_LIMIT_ABSENT_REASON",
    "EmailMarkContract",
    "EventContract",
    "JitStateContract",
    "OpenStateStore",
    "RateLimitContract",
    "SecretContract",
    "StateStoreBase",
    "StateStoreContract",
    "TokenContract",
    "event",
]

#: The skip reason of the JIT tests on a store that does not implement ``JitStateStore``.
JIT_ABSENT_REASON = "state store does not implement JitStateStore (the JIT hook answers 503)"

#: The skip reason of the rate-limit tests on a store without ``RateLimitStore``.
RATE_LIMIT_ABSENT_REASON = (
    "state store does not implement RateLimitStore (the JIT hook keeps its token buckets in"
    " each process instead)"
)

#: The skip reason of the email mark tests on a store without ``EmailMarkStore``.
EMAIL_MARKS_ABSENT_REASON = (
    "state store does not implement EmailMarkStore (the JIT hook keeps the marks among its"
    " idempotency records instead)"
)


class OpenStateStore:
    """``await open_state_store()``: a new started instance on the test's store, as another
    scimd process would open it (``retention_days`` overrides ``events.retention_days``).
    ``await open_state_store.close(store)`` closes one early; the fixture closes the rest."""

    def __init__(self, factory: StateStoreFactory, settings: Settings) -> None:
        self._factory = factory
        self._settings = settings
        self._open: list[StateStore] = []

    async def __call__(self, *, retention_days: int | None = None) -> StateStore:
        settings = self._settings
        if retention_days is not None:
            events = EventSettings(retention_days=retention_days)
            settings = dataclasses.replace(settings, events=events)
        store = self._factory(settings)
        assert isinstance(store, StateStore), f"{store!r} does not implement StateStore"
        await store.start()
        self._open.append(store)
        return store

    async def close(self, store: StateStore) -> None:
        self._open.remove(store)
        await store.aclose()

    async def close_all(self) -> None:
        while self._open:
            await self._open.pop().aclose()


def event(n: int, **kw: Any) -> Event:
    """Event ``ev<n>`` of User ``u<n>`` at 2024-05-01 12:00 UTC + ``n`` minutes."""
    base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
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
    return Event(**fields)


class StateStoreBase:
    """Fixtures shared by the state store contract classes. Override
    ``state_store_factory`` and ``state_settings`` in the subclass that runs the suite."""

    pytestmark = [pytest.mark.asyncio(loop_scope="function")]

    # -- fixtures a plugin overrides ------------------------------------------------------

    @pytest.fixture
    def state_store_factory(self) -> StateStoreFactory:
        """The ``StateStoreFactory`` under test (``factory(settings) -> StateStore``)."""
        pytest.fail(
            "the state store suite needs a store: override the `state_store_factory` "
            "fixture in your StateStoreContract subclass"
        )

    @pytest.fixture
    def state_settings(self, tmp_path: Path) -> Settings:
        """Settings pointing the factory at a fresh, empty store (default: ``state.path``
        under ``tmp_path``, which is what the SQLite store reads)."""
        return Settings(base_dir=tmp_path)

    # -- fixtures the suite provides ------------------------------------------------------

    @pytest_asyncio.fixture(loop_scope="function")
    async def open_state_store(
        self, state_store_factory: StateStoreFactory, state_settings: Settings
    ) -> AsyncIterator[OpenStateStore]:
        """``await open_state_store()``: a new started instance on the test's store, as
        another scimd process would open it; every instance is closed after the test."""
        opener = OpenStateStore(state_store_factory, state_settings)
        try:
            yield opener
        finally:
            await opener.close_all()

    @pytest_asyncio.fixture(loop_scope="function")
    async def state_store(self, open_state_store: OpenStateStore) -> StateStore:
        """A started store on a fresh, empty store."""
        return await open_state_store()

    @pytest.fixture
    def jit_store(self, state_store: StateStore) -> JitStateStore:
        """The store as a ``JitStateStore``; skips (naming why) when it is not one."""
        if not isinstance(state_store, JitStateStore):
            pytest.skip(JIT_ABSENT_REASON)
        return state_store


# ==========================================================================================
# tokens
# ==========================================================================================


class TokenContract(StateStoreBase):
    """Bearer tokens: shown once, stored as a hash, verified in constant time."""

    async def test_implements_the_protocol(self, state_store: StateStore) -> None:
        assert isinstance(state_store, StateStore)

    async def test_use_before_start_is_an_error(
        self, state_store_factory: StateStoreFactory, state_settings: Settings
    ) -> None:
        with pytest.raises(RuntimeError, match="before start"):
            await state_store_factory(state_settings).count_tokens()

    async def test_restart_keeps_data(self, open_state_store: OpenStateStore) -> None:
        first = await open_state_store()
        record, token = await first.create_token(tenant="t", scopes=["read"])
        await open_state_store.close(first)
        again = await open_state_store()
        found = await again.verify_token(token)
        assert found is not None and found.id == record.id

    async def test_token_is_prefixed_and_random(self, state_store: StateStore) -> None:
        record, token = await state_store.create_token(tenant="acme", scopes=["read", "write"])
        assert token.startswith("scimd_")
        assert len(token) >= len("scimd_") + 43  # 32 random bytes, urlsafe base64
        assert record.id.startswith("tok_")
        assert record.id not in token
        assert record.scopes == ("read", "write")
        assert record.created.tzinfo is not None

    async def test_tokens_differ(self, state_store: StateStore) -> None:
        made = [await state_store.create_token(tenant="t", scopes=["read"]) for _ in range(5)]
        assert len({token for _, token in made}) == 5
        assert len({record.id for record, _ in made}) == 5

    async def test_verify_returns_the_record(self, state_store: StateStore) -> None:
        record, token = await state_store.create_token(
            tenant="acme", scopes=["write"], description="okta", me_user_id="u1"
        )
        got = await state_store.verify_token(token)
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
        ids=["empty", "prefix", "short", "bearer", "huge", "unknown", "nul"],
    )
    async def test_verify_rejects_unknown_tokens(
        self, state_store: StateStore, candidate: str
    ) -> None:
        await state_store.create_token(tenant="acme", scopes=["read"])
        assert await state_store.verify_token(candidate) is None

    async def test_verify_rejects_a_token_differing_in_one_character(
        self, state_store: StateStore
    ) -> None:
        _, token = await state_store.create_token(tenant="acme", scopes=["read"])
        flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert await state_store.verify_token(flipped) is None
        assert await state_store.verify_token(token + "x") is None
        assert await state_store.verify_token(token[:-1]) is None

    async def test_verify_compares_with_hmac_compare_digest(
        self, state_store: StateStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The final equality check is constant-time (``hmac.compare_digest``)."""
        calls: list[tuple[Any, Any]] = []
        real = hmac.compare_digest

        def spy(a: Any, b: Any) -> bool:
            calls.append((a, b))
            return real(a, b)

        _, token = await state_store.create_token(tenant="acme", scopes=["read"])
        monkeypatch.setattr(hmac, "compare_digest", spy)
        assert await state_store.verify_token(token) is not None
        assert any(bytes(a) == bytes(b) for a, b in calls), "hmac.compare_digest was not used"
        assert all(token.encode() not in (bytes(a), bytes(b)) for a, b in calls), (
            "the secret token itself was compared (compare its hash)"
        )

    async def test_revoke_is_seen_by_another_process(
        self, state_store: StateStore, open_state_store: OpenStateStore
    ) -> None:
        other = await open_state_store()
        record, token = await state_store.create_token(tenant="acme", scopes=["read"])
        assert await other.verify_token(token) is not None
        assert await state_store.count_tokens() == 1
        assert await other.revoke_token(record.id) is True
        assert await state_store.verify_token(token) is None
        assert await state_store.revoke_token(record.id) is False  # already revoked
        assert await state_store.revoke_token("tok_missing") is False
        assert await state_store.count_tokens() == 0
        (listed,) = await state_store.list_tokens()
        assert listed.id == record.id and listed.revoked is not None

    async def test_list_tokens_by_tenant(self, state_store: StateStore) -> None:
        a, _ = await state_store.create_token(tenant="a", scopes=["read"])
        b, _ = await state_store.create_token(tenant="b", scopes=["read", "write"])
        assert [t.id for t in await state_store.list_tokens()] == [a.id, b.id]
        assert [t.id for t in await state_store.list_tokens("b")] == [b.id]
        assert await state_store.list_tokens("nobody") == []
        assert await state_store.count_tokens() == 2

    @pytest.mark.parametrize("scopes", [[], ["admin"], ["read", "delete"]])
    async def test_invalid_scopes_are_refused(
        self, state_store: StateStore, scopes: list[str]
    ) -> None:
        with pytest.raises(ValueError, match="scopes"):
            await state_store.create_token(tenant="a", scopes=scopes)
        assert await state_store.count_tokens() == 0

    async def test_verify_records_last_used(self, state_store: StateStore) -> None:
        _, token = await state_store.create_token(tenant="a", scopes=["read"])
        (before,) = await state_store.list_tokens()
        assert before.last_used is None
        await state_store.verify_token(token)
        (after,) = await state_store.list_tokens()
        assert after.last_used is not None and after.last_used >= before.created


# ==========================================================================================
# events
# ==========================================================================================


class EventContract(StateStoreBase):
    """The provisioning event log: filters, order, limit, idempotent recording."""

    async def test_events_roundtrip_and_filters(self, state_store: StateStore) -> None:
        await state_store.record_events(
            [
                event(1),
                event(2, type="scim.group.patched", resource_type="Group", resource_id="g1"),
                event(3, tenant="other"),
                event(4, resource_id="u1", type="scim.user.deleted"),
                event(5, type="jit.login.denied", resource_id=None, data={"reason": "policy"}),
            ]
        )
        all_ = await state_store.list_events()
        assert [e.id for e in all_] == ["ev1", "ev2", "ev3", "ev4", "ev5"]
        assert all_[0] == event(1)
        assert all_[4].resource_id is None and all_[4].data == {"reason": "policy"}

        async def ids(**kw: Any) -> list[str]:
            return [e.id for e in await state_store.list_events(**kw)]

        assert await ids(tenant="other") == ["ev3"]
        assert await ids(resource_id="u1") == ["ev1", "ev4"]
        assert await ids(type_prefix="scim.user") == ["ev1", "ev3", "ev4"]
        assert await ids(type_prefix="scim.group.patched") == ["ev2"]
        assert await ids(type_prefix="jit.") == ["ev5"]
        assert await ids(since=datetime(2024, 5, 1, 12, 3, tzinfo=UTC)) == ["ev3", "ev4", "ev5"]
        assert await ids(tenant="default", type_prefix="scim.user", since=all_[1].time) == ["ev4"]
        assert await ids(limit=2) == ["ev4", "ev5"]  # the newest, oldest first

    async def test_type_prefix_is_not_a_pattern(self, state_store: StateStore) -> None:
        await state_store.record_events([event(1), event(2, type="scim_user_created")])
        assert [e.id for e in await state_store.list_events(type_prefix="scim_")] == ["ev2"]
        assert await state_store.list_events(type_prefix="%") == []

    async def test_recording_the_same_event_twice_is_harmless(
        self, state_store: StateStore
    ) -> None:
        await state_store.record_events([event(1)])
        await state_store.record_events([event(1), event(2)])
        assert [e.id for e in await state_store.list_events()] == ["ev1", "ev2"]

    async def test_events_are_seen_by_another_process(
        self, state_store: StateStore, open_state_store: OpenStateStore
    ) -> None:
        other = await open_state_store()
        await state_store.record_events([event(1)])
        assert [e.id for e in await other.list_events()] == ["ev1"]

    async def test_old_events_are_pruned_at_start(self, open_state_store: OpenStateStore) -> None:
        """``events.retention_days`` reaches the store through the factory's settings."""
        first = await open_state_store(retention_days=30)
        now = datetime.now(UTC)
        await first.record_events([event(1, time=now - timedelta(days=31)), event(2, time=now)])
        await open_state_store.close(first)
        again = await open_state_store(retention_days=30)
        assert [e.id for e in await again.list_events()] == ["ev2"]


# ==========================================================================================
# server secrets
# ==========================================================================================


class SecretContract(StateStoreBase):
    """``get_or_create_secret``: the cursor signing key every process shares."""

    async def test_secret_is_created_once_and_shared(
        self, state_store: StateStore, open_state_store: OpenStateStore
    ) -> None:
        other = await open_state_store()
        # Both ask at once for a secret that does not exist yet: both get the winner's.
        mine, theirs = await asyncio.gather(
            state_store.get_or_create_secret("cursor"), other.get_or_create_secret("cursor")
        )
        assert mine == theirs
        assert isinstance(mine, bytes) and len(mine) == 32
        assert await state_store.get_or_create_secret("cursor") == mine
        assert await state_store.get_or_create_secret("other") != mine
        assert len(await state_store.get_or_create_secret("short", 16)) == 16

    async def test_secret_survives_a_restart(self, open_state_store: OpenStateStore) -> None:
        first = await open_state_store()
        key = await first.get_or_create_secret("cursor")
        await open_state_store.close(first)
        again = await open_state_store()
        assert await again.get_or_create_secret("cursor") == key


# ==========================================================================================
# JIT state
# ==========================================================================================


class JitStateContract(StateStoreBase):
    """``JitStateStore``: identity links, tombstones, replay and idempotency caches."""

    async def test_implements_the_jit_protocol(self, jit_store: JitStateStore) -> None:
        assert isinstance(jit_store, JitStateStore)

    async def test_identity_links_first_writer_wins_unless_replace(
        self, jit_store: JitStateStore
    ) -> None:
        assert await jit_store.get_identity_link("t", "okta", "s") is None
        assert await jit_store.put_identity_link("t", "okta", "s", "u1") == "u1"
        assert await jit_store.put_identity_link("t", "okta", "s", "u2") == "u1"
        assert await jit_store.get_identity_link("t", "okta", "s") == "u1"
        assert await jit_store.get_identity_link("other", "okta", "s") is None  # tenant-scoped
        assert await jit_store.put_identity_link("t", "okta", "s", "u2", replace=True) == "u2"
        await jit_store.put_identity_link("t", "entra", "x", "u2")
        assert await jit_store.identity_links_of("t", "u2") == [("entra", "x"), ("okta", "s")]
        assert await jit_store.identity_links_of("t", "u1") == []
        assert await jit_store.identity_links_of("other", "u2") == []

    async def test_concurrent_links_of_one_subject_agree(
        self, jit_store: JitStateStore, open_state_store: OpenStateStore
    ) -> None:
        other = await open_state_store()
        assert isinstance(other, JitStateStore)
        stores = (jit_store, other)
        got = await asyncio.gather(
            *(stores[n % 2].put_identity_link("t", "okta", "sub", f"u{n}") for n in range(10))
        )
        assert len(set(got)) == 1
        assert await other.get_identity_link("t", "okta", "sub") == got[0]

    async def test_tombstones(self, jit_store: JitStateStore) -> None:
        assert await jit_store.find_tombstone("t", []) is None
        await jit_store.add_tombstone("t", "u1", ["externalId:e1", "email:a@example.com"])
        assert await jit_store.find_tombstone("t", ["id:u1"]) == "u1"  # id key always added
        assert await jit_store.find_tombstone("t", ["email:x", "externalId:e1"]) == "u1"
        assert await jit_store.find_tombstone("other", ["externalId:e1"]) is None
        await jit_store.add_tombstone("t", "u2", ["email:a@example.com"])  # the newest wins
        assert await jit_store.find_tombstone("t", ["email:a@example.com"]) == "u2"
        await jit_store.remove_tombstone("t", "u2")
        assert await jit_store.find_tombstone("t", ["email:a@example.com", "id:u2"]) is None
        assert await jit_store.find_tombstone("t", ["id:u1"]) == "u1"

    async def test_replay_claims_are_one_time_until_expiry(self, jit_store: JitStateStore) -> None:
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert await jit_store.claim_replay("okta:jti:1", later) is True
        assert await jit_store.claim_replay("okta:jti:1", later) is False
        past = datetime.now(UTC) - timedelta(seconds=1)
        assert await jit_store.claim_replay("okta:jti:2", past) is True
        # An expired claim is pruned, so the key can be claimed again.
        assert await jit_store.claim_replay("okta:jti:2", later) is True
        results = await asyncio.gather(*(jit_store.claim_replay("race", later) for _ in range(8)))
        assert results.count(True) == 1

    async def test_idempotency_records(self, jit_store: JitStateStore) -> None:
        later = datetime.now(UTC) + timedelta(hours=1)
        rec = IdempotencyRecord("gw", "msg_1", "ab" * 32, 201, b'{"ok":true}', later)
        assert await jit_store.get_idempotency("gw", "msg_1") is None
        await jit_store.put_idempotency(rec)
        got = await jit_store.get_idempotency("gw", "msg_1")
        assert got is not None
        assert (got.caller, got.key) == ("gw", "msg_1")
        assert (got.body_sha256, got.status, got.response) == ("ab" * 32, 201, b'{"ok":true}')
        await jit_store.put_idempotency(
            IdempotencyRecord("gw", "msg_1", "cd" * 32, 500, b"x", later)
        )
        again = await jit_store.get_idempotency("gw", "msg_1")
        assert again is not None and again.status == 201  # the first response stays
        assert await jit_store.get_idempotency("other", "msg_1") is None
        expired = IdempotencyRecord("gw", "old", "00", 200, b"", datetime.now(UTC) - timedelta(1))
        await jit_store.put_idempotency(expired)
        assert await jit_store.get_idempotency("gw", "old") is None

    @pytest.mark.parametrize(
        "key", ["email:a\x00b", "email:%", "email:_", "' OR 1=1 --", "ü" * 300]
    )
    async def test_odd_keys_are_data_or_a_client_error(
        self, jit_store: JitStateStore, key: str
    ) -> None:
        """Keys come from IdP claims: an odd one is stored as data or refused with a SCIM
        error (a 4xx), never a driver error (a 500), and never matched as a pattern."""
        try:
            await jit_store.add_tombstone("t", "u1", [key])
        except ScimError as exc:
            assert exc.status < 500, exc
            return
        assert await jit_store.find_tombstone("t", [key]) == "u1"
        assert await jit_store.find_tombstone("t", ["email:ab", "email:x"]) is None


class EmailMarkContract(StateStoreBase):
    """``EmailMarkStore``: emails a JIT email change gave a user, unverified for
    link-by-email until the user is deleted (JIT.md "A JIT email change marks the email
    unverified")."""

    @pytest.fixture
    def mark_store(self, state_store: StateStore) -> EmailMarkStore:
        """The store as an ``EmailMarkStore``; skips (naming why) when it is not one."""
        if not isinstance(state_store, EmailMarkStore):
            pytest.skip(EMAIL_MARKS_ABSENT_REASON)
        return state_store

    async def test_marks_are_per_tenant_user_and_address(self, mark_store: EmailMarkStore) -> None:
        assert await mark_store.email_unverified("t", "u1", "a@example.com") is False
        await mark_store.mark_email_unverified("t", "u1", "a@example.com")
        await mark_store.mark_email_unverified("t", "u1", "a@example.com")  # harmless twice
        assert await mark_store.email_unverified("t", "u1", "a@example.com") is True
        assert await mark_store.email_unverified("t", "u2", "a@example.com") is False
        assert await mark_store.email_unverified("other", "u1", "a@example.com") is False
        assert await mark_store.email_unverified("t", "u1", "b@example.com") is False

    async def test_clearing_forgets_every_mark_of_that_user_only(
        self, mark_store: EmailMarkStore
    ) -> None:
        for email in ("a@example.com", "b@example.com"):
            await mark_store.mark_email_unverified("t", "u1", email)
        await mark_store.mark_email_unverified("t", "u2", "a@example.com")
        await mark_store.mark_email_unverified("other", "u1", "a@example.com")
        await mark_store.clear_email_marks("t", "u1")
        assert await mark_store.email_unverified("t", "u1", "a@example.com") is False
        assert await mark_store.email_unverified("t", "u1", "b@example.com") is False
        assert await mark_store.email_unverified("t", "u2", "a@example.com") is True
        assert await mark_store.email_unverified("other", "u1", "a@example.com") is True

    async def test_marks_are_seen_by_another_process(
        self, mark_store: EmailMarkStore, open_state_store: OpenStateStore
    ) -> None:
        await mark_store.mark_email_unverified("t", "u1", "a@example.com")
        other = await open_state_store()
        assert isinstance(other, EmailMarkStore)
        assert await other.email_unverified("t", "u1", "a@example.com") is True
        await other.clear_email_marks("t", "u1")
        assert await mark_store.email_unverified("t", "u1", "a@example.com") is False


class RateLimitContract(StateStoreBase):
    """``RateLimitStore``: the JIT hook's token buckets, shared by every process on the
    store so that N workers together allow ``jit.rate_limit``, not N times it."""

    @pytest.fixture
    def rate_store(self, state_store: StateStore) -> RateLimitStore:
        """The store as a ``RateLimitStore``; skips (naming why) when it is not one."""
        if not isinstance(state_store, RateLimitStore):
            pytest.skip(RATE_LIMIT_ABSENT_REASON)
        return state_store

    async def test_a_bucket_bursts_then_refills_at_the_rate(
        self, rate_store: RateLimitStore
    ) -> None:
        now = 1000.0
        takes = [await rate_store.take_rate_token("caller:gw", 0.5, 2, now) for _ in range(3)]
        assert takes[:2] == [0.0, 0.0]
        assert takes[2] == pytest.approx(2.0)  # one token every 1/rate seconds
        assert await rate_store.take_rate_token("caller:other", 0.5, 2, now) == 0.0  # per key
        assert await rate_store.take_rate_token("caller:gw", 0.5, 2, now + 2.0) == 0.0
        assert await rate_store.take_rate_token("caller:gw", 0.5, 2, now + 2.0) > 0
        # Never more than the burst, however long it was idle.
        later = now + 10_000
        waits = [await rate_store.take_rate_token("caller:gw", 0.5, 2, later) for _ in range(3)]
        assert waits[:2] == [0.0, 0.0] and waits[2] > 0

    async def test_a_refund_gives_back_one_token_up_to_the_burst(
        self, rate_store: RateLimitStore
    ) -> None:
        now = 1000.0
        for _ in range(2):
            assert await rate_store.take_rate_token("idp:okta", 0.001, 2, now) == 0.0
        assert await rate_store.take_rate_token("idp:okta", 0.001, 2, now) > 0
        for _ in range(3):
            await rate_store.refund_rate_token("idp:okta", 2)
        waits = [await rate_store.take_rate_token("idp:okta", 0.001, 2, now) for _ in range(3)]
        assert [w == 0.0 for w in waits] == [True, True, False]

    async def test_buckets_are_shared_with_another_process(
        self, rate_store: RateLimitStore, open_state_store: OpenStateStore
    ) -> None:
        other = await open_state_store()
        assert isinstance(other, RateLimitStore)
        now = 1000.0
        # Many takers at once across both processes: exactly the burst gets through.
        waits = await asyncio.gather(
            *(s.take_rate_token("caller:shared", 0.001, 5, now) for s in (rate_store, other) * 8)
        )
        assert sum(1 for w in waits if w == 0.0) == 5


class StateStoreContract(
    TokenContract,
    EventContract,
    SecretContract,
    JitStateContract,
    EmailMarkContract,
    RateLimitContract,
):
    """The whole state store contract. Subclass it as ``Test<YourStore>StateContract`` and
    override the ``state_store_factory`` and ``state_settings`` fixtures."""
