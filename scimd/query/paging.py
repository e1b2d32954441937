"""Paging: RFC 9865 cursors and RFC 7644 3.4.2.4 index paging parameters.

Cursors are stateless: the token carries the keyset position (sort value and id of the
boundary resource, direction) and its issue time, authenticated with a truncated
HMAC-SHA256 under a server secret. The MAC also covers the *query fingerprint* (tenant,
resource type, filter, sort), so a cursor is only valid for the query that issued it: a
cursor replayed against another filter, sort or tenant is ``invalidCursor`` (RFC 9865 4).

Token layout (base64url, no padding)::

    payload = orjson([1, fp_tag, issued_at, "n"|"p", sort_value, id])
    token   = b64url(payload || HMAC-SHA256(secret, fingerprint || 0x00 || payload)[:16])

``fp_tag`` (8 hex chars of SHA-256 of the fingerprint) only lets ``decode`` tell "cursor of
another query" from "tampered cursor" in the error detail; authenticity comes from the MAC.
The payload is not encrypted: it holds the sort value of a resource the client has already
seen on the previous page, never anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from typing import Any

import orjson

from scimd.backend import Keyset
from scimd.errors import ExpiredCursor, InvalidCursor, InvalidValue

__all__ = ["MAX_CURSOR_LENGTH", "CursorCodec", "clamp_index", "query_fingerprint"]

MAX_CURSOR_LENGTH = 4096
_MAC_LEN = 16
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_VERSION = 1
_CLOCK_SKEW = 300.0
"""Seconds a cursor's issue time may lie in the future (several scimd hosts)."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def _fp_tag(fingerprint: str) -> str:
    return hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:8]


def query_fingerprint(
    *,
    tenant: str,
    resource_type: str,
    filter_text: str | None,
    sort_by: str | None,
    sort_order: str | None,
) -> str:
    """A stable digest of what defines a result set. ``count``, ``attributes`` and
    ``excludedAttributes`` are not part of it (a client may change page size between
    pages, RFC 9865 3). Attribute names and the resource type are case-insensitive; the
    filter text is taken as given (stripped)."""
    order = (sort_order or "ascending").strip().lower()
    parts = [
        "scimd-cursor-v1",
        tenant,
        resource_type.lower(),
        (filter_text or "").strip(),
        (sort_by or "").strip().lower(),
        order if sort_by else "",
    ]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()


class CursorCodec:
    """Encode and verify RFC 9865 cursors.

    :param secret: HMAC key (at least 16 bytes); every scimd process serving the same
        clients must share it.
    :param ttl: seconds a cursor stays valid (``cursorTimeout``).
    """

    def __init__(self, secret: bytes, ttl: float) -> None:
        if len(secret) < 16:
            raise ValueError("cursor secret must be at least 16 bytes")
        if ttl <= 0:
            raise ValueError("cursor ttl must be positive")
        self._secret = bytes(secret)
        self.ttl = float(ttl)

    def _mac(self, fingerprint: str, payload: bytes) -> bytes:
        msg = fingerprint.encode("utf-8") + b"\x00" + payload
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:_MAC_LEN]

    def encode(self, keyset: Keyset, fingerprint: str, *, now: float | None = None) -> str:
        """An opaque URL-safe token for ``keyset`` under the query ``fingerprint``."""
        issued = int(time.time() if now is None else now)
        body: list[Any] = [
            _VERSION,
            _fp_tag(fingerprint),
            issued,
            "n" if keyset.direction == "next" else "p",
            keyset.sort_value,
            keyset.id,
        ]
        payload = orjson.dumps(body)
        return _b64e(payload + self._mac(fingerprint, payload))

    def decode(self, token: str, fingerprint: str, *, now: float | None = None) -> Keyset:
        """Verify ``token`` and return its keyset.

        :raises InvalidCursor: malformed, tampered, or issued for another query/tenant.
        :raises ExpiredCursor: authentic but older than ``ttl``.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor("The cursor value is invalid")
        try:
            raw = _b64d(token)
        except (binascii.Error, ValueError):
            raise InvalidCursor("The cursor value is not a valid cursor") from None
        if len(raw) <= _MAC_LEN:
            raise InvalidCursor("The cursor value is not a valid cursor")
        payload, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(fingerprint, payload)):
            detail = "The cursor value is invalid"
            try:
                body = orjson.loads(payload)
                if isinstance(body, list) and len(body) > 1 and body[1] != _fp_tag(fingerprint):
                    detail = (
                        "The cursor was issued for a different query; repeat the same "
                        "filter and sortBy, or start again without a cursor"
                    )
            except orjson.JSONDecodeError:
                pass
            raise InvalidCursor(detail)
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:  # pragma: no cover - authentic payloads are JSON
            raise InvalidCursor("The cursor value is invalid") from None
        keyset, issued = self._unpack(body)
        current = time.time() if now is None else now
        if issued > current + _CLOCK_SKEW:
            raise InvalidCursor("The cursor value is invalid")
        if current - issued > self.ttl:
            raise ExpiredCursor("The cursor has expired; start again without a cursor")
        return keyset

    @staticmethod
    def _unpack(body: Any) -> tuple[Keyset, int]:
        if not isinstance(body, list) or len(body) != 6 or body[0] != _VERSION:
            raise InvalidCursor("The cursor value is invalid")
        _v, _tag, issued, direction, sort_value, rid = body
        if (
            not isinstance(issued, int)
            or isinstance(issued, bool)
            or direction not in ("n", "p")
            or not isinstance(rid, str)
            or not (sort_value is None or isinstance(sort_value, str | int | float | bool))
        ):
            raise InvalidCursor("The cursor value is invalid")
        return Keyset(sort_value, rid, "next" if direction == "n" else "prev"), issued


def _as_int(value: str | int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidValue(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text == "":
        return None
    if not _INTEGER.fullmatch(text):
        raise InvalidValue(f"{name} must be an integer, got {value[:30]!r}")
    return int(text)


def clamp_index(
    start_index: str | int | None,
    count: str | int | None,
    *,
    default_count: int,
    max_count: int,
) -> tuple[int, int]:
    """``(startIndex, count)`` per RFC 7644 3.4.2.4.

    * ``startIndex`` absent -> 1; a value < 1 is interpreted as 1.
    * ``count`` absent -> ``default_count``; negative -> 0; above ``max_count`` ->
      ``max_count`` (the response then has fewer items; ``itemsPerPage`` tells).
    * Empty values count as absent. Anything that is not a (decimal, optionally signed)
      integer is 400 ``invalidValue``: silently reading ``count=abc`` as a default would
      hide client bugs, and the RFC only defines integers.
    """
    si = _as_int(start_index, "startIndex")
    c = _as_int(count, "count")
    si = 1 if si is None or si < 1 else si
    c = default_count if c is None else c
    c = max(0, min(c, max_count))
    return si, c
