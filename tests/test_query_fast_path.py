"""The parser's fast path (``attrPath op value`` and ``attr[...].sub op value``, the shapes
identity providers send on almost every request) must build exactly what the full LALR
parser builds, and fail exactly where it fails."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scimd.errors import InvalidFilter
from scimd.query import parse as parse_mod
from scimd.query.ast import Filter
from scimd.schema.loader import builtin_registry
from scimd.schema.model import ResourceType

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _user() -> ResourceType:
    rtype = builtin_registry().resource_type("User")
    assert rtype is not None
    return rtype


def _full(text: str, rtype: ResourceType) -> Filter | str:
    """The result of the full parser (fast path disabled), or the error detail."""
    original = parse_mod._fast_tree
    parse_mod._fast_tree = lambda tokens: None
    try:
        return parse_mod.parse_filter(text, rtype)
    except InvalidFilter as exc:
        return f"InvalidFilter: {exc.detail}"
    finally:
        parse_mod._fast_tree = original


def _fast(text: str, rtype: ResourceType) -> Filter | str:
    try:
        return parse_mod.parse_filter(text, rtype)
    except InvalidFilter as exc:
        return f"InvalidFilter: {exc.detail}"


ATTRS = [
    "userName",
    "UserName",
    "id",
    "externalId",
    "name.familyName",
    "name.FAMILYNAME",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "active",
    "meta.created",
    "meta.lastModified",
    "groups.value",
    "password",
    "nosuch",
    "name.nosuch",
    f"{ENTERPRISE}:employeeNumber",
    f"{ENTERPRISE}:manager",
    f"{ENTERPRISE}:manager.value",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "manager",
]
OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Co"]
VALUES = [
    '"bjensen"',
    '"B\\u00e9"',
    '"2011-05-13T04:42:34Z"',
    '"not a date"',
    "true",
    "False",
    "null",
    "42",
    "-1.5",
    '""',
]
MULTI = ["emails", "phoneNumbers", "addresses", "members", "groups", "name", "userName"]
SUBS = ["value", "type", "primary", "display", "nosuch", "Value"]

simple = st.one_of(
    st.builds(
        lambda a, o, v: f"{a} {o} {v}",
        st.sampled_from(ATTRS),
        st.sampled_from(OPS),
        st.sampled_from(VALUES),
    ),
    st.builds(lambda a: f"{a} pr", st.sampled_from(ATTRS)),
)
value_path = st.builds(
    lambda m, s1, o1, v1, s2, o2, v2: f"{m}[{s1} {o1} {v1}].{s2} {o2} {v2}",
    st.sampled_from(MULTI),
    st.sampled_from(SUBS),
    st.sampled_from(OPS),
    st.sampled_from(VALUES),
    st.sampled_from(SUBS),
    st.sampled_from(OPS),
    st.sampled_from(VALUES),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(simple, value_path))
def test_fast_path_equals_full_parser(text: str) -> None:
    rtype = _user()
    assert _fast(text, rtype) == _full(text, rtype)


@pytest.mark.parametrize(
    "text",
    [
        'userName eq "bjensen"',
        'emails[type eq "work"].value eq "bjensen@example.com"',
        f'{ENTERPRISE}:employeeNumber eq "701984"',
        "title pr",
        'emails[type eq "work"].value pr',  # not a fast shape: full parser
        'userName eq "a" and active eq true',  # not a fast shape: full parser
        'userName eq "a" extra',  # trailing tokens: full parser reports the error
    ],
)
def test_known_shapes_agree(text: str) -> None:
    rtype = _user()
    assert _fast(text, rtype) == _full(text, rtype)


def test_fast_path_is_taken_for_the_idp_shapes() -> None:
    toks = parse_mod._tokenize('userName eq "x"', InvalidFilter)
    assert parse_mod._fast_tree(toks) is not None
    toks = parse_mod._tokenize('emails[type eq "work"].value eq "x"', InvalidFilter)
    assert parse_mod._fast_tree(toks) is not None
    toks = parse_mod._tokenize('userName eq "x" or userName eq "y"', InvalidFilter)
    assert parse_mod._fast_tree(toks) is None
