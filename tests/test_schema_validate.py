"""Input normalisation: RFC 7643 types and names, the tolerances of INTEROP.md "Resources",
PUT merge rules and required attributes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scimd import quirks
from scimd.errors import BadRequest, InvalidSyntax, InvalidValue, Mutability
from scimd.schema import (
    check_required,
    merge_for_replace,
    normalize_datetime,
    normalize_resource,
    normalize_value,
    project,
)
from tests._schema_helpers import (
    ENTERPRISE_URN,
    GROUP_URN,
    USER_URN,
    group_type,
    load_fixture,
    user_type,
    without,
)


@pytest.fixture(autouse=True)
def _fresh_quirks() -> Iterator[None]:
    quirks.reset()
    yield
    quirks.reset()


def _user(**attrs: Any) -> dict[str, Any]:
    return {"schemas": [USER_URN], "userName": "bjensen", **attrs}


def _error(body: Any, *, rtype: Any = None) -> BadRequest:
    with pytest.raises(BadRequest) as err:
        normalize_resource(rtype or user_type(), body)
    return err.value


# ------------------------------------------------------------------ RFC 7643 section 8


def test_rfc7643_8_1_minimal_user_round_trip() -> None:
    src = load_fixture("rfc7643-8.1-minimal_user.json")
    norm = normalize_resource(user_type(), src)
    assert norm == {"schemas": [USER_URN], "userName": "bjensen@example.com"}
    stored = {**norm, "id": src["id"], "meta": src["meta"]}
    assert project(user_type(), stored) == src
    assert list(project(user_type(), stored)) == ["schemas", "id", "userName", "meta"]


def test_rfc7643_8_2_full_user_round_trip() -> None:
    src = load_fixture("rfc7643-8.2-full_user.json")
    norm = normalize_resource(user_type(), src)
    # readOnly id/meta/groups are never taken from input; password kept for hashing.
    assert "id" not in norm and "meta" not in norm and "groups" not in norm
    assert norm["password"] == "t1meMa$heen"
    assert norm == without(src, "id", "meta", "groups")
    stored = {**norm, "id": src["id"], "meta": src["meta"], "groups": src["groups"]}
    out = project(user_type(), stored)
    # password is returned "never".
    assert out == without(src, "password")
    assert list(out)[:4] == ["schemas", "id", "externalId", "userName"]
    assert list(out)[-1] == "meta"
    # Canonical schema order: name before displayName, emails before addresses.
    keys = list(out)
    assert keys.index("name") < keys.index("displayName") < keys.index("emails")
    assert keys.index("emails") < keys.index("phoneNumbers") < keys.index("addresses")
    assert list(out["addresses"][0])[:2] == ["formatted", "streetAddress"]


def test_rfc7643_8_3_enterprise_user_round_trip() -> None:
    src = load_fixture("rfc7643-8.3-enterprise_user.json")
    norm = normalize_resource(user_type(), src)
    assert norm["schemas"] == [USER_URN, ENTERPRISE_URN]
    # manager.displayName is readOnly (the server derives it).
    assert norm[ENTERPRISE_URN]["manager"] == {
        "value": "26118915-6090-4610-87e4-49d8ca9f808d",
        "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
    }
    stored = {**norm, "id": src["id"], "meta": src["meta"], "groups": src["groups"]}
    stored[ENTERPRISE_URN]["manager"]["displayName"] = "John Smith"
    out = project(user_type(), stored)
    assert out == without(src, "password")
    assert list(out)[-2:] == [ENTERPRISE_URN, "meta"]


def test_rfc7643_8_4_group_round_trip() -> None:
    src = load_fixture("rfc7643-8.4-group.json")
    norm = normalize_resource(group_type(), src)
    assert norm == without(src, "id", "meta")
    out = project(group_type(), {**norm, "id": src["id"], "meta": src["meta"]})
    assert out == src
    assert quirks.snapshot() == {}  # RFC examples need no tolerance


# -------------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("attrs", "expected_detail"),
    [
        ({"displayName": 12}, "Attribute 'displayName' must be a string, got a number"),
        ({"userName": ["a", "b"]}, "'userName' is single-valued"),
        ({"active": "yes"}, "Attribute 'active' must be a boolean, got a string"),
        ({"active": 1}, "Attribute 'active' must be a boolean, got a number"),
        ({"name": "Barbara"}, "Attribute 'name' must be a complex value"),
        ({"emails": [{"value": 5}]}, "Attribute 'emails.value' must be a string"),
        ({"emails": [["a@example.com"]]}, "'emails' must be an array of single values"),
        ({"profileUrl": {"href": "x"}}, "'profileUrl' must be a reference"),
        (
            {"x509Certificates": [{"value": "not base64!"}]},
            "'x509Certificates.value' must be base64",
        ),
        ({"x509Certificates": [{"value": 3}]}, "must be a base64 string"),
        (
            {ENTERPRISE_URN: {"manager": {"value": True}}},
            f"Attribute '{ENTERPRISE_URN}:manager.value' must be a string, got a boolean",
        ),
        ({ENTERPRISE_URN: "701984"}, f"'{ENTERPRISE_URN}' must be a JSON object"),
    ],
)
def test_type_errors_are_invalid_value(attrs: dict[str, Any], expected_detail: str) -> None:
    err = _error(_user(**attrs))
    assert isinstance(err, InvalidValue)
    assert err.status == 400 and err.scim_type == "invalidValue"
    assert expected_detail in err.detail


def test_type_error_never_echoes_the_value() -> None:
    err = _error(_user(password=["s3cret-value", "other"]))
    assert "s3cret" not in err.detail
    err = _error(_user(password=12345678))
    assert "12345678" not in err.detail and "'password'" in err.detail


def test_body_not_an_object_is_invalid_syntax() -> None:
    for body in ([{"userName": "x"}], "x", None, 3):
        err = _error(body)
        assert isinstance(err, InvalidSyntax) and err.scim_type == "invalidSyntax"


def _custom_types_registry(tmp_path: Any) -> Any:
    import json

    from scimd.schema import load_registry

    schema = {
        "id": "urn:example:scim:schemas:core:2.0:Sample",
        "name": "Sample",
        "attributes": [
            {"name": "key", "type": "string", "required": True},
            {"name": "count", "type": "integer"},
            {"name": "ratio", "type": "decimal"},
            {"name": "at", "type": "dateTime"},
            {"name": "blob", "type": "binary"},
            {"name": "link", "type": "reference", "referenceTypes": ["external"]},
            {"name": "flags", "type": "boolean", "multiValued": True},
            {
                "name": "part",
                "type": "complex",
                "subAttributes": [
                    {"name": "code", "type": "string", "required": True},
                    {"name": "note", "type": "string"},
                    {"name": "serial", "type": "string", "mutability": "immutable"},
                    {"name": "secret", "type": "string", "mutability": "writeOnly"},
                ],
            },
            {"name": "tag", "type": "string", "mutability": "immutable"},
            {"name": "pin", "type": "string", "mutability": "writeOnly", "returned": "never"},
            {"name": "computed", "type": "string", "mutability": "readOnly"},
        ],
    }
    rt = {"name": "Sample", "endpoint": "/Samples", "schema": schema["id"]}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    (tmp_path / "rt.json").write_text(json.dumps(rt))
    reg = load_registry([tmp_path / "s.json"], [tmp_path / "rt.json"])
    return reg.resource_type("Sample")


def test_integer_decimal_datetime_binary(tmp_path: Any) -> None:
    rt = _custom_types_registry(tmp_path)
    out = normalize_resource(
        rt,
        {
            "key": "k",
            "count": 7,
            "ratio": 2,
            "at": "2011-05-13T04:42:34.120+02:00",
            "blob": "aGVsbG8=",
            "link": "https://example.com/x",
            "flags": [True, "false"],
        },
    )
    assert out["count"] == 7
    assert out["ratio"] == 2.0 and isinstance(out["ratio"], float)
    assert out["at"] == "2011-05-13T02:42:34.12Z"
    assert out["blob"] == "aGVsbG8="
    assert out["flags"] == [True, False]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"count": 1.5}, "'count' must be an integer, got a number"),
        ({"count": True}, "'count' must be an integer, got a boolean"),
        ({"count": "7"}, "'count' must be an integer, got a string"),
        ({"count": 2**70}, "64-bit"),
        ({"ratio": "1.5"}, "'ratio' must be a decimal number"),
        ({"ratio": False}, "'ratio' must be a decimal number"),
        ({"at": "2011-05-13"}, "'at' must be an xsd:dateTime"),
        ({"at": "yesterday"}, "'at' must be an xsd:dateTime"),
        ({"at": "2011-02-30T00:00:00Z"}, "'at' must be an xsd:dateTime"),
        ({"at": 1305261754}, "'at' must be a dateTime string"),
        ({"blob": "aGVsbG8"}, "'blob' must be base64"),
    ]
    for bad, detail in cases:
        with pytest.raises(InvalidValue) as err:
            normalize_resource(rt, {"key": "k", **bad})
        assert detail in err.value.detail, bad


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2008-01-23T04:56:22Z", "2008-01-23T04:56:22Z"),
        ("2008-01-23t04:56:22z", "2008-01-23T04:56:22Z"),
        ("2008-01-23T04:56:22", "2008-01-23T04:56:22Z"),
        ("2008-01-23T04:56:22.000Z", "2008-01-23T04:56:22Z"),
        ("2008-01-23T04:56:22.5Z", "2008-01-23T04:56:22.5Z"),
        ("2008-01-23T04:56:22.123456789Z", "2008-01-23T04:56:22.123456Z"),
        ("2008-01-23T00:30:00+01:00", "2008-01-22T23:30:00Z"),
        ("2008-01-23T23:30:00-05:30", "2008-01-24T05:00:00Z"),
        ("2008-01-23 04:56:22Z", None),
        ("2008-01-23", None),
        ("2008-13-01T00:00:00Z", None),
        ("2008-01-23T04:56:22+0100", None),
        ("", None),
    ],
)
def test_normalize_datetime(text: str, expected: str | None) -> None:
    assert normalize_datetime(text) == expected


# ------------------------------------------------------------ names, schemas, structure


def test_attribute_names_any_case_canonical_out() -> None:
    body = {
        "Schemas": [USER_URN, ENTERPRISE_URN],
        "UserName": "bjensen",
        "Active": True,
        "DisplayName": "Babs",
        "NAME": {"GivenName": "Barbara", "familyname": "Jensen"},
        "Emails": [{"Value": "b@example.com", "Primary": True, "TYPE": "work"}],
        ENTERPRISE_URN.upper(): {"Manager": {"Value": "26118915"}, "EmployeeNumber": "701984"},
    }
    out = normalize_resource(user_type(), body)
    assert out == {
        "schemas": [USER_URN, ENTERPRISE_URN],
        "userName": "bjensen",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs",
        "active": True,
        "emails": [{"value": "b@example.com", "type": "work", "primary": True}],
        ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
    }
    assert list(out["name"]) == ["familyName", "givenName"]
    assert quirks.snapshot()["attribute_name_case"] >= 10


def test_same_attribute_twice_in_different_case() -> None:
    err = _error({"userName": "a", "USERNAME": "b"})
    assert isinstance(err, InvalidValue) and "'userName' is given more than once" in err.detail


def test_urn_qualified_top_level_keys() -> None:
    out = normalize_resource(
        user_type(),
        {
            f"{USER_URN}:userName": "bjensen",
            f"{ENTERPRISE_URN}:employeeNumber": "701984",
        },
    )
    assert out == {
        "schemas": [USER_URN, ENTERPRISE_URN],
        "userName": "bjensen",
        ENTERPRISE_URN: {"employeeNumber": "701984"},
    }


def test_unknown_attribute_error_or_ignore() -> None:
    err = _error(_user(favouriteColour="blue"))
    assert isinstance(err, InvalidValue)
    assert "Unknown attribute 'favouriteColour'" in err.detail
    err = _error(_user(name={"givenName": "B", "nickname": "x"}))
    assert "Unknown attribute 'name.nickname'" in err.detail
    err = _error(_user(**{ENTERPRISE_URN: {"badge": "1"}}))
    assert f"Unknown attribute '{ENTERPRISE_URN}:badge'" in err.detail
    out = normalize_resource(
        user_type(),
        _user(favouriteColour="blue", name={"givenName": "B", "nickname": "x"}),
        unknown="ignore",
    )
    assert out == {"schemas": [USER_URN], "userName": "bjensen", "name": {"givenName": "B"}}


def test_required_attributes() -> None:
    err = _error({"schemas": [USER_URN], "displayName": "x"})
    assert isinstance(err, InvalidValue) and "Missing required attribute: 'userName'" in err.detail
    err = _error({"schemas": [USER_URN], "userName": ""})
    assert "'userName'" in err.detail
    err = _error({"schemas": [USER_URN], "userName": None})
    assert "'userName'" in err.detail
    err = _error({"schemas": [GROUP_URN], "members": []}, rtype=group_type())
    assert "'displayName'" in err.detail


def test_required_sub_attributes_and_extensions(tmp_path: Any) -> None:
    rt = _custom_types_registry(tmp_path)
    with pytest.raises(InvalidValue, match=r"Missing required attribute 'part\.code'"):
        normalize_resource(rt, {"key": "k", "part": {"note": "n"}})
    assert normalize_resource(rt, {"key": "k", "part": {"code": "c"}})["part"] == {"code": "c"}


def test_primary_at_most_once() -> None:
    err = _error(
        _user(
            emails=[
                {"value": "a@example.com", "primary": True},
                {"value": "b@example.com", "primary": "True"},
            ]
        )
    )
    assert isinstance(err, InvalidValue)
    assert "'emails' has more than one value with 'primary' true" in err.detail
    out = normalize_resource(
        user_type(),
        _user(emails=[{"value": "a@example.com", "primary": True}, {"value": "b@example.com"}]),
    )
    assert len(out["emails"]) == 2


def test_free_text_values_are_accepted() -> None:
    # INTEROP: profileUrl/locale/timezone are advisory; canonicalValues are advisory.
    out = normalize_resource(
        user_type(),
        _user(
            profileUrl="GBIBIRLDUXJX",
            locale="XYZ",
            timezone="Europe/Kyiv",
            preferredLanguage="tlh",
            emails=[{"value": "x@example.com", "type": "custom-type"}],
        ),
    )
    assert out["profileUrl"] == "GBIBIRLDUXJX" and out["locale"] == "XYZ"
    assert out["emails"][0]["type"] == "custom-type"


def test_password_kept_as_given() -> None:
    out = normalize_resource(user_type(), _user(password="t1meMa$heen"))
    assert out["password"] == "t1meMa$heen"


def test_output_has_no_id_meta_and_schemas_reflect_extensions() -> None:
    out = normalize_resource(
        user_type(),
        {
            "schemas": [USER_URN, ENTERPRISE_URN],
            "id": "abc",
            "meta": {"resourceType": "User"},
            "userName": "bjensen",
            ENTERPRISE_URN: {},
        },
    )
    assert out == {"schemas": [USER_URN], "userName": "bjensen"}
    # An extension block without its URN in schemas still counts (schemas is recomputed).
    out = normalize_resource(
        user_type(), {"schemas": [USER_URN], "userName": "b", ENTERPRISE_URN: {"division": "d"}}
    )
    assert out["schemas"] == [USER_URN, ENTERPRISE_URN]


def test_schemas_must_be_a_list_of_strings() -> None:
    err = _error({"schemas": [1], "userName": "b"})
    assert isinstance(err, InvalidValue) and "'schemas'" in err.detail


# ---------------------------------------------------- INTEROP.md "Resources" tolerances


def test_interop_booleans_as_strings() -> None:
    out = normalize_resource(
        user_type(),
        _user(active="False", emails=[{"value": "b@example.com", "primary": "true"}]),
    )
    assert out["active"] is False
    assert out["emails"][0]["primary"] is True
    assert quirks.snapshot()["boolean_as_string"] == 2


def test_interop_null_values_mean_absent() -> None:
    out = normalize_resource(
        user_type(), _user(addresses=None, name={"givenName": "B", "middleName": None})
    )
    assert out == {"schemas": [USER_URN], "userName": "bjensen", "name": {"givenName": "B"}}
    assert quirks.snapshot()["null_value"] == 2


def test_interop_empty_arrays_mean_absent() -> None:
    out = normalize_resource(
        group_type(), {"schemas": [GROUP_URN], "displayName": "G", "members": []}
    )
    assert out == {"schemas": [GROUP_URN], "displayName": "G"}
    assert "null_value" not in quirks.snapshot()


def test_interop_okta_groups_readonly_ignored() -> None:
    # Okta create body: plaintext password, readOnly groups: [].
    body = {
        "schemas": [USER_URN],
        "userName": "isaac.brock@example.com",
        "name": {"givenName": "Isaac", "familyName": "Brock"},
        "emails": [{"primary": True, "value": "isaac.brock@example.com", "type": "work"}],
        "displayName": "Isaac Brock",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }
    out = normalize_resource(user_type(), body)
    assert "groups" not in out
    assert out["password"] == "1mz050nq"
    assert list(out) == [
        "schemas",
        "externalId",
        "userName",
        "name",
        "displayName",
        "locale",
        "active",
        "password",
        "emails",
    ]
    assert "readonly_attribute_ignored" not in quirks.snapshot()
    out = normalize_resource(user_type(), _user(groups=[{"value": "g1"}]))
    assert "groups" not in out
    assert quirks.snapshot()["readonly_attribute_ignored"] == 1


def test_interop_unknown_schema_urns_ignored() -> None:
    body = {
        "schemas": [
            GROUP_URN,
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group",
        ],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Group1DisplayName",
        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group": {
            "description": "x"
        },
        "members": [],
    }
    out = normalize_resource(group_type(), body)
    assert out == {
        "schemas": [GROUP_URN],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Group1DisplayName",
    }
    assert quirks.snapshot()["unknown_schema_urn"] == 2


def test_interop_misspelt_enterprise_urn_ignored() -> None:
    bad = "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"
    out = normalize_resource(
        user_type(),
        {"schemas": [USER_URN, bad], "userName": "bjensen", bad: {"department": "x"}},
    )
    assert out == {"schemas": [USER_URN], "userName": "bjensen"}
    assert quirks.snapshot()["unknown_schema_urn"] == 2


def test_interop_entra_create_user_body() -> None:
    # Entra ID provisioning "Create User" request (Develop a SCIM endpoint, 9.1).
    body = {
        "UserName": "UserName123",
        "Active": True,
        "DisplayName": "BobIsAmazing",
        "schemas": [USER_URN, ENTERPRISE_URN],
        "externalId": "${Guid}",
        "name": {"familyName": "LastName", "givenName": "FirstName"},
        "emails": [{"Primary": True, "type": "work", "value": "Testing@bob.com"}],
        "meta": {"resourceType": "User"},
        "roles": [],
    }
    out = normalize_resource(user_type(), body)
    assert out == {
        "schemas": [USER_URN],
        "externalId": "${Guid}",
        "userName": "UserName123",
        "name": {"familyName": "LastName", "givenName": "FirstName"},
        "displayName": "BobIsAmazing",
        "active": True,
        "emails": [{"value": "Testing@bob.com", "type": "work", "primary": True}],
    }


def test_interop_single_value_for_multi_valued_and_list_for_single() -> None:
    out = normalize_resource(
        user_type(),
        _user(
            emails={"value": "b@example.com"},
            **{ENTERPRISE_URN: {"manager": [{"value": "m1", "$ref": "../Users/m1"}]}},
        ),
    )
    assert out["emails"] == [{"value": "b@example.com"}]
    assert out[ENTERPRISE_URN]["manager"] == {"value": "m1", "$ref": "../Users/m1"}
    snap = quirks.snapshot()
    assert snap["single_value_for_multi_valued"] == 1
    assert snap["single_element_list_for_single_valued"] == 1


def test_interop_group_members_with_null_ref_and_display() -> None:
    body = {
        "schemas": [GROUP_URN],
        "displayName": "Group A",
        "members": [{"$ref": None, "value": "u1", "display": "User One"}],
    }
    out = normalize_resource(group_type(), body)
    assert out["members"] == [{"value": "u1", "display": "User One"}]
    assert quirks.snapshot() == {"member_ref_null": 1}


def test_missing_schemas_is_tolerated() -> None:
    assert normalize_resource(user_type(), {"userName": "b"})["schemas"] == [USER_URN]
    assert quirks.snapshot()["missing_schemas"] == 1


# ---------------------------------------------------------------------- normalize_value


def test_normalize_value_multi_and_single() -> None:
    rt = user_type()
    emails = rt.lookup(None, "emails")
    assert emails is not None
    assert normalize_value(rt, emails, {"Value": "a@example.com", "primary": "true"}) == [
        {"value": "a@example.com", "primary": True}
    ]
    assert normalize_value(rt, emails, [{"value": "a"}, {"value": "b"}]) == [
        {"value": "a"},
        {"value": "b"},
    ]
    assert normalize_value(rt, emails, []) == []
    value = emails.sub("value")
    assert value is not None
    assert normalize_value(rt, value, "x@example.com") == "x@example.com"
    with pytest.raises(InvalidValue, match=r"'emails\.value' must be a string"):
        normalize_value(rt, value, 3)
    manager = rt.lookup(ENTERPRISE_URN, "manager")
    assert manager is not None
    assert normalize_value(rt, manager, {"Value": "m", "displayName": "ro"}) == {"value": "m"}
    assert normalize_value(rt, manager, None) is None
    with pytest.raises(InvalidValue, match="Unknown attribute"):
        normalize_value(rt, manager, {"boss": "m"})
    assert normalize_value(rt, manager, {"boss": "m"}, unknown="ignore") is None
    active = rt.lookup(None, "active")
    assert active is not None and normalize_value(rt, active, "FALSE") is False


# -------------------------------------------------------------------- merge_for_replace


def test_merge_for_replace_carries_readonly_and_writeonly() -> None:
    rt = user_type()
    existing = {
        "schemas": [USER_URN],
        "id": "u1",
        "userName": "bjensen",
        "password": "$argon2id$hash",
        "displayName": "Old",
        "groups": [{"value": "g1", "display": "G"}],
        "meta": {"resourceType": "User", "version": 'W/"1"'},
    }
    new = {
        "schemas": [USER_URN],
        "id": "other",
        "userName": "bjensen",
        "nickName": "Babs",
        "groups": [],
        "meta": {"resourceType": "Nope"},
    }
    out = merge_for_replace(rt, existing, new)
    assert out == {
        "schemas": [USER_URN],
        "id": "u1",
        "userName": "bjensen",
        "nickName": "Babs",
        "password": "$argon2id$hash",
        "groups": [{"value": "g1", "display": "G"}],
        "meta": {"resourceType": "User", "version": 'W/"1"'},
    }
    assert list(out)[:2] == ["schemas", "id"] and list(out)[-1] == "meta"
    # displayName omitted from the PUT body: removed (PUT is a true replace).
    assert "displayName" not in out
    # A new password replaces the stored one.
    out = merge_for_replace(rt, existing, {"userName": "bjensen", "password": "new"})
    assert out["password"] == "new"


def test_merge_for_replace_immutable(tmp_path: Any) -> None:
    rt = _custom_types_registry(tmp_path)
    existing: dict[str, Any] = {
        "schemas": [rt.schema.id],
        "id": "s1",
        "key": "k",
        "tag": "T1",
        "computed": "c",
    }
    # Omitted: kept. Same value: fine. Different: mutability error.
    assert merge_for_replace(rt, existing, {"key": "k2"})["tag"] == "T1"
    out = merge_for_replace(rt, existing, {"key": "k2", "tag": "T1", "computed": "x"})
    assert out["tag"] == "T1" and out["computed"] == "c"
    with pytest.raises(Mutability) as err:
        merge_for_replace(rt, existing, {"key": "k", "tag": "T2"})
    assert err.value.scim_type == "mutability" and err.value.status == 400
    assert "'tag'" in err.value.detail
    # Not yet set: may be set by the PUT.
    assert merge_for_replace(rt, {"key": "k"}, {"key": "k", "tag": "T9"})["tag"] == "T9"
    # Inside a single-valued complex attribute.
    existing["part"] = {"code": "c", "serial": "S1", "secret": "x"}
    out = merge_for_replace(rt, existing, {"key": "k", "part": {"code": "d"}})
    assert out["part"] == {"code": "d", "serial": "S1", "secret": "x"}
    with pytest.raises(Mutability, match=r"'part\.serial'"):
        merge_for_replace(rt, existing, {"key": "k", "part": {"code": "d", "serial": "S2"}})


def test_merge_for_replace_group_members_not_immutable_as_a_whole() -> None:
    rt = group_type()
    existing = {
        "schemas": [GROUP_URN],
        "id": "g1",
        "displayName": "G",
        "members": [{"value": "u1"}],
    }
    out = merge_for_replace(rt, existing, {"displayName": "G2", "members": [{"value": "u2"}]})
    assert out["members"] == [{"value": "u2"}] and out["id"] == "g1"
    out = merge_for_replace(rt, existing, {"displayName": "G2"})
    assert "members" not in out


def test_merge_for_replace_validates_new() -> None:
    with pytest.raises(InvalidValue, match="userName"):
        merge_for_replace(user_type(), {"id": "u1", "userName": "b"}, {"displayName": "x"})


# ----------------------------------------------------------------------- check_required


def test_check_required() -> None:
    rt = user_type()
    check_required(rt, {"schemas": [USER_URN], "id": "u1", "userName": "b"})
    with pytest.raises(InvalidValue, match="'userName'"):
        check_required(rt, {"schemas": [USER_URN], "id": "u1", "displayName": "b"})
    with pytest.raises(InvalidValue, match="'displayName'"):
        check_required(group_type(), {"schemas": [GROUP_URN], "id": "g", "displayName": ""})


def test_check_required_extension_and_sub_attributes(tmp_path: Any) -> None:
    rt = _custom_types_registry(tmp_path)
    check_required(rt, {"key": "k", "part": {"code": "c"}})
    with pytest.raises(InvalidValue, match=r"'part\.code'"):
        check_required(rt, {"key": "k", "part": {"note": "n"}})
