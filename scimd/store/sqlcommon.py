"""Backend-neutral pieces of the SQL stores (the embedded SQLite store, ``scimd.store.sql``,
and the PostgreSQL plugin's ``scimd_postgres.compiler``): the value index both keep and the
dialect-free parts of compiling a filter against it.

* ``extract_values`` turns a resource dict into the rows of the value table: one row per
  leaf value (``v_text`` casefolded unless the attribute is caseExact, ``v_num`` for
  numbers, booleans as 0/1, dateTimes as their canonical UTC string), and one *marker* row
  per complex value (``v_num`` 1 when the element has a present leaf). All sub-attribute
  rows of one element of a multi-valued complex attribute share its ``elem`` number, which
  is what makes ``emails[type eq "work" and value co "x"]`` correlated.
* ``Relations``: Group ``members`` and User ``groups`` are not value rows but a relation.
* ``value_path_driver``: which sub-attribute ``eq`` a valuePath enters the value index
  through (the most selective one), and ``entered_by`` to skip rechecking it.
* ``FilterSkeleton``: the part of compiling a filter both stores' compilers share (the
  boolean structure and the rules that do not depend on how values are stored).
* ``stored_form``: a resource as both stores keep it (``id``, attributes, ``meta``).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson

from scimd.errors import InvalidFilter, InvalidValue
from scimd.query.ast import And, AttrPath, Comparison, Filter, Not, Or, Present, Value, ValuePath
from scimd.query.evaluate import canonical_datetime
from scimd.schema.model import COMMON_SCHEMA, AttributeDef, ResourceType, SchemaDef

__all__ = [
    "FilterSkeleton",
    "IndexRow",
    "Relations",
    "canonical_instant",
    "entered_by",
    "extract_values",
    "fold",
    "has_value",
    "indexed",
    "indexed_sub",
    "is_id",
    "iter_nodes",
    "leaf_value",
    "next_prefix",
    "path_key",
    "selectivity_rank",
    "stored_form",
    "uniqueness_message",
    "value_path_driver",
    "weak_etag",
]


def path_key(defn: AttributeDef) -> str:
    """The stable key of an attribute in ``attr_paths``: ``<schema urn>:<dotted path>``,
    lower-cased (attribute names are case-insensitive)."""
    return f"{defn.schema}:{defn.path}".lower()


def fold(value: str, case_exact: bool) -> str:
    """The comparable form of a string value: itself when caseExact, else casefolded."""
    return value if case_exact else value.casefold()


def weak_etag(version: int) -> str:
    """The ETag of a stored resource at ``version`` (``meta.version``)."""
    return f'W/"{version}"'


def stored_form(
    rtype: ResourceType,
    rid: str,
    data: dict[str, Any],
    version: int,
    now: str,
    old: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``data`` (a fresh dict of the resource's attributes; an ``id`` in it is dropped) as
    the SQL stores keep it: ``id`` first, then the attributes, then ``meta``: ``created``
    kept from ``old`` (the stored state a write replaces; ``now`` for a new resource),
    ``lastModified`` ``now`` and the ETag of ``version``."""
    old_meta = old.get("meta") if old is not None else None
    created = old_meta.get("created", now) if isinstance(old_meta, dict) else now
    data.pop("id", None)
    out = {"id": rid, **data}
    out["meta"] = {
        "resourceType": rtype.name,
        "created": created,
        "lastModified": now,
        "version": weak_etag(version),
    }
    return out


def uniqueness_message(defn: AttributeDef, value: Any) -> str:
    """The 409 ``uniqueness`` detail for ``value`` of ``defn`` held by another resource."""
    name = defn.path if defn.parent is not None else defn.name
    shown = value if isinstance(value, str) else orjson.dumps(value).decode()
    return f'{name} "{shown}" is already in use'


def is_id(defn: AttributeDef) -> bool:
    return defn.schema == COMMON_SCHEMA and defn.path.lower() == "id"


