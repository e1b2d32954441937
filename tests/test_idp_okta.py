"""Okta's provisioning traffic replayed over real HTTP, in the order Okta sends it.

Bodies are those of Okta's SCIM 2.0 reference ("SCIM 2.0 protocol reference",
developer.okta.com) and its SCIM 2.0 SPEC test suite (the "Runscope" / "Okta SCIM 2.0 SPEC
Test" collection: ``GET /Users?count=1&startIndex=1`` with ``User-Agent: OKTA SCIM
Integration``, create, get, filter found / not found, random-id 404, group lifecycle).
Each test quotes the INTEROP.md bullet it covers above it; responses are checked in detail
and stored state is read back with a follow-up GET.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from scimd import quirks
from tests._http_helpers import BASE, Scim
from tests._patch_helpers import counts_quirk

FIXTURES = Path(__file__).parent / "fixtures"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
# The headers of every request in Okta's SPEC test collection.
OKTA_HEADERS = {
    "Accept": "application/scim+json",
    "Accept-Charset": "utf-8",
    "User-Agent": "OKTA SCIM Integration",
}


def fixture(name: str, **subs: str) -> Any:
    """A body from tests/fixtures with ``${key}`` placeholders filled in."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    for key, value in subs.items():
        text = text.replace("${" + key + "}", value)
    return json.loads(text)


