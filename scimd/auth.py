"""Bearer-token authentication, tenants and scopes.

A client sends ``Authorization: Bearer <token>``. The token is verified by the state store
(which keeps only a hash and compares in constant time) and becomes a ``Principal``: the
token id (safe to log), the tenant every operation is scoped to, the scopes and the user
bound to the token for ``/Me``.

Verified tokens are cached in-process for ``ttl`` seconds (default 5) keyed by the SHA-256
of the token, so the hot GET-by-id path does not hit the state store on every request.
Consequence: a revoked token keeps working in a process for at most ``ttl`` seconds.
Unknown tokens are never cached (a later-created token works at once).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from scimd.errors import Forbidden, Unauthorized
from scimd.state.base import StateStore, TokenRecord

__all__ = ["READ", "WRITE", "Principal", "TokenAuthenticator", "require_scope"]

READ = "read"
WRITE = "write"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: derived from a verified token, never containing the token."""

    token_id: str
    tenant: str
    scopes: frozenset[str]
    me_user_id: str | None = None

    @classmethod
    def from_record(cls, record: TokenRecord) -> Principal:
        return cls(
            token_id=record.id,
            tenant=record.tenant,
            scopes=frozenset(record.scopes),
            me_user_id=record.me_user_id,
        )


def require_scope(principal: Principal, scope: str) -> None:
    """Raise 403 ``Forbidden`` unless the principal holds ``scope``."""
    if scope not in principal.scopes:
        raise Forbidden(f"This token lacks the {scope!r} scope")


class TokenAuthenticator:
    """Turns an ``Authorization`` header into a ``Principal`` (or raises 401).

    :param state: the state store that verifies tokens.
    :param ttl: seconds a verified token stays cached in this process; revocation takes
        effect within this delay. ``0`` disables the cache.
    :param max_entries: cache size bound; the cache is cleared when it is reached.
    """

    def __init__(
        self,
        state: StateStore,
        *,
        ttl: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    def invalidate(self) -> None:
        """Forget every cached token (e.g. after a revocation in this process)."""
        self._cache.clear()

    async def authenticate(self, header: str | None) -> Principal:
        """Verify ``Authorization: Bearer <token>``; 401 with ``WWW-Authenticate`` when it
        is missing, malformed or unknown."""
        if not header:
            raise Unauthorized("Missing Authorization header")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "Malformed Authorization header: expected 'Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="scimd", error="invalid_request"'},
            )
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = self._clock()
        if self._ttl > 0:
            hit = self._cache.get(key)
            if hit is not None:
                if hit[0] > now:
                    return hit[1]
                del self._cache[key]
        record = await self._state.verify_token(token)
        if record is None or record.revoked is not None:
            raise Unauthorized(
                "Invalid or revoked bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="scimd", error="invalid_token"'},
            )
        principal = Principal.from_record(record)
        if self._ttl > 0:
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[key] = (now + self._ttl, principal)
        return principal
