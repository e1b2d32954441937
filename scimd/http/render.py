"""Response rendering: SCIM JSON bodies, ``meta.location``, ListResponse, error bodies.

Every SCIM response leaves through these helpers so that the media type
(``application/scim+json; charset=utf-8``), the serializer (orjson) and the absolute
``meta.location`` are decided in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from scimd.errors import ScimError
from scimd.schema.model import ResourceType

__all__ = [
    "LIST_RESPONSE",
    "SCIM_CONTENT_TYPE",
    "base_url",
    "error_response",
    "scim_response",
    "with_location",
]

SCIM_CONTENT_TYPE = "application/scim+json; charset=utf-8"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_CT_HEADERS: Mapping[str, str] = {"Content-Type": SCIM_CONTENT_TYPE}


def scim_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A SCIM JSON response (orjson, ``application/scim+json; charset=utf-8``)."""
    if headers:
        merged = dict(_CT_HEADERS)
        merged.update(headers)
        return web.Response(body=orjson.dumps(body), status=status, headers=merged)
    return web.Response(body=orjson.dumps(body), status=status, headers=_CT_HEADERS)


def error_response(err: ScimError) -> web.Response:
    """The RFC 7644 3.12 error response for ``err`` (status, body, extra headers)."""
    return scim_response(err.to_body(), status=err.status, headers=err.headers or None)


def base_url(request: web.Request, public_url: str, base_path: str) -> str:
    """Absolute URL of the SCIM base (``https://host/scim/v2``), without trailing slash.

    ``server.public_url`` wins (behind a proxy the request's host is not the public one);
    otherwise the request's scheme and Host header are used.
    """
    if public_url:
        return public_url.rstrip("/") + base_path
    return f"{request.scheme}://{request.host}{base_path}"


def with_location(resource: dict[str, Any], rtype: ResourceType, base: str) -> dict[str, Any]:
    """Add ``meta.location`` (absolute) to a resource about to be sent (in place)."""
    meta = resource.get("meta")
    rid = resource.get("id")
    if rid is None:
        return resource
    location = f"{base}{rtype.endpoint}/{rid}"
    if isinstance(meta, dict):
        meta["location"] = location
    return resource


def list_response(
    resources: Sequence[Mapping[str, Any]] | None,
    *,
    total_results: int | None,
    start_index: int | None,
    items_per_page: int,
    next_cursor: str | None = None,
    previous_cursor: str | None = None,
) -> dict[str, Any]:
    """An RFC 7644 3.4.2 ListResponse (RFC 9865 cursor fields when given)."""
    body: dict[str, Any] = {"schemas": [LIST_RESPONSE]}
    if total_results is not None:
        body["totalResults"] = total_results
    body["itemsPerPage"] = items_per_page
    if start_index is not None:
        body["startIndex"] = start_index
    if next_cursor is not None:
        body["nextCursor"] = next_cursor
    if previous_cursor is not None:
        body["previousCursor"] = previous_cursor
    if resources is not None:
        body["Resources"] = list(resources)
    return body
