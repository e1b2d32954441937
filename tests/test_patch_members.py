"""Group membership PATCH: MemberChange translation (members_external) and needs_members."""

from __future__ import annotations

from typing import Any

import pytest

from scimd.backend import MemberChange
from scimd.patch import apply_patch, needs_members, parse_patch_request
from tests._patch_helpers import GROUP, USER, body, fails, group, run


def ops(*operations: dict[str, Any]) -> list[Any]:
    return parse_patch_request(GROUP, body(*operations))


# ---- needs_members


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "members", "value": [{"value": "a"}]},
        {"op": "replace", "path": "members", "value": [{"value": "a"}]},
        {"op": "remove", "path": "members"},
        {"op": "remove", "path": "members", "value": [{"value": "a"}]},
        {"op": "remove", "path": 'members[value eq "a"]'},
        {"op": "remove", "path": 'members[value eq "a" or value eq "b" or value eq "c"]'},
        {"op": "add", "value": {"members": [{"value": "a"}], "displayName": "x"}},
        {"op": "replace", "value": {"members": [{"value": "a"}]}},
        {"op": "replace", "path": "displayName", "value": "x"},
    ],
)
def test_expressible_member_operations(operation: dict[str, Any]) -> None:
    assert needs_members(GROUP, ops(operation)) is False


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": 'members[display eq "x"]'},
        {"op": "remove", "path": 'members[value eq "a" and type eq "User"]'},
        {"op": "remove", "path": 'members[value sw "a"]'},
        {"op": "replace", "path": 'members[value eq "x"].display', "value": "X"},
        {"op": "replace", "path": 'members[value eq "x"]', "value": {"value": "y"}},
        {"op": "add", "path": 'members[value eq "x"].display', "value": "X"},
        {"op": "remove", "path": "members.display"},
    ],
)
def test_member_operations_that_need_loaded_members(operation: dict[str, Any]) -> None:
    assert needs_members(GROUP, ops(operation)) is True


def test_needs_members_is_false_for_types_without_members() -> None:
    user_ops = parse_patch_request(USER, body({"op": "remove", "path": 'emails[type eq "x"]'}))
    assert needs_members(USER, user_ops) is False


def test_inexpressible_operation_with_members_external_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="needs_members"):
        apply_patch(
            GROUP,
            group(),
            ops({"op": "remove", "path": 'members[display eq "x"]'}),
            members_external=True,
        )


# ---- translation, one test per form


def external(
    *operations: dict[str, Any],
) -> tuple[list[MemberChange], dict[str, Any], frozenset[str]]:
    result = run(GROUP, group(), body(*operations), members_external=True)
    assert "members" not in result.resource  # never read or written
    return result.member_changes, result.resource, result.changed


def test_add_translates_to_add() -> None:
    changes, _, changed = external(
        {"op": "add", "path": "members", "value": [{"value": "a", "display": "A"}, {"value": "b"}]}
    )
    assert changes == [
        MemberChange("add", members=({"value": "a", "display": "A"}, {"value": "b"}))
    ]
    assert changed == {"members"}


def test_add_deduplicates_within_the_request() -> None:
    changes, _, _ = external(
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "a"}]}
    )
    assert changes == [MemberChange("add", members=({"value": "a"},))]


def test_add_of_nothing_emits_nothing() -> None:
    changes, _, changed = external({"op": "add", "path": "members", "value": []})
    assert changes == []
    assert changed == frozenset()


def test_replace_translates_to_set() -> None:
    changes, _, _ = external({"op": "replace", "path": "members", "value": [{"value": "a"}]})
    assert changes == [MemberChange("set", members=({"value": "a"},))]


@pytest.mark.parametrize("value", [[], None])
def test_replace_with_nothing_translates_to_clear(value: Any) -> None:
    changes, _, _ = external({"op": "replace", "path": "members", "value": value})
    assert changes == [MemberChange("clear")]


def test_remove_without_value_translates_to_clear() -> None:
    changes, _, _ = external({"op": "remove", "path": "members"})
    assert changes == [MemberChange("clear")]


