"""``POST /Bulk`` (RFC 7644 3.7).

Operations (POST/PUT/PATCH/DELETE) run through the same ``Service`` as single requests.
``bulkId`` references (``"bulkId:<id>"``, in ``path`` or anywhere inside ``data``, e.g. a
Group's ``members[].value``) are resolved in dependency order: an operation waits until the
operations it references have run. References that can never be resolved because they
form a cycle are reported per operation as 409; references to a bulkId that no operation
declares, or whose operation failed, as 400 invalidValue. ``failOnErrors`` stops after
that many errors. ``bulk.max_operations`` and ``bulk.max_payload_size`` give 413.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from scimd.backend import OpContext
from scimd.errors import (
    BadRequest,
    Conflict,
    InvalidSyntax,
    InvalidValue,
    NotImplementedFeature,
    PayloadTooLarge,
    ScimError,
)
from scimd.http.context import REQUEST_ID, Runtime, principal_of
from scimd.http.middlewares import read_json
from scimd.http.render import scim_response
from scimd.http.resources import render_resource
from scimd.schema.model import ResourceType

__all__ = ["BulkViews"]

log = logging.getLogger("scimd.http.bulk")

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
_PREFIX = "bulkId:"


@dataclass(slots=True)
class _Op:
    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: Any
    refs: set[str] = field(default_factory=set)
    result: dict[str, Any] | None = None


def _collect_refs(value: Any, out: set[str]) -> None:
    if isinstance(value, str):
        if value.startswith(_PREFIX):
            out.add(value[len(_PREFIX) :])
    elif isinstance(value, dict):
        for v in value.values():
            _collect_refs(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect_refs(v, out)


def _substitute(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if value.startswith(_PREFIX):
            return ids.get(value[len(_PREFIX) :], value)
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    return value


def _error_result(op: _Op, err: ScimError) -> dict[str, Any]:
    result: dict[str, Any] = {"method": op.method, "status": str(err.status)}
    if op.bulk_id is not None:
        result["bulkId"] = op.bulk_id
    result["response"] = err.to_body()
    return result


class BulkViews:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def bulk(self, request: web.Request) -> web.StreamResponse:
        settings = self.rt.settings.bulk
        if not settings.enabled:
            raise NotImplementedFeature("Bulk operations are disabled on this server")
        body = await read_json(request, settings.max_payload_size)
        if not isinstance(body, dict):
            raise InvalidSyntax("The BulkRequest body must be a JSON object")
        low = {k.lower(): v for k, v in body.items()}
        raw_ops = low.get("operations")
        if not isinstance(raw_ops, list):
            raise InvalidSyntax("BulkRequest.Operations must be a list")
        if len(raw_ops) > settings.max_operations:
            raise PayloadTooLarge(
                f"The bulk request has {len(raw_ops)} operations; the maximum is "
                f"{settings.max_operations}"
            )
        fail_on_errors = low.get("failonerrors")
        if fail_on_errors is not None and (
            not isinstance(fail_on_errors, int)
            or isinstance(fail_on_errors, bool)
            or fail_on_errors < 1
        ):
            raise InvalidValue("failOnErrors must be a positive integer")
        ops = [self._parse_op(i, raw) for i, raw in enumerate(raw_ops)]
        declared: dict[str, _Op] = {}
        for op in ops:
            if op.bulk_id is not None:
                if op.bulk_id in declared:
                    raise InvalidValue(f"Duplicate bulkId {op.bulk_id!r}")
                declared[op.bulk_id] = op

        principal = principal_of(request)
        ctx = OpContext(
            tenant=principal.tenant,
            principal=principal.token_id,
            request_id=request[REQUEST_ID],
        )
        base = self.rt.base_url(request)
        ids: dict[str, str] = {}
        failed: set[str] = set()
        errors = 0
        pending = list(ops)
        stopped = False
        while pending and not stopped:
            progressed = False
            for op in list(pending):
                if stopped:
                    break
                waiting = False
                bad_ref: str | None = None
                for ref in op.refs:
                    if ref in ids:
                        continue
                    if ref not in declared or ref in failed:
                        bad_ref = ref
                        break
                    waiting = True
                if waiting and bad_ref is None:
                    continue
                pending.remove(op)
                progressed = True
                if bad_ref is not None:
                    op.result = _error_result(
                        op,
                        InvalidValue(f"bulkId {bad_ref!r} is not declared or its operation failed"),
                    )
                else:
                    op.result = await self._run(ctx, op, ids, base)
                if op.result.get("response") is not None and op.result["status"][0] in "45":
                    errors += 1
                    if op.bulk_id is not None:
                        failed.add(op.bulk_id)
                    if fail_on_errors is not None and errors >= fail_on_errors:
                        stopped = True
            if not progressed:
                # Every remaining operation waits on another remaining one: a cycle.
                for op in pending:
                    op.result = _error_result(
                        op, Conflict("Circular bulkId reference: " + ", ".join(sorted(op.refs)))
                    )
                    if op.bulk_id is not None:
                        failed.add(op.bulk_id)
                pending = []
        results = [op.result for op in ops if op.result is not None]
        return scim_response({"schemas": [BULK_RESPONSE], "Operations": results})

    def _parse_op(self, index: int, raw: Any) -> _Op:
        if not isinstance(raw, dict):
            raise InvalidSyntax(f"Operation {index} must be a JSON object")
        low = {k.lower(): v for k, v in raw.items()}
        method = low.get("method")
        path = low.get("path")
        if not isinstance(method, str) or method.upper() not in {
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
        }:
            raise InvalidSyntax(f"Operation {index}: method must be POST, PUT, PATCH or DELETE")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidSyntax(f"Operation {index}: path must be a string like '/Users'")
        bulk_id = low.get("bulkid")
        if bulk_id is not None and not isinstance(bulk_id, str):
            raise InvalidSyntax(f"Operation {index}: bulkId must be a string")
        method = method.upper()
        if method == "POST" and not bulk_id:
            raise InvalidSyntax(f"Operation {index}: POST operations require a bulkId")
        version = low.get("version")
        op = _Op(
            index=index,
            method=method,
            path=path,
            bulk_id=bulk_id,
            version=version if isinstance(version, str) else None,
            data=low.get("data"),
        )
        _collect_refs(op.data, op.refs)
        _collect_refs(path, op.refs)
        return op

    def _target(self, path: str) -> tuple[ResourceType, str | None]:
        parts = path.strip("/").split("/")
        if len(parts) > 2 or not parts[0]:
            raise BadRequest(f"Invalid bulk operation path {path!r}")
        rtype = self.rt.rtype_for(parts[0])
        return rtype, parts[1] if len(parts) == 2 else None

    async def _run(self, ctx: OpContext, op: _Op, ids: dict[str, str], base: str) -> dict[str, Any]:
        service = self.rt.service
        try:
            rtype, rid = self._target(_substitute(op.path, ids))
            data = _substitute(op.data, ids)
            result: dict[str, Any] = {"method": op.method}
            if op.bulk_id is not None:
                result["bulkId"] = op.bulk_id
            if op.method == "POST":
                if rid is not None:
                    raise BadRequest("POST operations address a resource type, not an id")
                created = await service.create(ctx, rtype, data)
                ids[op.bulk_id or ""] = str(created["id"])
                resource = created
                status = 201
            else:
                if rid is None:
                    raise BadRequest(f"{op.method} operations need a path with an id")
                if op.method == "PUT":
                    resource = await service.replace(ctx, rtype, rid, data, if_match=op.version)
                    status = 200
                elif op.method == "PATCH":
                    resource = await service.patch(ctx, rtype, rid, data, if_match=op.version)
                    status = 200
                else:
                    await service.delete(ctx, rtype, rid, if_match=op.version)
                    result["location"] = f"{base}{rtype.endpoint}/{rid}"
                    result["status"] = "204"
                    return result
            result["location"] = f"{base}{rtype.endpoint}/{resource['id']}"
            meta = resource.get("meta")
            if isinstance(meta, dict) and isinstance(meta.get("version"), str):
                result["version"] = meta["version"]
            result["status"] = str(status)
            result["response"] = render_resource(rtype, resource, base)
            return result
        except ScimError as exc:
            return _error_result(op, exc)
        except Exception:
            log.exception("bulk operation %d failed (request id %s)", op.index, ctx.request_id)
            return _error_result(
                op, ScimError(f"Internal server error (request id {ctx.request_id})")
            )
