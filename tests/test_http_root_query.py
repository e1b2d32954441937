"""GET on the service provider's base path queries every resource type (RFC 7644 3.4.2.1:
"a query against a server root indicates that all resources within the server SHALL be
included, subject to filtering")."""

from __future__ import annotations

from tests._http_helpers import BASE, Scim


async def test_get_on_base_path_lists_every_resource_type(scim: Scim) -> None:
    await scim.create_user("root1@example.com")
    await scim.create_user("root2@example.com")
    await scim.create_group("Root group")

    status, doc = await scim.call("GET", "")
    assert status == 200
    assert doc["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert doc["totalResults"] == 3
    assert sorted(r["meta"]["resourceType"] for r in doc["Resources"]) == [
        "Group",
        "User",
        "User",
    ]


async def test_get_on_base_path_filters_and_pages(scim: Scim) -> None:
    await scim.create_user("alpha@example.com", displayName="Shared name")
    await scim.create_group("Shared name")
    await scim.create_user("beta@example.com", displayName="Other")

    status, doc = await scim.call("GET", '?filter=displayName eq "shared name"')
    assert status == 200
    assert doc["totalResults"] == 2
    assert {r["meta"]["resourceType"] for r in doc["Resources"]} == {"User", "Group"}

    status, doc = await scim.call("GET", "?count=1&startIndex=2")
    assert status == 200
    assert doc["totalResults"] == 3
    assert doc["itemsPerPage"] == 1
    assert doc["startIndex"] == 2


async def test_get_on_base_path_needs_a_token_and_rejects_bad_filters(scim: Scim) -> None:
    resp = await scim.client.get(BASE)
    assert resp.status == 401
    status, doc = await scim.call("GET", "?filter=userName eq")
    assert status == 400
    assert doc["scimType"] == "invalidFilter"
    # Other methods on the base path are not allowed.
    status, _ = await scim.call("DELETE", "")
    assert status == 405
