"""LDAP result code -> SCIM error, in one table.

``to_scim(exc)`` turns a python-ldap exception into the ``scimd.errors`` instance the
backend raises. The backend maps ``ALREADY_EXISTS`` itself where it knows which attribute
clashed (the RDN attribute); the generic ``Uniqueness`` here is the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import ldap  # type: ignore[import-untyped]

from scimd.errors import (
    BadRequest,
    Forbidden,
    InvalidValue,
    NotFound,
    ScimError,
    ServiceUnavailable,
    TooMany,
    Uniqueness,
)

__all__ = ["LDAP_ERRORS", "RETRY_AFTER", "to_scim"]

log = logging.getLogger("scimd.ldap")

RETRY_AFTER = 5
"""Seconds clients are told to wait (``Retry-After``) while the directory is unavailable."""


def _unavailable(what: str) -> Callable[[], ScimError]:
    return lambda: ServiceUnavailable(
        f"The directory is unavailable ({what})", retry_after=RETRY_AFTER
    )


LDAP_ERRORS: dict[type[ldap.LDAPError], Callable[[], ScimError]] = {
    ldap.ALREADY_EXISTS: lambda: Uniqueness("An entry with this name already exists"),
    ldap.NO_SUCH_OBJECT: lambda: NotFound("Resource not found"),
    ldap.INSUFFICIENT_ACCESS: lambda: Forbidden("The directory refused the operation"),
    ldap.INAPPROPRIATE_AUTH: lambda: Forbidden("The directory refused the operation"),
    ldap.STRONG_AUTH_REQUIRED: lambda: Forbidden("The directory requires stronger auth"),
    ldap.CONFIDENTIALITY_REQUIRED: lambda: Forbidden("The directory requires TLS"),
    ldap.INVALID_SYNTAX: lambda: InvalidValue("A value has a syntax the directory rejects"),
    ldap.CONSTRAINT_VIOLATION: lambda: InvalidValue("A value violates a directory constraint"),
    ldap.OBJECT_CLASS_VIOLATION: lambda: InvalidValue(
        "The resource lacks an attribute the directory requires"
    ),
    ldap.UNDEFINED_TYPE: lambda: InvalidValue("The mapping names an unknown LDAP attribute"),
    ldap.TYPE_OR_VALUE_EXISTS: lambda: InvalidValue("A value is given twice"),
    ldap.INVALID_DN_SYNTAX: lambda: InvalidValue("A value cannot be used in a DN"),
    ldap.NAMING_VIOLATION: lambda: InvalidValue("A value cannot be used in a DN"),
    ldap.SIZELIMIT_EXCEEDED: lambda: TooMany("The directory's size limit was exceeded"),
    ldap.ADMINLIMIT_EXCEEDED: lambda: TooMany("The directory's admin limit was exceeded"),
    ldap.UNWILLING_TO_PERFORM: lambda: BadRequest("The directory is unwilling to perform this"),
    ldap.BUSY: _unavailable("busy"),
    ldap.UNAVAILABLE: _unavailable("unavailable"),
    ldap.SERVER_DOWN: _unavailable("server down"),
    ldap.CONNECT_ERROR: _unavailable("cannot connect"),
    ldap.TIMEOUT: _unavailable("timeout"),
    ldap.TIMELIMIT_EXCEEDED: _unavailable("time limit exceeded"),
    ldap.INVALID_CREDENTIALS: _unavailable("the bridge's bind credentials were rejected"),
    ldap.OTHER: _unavailable("other error"),
}
"""Exact python-ldap exception classes (one per result code)."""


def _tls_failure(exc: BaseException) -> bool:
    args = getattr(exc, "args", ())
    detail = args[0] if args and isinstance(args[0], dict) else {}
    text = f"{detail.get('info', '')} {detail.get('desc', '')}".lower()
    return "certificate" in text or "tls" in text or "ssl" in text


def to_scim(exc: BaseException) -> ScimError:
    """What ``exc`` (raised by python-ldap or the socket) means for the request."""
    if isinstance(exc, ScimError):
        return exc
    from scimd_ldap.ad import ad_error

    refined = ad_error(exc)
    if refined is not None:
        return refined
    if isinstance(exc, ldap.SERVER_DOWN | ldap.CONNECT_ERROR) and _tls_failure(exc):
        log.error("LDAP TLS handshake failed: %r", exc)
        return ServiceUnavailable(
            "The directory's TLS certificate could not be verified (check storage.ldap."
            "tls_ca_file and the server certificate)",
            retry_after=RETRY_AFTER,
        )
    factory = LDAP_ERRORS.get(type(exc))
    if factory is not None:
        return factory()
    if isinstance(exc, OSError | TimeoutError):
        return _unavailable(type(exc).__name__)()
    log.error("unexpected LDAP error: %r", exc)
    return _unavailable(type(exc).__name__)()
