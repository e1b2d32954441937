"""The RFC 7644 section 3.5.2 examples, replayed through the PATCH engine.

Each test names the RFC subsection and the fixture holding the exact request body.
"""

from __future__ import annotations

from tests._patch_helpers import (
    BABS_ID,
    ENTERPRISE,
    GROUP,
    JAMES_ID,
    USER,
    body,
    fails,
    fixture,
    group,
    run,
    user,
)

BABS = {
    "value": BABS_ID,
    "$ref": f"https://example.com/v2/Users/{BABS_ID}",
    "display": "Babs Jensen",
}
JAMES = {
    "value": JAMES_ID,
    "$ref": f"https://example.com/v2/Users/{JAMES_ID}",
    "display": "James Smith",
}


# ---- 3.5.2.1 add


def test_3_5_2_1_add_member_to_group() -> None:
    result = run(GROUP, group(), fixture("rfc7644-3.5.2.1-add_member.json"))
    assert result.resource["members"] == [BABS]
    assert result.changed == {"members"}
    assert result.member_changes == []


def test_3_5_2_1_add_member_already_present_changes_nothing() -> None:
    # "If the target location already contains the value specified, no changes SHOULD be
    # made to the resource"
    result = run(GROUP, group(BABS_ID), fixture("rfc7644-3.5.2.1-add_member.json"))
    assert result.resource["members"] == [{"value": BABS_ID}]
    assert result.changed == frozenset()


def test_3_5_2_1_add_without_path_merges_attributes() -> None:
    # The RFC spells the attribute "nickname": names are case-insensitive (RFC 7643 2.1).
    result = run(USER, user(), fixture("rfc7644-3.5.2.1-add_no_path.json"))
    res = result.resource
    assert res["nickName"] == "Babs"
    # babs@jensen.org/home is already there: merged, not duplicated
    assert res["emails"] == user()["emails"]
    assert result.changed == {"nickName"}


def test_3_5_2_1_add_without_path_appends_new_email() -> None:
    message = body({"op": "add", "value": {"emails": [{"value": "b2@x.org", "type": "other"}]}})
    res = run(USER, user(), message).resource
    assert res["emails"][-1] == {"value": "b2@x.org", "type": "other"}
    assert len(res["emails"]) == 3


def test_3_5_2_1_add_single_valued_replaces() -> None:
    message = body({"op": "add", "path": "displayName", "value": "Babs"})
    assert run(USER, user(), message).resource["displayName"] == "Babs"


def test_3_5_2_1_add_complex_sets_given_sub_attributes_only() -> None:
    message = body({"op": "add", "path": "name", "value": {"middleName": "Jane"}})
    result = run(USER, user(), message)
    assert result.resource["name"] == {
        "familyName": "Jensen",
        "givenName": "Barbara",
        "middleName": "Jane",
    }
    assert result.changed == {"name.middleName"}


def test_3_5_2_1_add_attribute_that_does_not_exist() -> None:
    message = body({"op": "add", "path": "title", "value": "Tour Guide"})
    result = run(USER, user(), message)
    assert result.resource["title"] == "Tour Guide"
    assert result.changed == {"title"}


# ---- 3.5.2.2 remove


def test_3_5_2_2_remove_single_member() -> None:
    result = run(GROUP, group(BABS_ID, JAMES_ID), fixture("rfc7644-3.5.2.2-remove_member.json"))
    assert result.resource["members"] == [{"value": JAMES_ID}]


def test_3_5_2_2_remove_last_member_unassigns_attribute() -> None:
    result = run(GROUP, group(BABS_ID), fixture("rfc7644-3.5.2.2-remove_member.json"))
    assert "members" not in result.resource
    assert result.changed == {"members"}


def test_3_5_2_2_remove_all_members() -> None:
    result = run(
        GROUP, group(BABS_ID, JAMES_ID), fixture("rfc7644-3.5.2.2-remove_all_members.json")
    )
    assert "members" not in result.resource


def test_3_5_2_2_remove_work_emails_by_complex_filter() -> None:
    result = run(USER, user(), fixture("rfc7644-3.5.2.2-remove_work_emails.json"))
    assert result.resource["emails"] == [{"value": "babs@jensen.org", "type": "home"}]
    assert result.changed == {"emails"}


def test_3_5_2_2_replace_members_by_remove_then_add() -> None:
    start = group("someone-else")
    result = run(GROUP, start, fixture("rfc7644-3.5.2.2-replace_members_by_remove_add.json"))
    assert result.resource["members"] == [BABS, JAMES]


def test_3_5_2_2_remove_without_path_is_no_target() -> None:
    fails(USER, user(), body({"op": "remove"}), 400, "noTarget")


def test_3_5_2_2_remove_single_valued_attribute() -> None:
    result = run(USER, user(), body({"op": "remove", "path": "displayName"}))
    assert "displayName" not in result.resource
    assert result.changed == {"displayName"}


def test_3_5_2_2_remove_sub_attribute() -> None:
    result = run(USER, user(), body({"op": "remove", "path": "name.givenName"}))
    assert result.resource["name"] == {"familyName": "Jensen"}
    assert result.changed == {"name.givenName"}


