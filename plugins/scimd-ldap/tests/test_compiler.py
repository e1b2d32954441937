"""SCIM filter -> RFC 4515 superset filter: escaping and negation safety."""

from __future__ import annotations

from pathlib import Path

import pytest
from scimd_ldap.compiler import compile_filter
from scimd_ldap.mapping import default_user_map

from scimd.query.ast import AttrPath
from scimd.query.parse import parse_filter
from scimd.query.planner import filterable_key
from scimd.schema.model import ResourceType
from scimd.testing import build_contract_registry

TMAP = default_user_map()


def resolve(path: AttrPath) -> str | None:
    key = filterable_key(path)
    if key == "id":
        return "entryUUID"
    return next((a.ldap for a in TMAP.attrs if a.scim.lower() == key), None)


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> ResourceType:
    rtype = build_contract_registry(Path(tmp_path_factory.mktemp("s"))).resource_type("User")
    assert rtype is not None
    return rtype


@pytest.mark.parametrize(
    ("scim", "ldap"),
    [
        ('userName eq "bjensen"', "(uid=bjensen)"),
        ('userName co "a*b"', "(uid=*a\\2ab*)"),
        ('userName sw "(x)"', "(uid=\\28x\\29*)"),
        ('userName ew "back\\\\slash"', "(uid=*back\\5cslash)"),
        ('displayName eq "Zoë ☃"', "(displayName=Zoë ☃)"),
        ("title pr", "(title=*)"),
        ('emails[type eq "work" and value co "@x.org"]', "(mail=*@x.org*)"),
        ('userName eq "a" and title eq "b"', "(&(uid=a)(title=b))"),
        ('userName eq "a" or title eq "b"', "(|(uid=a)(title=b))"),
        ('userName eq "a" and nickName eq "b"', "(uid=a)"),
        ('id eq "x"', "(entryUUID=x)"),
    ],
)
def test_compiles(users: ResourceType, scim: str, ldap: str) -> None:
    assert compile_filter(parse_filter(scim, users), resolve) == ldap


@pytest.mark.parametrize(
    "scim",
    [
        'userName ne "a"',
        'not (userName eq "a")',
        'userName eq "a" or nickName eq "b"',  # one side unmapped: cannot narrow
        'id co "x"',  # no substring rule on entryUUID
        'userName eq ""',
    ],
)
def test_never_narrows_what_it_cannot(users: ResourceType, scim: str) -> None:
    assert compile_filter(parse_filter(scim, users), resolve) is None


def test_nul_is_escaped(users: ResourceType) -> None:
    from scimd.query.ast import Comparison

    flt = Comparison(AttrPath(None, "userName"), "eq", "a\x00b")
    assert compile_filter(flt, lambda p: "uid") == "(uid=a\\00b)"
