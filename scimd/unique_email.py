"""The normalised primary email is unique per tenant (``scim.unique_email``; JIT.md "Email
normalisation", issue 7 item 4), whichever door created the user: SCIM POST/PUT/PATCH, Bulk
or a JIT login all write through :class:`scimd.service.Service`, which calls this guard.

* The key of a User is the normalised form (:func:`scimd.jit.email.normalize_email`: NFC,
  trimmed, domain lower-cased and IDNA-encoded, local part lower-cased, ``+tags`` and dots
  kept) of its primary email: the ``emails`` entry with ``primary: true``, else the first
  entry. A value that is not a usable address has no key (and is not checked).
* Candidates are found with a backend query over the spellings that can denote the same
  key (``emails.value eq``: the normalised address, the original, the Unicode form of an
  IDNA domain, and their NFD forms; ``emails.value`` is caseExact=false, so case is folded
  by the backend), then compared exactly by key: only another user's *primary* email
  conflicts. A write that would duplicate a key is 409 ``uniqueness`` naming the email.
* A write keeping the key the user already had is allowed even when (legacy) data
  already holds a duplicate, so existing users stay editable.

Race safety: a backend that declares ``"email"`` in ``Capabilities.unique_keys`` (the
embedded store does) enforces the key itself, in the write's own transaction, against a
unique index (``scimd.store.unique_keys``): the service only asks for it through
``OpContext.unique_keys`` and this guard's query check is skipped; that is safe across
several scimd processes sharing one database. For other backends this guard is the
fallback: check and write happen under a per-``(tenant, key)`` asyncio lock, so within one
process two writes of the same email are serialised, but across processes the check is not
atomic with the write (see docs/jit.md "Email as the primary identifier").
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import idna
import orjson

from scimd.backend import OpContext, PatchOp
from scimd.errors import PreconditionFailed
from scimd.jit.email import NormalizedEmail
from scimd.locks import KeyedLocks
from scimd.patch import apply_patch
from scimd.schema.model import ResourceType
from scimd.store.unique_keys import EMAIL, email_conflict, primary_email

if TYPE_CHECKING:
    from scimd.service import Service

__all__ = ["EmailGuard", "email_forms", "primary_email"]

_USER = "User"
_CANDIDATES = 50
_RETRIES = 10


@functools.lru_cache(maxsize=4096)
def _unicode_domain(domain: str) -> str:
    """The Unicode form of an IDNA domain (itself if it does not decode), cached: a
    tenant's users share a few domains (a bulk import asks for every user's)."""
    try:
        return str(idna.decode(domain))
    except idna.IDNAError:
        return domain


def email_forms(email: NormalizedEmail) -> list[str]:
    """Spellings of ``email`` a case-insensitive ``eq`` must try to find every stored
    value with the same key (IDNA and Unicode domain, NFC and NFD)."""
    forms = [email.address, email.original]
    unicode_domain = _unicode_domain(email.domain)
    if unicode_domain != email.domain:
        forms.append(f"{email.local}@{unicode_domain}")
    forms += [unicodedata.normalize("NFD", f) for f in forms]
    return list(dict.fromkeys(forms))


def _touches_emails(rtype: ResourceType, ops: Sequence[PatchOp]) -> bool:
    core = rtype.schema.id.lower()
    for op in ops:
        if op.path is None:
            if isinstance(op.value, Mapping) and any(
                str(k).lower() in ("emails", f"{core}:emails") for k in op.value
            ):
                return True
        elif op.path.attr.attr.lower() == "emails" and (
            op.path.attr.uri is None or op.path.attr.uri.lower() == core
        ):
            return True
    return False


class EmailGuard:
    """Checks the uniqueness of primary emails for one ``Service``."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.enabled = service.settings.scim.unique_email
        self._locks = KeyedLocks()

    def applies(self, rtype: ResourceType) -> bool:
        return self.enabled and rtype.name == _USER

    def native(self, rtype: ResourceType) -> bool:
        """The backend enforces the key itself, atomically with the write
        (``Capabilities.unique_keys``): no in-process check is needed."""
        caps = self.service.backend.capabilities
        return self.applies(rtype) and EMAIL in getattr(caps, "unique_keys", frozenset())

    def write_ctx(self, ctx: OpContext, rtype: ResourceType) -> OpContext:
        """``ctx`` asking the backend to enforce the email key, when it can."""
        if not self.native(rtype) or EMAIL in ctx.unique_keys:
            return ctx
        return dataclasses.replace(ctx, unique_keys=ctx.unique_keys | {EMAIL})

    @contextlib.asynccontextmanager
    async def guard(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        resource: Mapping[str, Any],
        rid: str | None,
    ) -> AsyncIterator[None]:
        """Hold the email's lock and refuse a duplicate (409) while the write runs."""
        email = primary_email(resource) if self.applies(rtype) else None
        if email is None or self.native(rtype):
            yield
            return
        async with self._locks.hold((ctx.tenant, email.address)):
            await self.check(ctx, rtype, email, rid)
            yield

    async def check(
        self, ctx: OpContext, rtype: ResourceType, email: NormalizedEmail, rid: str | None
    ) -> None:
        """409 ``uniqueness`` if another user's primary email has ``email``'s key, unless
        ``rid`` already had that key (legacy duplicates stay editable)."""
        text = " or ".join(
            f"emails.value eq {orjson.dumps(f).decode()}" for f in email_forms(email)
        )
        from scimd.service import ListParams

        read = dataclasses.replace(
            ctx, attributes=("id", "emails"), load_members=False, load_groups=False
        )
        found = await self.service.query(read, rtype, ListParams(filter=text, count=_CANDIDATES))
        clash = [
            r
            for r in found.resources
            if r.get("id") != rid and _key(primary_email(r)) == email.address
        ]
        if not clash:
            return
        if rid is not None:
            with contextlib.suppress(Exception):
                current = await self.service.backend.get(read, rtype, rid)
                if _key(primary_email(current)) == email.address:
                    return
        raise email_conflict(email.original)

    def patch_touches(self, rtype: ResourceType, ops: Sequence[PatchOp]) -> bool:
        return self.applies(rtype) and not self.native(rtype) and _touches_emails(rtype, ops)

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        if_match: str | None,
        write: Callable[[str | None], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """A PATCH that touches ``emails``: predict its result on the version read, check
        the resulting primary email, then ``write(version)`` conditionally on that version.

        Clients such as Entra ID and Okta never send ``If-Match``, so a version conflict
        must not become a 412 for them: email PATCHes of one user are serialised in this
        process (so they cannot conflict with each other), and a conflict with another
        write (another process, or a PATCH that does not touch emails) is retried up to
        ``_RETRIES`` times on the new version. With ``If-Match`` the client asked for the
        check, so a conflict is its 412."""
        read = dataclasses.replace(ctx, load_members=False, load_groups=False)
        async with self._locks.hold((ctx.tenant, f"resource:{rtype.name}:{rid}")):
            attempt = 0
            while True:
                attempt += 1
                current = await self.service.backend.get(read, rtype, rid)
                meta = current.get("meta")
                version = if_match
                if version is None and isinstance(meta, Mapping):
                    version = meta.get("version")
                unknown = self.service.settings.schema.unknown_attributes
                predicted = apply_patch(rtype, current, ops, unknown=unknown).resource
                try:
                    async with self.guard(ctx, rtype, predicted, rid):
                        return await write(version)
                except PreconditionFailed:
                    if if_match is not None or attempt >= _RETRIES:
                        raise


def _key(email: NormalizedEmail | None) -> str | None:
    return email.address if email is not None else None
