"""Active Directory profile against responses recorded from a real AD-compatible server
(Samba 4 AD DC; ``fixtures/ad/README.md``) and replayed under the real adapter, pool and
backend (``scimd_ldap.adtesting.Replay``): objectGUID ids and their filter escaping,
userAccountControl for ``active`` (only ACCOUNTDISABLE changes), ``unicodePwd`` over LDAPS,
value-level member modifies, ranged ``member`` retrieval and AD's errors -> SCIM errors."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]
import pytest
from scimd_ldap.ad import ad_error, complete_ranges, guid_filter_value, guid_text, unicode_pwd
from scimd_ldap.adtesting import Replay, decode_value

from scimd import errors
from scimd.schema.model import SchemaRegistry
from scimd.testing import build_contract_registry
from tests import _ad_scenarios as sc

FIXTURES = Path(__file__).parent / "fixtures" / "ad"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> SchemaRegistry:
    return build_contract_registry(Path(tmp_path_factory.mktemp("schema")))


@pytest.fixture(scope="module")
def fixtures_dir() -> Path:
    """Where the recordings are (``test_ad_live.py``: recorded from Samba just now)."""
    return FIXTURES


async def replay(
    registry: SchemaRegistry, directory: Path, name: str
) -> tuple[Replay, dict[str, Any]]:
    """Run scenario ``name`` against its recording; every recorded call must be made."""
    rec = Replay(directory / f"{name}.json")
    backend = sc.make_backend(registry, rec.recording["base_dn"], rec.initialize)
    await backend.start()
    try:
        out = await sc.SCENARIOS[name](backend, registry)
    finally:
        await backend.aclose()
    assert len(rec.calls) == len(rec.recording["calls"]), "the bridge skipped recorded calls"
    return rec, out


def entry_attrs(rec: Replay, dn_start: str) -> dict[str, Any]:
    """The first recorded read of the entry whose DN starts with ``dn_start``."""
    for call in rec.recorded("paged_search"):
        for dn, attrs in call["result"]["entries"]:
            if dn.lower().startswith(dn_start.lower()) and "objectGUID" in attrs:
                return decode_value(attrs)  # type: ignore[no-any-return]
    raise AssertionError(dn_start)


def test_guid_text_form_is_little_endian() -> None:
    raw = bytes.fromhex("78563412341256789abcdef012345678")
    assert guid_text(raw) == "12345678-1234-7856-9abc-def012345678"
    assert guid_filter_value(guid_text(raw)) == "".join(f"\\{b:02x}" for b in raw)
    assert guid_filter_value("not-a-guid") is None


async def test_user_lifecycle_on_recorded_ad(registry: SchemaRegistry, fixtures_dir: Path) -> None:
    rec, out = await replay(registry, fixtures_dir, "users")
    raw = entry_attrs(rec, "CN=bjensen,")
    rid = out["created"]["id"]
    # The SCIM id is the recorded objectGUID in AD's text form (bytes_le).
    assert rid == guid_text(raw["objectGUID"][0]) == str(uuid.UUID(bytes_le=raw["objectGUID"][0]))
    assert out["got"]["userName"] == "bjensen"
    assert out["got"]["name"] == {"givenName": "Barbara", "familyName": "Jensen"}
    assert out["got"]["emails"] == [{"value": "bjensen@corp.example"}]
    assert out["got"]["meta"]["created"].startswith(
        "{}-{}-{}T".format(*(lambda w: (w[:4], w[4:6], w[6:8]))(raw["whenCreated"][0].decode()))
    )
    assert out["by_name"] == [rid]
    assert out["by_id"] == [rid]
    pushed = [c["filter"] for c in rec.recorded("paged_search")]
    assert any(f"(objectGUID={guid_filter_value(rid)})" in f for f in pushed)
    assert any("(sAMAccountName=bjensen)" in f and "(objectCategory=person)" in f for f in pushed)
    assert "password" not in out["created"] and "password" not in out["got"]
    assert out["after_delete"]["status"] == 404


async def test_active_is_user_account_control_accountdisable(
    registry: SchemaRegistry, fixtures_dir: Path
) -> None:
    rec, out = await replay(registry, fixtures_dir, "users")
    (add,) = rec.recorded("add")
    assert dict(add["modlist"])["userAccountControl"] == ["512"]  # NORMAL_ACCOUNT
    uac = int(entry_attrs(rec, "CN=bjensen,")["userAccountControl"][0])
    assert out["got"]["active"] is True
    assert out["deactivated"]["active"] is False
    assert out["reactivated"]["active"] is True
    modifies = rec.recorded("modify")
    # Deactivate, reactivate: one MOD_REPLACE of the flags with only bit 0x2 changed.
    assert modifies[0]["mods"] == [[ldap.MOD_REPLACE, "userAccountControl", [str(uac | 2)]]]
    assert modifies[1]["mods"] == [[ldap.MOD_REPLACE, "userAccountControl", [str(uac)]]]
    # A PUT without ``active`` leaves the flags alone.
    assert all(m[1] != "userAccountControl" for m in modifies[2]["mods"])
    assert out["replaced"]["active"] is True
    assert out["replaced"]["displayName"] == "Barbara J"


async def test_password_is_unicode_pwd_over_ldaps(
    registry: SchemaRegistry, fixtures_dir: Path
) -> None:
    rec, out = await replay(registry, fixtures_dir, "users")
    (add,) = rec.recorded("add")
    (pwd,) = dict(add["modlist"])["unicodePwd"]
    assert bytes.fromhex(pwd["hex"]) == unicode_pwd(sc.PASSWORD)
    assert bytes.fromhex(pwd["hex"]) == f'"{sc.PASSWORD}"'.encode("utf-16-le")
    change = rec.recorded("modify")[3]
    assert change["mods"] == [
        [ldap.MOD_REPLACE, "unicodePwd", [{"hex": unicode_pwd(sc.NEW_PASSWORD).hex()}]]
    ]
    assert "error" not in change  # Samba took it: over LDAPS
    assert all(c.tls for c in rec.connections)
    assert all(
        c.options[ldap.OPT_X_TLS_REQUIRE_CERT] == ldap.OPT_X_TLS_DEMAND for c in rec.connections
    )
    assert "password" not in out["password_changed"]


async def test_recorded_ad_errors_map_to_scim_errors(
    registry: SchemaRegistry, fixtures_dir: Path
) -> None:
    rec, out = await replay(registry, fixtures_dir, "errors")
    assert out["duplicate"]["status"] == 409
    assert out["duplicate"]["scimType"] == "uniqueness"
    assert out["weak_password"]["status"] == 400
    assert out["weak_password"]["scimType"] == "invalidValue"
    assert out["unknown"]["status"] == 404
    assert out["malformed"]["status"] == 404
    # The malformed id never reached the directory.
    assert not [c for c in rec.calls if "objectClass=*)(" in str(c.get("filter"))]
    refused = [c for c in rec.recorded("add") if "error" in c]
    assert [c["error"]["error"] for c in refused] == ["ALREADY_EXISTS", "CONSTRAINT_VIOLATION"]
    info = refused[1]["error"]["info"]
    assert info.startswith("0000052D:")  # ERROR_PASSWORD_RESTRICTION, as AD writes it
    mapped = ad_error(ldap.CONSTRAINT_VIOLATION({"info": info}))
    assert isinstance(mapped, errors.InvalidValue)


async def test_group_members_are_value_level_modifies(
    registry: SchemaRegistry, fixtures_dir: Path
) -> None:
    rec, out = await replay(registry, fixtures_dir, "groups")
    ids = out["ids"]
    assert sorted(m["value"] for m in out["created"]["members"]) == sorted(
        [ids["alice"], ids["bob"]]
    )
    assert {m["value"] for m in out["added"]["members"]} == set(ids.values())
    assert {m["value"] for m in out["removed"]["members"]} == {ids["bob"], ids["carol"]}
    assert all(m["type"] == "User" for m in out["removed"]["members"])
    base = rec.recording["base_dn"]
    add, remove = rec.recorded("modify")
    assert add["mods"] == [[ldap.MOD_ADD, "member", [f"CN=carol,OU=Users,{base}"]]]
    assert remove["mods"] == [[ldap.MOD_DELETE, "member", [f"CN=alice,OU=Users,{base}"]]]
    empty = next(c for c in rec.recorded("add") if c["dn"].startswith("cn=Nobody"))
    assert "member" not in dict(empty["modlist"])  # an AD group may have no member
    assert dict(empty["modlist"])["objectClass"] == ["top", "group"]
    assert "members" not in out["empty"]
    staff = out["created"]["id"]
    assert [(g["value"], g["type"]) for g in out["bob"]["groups"]] == [(staff, "direct")]
    assert "groups" not in out["bob_after"]


def _range_answers() -> tuple[Replay, dict[str, dict[str, list[bytes]]]]:
    rec = Replay(FIXTURES / "ranges.json")
    answers = {c["attrs"][0]: decode_value(c["result"][0][1]) for c in rec.recorded("search")}
    return rec, answers


def test_recorded_range_slices_have_ads_shape() -> None:
    _, answers = _range_answers()
    n = sc.RANGE_MEMBERS
    assert [(k, len(v)) for k, v in answers["member;range=0-1499"].items()] == [
        ("member;range=0-1499", 1500)
    ]
    assert [(k, len(v)) for k, v in answers["member;range=1500-*"].items()] == [
        ("member;range=1500-*", n - 1500)
    ]
    # An upper bound past the end comes back as ``-*``; past the last value, empty.
    assert list(answers["member;range=1000-2000"]) == ["member;range=1000-*"]
    assert answers["member;range=1600-*"] == {"member;range=1600-*": []}


def test_ranged_member_is_completed_from_recorded_slices() -> None:
    """AD answers ``member`` over MaxValRange with the first slice: the bridge asks for the
    next ones on the same entry until the name ends in ``-*``."""
    rec, answers = _range_answers()
    group = rec.recorded("search")[0]["base"]
    conn = rec.initialize("ldaps://127.0.0.1:636")
    asked: list[str] = []

    def fetch(wanted: str) -> dict[str, list[bytes]]:
        asked.append(wanted)
        res = conn.search_st(group, ldap.SCOPE_BASE, "(objectClass=*)", [wanted])
        return res[0][1]  # type: ignore[no-any-return]

    first = {"cn": [b"Everyone"], **answers["member;range=0-1499"]}
    out = complete_ranges(fetch, first)
    assert asked == ["member;range=1500-*"]
    assert out["member"] == answers["member"]["member"]  # the whole list, in server order
    assert len(out["member"]) == sc.RANGE_MEMBERS
    assert out["cn"] == [b"Everyone"]
    # Samba itself sends every value to a plain ``member`` request (it does not apply
    # MaxValRange unasked): nothing to complete then.
    plain = answers["member"]
    assert complete_ranges(fetch, plain) == plain
    assert asked == ["member;range=1500-*"]


def test_bad_profile_is_a_config_error(registry: SchemaRegistry) -> None:
    rec = Replay(FIXTURES / "errors.json")
    with pytest.raises(errors.ServiceUnavailable):
        sc.make_backend(registry, "DC=corp,DC=example", rec.initialize, profile="novell")
    with pytest.raises(errors.ServiceUnavailable):
        sc.make_backend(
            registry, "DC=corp,DC=example", rec.initialize, ad_username_attribute="mail"
        )


async def test_shadow_is_off_and_no_etag_on_ad(registry: SchemaRegistry) -> None:
    rec = Replay(FIXTURES / "errors.json")
    backend = sc.make_backend(registry, "DC=corp,DC=example", rec.initialize)
    assert backend.shadow is False
    assert backend.capabilities.etag is False
    assert backend.wants_plaintext_password is True


async def test_password_refused_without_encryption(registry: SchemaRegistry) -> None:
    """Over plain ldap:// the password is refused (403) before anything reaches AD."""
    rec = Replay(FIXTURES / "errors.json")
    backend = sc.make_backend(registry, "DC=corp,DC=example", rec.initialize, url="ldap://dc1")
    users = sc.rt(registry, "User")
    with pytest.raises(errors.Forbidden) as info:
        await backend.create(
            sc.CTX, users, {"schemas": [users.schema.id], "userName": "pw", "password": "x1"}
        )
    assert "encrypted" in info.value.detail
    assert rec.calls == []
    await backend.aclose()
