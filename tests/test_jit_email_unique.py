"""Email as the primary identifier (issue 7 item 4; JIT.md "Email normalisation"): the
normalised primary email of a User is unique per tenant across SCIM- and JIT-created users
(``scim.unique_email``, on by default), so one person never becomes two accounts whichever
door they came through first. Over HTTP: SCIM POST/PUT/PATCH/Bulk and ``/jit/v1/logins``."""

from __future__ import annotations

import asyncio
import dataclasses
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from scimd.settings import ScimSettings
from tests._http_helpers import AiohttpClient, MakeScim, Scim
from tests._jit_helpers import JitApp, make_idp, make_jit_app, make_token
from tests._jit_helpers import jit_settings as settings_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def jit_app(
    aiohttp_client: AiohttpClient, tmp_path: Path, *, unique: bool = True, **idp: Any
) -> JitApp:
    settings = settings_for(tmp_path, (make_idp(**idp),))
    settings = dataclasses.replace(settings, scim=ScimSettings(unique_email=unique))
    return await make_jit_app(aiohttp_client, tmp_path, settings)


def user_body(user_name: str, email: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "userName": user_name,
        "emails": [{"value": email, "type": "work", "primary": True}],
        **extra,
    }


async def all_users(scim: Scim) -> list[dict[str, Any]]:
    status, body = await scim.call("GET", "/Users")
    assert status == 200
    return list(body.get("Resources", []))


def assert_email_conflict(status: int, doc: Any, email: str) -> None:
    assert status == 409, doc
    assert doc["scimType"] == "uniqueness"
    assert email in doc["detail"]


# ---------------------------------------------------------------------- SCIM first, then JIT


async def test_scim_user_then_jit_login_with_other_case_is_refused_not_duplicated(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    # Default link_by_email = "never": the login may not take over the SCIM user, and may
    # not create a second account with the same email either.
    jit = await jit_app(aiohttp_client, tmp_path)
    status, pushed = await jit.scim.call(
        "POST", "/Users", json=user_body("ann.smith", "Ann@Example.com", externalId="hr-1")
    )
    assert status == 201
    status, body, _h = await jit.login(make_token(email="ANN@example.COM"))
    assert (status, body["reason"]) == (409, "link_requires_confirmation")
    assert [u["id"] for u in await all_users(jit.scim)] == [pushed["id"]]


@pytest.mark.parametrize(
    ("scim_email", "token_email"),
    [
        ("Ann@Example.com", "ann@EXAMPLE.com"),
        # Unicode domain stored, IDNA (punycode) domain in the token.
        ("ann@Bücher.example", "ANN@xn--bcher-kva.example"),
        # NFD stored (a client that decomposes), NFC in the token.
        (unicodedata.normalize("NFD", "José@example.com"), "josé@example.com"),
    ],
)
async def test_scim_user_then_jit_login_links_by_email_when_allowed(
    aiohttp_client: AiohttpClient, tmp_path: Path, scim_email: str, token_email: str
) -> None:
    jit = await jit_app(aiohttp_client, tmp_path, link_by_email="verified_email")
    status, pushed = await jit.scim.call(
        "POST", "/Users", json=user_body("person", scim_email, externalId="hr-1")
    )
    assert status == 201, pushed
    status, body, _h = await jit.login(make_token(email=token_email))
    assert status == 200, body
    assert (body["outcome"], body["identity"]["matched_by"]) == ("linked", "email")
    assert body["user"]["id"] == pushed["id"]
    assert len(await all_users(jit.scim)) == 1


# ---------------------------------------------------------------------- JIT first, then SCIM


async def test_jit_user_then_scim_post_of_same_email_is_409(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await jit_app(aiohttp_client, tmp_path)
    status, body, _h = await jit.login(make_token(email="Ann@Example.com"))
    assert status == 201
    # Another userName, the same person's email in another spelling.
    for spelling in ("ann@example.com", "ANN@EXAMPLE.COM", " Ann@example.com "):
        status, doc = await jit.scim.call(
            "POST", "/Users", json=user_body("a.smith", spelling, externalId="hr-7")
        )
        assert_email_conflict(status, doc, spelling.strip())
    assert [u["id"] for u in await all_users(jit.scim)] == [body["user"]["id"]]


# ---------------------------------------------------------------------- SCIM writes


async def test_post_put_patch_bulk_cannot_duplicate_a_primary_email(scim: Scim) -> None:
    ann = await scim.create_user("ann", emails=[{"value": "ann@example.com", "primary": True}])
    bob = await scim.create_user("bob", emails=[{"value": "bob@example.com", "primary": True}])

    status, doc = await scim.call("POST", "/Users", json=user_body("ann2", "ANN@example.com"))
    assert_email_conflict(status, doc, "ANN@example.com")

    status, doc = await scim.call(
        "PUT", f"/Users/{bob['id']}", json=user_body("bob", "Ann@Example.com")
    )
    assert_email_conflict(status, doc, "Ann@Example.com")

    for ops in (
        [
            {
                "op": "replace",
                "path": "emails",
                "value": [{"value": "ann@EXAMPLE.com", "primary": True}],
            }
        ],
        [{"op": "replace", "path": "emails[primary eq true].value", "value": "ann@example.com"}],
        [{"op": "replace", "value": {"emails": [{"value": "ann@example.com"}]}}],
    ):
        status, doc = await scim.call(
            "PATCH", f"/Users/{bob['id']}", json={"schemas": [PATCH], "Operations": ops}
        )
        assert status == 409 and doc["scimType"] == "uniqueness", (ops, doc)
    status, doc = await scim.call("GET", f"/Users/{bob['id']}")
    assert doc["emails"][0]["value"] == "bob@example.com"

    status, doc = await scim.call(
        "POST",
        "/Bulk",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "c",
                    "data": user_body("carol", "carol@example.com"),
                },
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "d",
                    "data": user_body("carol-again", "Carol@Example.com"),
                },
            ],
        },
    )
    assert status == 200
    assert [o["status"] for o in doc["Operations"]] == ["201", "409"]
    names = sorted(u["userName"] for u in await all_users(scim))
    assert names == ["ann", "bob", "carol"]
    assert ann["id"] != bob["id"]