async def okta(scim: Scim, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    headers = {**OKTA_HEADERS, **kw.pop("headers", {})}
    return await scim.call(method, path, headers=headers, **kw)


def assert_scim_error(doc: Any, status: str, scim_type: str | None = None) -> None:
    assert doc["schemas"] == [ERROR]
    assert doc["status"] == status  # a string (RFC 7644 3.12), as Okta's test asserts
    assert isinstance(doc["detail"], str) and doc["detail"]
    if scim_type is not None:
        assert doc["scimType"] == scim_type


async def create_okta_user(scim: Scim) -> dict[str, Any]:
    status, doc = await okta(scim, "POST", "/Users", json=fixture("okta-create-user.json"))
    assert status == 201, doc
    assert isinstance(doc, dict)
    return doc


# INTEROP "Transport": Okta's list call (`GET /Users?count=2&startIndex=1`) must answer well
# under 600 ms; request bodies may arrive with no Content-Type (Okta's test suite);
# `itemsPerPage`, `startIndex`, `totalResults` are JSON numbers.
async def test_okta_users_list_without_content_type(scim: Scim) -> None:
    for n in range(3):
        await scim.create_user(f"okta-list-{n}@example.com")
    # Okta's test suite sends GET with the headers above and no Content-Type, no body.
    resp = await scim.request(
        "GET", "/Users?count=2&startIndex=1", headers=OKTA_HEADERS, content_type=None
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/scim+json; charset=utf-8"
    doc = await resp.json(content_type=None)
    assert doc["schemas"] == [LIST]
    assert doc["totalResults"] == 3
    assert doc["itemsPerPage"] == 2
    assert doc["startIndex"] == 1
    assert all(type(doc[k]) is int for k in ("totalResults", "itemsPerPage", "startIndex"))
    assert len(doc["Resources"]) == 2
    # ordering is stable across pages: page 2 holds the remaining user, no overlap
    _, page2 = await okta(scim, "GET", "/Users?count=2&startIndex=3")
    names = [r["userName"] for r in doc["Resources"] + page2["Resources"]]
    assert sorted(names) == [f"okta-list-{n}@example.com" for n in range(3)]


# INTEROP "Resources": Okta sends `password` in plaintext on create: hash it (argon2id), never
# return it. Okta sends readOnly `groups: []` on create: ignore it.
# INTEROP "Transport": request bodies with **no Content-Type** (Okta's test suite).
async def test_okta_create_user_then_get_by_id(scim: Scim) -> None:
    with counts_quirk("no_content_type"):
        resp = await scim.request(
            "POST",
            "/Users",
            json=fixture("okta-create-user.json"),
            headers=OKTA_HEADERS,
            content_type=None,
        )
    assert resp.status == 201
    created = await resp.json(content_type=None)
    assert "password" not in created
    assert "groups" not in created or created["groups"] == []
    assert created["userName"] == "test.user@okta.local"
    assert created["name"] == {"givenName": "Test", "familyName": "User"}
    assert created["emails"] == [{"primary": True, "value": "test.user@okta.local", "type": "work"}]
    assert created["active"] is True
    assert created["externalId"] == "00ujl29u0le5T6Aj10h7"
    assert resp.headers["Location"].endswith(f"{BASE}/Users/{created['id']}")

    status, got = await okta(scim, "GET", f"/Users/{created['id']}")
    assert status == 200
    assert got == created
    assert "password" not in got


# INTEROP "Resources": `userName eq` is case-insensitive (caseExact false).
# INTEROP "Transport": Filters arrive URL-encoded with `+` for spaces and `%40` for `@`.
async def test_okta_filter_user_name_found_and_not_found(scim: Scim) -> None:
    created = await create_okta_user(scim)
    # Okta: GET /Users?filter=userName eq "test.user@okta.local"&startIndex=1&count=100
    status, doc = await okta(
        scim,
        "GET",
        "/Users?filter=userName+eq+%22test.user%40okta.local%22&startIndex=1&count=100",
    )
    assert status == 200
    assert doc["totalResults"] == 1
    assert doc["Resources"][0]["id"] == created["id"]
    status, doc = await okta(scim, "GET", '/Users?filter=userName eq "TEST.USER@OKTA.LOCAL"')
    assert (status, doc["totalResults"]) == (200, 1)
    # the SPEC test's "random user name is not found": 200, empty list, never 404
    random_name = f"{uuid.uuid4().hex}@example.com"
    status, doc = await okta(scim, "GET", f'/Users?filter=userName eq "{random_name}"')
    assert status == 200
    assert doc["schemas"] == [LIST]
    assert doc["totalResults"] == 0
    assert doc.get("Resources", []) == []


# INTEROP "Resources": Okta custom apps send full-object PUT for every change: PUT is a true
# replace.
async def test_okta_full_object_put_replaces(scim: Scim) -> None:
    created = await create_okta_user(scim)
    rid = created["id"]
    status, doc = await okta(
        scim, "PUT", f"/Users/{rid}", json=fixture("okta-put-user.json", id=rid)
    )
    assert status == 200, doc
    assert doc["name"] == {"givenName": "Another", "familyName": "User"}
    assert doc["displayName"] == "Another User"
    assert doc["meta"]["created"] == created["meta"]["created"]
    assert doc["meta"]["version"] != created["meta"]["version"]
    # a second full PUT that omits locale and displayName removes them (true replace)
    body = fixture("okta-put-user.json", id=rid)
    del body["locale"], body["displayName"]
    status, doc = await okta(scim, "PUT", f"/Users/{rid}", json=body)
    assert status == 200
    _, got = await okta(scim, "GET", f"/Users/{rid}")
    assert "locale" not in got and "displayName" not in got
    assert got["name"]["givenName"] == "Another"


# INTEROP "Resources": Deactivation (`active=false`) keeps the user readable.
async def test_okta_deactivate_with_patch_active_false(scim: Scim) -> None:
    created = await create_okta_user(scim)
    rid = created["id"]
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }
    status, doc = await okta(scim, "PATCH", f"/Users/{rid}", json=body)
    assert status == 200
    assert doc["active"] is False
    assert doc["userName"] == "test.user@okta.local"
    status, got = await okta(scim, "GET", f"/Users/{rid}")
    assert status == 200
    assert got["active"] is False
    status, listed = await okta(scim, "GET", '/Users?filter=userName eq "test.user@okta.local"')
    assert listed["totalResults"] == 1
    assert listed["Resources"][0]["active"] is False


# INTEROP "Resources": Deactivation (`active=false`) keeps the user readable; Okta custom apps
# send full-object PUT for every change.
async def test_okta_deactivate_with_put_active_false(scim: Scim) -> None:
    created = await create_okta_user(scim)
    rid = created["id"]
    body = fixture("okta-put-user.json", id=rid)
    body["active"] = False
    status, doc = await okta(scim, "PUT", f"/Users/{rid}", json=body)
    assert status == 200
    assert doc["active"] is False
    status, got = await okta(scim, "GET", f"/Users/{rid}")
    assert (status, got["active"]) == (200, False)
    # and back: reactivation is a PUT with active true
    body["active"] = True
    status, doc = await okta(scim, "PUT", f"/Users/{rid}", json=body)
    assert (status, doc["active"]) == (200, True)


# INTEROP "Transport": Errors: RFC 7644 3.12 body; `status` is a **string** ("404"); `detail`
# always present.
async def test_okta_get_random_unknown_id_is_scim_404(scim: Scim) -> None:
    for rid in ("010101001010101", str(uuid.uuid4())):
        status, doc = await okta(scim, "GET", f"/Users/{rid}")
        assert status == 404
        assert_scim_error(doc, "404")
        status, doc = await okta(scim, "GET", f"/Groups/{rid}")
        assert status == 404
        assert_scim_error(doc, "404")


# INTEROP "Resources": `members: []` on group create is fine.
async def test_okta_group_create_with_empty_members(scim: Scim) -> None:
    status, doc = await okta(scim, "POST", "/Groups", json=fixture("okta-create-group.json"))
    assert status == 201, doc
    assert doc["displayName"] == "Test SCIMv2"
    assert doc.get("members", []) == []
    status, got = await okta(scim, "GET", f"/Groups/{doc['id']}")
    assert status == 200
    assert got["displayName"] == "Test SCIMv2"
    assert got.get("members", []) == []
    # Okta checks a group by name before pushing it
    status, listed = await okta(scim, "GET", '/Groups?filter=displayName eq "Test SCIMv2"')
    assert (status, listed["totalResults"]) == (200, 1)


# INTEROP "PATCH": No-path replace that includes the read-only `id` equal to the resource id
# (Okta group rename).
async def test_okta_group_rename_patch(scim: Scim) -> None:
    _, group = await okta(scim, "POST", "/Groups", json=fixture("okta-create-group.json"))
    gid = group["id"]
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 b"}}],
    }
    with counts_quirk("patch_readonly_id_equal"):
        status, doc = await okta(scim, "PATCH", f"/Groups/{gid}", json=body)
    assert status == 200, doc
    assert doc["id"] == gid
    assert doc["displayName"] == "Test SCIMv2 b"
    _, got = await okta(scim, "GET", f"/Groups/{gid}")
    assert got["displayName"] == "Test SCIMv2 b"
    # an id that is NOT the resource's own is still a mutability error
    body["Operations"][0]["value"]["id"] = str(uuid.uuid4())
    status, doc = await okta(scim, "PATCH", f"/Groups/{gid}", json=body)
    assert status == 400
    assert_scim_error(doc, "400", "mutability")
    _, got = await okta(scim, "GET", f"/Groups/{gid}")
    assert got["displayName"] == "Test SCIMv2 b"


