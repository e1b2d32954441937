"""A JIT email change on an existing user (JIT.md "Email normalisation": a JIT email change
marks the email unverified and re-checks uniqueness).

The changed email claim is written through the service layer only when ``emails`` is
JIT-owned; a clash with another user's email is ``409 email_conflict`` with nothing
changed; the new address is unverified for link-by-email purposes (another IdP subject is
not linked through it); the audit names the attribute only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scimd.jit.config import JitCaller, JitIdp
from scimd.jit.http import JIT_SERVICE
from scimd.state.base import EmailMarkStore, JitStateStore
from tests._http_helpers import AiohttpClient
from tests._jit_helpers import SECRET, JitApp, make_idp, make_jit_app, make_token
from tests._jit_helpers import jit_settings as settings_for


async def app_with(
    aiohttp_client: AiohttpClient, tmp_path: Path, *extra: JitIdp, **idp: Any
) -> JitApp:
    idps = (make_idp(**idp), *extra)
    callers = (
        JitCaller(id="gw", auth="hmac", secret=SECRET, allowed_idps=tuple(i.id for i in idps)),
    )
    return await make_jit_app(
        aiohttp_client, tmp_path, settings_for(tmp_path, idps, callers=callers)
    )


JIT_EMAILS = {"default": "scim", "emails": "jit"}


async def get_user(jit: JitApp, uid: str) -> dict[str, Any]:
    status, body = await jit.scim.call("GET", f"/Users/{uid}")
    assert status == 200
    return dict(body)


def primary(user: dict[str, Any]) -> str:
    return str(next(e["value"] for e in user["emails"] if e.get("primary")))


async def test_jit_owned_email_change_updates_the_user(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(aiohttp_client, tmp_path, ownership=JIT_EMAILS)
    status, body, _h = await jit.login(make_token(email="Ann@Example.com"))
    assert status == 201
    uid = body["user"]["id"]
    status, body, _h = await jit.login(make_token(email="Ann.New@Example.COM"))
    assert status == 200, body
    assert body["outcome"] == "updated"
    assert body["changes"]["attributes"] == ["emails"]
    user = await get_user(jit, uid)
    assert primary(user) == "Ann.New@Example.COM"  # kept as received, for display
    assert user["userName"] == "ann@example.com"  # userName stays SCIM-owned
    updated = [e for e in await jit.events() if e.type == "jit.user.updated"]
    assert len(updated) == 1
    assert updated[0].changed_attributes == ("emails",)
    # The audit carries attribute names, never the old address.
    assert "ann@example.com" not in repr(updated[0].changed_attributes)
    # The same login again: nothing to change.
    status, body, _h = await jit.login(make_token(email="ann.new@example.com"))
    assert (status, body["outcome"]) == (200, "unchanged")


async def test_scim_owned_email_is_not_changed(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(aiohttp_client, tmp_path)  # ownership default: scim
    _s, body, _h = await jit.login(make_token(email="ann@example.com"))
    uid = body["user"]["id"]
    status, body, _h = await jit.login(make_token(email="ann.new@example.com"))
    assert (status, body["outcome"]) == (200, "unchanged")
    assert primary(await get_user(jit, uid)) == "ann@example.com"


async def test_update_on_login_never_ignores_a_jit_owned_email(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(aiohttp_client, tmp_path, ownership=JIT_EMAILS, update_on_login="never")
    _s, body, _h = await jit.login(make_token(email="ann@example.com"))
    uid = body["user"]["id"]
    status, body, _h = await jit.login(make_token(email="ann.new@example.com"))
    assert (status, body["outcome"]) == (200, "unchanged")
    assert primary(await get_user(jit, uid)) == "ann@example.com"


async def test_email_clash_is_409_and_changes_nothing(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(
        aiohttp_client,
        tmp_path,
        ownership={"default": "scim", "emails": "jit", "name.givenName": "jit"},
    )
    other = await jit.scim.create_user(
        "bob", emails=[{"value": "Bob@Example.com", "primary": True}]
    )
    _s, body, _h = await jit.login(make_token(email="ann@example.com", given_name="Ann"))
    uid = body["user"]["id"]
    before = await get_user(jit, uid)
    # Another spelling of Bob's address, plus a change of a JIT-owned name.
    status, body, headers = await jit.login(make_token(email="BOB@example.com", given_name="Annie"))
    assert status == 409
    assert headers["Content-Type"].startswith("application/problem+json")
    assert (body["reason"], body["outcome"]) == ("email_conflict", "conflict")
    after = await get_user(jit, uid)
    assert after["meta"]["version"] == before["meta"]["version"]
    assert after["name"]["givenName"] == "Ann" and primary(after) == "ann@example.com"
    assert primary(await get_user(jit, other["id"])) == "Bob@Example.com"
    denied = [e for e in await jit.events() if e.type == "jit.login.denied"]
    assert [e.data["reason"] for e in denied] == ["email_conflict"]


async def test_secondary_emails_are_kept(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    jit = await app_with(aiohttp_client, tmp_path, ownership=JIT_EMAILS)
    pushed = await jit.scim.create_user(
        "ann",
        externalId="sub-1",
        emails=[
            {"value": "ann.home@example.org", "type": "home"},
            {"value": "ann@example.com", "type": "work", "primary": True},
            {"value": "ann.new@example.com", "type": "other"},
        ],
    )
    status, body, _h = await jit.login(make_token(email="ann.new@example.com"))
    assert (status, body["outcome"]) == (200, "linked")
    emails = (await get_user(jit, pushed["id"]))["emails"]
    assert [(e["value"], e.get("type"), e.get("primary", False)) for e in emails] == [
        ("ann.home@example.org", "home", False),
        ("ann.new@example.com", "work", True),
    ]


async def test_jit_if_empty_fills_a_missing_email_only(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    jit = await app_with(
        aiohttp_client, tmp_path, ownership={"default": "scim", "emails": "jit_if_empty"}
    )
    pushed = await jit.scim.create_user("ann", externalId="sub-1")
    assert "emails" not in pushed
    status, body, _h = await jit.login(make_token(email="ann@example.com"))
    assert status == 200 and body["changes"]["attributes"] == ["emails"]
    assert primary(await get_user(jit, pushed["id"])) == "ann@example.com"
    status, body, _h = await jit.login(make_token(email="ann.new@example.com"))
    assert (status, body["outcome"]) == (200, "unchanged")
    assert primary(await get_user(jit, pushed["id"])) == "ann@example.com"


async def test_changed_email_is_unverified_for_link_by_email(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    linker = make_idp(id="other", link_by_email="verified_email", scim_correlation=None)
    jit = await app_with(aiohttp_client, tmp_path, linker, ownership=JIT_EMAILS)
    _s, body, _h = await jit.login(make_token(email="ann@example.com"))
    uid = body["user"]["id"]
    assert (await jit.login(make_token(sub="sub-2", email="carl@example.com")))[0] == 201
    # An email set at creation from a verified claim links another IdP's subject.
    status, body, _h = await jit.login(
        make_token(sub="other-1", email="carl@example.com"), body={"idp": "other"}
    )
    assert (status, body["identity"]["matched_by"]) == (200, "email")
    # After a JIT change, the new address does not link another subject.
    assert (await jit.login(make_token(email="ann.new@example.com")))[0] == 200
    status, body, _h = await jit.login(
        make_token(sub="other-2", email="ann.new@example.com"), body={"idp": "other"}
    )
    assert (status, body["reason"]) == (409, "link_requires_confirmation")
    # The user's own links keep working.
    status, body, _h = await jit.login(make_token(email="ann.new@example.com"))
    assert (status, body["user"]["id"]) == (200, uid)


async def test_unverified_mark_is_kept_by_the_state_store_and_cleared_by_delete(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    linker = make_idp(id="other", link_by_email="verified_email", scim_correlation=None)
    jit = await app_with(aiohttp_client, tmp_path, linker, ownership=JIT_EMAILS)
    _s, body, _h = await jit.login(make_token(email="ann@example.com"))
    uid = body["user"]["id"]
    state = jit.scim.state
    assert isinstance(state, EmailMarkStore)
    # The address a login created the user with came from a verified claim: no mark.
    assert not await state.email_unverified("default", uid, "ann@example.com")
    assert (await jit.login(make_token(email="Ann.New@Example.com")))[0] == 200
    assert await state.email_unverified("default", uid, "ann.new@example.com")
    # Stored as a mark of its own, not among the idempotency records.
    assert isinstance(state, JitStateStore)
    assert await state.get_idempotency("jit:email-unverified", f"default:{uid}") is None
    # SCIM deletes the user: its marks go with it.
    status, _body = await jit.scim.call("DELETE", f"/Users/{uid}")
    assert status == 204
    assert not await state.email_unverified("default", uid, "ann.new@example.com")


class _LegacyState:
    """A JIT state store without ``EmailMarkStore`` (the marks then live among the
    idempotency records)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("mark_email_unverified", "email_unverified", "clear_email_marks"):
            raise AttributeError(name)
        return getattr(self._inner, name)


async def test_store_without_email_marks_still_refuses_the_email_link(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    linker = make_idp(id="other", link_by_email="verified_email", scim_correlation=None)
    jit = await app_with(aiohttp_client, tmp_path, linker, ownership=JIT_EMAILS)
    runtime = jit.scim.runtime
    service = jit.scim.app[JIT_SERVICE]
    legacy = _LegacyState(runtime.state)
    assert not isinstance(legacy, EmailMarkStore)
    assert isinstance(legacy, JitStateStore)
    service.state = legacy
    assert (await jit.login(make_token(email="ann@example.com")))[0] == 201
    assert (await jit.login(make_token(email="ann.new@example.com")))[0] == 200
    status, body, _h = await jit.login(
        make_token(sub="other-2", email="ann.new@example.com"), body={"idp": "other"}
    )
    assert (status, body["reason"]) == (409, "link_requires_confirmation")
