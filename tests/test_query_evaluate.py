"""The reference filter semantics (scimd.query.evaluate) on RFC 7643 example resources."""

from __future__ import annotations

from typing import Any

import pytest

from scimd.query.ast import And, AttrPath, Comparison, Not, Or, Present, ValuePath
from scimd.query.evaluate import (
    canonical_datetime,
    compile_filter,
    is_present,
    matches,
    parse_datetime,
)
from scimd.schema.model import AttributeDef
from tests._query_helpers import (
    CORE_USER,
    ENTERPRISE,
    enterprise_user,
    f,
    full_user,
    group_type,
    m,
)

# --------------------------------------------------------------- RFC 7644 3.4.2.2 examples
# Each example against the RFC 7643 8.2 full user (bjensen) and, where useful, a variant
# that flips the answer.


def with_(**changes: Any) -> dict[str, Any]:
    user = full_user()
    for key, value in changes.items():
        if value is None:
            user.pop(key, None)
        else:
            user[key] = value
    return user


def test_username_eq() -> None:
    assert not m('userName eq "bjensen"', full_user())
    assert m('userName eq "bjensen"', with_(userName="bjensen"))
    # userName is caseExact false (RFC 7643 4.1.1).
    assert m('userName eq "bjensen@example.com"', with_(userName="BJensen@Example.COM"))


def test_family_name_co() -> None:
    assert not m('name.familyName co "O\'Malley"', full_user())
    user = full_user()
    user["name"]["familyName"] = "o'malley-Jensen"
    assert m('name.familyName co "O\'Malley"', user)


def test_username_sw() -> None:
    assert not m('userName sw "J"', full_user())
    assert m('userName sw "J"', with_(userName="jdoe"))
    assert m('userName sw "B"', full_user())
    assert m(f'{CORE_USER}:userName sw "b"', full_user())
    assert not m(f'{CORE_USER}:userName sw "J"', full_user())


def test_title_pr() -> None:
    assert m("title pr", full_user())
    assert not m("title pr", with_(title=None))
    assert not m("title pr", with_(title=""))


def test_last_modified_comparisons() -> None:
    user = full_user()  # lastModified 2011-05-13T04:42:34Z
    at = "2011-05-13T04:42:34Z"
    assert not m(f'meta.lastModified gt "{at}"', user)
    assert m(f'meta.lastModified ge "{at}"', user)
    assert not m(f'meta.lastModified lt "{at}"', user)
    assert m(f'meta.lastModified le "{at}"', user)
    # Instants, not strings: the same instant with an offset and a fraction.
    assert m('meta.lastModified eq "2011-05-13T06:42:34.000+02:00"', user)
    assert m('meta.lastModified gt "2011-05-13T06:42:33.999+02:00"', user)
    assert not m('meta.lastModified gt "2011-05-13T00:42:34-04:00"', user)
    assert m('meta.lastModified lt "2011-05-13T00:42:34.5-04:00"', user)


def test_title_pr_and_or_user_type() -> None:
    assert m('title pr and userType eq "Employee"', full_user())
    assert not m('title pr and userType eq "Employee"', with_(userType="Intern"))
    assert m('title pr or userType eq "Intern"', full_user())
    assert not m('title pr or userType eq "Intern"', with_(title=None))
    assert m('title pr or userType eq "Intern"', with_(title=None, userType="intern"))


def test_schemas_eq() -> None:
    text = f'schemas eq "{ENTERPRISE}"'
    assert not m(text, full_user())
    assert m(text, enterprise_user())


def test_emails_co_or() -> None:
    text = 'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")'
    assert m(text, full_user())
    user = full_user()
    for e in user["emails"]:
        e["value"] = e["value"].replace("example.com", "example.net")
    assert not m(text, user)
    user["emails"][1]["value"] = "babs@example.org"
    assert m(text, user)


def test_user_type_ne_and_not() -> None:
    text = (
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")'
    )
    assert not m(text, full_user())
    intern = with_(userType="Intern", emails=[{"value": "x@foo.net", "type": "work"}])
    assert m(text, intern)
    assert not m(text, with_(userType="Intern"))  # has an @example.com address
    assert m(text, with_(userType=None, emails=None))  # absent userType is "not Employee"


def test_emails_type_eq_work() -> None:
    text = 'userType eq "Employee" and (emails.type eq "work")'
    assert m(text, full_user())
    assert not m(text, with_(emails=[{"value": "a@b.c", "type": "home"}]))


