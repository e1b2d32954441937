"""SCIM over HTTP through scimd (in process, ``create_app`` with the ``rest`` backend and
the shipped members mapping) into the fake members API served on loopback: field
mapping both ways, filters as query parameters or bounded residuals, every pagination
style, the API's errors as SCIM errors, and fault injection (retries honour Retry-After,
the breaker answers 503 with Retry-After, a create is never sent twice)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from scimd_http.client import UpstreamClient
from scimd_http.resilience import CircuitBreaker, RetryPolicy
from scimd_http.rest import RestBackend
from scimd_http.rest_mapping import load_mapping
from scimd_http.testing import Fault, MembersAPI

from scimd.app import create_app
from scimd.backend import BackendEnv
from scimd.http.context import RUNTIME
from scimd.plugins import PluginManager
from scimd.settings import AuthSettings, ScimSettings, Settings, StateSettings, StorageSettings
from scimd.testing.extension import build_contract_registry
from tests.conftest import MAPPING
from tests.test_gateway_http import Gateway

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


class Sleeps(list[float]):
    async def __call__(self, delay: float) -> None:
        self.append(delay)


async def _gateway(
    tmp_path: Path, api: MembersAPI, *, residual_limit: int = 1000, **client_kw: Any
) -> Gateway:
    registry = build_contract_registry(tmp_path)
    settings = Settings(
        storage=StorageSettings(backend="rest", options={}),
        state=StateSettings(path=tmp_path / "state.db"),
        auth=AuthSettings(bootstrap_token=False),
        scim=ScimSettings(residual_limit=residual_limit),
        base_dir=tmp_path,
    )
    mapping = load_mapping(MAPPING)
    client_kw.setdefault("policy", RetryPolicy(retries=3, rand=lambda: 0.0))
    client = UpstreamClient(api.base, token=api.token, media_type="application/json", **client_kw)
    env = BackendEnv(options={"url": api.base}, registry=registry, base_dir=tmp_path)
    backend = RestBackend(env, client=client, mapping=mapping)
    app = create_app(settings, PluginManager.create(), registry=registry, backend=backend)
    test_client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    _record, token = await app[RUNTIME].state.create_token(
        tenant="default", scopes=("read", "write")
    )
    return Gateway(test_client, token, backend)  # type: ignore[arg-type]


@pytest_asyncio.fixture(loop_scope="function")
async def gw(tmp_path: Path, members_api: MembersAPI) -> AsyncIterator[Gateway]:
    g = await _gateway(tmp_path, members_api)
    yield g
    await g.client.close()


def jensen(name: str = "bjensen", **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "userName": name,
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. B J"},
        "emails": [
            {"value": "home@example.com", "type": "home"},
            {"value": f"{name}@example.com", "type": "work", "primary": True},
        ],
        "active": True,
        "title": "Tour Guide",
        **extra,
    }


async def test_fields_are_mapped_both_ways(gw: Gateway, members_api: MembersAPI) -> None:
    status, body, resp = await gw.call("POST", "/Users", jensen(externalId="e-1"))
    assert status == 201, body
    stored = members_api.users[body["id"]]
    # SCIM -> API: plain, nested, primary email, value-mapped status, constant, extras.
    assert stored["username"] == "bjensen" and stored["email"] == "bjensen@example.com"
    assert (stored["first_name"], stored["last_name"]) == ("Barbara", "Jensen")
    assert stored["status"] == "active" and stored["role"] == "member"
    assert stored["external_id"] == "e-1"
    assert stored["custom_attributes"]["title"] == "Tour Guide"
    assert body["meta"]["created"].endswith("Z") and resp.headers["ETag"].startswith('W/"')
    # API -> SCIM: a change made in the SaaS shows through (the API is authoritative).
    stored.update(status="suspended", first_name="Babs", email="new@example.com")
    _, got, _ = await gw.call("GET", f"/Users/{body['id']}")
    assert got["active"] is False and got["name"]["givenName"] == "Babs"
    primary = [e for e in got["emails"] if e.get("primary")]
    assert primary == [{"value": "new@example.com", "type": "work", "primary": True}]
    assert got["name"]["formatted"] == "Ms. B J" and got["title"] == "Tour Guide"


async def test_patch_and_replace_go_through_put(gw: Gateway, members_api: MembersAPI) -> None:
    _, u, _ = await gw.call("POST", "/Users", jensen())
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    status, body, _ = await gw.call("PATCH", f"/Users/{u['id']}", patch)
    assert status == 200 and body["active"] is False
    assert members_api.users[u["id"]]["status"] == "suspended"
    replacement = {"schemas": [USER], "userName": "b2"}
    status, body, _ = await gw.call("PUT", f"/Users/{u['id']}", replacement)
    assert status == 200 and "emails" not in body and "active" not in body
    assert members_api.users[u["id"]].get("email") is None


async def test_filters_become_query_parameters(gw: Gateway, members_api: MembersAPI) -> None:
    for name, active in (("anna", True), ("hanna", False), ("bob", True)):
        await gw.call("POST", "/Users", jensen(name, active=active))
    members_api.seen.clear()
    status, body, _ = await gw.call("GET", '/Users?filter=userName+eq+"ANNA"')
    assert status == 200 and [r["userName"] for r in body["Resources"]] == ["anna"]
    status, body, _ = await gw.call("GET", "/Users?filter=active+eq+false")
    assert [r["userName"] for r in body["Resources"]] == ["hanna"]
    # eq on a mapped attribute and a residual the core evaluates over the candidates.
    status, body, _ = await gw.call("GET", '/Users?filter=active+eq+true+and+userName+co+"nn"')
    assert status == 200 and [r["userName"] for r in body["Resources"]] == ["anna"]
    assert body["totalResults"] == 1


async def test_unbounded_residual_is_invalid_filter(
    tmp_path: Path, members_api: MembersAPI
) -> None:
    gw = await _gateway(tmp_path, members_api, residual_limit=2)
    try:
        for name in ("a1", "a2", "a3"):
            await gw.call("POST", "/Users", jensen(name))
        status, body, _ = await gw.call("GET", '/Users?filter=title+eq+"Tour Guide"')
        assert status == 400 and body["scimType"] == "invalidFilter"
    finally:
        await gw.client.close()


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "url"])
async def test_every_pagination_style(tmp_path: Path, style: str) -> None:
    api = MembersAPI(token="tok", style=style, max_page=4)  # noqa: S106 - fake service
    await api.start()
    mapping_text = MAPPING.read_text("utf-8")
    paging = {
        "page": "",
        "offset": 'style = "offset"\noffset_param = "offset"\nsize_param = "limit"\n',
        "cursor": 'style = "cursor"\ncursor_param = "cursor"\nsize_param = "limit"\n'
        'next = "next_cursor"\ntotal = ""\n',
        "url": 'style = "url"\nsize_param = "limit"\nnext = "links.next"\ntotal = ""\n',
    }[style]
    text = mapping_text.replace('style = "page"              # page | offset | cursor | url\n', "")
    text = text.replace("max_page_size = 100", "max_page_size = 4")
    if style != "page":
        text = text.replace('total = "total"', "").replace('size_param = "per_page"', "")
    text = text.replace("[api.pagination]\n", "[api.pagination]\n" + (paging or 'style = "page"\n'))
    path = tmp_path / "mapping.toml"
    path.write_text(text, "utf-8")
    registry = build_contract_registry(tmp_path)
    settings = Settings(
        storage=StorageSettings(backend="rest", options={}),
        state=StateSettings(path=tmp_path / "state.db"),
        auth=AuthSettings(bootstrap_token=False),
        base_dir=tmp_path,
    )
    env = BackendEnv(
        options={"url": api.base, "token": api.token, "mapping": str(path)},
        registry=registry,
        base_dir=tmp_path,
    )
    backend = RestBackend(env)
    app = create_app(settings, PluginManager.create(), registry=registry, backend=backend)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    _r, token = await app[RUNTIME].state.create_token(tenant="default", scopes=("read", "write"))
    gw = Gateway(client, token, backend)  # type: ignore[arg-type]
    try:
        names = [f"u{i:02d}" for i in range(11)]
        for n in names:
            assert (await gw.call("POST", "/Users", jensen(n)))[0] == 201
        seen: list[str] = []
        for start in (1, 4, 7, 10):  # windows not aligned with the API's pages
            status, body, _ = await gw.call("GET", f"/Users?startIndex={start}&count=3")
            assert status == 200 and body["totalResults"] == 11, body
            seen += [r["userName"] for r in body["Resources"]]
        assert seen == names
        status, body, _ = await gw.call("GET", "/Users?count=0")
        assert body["totalResults"] == 11 and "Resources" not in body
    finally:
        await client.close()
        await api.stop()


async def test_api_errors_map_to_scim_errors(gw: Gateway, members_api: MembersAPI) -> None:
    await gw.call("POST", "/Users", jensen("taken"))
    other = jensen("TAKEN", emails=[{"value": "other@example.com", "primary": True}])
    status, body, _ = await gw.call("POST", "/Users", other)
    assert status == 409 and body["scimType"] == "uniqueness"
    assert "userName" in body["detail"] and "upstream: username TAKEN is taken" in body["detail"]
    status, body, _ = await gw.call("GET", "/Users/nope")
    assert status == 404
    group = {"schemas": [GROUP], "displayName": "G", "members": [{"value": "ghost"}]}
    status, body, _ = await gw.call("POST", "/Groups", group)
    assert status == 400 and body["scimType"] == "invalidValue"
    # scimd's API credentials are refused: not the client's fault.
    members_api.token = "rotated"  # noqa: S105 - the fake service's credential
    status, body, resp = await gw.call("GET", "/Users")
    assert status == 503 and resp.headers["Retry-After"]


async def test_groups_members_and_computed_user_groups(gw: Gateway) -> None:
    _, a, _ = await gw.call("POST", "/Users", jensen("a"))
    _, b, _ = await gw.call("POST", "/Users", jensen("b"))
    group = {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": a["id"]}]}
    status, g, _ = await gw.call("POST", "/Groups", group)
    assert status == 201 and [m["value"] for m in g["members"]] == [a["id"]]
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": b["id"]}]}],
    }
    assert (await gw.call("PATCH", f"/Groups/{g['id']}", patch))[0] in (200, 204)
    _, fetched, _ = await gw.call("GET", f"/Users/{b['id']}")
    assert fetched["groups"][0]["value"] == g["id"] and fetched["groups"][0]["display"] == "Ops"
    _, found, _ = await gw.call("GET", f'/Groups?filter=members.value+eq+"{b["id"]}"')
    assert [r["id"] for r in found["Resources"]] == [g["id"]]


async def test_retry_honours_retry_after(tmp_path: Path, members_api: MembersAPI) -> None:
    sleeps = Sleeps()
    gw = await _gateway(tmp_path, members_api, sleep=sleeps)
    try:
        members_api.faults = [Fault("status", 429, "7"), Fault("status", 503)]
        status, body, _ = await gw.call("GET", "/Users")
        assert status == 200 and body["totalResults"] == 0
        assert sleeps == [7.0, 0.0]  # Retry-After, then full jitter (rand=0)
        members_api.faults = [Fault("drop", method="GET")]
        status, body, _ = await gw.call("GET", "/Users")
        assert status == 200 and members_api.faults == []
    finally:
        await gw.client.close()


async def test_create_is_never_sent_twice(tmp_path: Path, members_api: MembersAPI) -> None:
    gw = await _gateway(tmp_path, members_api, sleep=Sleeps())
    try:
        members_api.faults = [Fault("status", 503, "1", method="POST")]
        status, _body, resp = await gw.call("POST", "/Users", jensen())
        assert status == 503 and resp.headers["Retry-After"]
        assert members_api.seen["POST"] == 1 and members_api.users == {}
        members_api.faults = [Fault("drop", method="POST")]
        status, _body, _ = await gw.call("POST", "/Users", jensen())
        assert status == 503 and members_api.seen["POST"] == 2
    finally:
        await gw.client.close()


async def test_breaker_opens_and_answers_503_without_calling(
    tmp_path: Path, members_api: MembersAPI
) -> None:
    gw = await _gateway(
        tmp_path,
        members_api,
        policy=RetryPolicy(retries=0),
        breaker=CircuitBreaker(threshold=2, reset_after=60.0),
    )
    try:
        members_api.faults = [Fault("status", 503), Fault("status", 502)]
        assert (await gw.call("GET", "/Users"))[0] == 503
        assert (await gw.call("GET", "/Users"))[0] == 503
        members_api.seen.clear()
        status, body, resp = await gw.call("POST", "/Users", jensen())
        assert status == 503 and int(resp.headers["Retry-After"]) >= 59
        assert "circuit open" in body["detail"] and sum(members_api.seen.values()) == 0
    finally:
        await gw.client.close()


async def test_slow_answer_times_out_as_503(tmp_path: Path, members_api: MembersAPI) -> None:
    gw = await _gateway(tmp_path, members_api, timeout=0.2, policy=RetryPolicy(retries=0))
    try:
        members_api.faults = [Fault("slow")]
        status, body, resp = await gw.call("GET", "/Users")
        assert status == 503 and "timed out" in body["detail"] and resp.headers["Retry-After"]
    finally:
        members_api.release()
        await gw.client.close()
