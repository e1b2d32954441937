"""PATCH bodies as Okta and Microsoft Entra ID really send them (INTEROP.md "PATCH").

Bodies are verbatim from INTEROP.md, the Entra "Develop a SCIM endpoint" / SCIM Validator
traffic and Okta's SCIM 2.0 reference; each tolerated deviation must be counted as a quirk.
"""

from __future__ import annotations

import pytest

from scimd.backend import MemberChange
from tests._patch_helpers import (
    ENTERPRISE,
    GROUP,
    PATCH_OP,
    USER,
    bare_user,
    body,
    counts_quirk,
    fails,
    group,
    run,
    user,
)

MANAGER_PATH = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"


# ---- op in any case


@pytest.mark.parametrize(
    ("op", "path", "value", "check"),
    [
        ("Add", "nickName", "Babs", lambda r: r["nickName"] == "Babs"),
        ("Replace", "displayName", "B", lambda r: r["displayName"] == "B"),
        ("Remove", "displayName", None, lambda r: "displayName" not in r),
        ("REPLACE", "title", "T", lambda r: r["title"] == "T"),
    ],
)
def test_op_in_any_case(op: str, path: str, value: object, check: object) -> None:
    operation: dict[str, object] = {"op": op, "path": path}
    if value is not None:
        operation["value"] = value
    with counts_quirk("patch_op_case"):
        result = run(USER, user(), body(operation))
    assert callable(check) and check(result.resource)


# ---- no-path replace with dotted and URN-qualified keys (Entra)


def test_no_path_replace_with_dotted_and_urn_keys() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "replace",
                "value": {
                    "name.givenName": "Kkom",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq",  # noqa: E501
                    "active": False,
                },
            }
        ],
    }
    with counts_quirk("patch_no_path_dotted_keys"):
        result = run(USER, user(), message)
    res = result.resource
    assert res["name"] == {"familyName": "Jensen", "givenName": "Kkom"}
    assert res[ENTERPRISE] == {"employeeNumber": "Aklq", "department": "Tour Operations"}
    assert res["active"] is False
    assert result.changed == {
        "name.givenName",
        f"{ENTERPRISE}:employeeNumber",
        "active",
    }


def test_no_path_urn_key_on_user_without_extension_adds_schema() -> None:
    message = body({"op": "replace", "value": {f"{ENTERPRISE}:costCenter": "4130"}})
    res = run(USER, bare_user(), message).resource
    assert res[ENTERPRISE] == {"costCenter": "4130"}
    assert res["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]
    assert list(res)[-1] == "meta"  # the extension goes before meta, as on create


def test_no_path_replace_with_extension_object() -> None:
    message = body({"op": "replace", "value": {ENTERPRISE: {"department": "Sales"}}})
    res = run(USER, user(), message).resource
    assert res[ENTERPRISE] == {"employeeNumber": "701984", "department": "Sales"}


def test_boolean_as_string() -> None:
    message = body({"op": "Replace", "path": "active", "value": "False"})
    with counts_quirk("boolean_as_string"):
        assert run(USER, user(), message).resource["active"] is False


def test_entra_disable_user() -> None:
    message = {
        "Operations": [{"op": "Replace", "path": "active", "value": False}],
        "schemas": [PATCH_OP],
    }
    assert run(USER, user(), message).resource["active"] is False


def test_okta_deactivate_user() -> None:
    message = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert run(USER, user(), message).resource["active"] is False


# ---- no-path replace with the readOnly id equal to the resource id (Okta group rename)


def test_okta_group_rename_with_own_id() -> None:
    stored = group()
    stored["id"] = "abf4dd94-a4c0-4f67-89c9-76b03340cb9b"
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "replace",
                "value": {
                    "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
                    "displayName": "Test SCIMv2",
                },
            }
        ],
    }
    with counts_quirk("patch_readonly_id_equal"):
        result = run(GROUP, stored, message)
    assert result.resource["displayName"] == "Test SCIMv2"
    assert result.resource["id"] == "abf4dd94-a4c0-4f67-89c9-76b03340cb9b"
    assert result.changed == {"displayName"}


def test_no_path_replace_with_another_id_is_mutability() -> None:
    message = body({"op": "replace", "value": {"id": "someone-else", "displayName": "X"}})
    fails(GROUP, group(), message, 400, "mutability")


# ---- filtered paths


def test_entra_replace_work_email_and_family_name() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "updatedEmail@microsoft.com",
            },
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ],
    }
    res = run(USER, user(), message).resource
    assert res["emails"][0] == {
        "value": "updatedEmail@microsoft.com",
        "type": "work",
        "primary": True,
    }
    assert res["name"]["familyName"] == "updatedFamilyName"


