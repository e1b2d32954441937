"""Response projection: RFC 7643 7 ``returned``, RFC 7644 3.4.2.5 ``attributes`` and
``excludedAttributes``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from scimd.schema import load_registry, project, wants
from tests._schema_helpers import (
    ENTERPRISE_URN,
    GROUP_URN,
    USER_URN,
    group_type,
    load_fixture,
    user_type,
)


def _stored_user() -> dict[str, Any]:
    """RFC 7643 8.3 as scimd stores it (password hash included)."""
    user = load_fixture("rfc7643-8.3-enterprise_user.json")
    user["password"] = "$argon2id$v=19$m=65536,t=3,p=4$hash"
    return user


def _group() -> dict[str, Any]:
    return load_fixture("rfc7643-8.4-group.json")


def test_default_projection_drops_never() -> None:
    out = project(user_type(), _stored_user())
    assert "password" not in out
    assert out["userName"] == "bjensen@example.com"
    assert out["schemas"] == [USER_URN, ENTERPRISE_URN]
    assert "meta" in out and "groups" in out


def test_attributes_keeps_always_and_named() -> None:
    out = project(user_type(), _stored_user(), attributes=["userName", "emails"])
    assert list(out) == ["schemas", "id", "userName", "emails"]
    assert out["schemas"] == [USER_URN]  # the extension is no longer present
    assert len(out["emails"]) == 2


def test_attributes_case_insensitive_and_password_never() -> None:
    out = project(user_type(), _stored_user(), attributes=["USERNAME", "Password", "bogus"])
    assert out == {
        "schemas": [USER_URN],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen@example.com",
    }


def test_sub_attribute_selection() -> None:
    out = project(
        user_type(), _stored_user(), attributes=["name.givenName", "emails.value", "emails.Type"]
    )
    assert out["name"] == {"givenName": "Barbara"}
    assert out["emails"] == [
        {"value": "bjensen@example.com", "type": "work"},
        {"value": "babs@jensen.org", "type": "home"},
    ]
    # Naming both the parent and a sub-attribute: the whole parent.
    out = project(user_type(), _stored_user(), attributes=["name.givenName", "name"])
    assert len(out["name"]) == 6


def test_sub_attribute_selection_drops_empty_elements() -> None:
    user = _stored_user()
    user["emails"].append({"value": "no-type@example.com"})
    out = project(user_type(), user, attributes=["emails.type"])
    assert out["emails"] == [{"type": "work"}, {"type": "home"}]
    out = project(user_type(), user, attributes=["name.nickName"])  # no such sub-attribute
    assert "name" not in out


def test_urn_qualified_names() -> None:
    out = project(
        user_type(),
        _stored_user(),
        attributes=[f"{ENTERPRISE_URN}:employeeNumber", f"{ENTERPRISE_URN.upper()}:manager.value"],
    )
    assert out == {
        "schemas": [USER_URN, ENTERPRISE_URN],
        "id": "2819c223-7f76-453a-919d-413861904646",
        ENTERPRISE_URN: {
            "employeeNumber": "701984",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
        },
    }
    out = project(user_type(), _stored_user(), attributes=[f"{USER_URN}:userName"])
    assert out["userName"] == "bjensen@example.com" and "displayName" not in out
    out = project(user_type(), _stored_user(), attributes=[f"{USER_URN}:name.familyName"])
    assert out["name"] == {"familyName": "Jensen"}


def test_whole_extension_urn() -> None:
    out = project(user_type(), _stored_user(), attributes=[ENTERPRISE_URN])
    assert list(out) == ["schemas", "id", ENTERPRISE_URN]
    assert len(out[ENTERPRISE_URN]) == 6
    out = project(user_type(), _stored_user(), excluded=[ENTERPRISE_URN.lower()])
    assert ENTERPRISE_URN not in out and out["schemas"] == [USER_URN]
    assert "userName" in out


def test_excluded_attributes() -> None:
    out = project(
        user_type(), _stored_user(), excluded=["emails", "name.middleName", "meta", "id", "schemas"]
    )
    assert "emails" not in out and "meta" not in out
    assert "middleName" not in out["name"] and "givenName" in out["name"]
    # returned "always" cannot be excluded.
    assert out["id"] == "2819c223-7f76-453a-919d-413861904646"
    assert out["schemas"] == [USER_URN, ENTERPRISE_URN]
    out = project(user_type(), _stored_user(), excluded=[f"{ENTERPRISE_URN}:manager"])
    assert "manager" not in out[ENTERPRISE_URN] and "costCenter" in out[ENTERPRISE_URN]


def test_interop_groups_excluded_members() -> None:
    # GET /Groups?excludedAttributes=members&filter=displayName eq "x": no members key.
    out = project(group_type(), _group(), excluded=["members"])
    assert out == {
        "schemas": [GROUP_URN],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "meta": _group()["meta"],
    }
    assert not wants(group_type(), "members", excluded=["members"])
    assert not wants(group_type(), "Members", excluded=["MEMBERS"])
    assert wants(group_type(), "members")
    assert wants(group_type(), "members", excluded=["members.display"])
    assert wants(group_type(), "members", attributes=["members.value"])
    assert not wants(group_type(), "members", attributes=["displayName"])
    assert wants(group_type(), "id", attributes=["displayName"], excluded=["id"])
    assert not wants(group_type(), "nonexistent")
    assert not wants(user_type(), "password")
    assert wants(user_type(), "groups")
    assert not wants(user_type(), "groups", attributes=["userName"])
    assert wants(user_type(), f"{ENTERPRISE_URN}:manager")


def test_output_is_canonical_order_whatever_the_input_order() -> None:
    stored = _stored_user()
    shuffled = dict(reversed(list(stored.items())))
    shuffled["name"] = dict(reversed(list(stored["name"].items())))
    out = project(user_type(), shuffled)
    expected = project(user_type(), stored)
    assert list(out) == list(expected)
    assert (
        list(out["name"])
        == list(expected["name"])
        == [
            "formatted",
            "familyName",
            "givenName",
            "middleName",
            "honorificPrefix",
            "honorificSuffix",
        ]
    )


def test_unknown_stored_keys_dropped_and_input_untouched() -> None:
    stored = _stored_user()
    stored["internalNote"] = "x"
    before = json.dumps(stored, sort_keys=True)
    out = project(user_type(), stored, attributes=["name.givenName"])
    assert "internalNote" not in project(user_type(), stored)
    assert out["name"] == {"givenName": "Barbara"}
    assert json.dumps(stored, sort_keys=True) == before


def test_returned_request_and_never_in_sub_attributes(tmp_path: Path) -> None:
    schema = {
        "id": "urn:example:scim:schemas:core:2.0:Thing",
        "name": "Thing",
        "attributes": [
            {"name": "label", "type": "string"},
            {"name": "audit", "type": "string", "returned": "request"},
            {"name": "code", "type": "string", "returned": "always"},
            {
                "name": "keys",
                "type": "complex",
                "multiValued": True,
                "subAttributes": [
                    {"name": "kid", "type": "string", "returned": "always"},
                    {"name": "material", "type": "string", "returned": "never"},
                    {"name": "usage", "type": "string", "returned": "request"},
                    {"name": "note", "type": "string"},
                ],
            },
        ],
    }
    (tmp_path / "s.json").write_text(json.dumps(schema))
    (tmp_path / "rt.json").write_text(
        json.dumps({"name": "Thing", "endpoint": "/Things", "schema": schema["id"]})
    )
    rt = load_registry([tmp_path / "s.json"], [tmp_path / "rt.json"]).resource_type("thing")
    assert rt is not None
    thing = {
        "schemas": [schema["id"]],
        "id": "t1",
        "label": "L",
        "audit": "A",
        "code": "C",
        "keys": [{"kid": "k1", "material": "secret", "usage": "sig", "note": "n"}],
    }
    out = project(rt, thing)
    assert out == {
        "schemas": [schema["id"]],
        "id": "t1",
        "label": "L",
        "code": "C",
        "keys": [{"kid": "k1", "note": "n"}],
    }
    out = project(rt, thing, attributes=["audit", "keys.usage"], excluded=["code"])
    assert out == {
        "schemas": [schema["id"]],
        "id": "t1",
        "audit": "A",
        "code": "C",
        "keys": [{"kid": "k1", "usage": "sig"}],
    }
    out = project(rt, thing, excluded=["keys.kid", "keys.note"])
    assert out["keys"] == [{"kid": "k1"}]
    assert project(rt, thing, attributes=["keys.material"])["keys"] == [{"kid": "k1"}]


@pytest.mark.parametrize("attrs", [[""], [" "], ["emails..value"], ["urn:x:y:z"], ["a.b.c"]])
def test_unknown_or_malformed_names_are_ignored(attrs: list[str]) -> None:
    out = project(user_type(), _stored_user(), attributes=attrs)
    assert list(out) == ["schemas", "id"]


# --------------------------------------------------------------------------------------
# The default view's shortcut: a resource that is already its own default view is
# returned as is; anything else must come out exactly as the full projection makes it.

_MUTATIONS: dict[str, Any] = {
    "none_top": lambda r: r.__setitem__("displayName", None),
    "unknown_top": lambda r: r.__setitem__("favouriteColour", "blue"),
    "lower_case_name": lambda r: r.__setitem__("username", r.pop("userName")),
    "unknown_sub": lambda r: r["name"].__setitem__("nickname", "Babs"),
    "unknown_element_sub": lambda r: r["emails"][0].__setitem__("label", "x"),
    "empty_element": lambda r: r["emails"].append({}),
    "empty_complex": lambda r: r.__setitem__("name", {}),
    "complex_as_list": lambda r: r.__setitem__("name", [r["name"]]),
    "multi_as_dict": lambda r: r.__setitem__("emails", r["emails"][0]),
    "empty_multi": lambda r: r.__setitem__("phoneNumbers", []),
    "password": lambda r: r.__setitem__("password", "$argon2id$hash"),
    "schemas_reversed": lambda r: r["schemas"].reverse(),
    "schemas_missing_ext": lambda r: r.__setitem__("schemas", [USER_URN]),
    "schemas_absent": lambda r: r.pop("schemas"),
    "empty_ext": lambda r: r.__setitem__(ENTERPRISE_URN, {}),
    "ext_unknown": lambda r: r[ENTERPRISE_URN].__setitem__("shoeSize", 9),
    "ext_none": lambda r: r[ENTERPRISE_URN].__setitem__("division", None),
    "ext_removed": lambda r: r.pop(ENTERPRISE_URN),
    "meta_unknown_sub": lambda r: r["meta"].__setitem__("etag", "x"),
    "meta_first": lambda r: r.update({k: r.pop(k) for k in [k for k in r if k != "meta"]}),
    "name_last": lambda r: r.__setitem__("name", r.pop("name")),
    "groups_after_meta": lambda r: r.__setitem__("groups", r.pop("groups")),
}


def _default_view_rebuilt(resource: dict[str, Any]) -> dict[str, Any]:
    """The full projection, bypassing the shortcut (the oracle the RFC tests above pin)."""
    mod = importlib.import_module("scimd.schema.project")
    rtype = user_type()
    plan = mod._plan(rtype)
    out: dict[str, Any] = mod._project(plan, mod._spec(rtype, (), ()), resource)
    return out


def test_default_view_of_a_canonical_user_is_the_user_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canonical = _default_view_rebuilt(_stored_user())
    # As the embedded store returns it (id first, groups attached after meta) once the
    # service scrubbed the password hash.
    user = {"id": canonical["id"], **canonical}
    user["groups"] = user.pop("groups")
    # Taken without rebuilding: the full projection is not called at all.
    monkeypatch.setattr(importlib.import_module("scimd.schema.project"), "_project", None)
    out = project(user_type(), user)
    assert out == user
    assert list(out) == list(canonical)  # schemas, id, ... meta: canonical order
    assert out is not user  # a copy the caller may change
    out["id"] = "changed"
    assert user["id"] != "changed"


@pytest.mark.parametrize("names", [[m] for m in _MUTATIONS] + [list(_MUTATIONS)[::3]])
def test_default_view_matches_full_projection_whatever_the_input(names: list[str]) -> None:
    user = _default_view_rebuilt(_stored_user())
    for name in names:
        _MUTATIONS[name](user)
    snapshot = json.loads(json.dumps(user))
    out, full = project(user_type(), user), _default_view_rebuilt(user)
    assert out == full
    assert list(out) == list(full)  # the same canonical order too
    assert user == snapshot  # the input is never changed