def test_remove_with_value_list_translates_to_remove() -> None:
    changes, _, _ = external(
        {"op": "remove", "path": "members", "value": [{"value": "a"}, {"value": "b"}]}
    )
    assert changes == [MemberChange("remove", values=("a", "b"))]


def test_remove_by_or_filter_translates_to_remove() -> None:
    changes, _, _ = external({"op": "remove", "path": 'members[value eq "a" or value eq "b"]'})
    assert changes == [MemberChange("remove", values=("a", "b"))]


def test_core_urn_qualified_members_path() -> None:
    changes, _, _ = external(
        {
            "op": "add",
            "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members",
            "value": [{"value": "a"}],
        }
    )
    assert changes == [MemberChange("add", members=({"value": "a"},))]


def test_no_path_add_with_members_and_other_attributes() -> None:
    changes, res, changed = external(
        {"op": "add", "value": {"displayName": "New name", "members": [{"value": "a"}]}}
    )
    assert changes == [MemberChange("add", members=({"value": "a"},))]
    assert res["displayName"] == "New name"
    assert changed == {"displayName", "members"}


def test_no_path_replace_with_members_translates_to_set() -> None:
    changes, _, _ = external({"op": "replace", "value": {"members": [{"value": "a"}]}})
    assert changes == [MemberChange("set", members=({"value": "a"},))]


def test_changes_keep_request_order() -> None:
    changes, _, _ = external(
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [{"value": "a"}]},
        {"op": "remove", "path": 'members[value eq "a"]'},
    )
    assert [c.op for c in changes] == ["clear", "add", "remove"]


def test_member_without_value_is_invalid_value() -> None:
    message = body({"op": "add", "path": "members", "value": [{"display": "nobody"}]})
    fails(GROUP, group(), message, 400, "invalidValue", members_external=True)
    fails(GROUP, group(), message, 400, "invalidValue")


def test_member_value_must_be_a_string() -> None:
    message = body({"op": "add", "path": "members", "value": [{"value": 42}]})
    fails(GROUP, group(), message, 400, "invalidValue", members_external=True)


# ---- members in the dict (members_external=False)


def test_in_dict_add_ignores_members_already_present() -> None:
    message = body({"op": "add", "path": "members", "value": [{"value": "a", "display": "A"}]})
    result = run(GROUP, group("a"), message)
    assert result.resource["members"] == [{"value": "a"}]
    assert result.changed == frozenset()


def test_in_dict_remove_by_display_filter() -> None:
    stored = group()
    stored["members"] = [{"value": "a", "display": "Ann"}, {"value": "b", "display": "Bob"}]
    message = body({"op": "remove", "path": 'members[display eq "ann"]'})  # caseExact false
    assert run(GROUP, stored, message).resource["members"] == [{"value": "b", "display": "Bob"}]


def test_in_dict_set_display_of_member_when_unset() -> None:
    # members.display is immutable: it may be added when it has no value
    message = body({"op": "add", "path": 'members[value eq "a"].display', "value": "Ann"})
    result = run(GROUP, group("a", "b"), message)
    assert result.resource["members"] == [{"value": "a", "display": "Ann"}, {"value": "b"}]


def test_in_dict_replace_deduplicates() -> None:
    message = body({"op": "replace", "path": "members", "value": [{"value": "a"}, {"value": "a"}]})
    assert run(GROUP, group("z"), message).resource["members"] == [{"value": "a"}]


def test_large_group_add_one_member() -> None:
    ids = [f"m{i}" for i in range(5000)]
    message = body({"op": "add", "path": "members", "value": [{"value": "new"}]})
    result = run(GROUP, group(*ids), message)
    assert len(result.resource["members"]) == 5001
    assert result.resource["members"][-1] == {"value": "new"}


def test_large_group_remove_listed_members() -> None:
    ids = [f"m{i}" for i in range(5000)]
    message = body(
        {"op": "remove", "path": "members", "value": [{"value": "m10"}, {"value": "m4999"}]}
    )
    members = run(GROUP, group(*ids), message).resource["members"]
    assert len(members) == 4998
    assert {"value": "m10"} not in members
    assert members[-1] == {"value": "m4998"}
