"""Root-level queries across every resource type: ``POST /.search`` (RFC 7644 3.4.3)
and ``GET`` on the base path (RFC 7644 3.4.2.1)."""

from __future__ import annotations

from aiohttp import web

from scimd.backend import OpContext
from scimd.http.context import REQUEST_ID, Runtime, principal_of
from scimd.http.middlewares import read_json
from scimd.http.render import scim_response
from scimd.http.resources import list_params_from_body, list_params_from_query, render_list
from scimd.service import ListParams

__all__ = ["SearchViews"]


class SearchViews:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def root_search(self, request: web.Request) -> web.StreamResponse:
        params = list_params_from_body(
            await read_json(request, self.rt.settings.server.max_payload_size)
        )
        return await self._query_all(request, params)

    async def root_list(self, request: web.Request) -> web.StreamResponse:
        """``GET {base}?filter=...``: the same query as ``POST /.search``, from the URL."""
        return await self._query_all(request, list_params_from_query(request.query))

    async def _query_all(self, request: web.Request, params: ListParams) -> web.StreamResponse:
        principal = principal_of(request)
        ctx = OpContext(
            tenant=principal.tenant,
            principal=principal.token_id,
            request_id=request[REQUEST_ID],
            attributes=params.attributes,
            excluded_attributes=params.excluded_attributes,
        )
        rtypes = list(self.rt.registry.resource_types.values())
        result = await self.rt.service.search(ctx, rtypes, params)
        return scim_response(render_list(result, self.rt.base_url(request), params))
