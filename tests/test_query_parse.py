"""Filter, PATCH path and attribute path parsing (RFC 7644 3.4.2.2, 3.5.2, 3.4.2.3)."""

from __future__ import annotations

import pytest

from scimd.errors import InvalidFilter, InvalidPath, InvalidValue, ScimError
from scimd.query.ast import And, AttrPath, Comparison, Not, Or, PatchPath, Present, ValuePath
from scimd.query.parse import (
    MAX_FILTER_LENGTH,
    MAX_NESTING,
    format_filter,
    parse_attr_path,
    parse_filter,
    parse_path,
)
from tests._query_helpers import CORE_USER, ENTERPRISE, f, group_type, user_type

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def core(attr: str, sub: str | None = None) -> AttrPath:
    return AttrPath(CORE_USER, attr, sub)


def inner(attr: str, sub: str) -> AttrPath:
    return AttrPath(CORE_USER, attr, sub, in_value_path=True)


def eq(path: AttrPath, value: object) -> Comparison:
    return Comparison(path, "eq", value)  # type: ignore[arg-type]


# --------------------------------------------------------------- RFC 7644 3.4.2.2 examples

RFC_EXAMPLES = {
    'userName eq "bjensen"': eq(core("userName"), "bjensen"),
    'name.familyName co "O\'Malley"': Comparison(core("name", "familyName"), "co", "O'Malley"),
    'userName sw "J"': Comparison(core("userName"), "sw", "J"),
    'urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"': Comparison(
        core("userName"), "sw", "J"
    ),
    "title pr": Present(core("title")),
    'meta.lastModified gt "2011-05-13T04:42:34Z"': Comparison(
        AttrPath(None, "meta", "lastModified"), "gt", "2011-05-13T04:42:34Z"
    ),
    'meta.lastModified ge "2011-05-13T04:42:34Z"': Comparison(
        AttrPath(None, "meta", "lastModified"), "ge", "2011-05-13T04:42:34Z"
    ),
    'meta.lastModified lt "2011-05-13T04:42:34Z"': Comparison(
        AttrPath(None, "meta", "lastModified"), "lt", "2011-05-13T04:42:34Z"
    ),
    'meta.lastModified le "2011-05-13T04:42:34Z"': Comparison(
        AttrPath(None, "meta", "lastModified"), "le", "2011-05-13T04:42:34Z"
    ),
    'title pr and userType eq "Employee"': And(
        Present(core("title")), eq(core("userType"), "Employee")
    ),
    'title pr or userType eq "Intern"': Or(Present(core("title")), eq(core("userType"), "Intern")),
    'schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"': eq(
        AttrPath(None, "schemas"), ENTERPRISE
    ),
    'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")': And(
        eq(core("userType"), "Employee"),
        Or(
            Comparison(core("emails", "value"), "co", "example.com"),
            Comparison(core("emails", "value"), "co", "example.org"),
        ),
    ),
    'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")': (
        And(
            Comparison(core("userType"), "ne", "Employee"),
            Not(
                Or(
                    Comparison(core("emails", "value"), "co", "example.com"),
                    Comparison(core("emails", "value"), "co", "example.org"),
                )
            ),
        )
    ),
    'userType eq "Employee" and (emails.type eq "work")': And(
        eq(core("userType"), "Employee"), eq(core("emails", "type"), "work")
    ),
    'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]': And(
        eq(core("userType"), "Employee"),
        ValuePath(
            core("emails"),
            And(
                eq(inner("emails", "type"), "work"),
                Comparison(inner("emails", "value"), "co", "@example.com"),
            ),
        ),
    ),
    (
        'emails[type eq "work" and value co "@example.com"] or '
        'ims[type eq "xmpp" and value co "@foo.com"]'
    ): Or(
        ValuePath(
            core("emails"),
            And(
                eq(inner("emails", "type"), "work"),
                Comparison(inner("emails", "value"), "co", "@example.com"),
            ),
        ),
        ValuePath(
            core("ims"),
            And(
                eq(inner("ims", "type"), "xmpp"),
                Comparison(inner("ims", "value"), "co", "@foo.com"),
            ),
        ),
    ),
}


@pytest.mark.parametrize("text", list(RFC_EXAMPLES))
def test_rfc7644_filter_examples_parse_to_the_expected_tree(text: str) -> None:
    assert f(text) == RFC_EXAMPLES[text]


