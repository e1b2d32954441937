"""The ``rest`` backend: a non-SCIM SaaS API described in a mapping file
(``scimd_http.rest_mapping``) as scimd's store.

* Every call goes through ``UpstreamClient`` (timeouts, retries of idempotent calls with
  backoff and ``Retry-After``, circuit breaker, per-tenant concurrency); a create is never
  retried.
* Filters: ``<attr> eq`` conjuncts the mapping lists become query parameters, ``id eq`` a
  GET of the item; anything else is evaluated in memory over every candidate the API
  returns for the translated part, at most ``api.pagination.max_scan`` of them (beyond
  that: 400 invalidFilter). Nothing is silently dropped.
* Paging: ``startIndex``/``count`` over the API's page-number, offset/limit, cursor or
  next-URL paging; positions reached by following links are cached so a client paging
  forward does not walk from the start each time.
* ``meta``: ``created``/``lastModified`` from the mapped fields, ``version`` from a version
  field or else from the modification time (microseconds). The API offers no conditional
  writes, so ``If-Match`` is checked by a GET before the write (not atomic; the backend
  declares ``etag = false``).
* One API credential is one API account: one scimd tenant (option ``tenant``).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from scimd import errors
from scimd.backend import BackendEnv, Capabilities, OpContext, Page, PatchOp, Query
from scimd.patch import apply_patch
from scimd.query.ast import And, Comparison, Filter
from scimd.query.evaluate import matches
from scimd.query.parse import format_filter
from scimd.query.planner import filterable_key
from scimd_http.client import UpstreamClient, client_from_options, map_error
from scimd_http.rest_mapping import (
    ERROR_KINDS,
    Endpoint,
    ResourceMapping,
    RestMapping,
    get_path,
    load_mapping,
)
from scimd_http.upstream import _safe_id

if TYPE_CHECKING:
    from scimd.schema.model import ResourceType

__all__ = ["RestBackend", "capabilities_for"]

_LINK_CACHE = 1024


def capabilities_for(mapping: RestMapping) -> Capabilities:
    """What the core may push down: ``eq`` on ``id`` and on every mapped filter attribute,
    joined with ``and`` (the API ANDs query parameters; the backend evaluates the rest)."""
    keys = {"id"} | {f.path_key for r in mapping.resources.values() for f in r.filters}
    return Capabilities(
        filter_ops=frozenset({"eq"}),
        logic=frozenset({"and"}),
        value_path=False,
        filterable=frozenset(keys),
        sort=False,
        cursor=False,
        index_paging=True,
        native_patch=False,
        transactions=False,
        etag=False,
        max_results=mapping.pagination.max_page_size,
        multi_tenant=False,
    )


def _conjuncts(f: Filter | None) -> list[Filter]:
    if f is None:
        return []
    if isinstance(f, And):
        return _conjuncts(f.left) + _conjuncts(f.right)
    return [f]


def _join(items: list[Filter]) -> Filter | None:
    node: Filter | None = None
    for it in items:
        node = it if node is None else And(node, it)
    return node


def _instant(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


class RestBackend:
    """``scimd.backend.Backend`` over a REST API described by a mapping (module docstring)."""

    def __init__(
        self,
        env: BackendEnv,
        *,
        client: UpstreamClient | None = None,
        mapping: RestMapping | None = None,
    ) -> None:
        opts = env.options
        self.registry = env.registry
        url = str(opts.get("url") or "")
        if not url:
            raise errors.ServiceUnavailable("storage.rest.url is not set")
        if mapping is None:
            where = opts.get("mapping") or ""
            if not where:
                raise errors.ServiceUnavailable("storage.rest.mapping is not set")
            path = Path(str(where))
            mapping = load_mapping(path if path.is_absolute() else env.base_dir / path)
        self.mapping = mapping
        self.tenant = str(opts.get("tenant") or "default")
        api = mapping.api
        self.client = client or client_from_options(
            opts,
            url,
            media_type=api.media_type,
            auth_header=api.auth_header,
            auth_scheme=api.auth_scheme,
        )
        self.client.error_mapper = self.map_error
        self.capabilities = capabilities_for(mapping)
        self._links: OrderedDict[tuple[Any, ...], str] = OrderedDict()

    async def start(self) -> None:
        await self.client.start()

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- errors ----------------------------------------------------------------------------

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> errors.ScimError:
        """The API's error as a SCIM error: its code (``api.errors.codes``), then its status
        (``api.errors.statuses``), then the status alone. Rate limits, outages and refused
        credentials of scimd itself are 429/503 with ``Retry-After`` whatever the code."""
        api = self.mapping.api
        code = get_path(body, api.error_code) if api.error_code else None
        message = get_path(body, api.error_message) if api.error_message else None
        text = message if isinstance(message, str) and message else None
        generic = map_error(status, {"detail": text} if text else None, headers)
        if status == 429 or status in (401, 407) or (status >= 500 and status != 501):
            return generic
        kind, detail = api.error_codes.get(str(code), ("", "")) if code is not None else ("", "")
        kind = kind or api.error_statuses.get(status, "")
        if not kind:
            return generic
        upstream = f"upstream: {text}" if text else f"upstream answered HTTP {status}"
        full = f"{detail} ({upstream})" if detail else upstream
        cls = ERROR_KINDS[kind]
        if cls is errors.ServiceUnavailable:
            return errors.ServiceUnavailable(full, retry_after=5)
        return cls(full)

    # -- helpers ---------------------------------------------------------------------------

    def _check_tenant(self, ctx: OpContext) -> None:
        if ctx.tenant != self.tenant:
            raise errors.Forbidden(f"tenant {ctx.tenant!r} is not served by this REST backend")

    @staticmethod
    def _path(ep: Endpoint, rtype: ResourceType, rid: str | None = None) -> str:
        if rid is None:
            return ep.path
        if not _safe_id(rid):
            raise errors.NotFound(f"{rtype.name} {rid!r} not found")
        return ep.path.replace("{id}", quote(rid, safe=""))

    async def _call(
        self,
        ctx: OpContext,
        ep: Endpoint,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool,
    ) -> Any:
        resp = await self.client.request(
            ep.method, path, tenant=ctx.tenant, params=params, body=body, idempotent=idempotent
        )
        return resp.body

    def _unwrap(self, rm: ResourceMapping, body: Any) -> Any:
        doc = get_path(body, rm.item)
        if not isinstance(doc, dict):
            raise errors.ServiceUnavailable(f"the API answered without a {rm.name}")
        return doc

    def _scim(self, rtype: ResourceType, rm: ResourceMapping, doc: Any) -> dict[str, Any]:
        res = rm.to_scim(doc, rtype.schema.id)
        created = _instant(get_path(doc, rm.created)) if rm.created else None
        modified = (_instant(get_path(doc, rm.last_modified)) if rm.last_modified else None) or (
            created
        )
        meta: dict[str, Any] = {"resourceType": rtype.name}
        if created is not None:
            meta["created"] = _rfc3339(created)
        if modified is not None:
            meta["lastModified"] = _rfc3339(modified)
        version = get_path(doc, rm.version) if rm.version else None
        if isinstance(version, int | str) and str(version).isdigit():
            meta["version"] = f'W/"{version}"'
        elif modified is not None:
            meta["version"] = f'W/"{int(modified.timestamp() * 1_000_000)}"'
        res["meta"] = meta
        return res

    async def _finish(
        self, ctx: OpContext, rtype: ResourceType, res: dict[str, Any]
    ) -> dict[str, Any]:
        """Computed attributes and what the response leaves out."""
        if rtype.name == "Group" and not ctx.load_members:
            res.pop("members", None)
        rm = self.mapping.resource(rtype.name)
        if rtype.name == "User" and rm.groups_param and ctx.load_groups:
            groups = await self._groups_of(ctx, rm.groups_param, res["id"])
            if groups:
                res["groups"] = groups
        return res

    async def _groups_of(self, ctx: OpContext, param: str, uid: str) -> list[dict[str, Any]]:
        rtype = self.registry.resource_type("Group")
        gm = self.mapping.resources.get("Group")
        if rtype is None or gm is None:
            return []
        out = []
        async for docs, _total in self._walk(ctx, gm, {param: uid}, 0):
            for doc in docs:
                g = gm.to_scim(doc, rtype.schema.id)
                entry = {"value": g["id"], "type": "direct"}
                if isinstance(g.get("displayName"), str):
                    entry["display"] = g["displayName"]
                out.append(entry)
        return out

    async def _check_version(
        self, ctx: OpContext, rtype: ResourceType, rid: str, if_match: str | None
    ) -> dict[str, Any] | None:
        if if_match is None:
            return None
        current = await self.get(ctx, rtype, rid)
        tags = [t.strip() for t in if_match.split(",")]
        if "*" not in tags and current["meta"].get("version") not in tags:
            raise errors.PreconditionFailed("If-Match does not match the current version")
        return current

    # -- Backend ---------------------------------------------------------------------------

    async def create(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any]
    ) -> dict[str, Any]:
        self._check_tenant(ctx)
        rm = self.mapping.resource(rtype.name)
        ep = rm.endpoint("create")
        # Never retried: a lost answer to a POST may mean the resource exists.
        body = await self._call(
            ctx, ep, self._path(ep, rtype), body=rm.to_api(resource), idempotent=False
        )
        return await self._finish(ctx, rtype, self._scim(rtype, rm, self._unwrap(rm, body)))

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        self._check_tenant(ctx)
        rm = self.mapping.resource(rtype.name)
        ep = rm.endpoint("get")
        body = await self._call(ctx, ep, self._path(ep, rtype, rid), idempotent=True)
        return await self._finish(ctx, rtype, self._scim(rtype, rm, self._unwrap(rm, body)))

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
        rm = self.mapping.resource(rtype.name)
        ep = rm.endpoint("replace")
        path = self._path(ep, rtype, rid)
        await self._check_version(ctx, rtype, rid, if_match)
        doc = rm.to_api(resource, nulls=ep.method == "PATCH")
        # The whole new state: sending it twice gives the same result.
        body = await self._call(ctx, ep, path, body=doc, idempotent=True)
        if body is None:
            return await self.get(ctx, rtype, rid)
        return await self._finish(ctx, rtype, self._scim(rtype, rm, self._unwrap(rm, body)))

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
        full = OpContext(ctx.tenant, ctx.principal, ctx.request_id)
        current = await self.get(full, rtype, rid)
        if if_match is not None:
            tags = [t.strip() for t in if_match.split(",")]
            if "*" not in tags and current["meta"].get("version") not in tags:
                raise errors.PreconditionFailed("If-Match does not match the current version")
        current.pop("groups", None)
        result = apply_patch(rtype, current, ops)
        new = copy.deepcopy(result.resource)
        return await self.replace(ctx, rtype, rid, new, if_match=None)

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        self._check_tenant(ctx)
        rm = self.mapping.resource(rtype.name)
        ep = rm.endpoint("delete")
        path = self._path(ep, rtype, rid)
        await self._check_version(ctx, rtype, rid, if_match)
        await self._call(ctx, ep, path, idempotent=True)

    # -- queries ---------------------------------------------------------------------------

    def _translate(
        self, rm: ResourceMapping, filt: Filter | None
    ) -> tuple[dict[str, str], str | None, Filter | None]:
        """(query parameters, id of an ``id eq``, what remains for memory)."""
        params: dict[str, str] = {}
        pushed: list[Filter] = []
        by_id: str | None = None
        rest: list[Filter] = []
        by_key = {f.path_key: f for f in rm.filters}
        for c in _conjuncts(filt):
            if isinstance(c, Comparison) and c.op == "eq" and not c.path.in_value_path:
                key = filterable_key(c.path)
                if key == "id" and by_id is None and isinstance(c.value, str):
                    by_id = c.value
                    continue
                fm = by_key.get(key)
                value = self._param_value(fm, c.value) if fm is not None else None
                if fm is not None and value is not None and fm.param not in params:
                    params[fm.param] = value
                    pushed.append(c)
                    continue
            rest.append(c)
        if by_id is not None:
            # One GET answers ``id eq``; the other conditions are checked on that resource.
            return {}, by_id, _join(pushed + rest)
        return params, by_id, _join(rest)

    @staticmethod
    def _param_value(fm: Any, value: Any) -> str | None:
        if value is None or isinstance(value, dict | list):
            return None
        if fm.field is not None and fm.field.values:
            text = "true" if value is True else "false" if value is False else str(value)
            api = fm.field.values.get(text)
            return None if api is None else str(api)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def _items(self, body: Any) -> tuple[list[Any], int | None]:
        pg = self.mapping.pagination
        items = get_path(body, pg.items)
        if not isinstance(items, list):
            raise errors.ServiceUnavailable("the API answered a list without its items")
        total = get_path(body, pg.total) if pg.total else None
        return items, total if isinstance(total, int) and not isinstance(total, bool) else None

    def _link_url(self, link: str) -> str:
        if "://" in link:
            return link
        base = urlsplit(self.client.base_url)
        return f"{base.scheme}://{base.netloc}{link if link.startswith('/') else '/' + link}"

    async def _walk(
        self,
        ctx: OpContext,
        rm: ResourceMapping,
        params: Mapping[str, str],
        offset: int,
        size: int | None = None,
    ) -> AsyncIterator[tuple[list[Any], int | None]]:
        """The API's items from position ``offset`` (0-based) on, page by page, with the
        API's total when it gives one."""
        pg = self.mapping.pagination
        size = max(1, min(size or pg.max_page_size, pg.max_page_size))
        ep = rm.endpoint("list")
        if pg.style in ("page", "offset"):
            pos = offset - offset % size if pg.style == "page" else offset
            skip = offset - pos
            while True:
                where = (
                    {pg.page_param: str(pg.first_page + pos // size)}
                    if pg.style == "page"
                    else {pg.offset_param: str(pos)}
                )
                query = {**params, **where, pg.size_param: str(size)}
                items, total = self._items(
                    await self._call(ctx, ep, ep.path, params=query, idempotent=True)
                )
                yield items[skip:], total
                pos += len(items)
                skip = 0
                if len(items) < size or (total is not None and pos >= total):
                    return
        key = (rm.name, tuple(sorted(params.items())), size)
        pos, token = 0, None
        for (k, at), link in reversed(self._links.items()):
            if k == key and pos < at <= offset:
                pos, token = at, link
        while True:
            if token is None:
                query = {**params, pg.size_param: str(size)}
                body = await self._call(ctx, ep, ep.path, params=query, idempotent=True)
            elif pg.style == "cursor":
                query = {**params, pg.size_param: str(size), pg.cursor_param: token}
                body = await self._call(ctx, ep, ep.path, params=query, idempotent=True)
            else:
                body = await self._call(ctx, ep, self._link_url(token), idempotent=True)
            items, total = self._items(body)
            nxt = get_path(body, pg.next)
            skip = max(0, offset - pos)
            pos += len(items)
            if isinstance(nxt, str) and nxt and items:
                self._links[(key, pos)] = nxt
                self._links.move_to_end((key, pos))
                while len(self._links) > _LINK_CACHE:
                    self._links.popitem(last=False)
            yield items[skip:], total
            if not (isinstance(nxt, str) and nxt and items):
                return
            token = nxt

    async def _scan(
        self, ctx: OpContext, rm: ResourceMapping, params: Mapping[str, str], why: str
    ) -> list[Any]:
        limit = self.mapping.pagination.max_scan
        out: list[Any] = []
        async for items, _total in self._walk(ctx, rm, params, 0):
            out.extend(items)
            if len(out) > limit:
                raise errors.InvalidFilter(
                    f"{why}; it would have to be evaluated in memory over more than {limit} "
                    "candidates. Narrow the filter."
                )
        return out

    async def query(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        self._check_tenant(ctx)
        if q.paging == "cursor":
            raise errors.BadRequest("cursor paging is not supported by the REST backend")
        rm = self.mapping.resource(rtype.name)
        params, by_id, residual = self._translate(rm, q.filter)
        start, count = max(1, q.start_index), max(0, q.count)
        if by_id is not None or residual is not None:
            if by_id is not None:
                try:
                    docs = [await self._raw_get(ctx, rtype, rm, by_id)]
                except errors.NotFound:
                    docs = []
            else:
                why = f"The API cannot evaluate '{format_filter(residual)}'" if residual else ""
                docs = await self._scan(ctx, rm, params, why)
            # The User's computed groups are read only when the filter names them.
            groups = residual is not None and "groups" in format_filter(residual).lower()
            read = OpContext(ctx.tenant, ctx.principal, ctx.request_id, load_groups=groups)
            found = []
            for doc in docs:
                res = self._scim(rtype, rm, doc)
                if residual is not None:
                    res = await self._finish(read, rtype, res)
                    if not matches(residual, res):
                        continue
                found.append(res)
            window = found[start - 1 : start - 1 + count]
            out = [await self._finish(ctx, rtype, self._trim(ctx, rtype, r)) for r in window]
            return Page(resources=out, total_results=len(found))
        docs, total = [], None
        if count:
            async for items, api_total in self._walk(ctx, rm, params, start - 1, count):
                total = api_total if total is None else total
                docs.extend(items)
                if len(docs) >= count:
                    break
            docs = docs[:count]
        if (total is None and q.want_total) or not count:
            total = await self._count(ctx, rm, params)
        resources = [await self._finish(ctx, rtype, self._scim(rtype, rm, d)) for d in docs]
        return Page(resources=resources, total_results=total)

    async def _count(self, ctx: OpContext, rm: ResourceMapping, params: Mapping[str, str]) -> int:
        n = 0
        async for items, total in self._walk(ctx, rm, params, 0):
            if total is not None:
                return total
            n += len(items)
            if n > self.mapping.pagination.max_scan:
                raise errors.TooMany(
                    "the API gives no total and has more than "
                    f"{self.mapping.pagination.max_scan} matches; narrow the filter"
                )
        return n

    @staticmethod
    def _trim(ctx: OpContext, rtype: ResourceType, res: dict[str, Any]) -> dict[str, Any]:
        if rtype.name == "User":
            res.pop("groups", None)
        return res

    async def _raw_get(
        self, ctx: OpContext, rtype: ResourceType, rm: ResourceMapping, rid: str
    ) -> Any:
        ep = rm.endpoint("get")
        body = await self._call(ctx, ep, self._path(ep, rtype, rid), idempotent=True)
        return self._unwrap(rm, body)
