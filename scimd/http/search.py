"""Root-level search: ``POST /.search`` across every resource type (RFC 7644 3.4.3)."""

from __future__ import annotations

from aiohttp import web

from scimd.backend import OpContext
from scimd.http.context import REQUEST_ID, Runtime, principal_of
from scimd.http.middlewares import read_json
from scimd.http.render import scim_response
from scimd.http.resources import list_params_from_body, render_list

__all__ = ["SearchViews"]


class SearchViews:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def root_search(self, request: web.Request) -> web.StreamResponse:
        params = list_params_from_body(
            await read_json(request, self.rt.settings.server.max_payload_size)
        )
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
