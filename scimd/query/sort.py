"""In-memory sort order for list responses (RFC 7644 3.4.2.3) — the reference every
backend's ORDER BY and keyset paging must agree with.

The order is total:

1. ``sort_value`` of the resource (see below), ascending or descending;
2. resources without a sort value (absent, null, ``""``, ``[]``) come **last in both
   directions** (clients paging through "sorted by X" see the X-less resources at the end);
3. ties (and the null group) are ordered by ``id`` — ascending for ascending sorts,
   descending for descending sorts, i.e. a descending sort is the exact reverse of the
   ascending one except that the null group stays at the end.

SQL equivalent: ``ORDER BY (v IS NULL), v ASC, id ASC`` / ``ORDER BY (v IS NULL), v DESC,
id DESC``, where ``v`` is the value ``sort_value`` returns (casefolded strings, canonical
UTC dateTime strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scimd.backend import Keyset, SortSpec
from scimd.query.ast import AttrPath
from scimd.query.evaluate import canonical_datetime, is_present

__all__ = ["SortKey", "SortValue", "keyset_key", "sort_key", "sort_value"]

SortValue = str | int | float | bool | None


def _pick(values: list[Any]) -> Any:
    """RFC 7644 3.4.2.3: the ``primary`` element of a multi-valued attribute, else the
    first (present) one."""
    for v in values:
        if isinstance(v, dict) and v.get("primary") is True:
            return v
    for v in values:
        if is_present(v):
            return v
    return None


def sort_value(resource: Mapping[str, Any], path: AttrPath) -> SortValue:
    """The value ``resource`` is ordered by for ``sortBy=path``.

    Singular attribute/sub-attribute: its value. Multi-valued: the value of the element
    with ``primary: true``, else of the first element. Strings of attributes that are not
    caseExact are casefolded; dateTime values become canonical UTC strings
    (``canonical_datetime``) so that string order is chronological. Absent, null, ``""``
    and other non-present values (and unparsable dateTimes) give ``None``.
    """
    container: Any = resource
    if path.extension and path.uri is not None:
        container = resource.get(path.uri)
        if not isinstance(container, Mapping):
            return None
    v = container.get(path.attr)
    if isinstance(v, list):
        v = _pick(v)
    if path.sub is not None:
        if not isinstance(v, Mapping):
            return None
        v = v.get(path.sub)
        if isinstance(v, list):
            v = _pick(v)
    if not is_present(v) or isinstance(v, dict | list):
        return None
    defn = path.defn
    if isinstance(v, str):
        if defn is not None and defn.type == "dateTime":
            return canonical_datetime(v)
        if defn is None or not defn.case_exact:
            return v.casefold()
        return v
    if isinstance(v, bool | int | float):
        return v
    return None


def _rank(v: SortValue) -> int:
    # Values of one attribute share a type; the rank only keeps a corrupt mix comparable.
    if v is None:
        return 3
    if isinstance(v, bool):
        return 0
    if isinstance(v, int | float):
        return 1
    return 2


@dataclass(frozen=True, slots=True, eq=False)
class SortKey:
    """A position in the total order (see the module docstring); compare with ``<``."""

    value: SortValue
    id: str
    descending: bool = False

    def _parts(self) -> tuple[int, Any, str, bool]:
        # ``True == 1`` in Python: the rank keeps bool and number keys apart.
        return (_rank(self.value), self.value, self.id, self.descending)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SortKey):
            return NotImplemented
        return self._parts() == other._parts()

    def __hash__(self) -> int:
        return hash(self._parts())

    def __lt__(self, other: SortKey) -> bool:
        a_null, b_null = self.value is None, other.value is None
        if a_null != b_null:
            return b_null  # non-null before null, in both directions
        if not a_null:
            ra, rb = _rank(self.value), _rank(other.value)
            if ra != rb:
                return (ra < rb) != self.descending
            if self.value != other.value:
                return bool(self.value < other.value) != self.descending  # type: ignore[operator]
        if self.id == other.id:
            return False
        return (self.id < other.id) != self.descending

    def __gt__(self, other: SortKey) -> bool:
        return other < self

    def __le__(self, other: SortKey) -> bool:
        return not other < self

    def __ge__(self, other: SortKey) -> bool:
        return not self < other


def sort_key(resource: Mapping[str, Any], spec: SortSpec | None) -> SortKey:
    """The sort key of ``resource``: ``sorted(resources, key=lambda r: sort_key(r, spec))``.
    Without a spec the order is by ``id``."""
    rid = resource.get("id")
    rid = rid if isinstance(rid, str) else ""
    if spec is None:
        return SortKey(None, rid)
    return SortKey(sort_value(resource, spec.path), rid, spec.descending)


def keyset_key(keyset: Keyset, spec: SortSpec | None) -> SortKey:
    """The position of a cursor: resources with ``sort_key(r) > keyset_key(k)`` follow it
    (``direction == "next"``), those with ``<`` precede it (``"prev"``)."""
    return SortKey(
        keyset.sort_value if spec is not None else None,
        keyset.id,
        spec.descending if spec is not None else False,
    )
