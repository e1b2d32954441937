"""SQLSTATE -> SCIM error, in one table.

``classify(exc)`` tells the backend what a driver exception means: ``retry`` (the
transaction is rerun, a bounded number of times), or a ``scimd.errors`` instance to raise.
Unique violations are mapped by the backend itself where it knows which attribute clashed;
the generic ``Uniqueness`` here is the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import asyncpg  # type: ignore[import-untyped]

from scimd.errors import InvalidValue, ScimError, ServiceUnavailable, Uniqueness

__all__ = ["RETRY", "SQLSTATE_ERRORS", "classify", "is_connection_error"]

log = logging.getLogger("scimd.postgres")

RETRY: Literal["retry"] = "retry"
RETRY_AFTER = 5
"""Seconds clients are told to wait (``Retry-After``) while PostgreSQL is unreachable."""


def _unavailable(what: str) -> Callable[[], ScimError]:
    return lambda: ServiceUnavailable(
        f"The resource store is unavailable ({what})", retry_after=RETRY_AFTER
    )


SQLSTATE_ERRORS: dict[str, Literal["retry"] | Callable[[], ScimError]] = {
    # integrity
    "23505": lambda: Uniqueness("A unique attribute value is already in use"),
    # concurrency: rerun the whole transaction
    "40001": RETRY,  # serialization_failure
    "40P01": RETRY,  # deadlock_detected
    # data the server cannot store or compare
    "22021": lambda: InvalidValue("A value contains a character PostgreSQL cannot store"),
    "22P05": lambda: InvalidValue("A value contains a character PostgreSQL cannot store"),
    "22003": lambda: InvalidValue("A number is out of range"),
    "54000": lambda: InvalidValue("A value is too long to be indexed"),
    # the server is going away, overloaded or too slow
    "57014": _unavailable("statement timeout"),
    "57P01": _unavailable("server shutting down"),
    "57P02": _unavailable("server crashed"),
    "57P03": _unavailable("server starting up"),
    "53300": _unavailable("too many connections"),
    "53000": _unavailable("insufficient resources"),
    "25006": _unavailable("read-only transaction (standby)"),
}
"""Exact SQLSTATEs. Class ``08`` (connection exception) is ServiceUnavailable too."""


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.CannotConnectNowError,
    ):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state.startswith("08")


def classify(exc: BaseException) -> Literal["retry"] | ScimError:
    """What ``exc`` (raised by asyncpg or the socket) means for the request."""
    if isinstance(exc, ScimError):
        return exc
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state in SQLSTATE_ERRORS:
        entry = SQLSTATE_ERRORS[state]
        return entry if entry == RETRY else entry()
    if is_connection_error(exc):
        log.warning("postgres unavailable: %r", exc)
        return _unavailable("connection failed")()
    if isinstance(state, str) and state.startswith("22"):
        return InvalidValue("A value cannot be stored or compared")
    log.error("postgres error: %r", exc)
    return ScimError("Internal storage error")