async def test_own_email_changes_and_secondary_emails_are_allowed(scim: Scim) -> None:
    ann = await scim.create_user("ann", emails=[{"value": "ann@example.com", "primary": True}])
    bob = await scim.create_user("bob", emails=[{"value": "bob@example.com", "primary": True}])
    # Re-writing one's own email in another case is not a conflict with oneself.
    status, doc = await scim.call(
        "PUT", f"/Users/{ann['id']}", json=user_body("ann", "ANN@example.com")
    )
    assert status == 200, doc
    # Only the primary email is unique: another user's address as a secondary is allowed.
    patch = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "add", "path": "emails", "value": [{"value": "ann@example.com", "type": "home"}]}
        ],
    }
    status, doc = await scim.call("PATCH", f"/Users/{bob['id']}", json=patch)
    assert status == 200, doc
    # An email freed by a change can be taken.
    status, doc = await scim.call(
        "PATCH",
        f"/Users/{ann['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "replace",
                    "path": "emails",
                    "value": [{"value": "a@example.com", "primary": True}],
                }
            ],
        },
    )
    assert status == 200, doc
    status, doc = await scim.call("POST", "/Users", json=user_body("ann2", "ann@example.com"))
    assert status == 201, doc


async def test_simultaneous_creations_with_one_email_make_one_user(scim: Scim) -> None:
    async def post(i: int) -> int:
        status, _doc = await scim.call(
            "POST",
            "/Users",
            json=user_body(f"u{i}", f"Same.Person@{'EXAMPLE' if i % 2 else 'example'}.com"),
        )
        return status

    statuses = await asyncio.gather(*(post(i) for i in range(8)))
    assert sorted(statuses) == [201] + [409] * 7
    assert len(await all_users(scim)) == 1


async def test_uniqueness_is_per_tenant(scim: Scim) -> None:
    await scim.create_user("ann", emails=[{"value": "ann@example.com", "primary": True}])
    other = await scim.new_token(tenant="tenant-b")
    status, doc = await scim.call(
        "POST", "/Users", token=other, json=user_body("ann", "ann@example.com")
    )
    assert status == 201, doc


async def test_setting_off_allows_duplicates(make_scim: MakeScim) -> None:
    scim = await make_scim(scim=ScimSettings(unique_email=False))
    for name in ("ann", "ann2"):
        status, doc = await scim.call("POST", "/Users", json=user_body(name, "Ann@example.com"))
        assert status == 201, doc
    assert len(await all_users(scim)) == 2


async def test_setting_off_lets_jit_create_a_second_account(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    # What the setting protects against: with it off, a SCIM user and a JIT login of the
    # same email (no correlation, no email linking) become two accounts.
    jit = await jit_app(aiohttp_client, tmp_path, unique=False)
    await jit.scim.call("POST", "/Users", json=user_body("ann.smith", "ann@example.com"))
    status, body, _h = await jit.login(make_token(email="Ann@Example.com"))
    assert status == 201, body
    assert len(await all_users(jit.scim)) == 2


async def test_concurrent_email_patches_without_if_match_all_succeed(scim: Scim) -> None:
    """Entra/Okta send no If-Match: 20 concurrent PATCHes adding emails to one user must
    all succeed (no 412) and none may be lost."""
    user = await scim.create_user(
        "many@example.com", emails=[{"value": "many@example.com", "primary": True}]
    )

    async def add(i: int) -> int:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "add", "path": "emails", "value": [{"value": f"alt{i}@example.com"}]}
            ],
        }
        status, _ = await scim.call("PATCH", f"/Users/{user['id']}", json=body)
        return status

    statuses = await asyncio.gather(*(add(i) for i in range(20)))
    assert statuses == [200] * 20
    _, doc = await scim.call("GET", f"/Users/{user['id']}")
    assert len(doc["emails"]) == 21
