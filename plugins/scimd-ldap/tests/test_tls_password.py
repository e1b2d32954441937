"""TLS (LDAPS and StartTLS with certificate verification) and passwords through
``userPassword`` against the throwaway slapd (its certificate is signed by a CA made at
session start; ``other_ca_file`` is a CA that did not sign it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]
import pytest
from scimd_ldap.adapter import LdapPool
from scimd_ldap.backend import LdapBackend
from scimd_ldap.errors import to_scim
from scimd_ldap.testing import ROOT_DN, ROOT_PASSWORD, SlapdServer

from scimd import errors
from scimd.backend import BackendEnv, OpContext
from scimd.patch import parse_patch_request
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.testing import build_contract_registry

CTX = OpContext("default", "test", "req-1")
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> SchemaRegistry:
    return build_contract_registry(Path(tmp_path_factory.mktemp("schema")))


def users(registry: SchemaRegistry) -> ResourceType:
    found = registry.resource_type("User")
    assert found is not None
    return found


def backend(registry: SchemaRegistry, base: str, **options: Any) -> LdapBackend:
    opts = {"bind_dn": ROOT_DN, "bind_password": ROOT_PASSWORD, "base_dn": base, **options}
    return LdapBackend(BackendEnv(options=opts, registry=registry, base_dir=Path(".")))


def can_bind(url: str, dn: str, password: str, ca_file: str = "") -> bool:
    conn = ldap.initialize(url)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5.0)
    if ca_file:
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, ca_file)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    try:
        conn.simple_bind_s(dn, password)
        return True
    except ldap.INVALID_CREDENTIALS:
        return False
    finally:
        conn.unbind_s()


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
async def test_verified_tls_connection(slapd_server: SlapdServer, mode: str) -> None:
    url = slapd_server.ldaps_url if mode == "ldaps" else slapd_server.url
    pool = LdapPool(
        url,
        ROOT_DN,
        ROOT_PASSWORD,
        size=1,
        timeout=5.0,
        start_tls=mode == "starttls",
        tls_ca_file=slapd_server.ca_file,
    )
    try:
        assert pool.encrypted
        assert await pool.run(lambda c: c.whoami_s()) == f"dn:{ROOT_DN}"
        (conn,) = pool._idle
        assert conn.get_option(ldap.OPT_X_TLS_REQUIRE_CERT) == ldap.OPT_X_TLS_DEMAND
        assert conn.get_option(ldap.OPT_REFERRALS) == 0
    finally:
        await pool.aclose()


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
async def test_wrong_ca_is_a_clear_503(
    slapd_server: SlapdServer, registry: SchemaRegistry, fresh_base: str, mode: str
) -> None:
    b = backend(
        registry,
        fresh_base,
        url=slapd_server.ldaps_url if mode == "ldaps" else slapd_server.url,
        start_tls=mode == "starttls",
        tls_ca_file=slapd_server.other_ca_file,
        timeout=5.0,
    )
    try:
        with pytest.raises(errors.ServiceUnavailable) as info:
            await b.start()
        assert info.value.status == 503
        assert "certificate" in info.value.detail
        assert "tls_ca_file" in info.value.detail
    finally:
        await b.aclose()


def test_tls_failure_text_only_for_tls_errors() -> None:
    plain = to_scim(ldap.SERVER_DOWN({"desc": "Can't contact LDAP server"}))
    assert isinstance(plain, errors.ServiceUnavailable)
    assert "certificate" not in plain.detail
    tls = to_scim(ldap.CONNECT_ERROR({"desc": "TLS handshake failed", "info": "TLS: x"}))
    assert isinstance(tls, errors.ServiceUnavailable)
    assert "certificate" in tls.detail


def test_bad_tls_require_cert_is_a_config_error(registry: SchemaRegistry) -> None:
    with pytest.raises(errors.ServiceUnavailable):
        backend(registry, "dc=x", url="ldaps://127.0.0.1", tls_require_cert="sometimes")


async def test_password_sets_user_password_over_starttls_and_binds(
    slapd_server: SlapdServer, registry: SchemaRegistry, fresh_base: str
) -> None:
    b = backend(
        registry,
        fresh_base,
        url=slapd_server.url,
        start_tls=True,
        tls_ca_file=slapd_server.ca_file,
        timeout=5.0,
    )
    await b.start()
    try:
        rtype = users(registry)
        created = await b.create(
            CTX, rtype, {"schemas": [rtype.schema.id], "userName": "pat", "password": "Fïrst-pw1"}
        )
        assert "password" not in created
        dn = f"uid=pat,ou=people,{fresh_base}"
        assert can_bind(slapd_server.ldaps_url, dn, "Fïrst-pw1", slapd_server.ca_file)
        ops = parse_patch_request(
            rtype,
            {
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "password", "value": "S3cond"}],
            },
        )
        await b.patch(CTX, rtype, created["id"], ops, if_match=None)
        assert can_bind(slapd_server.ldaps_url, dn, "S3cond", slapd_server.ca_file)
        assert not can_bind(slapd_server.ldaps_url, dn, "Fïrst-pw1", slapd_server.ca_file)
        # Neither the shadow nor any SCIM read holds the password.
        conn = ldap.initialize(slapd_server.url)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        ((_, attrs),) = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["scimdAttr"])
        conn.unbind_s()
        assert all(b"S3cond" not in v and b"password" not in v for v in attrs.get("scimdAttr", []))
        assert "password" not in await b.get(CTX, rtype, created["id"])
        # A PUT without password keeps it (clients cannot read it back to resend it).
        await b.replace(
            CTX,
            rtype,
            created["id"],
            {"schemas": [rtype.schema.id], "userName": "pat"},
            if_match=None,
        )
        assert can_bind(slapd_server.ldaps_url, dn, "S3cond", slapd_server.ca_file)
    finally:
        await b.aclose()


async def test_password_over_plain_ldap_refused_unless_allowed(
    slapd_server: SlapdServer, registry: SchemaRegistry, fresh_base: str
) -> None:
    rtype = users(registry)
    body = {"schemas": [rtype.schema.id], "userName": "plain", "password": "pw-1"}
    b = backend(registry, fresh_base, url=slapd_server.url)
    try:
        with pytest.raises(errors.Forbidden):
            await b.create(CTX, rtype, dict(body))
    finally:
        await b.aclose()
    b = backend(registry, fresh_base, url=slapd_server.url, allow_insecure_password=True)
    try:
        await b.create(CTX, rtype, dict(body))
        assert can_bind(slapd_server.url, f"uid=plain,ou=people,{fresh_base}", "pw-1")
    finally:
        await b.aclose()
