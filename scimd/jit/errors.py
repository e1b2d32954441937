"""JIT errors: RFC 9457 problem+json with ``outcome`` and ``reason`` (JIT.md "Responses")."""

from __future__ import annotations

from typing import Any

__all__ = ["PROBLEM_JSON", "JitError"]

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}

_OUTCOMES = {
    400: "rejected",
    401: "unauthenticated",
    403: "denied",
    409: "conflict",
    413: "rejected",
    422: "rejected",
    429: "retry",
    503: "retry",
}


class JitError(Exception):
    """A refused login. ``detail`` goes to the caller; ``internal`` (why exactly, e.g. which
    claim failed) only to the audit log: token failures stay generic to the caller."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str = "",
        *,
        internal: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {internal or detail}")
        self.status = status
        self.reason = reason
        self.detail = detail or reason.replace("_", " ")
        self.internal = internal or self.detail
        self.headers = headers or {}

    @property
    def outcome(self) -> str:
        return _OUTCOMES.get(self.status, "error")

    def to_body(self) -> dict[str, Any]:
        return {
            "type": f"urn:scimd:jit:{self.reason}",
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "outcome": self.outcome,
            "reason": self.reason,
        }
