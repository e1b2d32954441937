"""An in-memory ``scimd.backend.Backend``: one dict of resources per tenant and resource type.

It shows the rules of ``scimd.backend`` in the fewest lines: filters with the reference
evaluator ``scimd.query.evaluate.matches``, order with ``scimd.query.sort``, PATCH with
``scimd.patch.apply_patch``. Every method runs without an ``await`` between its check and
its write, so on one event loop each call is atomic (the If-Match check included).
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scimd import errors
from scimd.backend import Capabilities, Keyset, OpContext, Page, PatchOp, Query
from scimd.patch import apply_patch
from scimd.query.evaluate import matches
from scimd.query.sort import SortKey, keyset_key, sort_key, sort_value

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scimd.schema.model import ResourceType

__all__ = ["CAPABILITIES", "MemoryBackend"]

#: Everything the reference evaluator and sort can do; transactions are trivially atomic.
CAPABILITIES = Capabilities()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _version(n: int) -> str:
    return f'W/"{n}"'


class MemoryBackend:
    """``scimd.backend.Backend`` on Python dicts."""

    def __init__(self, *, max_results: int = 1000) -> None:
        self.capabilities = dataclasses.replace(CAPABILITIES, max_results=max_results)
        # (tenant, resource type id) -> id -> stored resource (without computed ``groups``)
        self._data: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._types: dict[str, ResourceType] = {}

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        self._data.clear()

    # -- helpers ---------------------------------------------------------------------------

    def _table(self, ctx: OpContext, rtype: ResourceType) -> dict[str, dict[str, Any]]:
        self._types[rtype.id] = rtype
        return self._data.setdefault((ctx.tenant, rtype.id), {})

    def _stored(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        found = self._table(ctx, rtype).get(rid)
        if found is None:
            raise errors.NotFound(f"{rtype.name} {rid!r} not found")
        return found

    @staticmethod
    def _check_if_match(stored: dict[str, Any], if_match: str | None) -> None:
        if if_match is None:
            return
        tags = [t.strip() for t in if_match.split(",")]
        if "*" in tags or stored["meta"]["version"] in tags:
            return
        raise errors.PreconditionFailed("If-Match does not match the current version")

    def _check_unique(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any], own: str | None
    ) -> None:
        for defn in rtype.schema.order:
            if defn.uniqueness == "none" or defn.multi_valued or defn.is_complex:
                continue
            value = resource.get(defn.name)
            if value is None:
                continue
            key = value if defn.case_exact or not isinstance(value, str) else value.casefold()
            for rid, other in self._table(ctx, rtype).items():
                theirs = other.get(defn.name)
                if isinstance(theirs, str) and not defn.case_exact:
                    theirs = theirs.casefold()
                if rid != own and theirs == key:
                    raise errors.Uniqueness(f'{defn.name} "{value}" is already in use')

    def _group_types(self) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.schema.attr("members") is not None]

    def _out(self, ctx: OpContext, rtype: ResourceType, stored: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(stored)
        if rtype.schema.attr("members") is not None and not ctx.load_members:
            out.pop("members", None)
        if rtype.schema.attr("groups") is not None and ctx.load_groups:
            groups = [
                {"value": gid, "display": g.get("displayName"), "type": "direct"}
                for gt in self._group_types()
                for gid, g in self._data.get((ctx.tenant, gt.id), {}).items()
                if any(m.get("value") == stored["id"] for m in g.get("members") or [])
            ]
            if groups:
                out["groups"] = [{k: v for k, v in x.items() if v is not None} for x in groups]
        return out

    def _save(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        old: dict[str, Any],
    ) -> dict[str, Any]:
        new = copy.deepcopy({k: v for k, v in resource.items() if k not in ("groups", "meta")})
        new["id"] = rid
        version = int(old["meta"]["version"][3:-1]) + 1
        new["meta"] = {**old["meta"], "lastModified": _now(), "version": _version(version)}
        self._table(ctx, rtype)[rid] = new
        return self._out(ctx, rtype, new)

    # -- Backend ---------------------------------------------------------------------------

    async def create(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any]
    ) -> dict[str, Any]:
        self._check_unique(ctx, rtype, resource, None)
        rid = str(uuid.uuid4())
        now = _now()
        stored = copy.deepcopy({k: v for k, v in resource.items() if k not in ("groups", "meta")})
        stored["id"] = rid
        stored["meta"] = {
            "resourceType": rtype.name,
            "created": now,
            "lastModified": now,
            "version": _version(1),
        }
        self._table(ctx, rtype)[rid] = stored
        return self._out(ctx, rtype, stored)

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        return self._out(ctx, rtype, self._stored(ctx, rtype, rid))

    async def replace(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        old = self._stored(ctx, rtype, rid)
        self._check_if_match(old, if_match)
        self._check_unique(ctx, rtype, resource, rid)
        return self._save(ctx, rtype, rid, resource, old)

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        old = self._stored(ctx, rtype, rid)
        self._check_if_match(old, if_match)
        # PATCH sees the whole resource, whatever the response will contain.
        full = dataclasses.replace(ctx, load_members=True, load_groups=True)
        current = self._out(full, rtype, old)
        result = apply_patch(rtype, current, ops)  # raises before anything is stored
        self._check_unique(ctx, rtype, result.resource, rid)
        return self._save(ctx, rtype, rid, result.resource, old)

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        old = self._stored(ctx, rtype, rid)
        self._check_if_match(old, if_match)
        del self._table(ctx, rtype)[rid]
        # A deleted resource leaves every group it was a member of.
        for gt in self._group_types():
            for group in self._data.get((ctx.tenant, gt.id), {}).values():
                members = group.get("members") or []
                kept = [m for m in members if m.get("value") != rid]
                if len(kept) != len(members):
                    group["members"] = kept
                    n = int(group["meta"]["version"][3:-1]) + 1
                    group["meta"] = {
                        **group["meta"],
                        "lastModified": _now(),
                        "version": _version(n),
                    }

    async def query(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        # Filter and sort on the whole resource (a filter may name members or groups even
        # when the response will not contain them), then leave out what was not asked for.
        full = dataclasses.replace(ctx, load_members=True, load_groups=True)
        everything = [self._out(full, rtype, r) for r in self._table(ctx, rtype).values()]
        if q.filter is not None:
            flt = q.filter
            everything = [r for r in everything if matches(flt, r)]
        ordered = sorted(everything, key=lambda r: sort_key(r, q.sort))
        total = len(ordered)
        if q.paging == "index":
            start = max(q.start_index, 1) - 1
            page = Page(ordered[start : start + q.count], total)
        else:
            page = self._cursor_page(ordered, q, total)
        page.resources = [self._out(ctx, rtype, r) for r in page.resources]
        return page

    def _cursor_page(self, ordered: list[dict[str, Any]], q: Query, total: int) -> Page:
        keys = [sort_key(r, q.sort) for r in ordered]

        def keyset(i: int, direction: str) -> Keyset:
            value = sort_value(ordered[i], q.sort.path) if q.sort is not None else None
            return Keyset(value, str(ordered[i]["id"]), direction)  # type: ignore[arg-type]

        try:
            at: SortKey | None = keyset_key(q.keyset, q.sort) if q.keyset is not None else None
            if at is None or q.keyset is None or q.keyset.direction == "next":
                first = next((i for i, k in enumerate(keys) if at is None or at < k), len(keys))
                last = min(first + q.count, len(keys))
            else:
                last = next((i for i, k in enumerate(keys) if not k < at), len(keys))
                first = max(0, last - q.count)
        except TypeError:
            raise errors.InvalidCursor("the cursor does not fit this query") from None
        page = ordered[first:last]
        return Page(
            page,
            total,
            next_keyset=keyset(last - 1, "next") if page and last < len(ordered) else None,
            prev_keyset=keyset(first, "prev") if page and first > 0 else None,
        )
