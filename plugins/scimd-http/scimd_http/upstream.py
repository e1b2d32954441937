"""The ``scim-upstream`` backend: every ``Backend`` call forwarded to another SCIM 2.0
service (RFC 7644), so scimd acts as a provisioning gateway in front of it.

* Ids, ``meta`` and ETags are the upstream's (``meta.location`` is dropped: scimd writes
  its own). ``If-Match`` is forwarded as given; the upstream's 412 is ``PreconditionFailed``.
* ``start`` reads the upstream's ``/ServiceProviderConfig`` and sets ``capabilities`` from
  it: filter support and ``maxResults``, sort, etag, patch. A filter the upstream cannot
  evaluate is then planned by the core as a residual.
* Tenancy: one upstream credential is one upstream tenant, so this backend serves exactly
  one scimd tenant (option ``tenant``, default ``default``); any other tenant gets 403.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from scimd import errors
from scimd.backend import (
    ALL_FILTER_OPS,
    BackendEnv,
    Capabilities,
    Keyset,
    OpContext,
    Page,
    PatchOp,
    Query,
)
from scimd.query.ast import AttrPath, PatchPath
from scimd.query.parse import format_filter
from scimd_http.client import UpstreamClient, client_from_options

if TYPE_CHECKING:
    from scimd.schema.model import ResourceType

__all__ = ["PATCH_OP_URN", "ScimUpstreamBackend", "capabilities_from_spc", "format_patch_path"]

PATCH_OP_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_URN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#: Longer query strings go to ``POST /.search`` instead (many servers cap the URL at 8 KiB).
MAX_QUERY_STRING = 4000

#: Before ``start`` has read the upstream's /ServiceProviderConfig: promise nothing optional.
CONSERVATIVE = Capabilities(
    filter_ops=frozenset(),
    logic=frozenset(),
    value_path=False,
    sort=False,
    cursor=False,
    native_patch=False,
    etag=False,
    multi_tenant=False,
    max_results=100,
)


def capabilities_from_spc(spc: Mapping[str, Any]) -> Capabilities:
    """Capabilities from an RFC 7643 section 5 ServiceProviderConfig document."""

    def section(name: str) -> Mapping[str, Any]:
        value = spc.get(name)
        return value if isinstance(value, Mapping) else {}

    def flag(name: str) -> bool:
        return section(name).get("supported") is True

    filt = section("filter")
    max_results = filt.get("maxResults")
    paging = section("pagination")
    page_size = paging.get("maxPageSize")
    limits = [
        v
        for v in (max_results, page_size)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0
    ]
    filtering = filt.get("supported") is True
    index = paging.get("index") is not False
    return Capabilities(
        filter_ops=ALL_FILTER_OPS if filtering else frozenset(),
        logic=frozenset({"and", "or", "not"}) if filtering else frozenset(),
        value_path=filtering,
        sort=flag("sort"),
        # RFC 9865: the upstream's opaque cursor travels inside the Keyset the core
        # wraps in its own (authenticated, query-bound) cursor; see ``ScimUpstreamBackend.query``.
        cursor=paging.get("cursor") is True,
        index_paging=index,
        native_patch=flag("patch"),
        transactions=True,
        etag=flag("etag"),
        max_results=min(limits) if limits else 100,
        multi_tenant=False,
    )


def _fmt_attr(p: AttrPath) -> str:
    return str(p) if p.extension else p.dotted()


def format_patch_path(path: PatchPath) -> str:
    """A parsed PATCH path as RFC 7644 3.5.2 text (extension attributes URN-qualified)."""
    if path.attr.extension and path.attr.attr == "":
        return str(path.attr.uri)
    text = _fmt_attr(path.attr)
    if path.filter is not None:
        text += f"[{format_filter(path.filter)}]"
    if path.sub:
        text += f".{path.sub}"
    return text


def _safe_id(rid: str) -> bool:
    # An empty id would address the collection; control characters never name a resource.
    return bool(rid) and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in rid)


class ScimUpstreamBackend:
    """``scimd.backend.Backend`` over an upstream SCIM service (see the module docstring)."""

    def __init__(self, env: BackendEnv, *, client: UpstreamClient | None = None) -> None:
        opts = env.options
        self.registry = env.registry
        url = str(opts.get("url") or "")
        if not url:
            raise errors.ServiceUnavailable("storage.scim-upstream.url is not set")
        self.tenant = str(opts.get("tenant") or "default")
        self.capabilities = CONSERVATIVE
        self.spc: dict[str, Any] | None = None
        self.client = client or client_from_options(opts, url)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.client.start()
        try:
            resp = await self.client.request(
                "GET", "/ServiceProviderConfig", tenant=self.tenant, idempotent=True
            )
            if not isinstance(resp.body, dict):
                raise errors.ServiceUnavailable("the upstream /ServiceProviderConfig is not JSON")
        except BaseException:
            await self.client.aclose()
            raise
        self.spc = resp.body
        self.capabilities = capabilities_from_spc(resp.body)

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- helpers ---------------------------------------------------------------------------

    def _check_tenant(self, ctx: OpContext) -> None:
        if ctx.tenant != self.tenant:
            raise errors.Forbidden(f"tenant {ctx.tenant!r} is not served by this upstream backend")

    @staticmethod
    def _endpoint(rtype: ResourceType) -> str:
        return "/" + rtype.endpoint.strip("/")

    def _item(self, rtype: ResourceType, rid: str) -> str:
        if not _safe_id(rid):
            raise errors.NotFound(f"{rtype.id} {rid!r} not found")
        return f"{self._endpoint(rtype)}/{quote(rid, safe='')}"

    @staticmethod
    def _excluded(ctx: OpContext, rtype: ResourceType) -> list[str]:
        out = []
        if not ctx.load_members and rtype.id == "Group":
            out.append("members")
        if not ctx.load_groups and rtype.id == "User":
            out.append("groups")
        return out

    def _clean(self, ctx: OpContext, rtype: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.ServiceUnavailable("the upstream answered without a resource")
        meta = body.get("meta")
        if isinstance(meta, dict):
            body["meta"] = {k: v for k, v in meta.items() if k != "location"}
        for key in self._excluded(ctx, rtype):
            body.pop(key, None)
        return body

    def _params(self, ctx: OpContext, rtype: ResourceType) -> dict[str, str]:
        excluded = self._excluded(ctx, rtype)
        return {"excludedAttributes": ",".join(excluded)} if excluded else {}

    @staticmethod
    def _if_match(if_match: str | None) -> dict[str, str]:
        if if_match is not None and not _safe_id(if_match or "x"):
            # A header value with control characters cannot be sent, and matches no ETag.
            raise errors.PreconditionFailed("If-Match does not match the current version")
        return {"If-Match": if_match} if if_match is not None else {}

    # -- Backend ---------------------------------------------------------------------------

    async def create(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any]
    ) -> dict[str, Any]:
        self._check_tenant(ctx)
        body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
        # Never retried: a lost answer to a POST may mean the resource exists.
        resp = await self.client.request(
            "POST", self._endpoint(rtype), tenant=ctx.tenant, body=body, idempotent=False
        )
        return self._clean(ctx, rtype, resp.body)

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        self._check_tenant(ctx)
        resp = await self.client.request(
            "GET",
            self._item(rtype, rid),
            tenant=ctx.tenant,
            params=self._params(ctx, rtype),
            idempotent=True,
        )
        return self._clean(ctx, rtype, resp.body)

    async def replace(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        self._check_tenant(ctx)
        body = {k: v for k, v in resource.items() if k != "meta"}
        body["id"] = rid
        resp = await self.client.request(
            "PUT",
            self._item(rtype, rid),
            tenant=ctx.tenant,
            body=body,
            headers=self._if_match(if_match),
            idempotent=True,
        )
        return self._clean(ctx, rtype, resp.body)

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        self._check_tenant(ctx)
        operations: list[dict[str, Any]] = []
        for op in ops:
            item: dict[str, Any] = {"op": op.op}
            if op.path is not None:
                item["path"] = format_patch_path(op.path)
            if op.op != "remove" or op.value is not None:
                item["value"] = op.value
            operations.append(item)
        path = self._item(rtype, rid)
        resp = await self.client.request(
            "PATCH",
            path,
            tenant=ctx.tenant,
            body={"schemas": [PATCH_OP_URN], "Operations": operations},
            headers=self._if_match(if_match),
            # A PATCH is only idempotent when guarded: "add" to a multi-valued attribute
            # applied twice is not the same as once.
            idempotent=if_match is not None,
        )
        if resp.status == 204 or resp.body is None:
            return await self.get(ctx, rtype, rid)
        return self._clean(ctx, rtype, resp.body)

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        self._check_tenant(ctx)
        await self.client.request(
            "DELETE",
            self._item(rtype, rid),
            tenant=ctx.tenant,
            headers=self._if_match(if_match),
            idempotent=True,
        )

    async def query(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        self._check_tenant(ctx)
        params = self._params(ctx, rtype)
        position = ""
        if q.paging == "cursor":
            if not self.capabilities.cursor:
                raise errors.BadRequest("the upstream does not offer cursor paging")
            given = q.keyset.sort_value if q.keyset is not None else ""
            if not isinstance(given, str):
                raise errors.InvalidCursor("The cursor value is invalid")
            position = given
        if q.filter is not None:
            params["filter"] = format_filter(q.filter)
        if q.sort is not None:
            params["sortBy"] = _fmt_attr(q.sort.path)
            params["sortOrder"] = "descending" if q.sort.descending else "ascending"
        if q.paging == "cursor":
            # RFC 9865 3: an empty cursor asks for the first page.
            params["cursor"] = position
        else:
            params["startIndex"] = str(q.start_index)
        params["count"] = str(q.count)
        if sum(len(k) + len(v) for k, v in params.items()) > MAX_QUERY_STRING:
            search: dict[str, Any] = {"schemas": [SEARCH_URN]}
            for key, value in params.items():
                if key == "excludedAttributes":
                    search[key] = value.split(",")
                elif key in ("startIndex", "count"):
                    search[key] = int(value)
                else:
                    search[key] = value
            resp = await self.client.request(
                "POST",
                f"{self._endpoint(rtype)}/.search",
                tenant=ctx.tenant,
                body=search,
                idempotent=True,  # a search changes nothing
            )
        else:
            resp = await self.client.request(
                "GET", self._endpoint(rtype), tenant=ctx.tenant, params=params, idempotent=True
            )
        body = resp.body
        if not isinstance(body, dict):
            raise errors.ServiceUnavailable("the upstream answered a list without JSON")
        raw = body.get("Resources") or []
        resources = [self._clean(ctx, rtype, r) for r in raw if isinstance(r, dict)]
        total = body.get("totalResults")
        return Page(
            resources=resources,
            total_results=total if isinstance(total, int) else None,
            next_keyset=_position(body.get("nextCursor"), "next"),
            prev_keyset=_position(body.get("previousCursor"), "prev"),
        )


def _position(cursor: Any, direction: Literal["next", "prev"]) -> Keyset | None:
    """An upstream RFC 9865 cursor as the Keyset the core encodes into scimd's cursor:
    the opaque string rides in ``sort_value`` (``id`` is unused)."""
    if not isinstance(cursor, str) or not cursor:
        return None
    return Keyset(cursor, "", direction)


def with_capabilities(backend: ScimUpstreamBackend, **changes: Any) -> None:
    """Narrow the capabilities read from the upstream (configuration overrides, tests)."""
    backend.capabilities = dataclasses.replace(backend.capabilities, **changes)
