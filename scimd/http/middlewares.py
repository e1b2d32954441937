"""The request pipeline, in this order (ARCHITECTURE.md "Request pipeline")::

    request id -> error mapping -> authentication/tenant -> content negotiation -> view

* **request id**: accept a sane ``X-Request-Id`` or generate one; echo it on every answer.
* **error mapping**: the ONE place where exceptions become responses. ``ScimError`` ->
  RFC 7644 3.12 body; aiohttp's 404/405/413 -> SCIM errors; anything else -> 500 whose
  detail carries the request id, logged with the same id, never a traceback in the body.
* **authentication/tenant**: the route's policy (``public``, ``discovery``, ``read``,
  ``write``) decides whether a bearer token is needed and which scope.
* **content negotiation**: request bodies must be ``application/scim+json`` or
  ``application/json`` (any parameters) or carry no Content-Type at all (Okta); else 415.

Method checks happen in the router, before any of this reads a body: a POST to
``/ServiceProviderConfig`` is a 405 whatever its body.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from scimd import quirks
from scimd.auth import require_scope
from scimd.errors import (
    InvalidSyntax,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ScimError,
    UnsupportedMediaType,
)
from scimd.http.context import PRINCIPAL, REQUEST_ID, Runtime
from scimd.http.render import error_response, scim_response

__all__ = ["build_middlewares", "read_json"]

log = logging.getLogger("scimd.http")


_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_TYPES = frozenset({"application/scim+json", "application/json"})
_READ_METHODS = frozenset({"GET", "HEAD"})


def build_middlewares(runtime: Runtime) -> list[Middleware]:
    """The pipeline for one application: the four stages above in one middleware (each
    aiohttp middleware layer costs a call and a coroutine on every request)."""
    anonymous_discovery = runtime.settings.server.anonymous_discovery
    authenticator = runtime.authenticator
    policies = runtime.policies
    # Request ids only need to be unique, not unguessable: a random prefix per application
    # (built in each worker after the fork) and a counter, instead of reading the OS's
    # random source on every request.
    prefix = secrets.token_hex(8) + "-"
    counter = itertools.count(1)

    async def admit(request: web.Request) -> None:
        """Authentication/tenant, then content negotiation."""
        policy = policies.get(request.match_info.route)
        if (
            policy is not None
            and policy != "public"
            and not (policy == "discovery" and anonymous_discovery)
        ):
            principal = await authenticator.authenticate(request.headers.get("Authorization"))
            request[PRINCIPAL] = principal
            require_scope(principal, "write" if policy == "write" else "read")
        if request.method in _BODY_METHODS and request.match_info.http_exception is None:
            raw = request.headers.get("Content-Type")
            if raw is None:
                _quirk("no_content_type")
            else:
                mime = raw.partition(";")[0].strip().lower()
                if mime not in _JSON_TYPES:
                    raise UnsupportedMediaType(
                        f"Unsupported Content-Type {mime or raw!r}: send application/scim+json"
                    )

    @web.middleware
    async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get("X-Request-Id")
        # Only accept ids that are safe to log and echo; otherwise make our own.
        if incoming is not None and _REQUEST_ID_RE.fullmatch(incoming):
            rid = incoming
        else:
            rid = f"{prefix}{next(counter):x}"
        request[REQUEST_ID] = rid
        response: web.StreamResponse
        try:
            await admit(request)
            response = await handler(request)
        except ScimError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            response = error_response(_from_http_exception(request, exc))
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.exception(
                "unhandled error in %s %s (request id %s)", request.method, request.path, rid
            )
            response = scim_response(
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "500",
                    "detail": f"Internal server error (request id {rid})",
                },
                status=500,
            )
        response.headers["X-Request-Id"] = rid
        return response

    return [pipeline]


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> ScimError:
    if exc.status == 404:
        return NotFound(f"No such endpoint: {request.path}")
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}",
            headers={"Allow": allowed} if allowed else None,
        )
    if exc.status == 413:
        return PayloadTooLarge()
    err = ScimError(exc.reason or "HTTP error", headers=None)
    # A one-off status for an aiohttp error we did not anticipate (e.g. 400 on a broken
    # request line): keep the status, give it the SCIM body.
    err.status = exc.status  # type: ignore[misc]
    return err


async def read_json(request: web.Request, limit: int) -> Any:
    """The request body parsed as JSON: 413 above ``limit`` bytes, 400 invalidSyntax when
    empty or not JSON. Call it only after the method has been accepted."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The request body exceeds {limit} bytes")
    data = await request.read()
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body exceeds {limit} bytes")
    if not data.strip():
        raise InvalidSyntax("The request body is empty")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidSyntax(f"The request body is not valid JSON: {exc.msg}") from None


def _quirk(name: str) -> None:
    quirks.record(name)
