"""The service layer: every SCIM operation, whichever door it came through.

HTTP views, Bulk and JIT call ``Service``; nothing else talks to the backend. Here live
the rules that must be identical for all of them: input normalisation, password hashing,
PUT semantics (readOnly/immutable carried over, no lost updates), PATCH parsing, the
projection-driven ``load_members``/``load_groups`` flags, filter planning with a bounded
in-memory residual, sorting, index and cursor paging, and provisioning events.

Resources returned by ``Service`` are the stored representation (un-projected, without
``meta.location``); the caller projects and renders them. Values of ``returned: never``
attributes (the password hash) are removed before anything is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher

from scimd.backend import Backend, Keyset, OpContext, Outbox, Page, PatchOp, Query, SortSpec
from scimd.errors import (
    BadRequest,
    InvalidCursor,
    InvalidFilter,
    InvalidSyntax,
    InvalidValue,
    NotFound,
    PreconditionFailed,
    ScimError,
)
from scimd.events import EventEmitter, make_event
from scimd.patch import parse_patch_request
from scimd.query.ast import AttrPath, Filter
from scimd.query.evaluate import matches
from scimd.query.filter_cache import FilterCache, FilterShape
from scimd.query.paging import CursorCodec, clamp_index, query_fingerprint
from scimd.query.parse import parse_attr_path
from scimd.query.planner import plan
from scimd.query.sort import sort_key
from scimd.schema.model import AttributeDef, ResourceType, SchemaRegistry
from scimd.schema.project import wants
from scimd.schema.validate import merge_for_replace, normalize_resource
from scimd.settings import Settings
from scimd.state.base import Event, StateStore
from scimd.unique_email import EmailGuard

__all__ = ["ListParams", "ListResult", "Service"]

_PASSWORD = "password"  # noqa: S105 - the attribute name, not a secret
_REPLACE_RETRIES = 3
_FILTER_CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class ListParams:
    """A list or search request (RFC 7644 3.4.2 / 3.4.3, RFC 9865), parameters as given."""

    filter: str | None = None
    sort_by: str | None = None
    sort_order: str | None = None
    """``ascending`` (default) or ``descending``."""
    start_index: int | None = None
    count: int | None = None
    cursor: str | None = None
    """``None``: index paging; ``""``: first page of cursor paging; else a cursor."""
    attributes: tuple[str, ...] = ()
    excluded_attributes: tuple[str, ...] = ()


@dataclass(slots=True)
class ListResult:
    """The data of a ListResponse (resources un-projected)."""

    resources: list[dict[str, Any]]
    total_results: int | None
    items_per_page: int
    start_index: int | None
    next_cursor: str | None = None
    previous_cursor: str | None = None
    include_resources: bool = True
    """False for ``count=0``: only ``totalResults`` is answered."""
    rtypes: list[ResourceType] = field(default_factory=list)
    """Resource type of each resource (same order), for rendering."""


class Service:
    """The SCIM operations over one backend.

    :param registry: compiled schemas and resource types.
    :param backend: the resource store.
    :param state: the state store (cursor secret, audit log through ``events``).
    :param settings: effective settings.
    :param events: where provisioning events go.
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        backend: Backend,
        state: StateStore | None,
        settings: Settings,
        events: EventEmitter,
        *,
        password_hasher: PasswordHasher | None = None,
    ) -> None:
        self.registry = registry
        self.backend = backend
        self.state = state
        self.settings = settings
        self.events = events
        self._unknown = settings.schema.unknown_attributes
        self._hasher = password_hasher or PasswordHasher()
        self._cursor_codec: CursorCodec | None = None
        self._cursor_lock = asyncio.Lock()
        self._filters = FilterCache(_FILTER_CACHE_SIZE)
        self._default_loads: dict[str, tuple[bool, bool]] = {}
        self._emails = EmailGuard(self)
        """scim.unique_email: the normalised primary email is unique per tenant."""

    # helpers ------------------------------------------------------------------

    def op_context(
        self,
        rtype: ResourceType,
        *,
        tenant: str,
        principal: str,
        request_id: str,
        attributes: Sequence[str] = (),
        excluded_attributes: Sequence[str] = (),
    ) -> OpContext:
        """An ``OpContext`` whose ``load_members``/``load_groups`` follow the projection, so
        a backend never reads member rows that the response will not contain."""
        attrs = tuple(attributes)
        excl = tuple(excluded_attributes)
        load_members, load_groups = self._loads(rtype, attrs, excl)
        return OpContext(
            tenant=tenant,
            principal=principal,
            request_id=request_id,
            attributes=attrs,
            excluded_attributes=excl,
            load_members=load_members,
            load_groups=load_groups,
        )

    def _loads(
        self, rtype: ResourceType, attrs: tuple[str, ...], excl: tuple[str, ...]
    ) -> tuple[bool, bool]:
        # The no-projection case is the hot path (GET by id): computed once per type.
        if not attrs and not excl:
            found = self._default_loads.get(rtype.name)
            if found is None:
                found = (wants(rtype, "members"), wants(rtype, "groups"))
                self._default_loads[rtype.name] = found
            return found
        return (
            wants(rtype, "members", attributes=attrs, excluded=excl),
            wants(rtype, "groups", attributes=attrs, excluded=excl),
        )

    def _for_type(self, ctx: OpContext, rtype: ResourceType) -> OpContext:
        load_members, load_groups = self._loads(rtype, ctx.attributes, ctx.excluded_attributes)
        if load_members == ctx.load_members and load_groups == ctx.load_groups:
            return ctx
        return dataclasses.replace(ctx, load_members=load_members, load_groups=load_groups)

    @staticmethod
    def _event(
        action: str,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str | None,
        changed: Sequence[str],
    ) -> Event:
        return make_event(
            f"scim.{rtype.name.lower()}.{action}",
            tenant=ctx.tenant,
            resource_type=rtype.name,
            resource_id=rid,
            actor=ctx.principal,
            request_id=ctx.request_id,
            changed=changed,
        )

    def _outbox(
        self, write_ctx: OpContext, build: Callable[[Mapping[str, Any] | None], list[Event]]
    ) -> tuple[OpContext, Outbox]:
        """The write's events (``build(result)``) as an ``Outbox``, handed to the backend in
        ``write_ctx`` when it records them in the write's own transaction (a committed
        write then always has its audit event); ``_emit_outbox`` delivers them after."""
        outbox = Outbox(build)
        if self.backend.capabilities.events_in_transaction:
            write_ctx = dataclasses.replace(write_ctx, outbox=outbox)
        return write_ctx, outbox

    async def _emit_outbox(self, outbox: Outbox, result: Mapping[str, Any] | None) -> None:
        """Log, record (unless the backend did, in the write's transaction) and hand to
        the sinks."""
        if outbox.recorded:
            await self.events.emit_many(outbox.recorded, recorded=True)
        else:
            await self.events.emit_many(outbox.build(result))

    def _password_attr(self, rtype: ResourceType) -> AttributeDef | None:
        found = rtype.schema.attr(_PASSWORD)
        return found if found is not None and found.type == "string" else None

    async def _hash(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise InvalidValue("password must be a non-empty string")
        if getattr(self.backend, "wants_plaintext_password", False):
            # A backend that stores and checks passwords itself (an LDAP directory's
            # userPassword/unicodePwd) gets the value as given; it must not store it elsewhere.
            return value
        # argon2id is slow on purpose: keep it off the event loop.
        return await asyncio.to_thread(self._hasher.hash, value)

    def verify_password(self, stored_hash: str, password: str) -> bool:
        """Check a password against a stored argon2id hash (for JIT / changePassword)."""
        from argon2.exceptions import VerificationError

        try:
            return bool(self._hasher.verify(stored_hash, password))
        except (VerificationError, ValueError):
            return False

    def scrub(self, rtype: ResourceType, resource: dict[str, Any]) -> dict[str, Any]:
        """Drop values of ``returned: never`` core attributes (the password hash)."""
        for defn in rtype.schema.order:
            if defn.returned == "never":
                resource.pop(defn.name, None)
        for ext, _required in rtype.extensions.values():
            ext_value = resource.get(ext.id)
            if isinstance(ext_value, dict):
                for defn in ext.order:
                    if defn.returned == "never":
                        ext_value.pop(defn.name, None)
        return resource

    def _body(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidSyntax("The request body must be a JSON object")
        return body

    def _normalize(self, rtype: ResourceType, body: Mapping[str, Any]) -> dict[str, Any]:
        return normalize_resource(rtype, dict(body), unknown=self._unknown)

    # CRUD ---------------------------------------------------------------------

    async def create(self, ctx: OpContext, rtype: ResourceType, body: Any) -> dict[str, Any]:
        """POST: validate, normalise, hash the password, store, emit ``*.created``."""
        resource = self._normalize(rtype, self._body(body))
        if self._password_attr(rtype) is not None and _PASSWORD in resource:
            resource[_PASSWORD] = await self._hash(resource[_PASSWORD])
        names = _attr_names(resource)
        async with self._emails.guard(ctx, rtype, resource, None):
            write_ctx, outbox = self._outbox(
                self._emails.write_ctx(self._for_type(ctx, rtype), rtype),
                lambda made: [self._event("created", ctx, rtype, _rid(made or {}), names)],
            )
            created = await self.backend.create(write_ctx, rtype, resource)
        await self._emit_outbox(outbox, created)
        return self.scrub(rtype, created)

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        """GET by id (404 if absent or another tenant's)."""
        return self.scrub(rtype, await self.backend.get(ctx, rtype, rid))

    async def replace(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        body: Any,
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        """PUT: a true replace. readOnly/immutable values are carried over from the stored
        resource (an immutable one that differs is 400 mutability), an omitted password is
        kept (clients cannot read it back to resend it). Without ``If-Match`` the write is
        still conditional on the version read, retried a few times, so two concurrent PUTs
        never silently merge."""
        new = self._normalize(rtype, self._body(body))
        body_id = self._body(body).get("id")
        if isinstance(body_id, str) and body_id and body_id != rid:
            raise BadRequest(f"The id in the body ({body_id!r}) does not match the URL")
        has_password = self._password_attr(rtype) is not None and _PASSWORD in new
        if has_password:
            new[_PASSWORD] = await self._hash(new[_PASSWORD])
        read_ctx = dataclasses.replace(ctx, load_members=False, load_groups=False)
        write_ctx = self._emails.write_ctx(self._for_type(ctx, rtype), rtype)
        async with self._emails.guard(ctx, rtype, new, rid):
            attempt = 0
            while True:
                attempt += 1
                existing = await self.backend.get(read_ctx, rtype, rid)
                # merge_for_replace keeps readOnly/immutable values and an omitted password.
                merged = merge_for_replace(rtype, existing, new, unknown=self._unknown)
                version = if_match
                if version is None:
                    meta = existing.get("meta")
                    version = meta.get("version") if isinstance(meta, dict) else None

                def replaced(
                    result: Mapping[str, Any] | None, before: Mapping[str, Any] = existing
                ) -> list[Event]:
                    changed = _diff_names(before, result or {})
                    if "members" in new:
                        changed.add("members")
                    if has_password:
                        changed.add(_PASSWORD)
                    return [self._event("replaced", ctx, rtype, rid, sorted(changed))]

                attempt_ctx, outbox = self._outbox(write_ctx, replaced)
                try:
                    result = await self.backend.replace(
                        attempt_ctx, rtype, rid, merged, if_match=version
                    )
                except PreconditionFailed:
                    if if_match is not None or attempt >= _REPLACE_RETRIES:
                        raise
                    continue
                break
        await self._emit_outbox(outbox, result)
        return self.scrub(rtype, result)

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        body: Any,
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        """PATCH (RFC 7644 3.5.2): parse, hash password values, apply atomically."""
        ops = parse_patch_request(rtype, self._body(body))
        if self._password_attr(rtype) is not None:
            ops = [await self._hash_op(rtype, op) for op in ops]
        names = _patch_names(rtype, ops)
        write_ctx, outbox = self._outbox(
            self._emails.write_ctx(self._for_type(ctx, rtype), rtype),
            lambda _result: [self._event("patched", ctx, rtype, rid, names)],
        )
        if self._emails.patch_touches(rtype, ops):
            # The resulting primary email is checked on the version it is predicted from.
            result = await self._emails.patch(
                ctx,
                rtype,
                rid,
                ops,
                if_match,
                lambda version: self.backend.patch(write_ctx, rtype, rid, ops, if_match=version),
            )
        else:
            result = await self.backend.patch(write_ctx, rtype, rid, ops, if_match=if_match)
        await self._emit_outbox(outbox, result)
        return self.scrub(rtype, result)

    async def _hash_op(self, rtype: ResourceType, op: PatchOp) -> PatchOp:
        """Replace a password value in a PATCH operation by its argon2id hash, whether it
        is addressed by path (``password``, URN-qualified) or sits in a no-path value."""
        if op.op == "remove":
            return op
        core = rtype.schema.id.lower()
        if op.path is not None:
            attr = op.path.attr
            if (
                (attr.uri is None or attr.uri.lower() == core)
                and attr.attr.lower() == _PASSWORD
                and attr.sub is None
            ):
                return dataclasses.replace(op, value=await self._hash(op.value))
            return op
        if isinstance(op.value, dict):
            value = dict(op.value)
            changed = False
            for key in list(value):
                low = key.lower()
                if low == _PASSWORD or low == f"{core}:{_PASSWORD}":
                    value[key] = await self._hash(value[key])
                    changed = True
            if changed:
                return dataclasses.replace(op, value=value)
        return op

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        """DELETE (404 when absent: a second DELETE is 404). With JIT enabled, a deleted
        User leaves a tombstone, written before the delete (a 503 if it cannot be), so that
        a later SSO login cannot silently recreate it."""
        before: dict[str, Any] | None = None
        if self.settings.jit.enabled and rtype.name == "User":
            read_ctx = dataclasses.replace(ctx, load_members=False, load_groups=False)
            with contextlib.suppress(ScimError):
                before = await self.backend.get(read_ctx, rtype, rid)
        write_ctx, outbox = self._outbox(
            ctx, lambda _result: [self._event("deleted", ctx, rtype, rid, ())]
        )
        if before is None:
            await self.backend.delete(write_ctx, rtype, rid, if_match=if_match)
        else:
            from scimd.jit.service import drop_tombstone, forget_deleted, record_tombstone

            # The tombstone first: no moment where the user is deleted without one.
            tombstoned = await record_tombstone(self.state, ctx.tenant, before)
            try:
                await self.backend.delete(write_ctx, rtype, rid, if_match=if_match)
            except NotFound:
                raise  # deleted meanwhile by another request, which left the same tombstone
            except BaseException:
                if tombstoned:  # not deleted (412, an outage...): the user is alive
                    await drop_tombstone(self.state, ctx.tenant, rid)
                raise
            await forget_deleted(self.state, ctx.tenant, rid)
        await self._emit_outbox(outbox, None)

    # queries --------------------------------------------------------------------

    async def query(self, ctx: OpContext, rtype: ResourceType, params: ListParams) -> ListResult:
        """List/search one resource type (GET /{Resource}, POST /{Resource}/.search)."""

        ctx = self._for_type(ctx, rtype)
        caps = self.backend.capabilities
        start, count = self._window(params)
        filt: Filter | None = None
        shape: tuple[FilterShape, str] | None = None
        if params.filter:
            filt, shape = self._filters.parse_shaped(params.filter, rtype)
        sort: SortSpec | None = None
        if params.sort_by:
            sort = SortSpec(
                path=parse_attr_path(params.sort_by, rtype),
                descending=_descending(params.sort_order),
            )
        pushed: Filter | None = filt
        residual: Filter | None = None
        explanation = ""
        if filt is not None:
            p = plan(filt, caps)
            pushed, residual = p.pushed, p.residual
            if p.reasons:
                explanation = "The storage backend cannot evaluate " + "; ".join(p.reasons)
        in_memory = residual is not None or (sort is not None and not caps.sort)
        if params.cursor is not None:
            if in_memory or not caps.cursor:
                raise BadRequest(
                    "Cursor pagination is not available for this query on this backend; "
                    "use startIndex/count"
                )
            return await self._cursor_query(ctx, rtype, params, pushed, sort, count)
        if in_memory:
            return await self._residual_query(
                ctx, rtype, pushed, residual, sort, start, count, explanation
            )
        query = Query(
            filter=pushed,
            sort=sort,
            paging="index",
            start_index=start,
            count=count,
            shape=shape if pushed is filt else None,
        )
        page = await self.backend.query(ctx, rtype, query)
        return self._index_result(rtype, page, start, count)

    def _parse_filter(self, text: str, rtype: ResourceType) -> Filter:
        # Clients repeat the same filters (Entra/Okta poll userName eq ...); the AST is
        # immutable, so parsed trees are shared. Bounded: cleared when full.
        # By shape too: ``userName eq "<each user>"`` is parsed once (FilterCache).
        return self._filters.parse(text, rtype)

    def _window(self, params: ListParams) -> tuple[int, int]:
        """(startIndex, count) per RFC 7644 3.4.2.4, count capped at ``maxResults``."""
        max_results = min(self.settings.scim.max_results, self.backend.capabilities.max_results)
        return clamp_index(
            params.start_index,
            params.count,
            default_count=min(self.settings.scim.default_count, max_results),
            max_count=max_results,
        )

    def _index_result(self, rtype: ResourceType, page: Page, start: int, count: int) -> ListResult:
        resources = [self.scrub(rtype, r) for r in page.resources] if count else []
        total = page.total_results if page.total_results is not None else len(resources)
        return ListResult(
            resources=resources,
            total_results=total,
            items_per_page=len(resources),
            start_index=start,
            include_resources=count > 0,
            rtypes=[rtype] * len(resources),
        )

    async def _residual_query(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        pushed: Filter | None,
        residual: Filter | None,
        sort: SortSpec | None,
        start: int,
        count: int,
        explanation: str,
    ) -> ListResult:
        """Evaluate what the backend cannot, in memory, over at most ``residual_limit``
        candidates; beyond that the client gets 400 invalidFilter (never a silent
        truncated answer)."""

        limit = self.settings.scim.residual_limit
        caps = self.backend.capabilities
        candidates: list[dict[str, Any]] = []
        index = 1
        chunk = max(1, min(caps.max_results, limit + 1))
        # Candidates are read with members so that a residual on members can be evaluated.
        read_ctx = dataclasses.replace(ctx, load_members=True, load_groups=True)
        while True:
            page = await self.backend.query(
                read_ctx,
                rtype,
                Query(filter=pushed, paging="index", start_index=index, count=chunk),
            )
            candidates.extend(page.resources)
            if len(candidates) > limit:
                reason = explanation or "the backend cannot evaluate part of this filter"
                raise InvalidFilter(
                    f"{reason}; the remaining part would have to be evaluated in memory over "
                    f"more than {limit} candidates. Narrow the filter."
                )
            if len(page.resources) < chunk or (
                page.total_results is not None and len(candidates) >= page.total_results
            ):
                break
            index += len(page.resources)
        if residual is not None:
            candidates = [r for r in candidates if matches(residual, r)]
        if sort is not None:
            # The reference order (nulls last, then id) the backends also implement.
            candidates.sort(key=lambda r: sort_key(r, sort))
        total = len(candidates)
        window = candidates[start - 1 : start - 1 + count] if count else []
        window = [self.scrub(rtype, r) for r in window]
        if not ctx.load_members:
            for r in window:
                r.pop("members", None)
        if not ctx.load_groups:
            for r in window:
                r.pop("groups", None)
        return ListResult(
            resources=window,
            total_results=total,
            items_per_page=len(window),
            start_index=start,
            include_resources=count > 0,
            rtypes=[rtype] * len(window),
        )

    async def _codec(self) -> CursorCodec:
        if self._cursor_codec is None:
            async with self._cursor_lock:
                if self._cursor_codec is None:
                    configured = self.settings.scim.cursor_secret
                    # A configured secret of any length becomes a 32-byte HMAC key.
                    secret = (
                        hashlib.sha256(configured.encode()).digest()
                        if configured
                        else await self._stored_cursor_secret()
                    )
                    self._cursor_codec = CursorCodec(secret, ttl=self.settings.scim.cursor_ttl)
        return self._cursor_codec

    async def _stored_cursor_secret(self) -> bytes:
        # Not part of the StateStore protocol: stores that can share a secret between
        # processes offer get_or_create_secret (the SQLite and PostgreSQL ones do).
        getter = getattr(self.state, "get_or_create_secret", None)
        if getter is not None:
            value = await getter("cursor")
            if isinstance(value, bytes) and len(value) >= 16:
                return value
        # No shared secret available: a per-process one. Cursors then only work against
        # the process that issued them (set scim.cursor_secret when running several).
        return secrets.token_bytes(32)

    async def _cursor_query(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        params: ListParams,
        pushed: Filter | None,
        sort: SortSpec | None,
        count: int,
    ) -> ListResult:
        codec = await self._codec()
        fingerprint = query_fingerprint(
            tenant=ctx.tenant,
            resource_type=rtype.name,
            filter_text=params.filter,
            sort_by=params.sort_by,
            sort_order=params.sort_order,
        )
        keyset: Keyset | None = None
        if params.cursor:
            keyset = codec.decode(params.cursor, fingerprint)
        page = await self.backend.query(
            ctx,
            rtype,
            Query(filter=pushed, sort=sort, paging="cursor", count=count, keyset=keyset),
        )
        resources = [self.scrub(rtype, r) for r in page.resources]
        next_cursor = codec.encode(page.next_keyset, fingerprint) if page.next_keyset else None
        prev_cursor = codec.encode(page.prev_keyset, fingerprint) if page.prev_keyset else None
        return ListResult(
            resources=resources,
            total_results=page.total_results,
            items_per_page=len(resources),
            start_index=None,
            next_cursor=next_cursor,
            previous_cursor=prev_cursor,
            include_resources=True,
            rtypes=[rtype] * len(resources),
        )

    async def search(
        self, ctx: OpContext, rtypes: Sequence[ResourceType], params: ListParams
    ) -> ListResult:
        """Root ``POST /.search`` (RFC 7644 3.4.3): one result list across resource types.

        Index paging runs over the concatenation (in registry order), using each type's
        exact total. A filter naming an attribute a type does not have matches nothing of
        that type; if it resolves against no type at all it is 400 invalidFilter.
        """
        if params.cursor is not None:
            raise InvalidCursor("Cursor pagination is not supported for root-level search")
        start, count = self._window(params)
        applicable: list[ResourceType] = []
        first_error: ScimError | None = None
        for rt in rtypes:
            if params.filter:
                try:
                    self._parse_filter(params.filter, rt)
                except ScimError as exc:
                    first_error = first_error or exc
                    continue
            applicable.append(rt)
        if not applicable:
            raise first_error or InvalidFilter("The filter matches no resource type")
        # totals first (count=0 queries), then the slices of the concatenation.
        totals: list[int] = []
        for rt in applicable:
            sub = dataclasses.replace(params, count=0, start_index=1, cursor=None)
            result = await self.query(ctx, rt, sub)
            totals.append(result.total_results or 0)
        total = sum(totals)
        resources: list[dict[str, Any]] = []
        kinds: list[ResourceType] = []
        offset = start - 1  # position in the concatenation
        remaining = count
        before = 0
        for rt, rt_total in zip(applicable, totals, strict=True):
            if remaining <= 0:
                break
            if offset >= before + rt_total:
                before += rt_total
                continue
            local_start = max(offset - before, 0) + 1
            sub = dataclasses.replace(params, count=remaining, start_index=local_start, cursor=None)
            result = await self.query(ctx, rt, sub)
            resources.extend(result.resources)
            kinds.extend([rt] * len(result.resources))
            remaining -= len(result.resources)
            offset = before + rt_total
            before += rt_total
        return ListResult(
            resources=resources,
            total_results=total,
            items_per_page=len(resources),
            start_index=start,
            include_resources=count > 0,
            rtypes=kinds,
        )


def _rid(resource: Mapping[str, Any]) -> str | None:
    rid = resource.get("id")
    return rid if isinstance(rid, str) else None


def _descending(order: str | None) -> bool:
    if order is None or order == "":
        return False
    low = order.lower()
    if low == "ascending":
        return False
    if low == "descending":
        return True
    raise BadRequest(f"sortOrder must be 'ascending' or 'descending', not {order!r}")


_SKIP = frozenset({"schemas", "meta", "id"})


def _attr_names(resource: Mapping[str, Any]) -> list[str]:
    """Names of the attributes a resource carries (extension attributes URN-qualified)."""
    names: list[str] = []
    for key, value in resource.items():
        if key in _SKIP:
            continue
        if key.startswith("urn:") and isinstance(value, dict):
            names.extend(f"{key}:{sub}" for sub in value)
        else:
            names.append(key)
    return names


def _diff_names(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    changed: set[str] = set()
    for key in set(before) | set(after):
        if key in _SKIP:
            continue
        old, new = before.get(key), after.get(key)
        if key.startswith("urn:") and (isinstance(old, dict) or isinstance(new, dict)):
            old_d = old if isinstance(old, dict) else {}
            new_d = new if isinstance(new, dict) else {}
            changed.update(
                f"{key}:{sub}"
                for sub in set(old_d) | set(new_d)
                if old_d.get(sub) != new_d.get(sub)
            )
        elif old != new:
            changed.add(key)
    return changed


def _patch_names(rtype: ResourceType, ops: Sequence[PatchOp]) -> list[str]:
    """Canonical names of the top-level attributes a PATCH touches (for events)."""
    names: set[str] = set()
    for op in ops:
        if op.path is not None:
            names.add(_path_name(rtype, op.path.attr))
        elif isinstance(op.value, dict):
            for key, value in op.value.items():
                names.update(_value_key_names(rtype, key, value))
    names.difference_update(("id", "schemas", "meta"))
    return sorted(names)


def _value_key_names(rtype: ResourceType, key: str, value: Any) -> list[str]:
    # No-path PATCH values use any case, dotted paths and URN-qualified names.
    low = key.lower()
    for schema in (rtype.schema, *(ext for ext, _ in rtype.extensions.values())):
        urn = schema.id.lower()
        if low == urn and isinstance(value, dict):
            return [_canonical(rtype, schema.id, sub) for sub in value]
        if low.startswith(urn + ":"):
            return [_canonical(rtype, schema.id, key[len(urn) + 1 :])]
    return [_canonical(rtype, None, key)]


def _canonical(rtype: ResourceType, uri: str | None, dotted: str) -> str:
    head = dotted.split(".", 1)[0]
    defn = rtype.lookup(uri, head)
    name = defn.name if defn is not None else head
    if uri is None or uri.lower() == rtype.schema.id.lower():
        return name
    return f"{uri}:{name}"


def _path_name(rtype: ResourceType, path: AttrPath) -> str:
    if path.uri is None or path.uri.lower() == rtype.schema.id.lower():
        return path.attr
    return f"{path.uri}:{path.attr}"
