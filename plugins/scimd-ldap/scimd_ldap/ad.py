"""Active Directory specifics: objectGUID, userAccountControl, ranged ``member``,
``unicodePwd`` and the Win32 error code in AD's diagnostic messages.

* ``objectGUID`` is 16 bytes in Microsoft's mixed-endian layout (the first three fields
  little-endian): ``uuid.UUID(bytes_le=raw)`` is the text form AD tools show, and a search
  for it escapes every byte (``(objectGUID=\\78\\56\\34\\12...)``).
* ``userAccountControl`` is a bit field; SCIM ``active`` is the inverse of ACCOUNTDISABLE
  (``0x2``). A write flips that bit only and keeps every other bit as read.
* A ``member`` attribute with more values than the server's MaxValRange (1500 by default)
  comes back as ``member;range=0-1499``; the next slice is asked for as
  ``member;range=1500-*`` until the returned name ends with ``-*``.
* ``unicodePwd`` takes the password in double quotes, UTF-16-LE encoded, and AD accepts it
  only over an encrypted connection.
* AD puts a Win32 error code in the diagnostic message (``info``), e.g.
  ``00002071: UpdErr: DSID-..., problem 6005 (ENTRY_EXISTS)``: it refines the LDAP result code.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from scimd import errors

__all__ = [
    "ACCOUNTDISABLE",
    "AD_ERRORS",
    "NORMAL_ACCOUNT",
    "ad_error",
    "complete_ranges",
    "guid_filter_value",
    "guid_text",
    "uac_active",
    "uac_with_active",
    "unicode_pwd",
]

ACCOUNTDISABLE = 0x2
NORMAL_ACCOUNT = 0x200
_RANGE = re.compile(r"^(?P<attr>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)
_WIN32 = re.compile(r"^\s*([0-9A-Fa-f]{8})\s*:")


def guid_text(raw: bytes) -> str:
    """objectGUID bytes -> ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``."""
    return str(uuid.UUID(bytes_le=raw))


def guid_filter_value(text: str) -> str | None:
    """The RFC 4515 assertion value for a GUID in text form (every byte escaped), or None
    when ``text`` is not a GUID."""
    try:
        raw = uuid.UUID(text).bytes_le
    except (ValueError, AttributeError, TypeError):
        return None
    return "".join(f"\\{b:02x}" for b in raw)


def uac_active(value: str | None) -> bool:
    """SCIM ``active`` from a userAccountControl value (absent: active)."""
    try:
        return not int(value or "0") & ACCOUNTDISABLE
    except ValueError:
        return True


def uac_with_active(old: str | None, active: bool) -> str:
    """``old`` with ACCOUNTDISABLE set or cleared, every other bit kept (a new account:
    NORMAL_ACCOUNT)."""
    try:
        bits = int(old) if old else NORMAL_ACCOUNT
    except ValueError:
        bits = NORMAL_ACCOUNT
    bits = bits & ~ACCOUNTDISABLE if active else bits | ACCOUNTDISABLE
    return str(bits)


def unicode_pwd(password: str) -> bytes:
    """The ``unicodePwd`` value for ``password``."""
    return f'"{password}"'.encode("utf-16-le")


def complete_ranges(
    fetch: Callable[[str], Mapping[str, list[bytes]]], attrs: dict[str, list[bytes]]
) -> dict[str, list[bytes]]:
    """Replace ranged attributes (``member;range=0-1499``) in ``attrs`` by the full value
    list, fetching the next slices with ``fetch("member;range=1500-*")`` (which returns the
    entry's attributes for that one requested attribute). Bounded: stops when a slice is
    empty or does not advance."""
    out = {k: v for k, v in attrs.items() if not _RANGE.match(k)}
    for key, values in attrs.items():
        m = _RANGE.match(key)
        if not m:
            continue
        name = m["attr"]
        collected = list(values)
        high = m["high"]
        low = int(m["low"])
        for _ in range(100_000):
            if high == "*":
                break
            start = int(high) + 1
            if start <= low:
                break
            page = fetch(f"{name};range={start}-*")
            nxt = next(((k, v) for k, v in page.items() if _RANGE.match(k)), None)
            if nxt is None:
                break
            nm = _RANGE.match(nxt[0])
            assert nm is not None
            collected.extend(nxt[1])
            low, high = int(nm["low"]), nm["high"]
            if not nxt[1]:
                break
        out[name] = out.get(name, []) + collected
    return out


def _e(cls: Callable[[str], errors.ScimError], text: str) -> Callable[[], errors.ScimError]:
    return lambda: cls(text)


AD_ERRORS: dict[int, Callable[[], errors.ScimError]] = {
    0x00000005: _e(errors.Forbidden, "Active Directory denied access (ERROR_ACCESS_DENIED)"),
    0x00000056: _e(errors.InvalidValue, "The password is not valid (ERROR_INVALID_PASSWORD)"),
    0x00000057: _e(
        errors.InvalidValue, "Active Directory rejected a value (ERROR_INVALID_PARAMETER)"
    ),
    0x00000524: _e(errors.Uniqueness, "The account name is already in use (ERROR_USER_EXISTS)"),
    0x0000052D: _e(
        errors.InvalidValue,
        "The password does not meet the domain's password policy (ERROR_PASSWORD_RESTRICTION)",
    ),
    0x0000200B: _e(
        errors.InvalidValue, "A value has a syntax AD rejects (ERROR_DS_INVALID_ATTRIBUTE_SYNTAX)"
    ),
    0x00002071: _e(
        errors.Uniqueness,
        "An object with this name already exists (ERROR_DS_OBJ_STRING_NAME_EXISTS)",
    ),
    0x0000208D: _e(errors.NotFound, "Resource not found (ERROR_DS_OBJ_NOT_FOUND)"),
    0x00002035: _e(
        errors.BadRequest,
        "Active Directory is unwilling to perform this (ERROR_DS_UNWILLING_TO_PERFORM)",
    ),
}
"""Win32 codes from AD diagnostic messages -> SCIM errors (they win over the result code)."""


def ad_error(exc: BaseException) -> errors.ScimError | None:
    """The SCIM error for an AD diagnostic code in ``exc``'s ``info``, or None."""
    args: Any = getattr(exc, "args", ())
    info = args[0].get("info") if args and isinstance(args[0], dict) else None
    if isinstance(info, bytes):
        info = info.decode("utf-8", "replace")
    if not isinstance(info, str):
        return None
    m = _WIN32.match(info)
    if not m:
        return None
    factory = AD_ERRORS.get(int(m.group(1), 16))
    return factory() if factory else None