def test_resolved_paths_carry_definitions_and_canonical_case() -> None:
    tree = f(
        'USERNAME Eq "x" AND Emails[TYPE eq "work"] and META.LASTMODIFIED gt "2011-05-13T04:42:34Z"'
    )
    assert isinstance(tree, And)
    left = tree.left
    assert isinstance(left, And) and isinstance(left.left, Comparison)
    p = left.left.path
    assert (p.uri, p.attr, p.defn and p.defn.name) == (CORE_USER, "userName", "userName")
    vp = left.right
    assert isinstance(vp, ValuePath) and isinstance(vp.filter, Comparison)
    assert vp.filter.path.sub == "type" and vp.filter.path.in_value_path
    assert vp.filter.path.defn is not None and vp.filter.path.defn.name == "type"
    assert isinstance(tree.right, Comparison)
    assert tree.right.path.uri is None and tree.right.path.dotted() == "meta.lastModified"
    assert tree.right.path.defn is not None and tree.right.path.defn.type == "dateTime"


def test_extension_attribute_is_marked_as_extension() -> None:
    tree = f(f'{ENTERPRISE}:employeeNumber eq "701984"')
    assert isinstance(tree, Comparison)
    assert tree.path == AttrPath(ENTERPRISE, "employeeNumber")
    assert tree.path.extension
    core_tree = f('userName eq "x"')
    assert isinstance(core_tree, Comparison) and not core_tree.path.extension


# --------------------------------------------------------------- INTEROP.md queries


def test_entra_okta_queries() -> None:
    guid = "2819c223-7f76-453a-919d-413861904646"
    assert f(f'userName eq "{guid}"') == eq(core("userName"), guid)
    assert f('externalId eq "00ujl29u0le5T6Aj10h7"') == eq(
        AttrPath(None, "externalId"), "00ujl29u0le5T6Aj10h7"
    )
    assert parse_filter('displayName eq "Employees"', group_type()) == eq(
        AttrPath(CORE_GROUP, "displayName"), "Employees"
    )
    # Entra: ``manager`` unqualified and without ``.value``.
    assert f('id eq "x" and manager eq "y"') == And(
        eq(AttrPath(None, "id"), "x"), eq(AttrPath(ENTERPRISE, "manager", "value"), "y")
    )
    assert f('emails[type eq "work"].value eq "x@example.com"') == ValuePath(
        core("emails"),
        And(eq(inner("emails", "type"), "work"), eq(inner("emails", "value"), "x@example.com")),
    )


def test_filter_on_group_members() -> None:
    gid = "2819c223-7f76-453a-919d-413861904646"
    assert parse_filter(f'members[value eq "{gid}"]', group_type()) == ValuePath(
        AttrPath(CORE_GROUP, "members"),
        eq(AttrPath(CORE_GROUP, "members", "value", in_value_path=True), gid),
    )


# --------------------------------------------------------------- precedence


def test_and_binds_tighter_than_or() -> None:
    a, b, c = Present(core("title")), eq(core("userType"), "x"), eq(core("active"), False)
    assert f('title pr or userType eq "x" and active eq false') == Or(a, And(b, c))
    assert f('title pr and userType eq "x" or active eq false') == Or(And(a, b), c)
    d = Present(core("nickName"))
    assert f('title pr or userType eq "x" and active eq false or nickName pr') == Or(
        Or(a, And(b, c)), d
    )
    assert f('title pr and userType eq "x" or active eq false and nickName pr') == Or(
        And(a, b), And(c, d)
    )


def test_not_binds_tighter_than_and() -> None:
    a, b = Present(core("title")), eq(core("userType"), "x")
    assert f('not (title pr) and userType eq "x"') == And(Not(a), b)
    assert f('userType eq "x" or not (title pr) and userType eq "x"') == Or(b, And(Not(a), b))
    assert f("not(title pr)") == Not(a)  # errata 7319: no space needed


def test_parentheses_override_precedence() -> None:
    a, b, c = Present(core("title")), eq(core("userType"), "x"), eq(core("active"), False)
    assert f('(title pr or userType eq "x") and active eq false') == And(Or(a, b), c)
    assert f('title pr and (userType eq "x" or active eq false)') == And(a, Or(b, c))
    assert f("((title pr))") == a
    assert f('(((title pr or (userType eq "x"))) and (active eq false))') == And(Or(a, b), c)
    assert f('not ((title pr or userType eq "x") and active eq false)') == Not(And(Or(a, b), c))


def test_and_or_inside_value_path() -> None:
    t = inner("emails", "type")
    v = inner("emails", "value")
    assert f('emails[type eq "work" or type eq "home" and value co "x"]') == ValuePath(
        core("emails"), Or(eq(t, "work"), And(eq(t, "home"), Comparison(v, "co", "x")))
    )
    # errata 7322: grouping inside a valuePath
    assert f('emails[(type eq "work" or type eq "home") and not (value co "x")]') == ValuePath(
        core("emails"), And(Or(eq(t, "work"), eq(t, "home")), Not(Comparison(v, "co", "x")))
    )


