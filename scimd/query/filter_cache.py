"""Parsed filters, cached by text and by *shape*.

Provisioning clients poll with one filter shape and ever-changing values (Entra and Okta:
``userName eq "<each user>"``, ``emails[type eq "work"].value eq "<address>"``), so a
cache keyed by the text alone never hits for them. ``FilterCache`` also keys a filter
whose text ends with ``eq "<string>"`` by the text around that value: the first time a
shape is seen it is parsed twice with two sample values, the one comparison that differs
is located, and later filters of that shape are built by putting their value into that
comparison. The result equals ``parse_filter(text, rtype)`` (``tests/test_perf_mechanisms``
holds them equal); only values that ``parse_filter`` takes verbatim use a shape (a plain
JSON string without escapes or control characters compared with ``eq`` to a ``string`` or
``reference`` attribute). Everything else is parsed in full.

Both caches are bounded (cleared when full). Trees are immutable and shared.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Final

from scimd.errors import ScimError
from scimd.query.ast import And, Comparison, Filter, Not, Or, ValuePath
from scimd.query.parse import MAX_FILTER_LENGTH, parse_filter
from scimd.schema.model import ResourceType

__all__ = ["FilterCache", "FilterShape"]

# The last comparison of the text: `` eq "<value>"`` at its very end (operators are
# case-insensitive). The value: no quote, backslash or control character.
_TAIL_EQ: Final = re.compile(r'\seq\s+"([^"\\\x00-\x1f\x7f]*)"\s*$', re.IGNORECASE)
_SAMPLES: Final = ("scimd-shape-a", "scimd-shape-b")
_VERBATIM_TYPES: Final = frozenset({"string", "reference"})

# A located comparison: the field names leading to it from the root.
_Where = tuple[str, ...]


class FilterShape:
    """A family of filters that differ only in the string value of one ``eq`` comparison
    (``userName eq "<each user>"``). Compared by identity: a cache key for what a backend
    derives from the filter (compiled SQL), valid for every value."""

    __slots__ = ("case_exact", "tree", "where")

    def __init__(self, tree: Filter, where: _Where, case_exact: bool) -> None:
        self.tree = tree
        self.where = where
        self.case_exact = case_exact
        """caseExact of the compared attribute."""

    def build(self, value: str) -> Filter:
        """The filter of this shape comparing with ``value``."""
        built: Filter = _put(self.tree, self.where, value)
        return built


class FilterCache:
    """``parse(text, rtype)`` == ``parse_filter(text, rtype)``, cached (see module doc)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._texts: dict[tuple[str, str], tuple[Filter, tuple[FilterShape, str] | None]] = {}
        self._shapes: dict[tuple[str, str, str], FilterShape | None] = {}
        self.shape_hits = 0
        """Filters built from a known shape (not parsed): a test hook."""

    def parse(self, text: str, rtype: ResourceType) -> Filter:
        return self.parse_shaped(text, rtype)[0]

    def parse_shaped(
        self, text: str, rtype: ResourceType
    ) -> tuple[Filter, tuple[FilterShape, str] | None]:
        """The filter, and its shape and value when it has one (see ``Query.shape``)."""
        key = (rtype.name, text)
        found = self._texts.get(key)
        if found is None:
            found = self._by_shape(text, rtype)
            if found is None:
                found = (parse_filter(text, rtype), None)
            if len(self._texts) >= self.size:
                self._texts.clear()
            self._texts[key] = found
        return found

    def _by_shape(
        self, text: str, rtype: ResourceType
    ) -> tuple[Filter, tuple[FilterShape, str]] | None:
        if not isinstance(text, str) or len(text) > MAX_FILTER_LENGTH:
            return None
        m = _TAIL_EQ.search(text)
        if m is None:
            return None
        prefix, suffix = text[: m.start(1)], text[m.end(1) :]
        skey = (rtype.name, prefix, suffix)
        if skey in self._shapes:
            shape = self._shapes[skey]
        else:
            shape = _learn(prefix, suffix, rtype)
            if len(self._shapes) >= self.size:
                self._shapes.clear()
            self._shapes[skey] = shape
        if shape is None:
            return None
        self.shape_hits += 1
        value = m.group(1)
        return shape.build(value), (shape, value)


def _learn(prefix: str, suffix: str, rtype: ResourceType) -> FilterShape | None:
    """Parse the shape with two sample values; the place of the one comparison whose value
    is the sample, or None when the shape is not usable."""
    try:
        first, second = (parse_filter(prefix + s + suffix, rtype) for s in _SAMPLES)
    except ScimError:
        return None
    found: list[_Where] = []
    _diff(first, second, (), found)
    if len(found) != 1:
        return None
    node = _get(first, found[0])
    other = _get(second, found[0])
    if not (
        isinstance(node, Comparison)
        and isinstance(other, Comparison)
        and node.op == "eq"
        and node.value == _SAMPLES[0]
        and other.value == _SAMPLES[1]
        and node.path.defn is not None
        and node.path.defn.type in _VERBATIM_TYPES
    ):
        return None
    return FilterShape(first, found[0], node.path.defn.case_exact)


_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    And: ("left", "right"),
    Or: ("left", "right"),
    Not: ("expr",),
    ValuePath: ("filter",),
}


def _diff(a: Any, b: Any, where: _Where, out: list[_Where]) -> None:
    if type(a) is not type(b):
        out.append(where)  # structure differs: not a usable shape
        out.append(where)
        return
    fields = _FIELDS.get(type(a))
    if fields is None:
        if a != b:
            out.append(where)
        return
    if isinstance(a, ValuePath) and a.path != b.path:
        out.append(where)
        out.append(where)
        return
    for name in fields:
        _diff(getattr(a, name), getattr(b, name), (*where, name), out)


def _get(node: Any, where: _Where) -> Any:
    for name in where:
        node = getattr(node, name)
    return node


def _put(node: Any, where: _Where, value: str) -> Any:
    if not where:
        return dataclasses.replace(node, value=value)
    name = where[0]
    return dataclasses.replace(node, **{name: _put(getattr(node, name), where[1:], value)})
