"""PATCH failures: message syntax, paths, values, mutability, required attributes,
atomicity. Each names the status and scimType RFC 7644 3.12 prescribes."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

import scimd.patch
from scimd import quirks
from scimd.errors import InvalidPath, InvalidSyntax, NoTarget, ScimError
from scimd.patch import apply_patch, parse_patch_request
from scimd.schema.loader import load_registry
from scimd.schema.model import ResourceType
from tests._patch_helpers import (
    ENTERPRISE,
    GROUP,
    PATCH_OP,
    USER,
    body,
    counts_quirk,
    fails,
    group,
    run,
    user,
)

# ---- the PatchOp message


@pytest.mark.parametrize(
    "message",
    [
        [],
        "add",
        None,
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "Operations": []},
        {"schemas": "nope", "Operations": [{"op": "remove", "path": "title"}]},
        {"schemas": [PATCH_OP]},
        {"schemas": [PATCH_OP], "Operations": []},
        {"schemas": [PATCH_OP], "Operations": {"op": "add"}},
        {"schemas": [PATCH_OP], "Operations": ["add"]},
        {"schemas": [PATCH_OP], "Operations": [{"path": "title", "value": "x"}]},
        {"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "title", "value": "x"}]},
        {"schemas": [PATCH_OP], "Operations": [{"op": 1, "path": "title", "value": "x"}]},
        {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title"}]},
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title"}]},
    ],
)
def test_malformed_message_is_invalid_syntax(message: Any) -> None:
    with pytest.raises(InvalidSyntax):
        parse_patch_request(USER, message)


def test_message_without_schemas_is_accepted_and_counted() -> None:
    with counts_quirk("missing_schemas"):
        ops = parse_patch_request(USER, {"Operations": [{"op": "remove", "path": "title"}]})
    assert [op.op for op in ops] == ["remove"]


def test_message_keys_in_any_case() -> None:
    ops = parse_patch_request(
        USER,
        {"Schemas": [PATCH_OP], "operations": [{"OP": "add", "Path": "title", "Value": "x"}]},
    )
    assert (ops[0].op, ops[0].value) == ("add", "x")


def test_parsed_operation_has_resolved_path() -> None:
    (op,) = parse_patch_request(
        USER, body({"op": "Replace", "path": "NAME.GIVENNAME", "value": "x"})
    )
    assert op.op == "replace"
    assert op.path is not None
    assert (op.path.attr.attr, op.path.attr.sub) == ("name", "givenName")


def test_remove_without_path_is_no_target() -> None:
    with pytest.raises(NoTarget):
        parse_patch_request(USER, body({"op": "remove"}))


def test_empty_path_means_no_path() -> None:
    (op,) = parse_patch_request(USER, body({"op": "add", "path": "", "value": {"title": "x"}}))
    assert op.path is None


@pytest.mark.parametrize(
    "path",
    [
        'emails[type eq "work"',
        "emails[type eq]",
        "nosuchattribute",
        "name.nosuch",
        "urn:example:unknown:2.0:User:foo",
        'emails[nosuch eq "x"].value',
        "",
    ],
)
def test_bad_path_is_invalid_path(path: str) -> None:
    if path == "":
        path = 42  # type: ignore[assignment]
    with pytest.raises(InvalidPath):
        parse_patch_request(USER, body({"op": "replace", "path": path, "value": "x"}))


def test_unknown_attribute_path_ignored_when_asked() -> None:
    message = body(
        {"op": "replace", "path": "nosuchattribute", "value": "x"},
        {"op": "replace", "path": "title", "value": "T"},
    )
    ops = parse_patch_request(USER, message, unknown="ignore")
    assert len(ops) == 1
    # a malformed path is still an error
    with pytest.raises(InvalidPath):
        parse_patch_request(
            USER, body({"op": "add", "path": "emails[", "value": 1}), unknown="ignore"
        )


def test_no_path_value_must_be_an_object() -> None:
    fails(USER, user(), body({"op": "add", "value": "just text"}), 400, "invalidValue")
    fails(USER, user(), body({"op": "replace", "value": ["a"]}), 400, "invalidValue")


def test_no_path_unknown_attribute() -> None:
    message = body({"op": "replace", "value": {"nosuch": 1, "title": "T"}})
    fails(USER, user(), message, 400, "invalidPath")
    result = run(USER, user(), message, unknown="ignore")
    assert result.resource["title"] == "T"


# ---- values


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "active", "value": "maybe"},
        {"op": "replace", "path": "userName", "value": 42},
        {"op": "add", "path": "emails", "value": [{"value": 5}]},
        {"op": "add", "path": "emails", "value": [{"value": "a@x", "colour": "red"}]},
        {"op": "add", "path": "name", "value": "text"},
        {"op": "add", "path": "name", "value": [{"givenName": "a"}, {"givenName": "b"}]},
        {"op": "add", "path": "displayName", "value": None},
        {"op": "add", "path": "name.givenName", "value": None},
        {
            "op": "replace",
            "path": "emails",
            "value": [{"value": "a@x", "primary": True}, {"value": "b@x", "primary": True}],
        },
        {"op": "replace", "path": "emails.primary", "value": True},
        {"op": "add", "path": "roles", "value": "{not json"},
    ],
)
def test_bad_value_is_invalid_value(operation: dict[str, Any]) -> None:
    fails(USER, user(), body(operation), 400, "invalidValue")


def test_value_filter_on_single_valued_attribute_is_invalid_path() -> None:
    with pytest.raises(ScimError) as info:
        run(
            USER,
            user(),
            body({"op": "replace", "path": 'name[givenName eq "x"].familyName', "value": "y"}),
        )
    assert info.value.scim_type == "invalidPath"


# ---- mutability (RFC 7644 3.5.2: readOnly never, immutable only when unset)


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "id", "value": "other"},
        {"op": "remove", "path": "id"},
        {"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"},
        {"op": "add", "path": "groups", "value": [{"value": "g"}]},
        {"op": "replace", "path": f"{ENTERPRISE}:manager.displayName", "value": "Boss"},
        {"op": "replace", "value": {"meta": {"version": 'W/"9"'}}},
    ],
)
def test_read_only_target_is_mutability(operation: dict[str, Any]) -> None:
    fails(USER, user(), body(operation), 400, "mutability")


def test_immutable_sub_attribute_of_a_member() -> None:
    stored = group()
    stored["members"] = [{"value": "a", "display": "Ann"}]
    change = body({"op": "replace", "path": 'members[value eq "a"].display', "value": "Other"})
    fails(GROUP, stored, change, 400, "mutability")
    same = body({"op": "replace", "path": 'members[value eq "a"].display', "value": "Ann"})
    assert run(GROUP, stored, same).changed == frozenset()
    remove = body({"op": "remove", "path": 'members[value eq "a"].display'})
    fails(GROUP, stored, remove, 400, "mutability")
    retarget = body({"op": "replace", "path": 'members[value eq "a"]', "value": {"value": "b"}})
    fails(GROUP, stored, retarget, 400, "mutability")


DEVICE_SCHEMA = {
    "id": "urn:example:params:scim:schemas:2.0:Device",
    "name": "Device",
    "description": "A test schema with immutable and required attributes",
    "attributes": [
        {
            "name": "deviceName",
            "type": "string",
            "multiValued": False,
            "required": True,
            "mutability": "readWrite",
        },
        {
            "name": "serialNumber",
            "type": "string",
            "multiValued": False,
            "required": False,
            "mutability": "immutable",
        },
        {
            "name": "tags",
            "type": "string",
            "multiValued": True,
            "required": False,
            "mutability": "readWrite",
        },
    ],
}
DEVICE_TYPE = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
    "id": "Device",
    "name": "Device",
    "endpoint": "/Devices",
    "description": "Devices",
    "schema": "urn:example:params:scim:schemas:2.0:Device",
}


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> ResourceType:
    base: Path = tmp_path_factory.mktemp("device")
    (base / "schema.json").write_text(json.dumps(DEVICE_SCHEMA))
    (base / "rt.json").write_text(json.dumps(DEVICE_TYPE))
    registry = load_registry([base / "schema.json"], [base / "rt.json"])
    rtype = registry.resource_type("Device")
    assert rtype is not None
    return rtype


def stored_device(**extra: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:example:params:scim:schemas:2.0:Device"],
        "id": "d1",
        "deviceName": "laptop",
        **extra,
        "meta": {"resourceType": "Device", "version": 'W/"1"'},
    }


def test_immutable_may_be_added_when_unset(device: ResourceType) -> None:
    for kind in ("add", "replace"):
        message = body({"op": kind, "path": "serialNumber", "value": "SN-1"})
        assert run(device, stored_device(), message).resource["serialNumber"] == "SN-1"


def test_immutable_with_a_value_cannot_change(device: ResourceType) -> None:
    stored = stored_device(serialNumber="SN-1")
    for kind in ("add", "replace"):
        fails(
            device,
            stored,
            body({"op": kind, "path": "serialNumber", "value": "SN-2"}),
            400,
            "mutability",
        )
    fails(device, stored, body({"op": "remove", "path": "serialNumber"}), 400, "mutability")
    fails(
        device,
        stored,
        body({"op": "replace", "value": {"serialNumber": "SN-2"}}),
        400,
        "mutability",
    )
    same = run(device, stored, body({"op": "replace", "path": "serialNumber", "value": "SN-1"}))
    assert same.changed == frozenset()


def test_simple_multi_valued_attribute(device: ResourceType) -> None:
    stored = stored_device(tags=["a", "b"])
    added = run(device, stored, body({"op": "add", "path": "tags", "value": ["b", "c"]}))
    assert added.resource["tags"] == ["a", "b", "c"]
    removed = run(device, stored, body({"op": "remove", "path": "tags", "value": ["a"]}))
    assert removed.resource["tags"] == ["b"]


# ---- required attributes


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "userName"},
        {"op": "replace", "path": "userName", "value": None},
        {"op": "replace", "value": {"userName": None}},
    ],
)
def test_removing_a_required_attribute_is_invalid_value(operation: dict[str, Any]) -> None:
    # RFC 7644 3.12: invalidValue is "A required value was missing".
    fails(USER, user(), body(operation), 400, "invalidValue")


def test_required_attribute_removed_then_added_in_one_request() -> None:
    message = body(
        {"op": "remove", "path": "userName"},
        {"op": "add", "path": "userName", "value": "new@example.com"},
    )
    assert run(USER, user(), message).resource["userName"] == "new@example.com"


def test_group_display_name_is_required() -> None:
    fails(GROUP, group(), body({"op": "remove", "path": "displayName"}), 400, "invalidValue")


def test_custom_required_attribute(device: ResourceType) -> None:
    fails(
        device, stored_device(), body({"op": "remove", "path": "deviceName"}), 400, "invalidValue"
    )


# ---- atomicity (RFC 7644 3.5.2: all or nothing)


def test_failing_second_operation_applies_nothing() -> None:
    stored = user()
    message = body(
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "add", "path": "emails", "value": [{"value": "new@x.org"}]},
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Changed"},
        {"op": "replace", "path": "active", "value": "not a boolean"},
    )
    fails(USER, stored, message, 400, "invalidValue")  # also asserts `stored` is untouched
    assert stored == user()


def test_failing_operation_emits_no_member_changes() -> None:
    message = body(
        {"op": "add", "path": "members", "value": [{"value": "a"}]},
        {"op": "replace", "path": "id", "value": "x"},
    )
    ops = parse_patch_request(GROUP, message)
    with pytest.raises(ScimError):
        apply_patch(GROUP, group(), ops, members_external=True)


def test_result_does_not_alias_the_input() -> None:
    stored = user()
    result = run(USER, stored, body({"op": "add", "path": "emails", "value": [{"value": "n@x"}]}))
    result.resource["emails"][0]["value"] = "mutated"
    result.resource[ENTERPRISE] = {}
    assert stored == user()


def test_later_operation_does_not_change_elements_kept_by_an_earlier_one() -> None:
    stored = user()
    message = body(
        {"op": "remove", "path": "emails", "value": [{"value": "bjensen@example.com"}]},
        {"op": "replace", "path": 'emails[type eq "home"].value', "value": "new@home.org"},
    )
    result = run(USER, stored, message)  # run() asserts `stored` is unchanged
    assert result.resource["emails"] == [{"value": "new@home.org", "type": "home"}]


def test_no_path_null_extension_removes_it() -> None:
    result = run(USER, user(), body({"op": "replace", "value": {ENTERPRISE: None}}))
    assert ENTERPRISE not in result.resource
    assert ENTERPRISE not in result.resource["schemas"]


def test_operations_are_reusable() -> None:
    # the engine must not mutate the parsed operations' values
    ops = parse_patch_request(
        USER, body({"op": "add", "path": 'emails[type eq "x"].primary', "value": True})
    )
    first = apply_patch(USER, user(), ops).resource
    second = apply_patch(USER, user(), ops).resource
    assert first == second


# ---- quirks used by the engine are registered


def test_every_quirk_name_used_by_the_engine_is_registered() -> None:
    source = Path(scimd.patch.__file__).read_text(encoding="utf-8")
    names = {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "_quirk"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert names
    # patch_empty_path is counted once scimd.quirks registers it
    assert names - set(quirks.QUIRKS) <= {"patch_empty_path"}