def test_3_5_2_2_remove_absent_attribute_is_a_successful_no_op() -> None:
    result = run(USER, user(), body({"op": "remove", "path": "nickName"}))
    assert result.resource == user()
    assert result.changed == frozenset()


def test_3_5_2_2_remove_with_filter_matching_nothing_is_a_no_op() -> None:
    result = run(USER, user(), body({"op": "remove", "path": 'emails[type eq "other"]'}))
    assert result.resource == user()


def test_3_5_2_2_remove_sub_attribute_of_matching_values() -> None:
    result = run(USER, user(), body({"op": "remove", "path": 'emails[type eq "work"].primary'}))
    assert result.resource["emails"][0] == {"value": "bjensen@example.com", "type": "work"}


def test_3_5_2_2_remove_extension_attribute_and_last_one_drops_urn() -> None:
    first = run(USER, user(), body({"op": "remove", "path": f"{ENTERPRISE}:department"}))
    assert first.resource[ENTERPRISE] == {"employeeNumber": "701984"}
    assert ENTERPRISE in first.resource["schemas"]
    assert first.changed == {f"{ENTERPRISE}:department"}
    second = run(
        USER, first.resource, body({"op": "remove", "path": f"{ENTERPRISE}:employeeNumber"})
    )
    assert ENTERPRISE not in second.resource
    assert second.resource["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]


def test_3_5_2_2_remove_whole_extension_by_urn_path() -> None:
    result = run(USER, user(), body({"op": "remove", "path": ENTERPRISE}))
    assert ENTERPRISE not in result.resource
    assert ENTERPRISE not in result.resource["schemas"]
    assert result.changed == {f"{ENTERPRISE}:employeeNumber", f"{ENTERPRISE}:department"}


# ---- 3.5.2.3 replace


def test_3_5_2_3_replace_all_members() -> None:
    result = run(GROUP, group("old-1", "old-2"), fixture("rfc7644-3.5.2.3-replace_members.json"))
    assert result.resource["members"] == [BABS, JAMES]


def test_3_5_2_3_replace_work_address_by_filter() -> None:
    result = run(USER, user(), fixture("rfc7644-3.5.2.3-replace_work_address.json"))
    (address,) = result.resource["addresses"]
    assert address["streetAddress"] == "911 Universal City Plaza"
    assert address["country"] == "US"
    assert address["formatted"] == "911 Universal City Plaza\nHollywood, CA 91608 US"


def test_3_5_2_3_replace_sub_attribute_of_filtered_value() -> None:
    result = run(USER, user(), fixture("rfc7644-3.5.2.3-replace_street_address.json"))
    (address,) = result.resource["addresses"]
    assert address["streetAddress"] == "1010 Broadway Ave"
    assert address["locality"] == "Hollywood"
    assert result.changed == {"addresses"}


def test_3_5_2_3_replace_without_path() -> None:
    result = run(USER, user(), fixture("rfc7644-3.5.2.3-replace_no_path.json"))
    res = result.resource
    assert res["emails"] == [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ]
    assert res["nickName"] == "Babs"
    assert res["userName"] == "bjensen@example.com"  # not named: unchanged
    assert result.changed == {"nickName"}


def test_3_5_2_3_replace_multi_valued_replaces_whole_list() -> None:
    message = body({"op": "replace", "path": "emails", "value": [{"value": "only@x.org"}]})
    assert run(USER, user(), message).resource["emails"] == [{"value": "only@x.org"}]


def test_3_5_2_3_replace_complex_leaves_unnamed_sub_attributes() -> None:
    message = body({"op": "replace", "path": "name", "value": {"givenName": "Babs"}})
    result = run(USER, user(), message)
    assert result.resource["name"] == {"familyName": "Jensen", "givenName": "Babs"}
    assert result.changed == {"name.givenName"}


def test_3_5_2_3_replace_absent_attribute_is_an_add() -> None:
    message = body({"op": "replace", "path": "nickName", "value": "Babs"})
    assert run(USER, user(), message).resource["nickName"] == "Babs"


def test_3_5_2_3_replace_filter_without_match_is_no_target() -> None:
    # An eq-only filter creates the element instead (quirk patch_filtered_replace_creates,
    # tests/test_idp_entra.py); one that does not describe an element stays noTarget.
    message = body(
        {"op": "replace", "path": 'addresses[type co "home"].streetAddress', "value": "x"}
    )
    fails(USER, user(), message, 400, "noTarget")


def test_3_5_2_3_replace_with_null_unassigns() -> None:
    message = body({"op": "replace", "path": "displayName", "value": None})
    assert "displayName" not in run(USER, user(), message).resource


def test_operations_apply_in_order_each_on_the_previous_result() -> None:
    message = body(
        {"op": "replace", "path": "displayName", "value": "One"},
        {"op": "replace", "path": "displayName", "value": "Two"},
        {"op": "remove", "path": "title"},
        {"op": "add", "path": "title", "value": "Boss"},
    )
    res = run(USER, user(), message).resource
    assert (res["displayName"], res["title"]) == ("Two", "Boss")
