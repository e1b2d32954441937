"""``POST /jit/v1/logins``: mounted outside the SCIM base path, with its own caller
authentication (the route's policy is ``public`` for the bearer-token middleware)."""

from __future__ import annotations

from aiohttp import web

from scimd.http.context import Runtime, request_id_of
from scimd.jit.errors import JitError
from scimd.jit.service import JitService, _problem

__all__ = ["JIT_PATH", "MAX_BODY", "JitViews", "mount_jit", "peer_certificate"]

JIT_PATH = "/jit/v1/logins"
MAX_BODY = 256 * 1024
"""Largest login request accepted (an id_token or a SAML response is far smaller)."""

JIT_SERVICE: web.AppKey[JitService] = web.AppKey("scimd.jit", JitService)


class JitViews:
    def __init__(self, runtime: Runtime, jit: JitService) -> None:
        self.runtime = runtime
        self.jit = jit
        self.limit = min(MAX_BODY, runtime.settings.server.max_payload_size)

    async def logins(self, request: web.Request) -> web.StreamResponse:
        length = request.content_length
        too_large = JitError(413, "bad_request", f"The body exceeds {self.limit} bytes")
        if length is not None and length > self.limit:
            return _to_web(_problem(too_large))
        raw = await request.content.read(self.limit + 1)
        if len(raw) > self.limit:
            return _to_web(_problem(too_large))
        result = await self.jit.handle(
            raw,
            request.headers,
            ip=request.remote,
            request_id=request_id_of(request),
            base_url=self.runtime.base_url(request),
            peer_cert=peer_certificate(request),
        )
        return web.Response(body=result.body, status=result.status, headers=result.headers)


def peer_certificate(request: web.Request) -> bytes | None:
    """The DER client certificate of this request's TLS connection, if scimd terminates TLS
    and the client sent one (never taken from a header: a proxy's forwarded certificate
    header would be forgeable by anyone who can reach scimd directly)."""
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return bytes(der) if der else None


def _to_web(result: object) -> web.Response:
    from scimd.jit.service import JitResponse

    assert isinstance(result, JitResponse)
    return web.Response(body=result.body, status=result.status, headers=result.headers)


def mount_jit(app: web.Application, runtime: Runtime) -> JitService:
    """Add ``POST /jit/v1/logins`` (always mounted: 403 ``jit_disabled`` when off)."""
    jit = JitService(runtime.settings, runtime.service, runtime.state, runtime.registry)
    views = JitViews(runtime, jit)
    route = app.router.add_resource(JIT_PATH).add_route("POST", views.logins)
    runtime.policies[route] = "public"
    app[JIT_SERVICE] = jit

    async def close(_app: web.Application) -> None:
        await jit.aclose()

    app.on_cleanup.append(close)
    return jit
