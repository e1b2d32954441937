"""The state store contract: scimd's own data, apart from the resources.

Tokens (hashed), provisioning events (the audit log), and later JIT identity links,
tombstones, replay and idempotency caches. SQLite by default (``scimd.state.sqlite``),
PostgreSQL for several scimd processes (plugin). Provided through the
``scimd_state_stores`` hook.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "TOKEN_PREFIX",
    "VALID_SCOPES",
    "EmailMarkStore",
    "Event",
    "IdempotencyRecord",
    "JitStateStore",
    "StateStore",
    "TokenRecord",
    "hash_token",
    "new_token",
]

TOKEN_PREFIX = "scimd_"  # noqa: S105 - a public prefix, not a secret
"""Every scimd bearer token starts with this; anything else is refused before hashing."""
VALID_SCOPES = ("read", "write")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A bearer token as stored: never the token itself, only its hash."""

    id: str
    """Public token id (safe to log and show), e.g. ``tok_3f9a...``."""
    tenant: str
    scopes: tuple[str, ...]
    """Subset of ``("read", "write")``."""
    created: datetime
    description: str = ""
    me_user_id: str | None = None
    """User bound to the token for /Me (RFC 7644 3.11), if any."""
    revoked: datetime | None = None
    last_used: datetime | None = None


def hash_token(token: str) -> bytes:
    """SHA-256 of the token: tokens are 32 random bytes, so a fast hash is enough (no
    dictionary to guess from), and verification stays one indexed lookup."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token(
    *, tenant: str, scopes: Sequence[str], description: str = "", me_user_id: str | None = None
) -> tuple[TokenRecord, str]:
    """A fresh token and its record, for a state store's ``create_token`` to store hashed.

    Raises ``ValueError`` for an empty tenant or scopes outside ``VALID_SCOPES``.
    """
    if not tenant:
        raise ValueError("tenant must not be empty")
    wanted = tuple(s for s in VALID_SCOPES if s in set(scopes))
    if not wanted or set(scopes) - set(VALID_SCOPES):
        raise ValueError(f"scopes must be a non-empty subset of {VALID_SCOPES}, got {scopes}")
    record = TokenRecord(
        id="tok_" + secrets.token_hex(8),
        tenant=tenant,
        scopes=wanted,
        created=datetime.now(UTC),
        description=description,
        me_user_id=me_user_id,
    )
    return record, TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Event:
    """A provisioning event (audit log entry)."""

    id: str
    type: str
    """``scim.user.created``, ``scim.group.patched``, ``jit.login.denied`` ..."""
    time: datetime
    tenant: str
    resource_type: str | None = None
    resource_id: str | None = None
    actor: str | None = None
    """Token id / principal, never a secret."""
    request_id: str | None = None
    changed_attributes: tuple[str, ...] = ()
    """Names only; never values (and never values of returned=never attributes)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Extra non-secret details (outcome, reason, idp...)."""


@runtime_checkable
class StateStore(Protocol):
    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    # tokens ---------------------------------------------------------------
    async def create_token(
        self,
        *,
        tenant: str,
        scopes: Sequence[str],
        description: str = "",
        me_user_id: str | None = None,
    ) -> tuple[TokenRecord, str]:
        """Create a token; return its record and the secret token (shown once; only a hash
        is stored)."""

    async def verify_token(self, token: str) -> TokenRecord | None:
        """The record of an active (not revoked) token, compared in constant time, or None."""

    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]: ...

    async def revoke_token(self, token_id: str) -> bool:
        """Revoke by id; False if there is no such active token."""

    async def count_tokens(self) -> int:
        """Number of active tokens across tenants."""

    # events ---------------------------------------------------------------
    async def record_events(self, events: Sequence[Event]) -> None: ...

    async def list_events(
        self,
        *,
        tenant: str | None = None,
        resource_id: str | None = None,
        type_prefix: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[Event]: ...

    # server secrets ---------------------------------------------------------
    async def get_or_create_secret(self, name: str, size: int = 32) -> bytes:
        """A random secret of ``size`` bytes kept under ``name`` (e.g. the cursor signing
        key), created at first use; every process sharing the store gets the same one."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A JIT response kept for idempotent retries (same caller and ``webhook-id``)."""

    caller: str
    key: str
    body_sha256: str
    """SHA-256 (hex) of the request body: same key + other body is a 409."""
    status: int
    response: bytes
    expires: datetime


@runtime_checkable
class JitStateStore(Protocol):
    """What the JIT hook needs beyond ``StateStore`` (the SQLite store implements it; the
    hook answers 503 on a store that does not). Keys are tenant-scoped where they name a
    user."""

    async def get_identity_link(self, tenant: str, idp: str, subject: str) -> str | None:
        """The user id linked to ``(idp, subject)``, if any."""

    async def put_identity_link(
        self, tenant: str, idp: str, subject: str, user_id: str, *, replace: bool = False
    ) -> str:
        """Link ``(idp, subject)`` to ``user_id`` unless already linked (then, with
        ``replace``, re-link); return the user id linked afterwards (the winner of a race)."""

    async def identity_links_of(self, tenant: str, user_id: str) -> list[tuple[str, str]]:
        """``(idp, subject)`` pairs linked to a user."""

    async def add_tombstone(self, tenant: str, user_id: str, keys: Sequence[str]) -> None:
        """Remember a SCIM-deleted user under ``keys`` (``id:<id>``, ``externalId:<v>``,
        ``email:<normalised>`` ...)."""

    async def find_tombstone(self, tenant: str, keys: Sequence[str]) -> str | None:
        """The deleted user id recorded under any of ``keys``, if any."""

    async def remove_tombstone(self, tenant: str, user_id: str) -> None: ...

    async def claim_replay(self, key: str, expires: datetime) -> bool:
        """Record a one-time ``key`` until ``expires``; False if it is already recorded."""

    async def get_idempotency(self, caller: str, key: str) -> IdempotencyRecord | None:
        """The unexpired record for ``(caller, key)``, if any."""

    async def put_idempotency(self, record: IdempotencyRecord) -> None: ...


@runtime_checkable
class EmailMarkStore(Protocol):
    """Emails a JIT email change gave a user (JIT.md: "A JIT email change marks the email
    unverified"): such an address never links another IdP subject to that user by email.
    Kept per (tenant, user id, normalised address) until the user is deleted. A state
    store without it keeps the marks among the JIT idempotency records instead."""

    async def mark_email_unverified(self, tenant: str, user_id: str, email: str) -> None:
        """Record that ``email`` (normalised) came to ``user_id`` through a JIT change."""

    async def email_unverified(self, tenant: str, user_id: str, email: str) -> bool:
        """Whether ``email`` is marked unverified for ``user_id``."""

    async def clear_email_marks(self, tenant: str, user_id: str) -> None:
        """Forget every mark of a user (its deletion)."""


@runtime_checkable
class RateLimitStore(Protocol):
    """Token buckets shared by every scimd process using this store (the JIT hook's
    ``jit.rate_limit``/``jit.rate_burst`` per caller and per IdP), so that N workers or N
    hosts together allow the configured rate, not N times it. A state store without it
    leaves the buckets in each process."""

    async def take_rate_token(self, key: str, rate: float, burst: int, now: float) -> float:
        """Take one token from bucket ``key`` (``burst`` tokens at most, refilled at
        ``rate`` per second; ``now``: Unix time): 0.0 if taken, else the seconds until the
        next token. Atomic against concurrent takers in other processes."""

    async def refund_rate_token(self, key: str, burst: int) -> None:
        """Give back a token taken by a request that another bucket then refused."""
