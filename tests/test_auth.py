"""Bearer-token authentication (scimd.auth) against the real SQLite state store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scimd.auth import Principal, TokenAuthenticator, require_scope
from scimd.errors import Forbidden, Unauthorized
from scimd.state.sqlite import SqliteStateStore


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    store = SqliteStateStore(tmp_path / "state.db")
    await store.start()
    yield store
    await store.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_valid_token_gives_principal(state: SqliteStateStore) -> None:
    record, token = await state.create_token(tenant="acme", scopes=("read",), me_user_id="u1")
    auth = TokenAuthenticator(state)
    principal = await auth.authenticate(f"Bearer {token}")
    assert principal == Principal(record.id, "acme", frozenset({"read"}), "u1")
    # scheme is case-insensitive (RFC 7235)
    assert (await auth.authenticate(f"bearer {token}")).tenant == "acme"


@pytest.mark.parametrize(
    "header", [None, "", "non-token", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"]
)
async def test_missing_or_malformed_is_401(state: SqliteStateStore, header: str | None) -> None:
    auth = TokenAuthenticator(state)
    with pytest.raises(Unauthorized) as info:
        await auth.authenticate(header)
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_token_is_401(state: SqliteStateStore) -> None:
    with pytest.raises(Unauthorized):
        await TokenAuthenticator(state).authenticate("Bearer scimd_unknown")


async def test_revocation_takes_effect_after_ttl(state: SqliteStateStore) -> None:
    record, token = await state.create_token(tenant="t", scopes=("read", "write"))
    clock = Clock()
    auth = TokenAuthenticator(state, ttl=5.0, clock=clock)
    await auth.authenticate(f"Bearer {token}")
    assert await state.revoke_token(record.id)
    # Within the TTL the cached verification still answers (documented trade-off) ...
    await auth.authenticate(f"Bearer {token}")
    clock.now += 5.1
    # ... after it, the revocation is seen.
    with pytest.raises(Unauthorized):
        await auth.authenticate(f"Bearer {token}")


async def test_no_cache_when_ttl_zero(state: SqliteStateStore) -> None:
    record, token = await state.create_token(tenant="t", scopes=("read",))
    auth = TokenAuthenticator(state, ttl=0)
    await auth.authenticate(f"Bearer {token}")
    await state.revoke_token(record.id)
    with pytest.raises(Unauthorized):
        await auth.authenticate(f"Bearer {token}")


def test_require_scope() -> None:
    p = Principal("tok_1", "t", frozenset({"read"}))
    require_scope(p, "read")
    with pytest.raises(Forbidden):
        require_scope(p, "write")