def test_value_path_matches_within_one_element() -> None:
    text = 'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]'
    assert m(text, full_user())
    # Work address elsewhere, example.com on the home address: the valuePath needs both
    # conditions on the SAME element, the plain attribute paths do not.
    swapped = with_(
        emails=[
            {"value": "bjensen@jensen.org", "type": "work"},
            {"value": "babs@example.com", "type": "home"},
        ]
    )
    assert not m(text, swapped)
    assert m('emails.type eq "work" and emails.value co "@example.com"', swapped)


def test_value_path_or_value_path() -> None:
    text = (
        'emails[type eq "work" and value co "@example.com"] or '
        'ims[type eq "xmpp" and value co "@foo.com"]'
    )
    assert m(text, full_user())
    xmpp = with_(emails=None, ims=[{"value": "babs@FOO.com", "type": "xmpp"}])
    assert m(text, xmpp)
    assert not m(text, with_(emails=None))  # ims is aim/someaimhandle


# --------------------------------------------------------------- INTEROP.md queries


def test_entra_manager_filter_on_enterprise_user() -> None:
    user = enterprise_user()
    mgr = user[ENTERPRISE]["manager"]["value"]
    assert m(f'id eq "{user["id"]}" and manager eq "{mgr}"', user)
    assert not m(f'id eq "{user["id"]}" and manager eq "someone-else"', user)
    assert m(f'{ENTERPRISE}:employeeNumber eq "701984"', user)
    # An absent extension object is simply "no value", never a lookup in the core.
    assert not m(f'{ENTERPRISE}:employeeNumber eq "701984"', full_user())
    assert m(f"not ({ENTERPRISE}:employeeNumber pr)", full_user())


def test_entra_email_value_path_with_sub_attribute() -> None:
    assert m('emails[type eq "work"].value eq "BJENSEN@example.com"', full_user())
    assert not m('emails[type eq "home"].value eq "bjensen@example.com"', full_user())


def test_external_id_and_id_are_case_exact() -> None:
    user = full_user()
    assert m('externalId eq "701984"', user)
    assert m(f'id eq "{user["id"]}"', user)
    assert not m(f'id eq "{user["id"].upper()}"', user)


def test_group_members_filter() -> None:
    group = {
        "id": "g1",
        "displayName": "Tour Guides",
        "members": [{"value": "u1", "display": "Babs"}, {"value": "u2"}],
    }
    gt = group_type()
    assert m('members[value eq "u2"]', group, gt)
    assert m('members.value eq "u1"', group, gt)
    assert not m('members[value eq "U1"]', group, gt)  # member ids are caseExact
    assert m('displayName eq "tour guides"', group, gt)


# --------------------------------------------------------------- precise semantics


def test_ne_on_multi_valued_means_no_value_equals() -> None:
    user = full_user()
    assert not m('emails.value ne "babs@jensen.org"', user)  # she has it
    assert m('emails.value ne "nobody@example.com"', user)
    assert m('emails.value ne "x"', with_(emails=None))  # absent: not equal
    # per element inside a valuePath
    assert m('emails[type ne "work"]', user)  # the home address
    assert not m('emails[type ne "work"]', with_(emails=[{"value": "a", "type": "work"}]))
    assert m('emails[type ne "work"]', with_(emails=[{"value": "a"}]))  # no type


def test_eq_null_and_ne_null() -> None:
    assert not m("title eq null", full_user())
    assert m("title eq null", with_(title=None))
    assert m("title ne null", full_user())
    assert m("emails[type eq null]", with_(emails=[{"value": "a"}]))


def test_present_semantics() -> None:
    assert not is_present(None)
    assert not is_present("")
    assert not is_present([])
    assert not is_present({})
    assert not is_present({"value": "", "type": None})
    assert not is_present([{"value": ""}, None])
    assert is_present(False)
    assert is_present(0)
    assert is_present({"value": "x"})
    assert m("emails pr", full_user())
    assert not m("emails pr", with_(emails=[]))
    assert not m("emails pr", with_(emails=[{"value": "", "primary": None}]))
    assert m("active pr", with_(active=False))
    assert m("name pr", full_user())
    assert not m("name pr", with_(name={"givenName": ""}))


def test_case_folding_uses_casefold() -> None:
    # German sharp s: casefold("ß") == "ss"; lower() would not match.
    assert m('userName eq "STRASSE"', with_(userName="straße"))
    assert m('displayName co "SS"', with_(displayName="Großmann"))


def test_string_ordering_is_casefolded_code_point_order() -> None:
    user = with_(displayName="babs")
    assert m('displayName gt "Alice"', user)
    assert m('displayName lt "Carol"', user)
    assert m('displayName ge "BABS"', user)
    assert not m('displayName gt "BABS"', user)


