"""The bundled RFC 7643 schemas and the loader of custom schema / resource type files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scimd.schema import SchemaLoadError, builtin_registry, load_registry
from scimd.schema.model import COMMON_SCHEMA
from tests._schema_helpers import ENTERPRISE_URN, GROUP_URN, USER_URN, group_type, user_type

CUSTOM_URN = "urn:example:params:scim:schemas:extension:acme:2.0:User"
DEVICE_URN = "urn:example:params:scim:schemas:core:2.0:Device"


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _custom_extension() -> dict[str, Any]:
    return {
        "id": CUSTOM_URN,
        "name": "AcmeUser",
        "description": "Acme extension",
        "attributes": [
            {"name": "badgeNumber", "type": "integer", "required": True},
            {"name": "clearance", "type": "string", "canonicalValues": ["low", "high"]},
            {
                "name": "badge",
                "type": "complex",
                "subAttributes": [
                    {"name": "issued", "type": "dateTime"},
                    {"name": "serial", "type": "string", "mutability": "immutable"},
                ],
            },
        ],
    }


def _device_schema() -> dict[str, Any]:
    return {
        "id": DEVICE_URN,
        "name": "Device",
        "description": "A device",
        "attributes": [
            {"name": "serial", "type": "string", "required": True, "uniqueness": "server"},
            {"name": "owner", "type": "reference", "referenceTypes": ["User"]},
        ],
    }


def test_builtin_schemas_and_resource_types() -> None:
    reg = builtin_registry()
    assert reg is builtin_registry()  # compiled once
    assert {s.id for s in reg.schemas.values()} == {
        USER_URN,
        GROUP_URN,
        ENTERPRISE_URN,
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
        "urn:ietf:params:scim:schemas:core:2.0:ResourceType",
        "urn:ietf:params:scim:schemas:core:2.0:Schema",
    }
    assert sorted(reg.resource_types) == ["group", "user"]
    user = user_type()
    assert user.endpoint == "/Users"
    assert user.schema.id == USER_URN
    assert user.extensions[ENTERPRISE_URN.lower()][1] is False
    assert reg.by_endpoint("users") is user
    assert reg.by_endpoint("/GROUPS") is group_type()


def test_user_schema_characteristics() -> None:
    user = user_type()
    names = [a.name for a in user.schema.order]
    assert names == [
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "password",
        "emails",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509Certificates",
    ]
    user_name = user.lookup(None, "USERNAME")
    assert user_name is not None
    assert (user_name.required, user_name.case_exact, user_name.uniqueness) == (
        True,
        False,
        "server",
    )
    password = user.lookup(None, "password")
    assert password is not None
    assert (password.mutability, password.returned) == ("writeOnly", "never")
    groups = user.lookup(None, "groups")
    assert groups is not None and groups.mutability == "readOnly" and groups.multi_valued
    assert [s.name for s in groups.sub_order] == ["value", "$ref", "display", "type"]
    assert all(s.mutability == "readOnly" for s in groups.sub_order)
    emails = user.lookup(USER_URN.upper(), "emails")
    assert emails is not None
    primary = emails.sub("PRIMARY")
    assert primary is not None and primary.type == "boolean"
    assert primary.parent is emails and primary.path == "emails.primary"
    assert primary.schema == USER_URN
    x509 = user.lookup(None, "x509Certificates")
    assert x509 is not None and x509.sub("value") is not None
    assert x509.sub_attributes["value"].type == "binary"
    # The RFC's descriptions are kept.
    assert user_name.description.startswith("Unique identifier for the User")


def test_group_and_enterprise_characteristics() -> None:
    group = group_type()
    display_name = group.lookup(None, "displayName")
    assert display_name is not None
    assert (display_name.required, display_name.uniqueness) == (True, "server")
    members = group.lookup(None, "members")
    assert members is not None and members.multi_valued
    assert [s.name for s in members.sub_order] == ["value", "$ref", "display", "type"]
    value = members.sub("value")
    assert value is not None and value.mutability == "immutable" and value.case_exact
    ref = members.sub("$ref")
    assert ref is not None and ref.type == "reference" and ref.reference_types == ("User", "Group")

    user = user_type()
    manager = user.lookup(ENTERPRISE_URN, "manager")
    assert manager is not None and manager.schema == ENTERPRISE_URN
    assert [s.name for s in manager.sub_order] == ["value", "$ref", "displayName"]
    display = manager.sub("displayname")
    assert display is not None and display.mutability == "readOnly"
    assert [a.name for a in user.schema_for_uri(ENTERPRISE_URN).order] == [  # type: ignore[union-attr]
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "manager",
    ]


def test_common_attributes() -> None:
    user = user_type()
    assert user.common.id == COMMON_SCHEMA
    rid = user.lookup(None, "ID")
    assert rid is not None
    assert (rid.case_exact, rid.mutability, rid.returned, rid.uniqueness) == (
        True,
        "readOnly",
        "always",
        "server",
    )
    external = user.lookup(None, "externalId")
    assert external is not None and external.case_exact and external.mutability == "readWrite"
    meta = user.lookup(None, "meta")
    assert meta is not None and meta.mutability == "readOnly"
    assert [s.name for s in meta.sub_order] == [
        "resourceType",
        "created",
        "lastModified",
        "location",
        "version",
    ]
    assert meta.sub("lastModified").type == "dateTime"  # type: ignore[union-attr]
    assert meta.sub_attributes["created"].path == "meta.created"


def test_discovery_documents() -> None:
    user = user_type()
    assert user.document == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "User Account",
        "schema": USER_URN,
        "schemaExtensions": [{"schema": ENTERPRISE_URN, "required": False}],
        "meta": {"resourceType": "ResourceType"},
    }
    assert group_type().document["schemaExtensions"] == []
    doc = user.schema.document
    assert doc["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
    assert doc["id"] == USER_URN and doc["name"] == "User"
    password = next(a for a in doc["attributes"] if a["name"] == "password")
    assert password["mutability"] == "writeOnly" and password["returned"] == "never"
    name = next(a for a in doc["attributes"] if a["name"] == "name")
    assert "caseExact" not in name and len(name["subAttributes"]) == 6
    # The served document is plain JSON.
    json.dumps(doc)
    spc = builtin_registry().schema("urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig")
    assert spc is not None and spc.attr("etag") is not None


def test_custom_extension_and_resource_type(tmp_path: Path) -> None:
    schemas = _write(tmp_path, "schemas.json", [_custom_extension(), _device_schema()])
    rts = _write(
        tmp_path,
        "rts.json",
        {
            "Resources": [
                {
                    "id": "User",
                    "name": "User",
                    "endpoint": "/Users",
                    "description": "User Account",
                    "schema": USER_URN,
                    "schemaExtensions": [
                        {"schema": ENTERPRISE_URN, "required": False},
                        {"schema": CUSTOM_URN, "required": True},
                    ],
                },
                {
                    "name": "Device",
                    "endpoint": "/Devices",
                    "description": "Devices",
                    "schema": DEVICE_URN,
                },
            ]
        },
    )
    reg = load_registry([schemas], [rts])
    assert reg is not builtin_registry()
    user = reg.resource_type("user")
    assert user is not None
    assert user.extensions[CUSTOM_URN.lower()][1] is True
    badge = user.lookup(CUSTOM_URN, "badge")
    assert badge is not None and badge.sub("serial").mutability == "immutable"  # type: ignore[union-attr]
    assert badge.sub_attributes["issued"].path == "badge.issued"
    device = reg.by_endpoint("/devices")
    assert device is not None and device.id == "Device" and device.name == "Device"
    assert device.lookup(None, "serial").uniqueness == "server"  # type: ignore[union-attr]
    assert device.lookup(None, "id") is not None  # common attributes everywhere
    assert reg.resource_type("group") is not None  # builtins not replaced stay
    # The builtin registry is untouched.
    assert CUSTOM_URN.lower() not in builtin_registry().resource_type("user").extensions  # type: ignore[union-attr]


def test_single_schema_document_per_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "device.json", _device_schema())
    reg = load_registry([path])
    assert reg.schema(DEVICE_URN) is not None
    assert reg.resource_type("User") is not None


@pytest.mark.parametrize(
    ("schema_doc", "reason"),
    [
        ({"id": "not a urn", "attributes": []}, "must be a URN"),
        ({"id": DEVICE_URN}, "missing 'attributes'"),
        ({"id": DEVICE_URN, "attributes": [{"name": "x", "type": "text"}]}, "'type' must be"),
        (
            {"id": DEVICE_URN, "attributes": [{"name": "a.b", "type": "string"}]},
            "invalid attribute",
        ),
        (
            {"id": DEVICE_URN, "attributes": [{"name": "x", "type": "complex"}]},
            "needs 'subAttributes'",
        ),
        (
            {
                "id": DEVICE_URN,
                "attributes": [
                    {
                        "name": "x",
                        "type": "string",
                        "subAttributes": [{"name": "y", "type": "string"}],
                    }
                ],
            },
            "only complex",
        ),
        (
            {
                "id": DEVICE_URN,
                "attributes": [{"name": "x", "type": "string"}, {"name": "X", "type": "integer"}],
            },
            "duplicate attribute",
        ),
        (
            {"id": DEVICE_URN, "attributes": [{"name": "x", "type": "string", "required": "yes"}]},
            "'required' must be true or false",
        ),
        (
            {
                "id": DEVICE_URN,
                "attributes": [{"name": "x", "type": "string", "returned": "maybe"}],
            },
            "'returned' must be one of",
        ),
        (
            {"id": DEVICE_URN, "attributes": [{"name": "x", "type": "string", "typo": 1}]},
            "unknown keys",
        ),
        ({"id": USER_URN, "attributes": []}, "defined twice"),
        ("just a string", "expected a schema object"),
    ],
)
def test_schema_file_errors(tmp_path: Path, schema_doc: Any, reason: str) -> None:
    path = _write(tmp_path, "bad.json", schema_doc)
    with pytest.raises(SchemaLoadError) as err:
        load_registry([path])
    assert reason in str(err.value)
    assert err.value.source == str(path)
    assert str(path) in str(err.value)


def test_bad_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"id": ', encoding="utf-8")
    with pytest.raises(SchemaLoadError, match="invalid JSON at line 1"):
        load_registry([path])
    with pytest.raises(SchemaLoadError, match="cannot read file"):
        load_registry([tmp_path / "absent.json"])
    assert issubclass(SchemaLoadError, ValueError)


@pytest.mark.parametrize(
    ("rt_doc", "reason"),
    [
        ({"name": "Device", "endpoint": "/Devices", "schema": "urn:x:nope"}, "unknown schema"),
        (
            {
                "name": "Device",
                "endpoint": "/Devices",
                "schema": DEVICE_URN,
                "schemaExtensions": [{"schema": "urn:x:nope", "required": False}],
            },
            "unknown extension schema",
        ),
        ({"name": "Device", "endpoint": "Devices", "schema": DEVICE_URN}, "'endpoint' must be"),
        ({"name": "Device", "endpoint": "/Schemas", "schema": DEVICE_URN}, "reserved"),
        ({"name": "Device", "endpoint": "/users", "schema": DEVICE_URN}, "share the endpoint"),
        ({"endpoint": "/Devices", "schema": DEVICE_URN}, "'name' must be"),
        (
            [
                {"name": "Device", "endpoint": "/Devices", "schema": DEVICE_URN},
                {"name": "device", "endpoint": "/Devices2", "schema": DEVICE_URN},
            ],
            "defined twice",
        ),
        (
            {
                "name": "Device",
                "endpoint": "/Devices",
                "schema": DEVICE_URN,
                "schemaExtensions": [{"schema": DEVICE_URN}],
            },
            "listed twice",
        ),
    ],
)
def test_resource_type_file_errors(tmp_path: Path, rt_doc: Any, reason: str) -> None:
    schemas = _write(tmp_path, "device.json", _device_schema())
    rts = _write(tmp_path, "rts.json", rt_doc)
    with pytest.raises(SchemaLoadError) as err:
        load_registry([schemas], [rts])
    assert reason in str(err.value)
