"""SCIM over HTTP through scimd (in process, ``create_app`` with the ``scim-upstream``
backend) into the real upstream scimd process: ids and ETags are the upstream's, filters
are forwarded or planned as residuals, upstream outages become 503 with Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from scimd_http.client import UpstreamClient
from scimd_http.resilience import CircuitBreaker, RetryPolicy
from scimd_http.upstream import ScimUpstreamBackend, with_capabilities

from scimd.app import create_app
from scimd.backend import BackendEnv
from scimd.http.context import RUNTIME
from scimd.plugins import PluginManager
from scimd.settings import AuthSettings, Settings, StateSettings, StorageSettings
from scimd.testing.extension import build_contract_registry
from tests.conftest import Upstream, UpstreamTenant
from tests.faults import Fault, FaultProxy

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Gateway:
    def __init__(self, client: TestClient[Any, Any], token: str, backend: ScimUpstreamBackend):
        self.client = client
        self.backend = backend
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    async def call(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        resp = await self.client.request(
            method, "/scim/v2" + path, json=body, headers={**self.headers, **headers}
        )
        data = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, data, resp


async def _gateway(tmp_path: Path, url: str, token: str, **client_kw: Any) -> Gateway:
    registry = build_contract_registry(tmp_path)
    settings = Settings(
        storage=StorageSettings(backend="scim-upstream", options={}),
        state=StateSettings(path=tmp_path / "state.db"),
        auth=AuthSettings(bootstrap_token=False),
        base_dir=tmp_path,
    )
    client = UpstreamClient(url, token=token, **client_kw)
    env = BackendEnv(
        options={"url": url, "tenant": "default"}, registry=registry, base_dir=tmp_path
    )
    backend = ScimUpstreamBackend(env, client=client)
    app = create_app(settings, PluginManager.create(), registry=registry, backend=backend)
    test_client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    _record, gw_token = await app[RUNTIME].state.create_token(
        tenant="default", scopes=("read", "write")
    )
    return Gateway(test_client, gw_token, backend)


@pytest_asyncio.fixture(loop_scope="function")
async def gateway(
    tmp_path: Path, upstream: Upstream, upstream_tenant: UpstreamTenant
) -> AsyncIterator[Gateway]:
    gw = await _gateway(tmp_path, upstream.base_url, upstream_tenant.token)
    yield gw
    await gw.client.close()


async def upstream_get(upstream: Upstream, token: str, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(upstream.base_url + path, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_create_lands_upstream_with_the_upstreams_id(
    gateway: Gateway, upstream: Upstream, upstream_tenant: UpstreamTenant
) -> None:
    status, body, resp = await gateway.call(
        "POST", "/Users", {"schemas": [USER], "userName": "bjensen", "displayName": "Babs"}
    )
    assert status == 201
    assert body["meta"]["location"].startswith(str(gateway.client.make_url("/scim/v2/Users/")))
    status, direct = await upstream_get(upstream, upstream_tenant.token, f"/Users/{body['id']}")
    assert status == 200 and direct["userName"] == "bjensen"
    assert direct["meta"]["version"] == body["meta"]["version"] == resp.headers["ETag"]


async def test_filter_sort_and_paging_are_forwarded(gateway: Gateway) -> None:
    for name in ("carol", "alice", "bob", "zed"):
        assert (await gateway.call("POST", "/Users", {"schemas": [USER], "userName": name}))[
            0
        ] == 201
    status, body, _ = await gateway.call(
        "GET", '/Users?filter=userName+ne+"zed"&sortBy=userName&count=2&startIndex=2'
    )
    assert status == 200
    assert body["totalResults"] == 3
    assert [r["userName"] for r in body["Resources"]] == ["bob", "carol"]


async def test_filter_the_upstream_cannot_answer_is_a_residual(gateway: Gateway) -> None:
    for name in ("anna", "hanna", "bob"):
        await gateway.call("POST", "/Users", {"schemas": [USER], "userName": name})
    with_capabilities(gateway.backend, filter_ops=frozenset({"eq", "pr"}))
    status, body, _ = await gateway.call("GET", '/Users?filter=userName+co+"nna"')
    assert status == 200
    assert sorted(r["userName"] for r in body["Resources"]) == ["anna", "hanna"]


async def test_if_match_is_forwarded_and_412_kept(gateway: Gateway) -> None:
    _, user, resp = await gateway.call("POST", "/Users", {"schemas": [USER], "userName": "etag"})
    etag = resp.headers["ETag"]
    patch = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "displayName", "value": "E"}],
    }
    status, patched, _ = await gateway.call(
        "PATCH", f"/Users/{user['id']}", patch, **{"If-Match": etag}
    )
    assert status == 200 and patched["displayName"] == "E"
    status, err, _ = await gateway.call(
        "PUT",
        f"/Users/{user['id']}",
        {"schemas": [USER], "userName": "etag2"},
        **{"If-Match": etag},
    )
    assert status == 412 and err["scimType"] == "preconditionFailed"
    status, _, _ = await gateway.call("DELETE", f"/Users/{user['id']}")
    assert status == 204
    assert (await gateway.call("GET", f"/Users/{user['id']}"))[0] == 404


async def test_groups_and_members_through_the_gateway(gateway: Gateway) -> None:
    _, u, _ = await gateway.call("POST", "/Users", {"schemas": [USER], "userName": "member"})
    status, g, _ = await gateway.call(
        "POST",
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Ops",
            "members": [{"value": u["id"]}],
        },
    )
    assert status == 201
    _, fetched, _ = await gateway.call("GET", f"/Users/{u['id']}")
    assert [x["value"] for x in fetched["groups"]] == [g["id"]]
    _, by_member, _ = await gateway.call("GET", f'/Groups?filter=members.value+eq+"{u["id"]}"')
    assert [r["id"] for r in by_member["Resources"]] == [g["id"]]


async def test_upstream_outage_is_503_with_retry_after(
    tmp_path: Path, upstream: Upstream, upstream_tenant: UpstreamTenant
) -> None:
    proxy = FaultProxy(upstream.base_url, upstream_tenant.token)
    await proxy.start()
    gw = await _gateway(
        tmp_path,
        proxy.base + "/scim/v2",
        "unused-by-proxy",
        policy=RetryPolicy(retries=0),
        breaker=CircuitBreaker(threshold=1, reset_after=60.0),
    )
    try:
        proxy.always = Fault("status", 503)
        status, err, resp = await gw.call("GET", "/Users")
        assert status == 503 and resp.headers["Retry-After"]
        proxy.seen.clear()
        status, err, resp = await gw.call("POST", "/Users", {"schemas": [USER], "userName": "x"})
        assert status == 503 and int(resp.headers["Retry-After"]) >= 59
        assert "circuit open" in err["detail"] and proxy.seen["POST"] == 0
    finally:
        await gw.client.close()
        await proxy.stop()


async def test_cursor_paging_is_passed_through(gateway: Gateway) -> None:
    """RFC 9865: the upstream advertises ``pagination.cursor``; scimd's clients page with
    ``cursor``/``count`` and get the upstream's pages, ``nextCursor``/``previousCursor``
    mapped back (wrapped in scimd's own cursors, bound to the query)."""
    assert gateway.backend.capabilities.cursor
    names = [f"c{i}" for i in range(5)]
    for name in names:
        await gateway.call("POST", "/Users", {"schemas": [USER], "userName": name})
    status, first, _ = await gateway.call("GET", "/Users?cursor=&count=2&sortBy=userName")
    assert status == 200 and [r["userName"] for r in first["Resources"]] == names[:2]
    assert "startIndex" not in first and first["totalResults"] == 5
    seen = [r["userName"] for r in first["Resources"]]
    page = first
    while page.get("nextCursor"):
        status, page, _ = await gateway.call(
            "GET", f"/Users?cursor={page['nextCursor']}&count=2&sortBy=userName"
        )
        assert status == 200
        seen += [r["userName"] for r in page["Resources"]]
    assert seen == names
    status, back, _ = await gateway.call(
        "GET", f"/Users?cursor={page['previousCursor']}&count=2&sortBy=userName"
    )
    assert status == 200 and [r["userName"] for r in back["Resources"]] == names[2:4]
    # A cursor is bound to its query: replayed with another filter it is invalidCursor.
    status, err, _ = await gateway.call(
        "GET", f'/Users?cursor={first["nextCursor"]}&count=2&filter=userName+eq+"c1"'
    )
    assert status == 400 and err["scimType"] == "invalidCursor"
