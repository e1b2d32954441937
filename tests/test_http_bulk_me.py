"""``POST /Bulk`` (RFC 7644 3.7) and ``/Me`` (RFC 7644 3.11) over HTTP."""

from __future__ import annotations

from typing import Any

from scimd.settings import BulkSettings
from tests._http_helpers import MakeScim, Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
BULK_REQ = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESP = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def bulk(*ops: dict[str, Any], fail_on_errors: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [BULK_REQ], "Operations": list(ops)}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return body


async def test_bulk_resolves_bulk_ids_in_dependency_order(scim: Scim) -> None:
    # RFC 7644 3.7.2: the Group comes first but references users created later.
    status, doc = await scim.call(
        "POST",
        "/Bulk",
        json=bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "qwerty",
                "data": {
                    "schemas": [GROUP],
                    "displayName": "Tour Guides",
                    "members": [
                        {"type": "User", "value": "bulkId:alice"},
                        {"type": "User", "value": "bulkId:bob"},
                    ],
                },
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "alice",
                "data": {"schemas": [USER], "userName": "Alice"},
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "bob",
                "data": {"schemas": [USER], "userName": "Bob"},
            },
        ),
    )
    assert status == 200
    assert doc["schemas"] == [BULK_RESP]
    ops = doc["Operations"]
    assert [o["bulkId"] for o in ops] == ["qwerty", "alice", "bob"]
    assert all(o["status"] == "201" for o in ops)
    group_id = ops[0]["location"].rsplit("/", 1)[1]
    alice_id = ops[1]["location"].rsplit("/", 1)[1]
    bob_id = ops[2]["location"].rsplit("/", 1)[1]
    _, group = await scim.call("GET", f"/Groups/{group_id}")
    assert {m["value"] for m in group["members"]} == {alice_id, bob_id}


async def test_bulk_circular_reference_reported(scim: Scim) -> None:
    status, doc = await scim.call(
        "POST",
        "/Bulk",
        json=bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g1",
                "data": {"displayName": "G1", "members": [{"value": "bulkId:g2"}]},
            },
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g2",
                "data": {"displayName": "G2", "members": [{"value": "bulkId:g1"}]},
            },
        ),
    )
    assert status == 200
    assert [o["status"] for o in doc["Operations"]] == ["409", "409"]
    assert "Circular" in doc["Operations"][0]["response"]["detail"]


async def test_bulk_put_patch_delete_and_errors(scim: Scim) -> None:
    user = await scim.create_user("bulk-target")
    rid = user["id"]
    status, doc = await scim.call(
        "POST",
        "/Bulk",
        json=bulk(
            {
                "method": "PUT",
                "path": f"/Users/{rid}",
                "data": {"schemas": [USER], "userName": "bulk-target", "nickName": "n"},
            },
            {
                "method": "PATCH",
                "path": f"/Users/{rid}",
                "data": {
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "add", "path": "title", "value": "T"}],
                },
            },
            {"method": "DELETE", "path": "/Users/missing"},
            {"method": "DELETE", "path": f"/Users/{rid}"},
        ),
    )
    assert status == 200
    assert [o["status"] for o in doc["Operations"]] == ["200", "200", "404", "204"]
    assert doc["Operations"][2]["response"]["status"] == "404"
    status, _ = await scim.call("GET", f"/Users/{rid}")
    assert status == 404


async def test_bulk_fail_on_errors_stops(scim: Scim) -> None:
    status, doc = await scim.call(
        "POST",
        "/Bulk",
        json=bulk(
            {"method": "DELETE", "path": "/Users/a"},
            {"method": "DELETE", "path": "/Users/b"},
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"userName": "never"}},
            fail_on_errors=2,
        ),
    )
    assert status == 200
    assert len(doc["Operations"]) == 2
    _, found = await scim.call("GET", '/Users?filter=userName eq "never"')
    assert found["totalResults"] == 0


async def test_bulk_unknown_bulk_id_is_invalid_value(scim: Scim) -> None:
    _, doc = await scim.call(
        "POST",
        "/Bulk",
        json=bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": {"displayName": "G", "members": [{"value": "bulkId:nobody"}]},
            }
        ),
    )
    assert doc["Operations"][0]["status"] == "400"
    assert doc["Operations"][0]["response"]["scimType"] == "invalidValue"


async def test_bulk_limits_are_413(make_scim: MakeScim) -> None:
    app = await make_scim(bulk=BulkSettings(max_operations=2, max_payload_size=400))
    ops = [{"method": "DELETE", "path": f"/Users/{i}"} for i in range(3)]
    status, doc = await app.call("POST", "/Bulk", json=bulk(*ops))
    assert status == 413
    big = {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"userName": "x" * 500}}
    status, doc = await app.call("POST", "/Bulk", json=bulk(big))
    assert status == 413
    assert doc["status"] == "413"


async def test_bulk_disabled_is_501(make_scim: MakeScim) -> None:
    app = await make_scim(bulk=BulkSettings(enabled=False))
    status, _ = await app.call("POST", "/Bulk", json=bulk())
    assert status == 501


async def test_me_bound_token(scim: Scim) -> None:
    user = await scim.create_user("me-user", displayName="Me")
    token = await scim.new_token(me_user_id=user["id"])
    status, doc = await scim.call("GET", "/Me", token=token)
    assert status == 200
    assert doc["id"] == user["id"]
    status, doc = await scim.call(
        "PATCH",
        "/Me",
        token=token,
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Me 2"}],
        },
    )
    assert status == 200
    assert doc["displayName"] == "Me 2"
    status, doc = await scim.call(
        "PUT", "/Me", token=token, json={"schemas": [USER], "userName": "me-user"}
    )
    assert status == 200
    assert "displayName" not in doc
    resp = await scim.request("DELETE", "/Me", token=token)
    assert resp.status == 204


async def test_me_unbound_token_is_501(scim: Scim) -> None:
    status, doc = await scim.call("GET", "/Me")
    assert status == 501
    assert doc["status"] == "501"
    status, _ = await scim.call("POST", "/Me", json={"userName": "x"})
    assert status == 405
