"""Discovery endpoints (RFC 7644 section 4): ``/ServiceProviderConfig``,
``/ResourceTypes[/{id}]`` and ``/Schemas[/{id}]``.

The documents are the registry's own JSON (schemas are data), so what ``/Schemas`` serves
is exactly what validation, projection and filtering use. ``/ServiceProviderConfig`` is
generated from the settings and the backend's capabilities (RFC 9865 ``pagination`` block
included unless ``scim.advertise_pagination`` is off). Only GET is routed: any other
method is a 405 before a body is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from scimd.errors import Forbidden, NotFound
from scimd.http.context import Runtime
from scimd.http.render import list_response, scim_response
from scimd.schema.model import COMMON_SCHEMA

__all__ = ["DiscoveryViews", "plain", "service_provider_config"]

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def plain(value: Any) -> Any:
    """Deep copy of a (possibly read-only) mapping/sequence tree as JSON-ready dicts/lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def service_provider_config(runtime: Runtime) -> dict[str, Any]:
    """The ServiceProviderConfig document (RFC 7643 5, RFC 9865 3) without ``location``."""
    s = runtime.settings
    caps = runtime.backend.capabilities
    max_results = min(s.scim.max_results, caps.max_results)
    pagination = {
        "cursor": caps.cursor,
        "index": caps.index_paging,
        "defaultPaginationMethod": "index" if caps.index_paging else "cursor",
        "defaultPageSize": min(s.scim.default_count, max_results),
        "maxPageSize": max_results,
        "cursorTimeout": int(s.scim.cursor_ttl),
    }
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": True},
        "bulk": {
            "supported": s.bulk.enabled,
            "maxOperations": s.bulk.max_operations,
            "maxPayloadSize": s.bulk.max_payload_size,
        },
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": True},
        "sort": {"supported": caps.sort},
        "etag": {"supported": caps.etag},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with a bearer token issued by `scimd token`",
                "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
                "primary": True,
            }
        ],
        **({"pagination": pagination} if s.scim.advertise_pagination else {}),
        "meta": {"resourceType": "ServiceProviderConfig"},
    }


class DiscoveryViews:
    """Handlers for the discovery endpoints. Schema and resource type documents are built
    once; /ServiceProviderConfig is built per request because a backend may learn its
    capabilities only when it starts (an upstream SCIM service's own configuration)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.resource_types: dict[str, dict[str, Any]] = {}
        for rtype in runtime.registry.resource_types.values():
            doc = plain(rtype.document)
            doc.setdefault("schemas", ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"])
            meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
            doc["meta"] = {**meta, "resourceType": "ResourceType"}
            self.resource_types[str(doc.get("id", rtype.id)).lower()] = doc
        self.schemas: dict[str, dict[str, Any]] = {}
        for key, schema in runtime.registry.schemas.items():
            if key == COMMON_SCHEMA.lower():
                continue
            doc = plain(schema.document)
            doc.setdefault("schemas", ["urn:ietf:params:scim:schemas:core:2.0:Schema"])
            meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
            doc["meta"] = {**meta, "resourceType": "Schema"}
            self.schemas[str(doc.get("id", schema.id)).lower()] = doc

    @staticmethod
    def _no_filter(request: web.Request) -> None:
        # RFC 7644 4: a filter on these endpoints SHOULD be answered with 403.
        if "filter" in request.rel_url.query:
            raise Forbidden("Filtering is not supported on discovery endpoints")

    @staticmethod
    def _located(doc: dict[str, Any], location: str) -> dict[str, Any]:
        return {**doc, "meta": {**doc["meta"], "location": location}}

    async def service_provider_config(self, request: web.Request) -> web.StreamResponse:
        base = self.rt.base_url(request)
        spc = service_provider_config(self.rt)
        return scim_response(self._located(spc, f"{base}/ServiceProviderConfig"))

    async def list_resource_types(self, request: web.Request) -> web.StreamResponse:
        self._no_filter(request)
        base = self.rt.base_url(request)
        docs = [
            self._located(d, f"{base}/ResourceTypes/{d.get('id')}")
            for d in self.resource_types.values()
        ]
        return scim_response(
            list_response(docs, total_results=len(docs), start_index=1, items_per_page=len(docs))
        )

    async def get_resource_type(self, request: web.Request) -> web.StreamResponse:
        rid = request.match_info["id"]
        doc = self.resource_types.get(rid.lower())
        if doc is None:
            raise NotFound(f"No resource type {rid!r}")
        base = self.rt.base_url(request)
        return scim_response(self._located(doc, f"{base}/ResourceTypes/{doc.get('id')}"))

    async def list_schemas(self, request: web.Request) -> web.StreamResponse:
        self._no_filter(request)
        base = self.rt.base_url(request)
        docs = [self._located(d, f"{base}/Schemas/{d.get('id')}") for d in self.schemas.values()]
        return scim_response(
            list_response(docs, total_results=len(docs), start_index=1, items_per_page=len(docs))
        )

    async def get_schema(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["id"]
        doc = self.schemas.get(sid.lower())
        if doc is None:
            raise NotFound(f"No schema {sid!r}")
        base = self.rt.base_url(request)
        return scim_response(self._located(doc, f"{base}/Schemas/{doc.get('id')}"))
