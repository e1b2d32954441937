"""``GET /healthz``: liveness for load balancers and orchestrators (no authentication)."""

from __future__ import annotations

from aiohttp import web

from scimd.http.render import scim_response

__all__ = ["healthz"]


async def healthz(request: web.Request) -> web.StreamResponse:
    """200 ``{"status": "ok"}`` while the process serves requests."""
    return scim_response({"status": "ok"})
