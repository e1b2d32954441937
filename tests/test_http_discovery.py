"""Discovery endpoints (RFC 7644 4, RFC 7643 5-7, RFC 9865 pagination block)."""

from __future__ import annotations

from scimd.settings import BulkSettings, ServerSettings
from tests._http_helpers import BASE, MakeScim, Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_service_provider_config(scim: Scim) -> None:
    status, doc = await scim.call("GET", "/ServiceProviderConfig")
    assert status == 200
    assert doc["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert doc["patch"] == {"supported": True}
    assert doc["bulk"]["supported"] is True
    assert isinstance(doc["bulk"]["maxOperations"], int)
    assert isinstance(doc["bulk"]["maxPayloadSize"], int)
    assert doc["filter"]["supported"] is True
    assert doc["filter"]["maxResults"] > 0
    assert doc["changePassword"]["supported"] is True
    assert doc["sort"]["supported"] is True
    assert doc["etag"]["supported"] is True
    assert doc["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    pagination = doc["pagination"]
    assert pagination["cursor"] is True
    assert pagination["index"] is True
    assert pagination["defaultPaginationMethod"] == "index"
    assert pagination["maxPageSize"] == doc["filter"]["maxResults"]
    assert isinstance(pagination["cursorTimeout"], int)
    assert doc["meta"]["location"].endswith(f"{BASE}/ServiceProviderConfig")
    assert doc["meta"]["resourceType"] == "ServiceProviderConfig"


async def test_service_provider_config_follows_settings(make_scim: MakeScim) -> None:
    app = await make_scim(bulk=BulkSettings(enabled=False, max_operations=7))
    _, doc = await app.call("GET", "/ServiceProviderConfig")
    assert doc["bulk"]["supported"] is False
    assert doc["bulk"]["maxOperations"] == 7


async def test_resource_types_list_and_single(scim: Scim) -> None:
    status, doc = await scim.call("GET", "/ResourceTypes")
    assert status == 200
    ids = {r["id"] for r in doc["Resources"]}
    assert {"User", "Group"} <= ids
    assert doc["totalResults"] == len(doc["Resources"])
    user = next(r for r in doc["Resources"] if r["id"] == "User")
    assert user["endpoint"] == "/Users"
    assert user["schema"] == USER
    assert user["meta"]["location"].endswith(f"{BASE}/ResourceTypes/User")
    status, single = await scim.call("GET", "/ResourceTypes/User")
    assert status == 200
    assert single == user
    status, _ = await scim.call("GET", "/ResourceTypes/Nope")
    assert status == 404


async def test_schemas_served_match_the_data(scim: Scim) -> None:
    status, doc = await scim.call("GET", "/Schemas")
    assert status == 200
    by_id = {s["id"]: s for s in doc["Resources"]}
    assert USER in by_id
    assert ENTERPRISE in by_id
    user_attrs = {a["name"]: a for a in by_id[USER]["attributes"]}
    # What /Schemas says is what the server enforces: userName is required and unique,
    # password is never returned.
    assert user_attrs["userName"]["required"] is True
    assert user_attrs["userName"]["uniqueness"] == "server"
    assert user_attrs["password"]["returned"] == "never"
    registry_user = scim.runtime.registry.schema(USER)
    assert registry_user is not None
    assert {a.name for a in registry_user.order} == set(user_attrs)
    status, single = await scim.call("GET", f"/Schemas/{USER}")
    assert status == 200
    assert single["id"] == USER
    assert single["meta"]["location"].endswith(f"{BASE}/Schemas/{USER}")
    status, _ = await scim.call("GET", "/Schemas/urn:nope")
    assert status == 404


async def test_filter_on_discovery_is_403(scim: Scim) -> None:
    status, doc = await scim.call("GET", '/Schemas?filter=id eq "x"')
    assert status == 403
    assert doc["status"] == "403"


async def test_discovery_needs_token_unless_anonymous(make_scim: MakeScim) -> None:
    app = await make_scim()
    for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas"):
        resp = await app.request("GET", path, auth=False)
        assert resp.status == 401, path
    anon = await make_scim(server=ServerSettings(anonymous_discovery=True))
    for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas"):
        resp = await anon.request("GET", path, auth=False)
        assert resp.status == 200, path
    # Resources still need a token.
    resp = await anon.request("GET", "/Users", auth=False)
    assert resp.status == 401


async def test_discovery_paths_case_insensitive(scim: Scim) -> None:
    for path in ("/serviceproviderconfig", "/resourcetypes", "/schemas"):
        status, _ = await scim.call("GET", path)
        assert status == 200, path
