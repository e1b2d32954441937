"""The decision order and hybrid rules (JIT.md "Decision order"): links, SCIM correlation,
link-by-email, tombstones, deprovisioning, ownership, groups, concurrency, audit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from scimd.jit.config import GroupsConfig, JitCaller
from tests._http_helpers import AiohttpClient
from tests._jit_helpers import SECRET, JitApp, make_idp, make_jit_app, make_token
from tests._jit_helpers import jit_settings as settings_for

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def app_with(aiohttp_client: AiohttpClient, tmp_path: Path, **idp: Any) -> JitApp:
    s = settings_for(tmp_path, (make_idp(**idp),))
    return await make_jit_app(aiohttp_client, tmp_path, s)


@pytest.fixture
async def jit(aiohttp_client: AiohttpClient, tmp_path: Path) -> JitApp:
    return await app_with(aiohttp_client, tmp_path)


async def users(jit: JitApp, filt: str | None = None) -> list[dict[str, Any]]:
    path = "/Users" + (f"?filter={filt}" if filt else "")
    _s, body = await jit.scim.call("GET", path)
    return list(body.get("Resources", []))


async def test_second_login_is_unchanged_via_link(jit: JitApp) -> None:
    assert (await jit.login())[0] == 201
    status, body, _h = await jit.login()
    assert status == 200
    assert body["outcome"] == "unchanged"
    assert body["identity"]["matched_by"] == "link"
    assert len(await users(jit)) == 1


async def test_jit_user_is_found_by_idp_queries_and_scim_post_conflicts(jit: JitApp) -> None:
    _s, body, _h = await jit.login()
    uid = body["user"]["id"]
    by_name = await users(jit, 'userName eq "ann@example.com"')
    by_ext = await users(jit, 'externalId eq "sub-1"')
    assert [u["id"] for u in by_name] == [uid] == [u["id"] for u in by_ext]
    status, err = await jit.scim.call("POST", "/Users", json={"userName": "ann@example.com"})
    assert status == 409 and err["scimType"] == "uniqueness"


async def test_scim_pushed_user_is_linked_by_correlation(jit: JitApp) -> None:
    pushed = await jit.scim.create_user("ann.smith", externalId="sub-1")
    status, body, _h = await jit.login()
    assert status == 200
    assert body["outcome"] == "linked"
    assert body["identity"]["matched_by"] == "scim_correlation"
    assert body["user"]["id"] == pushed["id"]
    assert len(await users(jit)) == 1
    # Next time by link.
    _s, body, _h = await jit.login()
    assert body["identity"]["matched_by"] == "link"


async def test_email_match_is_not_linked_by_default(jit: JitApp) -> None:
    await jit.scim.create_user("ann@example.com", externalId="someone-else")
    status, body, _h = await jit.login()
    assert (status, body["reason"]) == (409, "link_requires_confirmation")
    assert len(await users(jit)) == 1


async def test_link_by_verified_email_in_allowed_domain(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(
        aiohttp_client,
        tmp_path,
        link_by_email="verified_domain_only",
        allowed_email_domains=("example.com",),
    )
    pushed = await jit.scim.create_user(
        "ann.s", emails=[{"value": "ANN@example.com", "primary": True}]
    )
    status, body, _h = await jit.login()
    assert status == 200, body
    assert (body["outcome"], body["identity"]["matched_by"]) == ("linked", "email")
    assert body["user"]["id"] == pushed["id"]


async def test_unverified_email_is_never_linked(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(aiohttp_client, tmp_path, link_by_email="verified_email")
    await jit.scim.create_user("ann@example.com", externalId="x")
    # email_verified missing is not true
    status, body, _h = await jit.login(make_token(drop=("email_verified",)))
    assert status in (403, 409)
    assert body["reason"] in ("email_unverified", "link_requires_confirmation")
    assert len(await users(jit)) == 1


async def test_email_linked_user_of_another_subject_needs_confirmation(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(aiohttp_client, tmp_path, link_by_email="verified_email")
    assert (await jit.login(make_token(sub="first")))[0] == 201
    status, body, _h = await jit.login(make_token(sub="second"))
    assert (status, body["reason"]) == (409, "link_requires_confirmation")


async def test_scim_deactivated_user_is_denied(jit: JitApp) -> None:
    _s, body, _h = await jit.login()
    uid = body["user"]["id"]
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert (await jit.scim.call("PATCH", f"/Users/{uid}", json=patch))[0] == 200
    status, body, _h = await jit.login()
    assert (status, body["reason"], body["outcome"]) == (403, "user_deprovisioned", "denied")
    assert [e.type for e in await jit.events("jit.login.denied")] == ["jit.login.denied"]


async def test_reactivate_when_configured(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    jit = await app_with(aiohttp_client, tmp_path, on_deprovisioned="reactivate")
    await jit.scim.create_user("ann", externalId="sub-1", active=False)
    status, body, _h = await jit.login()
    assert status == 200
    assert body["outcome"] == "reactivated" and body["user"]["active"] is True


async def test_scim_deleted_linked_user_is_denied(jit: JitApp) -> None:
    _s, body, _h = await jit.login()
    assert (await jit.scim.call("DELETE", f"/Users/{body['user']['id']}"))[0] == 204
    status, body, _h = await jit.login()
    assert (status, body["reason"]) == (403, "user_deleted")
    assert await users(jit) == []


async def test_scim_deleted_unlinked_user_is_denied_by_tombstone(jit: JitApp) -> None:
    pushed = await jit.scim.create_user("ann.smith", externalId="sub-1")
    assert (await jit.scim.call("DELETE", f"/Users/{pushed['id']}"))[0] == 204
    status, body, _h = await jit.login()
    assert (status, body["reason"]) == (403, "user_deleted")
    assert await users(jit) == []


async def test_recreate_after_delete_when_configured(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(aiohttp_client, tmp_path, on_deleted="recreate")
    _s, first, _h = await jit.login()
    await jit.scim.call("DELETE", f"/Users/{first['user']['id']}")
    status, body, _h = await jit.login()
    assert status == 201 and body["user"]["id"] != first["user"]["id"]
    status, body, _h = await jit.login()
    assert (status, body["identity"]["matched_by"]) == (200, "link")


@pytest.mark.parametrize("kw", [{"scim_authoritative": True}, {"create_users": False}])
async def test_no_creation_when_scim_is_authoritative(
    aiohttp_client: AiohttpClient, tmp_path: Path, kw: dict[str, Any]
) -> None:
    jit = await app_with(aiohttp_client, tmp_path, **kw)
    status, body, _h = await jit.login()
    assert (status, body["reason"]) == (403, "not_provisioned")
    # ... but a SCIM-pushed user still logs in.
    await jit.scim.create_user("ann", externalId="sub-1")
    assert (await jit.login())[0] == 200


async def test_domain_allow_list(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    jit = await app_with(aiohttp_client, tmp_path, allowed_email_domains=("corp.example",))
    status, body, _h = await jit.login()
    assert (status, body["reason"]) == (403, "domain_not_allowed")


async def test_unverified_email_is_not_created(jit: JitApp) -> None:
    status, body, _h = await jit.login(make_token(email_verified="true"))  # a string is not true
    assert (status, body["reason"]) == (403, "email_unverified")


async def test_ownership(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    jit = await app_with(
        aiohttp_client,
        tmp_path,
        attributes={
            "userName": "email",
            "name.givenName": "given_name",
            "name.familyName": "family_name",
            "displayName": "name",
            f"{ENTERPRISE}:department": "dept",
        },
        ownership={"default": "scim", "name.familyName": "jit", "displayName": "jit_if_empty"},
    )
    await jit.scim.create_user(
        "ann", externalId="sub-1", name={"givenName": "Anne", "familyName": "Old"}
    )
    token = make_token(given_name="Ann", family_name="New", name="Ann New", dept="R&D")
    status, body, _h = await jit.login(token)
    assert (status, body["outcome"]) == (200, "linked")
    user = body["user"]
    assert user["name"]["givenName"] == "Anne"  # scim-owned: never
    assert user["name"]["familyName"] == "New"  # jit: always
    assert user["displayName"] == "Ann New"  # jit_if_empty: was empty
    assert ENTERPRISE not in user  # scim-owned by default
    assert sorted(body["changes"]["attributes"]) == ["displayName", "name.familyName"]
    status, body, _h = await jit.login(make_token(name="Other Name", family_name="New"))
    assert body["user"]["displayName"] == "Ann New"  # not empty any more
    assert body["outcome"] == "unchanged"


async def test_groups_sync_within_managed(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    groups = GroupsConfig(claim="groups", mode="sync", managed=("eng", "admins"))
    jit = await app_with(aiohttp_client, tmp_path, groups=groups)
    eng = await jit.scim.create_group("eng")
    admins = await jit.scim.create_group("admins")
    other = await jit.scim.create_group("other")
    _s, body, _h = await jit.login(make_token(groups=["eng", "other"]))
    uid = body["user"]["id"]
    assert body["changes"]["groups_added"] == ["eng"]
    await jit.scim.call(
        "PATCH",
        f"/Groups/{other['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
        },
    )
    _s, body, _h = await jit.login(make_token(groups=["admins"]))
    assert body["changes"]["groups_added"] == ["admins"]
    assert body["changes"]["groups_removed"] == ["eng"]
    member_of = {g["value"] for g in body["user"]["groups"]}
    assert member_of == {admins["id"], other["id"]}  # unmanaged "other" untouched
    assert eng["id"] not in member_of
    assert [e.type for e in await jit.events("jit.group")] == ["jit.group.changed"] * 2


async def test_groups_append_never_removes(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    groups = GroupsConfig(mode="append", managed=("eng", "admins"))
    jit = await app_with(aiohttp_client, tmp_path, groups=groups)
    await jit.scim.create_group("eng")
    await jit.scim.create_group("admins")
    await jit.login(make_token(groups=["eng"]))
    _s, body, _h = await jit.login(make_token(groups=["admins"]))
    assert body["changes"]["groups_removed"] == []
    assert len(body["user"]["groups"]) == 2


async def test_required_group(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    jit = await app_with(aiohttp_client, tmp_path, groups=GroupsConfig(required=("staff",)))
    status, body, _h = await jit.login(make_token(groups=["guests"]))
    assert (status, body["reason"]) == (403, "group_required")
    assert (await jit.login(make_token(groups=["staff"])))[0] == 201


async def test_two_simultaneous_first_logins_make_one_user(jit: JitApp) -> None:
    results = await asyncio.gather(*(jit.login(make_token()) for _ in range(6)))
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] * 5 + [201]
    assert len({r[1]["user"]["id"] for r in results}) == 1
    assert len(await users(jit)) == 1


async def test_audit_events_share_the_scim_log(jit: JitApp) -> None:
    token = make_token()
    _s, body, _h = await jit.login(token)
    all_events = await jit.scim.state.list_events()
    types = [e.type for e in all_events]
    assert "scim.user.created" in types
    assert "jit.login.accepted" in types and "jit.user.created" in types
    accepted = next(e for e in all_events if e.type == "jit.login.accepted")
    assert accepted.id == body["event_id"]
    assert accepted.actor == "jit:gw"
    assert accepted.resource_id == body["user"]["id"]
    assert accepted.data["subject"] == "sub-1"
    assert accepted.data["email"] == "ann@example.com"
    assert accepted.data["token"].startswith("jti:")
    assert all(token not in str(e.data) for e in all_events)
    created = next(e for e in all_events if e.type == "scim.user.created")
    assert created.actor == "jit:gw"


async def test_trusted_claims_mode(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    idp = make_idp(id="gwidp", mode="trusted_claims", jwks=None, issuer="", audiences=())
    callers = (JitCaller(id="gw", auth="hmac", secret=SECRET, allowed_idps=("gwidp",)),)
    jit = await make_jit_app(
        aiohttp_client, tmp_path, settings_for(tmp_path, (idp,), callers=callers)
    )
    claims = {"sub": "s-9", "email": "Bo@Example.com", "email_verified": True}
    status, body, _h = await jit.post({"idp": "gwidp", "protocol": "claims", "claims": claims})
    assert status == 201, body
    assert body["user"]["userName"] == "bo@example.com"
    status, body, _h = await jit.post({"idp": "gwidp", "protocol": "oidc", "id_token": "x"})
    assert (status, body["reason"]) == (400, "bad_request")
