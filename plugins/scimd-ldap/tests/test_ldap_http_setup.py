"""The rerun core HTTP modules (``tests/test_ldap_*.py``) really run on the LDAP bridge, and
the SCIM ``password`` reaches the directory as given (the service's
``wants_plaintext_password`` path): a bind with it works, it is never returned, never in
the shadow, the state store or the logs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]
import pytest
from scimd_ldap.backend import LdapBackend
from scimd_ldap.testing import ROOT_DN, ROOT_PASSWORD, SlapdServer

from tests._http_helpers import Scim

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def binds(server: SlapdServer, dn: str, password: str) -> bool:
    conn = ldap.initialize(server.ldaps_url)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, server.ca_file)
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    try:
        conn.simple_bind_s(dn, password)
        return True
    except ldap.INVALID_CREDENTIALS:
        return False
    finally:
        conn.unbind_s()


def files_holding(directory: Path, text: str) -> list[Path]:
    return [f for f in directory.rglob("*") if f.is_file() and text.encode() in f.read_bytes()]


def user_dn(base: str, name: str) -> str:
    return f"uid={name},ou=people,ou=default,{base}"


async def test_scim_fixture_is_on_ldap_over_starttls(
    scim: Scim, slapd_server: SlapdServer, fresh_base: str
) -> None:
    backend = scim.runtime.backend
    assert isinstance(backend, LdapBackend)
    assert backend.pool.start_tls and backend.pool.encrypted
    user = await scim.create_user("ldap.user")
    conn = ldap.initialize(slapd_server.url)
    conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    try:
        found = conn.search_s(fresh_base, ldap.SCOPE_SUBTREE, "(uid=ldap.user)", ["entryUUID"])
    finally:
        conn.unbind_s()
    assert [(dn, a["entryUUID"][0].decode()) for dn, a in found] == [
        (user_dn(fresh_base, "ldap.user"), user["id"])
    ]


async def test_post_password_binds_and_is_kept_nowhere_else(
    scim: Scim,
    slapd_server: SlapdServer,
    fresh_base: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "t1meMa$heen-Ünïcode"  # noqa: S105
    caplog.set_level(logging.DEBUG)
    status, doc = await scim.call(
        "POST", "/Users", json={"schemas": [CORE], "userName": "pw", "password": secret}
    )
    assert status == 201, doc
    assert "password" not in doc
    _, got = await scim.call("GET", f"/Users/{doc['id']}?attributes=password")
    assert "password" not in got
    assert binds(slapd_server, user_dn(fresh_base, "pw"), secret)
    assert not binds(slapd_server, user_dn(fresh_base, "pw"), secret + "x")
    assert secret not in caplog.text
    assert files_holding(tmp_path, secret) == []  # the state store (tokens, events) ...
    conn = ldap.initialize(slapd_server.url)
    conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    try:
        ((_, attrs),) = conn.search_s(
            user_dn(fresh_base, "pw"), ldap.SCOPE_BASE, "(objectClass=*)", ["scimdAttr"]
        )
    finally:
        conn.unbind_s()
    assert not [v for v in attrs["scimdAttr"] if b"password" in v.lower()]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "password", "value": "pw-1"},
        {"op": "Add", "path": "PASSWORD", "value": "pw-1"},
        {"op": "replace", "path": f"{CORE}:password", "value": "pw-1"},
        {"op": "replace", "value": {"Password": "pw-1", "displayName": "D"}},
        {"op": "replace", "value": {f"{CORE}:password": "pw-1"}},
    ],
)
async def test_patch_password_sets_a_password_that_binds(
    scim: Scim, slapd_server: SlapdServer, fresh_base: str, operation: dict[str, Any]
) -> None:
    user = await scim.create_user("pw-user")
    status, doc = await scim.call(
        "PATCH", f"/Users/{user['id']}", json={"schemas": [PATCH_OP], "Operations": [operation]}
    )
    assert status == 200, doc
    assert "password" not in doc
    assert binds(slapd_server, user_dn(fresh_base, "pw-user"), "pw-1")
    events = await scim.state.list_events(type_prefix="scim.user.patched")
    assert "password" in events[-1].changed_attributes


async def test_put_without_password_keeps_it(
    scim: Scim, slapd_server: SlapdServer, fresh_base: str
) -> None:
    status, doc = await scim.call(
        "POST", "/Users", json={"schemas": [CORE], "userName": "keep", "password": "k-1"}
    )
    assert status == 201
    status, _ = await scim.call(
        "PUT", f"/Users/{doc['id']}", json={"schemas": [CORE], "userName": "keep", "title": "T"}
    )
    assert status == 200
    assert binds(slapd_server, user_dn(fresh_base, "keep"), "k-1")
