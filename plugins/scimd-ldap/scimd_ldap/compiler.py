"""SCIM filter AST -> RFC 4515 LDAP filter that selects a *superset* of the matches.

LDAP matching rules are looser than SCIM's (case-insensitive, insignificant spaces folded),
so the backend re-checks every candidate with the reference evaluator
(``scimd.query.evaluate.matches``): the pushed LDAP filter only narrows the search and
must never drop a match. Hence only positive tests are pushed: ``ne`` and anything under
``not`` compile to "no restriction" (``None``), as do unmapped attributes; an ``and`` keeps
its restricting side, an ``or`` is restricted only when both sides are. Assertion values are
escaped with ``ldap.filter.escape_filter_chars`` (``*``, ``(``, ``)``, ``\\`` and NUL as
RFC 4515 ``\\XX``; other characters travel as UTF-8).
"""

from __future__ import annotations

from collections.abc import Callable

from ldap.filter import escape_filter_chars  # type: ignore[import-untyped]

from scimd.query.ast import And, AttrPath, Comparison, Filter, Not, Or, Present, ValuePath
from scimd_ldap.ad import guid_filter_value

__all__ = ["compile_filter"]

#: Maps a SCIM path (``filterable_key`` spelling) to an LDAP attribute, or None.
Resolver = Callable[[AttrPath], str | None]

_UUID_ATTRS = frozenset({"entryuuid", "objectguid"})


def _esc(value: str) -> str:
    return str(escape_filter_chars(value))


def _comparison(f: Comparison, attr: str) -> str | None:
    if not isinstance(f.value, str) or f.value == "":
        return None
    if attr.lower() == "objectguid":
        # Binary on AD: the GUID's bytes (little-endian layout), each escaped.
        guid = guid_filter_value(f.value) if f.op == "eq" else None
        return f"({attr}={guid})" if guid else None
    if attr.lower() in _UUID_ATTRS:
        # No substring rule on UUIDs: only equality narrows faithfully.
        return f"({attr}={_esc(f.value)})" if f.op == "eq" else None
    v = _esc(f.value)
    if f.op == "eq":
        return f"({attr}={v})"
    if f.op == "co":
        return f"({attr}=*{v}*)"
    if f.op == "sw":
        return f"({attr}={v}*)"
    if f.op == "ew":
        return f"({attr}=*{v})"
    return None  # ne, gt, ge, lt, le: not narrowed by the directory


def compile_filter(f: Filter, resolve: Resolver) -> str | None:
    """An LDAP filter selecting every entry ``f`` matches (maybe more), or None for all."""
    if isinstance(f, Comparison):
        attr = resolve(f.path)
        return _comparison(f, attr) if attr else None
    if isinstance(f, Present):
        attr = resolve(f.path)
        return f"({attr}=*)" if attr else None
    if isinstance(f, And):
        parts = [
            p for p in (compile_filter(f.left, resolve), compile_filter(f.right, resolve)) if p
        ]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else f"(&{''.join(parts)})"
    if isinstance(f, Or):
        left, right = compile_filter(f.left, resolve), compile_filter(f.right, resolve)
        return f"(|{left}{right})" if left and right else None
    if isinstance(f, ValuePath):
        return compile_filter(f.filter, resolve)
    if isinstance(f, Not):
        return None
    raise TypeError(f"not a filter node: {f!r}")  # pragma: no cover
