"""The reference semantics of SCIM filters: evaluate a resolved AST over a resource dict.

Every backend compiler (SQL, LDAP, SaaS query) is tested against this module; where the
RFC is silent, the choice made here *is* scimd's semantics:

* Where values live: common attributes (id, externalId, meta, schemas) and core
  attributes at the top level, extension attributes under ``resource[<URN>]``
  (``AttrPath.extension``). Keys are in canonical case (resource dicts are normalised).
* Multi-valued attributes: a comparison matches when *any* value matches
  (``emails.value co "@example.com"``: some email contains it). A sub-attribute of a
  multi-valued complex attribute collects that sub-attribute of every element.
* ``ne`` is the negation of ``eq``: ``x ne v`` == ``not (x eq v)``. For a multi-valued
  attribute it means "no value equals v" (``emails.value ne "a@x"``: the user does not have
  that address), and an absent attribute is "not equal". Inside ``emails[...]`` the same
  rule applies per element (``emails[type ne "work"]``: some email whose type is not work,
  including emails without a type).
* Strings: when the attribute is not ``caseExact``, both sides are compared after
  ``str.casefold()`` (full Unicode case folding; backends must fold the same way, e.g. a
  casefolded shadow column). co/sw/ew are substring/prefix/suffix tests; gt/ge/lt/le compare
  the (folded) strings by Unicode code point.
* dateTime: both sides are parsed (``parse_datetime``) and compared as instants, so
  ``Z``, ``+02:00`` and fractional seconds compare correctly. A stored value that does not
  parse never matches.
* integer/decimal compare numerically; booleans only with eq/ne.
* A value of the wrong JSON type in the resource never matches (``ne`` then matches).
* ``pr``: the attribute has a value that is not null, not ``""``, not ``[]`` and, for a
  complex value, has at least one present sub-attribute. ``false`` and ``0`` are present.
* ``x eq null`` / ``x ne null`` never reach here: the parser rewrites them to
  ``not (x pr)`` / ``x pr``. (Given anyway, they are evaluated that way.)
* ``attr[filter]``: some element of ``attr`` (a list of objects, or one object for a
  singular complex attribute) satisfies ``filter`` on its own sub-attributes.

Use ``compile_filter`` once and call the predicate per resource when filtering many
resources (residual filtering); ``matches`` compiles on each call.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from scimd.query.ast import And, AttrPath, Comparison, Filter, Not, Or, Present, Value, ValuePath

__all__ = [
    "Predicate",
    "canonical_datetime",
    "compile_filter",
    "is_present",
    "matches",
    "parse_datetime",
]

Predicate = Callable[[Mapping[str, Any]], bool]

_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def parse_datetime(text: str) -> datetime | None:
    """Parse an xsd:dateTime (RFC 7643 2.3.5) to an aware UTC ``datetime``, or ``None``.

    Accepts ``Z``/``z`` and ``+hh:mm``/``-hh:mm`` offsets and 1-9 fraction digits
    (truncated to microseconds). A value without an offset is taken as UTC.
    """
    if not isinstance(text, str) or len(text) > 64:
        return None
    m = _DATETIME.fullmatch(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    tzinfo: timezone = UTC
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[4:6])
        if hh > 23 or mm > 59:
            return None
        tzinfo = timezone(sign * timedelta(hours=hh, minutes=mm))
    try:
        dt = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micro,
            tzinfo=tzinfo,
        )
        return dt.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def canonical_datetime(text: str) -> str | None:
    """The instant of an xsd:dateTime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, fixed
    width, so string order is chronological order), or ``None`` if it does not parse."""
    dt = parse_datetime(text)
    return None if dt is None else dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_present(value: Any) -> bool:
    """RFC 7644 ``pr``: not null, not ``""``, not ``[]``, and a complex value has at least
    one present sub-attribute."""
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return any(is_present(v) for v in value)
    if isinstance(value, dict):
        return any(is_present(v) for v in value.values())
    return True


# --------------------------------------------------------------------------- value access

Getter = Callable[[Mapping[str, Any]], Sequence[Any]]
_EMPTY: tuple[Any, ...] = ()


def _flat(v: Any) -> Sequence[Any]:
    if v is None:
        return _EMPTY
    if isinstance(v, list):
        return v
    return (v,)


def _getter(path: AttrPath) -> Getter:
    """A function returning every value ``path`` addresses in a resource (or, for paths
    inside a valuePath, in one element of the outer attribute)."""
    attr, sub = path.attr, path.sub
    if path.in_value_path:
        key = sub if sub is not None else attr

        def get_in_element(element: Mapping[str, Any]) -> Sequence[Any]:
            return _flat(element.get(key))

        return get_in_element

    uri = path.uri if path.extension else None

    def get(resource: Mapping[str, Any]) -> Sequence[Any]:
        container: Any = resource
        if uri is not None:
            container = resource.get(uri)
            if not isinstance(container, dict):
                return _EMPTY
        v = container.get(attr)
        if sub is None:
            return _flat(v)
        if isinstance(v, dict):
            return _flat(v.get(sub))
        if isinstance(v, list):
            out: list[Any] = []
            for e in v:
                if isinstance(e, dict):
                    x = e.get(sub)
                    if isinstance(x, list):
                        out.extend(x)
                    elif x is not None:
                        out.append(x)
            return out
        return _EMPTY

    return get


def _elements(path: AttrPath) -> Getter:
    """The objects of a complex attribute (list elements, or the single object)."""
    get = _getter(AttrPath(path.uri, path.attr, None, extension=path.extension))

    def elements(resource: Mapping[str, Any]) -> Sequence[Any]:
        return [e for e in get(resource) if isinstance(e, dict)]

    return elements


# --------------------------------------------------------------------------- comparisons

Test = Callable[[Any], bool]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def _never(_x: Any) -> bool:
    return False


def _string_test(op: str, value: str, case_exact: bool) -> Test:
    fold: Callable[[str], str] = (lambda s: s) if case_exact else str.casefold
    target = fold(value)
    if op == "co":
        return lambda x: isinstance(x, str) and target in fold(x)
    if op == "sw":
        return lambda x: isinstance(x, str) and fold(x).startswith(target)
    if op == "ew":
        return lambda x: isinstance(x, str) and fold(x).endswith(target)
    cmp = _ORDER.get(op)
    if cmp is None:
        return _never
    return lambda x: isinstance(x, str) and cmp(fold(x), target)


def _datetime_test(op: str, value: Any) -> Test:
    target = parse_datetime(value) if isinstance(value, str) else None
    cmp = _ORDER.get(op)
    if target is None or cmp is None:
        return _never

    def test(x: Any) -> bool:
        dt = parse_datetime(x) if isinstance(x, str) else None
        return dt is not None and cmp(dt, target)

    return test


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _number_test(op: str, value: Any) -> Test:
    cmp = _ORDER.get(op)
    if cmp is None or not _number(value):
        return _never
    return lambda x: _number(x) and cmp(x, value)


def _bool_test(op: str, value: Any) -> Test:
    if op != "eq" or not isinstance(value, bool):
        return _never
    return lambda x: isinstance(x, bool) and x is value


def _value_test(path: AttrPath, op: str, value: Value) -> Test:
    """The per-value test for ``path op value`` (``ne`` is handled by the caller)."""
    defn = path.defn
    if defn is not None:
        t = defn.type
        case_exact = defn.case_exact
    else:  # an unresolved tree: infer from the value
        case_exact = False
        if isinstance(value, bool):
            t = "boolean"
        elif isinstance(value, int | float):
            t = "decimal"
        else:
            t = "string"
    if t in ("string", "reference", "binary"):
        return _string_test(op, value, case_exact) if isinstance(value, str) else _never
    if t == "dateTime":
        return _datetime_test(op, value)
    if t in ("integer", "decimal"):
        return _number_test(op, value)
    if t == "boolean":
        return _bool_test(op, value)
    return _never


def _compile_comparison(f: Comparison) -> Predicate:
    get = _getter(f.path)
    if f.value is None:  # the parser rewrites these; keep the same meaning here
        if f.op == "eq":
            return _compile(Not(Present(f.path)))
        if f.op == "ne":
            return _compile(Present(f.path))
        return lambda _r: False
    test = _value_test(f.path, "eq" if f.op == "ne" else f.op, f.value)
    if f.op == "ne":
        return lambda r: not any(test(x) for x in get(r))
    return lambda r: any(test(x) for x in get(r))


def _compile(f: Filter) -> Predicate:
    if isinstance(f, Comparison):
        return _compile_comparison(f)
    if isinstance(f, Present):
        get = _getter(f.path)
        return lambda r: any(is_present(x) for x in get(r))
    if isinstance(f, And):
        left, right = _compile(f.left), _compile(f.right)
        return lambda r: left(r) and right(r)
    if isinstance(f, Or):
        left, right = _compile(f.left), _compile(f.right)
        return lambda r: left(r) or right(r)
    if isinstance(f, Not):
        inner = _compile(f.expr)
        return lambda r: not inner(r)
    if isinstance(f, ValuePath):
        elements = _elements(f.path)
        inner = _compile(f.filter)
        return lambda r: any(inner(e) for e in elements(r))
    raise TypeError(f"not a filter node: {f!r}")  # pragma: no cover


def compile_filter(f: Filter) -> Predicate:
    """Compile ``f`` into a predicate over resource dicts (reuse it across resources)."""
    return _compile(f)


def matches(f: Filter, resource: Mapping[str, Any]) -> bool:
    """Does ``resource`` (canonical SCIM JSON) satisfy ``f``? See the module docstring."""
    return _compile(f)(resource)
