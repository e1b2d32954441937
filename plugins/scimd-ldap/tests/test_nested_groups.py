"""Nested groups on slapd: a group as a member of a group (``members`` with
``type: "Group"``, held as the group's DN in ``member``), and a user's ``groups`` with the
groups it belongs to through other groups as ``type: "indirect"`` (RFC 7643 4.1.2),
cycles included."""

from __future__ import annotations

from typing import Any

from tests._http_helpers import Scim

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def group_of(scim: Scim, name: str, *members: dict[str, Any]) -> dict[str, Any]:
    body = {
        "schemas": [GROUP],
        "displayName": name,
        "members": [{"value": m["id"], "type": _kind(m)} for m in members],
    }
    status, doc = await scim.call("POST", "/Groups", json=body)
    assert status == 201, doc
    return doc  # type: ignore[no-any-return]


def _kind(resource: dict[str, Any]) -> str:
    return "Group" if "displayName" in resource and "userName" not in resource else "User"


def memberships(user: dict[str, Any]) -> dict[str, str]:
    return {g["value"]: g["type"] for g in user.get("groups", [])}


async def test_group_member_of_group_and_indirect_groups(scim: Scim) -> None:
    user = await scim.create_user("nested.user")
    team = await group_of(scim, "team", user)
    dept = await group_of(scim, "dept", team)
    org = await group_of(scim, "org", dept)
    assert [(m["value"], m["type"]) for m in dept["members"]] == [(team["id"], "Group")]
    _, got = await scim.call("GET", f"/Users/{user['id']}")
    assert memberships(got) == {
        team["id"]: "direct",
        dept["id"]: "indirect",
        org["id"]: "indirect",
    }
    # The list paths agree (unfiltered: sorted by the directory; filtered: in memory).
    for query in ("", '?filter=userName eq "nested.user"'):
        status, doc = await scim.call("GET", f"/Users{query}")
        assert status == 200, doc
        (listed,) = [r for r in doc["Resources"] if r["id"] == user["id"]]
        assert memberships(listed) == memberships(got)
    status, doc = await scim.call("GET", f'/Groups?filter=members.value eq "{team["id"]}"')
    assert status == 200, doc
    assert [r["id"] for r in doc["Resources"]] == [dept["id"]]


async def test_cycle_ends_and_each_group_is_listed_once(scim: Scim) -> None:
    user = await scim.create_user("cycle.user")
    a = await group_of(scim, "a", user)
    b = await group_of(scim, "b", a)
    c = await group_of(scim, "c", b)
    status, doc = await scim.call(
        "PATCH",
        f"/Groups/{a['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": c["id"]}]}],
        },
    )
    assert status in (200, 204), doc
    _, got = await scim.call("GET", f"/Users/{user['id']}")
    assert sorted(g["value"] for g in got["groups"]) == sorted([a["id"], b["id"], c["id"]])
    assert memberships(got)[a["id"]] == "direct"
    status, doc = await scim.call("GET", "/Users")
    assert status == 200, doc
    (listed,) = [r for r in doc["Resources"] if r["id"] == user["id"]]
    assert memberships(listed) == memberships(got)


async def test_deleting_an_inner_group_cuts_the_chain(scim: Scim) -> None:
    user = await scim.create_user("cut.user")
    inner = await group_of(scim, "inner", user)
    outer = await group_of(scim, "outer", inner, user)
    status, _ = await scim.call("DELETE", f"/Groups/{inner['id']}")
    assert status == 204
    _, got = await scim.call("GET", f"/Groups/{outer['id']}")
    assert [m["value"] for m in got["members"]] == [user["id"]]
    _, got = await scim.call("GET", f"/Users/{user['id']}")
    assert memberships(got) == {outer["id"]: "direct"}


async def test_direct_wins_over_indirect(scim: Scim) -> None:
    """A user both directly in a group and through a nested one sees it once, direct."""
    user = await scim.create_user("both.user")
    inner = await group_of(scim, "inner2", user)
    outer = await group_of(scim, "outer2", inner, user)
    _, got = await scim.call("GET", f"/Users/{user['id']}")
    assert memberships(got) == {inner["id"]: "direct", outer["id"]: "direct"}
    assert len(got["groups"]) == 2