def test_sw_ew_co_boundaries() -> None:
    user = with_(title="Tour Guide")
    assert m('title sw "tour guide"', user)  # identical string satisfies sw
    assert m('title ew "GUIDE"', user)
    assert m('title co ""', user)
    assert not m('title co "x"', user)


def test_booleans() -> None:
    assert m("active eq true", full_user())
    assert not m("active eq false", full_user())
    assert m("active ne false", full_user())
    assert m("emails[primary eq true]", full_user())
    assert not m("active eq true", with_(active="true"))  # wrong stored type never matches


def test_numbers_compare_numerically() -> None:
    age = AttributeDef(name="age", type="integer", schema=CORE_USER, path="age")
    score = AttributeDef(name="score", type="decimal", schema=CORE_USER, path="score")
    p_age = AttrPath(CORE_USER, "age", defn=age)
    p_score = AttrPath(CORE_USER, "score", defn=score)
    user = {"age": 10, "score": 2.5}
    assert matches(Comparison(p_age, "gt", 9), user)
    assert not matches(Comparison(p_age, "gt", 10), user)  # 10 > 9 numerically, not "10" < "9"
    assert matches(Comparison(p_age, "eq", 10), user)
    assert matches(Comparison(p_score, "le", 2.5), user)
    assert matches(Comparison(p_score, "gt", 2), user)
    assert not matches(Comparison(p_age, "eq", 10), {"age": True})
    assert not matches(Comparison(p_age, "eq", 10), {"age": "10"})


def test_datetime_values_that_do_not_parse_never_match() -> None:
    user = full_user()
    user["meta"]["lastModified"] = "not a date"
    assert not m('meta.lastModified lt "2100-01-01T00:00:00Z"', user)
    assert m('meta.lastModified ne "2100-01-01T00:00:00Z"', user)


def test_garbage_resource_shapes_do_not_raise() -> None:
    odd: dict[str, Any] = {
        "emails": "not-a-list",
        "name": ["x"],
        ENTERPRISE: "nope",
        "meta": None,
        "title": 5,
    }
    for text in [
        'emails.value eq "x"',
        'emails[type eq "work"]',
        'name.givenName eq "x"',
        'manager eq "x"',
        'meta.created gt "2011-01-01T00:00:00Z"',
        'title eq "5"',
        "title pr",
    ]:
        assert isinstance(m(text, odd), bool)


def test_hand_built_unresolved_tree() -> None:
    # Without ``defn`` the type is inferred from the value, case-insensitively.
    p = AttrPath(None, "userName")
    assert matches(Comparison(p, "eq", "BJENSEN@example.com"), full_user())
    assert matches(Comparison(p, "eq", None), {"x": 1})
    assert matches(Comparison(p, "ne", None), {"userName": "a"})
    vp = ValuePath(
        AttrPath(None, "emails"), Present(AttrPath(None, "emails", "type", in_value_path=True))
    )
    assert matches(vp, full_user())
    assert matches(Not(Or(Present(p), And(Present(p), Present(p)))), {})


def test_compile_filter_reuses_predicate() -> None:
    pred = compile_filter(f('userType eq "Employee"'))
    users = [with_(userType=t) for t in ("Employee", "Intern", "employee")]
    assert [pred(u) for u in users] == [True, False, True]


# --------------------------------------------------------------- dateTime helpers


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2011-05-13T04:42:34Z", "2011-05-13T04:42:34.000000Z"),
        ("2011-05-13T04:42:34z", "2011-05-13T04:42:34.000000Z"),
        ("2011-05-13t04:42:34", "2011-05-13T04:42:34.000000Z"),
        ("2011-05-13T06:42:34+02:00", "2011-05-13T04:42:34.000000Z"),
        ("2011-05-12T23:42:34.5-05:00", "2011-05-13T04:42:34.500000Z"),
        ("2011-05-13T04:42:34.123456789Z", "2011-05-13T04:42:34.123456Z"),
    ],
)
def test_datetime_parsing(text: str, canonical: str) -> None:
    assert canonical_datetime(text) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2011-05-13",
        "2011-13-13T04:42:34Z",
        "2011-02-30T04:42:34Z",
        "2011-05-13T24:00:00Z",
        "2011-05-13T04:42:34+25:00",
        "2011-05-13 04:42:34Z",
        "٢٠١١-05-13T04:42:34Z",
        "x" * 100,
    ],
)
def test_datetime_rejects(text: str) -> None:
    assert parse_datetime(text) is None
    assert canonical_datetime(text) is None
