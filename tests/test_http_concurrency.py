"""Lost updates are impossible (issue 4, ETags; RFC 7644 3.14).

Concurrent requests go through the real HTTP pipeline into the embedded store: member adds
from many PATCH requests must all survive, and of two writes carrying the same ``If-Match``
exactly one may succeed while the other gets 412 preconditionFailed.
"""

from __future__ import annotations

import asyncio

from tests._http_helpers import Scim

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def test_50_concurrent_member_adds_all_end_up_in_the_group(scim: Scim) -> None:
    users = [await scim.create_user(f"member{i:02d}@example.com") for i in range(50)]
    group = await scim.create_group("Concurrent adds")

    async def add(uid: str) -> int:
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
        }
        status, _ = await scim.call("PATCH", f"/Groups/{group['id']}", json=body)
        return status

    statuses = await asyncio.gather(*(add(u["id"]) for u in users))
    assert statuses == [200] * 50

    status, doc = await scim.call("GET", f"/Groups/{group['id']}")
    assert status == 200
    assert sorted(m["value"] for m in doc["members"]) == sorted(u["id"] for u in users)
    # 50 successful changes, each bumping the version once.
    assert doc["meta"]["version"] == 'W/"51"'
    # The inverse relation agrees: every user lists the group.
    for u in users[:5]:
        _, user = await scim.call("GET", f"/Users/{u['id']}")
        assert [g["value"] for g in user["groups"]] == [group["id"]]


async def test_two_puts_with_the_same_if_match_exactly_one_succeeds(scim: Scim) -> None:
    user = await scim.create_user("race@example.com", displayName="Before")
    etag = user["meta"]["version"]

    async def put(name: str) -> int:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "race@example.com",
            "displayName": name,
        }
        resp = await scim.request(
            "PUT", f"/Users/{user['id']}", json=body, headers={"If-Match": etag}
        )
        doc = await resp.json(content_type=None)
        if resp.status == 412:
            assert (doc["status"], doc["scimType"]) == ("412", "preconditionFailed")
        return resp.status

    statuses = sorted(await asyncio.gather(put("First"), put("Second")))
    assert statuses == [200, 412]

    _, doc = await scim.call("GET", f"/Users/{user['id']}")
    assert doc["displayName"] in {"First", "Second"}
    assert doc["meta"]["version"] == 'W/"2"'


async def test_two_patches_with_the_same_if_match_exactly_one_succeeds(scim: Scim) -> None:
    user = await scim.create_user("patchrace@example.com")
    etag = user["meta"]["version"]

    async def patch(title: str) -> int:
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "title", "value": title}],
        }
        resp = await scim.request(
            "PATCH", f"/Users/{user['id']}", json=body, headers={"If-Match": etag}
        )
        await resp.read()
        return resp.status

    assert sorted(await asyncio.gather(patch("A"), patch("B"))) == [200, 412]


async def test_concurrent_creates_of_one_username_yield_one_user(scim: Scim) -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Twin@Example.com",
    }

    async def create(name: str) -> tuple[int, str | None]:
        status, doc = await scim.call("POST", "/Users", json={**body, "userName": name})
        return status, doc.get("scimType")

    results = await asyncio.gather(
        *(create(n) for n in ("Twin@Example.com", "twin@example.com", "TWIN@EXAMPLE.COM"))
    )
    assert sorted(s for s, _ in results) == [201, 409, 409]
    assert all(t == "uniqueness" for s, t in results if s == 409)
    _, listing = await scim.call("GET", '/Users?filter=userName eq "twin@example.com"')
    assert listing["totalResults"] == 1
