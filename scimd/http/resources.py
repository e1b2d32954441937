"""Resource endpoints: ``/{Resource}`` and ``/{Resource}/{id}`` for every resource type in
the registry (Users, Groups and any configured one), generic by endpoint.

* ``POST /{Resource}`` -> 201 + ``Location`` + ``ETag``
* ``GET /{Resource}`` -> ListResponse (filter, sortBy, sortOrder, startIndex, count, cursor,
  attributes, excludedAttributes)
* ``GET /{Resource}/{id}`` -> resource + ``ETag``; ``If-None-Match`` matching -> 304
* ``PUT`` / ``PATCH`` -> 200 with the resource (PATCH 204 when configured); ``If-Match``
* ``DELETE`` -> 204
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from scimd.backend import OpContext
from scimd.errors import BadRequest, InvalidValue
from scimd.http.context import REQUEST_ID, Runtime, principal_of
from scimd.http.middlewares import read_json
from scimd.http.render import list_response, scim_response
from scimd.schema.model import ResourceType
from scimd.schema.project import project
from scimd.service import ListParams, ListResult

__all__ = [
    "ResourceViews",
    "etag_matches",
    "list_params_from_body",
    "list_params_from_query",
    "render_list",
    "render_resource",
]


def split_attrs(value: str | Sequence[Any] | None) -> tuple[str, ...]:
    """``attributes``/``excludedAttributes`` as given: comma-separated text or a list."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise BadRequest("attributes must be strings")
            out.extend(p.strip() for p in item.split(",") if p.strip())
        return tuple(out)
    raise BadRequest("attributes must be a string or a list of strings")


# startIndex/count beyond this are clamped: no store holds 2**62 resources, and the stores
# bind them as signed 64-bit SQL integers (a larger Python int was a 500).
_MAX_INT_PARAM = 2**62