def test_long_chains_are_balanced_not_deep() -> None:
    text = " or ".join(f'id eq "{i}"' for i in range(400))
    tree = f(text)

    def depth(node: object) -> int:
        if isinstance(node, And | Or):
            return 1 + max(depth(node.left), depth(node.right))
        return 1

    assert depth(tree) <= 12
    ids: list[object] = []

    def leaves(node: object) -> None:
        if isinstance(node, Or):
            leaves(node.left)
            leaves(node.right)
        else:
            assert isinstance(node, Comparison)
            ids.append(node.value)

    leaves(tree)
    assert ids == [str(i) for i in range(400)]


# --------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'userName eq "a\"b"', 'a"b'),
        (r'userName eq "tab\there"', "tab\there"),
        (r'userName eq "\u00e9l\u00e8ve"', "élève"),
        ('userName eq "élève"', "élève"),
        (r'userName eq "back\\slash"', "back\\slash"),
        ('userName eq ""', ""),
        ('userName eq "and or not ( ) [ ] pr"', "and or not ( ) [ ] pr"),
        ("active eq true", True),
        ("active eq false", False),
        ("active eq TRUE", True),
    ],
)
def test_comparison_values_are_decoded(text: str, value: object) -> None:
    tree = f(text)
    assert isinstance(tree, Comparison)
    assert tree.value == value and type(tree.value) is type(value)


def test_null_comparisons_become_presence_tests() -> None:
    assert f("title eq null") == Not(Present(core("title")))
    assert f("title ne null") == Present(core("title"))
    assert f("emails[value eq null]") == ValuePath(
        core("emails"), Not(Present(inner("emails", "value")))
    )


def test_multi_valued_complex_without_sub_addresses_value() -> None:
    assert f('emails co "x"') == Comparison(core("emails", "value"), "co", "x")
    assert f('urn:ietf:params:scim:schemas:core:2.0:User:emails eq "x"') == eq(
        core("emails", "value"), "x"
    )
    # ``pr`` keeps the whole attribute.
    assert f("emails pr") == Present(core("emails"))


def test_boolean_as_string_is_tolerated() -> None:
    assert f('active eq "True"') == eq(core("active"), True)


# --------------------------------------------------------------- errors


ERRORS = [
    # syntax
    ('userName eq "x', "unterminated string starting at offset 12"),
    (r'userName eq "\q"', "invalid escape"),
    ("userName eq", "ends unexpectedly"),
    ('(userName eq "x"', "ends unexpectedly"),
    ('userName eq "x")', "unexpected ')' at offset 15"),
    ('userName regex "x"', "unknown operator 'regex' at offset 9"),
    ('not userName eq "x"', "'not' must be followed by '('"),
    ('userName eq "x" and', "ends unexpectedly"),
    ('userName eq "x" userName eq "y"', "at offset 16"),
    ("userName eq bjensen", "at offset 12"),
    ('userName eq "x" & title pr', "unexpected character '&' at offset 16"),
    ("userName eq 1.2.3", "invalid number at offset 12"),
    ('userName eq "x" and ()', "unexpected ')'"),
    ("userName eq 01", "invalid number"),
    ('name .givenName eq "x"', "unexpected '.'"),
    ('name.givenName.x eq "x"', "unexpected '.'"),
    ('emails.type[value eq "x"]', "'[' cannot follow the sub-attribute 'type'"),
    ('emails[type eq "work"] eq "x"', "name a sub-attribute after ']'"),
    ('emails[type eq "work"].value', "an operator (and a value) must follow"),
    ('emails[type[value eq "x"]]', "nested"),
    ('emails[value eq "a"].value[type eq "b"] eq "c"', "offset"),
    ('urn:foo:bar:baz eq "x"', "unknown schema 'urn:foo:bar'"),
    # unknown attributes
    ('nosuch eq "x"', "unknown attribute 'nosuch'"),
    ('name.nosuch eq "x"', "unknown attribute 'name.nosuch'"),
    ('emails[nosuch eq "x"]', "unknown attribute 'emails.nosuch'"),
    ('userName.sub eq "x"', "'userName' has no sub-attribute 'sub'"),
    (f'{ENTERPRISE}:nosuch eq "x"', f"unknown attribute '{ENTERPRISE}:nosuch'"),
    ('userName[value eq "x"]', "needs a complex attribute"),
    # types (RFC 7644 table 3 and value types)
    ("active gt true", "'gt' is not defined for boolean attribute 'active'"),
    ("active le false", "'le' is not defined for boolean"),
    ('x509Certificates.value gt "AAAA"', "not defined for binary"),
    ('active co "t"', "'co' is only defined for string attributes; 'active' is boolean"),
    ('meta.created sw "2011"', "'meta.created' is dateTime"),
    ('active eq "yes"', "'active' is a boolean; the filter compares it with a string"),
    ("userName eq 5", "'userName' is a string; the filter compares it with 5"),
    ("userName eq true", "compares it with true"),
    ("meta.created gt 5", "'meta.created' is a dateTime"),
    ('meta.created gt "yesterday"', "'meta.created' is a dateTime"),
    ('meta.created gt "2011-13-45T04:42:34Z"', "is a dateTime"),
    ("title gt null", "cannot compare with null"),
    ('name eq "x"', "'name' is complex"),
    ('meta eq "x"', "'meta' is complex"),
    # returned: never
    ('password eq "t1meMa$heen"', "'password' cannot be used in a filter"),
    ("password pr", "'password' cannot be used in a filter"),
]