@dataclass(frozen=True, slots=True)
class Relations:
    """Which attributes of a resource type live in the ``members`` relation.

    ``members``: the multi-valued complex attribute named ``members`` (its resource is the
    group side). ``groups``: the multi-valued complex attribute named ``groups`` (computed:
    the groups whose members include the resource)."""

    members: AttributeDef | None
    groups: AttributeDef | None

    @classmethod
    def of(cls, rtype: ResourceType) -> Relations:
        def find(name: str) -> AttributeDef | None:
            defn = rtype.schema.attr(name)
            if defn is not None and defn.is_complex and defn.multi_valued:
                return defn
            return None

        return cls(find("members"), find("groups"))

    def owner(self, defn: AttributeDef) -> AttributeDef | None:
        """The relation attribute ``defn`` is (or is a sub-attribute of), if any."""
        top = defn.parent if defn.parent is not None else defn
        if top is self.members or top is self.groups:
            return top
        return None

    def stored(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``resource`` without the relation attributes (they are rows of the
        ``members`` relation, not part of the stored document)."""
        data = dict(resource)
        for attr in (self.members, self.groups):
            if attr is not None:
                data.pop(attr.name, None)
        return data

    def members_in(self, resource: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
        """The ``members`` a write of ``resource`` names: None when the resource type has
        no such relation, ``[]`` when the attribute is absent.

        :raises InvalidValue: the attribute is not an array."""
        if self.members is None:
            return None
        value = resource.get(self.members.name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidValue(f"{self.members.name} must be an array")
        return value


# (attribute, element number, v_text, v_num, original value for messages)
IndexRow = tuple[AttributeDef, int, str | None, int | float | None, Any]

_CACHE_LIMIT = 4096
"""Entries of each lookup cache of ``extract_values`` (cleared when full; keys are
attribute names, so a normal schema never fills one)."""


@functools.lru_cache(maxsize=1024)
def canonical_instant(value: str) -> str | None:
    """``canonical_datetime``, remembered: the meta.created/lastModified of a bulk import
    share one stamp per millisecond."""
    return canonical_datetime(value)


def leaf_value(defn: AttributeDef, value: Any) -> tuple[str | None, int | float | None] | None:
    """``(v_text, v_num)`` of one leaf value of ``defn`` (see the module doc), None when it
    has no row (absent, or not of the attribute's type)."""
    if value is None:
        return None
    kind = defn.type
    if kind == "boolean":
        return (None, int(value)) if isinstance(value, bool) else None
    if kind in ("integer", "decimal"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return None, value
    if not isinstance(value, str):
        return None
    if kind == "dateTime":
        # The canonical UTC form is fixed-width, so string order is chronological order
        # and the sort value equals scimd.query.sort's; an unparsable value never matches.
        canonical = canonical_instant(value)
        return (canonical, None) if canonical is not None else None
    return fold(value, defn.case_exact), None


def has_value(v_text: str | None, v_num: int | float | None) -> bool:
    """Whether a value row holds a present value (a number, or a non-empty string)."""
    return v_num is not None or (v_text is not None and v_text != "")


# Lookup caches of extract_values (schema objects hash by identity and live as long as
# their registry; the caches keep them alive, bounded by _CACHE_LIMIT).
_TOP: dict[tuple[ResourceType, str], AttributeDef | None] = {}
_EXT: dict[tuple[ResourceType, str], SchemaDef | None] = {}
_SUB: dict[tuple[AttributeDef, str], AttributeDef | None] = {}
_NAMED: dict[tuple[SchemaDef, str], AttributeDef | None] = {}


def _cached(cache: dict[Any, Any], key: Any, make: Callable[..., Any], *args: Any) -> Any:
    """``make(*args)``, remembered in ``cache`` under ``key``."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    found = cache[key] = make(*args)
    return found


def indexed(defn: AttributeDef | None) -> AttributeDef | None:
    """``defn`` unless it never has stored values: unknown, ``returned: never`` (a
    password hash is never filterable) or ``id`` (a column)."""
    if defn is None or defn.returned == "never" or is_id(defn):
        return None
    return defn


def extract_values(
    rtype: ResourceType, resource: dict[str, Any], relations: Relations
) -> list[IndexRow]:
    """Every filterable value of ``resource`` as ``attr_values`` rows (see module doc).

    Skipped: ``id`` (a column), the ``members``/``groups`` relations, ``returned: never``
    attributes (password hashes are never filterable) and values of the wrong type."""
    rows: list[IndexRow] = []
    append = rows.append
    subs = _SUB

    def single(defn: AttributeDef, item: Any, elem: int) -> None:
        if defn.type == "complex":
            if not isinstance(item, dict):
                return
            marker = len(rows)
            append((defn, elem, None, None, None))
            any_present = False
            for key, sub_value in item.items():
                try:
                    sub = subs[(defn, key)]
                except KeyError:
                    sub = _cached(subs, (defn, key), indexed_sub, defn, key)
                if sub is None:
                    continue
                if sub.multi_valued and isinstance(sub_value, list):
                    for one in sub_value:
                        leaf = leaf_value(sub, one)
                        if leaf is not None:
                            append((sub, elem, leaf[0], leaf[1], one))
                            any_present = any_present or has_value(*leaf)
                    continue
                leaf = leaf_value(sub, sub_value)
                if leaf is not None:
                    append((sub, elem, leaf[0], leaf[1], sub_value))
                    any_present = any_present or has_value(*leaf)
            if any_present:
                rows[marker] = (defn, elem, None, 1, None)
            return
        leaf = leaf_value(defn, item)
        if leaf is not None:
            append((defn, elem, leaf[0], leaf[1], item))

    def attribute(defn: AttributeDef | None, value: Any) -> None:
        if defn is None or relations.owner(defn) is not None:
            return
        if defn.multi_valued:
            items = value if isinstance(value, list) else [value]
            for elem, item in enumerate(items):
                single(defn, item, elem)
        else:
            single(defn, value, 0)

    for key, value in resource.items():
        if ":" in key:
            try:
                schema = _EXT[(rtype, key)]
            except KeyError:
                schema = _cached(_EXT, (rtype, key), rtype.schema_for_uri, key)
            if schema is not None and isinstance(value, dict):
                for name, ext_value in value.items():
                    try:
                        ext_defn = _NAMED[(schema, name)]
                    except KeyError:
                        ext_defn = _cached(_NAMED, (schema, name), _indexed_attr, schema, name)
                    attribute(ext_defn, ext_value)
            continue
        try:
            defn = _TOP[(rtype, key)]
        except KeyError:
            defn = _cached(_TOP, (rtype, key), _indexed_top, rtype, key)
        attribute(defn, value)
    return rows


def indexed_sub(defn: AttributeDef, key: str) -> AttributeDef | None:
    """The sub-attribute ``key`` of ``defn`` unless it has no stored values (unknown,
    ``returned: never``)."""
    sub = defn.sub(key)
    return None if sub is None or sub.returned == "never" else sub


def _indexed_attr(schema: SchemaDef, name: str) -> AttributeDef | None:
    return indexed(schema.attr(name))


def _indexed_top(rtype: ResourceType, key: str) -> AttributeDef | None:
    return indexed(rtype.lookup(None, key))


# --------------------------------------------------------------------------- compiling


class FilterElement(Protocol):
    """An element a valuePath filter is evaluated in (each compiler has its kinds)."""

    def any_value(self, c: Any, defn: AttributeDef, op: str, value: Value) -> str:
        """SQL that is true when some value of ``defn`` in this element matches."""
        ...

    def present(self, c: Any, defn: AttributeDef) -> str:
        """SQL that is true when ``defn`` has a value in this element."""
        ...


class FilterRelation(Protocol):
    """The ``members`` relation as a compiler reads it (Group members, User groups)."""

    def exists(self, inner: Callable[[Any], str]) -> str:
        """SQL that is true when ``r`` has a relation element for which ``inner`` holds."""
        ...


class FilterSkeleton(ABC):
    """What the filter compilers of both SQL stores share (``scimd.store.sql`` and the
    PostgreSQL plugin's ``scimd_postgres.compiler``): the boolean structure; ``ne`` as
    ``not eq``; ``eq null`` as ``not pr``; a complex attribute has no comparable value
    (the parser already turned ``emails co "x"`` into ``emails.value co "x"``); ``id`` is
    a column; Group ``members`` and User ``groups`` are the ``members`` relation; a
    valuePath on a simple attribute matches nothing. Each store says how its stored values
    are compared (``_stored_cond``, ``_stored_present``, ``_elements``). Every predicate
    is two-valued (never SQL NULL), so ``NOT`` means exactly Python's ``not``."""

    TRUE: ClassVar[str]
    FALSE: ClassVar[str]
    relations: Relations
    _alias: int

    @staticmethod
    def defn(path: AttrPath) -> AttributeDef:
        if path.defn is None:
            raise InvalidFilter(f"Unresolved attribute {path} in filter")
        return path.defn

    def _new_alias(self, prefix: str) -> str:
        self._alias += 1
        return f"{prefix}{self._alias}"

    def compile(self, node: Filter) -> str:
        return self._node(node, None)

    def _node(self, node: Filter, elem: FilterElement | None) -> str:
        if isinstance(node, And):
            return f"({self._node(node.left, elem)} AND {self._node(node.right, elem)})"
        if isinstance(node, Or):
            return f"({self._node(node.left, elem)} OR {self._node(node.right, elem)})"
        if isinstance(node, Not):
            return f"(NOT {self._node(node.expr, elem)})"
        if isinstance(node, ValuePath):
            if elem is not None:
                raise InvalidFilter("A valuePath cannot be nested in another valuePath")
            return self._value_path(node)
        if isinstance(node, Present):
            return self._present(node.path, elem)
        return self._comparison(node, elem)

    def _comparison(self, node: Comparison, elem: FilterElement | None) -> str:
        defn = self.defn(node.path)
        if node.op == "ne":
            return f"(NOT {self._comparison(Comparison(node.path, 'eq', node.value), elem)})"
        op, value = node.op, node.value
        if value is None:
            if op == "eq":
                return f"(NOT {self._present(node.path, elem)})"
            return self.FALSE
        if defn.is_complex:
            return self.FALSE
        if elem is not None:
            return elem.any_value(self, defn, op, value)
        if is_id(defn):
            return self._id_cond(defn, op, value)
        owner = self.relations.owner(defn)
        if owner is not None:
            return self._relation(owner).exists(lambda e: e.any_value(self, defn, op, value))
        return self._stored_cond(defn, op, value)

    def _present(self, path: AttrPath, elem: FilterElement | None) -> str:
        defn = self.defn(path)
        if elem is not None:
            return elem.present(self, defn)
        if is_id(defn):
            return self.TRUE
        owner = self.relations.owner(defn)
        if owner is not None:
            rel = self._relation(owner)
            if defn is owner:
                return rel.exists(lambda e: self.TRUE)
            return rel.exists(lambda e: e.present(self, defn))
        return self._stored_present(defn)

    def _value_path(self, node: ValuePath) -> str:
        outer = self.defn(node.path)
        if outer.parent is not None:
            outer = outer.parent
        owner = self.relations.owner(outer)
        if owner is not None:
            return self._relation(owner).exists(lambda e: self._node(node.filter, e))
        if not outer.is_complex:
            return self.FALSE  # elements are objects; a simple attribute has none
        return self._elements(outer, node.filter)

    @abstractmethod
    def _id_cond(self, defn: AttributeDef, op: str, value: Value) -> str:
        """``id`` (the column ``r.id``) compared with a value."""

    @abstractmethod
    def _relation(self, owner: AttributeDef) -> FilterRelation:
        """The relation ``owner`` (``members`` or ``groups``) is read through."""

    @abstractmethod
    def _stored_cond(self, defn: AttributeDef, op: str, value: Value) -> str:
        """A top-level comparison of the stored values of a simple attribute."""

    @abstractmethod
    def _stored_present(self, defn: AttributeDef) -> str:
        """``pr`` of a stored attribute (not ``id``, not a relation)."""

    @abstractmethod
    def _elements(self, outer: AttributeDef, flt: Filter) -> str:
        """A valuePath ``outer[flt]`` on a stored complex attribute."""


def next_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` in code
    point order (SQLite's BINARY, PostgreSQL's "C" collation, over UTF-8), or None if
    there is none."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    nxt = last + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be encoded; no character sits there
        nxt = 0xE000
    return prefix[:-1] + chr(nxt)


def value_path_driver(node: Filter, outer: AttributeDef) -> tuple[AttributeDef, Value] | None:
    """The most selective sub-attribute ``eq`` every match of the valuePath filter ``node``
    on ``outer`` must satisfy (a conjunct of ``node``): ``emails[type eq "work"].value eq
    "x"`` enters the value index through ``value``, not through ``type`` (which every work
    email shares)."""
    found: list[tuple[AttributeDef, Value]] = []
    _drivers(node, outer, found)
    if not found:
        return None
    return min(found, key=lambda item: selectivity_rank(item[0]))


def _drivers(node: Filter, outer: AttributeDef, out: list[tuple[AttributeDef, Value]]) -> None:
    if isinstance(node, And):
        _drivers(node.left, outer, out)
        _drivers(node.right, outer, out)
    elif isinstance(node, Comparison) and node.op == "eq" and node.value is not None:
        defn = node.path.defn
        if defn is not None and defn is not outer and defn.parent is outer:
            out.append((defn, node.value))


def selectivity_rank(defn: AttributeDef) -> int:
    """Lower is (probably) more selective: unique values, then free-form values, then
    attributes with a few canonical values (``type``) and booleans (``primary``)."""
    if defn.uniqueness != "none":
        return 0
    if defn.type == "boolean":
        return 3
    if defn.canonical_values or defn.name.lower() == "type":
        return 2
    return 1


def entered_by(
    entered: tuple[AttributeDef, Value] | None, defn: AttributeDef, op: str, value: Value
) -> bool:
    """Whether the comparison ``defn op value`` inside a valuePath element is the ``eq``
    the element was entered through (``value_path_driver``): its own entry row is then
    that value, and no second lookup is needed."""
    return op == "eq" and entered is not None and entered[0] is defn and entered[1] == value


def iter_nodes(node: Filter) -> Iterator[Filter]:
    """Every node of a filter tree (pre-order)."""
    yield node
    if isinstance(node, And | Or):
        yield from iter_nodes(node.left)
        yield from iter_nodes(node.right)
    elif isinstance(node, Not):
        yield from iter_nodes(node.expr)
    elif isinstance(node, ValuePath):
        yield from iter_nodes(node.filter)
