"""Typed application state shared by the middlewares and the views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from scimd import quirks
from scimd.auth import Principal, TokenAuthenticator
from scimd.backend import Backend
from scimd.errors import NotFound
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.service import Service
from scimd.settings import Settings
from scimd.state.base import StateStore

__all__ = [
    "PRINCIPAL",
    "REQUEST_ID",
    "RUNTIME",
    "AuthPolicy",
    "Runtime",
    "principal_of",
    "request_id_of",
]

AuthPolicy = Literal["public", "discovery", "read", "write"]
"""How a route is authorised: no token (``public``), a token unless anonymous discovery is
enabled (``discovery``), or a token holding the ``read``/``write`` scope."""

# Per-request values live in the request mapping under these typed keys.
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("scimd.principal", Principal)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("scimd.request_id", str)


@dataclass(slots=True, eq=False)
class Runtime:
    """Everything a request needs, built once per application."""

    settings: Settings
    registry: SchemaRegistry
    backend: Backend
    state: StateStore
    service: Service
    authenticator: TokenAuthenticator
    endpoints: dict[str, ResourceType]
    """Lower-cased endpoint name without slash (``users``) -> resource type."""
    policies: dict[AbstractRoute, AuthPolicy] = field(default_factory=dict)
    """Authorisation policy of every route (routes not listed: router errors, 404/405)."""

    def rtype_for(self, endpoint: str) -> ResourceType:
        rtype = self.endpoints.get(endpoint.lower())
        if rtype is None:
            raise NotFound(f"Unknown endpoint /{endpoint}")
        if rtype.endpoint[1:] != endpoint:
            quirks.record("lowercase_path")
        return rtype

    def base_url(self, request: web.Request) -> str:
        public = self.settings.server.public_url
        base_path = self.settings.server.base_path
        if public:
            return public.rstrip("/") + base_path
        return f"{request.scheme}://{request.host}{base_path}"


RUNTIME: web.AppKey[Runtime] = web.AppKey("scimd.runtime", Runtime)


def principal_of(request: web.Request) -> Principal:
    """The authenticated principal of a request (set by the auth middleware)."""
    return request[PRINCIPAL]


def request_id_of(request: web.Request) -> str:
    rid: str = request.get(REQUEST_ID, "-")
    return rid
