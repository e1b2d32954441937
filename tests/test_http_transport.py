"""INTEROP.md "Transport and discovery": the exact requests real clients send."""

from __future__ import annotations

import uuid

from scimd import quirks
from scimd.settings import ServerSettings
from tests._http_helpers import BASE, MakeScim, Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def _user(name: str) -> dict[str, object]:
    return {"schemas": [USER], "userName": name, "active": True}


async def test_body_as_scim_json(scim: Scim) -> None:
    status, doc = await scim.call("POST", "/Users", json=_user("a@example.com"))
    assert status == 201
    assert doc["userName"] == "a@example.com"


async def test_body_as_scim_json_with_charset(scim: Scim) -> None:
    status, _ = await scim.call(
        "POST",
        "/Users",
        json=_user("b@example.com"),
        content_type="application/scim+json; charset=utf-8",
    )
    assert status == 201


async def test_body_as_plain_json(scim: Scim) -> None:
    status, _ = await scim.call(
        "POST", "/Users", json=_user("c@example.com"), content_type="application/json"
    )
    assert status == 201


async def test_body_without_content_type_okta(scim: Scim) -> None:
    resp = await scim.request("POST", "/Users", json=_user("d@example.com"), content_type=None)
    assert resp.status == 201
    assert resp.headers["Content-Type"] == "application/scim+json; charset=utf-8"


async def test_other_content_type_is_415(scim: Scim) -> None:
    status, doc = await scim.call(
        "POST", "/Users", data="userName=x", content_type="application/x-www-form-urlencoded"
    )
    assert status == 415
    assert doc["status"] == "415"


async def test_invalid_json_is_400_invalid_syntax(scim: Scim) -> None:
    status, doc = await scim.call("POST", "/Users", data=b"{not json")
    assert status == 400
    assert doc["scimType"] == "invalidSyntax"


async def test_body_over_max_payload_is_413(make_scim: MakeScim) -> None:
    app = await make_scim(server=ServerSettings(max_payload_size=200))
    body = _user("e@example.com")
    body["displayName"] = "x" * 500
    status, doc = await app.call("POST", "/Users", json=body)
    assert status == 413
    assert doc["status"] == "413"


async def test_filter_with_plus_and_percent40(scim: Scim) -> None:
    await scim.create_user("jane.doe@example.com")
    resp = await scim.client.get(
        f"{BASE}/Users?filter=userName+eq+%22jane.doe%40example.com%22",
        headers=scim.headers(),
    )
    assert resp.status == 200
    doc = await resp.json(content_type=None)
    assert doc["totalResults"] == 1
    assert doc["Resources"][0]["userName"] == "jane.doe@example.com"


async def test_post_service_provider_config_with_junk_is_405(scim: Scim) -> None:
    for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas"):
        status, doc = await scim.call("POST", path, data=b"\x00junk{{", content_type="text/plain")
        assert status == 405, path
        assert doc["schemas"] == [ERROR]
        assert doc["status"] == "405"


async def test_lower_case_and_upper_case_paths(scim: Scim) -> None:
    user = await scim.create_user("case@example.com")
    for ep in ("users", "USERS", "Users"):
        status, doc = await scim.call("GET", f"/{ep}/{user['id']}")
        assert status == 200, ep
        assert doc["id"] == user["id"]
    status, doc = await scim.call("POST", "/users", json=_user("lower@example.com"))
    assert status == 201
    status, doc = await scim.call("GET", "/groups")
    assert status == 200


async def test_entra_test_connection_random_guid(scim: Scim) -> None:
    guid = str(uuid.uuid4())
    resp = await scim.client.get(
        f'{BASE}/Users?filter=userName eq "{guid}"', headers=scim.headers()
    )
    assert resp.status == 200
    doc = await resp.json(content_type=None)
    assert doc["totalResults"] == 0
    assert doc["Resources"] == []
    assert isinstance(doc["itemsPerPage"], int)
    assert isinstance(doc["startIndex"], int)


async def test_error_body_status_is_string_detail_present(scim: Scim) -> None:
    status, doc = await scim.call("GET", f"/Users/{uuid.uuid4()}")
    assert status == 404
    assert doc["schemas"] == [ERROR]
    assert doc["status"] == "404"
    assert isinstance(doc["detail"], str)
    assert doc["detail"]


async def test_missing_authorization_is_401_with_www_authenticate(scim: Scim) -> None:
    resp = await scim.request("GET", "/Users", auth=False)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    doc = await resp.json(content_type=None)
    assert doc["status"] == "401"
    assert doc["detail"]


async def test_authorization_non_token_is_401(scim: Scim) -> None:
    resp = await scim.request("GET", "/Users", auth=False, headers={"Authorization": "non-token"})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_bearer_token_is_401(scim: Scim) -> None:
    resp = await scim.request("GET", "/Users", token="scimd_not-a-real-token")
    assert resp.status == 401
    assert "WWW-Authenticate" in resp.headers


async def test_list_numbers_are_json_numbers_and_stable_order(scim: Scim) -> None:
    for i in range(5):
        await scim.create_user(f"page{i}@example.com")
    seen: list[str] = []
    for start in (1, 3, 5):
        status, doc = await scim.call("GET", f"/Users?count=2&startIndex={start}")
        assert status == 200
        assert doc["totalResults"] == 5
        assert doc["startIndex"] == start
        assert isinstance(doc["itemsPerPage"], int)
        seen.extend(r["id"] for r in doc["Resources"])
    assert len(seen) == 5
    assert len(set(seen)) == 5


async def test_unknown_path_is_scim_404(scim: Scim) -> None:
    status, doc = await scim.call("GET", "/Nope")
    assert status == 404
    assert doc["schemas"] == [ERROR]


async def test_method_not_allowed_on_resource(scim: Scim) -> None:
    status, doc = await scim.call("DELETE", "/Users")
    assert status == 405
    assert doc["status"] == "405"


async def test_request_id_is_echoed_or_generated(scim: Scim) -> None:
    resp = await scim.request("GET", "/Users", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    generated = set()
    for _ in range(3):
        resp = await scim.request("GET", "/Users")
        generated.add(resp.headers["X-Request-Id"])
    assert len(generated) == 3  # each request its own id
    assert all(len(rid) >= 16 for rid in generated)  # with a random part: unique per run
    resp = await scim.request("GET", "/Users", headers={"X-Request-Id": "bad id\twith spaces"})
    assert resp.headers["X-Request-Id"] != "bad id\twith spaces"


async def test_healthz_needs_no_token(scim: Scim) -> None:
    resp = await scim.client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json(content_type=None))["status"] == "ok"


async def test_tolerated_deviations_are_counted(scim: Scim) -> None:
    before = quirks.snapshot()
    await scim.request("POST", "/users", json=_user("quirk@example.com"), content_type=None)
    after = quirks.snapshot()
    assert after.get("no_content_type", 0) == before.get("no_content_type", 0) + 1
    assert after.get("lowercase_path", 0) == before.get("lowercase_path", 0) + 1
    await scim.request("GET", "/Users")
    assert quirks.snapshot().get("lowercase_path", 0) == after.get("lowercase_path", 0)
