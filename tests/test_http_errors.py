"""Error mapping: one middleware turns every failure into an RFC 7644 3.12 body; a 500
carries a request id that the log line also carries, never a traceback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import Backend, OpContext
from scimd.errors import ServiceUnavailable
from scimd.plugins import PluginManager
from scimd.schema.loader import builtin_registry
from scimd.schema.model import ResourceType
from scimd.testing import DeclaringBackend
from tests._http_helpers import MakeScim, make_settings


class FailingBackend(DeclaringBackend):
    """The real embedded backend, except that ``get`` explodes like a driver bug."""

    def __init__(self, inner: Backend, exc: Exception) -> None:
        super().__init__(inner)
        self.exc = exc

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        raise self.exc


def _failing(tmp_path: Path, plugins: PluginManager, exc: Exception) -> FailingBackend:
    settings = make_settings(tmp_path)
    return FailingBackend(plugins.backend(settings, builtin_registry()), exc)


async def test_unexpected_exception_is_500_with_request_id_logged(
    make_scim: MakeScim,
    tmp_path: Path,
    plugins: PluginManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = _failing(tmp_path, plugins, RuntimeError("driver exploded: secret-ish detail"))
    app = await make_scim(backend=backend)
    with caplog.at_level(logging.ERROR, logger="scimd.http"):
        resp = await app.request("GET", "/Users/abc", headers={"X-Request-Id": "req-500-check"})
    assert resp.status == 500
    assert resp.headers["Content-Type"] == "application/scim+json; charset=utf-8"
    doc = await resp.json(content_type=None)
    assert doc["status"] == "500"
    assert "req-500-check" in doc["detail"]
    assert "Traceback" not in doc["detail"]
    assert "driver exploded" not in doc["detail"]
    records = [r for r in caplog.records if "req-500-check" in r.getMessage()]
    assert records, "the log line must carry the request id"
    assert records[0].exc_info is not None


async def test_generated_request_id_in_500_matches_header(
    make_scim: MakeScim,
    tmp_path: Path,
    plugins: PluginManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = await make_scim(backend=_failing(tmp_path, plugins, KeyError("x")))
    with caplog.at_level(logging.ERROR, logger="scimd.http"):
        resp = await app.request("GET", "/Users/abc")
    rid = resp.headers["X-Request-Id"]
    doc = await resp.json(content_type=None)
    assert rid in doc["detail"]
    assert any(rid in r.getMessage() for r in caplog.records)


async def test_scim_error_from_backend_keeps_status_and_headers(
    make_scim: MakeScim, tmp_path: Path, plugins: PluginManager
) -> None:
    app = await make_scim(
        backend=_failing(tmp_path, plugins, ServiceUnavailable("store down", retry_after=7))
    )
    resp = await app.request("GET", "/Users/abc")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "7"
    doc = await resp.json(content_type=None)
    assert doc == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": "503",
        "detail": "store down",
    }


async def test_bad_input_never_500(make_scim: MakeScim) -> None:
    app = await make_scim()
    cases: list[tuple[str, str, Any]] = [
        ("POST", "/Users", [1, 2, 3]),
        ("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
        ("POST", "/Users", {"userName": 5}),
        ("PATCH", "/Users/x", {"Operations": "nope"}),
        ("POST", "/Users/.search", "string"),
        ("POST", "/Bulk", {"Operations": 3}),
    ]
    for method, path, body in cases:
        status, doc = await app.call(method, path, json=body)
        assert 400 <= status < 500, (method, path, status, doc)
        assert doc["status"] == str(status)
