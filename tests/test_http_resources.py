"""Resource CRUD over HTTP (RFC 7644 3.3, 3.4.1, 3.5.1, 3.5.2, 3.6, 3.14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scimd.settings import ScimSettings
from tests._http_helpers import BASE, MakeScim, Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


async def test_create_returns_201_location_etag_and_meta(scim: Scim) -> None:
    resp = await scim.request(
        "POST",
        "/Users",
        json={"schemas": [USER], "userName": "bjensen", "name": {"givenName": "Barbara"}},
    )
    assert resp.status == 201
    doc = await resp.json(content_type=None)
    rid = doc["id"]
    host = f"http://{scim.client.host}:{scim.client.port}"
    assert resp.headers["Location"] == f"{host}{BASE}/Users/{rid}"
    assert doc["meta"]["location"] == resp.headers["Location"]
    assert doc["meta"]["resourceType"] == "User"
    assert resp.headers["ETag"] == doc["meta"]["version"]
    assert doc["name"]["givenName"] == "Barbara"


async def test_public_url_is_used_for_location(make_scim: MakeScim) -> None:
    from scimd.settings import ServerSettings

    app = await make_scim(server=ServerSettings(public_url="https://scim.example.com"))
    user = await app.create_user("loc")
    assert user["meta"]["location"] == f"https://scim.example.com{BASE}/Users/{user['id']}"


async def test_get_by_id_and_404(scim: Scim) -> None:
    user = await scim.create_user("getme")
    status, doc = await scim.call("GET", f"/Users/{user['id']}")
    assert status == 200
    assert doc["userName"] == "getme"
    status, doc = await scim.call("GET", "/Users/does-not-exist")
    assert status == 404


async def test_duplicate_user_name_is_409_uniqueness(scim: Scim) -> None:
    await scim.create_user("dup@example.com")
    status, doc = await scim.call(
        "POST", "/Users", json={"schemas": [USER], "userName": "DUP@example.com"}
    )
    assert status == 409
    assert doc["scimType"] == "uniqueness"


async def test_put_is_a_true_replace(scim: Scim) -> None:
    user = await scim.create_user(
        "putme", displayName="Put Me", title="Engineer", externalId="ext-1"
    )
    status, doc = await scim.call(
        "PUT",
        f"/Users/{user['id']}",
        json={"schemas": [USER], "id": user["id"], "userName": "putme", "nickName": "pm"},
    )
    assert status == 200
    assert doc["nickName"] == "pm"
    assert "title" not in doc
    assert "displayName" not in doc
    assert doc["id"] == user["id"]
    assert doc["meta"]["created"] == user["meta"]["created"]
    assert doc["meta"]["version"] != user["meta"]["version"]
    status, again = await scim.call("GET", f"/Users/{user['id']}")
    assert "title" not in again


async def test_patch_returns_200_with_resource(scim: Scim) -> None:
    user = await scim.create_user("patchme", active=True)
    status, doc = await scim.call(
        "PATCH",
        f"/Users/{user['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Replace", "path": "active", "value": False}],
        },
    )
    assert status == 200
    assert doc["active"] is False


async def test_patch_204_when_configured(make_scim: MakeScim) -> None:
    app = await make_scim(scim=ScimSettings(patch_success_status=204))
    user = await app.create_user("p204")
    resp = await app.request(
        "PATCH",
        f"/Users/{user['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "nickName", "value": "x"}],
        },
    )
    assert resp.status == 204
    assert await resp.read() == b""


async def test_delete_twice_204_then_404(scim: Scim) -> None:
    user = await scim.create_user("deleteme")
    resp = await scim.request("DELETE", f"/Users/{user['id']}")
    assert resp.status == 204
    resp = await scim.request("DELETE", f"/Users/{user['id']}")
    assert resp.status == 404
    status, _ = await scim.call("GET", f"/Users/{user['id']}")
    assert status == 404


async def test_deactivated_user_stays_readable(scim: Scim) -> None:
    user = await scim.create_user("deact", active=True)
    await scim.call(
        "PATCH",
        f"/Users/{user['id']}",
        json=patch({"op": "replace", "value": {"active": False}}),
    )
    status, doc = await scim.call("GET", f"/Users/{user['id']}")
    assert status == 200
    assert doc["active"] is False


async def test_if_none_match_304_and_if_match_412(scim: Scim) -> None:
    user = await scim.create_user("etag")
    version = user["meta"]["version"]
    resp = await scim.request("GET", f"/Users/{user['id']}", headers={"If-None-Match": version})
    assert resp.status == 304
    assert resp.headers["ETag"] == version
    resp = await scim.request(
        "GET", f"/Users/{user['id']}", headers={"If-None-Match": 'W/"999999"'}
    )
    assert resp.status == 200
    body = {"schemas": [USER], "userName": "etag", "nickName": "n"}
    resp = await scim.request(
        "PUT", f"/Users/{user['id']}", json=body, headers={"If-Match": 'W/"999999"'}
    )
    assert resp.status == 412
    resp = await scim.request(
        "PATCH",
        f"/Users/{user['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "nickName", "value": "y"}],
        },
        headers={"If-Match": 'W/"999999"'},
    )
    assert resp.status == 412
    resp = await scim.request("DELETE", f"/Users/{user['id']}", headers={"If-Match": 'W/"999999"'})
    assert resp.status == 412
    resp = await scim.request(
        "PUT", f"/Users/{user['id']}", json=body, headers={"If-Match": version}
    )
    assert resp.status == 200
    new_version = resp.headers["ETag"]
    assert new_version != version
    resp = await scim.request("DELETE", f"/Users/{user['id']}", headers={"If-Match": new_version})
    assert resp.status == 204


async def test_projection_on_get_post_put_patch(scim: Scim) -> None:
    resp = await scim.request(
        "POST",
        "/Users?attributes=userName",
        json={"schemas": [USER], "userName": "proj", "displayName": "Proj", "nickName": "p"},
    )
    assert resp.status == 201
    doc = await resp.json(content_type=None)
    assert doc["userName"] == "proj"
    assert "displayName" not in doc
    assert doc["id"]
    rid = doc["id"]
    status, doc = await scim.call("GET", f"/Users/{rid}?excludedAttributes=displayName")
    assert "displayName" not in doc
    assert doc["nickName"] == "p"
    status, doc = await scim.call(
        "PUT",
        f"/Users/{rid}?attributes=nickName",
        json={"schemas": [USER], "userName": "proj", "nickName": "q"},
    )
    assert status == 200
    assert doc["nickName"] == "q"
    assert "userName" not in doc
    status, doc = await scim.call(
        "PATCH",
        f"/Users/{rid}?attributes=displayName",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "displayName", "value": "D"}],
        },
    )
    assert status == 200
    assert doc["displayName"] == "D"
    assert "nickName" not in doc


async def test_group_excluded_members(scim: Scim) -> None:
    u1 = await scim.create_user("m1")
    u2 = await scim.create_user("m2")
    group = await scim.create_group("Engineering", [u1["id"], u2["id"]])
    assert {m["value"] for m in group["members"]} == {u1["id"], u2["id"]}
    status, doc = await scim.call("GET", f"/Groups/{group['id']}?excludedAttributes=members")
    assert status == 200
    assert "members" not in doc
    assert doc["displayName"] == "Engineering"
    resp = await scim.client.get(
        f'{BASE}/Groups?excludedAttributes=members&filter=displayName eq "Engineering"',
        headers=scim.headers(),
    )
    doc = await resp.json(content_type=None)
    assert doc["totalResults"] == 1
    assert "members" not in doc["Resources"][0]


async def test_group_create_with_empty_members(scim: Scim) -> None:
    group = await scim.create_group("Empty")
    status, doc = await scim.call("GET", f"/Groups/{group['id']}")
    assert status == 200
    assert not doc.get("members")


async def test_password_never_returned_and_stored_as_argon2id(scim: Scim, tmp_path: Path) -> None:
    resp = await scim.request(
        "POST", "/Users", json={"schemas": [USER], "userName": "pw", "password": "t1meMa$heen"}
    )
    doc = await resp.json(content_type=None)
    assert resp.status == 201
    assert "password" not in doc
    rid = doc["id"]
    _status, doc = await scim.call("GET", f"/Users/{rid}")
    assert "password" not in doc
    _, doc = await scim.call("GET", f"/Users/{rid}?attributes=password")
    assert "password" not in doc
    _, doc = await scim.call("GET", '/Users?filter=userName eq "pw"')
    assert "password" not in doc["Resources"][0]
    # What the backend holds is an argon2id hash, never the plaintext.
    ctx = scim.runtime.service.op_context(
        scim.runtime.registry.resource_types["user"],
        tenant="default",
        principal="test",
        request_id="t",
    )
    stored = await scim.runtime.backend.get(ctx, scim.runtime.registry.resource_types["user"], rid)
    assert stored["password"].startswith("$argon2id$")
    assert scim.runtime.service.verify_password(stored["password"], "t1meMa$heen")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("scimd.db*"))  # noqa: ASYNC240
    assert b"t1meMa$heen" not in raw
    # PATCH and PUT hash too; a PUT without password keeps it.
    await scim.call(
        "PATCH",
        f"/Users/{rid}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "password", "value": "n3w"}],
        },
    )
    stored = await scim.runtime.backend.get(ctx, scim.runtime.registry.resource_types["user"], rid)
    assert scim.runtime.service.verify_password(stored["password"], "n3w")
    await scim.call("PUT", f"/Users/{rid}", json={"schemas": [USER], "userName": "pw"})
    stored = await scim.runtime.backend.get(ctx, scim.runtime.registry.resource_types["user"], rid)
    assert scim.runtime.service.verify_password(stored["password"], "n3w")


async def test_okta_create_user_body(scim: Scim) -> None:
    # Okta's create body: password in plaintext, readOnly groups: [].
    body: dict[str, Any] = {
        "schemas": [USER],
        "userName": "okta.user@example.com",
        "name": {"givenName": "Okta", "familyName": "User"},
        "emails": [{"primary": True, "value": "okta.user@example.com", "type": "work"}],
        "displayName": "Okta User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }
    resp = await scim.request("POST", "/Users", data=json.dumps(body), content_type=None)
    assert resp.status == 201
    doc = await resp.json(content_type=None)
    assert "password" not in doc
    assert doc["emails"][0]["value"] == "okta.user@example.com"


async def test_group_membership_patch_and_put(scim: Scim) -> None:
    users = [await scim.create_user(f"member{i}") for i in range(3)]
    ids = [u["id"] for u in users]
    group = await scim.create_group("Members", ids[:1])
    gid = group["id"]
    # Entra: add with "$ref": null; Okta: remove with a value filter.
    status, doc = await scim.call(
        "PATCH",
        f"/Groups/{gid}",
        json=patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": ids[1]}]}),
    )
    assert status == 200, doc
    assert {m["value"] for m in doc["members"]} == set(ids[:2])
    status, doc = await scim.call(
        "PATCH",
        f"/Groups/{gid}?excludedAttributes=members",
        json=patch({"op": "remove", "path": f'members[value eq "{ids[0]}"]'}),
    )
    assert status == 200
    assert "members" not in doc
    _, doc = await scim.call("GET", f"/Groups/{gid}")
    assert [m["value"] for m in doc["members"]] == [ids[1]]
    # PUT is a true replace of the membership too.
    status, doc = await scim.call(
        "PUT",
        f"/Groups/{gid}",
        json={"schemas": [GROUP], "displayName": "Members", "members": [{"value": ids[2]}]},
    )
    assert status == 200
    assert [m["value"] for m in doc["members"]] == [ids[2]]
    status, doc = await scim.call(
        "PUT", f"/Groups/{gid}", json={"schemas": [GROUP], "displayName": "Renamed"}
    )
    assert status == 200
    assert not doc.get("members")
    # The user's groups attribute follows membership (readOnly, computed).
    _, user = await scim.call("GET", f"/Users/{ids[2]}")
    assert not user.get("groups")


async def test_put_with_mismatched_id_is_400(scim: Scim) -> None:
    user = await scim.create_user("idcheck")
    status, doc = await scim.call(
        "PUT", f"/Users/{user['id']}", json={"schemas": [USER], "id": "other", "userName": "x"}
    )
    assert status == 400
    assert doc["status"] == "400"
