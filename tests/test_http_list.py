"""Listing and searching over HTTP (RFC 7644 3.4.2, 3.4.3; RFC 9865 cursors)."""

from __future__ import annotations

from typing import Any

from tests._http_helpers import BASE, MakeScim, Scim

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


async def _users(scim: Scim, n: int) -> list[dict[str, Any]]:
    return [
        await scim.create_user(f"user{i:02d}@example.com", displayName=f"User {n - i:02d}")
        for i in range(n)
    ]


async def test_filter_user_name_eq_is_case_insensitive(scim: Scim) -> None:
    await scim.create_user("Alice@Example.com")
    status, doc = await scim.call("GET", '/Users?filter=userName eq "alice@example.com"')
    assert status == 200
    assert doc["schemas"] == [LIST]
    assert doc["totalResults"] == 1


async def test_filter_external_id_and_emails_value_path(scim: Scim) -> None:
    await scim.create_user(
        "bob", externalId="ext-bob", emails=[{"type": "work", "value": "bob@work.example"}]
    )
    await scim.create_user("carol", externalId="ext-carol")
    _, doc = await scim.call("GET", '/Users?filter=externalId eq "ext-bob"')
    assert [r["userName"] for r in doc["Resources"]] == ["bob"]
    _, doc = await scim.call(
        "GET", '/Users?filter=emails[type eq "work"].value eq "bob@work.example"'
    )
    assert [r["userName"] for r in doc["Resources"]] == ["bob"]


async def test_invalid_filter_is_400_invalid_filter(scim: Scim) -> None:
    status, doc = await scim.call("GET", '/Users?filter=userName eq "unterminated')
    assert status == 400
    assert doc["scimType"] == "invalidFilter"


async def test_count_zero_returns_only_total(scim: Scim) -> None:
    await _users(scim, 3)
    status, doc = await scim.call("GET", "/Users?count=0")
    assert status == 200
    assert doc["totalResults"] == 3
    assert "Resources" not in doc


async def test_bad_count_is_400(scim: Scim) -> None:
    status, doc = await scim.call("GET", "/Users?count=abc")
    assert status == 400
    assert doc["status"] == "400"


async def test_index_paging_exact_total_and_sort(scim: Scim) -> None:
    await _users(scim, 7)
    _, doc = await scim.call("GET", "/Users?sortBy=userName&sortOrder=descending&count=3")
    assert doc["totalResults"] == 7
    assert doc["itemsPerPage"] == 3
    assert [r["userName"] for r in doc["Resources"]] == [
        "user06@example.com",
        "user05@example.com",
        "user04@example.com",
    ]
    _, doc = await scim.call("GET", "/Users?sortBy=displayName&startIndex=7&count=3")
    assert [r["displayName"] for r in doc["Resources"]] == ["User 07"]
    assert doc["startIndex"] == 7


async def test_attributes_projection_on_list(scim: Scim) -> None:
    await scim.create_user("proj", emails=[{"value": "p@example.com"}], displayName="P")
    _, doc = await scim.call("GET", "/Users?attributes=userName,emails")
    res = doc["Resources"][0]
    assert set(res) >= {"id", "userName", "emails"}
    assert "displayName" not in res


async def test_cursor_paging_walks_every_resource_once(scim: Scim) -> None:
    users = await _users(scim, 5)
    status, doc = await scim.call("GET", "/Users?cursor=&count=2")
    assert status == 200
    assert "startIndex" not in doc
    seen = [r["id"] for r in doc["Resources"]]
    pages = 1
    while "nextCursor" in doc:
        status, doc = await scim.call("GET", f"/Users?cursor={doc['nextCursor']}&count=2")
        assert status == 200
        seen.extend(r["id"] for r in doc["Resources"])
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(u["id"] for u in users)
    assert "previousCursor" in doc


async def test_cursor_tampered_or_from_other_query_is_invalid(scim: Scim) -> None:
    await _users(scim, 3)
    _, doc = await scim.call("GET", "/Users?cursor=&count=1")
    cursor = doc["nextCursor"]
    status, err = await scim.call("GET", "/Users?cursor=garbage&count=1")
    assert status == 400
    assert err["scimType"] == "invalidCursor"
    status, err = await scim.call(
        "GET", f'/Users?cursor={cursor}&count=1&filter=userName sw "user"'
    )
    assert status == 400
    assert err["scimType"] == "invalidCursor"


async def test_post_search_on_resource_type(scim: Scim) -> None:
    await _users(scim, 3)
    status, doc = await scim.call(
        "POST",
        "/Users/.search",
        json={
            "schemas": [SEARCH],
            "filter": 'userName sw "user0"',
            "attributes": ["userName"],
            "sortBy": "userName",
            "startIndex": 2,
            "count": 1,
        },
    )
    assert status == 200
    assert doc["totalResults"] == 3
    assert [r["userName"] for r in doc["Resources"]] == ["user01@example.com"]
    assert "displayName" not in doc["Resources"][0]


async def test_get_on_search_endpoint_is_405(scim: Scim) -> None:
    status, _ = await scim.call("GET", "/Users/.search")
    assert status == 405


async def test_root_search_across_resource_types(scim: Scim) -> None:
    await _users(scim, 2)
    await scim.create_group("G1")
    status, doc = await scim.call("POST", "/.search", json={"schemas": [SEARCH]})
    assert status == 200
    assert doc["totalResults"] == 3
    kinds = sorted(r["meta"]["resourceType"] for r in doc["Resources"])
    assert kinds == ["Group", "User", "User"]
    for r in doc["Resources"]:
        assert r["meta"]["location"].endswith(f"/{r['id']}")
    status, doc = await scim.call(
        "POST", "/.search", json={"schemas": [SEARCH], "filter": 'displayName eq "G1"'}
    )
    assert status == 200
    assert [r["displayName"] for r in doc["Resources"]] == ["G1"]
    status, doc = await scim.call(
        "POST", "/.search", json={"schemas": [SEARCH], "startIndex": 2, "count": 2}
    )
    assert doc["totalResults"] == 3
    assert doc["itemsPerPage"] == 2


async def test_list_urls_in_plain_query_string(scim: Scim) -> None:
    await scim.create_user("q@example.com")
    resp = await scim.client.get(
        f"{BASE}/Users", params={"filter": 'userName eq "q@example.com"'}, headers=scim.headers()
    )
    assert (await resp.json(content_type=None))["totalResults"] == 1


async def test_configured_cursor_secret_is_shared_between_apps(make_scim: MakeScim) -> None:
    from scimd.settings import ScimSettings

    one = await make_scim(scim=ScimSettings(cursor_secret="short"))
    await _users(one, 3)
    _, doc = await one.call("GET", "/Users?cursor=&count=1")
    cursor = doc["nextCursor"]
    # A second process (another app on the same store and secret) accepts the cursor.
    two = await make_scim(scim=ScimSettings(cursor_secret="short"))
    status, page = await two.call("GET", f"/Users?cursor={cursor}&count=1")
    assert status == 200, page
    assert page["Resources"][0]["id"] != doc["Resources"][0]["id"]