def _int_param(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidValue(f"{name} must be an integer")
    if isinstance(value, int):
        return max(-_MAX_INT_PARAM, min(value, _MAX_INT_PARAM))
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            pass
        else:
            return max(-_MAX_INT_PARAM, min(number, _MAX_INT_PARAM))
    raise InvalidValue(f"{name} must be an integer, not {value!r:.60}")


def _str_param(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def list_params_from_query(query: Mapping[str, str]) -> ListParams:
    """ListParams from a GET query string (RFC 7644 3.4.2, RFC 9865 ``cursor``)."""
    return ListParams(
        filter=query.get("filter") or None,
        sort_by=query.get("sortBy") or None,
        sort_order=query.get("sortOrder") or None,
        start_index=_int_param("startIndex", query.get("startIndex")),
        count=_int_param("count", query.get("count")),
        cursor=query.get("cursor"),
        attributes=split_attrs(query.get("attributes")),
        excluded_attributes=split_attrs(query.get("excludedAttributes")),
    )


def list_params_from_body(body: Any) -> ListParams:
    """ListParams from a SearchRequest body (RFC 7644 3.4.3)."""
    if not isinstance(body, dict):
        raise BadRequest("The SearchRequest body must be a JSON object")
    low = {k.lower(): v for k, v in body.items()}
    if "attributes" in low and "excludedattributes" in low:
        raise BadRequest("attributes and excludedAttributes are mutually exclusive")
    return ListParams(
        filter=_str_param("filter", low.get("filter")) or None,
        sort_by=_str_param("sortBy", low.get("sortby")) or None,
        sort_order=_str_param("sortOrder", low.get("sortorder")) or None,
        start_index=_int_param("startIndex", low.get("startindex")),
        count=_int_param("count", low.get("count")),
        cursor=_str_param("cursor", low.get("cursor")),
        attributes=split_attrs(low.get("attributes")),
        excluded_attributes=split_attrs(low.get("excludedattributes")),
    )


def render_resource(
    rtype: ResourceType,
    resource: dict[str, Any],
    base: str,
    attributes: Sequence[str] = (),
    excluded: Sequence[str] = (),
) -> dict[str, Any]:
    """Project a stored resource for the response and add the absolute ``meta.location``."""
    out = project(rtype, resource, attributes=tuple(attributes), excluded=tuple(excluded))
    rid = resource.get("id")
    meta = out.get("meta")
    if isinstance(meta, dict) and rid is not None:
        out["meta"] = {**meta, "location": f"{base}{rtype.endpoint}/{rid}"}
    return out


def render_list(result: ListResult, base: str, params: ListParams) -> dict[str, Any]:
    resources: list[dict[str, Any]] | None = None
    if result.include_resources:
        resources = [
            render_resource(rt, r, base, params.attributes, params.excluded_attributes)
            for rt, r in zip(result.rtypes, result.resources, strict=True)
        ]
    return list_response(
        resources,
        total_results=result.total_results,
        start_index=result.start_index,
        items_per_page=result.items_per_page,
        next_cursor=result.next_cursor,
        previous_cursor=result.previous_cursor,
    )


def etag_matches(header: str, version: str | None) -> bool:
    """RFC 7232 weak comparison of an ``If-None-Match`` list against ``version``."""
    if version is None:
        return False
    want = version.removeprefix("W/")
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == want:
            return True
    return False


def _version(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    if isinstance(meta, dict):
        version = meta.get("version")
        if isinstance(version, str):
            return version
    return None


class ResourceViews:
    """Handlers for the resource endpoints of one application."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.service = runtime.service
        self.max_payload = runtime.settings.server.max_payload_size
        self.patch_status = runtime.settings.scim.patch_success_status

    def ctx(
        self,
        request: web.Request,
        rtype: ResourceType,
        attributes: Sequence[str] = (),
        excluded: Sequence[str] = (),
    ) -> OpContext:
        principal = principal_of(request)
        return self.service.op_context(
            rtype,
            tenant=principal.tenant,
            principal=principal.token_id,
            request_id=request[REQUEST_ID],
            attributes=attributes,
            excluded_attributes=excluded,
        )

    def respond(
        self,
        request: web.Request,
        rtype: ResourceType,
        resource: dict[str, Any],
        *,
        status: int = 200,
        attributes: Sequence[str] = (),
        excluded: Sequence[str] = (),
    ) -> web.Response:
        base = self.rt.base_url(request)
        body = render_resource(rtype, resource, base, attributes, excluded)
        headers: dict[str, str] = {}
        version = _version(resource)
        if version is not None:
            headers["ETag"] = version
        if status == 201:
            headers["Location"] = f"{base}{rtype.endpoint}/{resource.get('id')}"
        return scim_response(body, status=status, headers=headers)

    @staticmethod
    def _projection(request: web.Request) -> tuple[tuple[str, ...], tuple[str, ...]]:
        query = request.rel_url.query
        if not query:
            return (), ()
        attrs = split_attrs(query.get("attributes"))
        excl = split_attrs(query.get("excludedAttributes"))
        if attrs and excl:
            raise BadRequest("attributes and excludedAttributes are mutually exclusive")
        return attrs, excl

    # collection ---------------------------------------------------------------

    async def list(self, request: web.Request) -> web.StreamResponse:
        rtype = self.rt.rtype_for(request.match_info["ep"])
        params = list_params_from_query(request.rel_url.query)
        if params.attributes and params.excluded_attributes:
            raise BadRequest("attributes and excludedAttributes are mutually exclusive")
        return await self._list(request, rtype, params)

    async def search(self, request: web.Request) -> web.StreamResponse:
        rtype = self.rt.rtype_for(request.match_info["ep"])
        params = list_params_from_body(await read_json(request, self.max_payload))
        return await self._list(request, rtype, params)

    async def _list(
        self, request: web.Request, rtype: ResourceType, params: ListParams
    ) -> web.StreamResponse:
        ctx = self.ctx(request, rtype, params.attributes, params.excluded_attributes)
        result = await self.service.query(ctx, rtype, params)
        return scim_response(render_list(result, self.rt.base_url(request), params))

    async def create(self, request: web.Request) -> web.StreamResponse:
        rtype = self.rt.rtype_for(request.match_info["ep"])
        attrs, excl = self._projection(request)
        body = await read_json(request, self.max_payload)
        created = await self.service.create(self.ctx(request, rtype, attrs, excl), rtype, body)
        return self.respond(request, rtype, created, status=201, attributes=attrs, excluded=excl)

    # single resource ------------------------------------------------------------

    async def get(self, request: web.Request) -> web.StreamResponse:
        rtype = self.rt.rtype_for(request.match_info["ep"])
        attrs, excl = self._projection(request)
        ctx = self.ctx(request, rtype, attrs, excl)
        resource = await self.service.get(ctx, rtype, request.match_info["id"])
        inm = request.headers.get("If-None-Match")
        if inm is not None:
            version = _version(resource)
            if etag_matches(inm, version):
                headers = {"ETag": version} if version else {}
                return web.Response(status=304, headers=headers)
        return self.respond(request, rtype, resource, attributes=attrs, excluded=excl)

    async def replace(self, request: web.Request) -> web.StreamResponse:
        rtype = self.rt.rtype_for(request.match_info["ep"])
        attrs, excl = self._projection(request)
        body = await read_json(request, self.max_payload)
        result = await self.service.replace(
            self.ctx(request, rtype, attrs, excl),
            rtype,
            request.match_info["id"],
            body,
            if_match=request.headers.get("If-Match"),
        )
        return self.respond(request, rtype, result, attributes=attrs, excluded=excl)

    async def patch(self, request: web.Request) -> web.StreamResponse:
        rtype = self.rt.rtype_for(request.match_info["ep"])
        attrs, excl = self._projection(request)
        if self.patch_status == 204:
            # No body in the answer: the store need not read the relations (a big group's
            # members, a user's groups) to answer.
            excl = (*excl, "members", "groups")
        body = await read_json(request, self.max_payload)
        result = await self.service.patch(
            self.ctx(request, rtype, attrs, excl),
            rtype,
            request.match_info["id"],
            body,
            if_match=request.headers.get("If-Match"),
        )
        if self.patch_status == 204:
            version = _version(result)
            return web.Response(status=204, headers={"ETag": version} if version else None)
        return self.respond(request, rtype, result, attributes=attrs, excluded=excl)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        rtype = self.rt.rtype_for(request.match_info["ep"])
        await self.service.delete(
            self.ctx(request, rtype),
            rtype,
            request.match_info["id"],
            if_match=request.headers.get("If-Match"),
        )
        return web.Response(status=204)
