"""``/Me`` (RFC 7644 3.11): the User bound to the calling token.

A token created with a ``me_user_id`` reaches that user through ``/Me`` with GET, PUT, PATCH
and DELETE, exactly as ``/Users/{id}``. Any other token gets 501 (the RFC's answer when
the server cannot map the subject to a resource).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from scimd.errors import NotFound, NotImplementedFeature
from scimd.http.context import Runtime, principal_of
from scimd.http.resources import ResourceViews

__all__ = ["MeViews"]


class MeViews:
    def __init__(self, runtime: Runtime, resources: ResourceViews) -> None:
        self.rt = runtime
        self.resources = resources
        rtype = runtime.registry.resource_type("User")
        self.user_endpoint = rtype.endpoint.strip("/") if rtype is not None else None

    async def _delegate(
        self,
        request: web.Request,
        view: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        principal = principal_of(request)
        if principal.me_user_id is None:
            raise NotImplementedFeature("/Me is not available: this token is not bound to a user")
        if self.user_endpoint is None:
            raise NotFound("No User resource type is configured")
        # The views read the resource type and id from match_info: point them at the user.
        request.match_info.update({"ep": self.user_endpoint, "id": principal.me_user_id})
        return await view(request)

    async def get(self, request: web.Request) -> web.StreamResponse:
        return await self._delegate(request, self.resources.get)

    async def replace(self, request: web.Request) -> web.StreamResponse:
        return await self._delegate(request, self.resources.replace)

    async def patch(self, request: web.Request) -> web.StreamResponse:
        return await self._delegate(request, self.resources.patch)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        return await self._delegate(request, self.resources.delete)