def test_primary_eq_true_filter() -> None:
    message = body({"op": "replace", "path": "emails[primary eq true].value", "value": "new@x.org"})
    res = run(USER, user(), message).resource
    assert res["emails"][0]["value"] == "new@x.org"
    assert res["emails"][1]["value"] == "babs@jensen.org"


def test_entra_filtered_adds_create_one_element_per_filter() -> None:
    # Entra, after creating a bare user: several adds to the same filter build ONE element.
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "Add",
                "path": 'emails[type eq "work"].value',
                "value": "Test_User_dfeef4c5@contoso.com",
            },
            {"op": "Add", "path": 'emails[type eq "work"].primary', "value": True},
            {
                "op": "Add",
                "path": 'addresses[type eq "work"].formatted',
                "value": "1 Microsoft Way, Redmond WA",
            },
            {
                "op": "Add",
                "path": 'addresses[type eq "work"].streetAddress',
                "value": "1 Microsoft Way",
            },
            {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
        ],
    }
    with counts_quirk("patch_filtered_add_creates"):
        result = run(USER, bare_user(), message)
    res = result.resource
    assert res["emails"] == [
        {"value": "Test_User_dfeef4c5@contoso.com", "type": "work", "primary": True}
    ]
    assert res["addresses"] == [
        {
            "formatted": "1 Microsoft Way, Redmond WA",
            "streetAddress": "1 Microsoft Way",
            "locality": "Redmond",
            "type": "work",
        }
    ]
    assert result.changed == {"emails", "addresses"}


def test_filtered_add_with_primary_string_filter_creates_element() -> None:
    # Entra's SingleAppRoleAssignment mapping: roles[primary eq "True"].value
    message = body({"op": "Add", "path": 'roles[primary eq "True"].value', "value": "Admin"})
    res = run(USER, bare_user(), message).resource
    assert res["roles"] == [{"value": "Admin", "primary": True}]


def test_filtered_add_new_primary_takes_the_flag_from_the_others() -> None:
    message = body(
        {"op": "add", "path": 'emails[type eq "other"].value', "value": "o@x.org"},
        {"op": "add", "path": 'emails[type eq "other"].primary', "value": True},
    )
    emails = run(USER, user(), message).resource["emails"]
    assert [e.get("primary") for e in emails] == [False, None, True]


def test_filtered_add_with_non_eq_filter_and_no_match_is_no_target() -> None:
    message = body({"op": "add", "path": 'emails[value co "nothing"].type', "value": "work"})
    fails(USER, user(), message, 400, "noTarget")


# ---- members


def test_member_remove_by_filter_path() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "remove", "path": 'members[value eq "89bb1940-b905-4575-9e7f-6f887cfb368e"]'}
        ],
    }
    stored = group("89bb1940-b905-4575-9e7f-6f887cfb368e", "keep")
    assert run(GROUP, stored, message).resource["members"] == [{"value": "keep"}]
    external = run(GROUP, group(), message, members_external=True)
    assert external.member_changes == [
        MemberChange("remove", values=("89bb1940-b905-4575-9e7f-6f887cfb368e",))
    ]


def test_entra_member_remove_by_value_list() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Remove", "path": "members", "value": [{"value": "f648f8d5ea4e4cd38e9c"}]}
        ],
    }
    stored = group("f648f8d5ea4e4cd38e9c", "keep")
    with counts_quirk("patch_members_remove_by_value"):
        assert run(GROUP, stored, message).resource["members"] == [{"value": "keep"}]
    external = run(GROUP, group(), message, members_external=True)
    assert external.member_changes == [MemberChange("remove", values=("f648f8d5ea4e4cd38e9c",))]


def test_entra_member_add_with_null_ref() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "Add",
                "path": "members",
                "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}],
            }
        ],
    }
    with counts_quirk("member_ref_null"):
        result = run(GROUP, group("other"), message)
    assert result.resource["members"] == [{"value": "other"}, {"value": "f648f8d5ea4e4cd38e9c"}]
    external = run(GROUP, group(), message, members_external=True)
    assert external.member_changes == [
        MemberChange("add", members=({"value": "f648f8d5ea4e4cd38e9c"},))
    ]


def test_okta_member_add_with_display() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "add",
                "path": "members",
                "value": [
                    {
                        "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
                        "display": "test.user@okta.local",
                    }
                ],
            }
        ],
    }
    res = run(GROUP, group(), message).resource
    assert res["members"] == [
        {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}
    ]


def test_extra_keys_on_an_operation_are_ignored() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "name": "addMember",
                "op": "add",
                "path": "members",
                "value": [{"value": "u-1"}],
            }
        ],
    }
    with counts_quirk("patch_extra_keys"):
        res = run(GROUP, group(), message).resource
    assert res["members"] == [{"value": "u-1"}]


