"""Tenant isolation and scopes for every verb: another tenant's resources do not exist
(404, never 403), a token without the needed scope gets 403."""

from __future__ import annotations

from tests._http_helpers import Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


async def test_other_tenant_cannot_see_or_touch(scim: Scim) -> None:
    user = await scim.create_user("tenant-a-user", externalId="ext-a")
    group = await scim.create_group("Tenant A group", [user["id"]])
    other = await scim.new_token(tenant="tenant-b")
    bodies = {
        "Users": {"schemas": [USER], "userName": "stolen"},
        "Groups": {"schemas": [GROUP], "displayName": "stolen"},
    }
    for ep, rid in (("Users", user["id"]), ("Groups", group["id"])):
        status, _ = await scim.call("GET", f"/{ep}/{rid}", token=other)
        assert status == 404
        status, _ = await scim.call("PUT", f"/{ep}/{rid}", token=other, json=bodies[ep])
        assert status == 404
        status, _ = await scim.call(
            "PATCH",
            f"/{ep}/{rid}",
            token=other,
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "displayName", "value": "x"}],
            },
        )
        assert status == 404
        status, _ = await scim.call("DELETE", f"/{ep}/{rid}", token=other)
        assert status == 404
    # find: list, filter, .search, root search
    _, doc = await scim.call("GET", "/Users", token=other)
    assert doc["totalResults"] == 0
    _, doc = await scim.call("GET", '/Users?filter=externalId eq "ext-a"', token=other)
    assert doc["totalResults"] == 0
    _, doc = await scim.call(
        "POST",
        "/Users/.search",
        token=other,
        json={"schemas": [SEARCH], "filter": 'userName eq "tenant-a-user"'},
    )
    assert doc["totalResults"] == 0
    _, doc = await scim.call("POST", "/.search", token=other, json={"schemas": [SEARCH]})
    assert doc["totalResults"] == 0
    # Tenant B may use the same userName: uniqueness is per tenant.
    status, mine = await scim.call(
        "POST", "/Users", token=other, json={"schemas": [USER], "userName": "tenant-a-user"}
    )
    assert status == 201
    # ... and the original is untouched and still there for tenant A.
    status, doc = await scim.call("GET", f"/Users/{user['id']}")
    assert status == 200
    assert doc["userName"] == "tenant-a-user"
    status, doc = await scim.call("GET", f"/Groups/{group['id']}")
    assert status == 200
    assert doc["displayName"] == "Tenant A group"
    # Tenant A cannot see tenant B's new user either.
    status, _ = await scim.call("GET", f"/Users/{mine['id']}")
    assert status == 404


async def test_read_only_token_gets_403_on_writes(scim: Scim) -> None:
    user = await scim.create_user("ro-target")
    ro = await scim.new_token(scopes=("read",))
    status, _ = await scim.call("GET", f"/Users/{user['id']}", token=ro)
    assert status == 200
    status, _ = await scim.call("GET", "/Users", token=ro)
    assert status == 200
    writes = [
        ("POST", "/Users", {"schemas": [USER], "userName": "nope"}),
        ("PUT", f"/Users/{user['id']}", {"schemas": [USER], "userName": "ro-target"}),
        (
            "PATCH",
            f"/Users/{user['id']}",
            {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "nickName", "value": "n"}],
            },
        ),
        ("DELETE", f"/Users/{user['id']}", None),
        (
            "POST",
            "/Bulk",
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []},
        ),
    ]
    for method, path, body in writes:
        status, doc = await scim.call(method, path, token=ro, json=body)
        assert status == 403, (method, path)
        assert doc["status"] == "403"
    status, _ = await scim.call("GET", f"/Users/{user['id']}")
    assert status == 200


async def test_write_only_token_gets_403_on_reads(scim: Scim) -> None:
    wo = await scim.new_token(scopes=("write",))
    status, _ = await scim.call("GET", "/Users", token=wo)
    assert status == 403
    status, _ = await scim.call("POST", "/Users/.search", token=wo, json={"schemas": [SEARCH]})
    assert status == 403


async def test_revoked_token_is_rejected_after_cache(scim: Scim) -> None:
    token = await scim.new_token()
    status, _ = await scim.call("GET", "/Users", token=token)
    assert status == 200
    records = await scim.state.list_tokens("default")
    newest = max(records, key=lambda r: r.created)
    assert await scim.state.revoke_token(newest.id)
    scim.runtime.authenticator.invalidate()
    status, _ = await scim.call("GET", "/Users", token=token)
    assert status == 401