@pytest.mark.parametrize(("text", "detail"), ERRORS)
def test_invalid_filters(text: str, detail: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        f(text)
    err = info.value
    assert err.status == 400
    assert err.to_body()["scimType"] == "invalidFilter"
    assert detail in err.detail


def test_sensitive_value_is_not_echoed() -> None:
    with pytest.raises(InvalidFilter) as info:
        f('password eq "t1meMa$heen"')
    assert "t1meMa" not in info.value.detail


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_empty_filter(text: str) -> None:
    with pytest.raises(InvalidFilter, match="empty"):
        f(text)


def test_too_long_filter() -> None:
    text = 'userName eq "' + "x" * MAX_FILTER_LENGTH + '"'
    with pytest.raises(InvalidFilter, match="longer than"):
        f(text)


@pytest.mark.parametrize("opening", ["(", "not (", "emails[("])
def test_deep_nesting_is_invalid_filter_not_recursion_error(opening: str) -> None:
    depth = 1000
    text = opening * depth + "title pr" + ")" * depth
    with pytest.raises(InvalidFilter, match="nested deeper"):
        f(text)
    ok = "(" * (MAX_NESTING - 1) + "title pr" + ")" * (MAX_NESTING - 1)
    assert f(ok) == Present(core("title"))


@pytest.mark.parametrize(
    "junk",
    [
        "\x00",
        '"x"',
        "eq",
        "[",
        "]",
        ")",
        "userName eq (",
        "urn:",
        "a:b",
        ":",
        ".",
        "-",
        "userName eq -",
        'userName eq "\ud800"',
        r'userName eq "\ud800"',
        "userName pr pr",
        "1 eq 1",
        "userName eq 1e999999",
        "userName eq " + "9" * 100,
        'userName\u00a0eq "x"',
        "émails pr",
    ],
)
def test_junk_is_always_invalid_filter(junk: str) -> None:
    with pytest.raises(InvalidFilter):
        f(junk)


def test_non_string_input_is_invalid_filter() -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(None, user_type())  # type: ignore[arg-type]


# --------------------------------------------------------------- PATCH paths (RFC 7644 3.5.2)


def test_patch_paths_from_rfc7644() -> None:
    g = group_type()
    u = user_type()
    members = parse_path("members", g)
    assert members == PatchPath(AttrPath(CORE_GROUP, "members"))
    assert members.attr.defn is not None and members.attr.defn.name == "members"
    assert parse_path("name.givenName", u) == PatchPath(core("name", "givenName"))
    assert parse_path("name.familyName", u).attr.defn is not None
    assert parse_path('emails[type eq "work"].value', u) == PatchPath(
        core("emails"), eq(inner("emails", "type"), "work"), "value"
    )
    member_id = "2819c223-7f76-453a-919d-413861904646"
    assert parse_path(f'members[value eq "{member_id}"]', g) == PatchPath(
        AttrPath(CORE_GROUP, "members"),
        eq(AttrPath(CORE_GROUP, "members", "value", in_value_path=True), member_id),
    )
    assert parse_path(f'members[value eq "{member_id}"].display', g).sub == "display"
    assert parse_path('addresses[type eq "work"].formatted', u) == PatchPath(
        core("addresses"), eq(inner("addresses", "type"), "work"), "formatted"
    )
    assert parse_path("emails[primary eq true].value", u) == PatchPath(
        core("emails"), eq(inner("emails", "primary"), True), "value"
    )


def test_patch_paths_with_urns() -> None:
    u = user_type()
    manager = parse_path(f"{ENTERPRISE}:manager", u)
    assert manager == PatchPath(AttrPath(ENTERPRISE, "manager"))
    assert manager.attr.extension
    assert parse_path(f"{ENTERPRISE}:manager.value", u) == PatchPath(
        AttrPath(ENTERPRISE, "manager", "value")
    )
    assert parse_path(f"{ENTERPRISE}:employeeNumber", u).attr.extension
    assert parse_path(f"{CORE_USER}:name.familyName", u) == PatchPath(core("name", "familyName"))
    # Case-insensitive URN and names; canonical output.
    low = parse_path(f"{ENTERPRISE.lower()}:MANAGER.VALUE", u)
    assert low == PatchPath(AttrPath(ENTERPRISE, "manager", "value"))


def test_whole_extension_path() -> None:
    path = parse_path(ENTERPRISE, user_type())
    assert path == PatchPath(AttrPath(ENTERPRISE, "", None))
    assert path.attr.extension and path.attr.defn is None
    with pytest.raises(InvalidPath, match="core schema"):
        parse_path(CORE_USER, user_type())


def test_patch_path_keeps_returned_never_and_multi_valued_targets() -> None:
    u = user_type()
    assert parse_path("password", u) == PatchPath(core("password"))
    assert parse_path("emails", u) == PatchPath(core("emails"))


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("nosuch", "unknown attribute 'nosuch'"),
        ("name.nosuch", "unknown attribute 'name.nosuch'"),
        ('emails[type eq "work"].nosuch', "unknown attribute 'emails.nosuch'"),
        ('emails[nosuch eq "work"]', "unknown attribute 'emails.nosuch'"),
        ('emails[type eq "work"', "ends unexpectedly"),
        ('userName eq "x"', "not an attribute path"),
        ("userName pr", "not an attribute path"),
        ("title or userName", "at offset"),
        ("", "empty"),
        ("urn:nope:x:attr", "unknown schema"),
        ("emails[primary gt true]", "not defined"),
        ("name.givenName.x", "unexpected '.'"),
        ("not (userName)", "at offset"),
        ("(userName)", "at offset"),
    ],
)
def test_invalid_patch_paths(text: str, detail: str) -> None:
    with pytest.raises(InvalidPath) as info:
        parse_path(text, user_type())
    assert info.value.to_body()["scimType"] == "invalidPath"
    assert detail in info.value.detail