def test_replace_members_sets_membership_as_a_diff() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "replace",
                "path": "members",
                "value": [{"value": "a", "display": "A"}, {"value": "b", "display": "B"}],
            }
        ],
    }
    res = run(GROUP, group("a", "z"), message).resource
    assert res["members"] == [{"value": "a", "display": "A"}, {"value": "b", "display": "B"}]
    external = run(GROUP, group(), message, members_external=True)
    assert external.member_changes == [
        MemberChange(
            "set", members=({"value": "a", "display": "A"}, {"value": "b", "display": "B"})
        )
    ]
    assert "members" not in external.resource


def test_add_then_remove_same_member_in_one_request_leaves_none() -> None:
    message = body(
        {"op": "add", "path": "members", "value": [{"value": "u"}]},
        {"op": "remove", "path": 'members[value eq "u"]'},
    )
    result = run(GROUP, group(), message)
    assert "members" not in result.resource
    assert result.changed == frozenset()
    external = run(GROUP, group(), message, members_external=True)
    assert external.member_changes == [
        MemberChange("add", members=({"value": "u"},)),
        MemberChange("remove", values=("u",)),
    ]


# ---- enterprise manager


def test_entra_manager_as_bare_string() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "value": "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2",
            }
        ],
    }
    with counts_quirk("patch_manager_string"):
        result = run(USER, bare_user(), message)
    assert result.resource[ENTERPRISE] == {
        "manager": {"value": "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"}
    }
    assert ENTERPRISE in result.resource["schemas"]


def test_manager_string_271() -> None:
    message = body({"op": "Replace", "path": MANAGER_PATH, "value": "271"})
    assert run(USER, user(), message).resource[ENTERPRISE]["manager"] == {"value": "271"}


def test_manager_as_object() -> None:
    message = body({"op": "replace", "path": MANAGER_PATH, "value": {"value": "271"}})
    assert run(USER, user(), message).resource[ENTERPRISE]["manager"] == {"value": "271"}


def test_manager_as_array_with_ref() -> None:
    message = body(
        {
            "op": "add",
            "path": MANAGER_PATH,
            "value": [
                {
                    "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                    "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                }
            ],
        }
    )
    with counts_quirk("single_element_list_for_single_valued"):
        res = run(USER, user(), message).resource
    assert res[ENTERPRISE]["manager"] == {
        "value": "26118915-6090-4610-87e4-49d8ca9f808d",
        "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
    }


def test_manager_display_name_is_read_only_and_dropped() -> None:
    message = body(
        {"op": "add", "path": MANAGER_PATH, "value": {"value": "271", "displayName": "Boss"}}
    )
    assert run(USER, user(), message).resource[ENTERPRISE]["manager"] == {"value": "271"}


def test_remove_manager_by_urn_path() -> None:
    stored = user()
    stored[ENTERPRISE]["manager"] = {"value": "271"}
    message = body({"op": "Remove", "path": MANAGER_PATH})
    result = run(USER, stored, message)
    assert result.resource[ENTERPRISE] == {
        "employeeNumber": "701984",
        "department": "Tour Operations",
    }
    assert result.changed == {f"{ENTERPRISE}:manager.value"}


def test_replace_manager_with_empty_string_unassigns_it() -> None:
    stored = user()
    stored[ENTERPRISE]["manager"] = {"value": "271"}
    message = body({"op": "Replace", "path": MANAGER_PATH, "value": ""})
    assert "manager" not in run(USER, stored, message).resource[ENTERPRISE]


# ---- complex values as JSON text (Entra app roles)


def test_entra_role_element_value_as_json_text() -> None:
    message = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "Add",
                "path": "roles",
                "value": [
                    {
                        "value": '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"25","displayName":"Role1234"}'  # noqa: E501
                    }
                ],
            }
        ],
    }
    with counts_quirk("patch_value_json_text"):
        res = run(USER, bare_user(), message).resource
    assert res["roles"] == [{"value": "25", "display": "Role1234"}]


def test_role_value_as_json_text_of_the_whole_element() -> None:
    message = body({"op": "add", "path": "roles", "value": '{"id":"1","value":"Admin"}'})
    with counts_quirk("patch_value_json_text"):
        res = run(USER, bare_user(), message).resource
    assert res["roles"] == [{"value": "Admin"}]


def test_entra_app_role_assignments_complex() -> None:
    message = body(
        {
            "op": "add",
            "path": "roles",
            "value": [
                {
                    "primary": False,
                    "type": "WindowsAzureActiveDirectoryRole",
                    "display": "Role1",
                    "value": "role1",
                },
                {
                    "primary": False,
                    "type": "WindowsAzureActiveDirectoryRole",
                    "display": "Role2",
                    "value": "role2",
                },
            ],
        }
    )
    res = run(USER, bare_user(), message).resource
    assert [r["value"] for r in res["roles"]] == ["role1", "role2"]
    # the same body again (Entra resends every role) changes nothing
    again = run(USER, res, message)
    assert again.changed == frozenset()
    assert again.resource["roles"] == res["roles"]