# INTEROP "PATCH": Member add with `display`; Member removal as
# `{"op":"remove","path":"members[value eq \"<id>\"]"}`;
# `{"op":"replace","path":"members","value":[...]}` sets the membership.
async def test_okta_group_member_add_and_remove(scim: Scim) -> None:
    user = await create_okta_user(scim)
    other = await scim.create_user("other.user@okta.local")
    _, group = await okta(scim, "POST", "/Groups", json=fixture("okta-create-group.json"))
    gid, uid = group["id"], user["id"]

    add = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {
                "op": "add",
                "path": "members",
                "value": [{"value": uid, "display": "test.user@okta.local"}],
            }
        ],
    }
    status, doc = await okta(scim, "PATCH", f"/Groups/{gid}", json=add)
    assert status == 200, doc
    assert [m["value"] for m in doc["members"]] == [uid]
    # Okta retries: adding the same member again leaves one membership
    status, doc = await okta(scim, "PATCH", f"/Groups/{gid}", json=add)
    assert [m["value"] for m in doc["members"]] == [uid]

    # Okta "Push Groups" sends the whole membership as a replace
    replace = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {
                "op": "replace",
                "path": "members",
                "value": [
                    {"value": uid, "display": "test.user@okta.local"},
                    {"value": other["id"], "display": "other.user@okta.local"},
                ],
            }
        ],
    }
    status, doc = await okta(scim, "PATCH", f"/Groups/{gid}", json=replace)
    assert status == 200
    assert sorted(m["value"] for m in doc["members"]) == sorted([uid, other["id"]])

    remove = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}],
    }
    status, doc = await okta(scim, "PATCH", f"/Groups/{gid}", json=remove)
    assert status == 200
    assert [m["value"] for m in doc.get("members", [])] == [other["id"]]
    _, got = await okta(scim, "GET", f"/Groups/{gid}")
    assert [m["value"] for m in got.get("members", [])] == [other["id"]]
    # the user itself is untouched by group changes
    _, still = await okta(scim, "GET", f"/Users/{uid}")
    assert still["userName"] == "test.user@okta.local"


# INTEROP "Resources": a duplicate userName → **409 uniqueness** (Okta's create of an
# existing user, differing only in case).
async def test_okta_duplicate_create_is_409(scim: Scim) -> None:
    await create_okta_user(scim)
    body = fixture("okta-create-user.json")
    body["userName"] = "Test.User@OKTA.local"
    status, doc = await okta(scim, "POST", "/Users", json=body)
    assert status == 409
    assert_scim_error(doc, "409", "uniqueness")


# INTEROP "Resources": Okta sends readOnly `groups: []` on create: ignore it (a non-empty
# `groups` too: it is readOnly and counted).
async def test_okta_nonempty_groups_on_create_is_ignored(scim: Scim) -> None:
    body = fixture("okta-create-user.json")
    body["groups"] = [{"value": "00g1emaKYZTWRYYRRTSK", "display": "Okta group"}]
    before = quirks.snapshot().get("readonly_attribute_ignored", 0)
    status, doc = await okta(scim, "POST", "/Users", json=body)
    assert status == 201, doc
    assert quirks.snapshot().get("readonly_attribute_ignored", 0) > before
    _, got = await okta(scim, "GET", f"/Users/{doc['id']}")
    assert "groups" not in got or all(g["value"] != "00g1emaKYZTWRYYRRTSK" for g in got["groups"])
