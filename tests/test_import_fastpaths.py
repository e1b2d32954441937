"""The shortcuts taken for ``scimd import`` throughput give the answers of the long way:

* ``extract_values`` caches its schema lookups per resource type and attribute: the rows
  are those of a cold cache, for every resource type, after the cache is cleared when
  full, and for names that are not attributes;
* ``normalize_email`` skips its per-character scan for printable text without spaces:
  every code point that scan rejects is still rejected, every other one still accepted;
* ``email_forms`` caches the Unicode form of a domain: the forms are those of an
  uncached ``idna.decode``, for valid, IDNA and undecodable domains.
"""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import idna
import pytest

from scimd.jit.email import EmailError, NormalizedEmail, normalize_email
from scimd.schema.loader import builtin_registry
from scimd.store import sqlcommon
from scimd.store.sqlcommon import Relations, extract_values
from scimd.unique_email import email_forms

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _clear() -> None:
    for cache in (sqlcommon._TOP, sqlcommon._EXT, sqlcommon._SUB, sqlcommon._NAMED):
        cache.clear()


def _rows(rtype: Any, resource: dict[str, Any]) -> list[tuple[Any, ...]]:
    rel = Relations.of(rtype)
    return [
        (defn.schema, defn.path, elem, v_text, v_num, original)
        for defn, elem, v_text, v_num, original in extract_values(rtype, resource, rel)
    ]


RESOURCES: list[tuple[str, dict[str, Any]]] = [
    (
        "User",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "id": "not-a-row",
            "userName": "Alice@Example.com",
            "password": "never a row",
            "name": {"givenName": "Alice", "familyName": "Liddell", "unknownSub": "x"},
            "displayName": "Alice",
            "emails": [
                {"value": "Alice@Example.com", "type": "work", "primary": True},
                {"value": "", "type": "home"},
                "not a dict",
            ],
            "groups": [{"value": "g1"}],
            "x509Certificates": [{"value": "MIIB"}],
            "active": True,
            "notAnAttribute": 1,
            ENTERPRISE: {"employeeNumber": "7", "manager": {"value": "m1"}, "nope": 2},
            "urn:example:unknown": {"a": 1},
            "meta": {"created": "2026-01-02T03:04:05+02:00", "version": 'W/"1"'},
        },
    ),
    (
        "Group",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Admins",
            "members": [{"value": "u1"}],
            "meta": {"lastModified": "not a date"},
        },
    ),
]


def test_extract_values_cache_gives_the_cold_rows() -> None:
    registry = builtin_registry()
    for name, resource in RESOURCES:
        rtype = registry.resource_type(name)
        assert rtype is not None
        _clear()
        cold = _rows(rtype, resource)
        assert cold == _rows(rtype, resource)  # warm
        assert cold
    # the same attribute names in two resource types map to each type's own attributes
    users, groups = registry.resource_type("User"), registry.resource_type("Group")
    assert users is not None and groups is not None
    _clear()
    user_rows = _rows(users, {"displayName": "x"})
    group_rows = _rows(groups, {"displayName": "x"})
    assert user_rows[0][0] == users.schema.id and group_rows[0][0] == groups.schema.id
    # a second registry (new schema objects) is not answered from the first one's entries
    other = builtin_registry().resource_type("User")
    assert other is not None
    defn = extract_values(other, {"userName": "a"}, Relations.of(other))[0][0]
    assert defn is other.schema.attr("userName")


def test_extract_values_cache_cleared_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = builtin_registry()
    users = registry.resource_type("User")
    assert users is not None
    _clear()
    expected = [_rows(users, resource) for name, resource in RESOURCES if name == "User"]
    monkeypatch.setattr(sqlcommon, "_CACHE_LIMIT", 3)
    _clear()
    for _ in range(3):
        got = [_rows(users, resource) for name, resource in RESOURCES if name == "User"]
        assert got == expected
        assert all(
            len(c) <= 3 for c in (sqlcommon._TOP, sqlcommon._EXT, sqlcommon._SUB, sqlcommon._NAMED)
        )


def _rejected_by_scan(text: str) -> bool:
    """The per-character rule of ``normalize_email`` (JIT.md "Email normalisation")."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch.isspace() for ch in text)


def _code_points() -> list[int]:
    """Every code point the scan rejects, plus a spread of the others."""
    chosen = set(range(0x00, 0x200)) | set(range(0, sys.maxunicode + 1, 997))
    chosen |= {
        cp
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Zl", "Zp", "Zs") or chr(cp).isspace()
    }
    chosen.discard(ord("@"))
    return sorted(chosen)


def test_normalize_email_fast_path_rejects_what_the_scan_rejects() -> None:
    rejected = accepted = 0
    for cp in _code_points():
        raw = f"a{chr(cp)}b@example.com"
        text = unicodedata.normalize("NFC", raw).strip()
        try:
            normalize_email(raw)
        except EmailError as exc:
            assert _rejected_by_scan(text) or text.count("@") != 1, (hex(cp), exc)
            rejected += 1
        else:
            assert not _rejected_by_scan(text), hex(cp)
            accepted += 1
    assert rejected > 100 and accepted > 1000


@pytest.mark.parametrize(
    "address",
    [
        "User@Example.COM",
        "user@xn--bcher-kva.example",
        "user@bücher.example",
        "Ünïcode@EXAMPLE.org",
    ],
)
def test_email_forms_with_cached_domains(address: str) -> None:
    check_forms(normalize_email(address))


def test_email_forms_of_an_undecodable_domain() -> None:
    """A stored key whose domain does not decode (older data): the domain as it is."""
    check_forms(NormalizedEmail("u@xn--zz.example", "u@xn--zz.example", "u", "xn--zz.example"))


def check_forms(email: NormalizedEmail) -> None:
    try:
        unicode_domain = idna.decode(email.domain)
    except idna.IDNAError:
        unicode_domain = email.domain
    forms = [email.address, email.original]
    if unicode_domain != email.domain:
        forms.append(f"{email.local}@{unicode_domain}")
    forms += [unicodedata.normalize("NFD", f) for f in forms]
    for _ in range(2):  # cold, then cached
        assert email_forms(email) == list(dict.fromkeys(forms))
