"""LDAP result codes -> SCIM errors, from the one table."""

from __future__ import annotations

import ldap  # type: ignore[import-untyped]
import pytest
from scimd_ldap.errors import to_scim

from scimd import errors


@pytest.mark.parametrize(
    ("exc", "cls", "status"),
    [
        (ldap.ALREADY_EXISTS, errors.Uniqueness, 409),
        (ldap.NO_SUCH_OBJECT, errors.NotFound, 404),
        (ldap.INSUFFICIENT_ACCESS, errors.Forbidden, 403),
        (ldap.BUSY, errors.ServiceUnavailable, 503),
        (ldap.UNAVAILABLE, errors.ServiceUnavailable, 503),
        (ldap.SERVER_DOWN, errors.ServiceUnavailable, 503),
        (ldap.TIMEOUT, errors.ServiceUnavailable, 503),
        (ldap.INVALID_SYNTAX, errors.InvalidValue, 400),
        (ldap.OBJECT_CLASS_VIOLATION, errors.InvalidValue, 400),
        (ldap.SIZELIMIT_EXCEEDED, errors.TooMany, 400),
    ],
)
def test_table(exc: type[ldap.LDAPError], cls: type[errors.ScimError], status: int) -> None:
    mapped = to_scim(exc({"desc": "x"}))
    assert isinstance(mapped, cls)
    assert mapped.status == status


def test_unknown_code_is_never_a_driver_exception() -> None:
    assert isinstance(to_scim(ldap.PROTOCOL_ERROR({"desc": "x"})), errors.ScimError)
