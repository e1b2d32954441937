"""Passwords through the RFC 3062 Password Modify extended operation on OpenLDAP: slapd
advertises it (supportedExtension 1.3.6.1.4.1.4203.1.11.1), the bridge sends the SCIM
password with it and slapd stores it hashed by its own policy (``olcPasswordHash``,
default ``{SSHA}``): the user binds with the password, ``userPassword`` never holds it in
clear. ``password_modify = "off"`` keeps the plain ``userPassword`` replace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]
import pytest
from scimd_ldap.backend import PASSWORD_MODIFY, LdapBackend
from scimd_ldap.testing import ROOT_DN, ROOT_PASSWORD, SlapdServer

from scimd.backend import BackendEnv, OpContext
from tests._http_helpers import Scim
from tests.test_ldap_http_setup import CORE, PATCH_OP, binds, user_dn


def stored_password(server: SlapdServer, dn: str) -> list[bytes]:
    conn = ldap.initialize(server.url)
    conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    try:
        ((_, attrs),) = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["userPassword"])
    finally:
        conn.unbind_s()
    return list(attrs.get("userPassword", []))


def assert_hashed(values: list[bytes], *secrets: str) -> None:
    assert len(values) == 1
    assert values[0].startswith(b"{SSHA}"), values[0][:8]
    assert all(s.encode() not in values[0] for s in secrets)


async def test_server_advertises_password_modify(scim: Scim) -> None:
    backend = scim.runtime.backend
    assert isinstance(backend, LdapBackend)
    _, extensions = await backend._features()
    assert PASSWORD_MODIFY in extensions
    assert await backend._password_exop()


async def test_post_and_patch_password_is_hashed_by_the_server(
    scim: Scim, slapd_server: SlapdServer, fresh_base: str
) -> None:
    dn = user_dn(fresh_base, "hashme")
    status, doc = await scim.call(
        "POST", "/Users", json={"schemas": [CORE], "userName": "hashme", "password": "Fïrst-1"}
    )
    assert status == 201, doc
    assert binds(slapd_server, dn, "Fïrst-1")
    assert_hashed(stored_password(slapd_server, dn), "Fïrst-1")
    status, doc = await scim.call(
        "PATCH",
        f"/Users/{doc['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "value": {"password": "S3cond", "title": "T"}}],
        },
    )
    assert status == 200, doc
    assert doc["title"] == "T"
    assert binds(slapd_server, dn, "S3cond")
    assert not binds(slapd_server, dn, "Fïrst-1")
    assert_hashed(stored_password(slapd_server, dn), "S3cond")


async def test_put_with_password_and_rename(
    scim: Scim, slapd_server: SlapdServer, fresh_base: str
) -> None:
    user = await scim.create_user("before")
    status, doc = await scim.call(
        "PUT",
        f"/Users/{user['id']}",
        json={"schemas": [CORE], "userName": "after", "password": "Th1rd"},
    )
    assert status == 200, doc
    assert binds(slapd_server, user_dn(fresh_base, "after"), "Th1rd")
    assert_hashed(stored_password(slapd_server, user_dn(fresh_base, "after")), "Th1rd")


async def test_refused_password_leaves_no_account(
    scim: Scim, slapd_server: SlapdServer, fresh_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password the directory refuses (e.g. its password policy) answers 400 and the
    account it was meant for is not left behind without it."""
    backend = scim.runtime.backend
    assert isinstance(backend, LdapBackend)

    async def refuse(dn: str, password: str) -> None:
        from scimd_ldap.errors import to_scim

        raise to_scim(ldap.CONSTRAINT_VIOLATION({"desc": "Constraint violation"}))

    monkeypatch.setattr(backend, "_set_password", refuse)
    status, doc = await scim.call(
        "POST", "/Users", json={"schemas": [CORE], "userName": "weak", "password": "x"}
    )
    assert status == 400, doc
    status, doc = await scim.call("GET", '/Users?filter=userName eq "weak"')
    assert status == 200 and doc["totalResults"] == 0


async def test_password_modify_off_replaces_user_password(
    scim: Scim, ldap_options: dict[str, Any], slapd_server: SlapdServer, fresh_base: str
) -> None:
    registry = scim.runtime.registry
    rtype = registry.resource_type("User")
    assert rtype is not None
    off = LdapBackend(
        BackendEnv(
            options={**ldap_options, "password_modify": "off"},
            registry=registry,
            base_dir=Path("."),
        )
    )
    try:
        assert not await off._password_exop()
        ctx = OpContext("default", "test", "req-1")
        body = {"schemas": [CORE], "userName": "plainpw", "password": "As-sent-1"}
        await off.create(ctx, rtype, body)
        dn = user_dn(fresh_base, "plainpw")
        assert binds(slapd_server, dn, "As-sent-1")
        assert stored_password(slapd_server, dn) == [b"As-sent-1"]  # no server-side hashing
    finally:
        await off.aclose()
