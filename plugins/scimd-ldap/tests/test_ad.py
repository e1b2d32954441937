"""Active Directory profile against hand-written AD-shaped responses (``fixtures/ad_recorded.json``)
replayed through a fake python-ldap connection (``tests/_fake_ad.py``) behind the real
adapter: objectGUID ids and their filter escaping, userAccountControl for ``active``
(only ACCOUNTDISABLE changes), ranged ``member`` retrieval, ``unicodePwd`` only over an
encrypted connection, and AD diagnostic codes -> SCIM errors."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]
import pytest
from scimd_ldap.ad import complete_ranges, guid_filter_value, guid_text, unicode_pwd
from scimd_ldap.backend import LdapBackend

from scimd import errors
from scimd.backend import BackendEnv, OpContext, Query
from scimd.patch import parse_patch_request
from scimd.query.parse import parse_filter
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.testing import build_contract_registry
from tests._fake_ad import FIXTURE, FakeDirectory

CTX = OpContext("default", "test", "req-1")
BJENSEN = "12345678-1234-7856-9abc-def012345678"
BIG_GROUP = "3c2d1e0f-5a4b-7869-8796-a5b4c3d2e1f0"
USERS = "CN=Users,DC=corp,DC=example"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> SchemaRegistry:
    return build_contract_registry(Path(tmp_path_factory.mktemp("schema")))


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory(max_values=3)


def make_backend(registry: SchemaRegistry, directory: FakeDirectory, **options: Any) -> LdapBackend:
    opts = {
        "profile": "ad",
        "url": "ldaps://dc1.corp.example",
        "bind_dn": "CN=scimd,CN=Users,DC=corp,DC=example",
        "bind_password": "x",
        "base_dn": FIXTURE["base_dn"],
        "users_container": "CN=Users",
        "groups_container": "CN=Users",
        **options,
    }
    env = BackendEnv(options=opts, registry=registry, base_dir=Path("."))
    return LdapBackend(env, initialize=directory.initialize)


@pytest.fixture
async def backend(registry: SchemaRegistry, directory: FakeDirectory) -> Any:
    b = make_backend(registry, directory)
    await b.start()
    yield b
    await b.aclose()


def rt(registry: SchemaRegistry, name: str) -> ResourceType:
    found = registry.resource_type(name)
    assert found is not None
    return found


def searches(directory: FakeDirectory) -> list[tuple[Any, ...]]:
    return [c for c in directory.calls if c[0] == "search"]


def add_users(directory: FakeDirectory, names: list[str]) -> dict[str, str]:
    """AD user entries (as the recorded one) for ``names``; returns name -> GUID text."""
    out = {}
    for name in names:
        dn = f"CN={name},{USERS}"
        raw = os.urandom(16)
        directory.entries[dn.lower()] = {
            "objectClass": [b"top", b"person", b"organizationalPerson", b"user"],
            "objectCategory": [b"CN=Person,CN=Schema,CN=Configuration,DC=corp,DC=example"],
            "cn": [name.encode()],
            "sAMAccountName": [name.encode()],
            "userAccountControl": [b"512"],
            "objectGUID": [raw],
            "whenCreated": [b"20261101090000.0Z"],
            "whenChanged": [b"20261101090000.0Z"],
        }
        directory.names[dn.lower()] = dn
        out[name] = guid_text(raw)
    return out


def test_guid_text_form_is_little_endian() -> None:
    raw = bytes.fromhex("78563412341256789abcdef012345678")
    assert guid_text(raw) == BJENSEN
    assert guid_filter_value(BJENSEN) == (
        "\\78\\56\\34\\12\\34\\12\\56\\78\\9a\\bc\\de\\f0\\12\\34\\56\\78"
    )
    assert guid_filter_value("not-a-guid") is None


async def test_get_user_by_object_guid(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    user = await backend.get(CTX, rt(registry, "User"), BJENSEN)
    assert user["id"] == BJENSEN
    assert user["userName"] == "bjensen"
    assert user["name"] == {"givenName": "Barbara", "familyName": "Jensen"}
    assert user["active"] is True  # 66048 = NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD
    assert user["meta"]["created"].startswith("2026-11-01T09:00:00")
    flt = next(c[3] for c in searches(directory) if "objectGUID=" in c[3])
    assert "(objectGUID=\\78\\56\\34\\12\\34\\12\\56\\78\\9a\\bc\\de\\f0\\12\\34\\56\\78)" in flt
    assert "(objectCategory=person)" in flt


async def test_unknown_or_malformed_id_is_404(
    backend: LdapBackend, registry: SchemaRegistry
) -> None:
    with pytest.raises(errors.NotFound):
        await backend.get(CTX, rt(registry, "User"), str(uuid.uuid4()))
    with pytest.raises(errors.NotFound):
        await backend.get(CTX, rt(registry, "User"), "*)(objectClass=*")


@pytest.mark.parametrize(
    ("scim", "pushed"),
    [
        ('userName eq "bjensen"', "(sAMAccountName=bjensen)"),
        (f'id eq "{BJENSEN}"', "(objectGUID=\\78\\56\\34\\12"),
        ('userName sw "bj*"', "(sAMAccountName=bj\\2a*)"),
    ],
)
async def test_filters_push_down(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory, scim: str, pushed: str
) -> None:
    users = rt(registry, "User")
    page = await backend.query(CTX, users, Query(filter=parse_filter(scim, users)))
    flt = next(c[3] for c in searches(directory) if "objectCategory" in c[3])
    assert pushed in flt
    expected = 0 if "bj*" in scim else 1
    assert page.total_results == expected


@pytest.mark.parametrize(("flt", "found"), [("active eq true", 1), ("active eq false", 0)])
async def test_active_filter_is_checked_on_candidates_not_pushed(
    backend: LdapBackend,
    registry: SchemaRegistry,
    directory: FakeDirectory,
    flt: str,
    found: int,
) -> None:
    users = rt(registry, "User")
    page = await backend.query(CTX, users, Query(filter=parse_filter(flt, users)))
    assert page.total_results == found
    assert not [c for c in searches(directory) if "userAccountControl" in c[3]]


async def test_user_principal_name_as_user_name(
    registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    b = make_backend(registry, directory, ad_username_attribute="userPrincipalName")
    users = rt(registry, "User")
    user = await b.get(CTX, users, BJENSEN)
    assert user["userName"] == "bjensen@corp.example"
    page = await b.query(
        CTX, users, Query(filter=parse_filter('userName eq "bjensen@corp.example"', users))
    )
    assert [r["id"] for r in page.resources] == [BJENSEN]
    await b.aclose()


async def test_active_flips_only_accountdisable(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    users = rt(registry, "User")
    ops = parse_patch_request(
        users,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    user = await backend.patch(CTX, users, BJENSEN, ops, if_match=None)
    assert user["active"] is False
    (modify,) = [c for c in directory.calls if c[0] == "modify"]
    # 66048 | ACCOUNTDISABLE: DONT_EXPIRE_PASSWORD (0x10000) survives, nothing else sent.
    assert modify[2] == [(ldap.MOD_REPLACE, "userAccountControl", [b"66050"])]
    ops[0] = parse_patch_request(
        users,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": True}],
        },
    )[0]
    assert (await backend.patch(CTX, users, BJENSEN, ops, if_match=None))["active"] is True
    assert directory.entries[f"cn=bjensen,{USERS}".lower()]["userAccountControl"] == [b"66048"]


async def test_replace_without_active_keeps_account_flags(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    users = rt(registry, "User")
    new = {"schemas": [users.schema.id], "userName": "bjensen", "displayName": "Barbara J"}
    await backend.replace(CTX, users, BJENSEN, new, if_match=None)
    entry = directory.entries[f"cn=bjensen,{USERS}".lower()]
    assert entry["userAccountControl"] == [b"66048"]
    assert entry["displayName"] == [b"Barbara J"]


@pytest.mark.parametrize(("active", "uac"), [(True, b"512"), (False, b"514")])
async def test_create_sets_user_account_control(
    backend: LdapBackend,
    registry: SchemaRegistry,
    directory: FakeDirectory,
    active: bool,
    uac: bytes,
) -> None:
    users = rt(registry, "User")
    created = await backend.create(
        CTX, users, {"schemas": [users.schema.id], "userName": "newbie", "active": active}
    )
    assert created["active"] is active
    (add,) = [c for c in directory.calls if c[0] == "add"]
    attrs = dict(add[2])
    assert add[1] == f"cn=newbie,{USERS}"
    assert attrs["userAccountControl"] == [uac]
    assert attrs["objectClass"] == [b"top", b"person", b"organizationalPerson", b"user"]
    assert attrs["sAMAccountName"] == [b"newbie"]
    assert "scimdAttr" not in attrs  # no shadow on AD
    assert uuid.UUID(created["id"])


def test_recorded_range_pages_are_joined() -> None:
    (group,) = [e for e in FIXTURE["entries"] if "member_pages" in e]
    pages = {k: [v.encode() for v in vs] for k, vs in group["member_pages"].items()}
    asked: list[str] = []

    def fetch(wanted: str) -> dict[str, list[bytes]]:
        asked.append(wanted)
        return {
            k: v
            for k, v in pages.items()
            if k.split("=")[1].split("-")[0] == wanted.split("=")[1].split("-")[0]
        }

    first = {"cn": [b"Big Group"], "member;range=0-2": pages["member;range=0-2"], "member": []}
    out = complete_ranges(fetch, first)
    assert asked == ["member;range=3-*", "member;range=6-*"]
    assert len(out["member"]) == 8
    assert out["member"][-1] == b"CN=u7,CN=Users,DC=corp,DC=example"
    assert "member;range=0-2" not in out


async def test_group_with_ranged_member_attribute(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    ids = add_users(directory, [f"u{i}" for i in (0, 1, 3, 4, 5, 6, 7)])
    ids["bjensen"] = BJENSEN
    group = await backend.get(CTX, rt(registry, "Group"), BIG_GROUP)
    assert group["displayName"] == "Big Group"
    assert sorted(m["value"] for m in group["members"]) == sorted(ids.values())
    ranged = [c[4] for c in searches(directory) if any(";range=" in a for a in c[4])]
    assert ranged == [("member;range=3-*",), ("member;range=6-*",)]


async def test_member_add_on_large_group_sends_only_the_new_member(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    ids = add_users(directory, [f"m{i}" for i in range(7)])
    groups = rt(registry, "Group")
    created = await backend.create(
        CTX,
        groups,
        {
            "schemas": [groups.schema.id],
            "displayName": "Many",
            "members": [{"value": ids[f"m{i}"]} for i in range(6)],
        },
    )
    assert len(created["members"]) == 6  # read back through member;range=0-2, 3-5 ...
    ops = parse_patch_request(
        groups,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": ids["m6"]}]}],
        },
    )
    directory.calls.clear()
    patched = await backend.patch(CTX, groups, created["id"], ops, if_match=None)
    assert len(patched["members"]) == 7
    (modify,) = [c for c in directory.calls if c[0] == "modify"]
    assert modify[2] == [(ldap.MOD_ADD, "member", [f"CN=m6,{USERS}".encode()])]


async def test_empty_group_has_no_member_attribute(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    groups = rt(registry, "Group")
    created = await backend.create(CTX, groups, {"schemas": [groups.schema.id], "displayName": "E"})
    (add,) = [c for c in directory.calls if c[0] == "add"]
    assert "member" not in dict(add[2])
    assert dict(add[2])["objectClass"] == [b"top", b"group"]
    assert "members" not in created


async def test_password_is_unicode_pwd_over_ldaps(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    users = rt(registry, "User")
    created = await backend.create(
        CTX,
        users,
        {"schemas": [users.schema.id], "userName": "pw", "active": True, "password": 'Sécr3t"!'},
    )
    (add,) = [c for c in directory.calls if c[0] == "add"]
    attrs = dict(add[2])
    assert attrs["unicodePwd"] == ['"Sécr3t"!"'.encode("utf-16-le")]
    assert attrs["unicodePwd"] == [unicode_pwd('Sécr3t"!')]
    assert add[3] is True  # sent on the TLS connection
    assert "password" not in created
    ops = parse_patch_request(
        users,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "password", "value": "N3w-one"}],
        },
    )
    await backend.patch(CTX, users, created["id"], ops, if_match=None)
    modify = [c for c in directory.calls if c[0] == "modify"][-1]
    assert (ldap.MOD_REPLACE, "unicodePwd", [unicode_pwd("N3w-one")]) in modify[2]


async def test_password_refused_without_encryption(
    registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    b = make_backend(registry, directory, url="ldap://dc1.corp.example")
    users = rt(registry, "User")
    with pytest.raises(errors.Forbidden) as info:
        await b.create(
            CTX, users, {"schemas": [users.schema.id], "userName": "pw", "password": "x1"}
        )
    assert info.value.status == 403
    assert "encrypted" in info.value.detail
    assert not [c for c in directory.calls if c[0] == "add"]
    ops = parse_patch_request(
        users,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "password", "value": "x2"}],
        },
    )
    with pytest.raises(errors.Forbidden):
        await b.patch(CTX, users, BJENSEN, ops, if_match=None)
    assert not [c for c in directory.calls if c[0] in ("modify", "rename")]
    await b.aclose()


async def test_password_allowed_after_start_tls(
    registry: SchemaRegistry, directory: FakeDirectory
) -> None:
    b = make_backend(registry, directory, url="ldap://dc1.corp.example", start_tls=True)
    users = rt(registry, "User")
    await b.create(CTX, users, {"schemas": [users.schema.id], "userName": "pw", "password": "x1"})
    (add,) = [c for c in directory.calls if c[0] == "add"]
    assert add[3] is True
    conn = directory.connections[0]
    assert conn.options[ldap.OPT_X_TLS_REQUIRE_CERT] == ldap.OPT_X_TLS_DEMAND
    assert conn.options[ldap.OPT_REFERRALS] == 0
    await b.aclose()


@pytest.mark.parametrize("case", FIXTURE["modify_errors"], ids=lambda c: c["info"][:8])
async def test_ad_diagnostic_codes_map_to_scim_errors(
    backend: LdapBackend, registry: SchemaRegistry, directory: FakeDirectory, case: dict[str, Any]
) -> None:
    users = rt(registry, "User")
    exc_class = getattr(ldap, case["result"])
    directory.fail_next = exc_class(
        {"result": exc_class.errnum, "desc": "recorded", "info": case["info"], "ctrls": []}
    )
    ops = parse_patch_request(
        users,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "Boss"}],
        },
    )
    with pytest.raises(errors.ScimError) as info:
        await backend.patch(CTX, users, BJENSEN, ops, if_match=None)
    assert info.value.status == case["status"]
    assert info.value.scim_type == case["scimType"]


async def test_shadow_is_off_and_no_etag_on_ad(backend: LdapBackend) -> None:
    assert backend.shadow is False
    assert backend.capabilities.etag is False
    assert backend.wants_plaintext_password is True


def test_bad_profile_is_a_config_error(registry: SchemaRegistry, directory: FakeDirectory) -> None:
    with pytest.raises(errors.ServiceUnavailable):
        make_backend(registry, directory, profile="novell")
    with pytest.raises(errors.ServiceUnavailable):
        make_backend(registry, directory, ad_username_attribute="mail")