# --------------------------------------------------------------- sortBy / attribute paths


def test_parse_attr_path() -> None:
    u = user_type()
    assert parse_attr_path("userName", u) == core("userName")
    assert parse_attr_path("NAME.familyname", u) == core("name", "familyName")
    assert parse_attr_path("meta.lastModified", u) == AttrPath(None, "meta", "lastModified")
    assert parse_attr_path("emails", u) == core("emails", "value")
    assert parse_attr_path(f"{ENTERPRISE}:employeeNumber", u) == AttrPath(
        ENTERPRISE, "employeeNumber"
    )
    assert parse_attr_path("name", u, allow_complex=True) == core("name")


@pytest.mark.parametrize("text", ["nosuch", "name", "name.nosuch", 'userName eq "x"', "", "a b"])
def test_invalid_sort_by_is_invalid_value(text: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_attr_path(text, user_type())
    assert info.value.to_body()["scimType"] == "invalidValue"
    assert "sortBy" in info.value.detail or "attribute" in info.value.detail


def test_attr_path_error_class_is_selectable() -> None:
    with pytest.raises(InvalidFilter):
        parse_attr_path("nosuch", user_type(), error=InvalidFilter, what="attributes")


# --------------------------------------------------------------- formatting


def test_format_filter_round_trips_examples() -> None:
    for text in RFC_EXAMPLES:
        tree = f(text)
        assert f(format_filter(tree)) == tree


def test_format_filter_is_readable() -> None:
    assert format_filter(f('title pr or userType eq "x" and active eq false')) == (
        'title pr or userType eq "x" and active eq false'
    )
    assert format_filter(f("(title pr or nickName pr) and active eq true")) == (
        "(title pr or nickName pr) and active eq true"
    )
    assert format_filter(f(f'{ENTERPRISE}:employeeNumber eq "1"')) == (
        f'{ENTERPRISE}:employeeNumber eq "1"'
    )


def test_errors_are_scim_errors_only() -> None:
    # A grab-bag of hostile inputs: nothing but ScimError subclasses may escape.
    for text in ["[" * 40, "(" * 33 + ")" * 33, "a" * 20000, '"' * 3, "\\", "emails[]", "x[y]z"]:
        with pytest.raises(ScimError):
            f(text)
