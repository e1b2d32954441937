"""Indexing and SQL compilation for the embedded store.

Two halves that must agree with each other (and with ``scimd.query.evaluate``):

* ``extract_values`` turns a resource dict into the rows of the ``attr_values`` table: one
  row per leaf value (``v_text`` casefolded unless the attribute is caseExact, ``v_num``
  for numbers, booleans as 0/1 and dateTimes as integer microseconds since the epoch), and
  one *marker* row per complex value (``v_num`` 1 when the element has a present leaf).
  All sub-attribute rows of one element of a multi-valued complex attribute share its
  ``elem`` number, which is what makes ``emails[type eq "work" and value co "x"]``
  correlated.
* ``FilterCompiler`` turns a resolved filter AST into one SQL boolean expression over the
  ``resources r`` row, with every value a bound parameter. Every predicate it produces is
  two-valued (never SQL NULL), so ``NOT`` means exactly Python's ``not``.

Group ``members`` and User ``groups`` are not in ``attr_values``: they live in the
``members`` relation and are compiled against it (see ``Relations``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from scimd.errors import InvalidFilter
from scimd.query.ast import (
    And,
    AttrPath,
    Comparison,
    Filter,
    Not,
    Or,
    Present,
    Value,
    ValuePath,
)
from scimd.query.evaluate import canonical_datetime
from scimd.schema.model import COMMON_SCHEMA, AttributeDef, ResourceType

__all__ = [
    "FALSE",
    "TRUE",
    "FilterCompiler",
    "IndexRow",
    "Relations",
    "extract_values",
    "fold",
    "path_key",
    "sort_expr",
    "sort_keys",
    "sortable",
]

TRUE = "1"
FALSE = "0"


def path_key(defn: AttributeDef) -> str:
    """The stable key of an attribute in ``attr_paths``: ``<schema urn>:<dotted path>``,
    lower-cased (attribute names are case-insensitive)."""
    return f"{defn.schema}:{defn.path}".lower()


def fold(value: str, case_exact: bool) -> str:
    """The comparable form of a string value: itself when caseExact, else casefolded."""
    return value if case_exact else value.casefold()


def _is_id(defn: AttributeDef) -> bool:
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


# (attribute, element number, v_text, v_num, original value for messages)
IndexRow = tuple[AttributeDef, int, str | None, int | float | None, Any]


def _leaf(defn: AttributeDef, value: Any) -> tuple[str | None, int | float | None] | None:
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
        canonical = canonical_datetime(value)
        return (canonical, None) if canonical is not None else None
    return fold(value, defn.case_exact), None


def _present(v_text: str | None, v_num: int | float | None) -> bool:
    return v_num is not None or (v_text is not None and v_text != "")


def extract_values(
    rtype: ResourceType, resource: dict[str, Any], relations: Relations
) -> list[IndexRow]:
    """Every filterable value of ``resource`` as ``attr_values`` rows (see module doc).

    Skipped: ``id`` (a column), the ``members``/``groups`` relations, ``returned: never``
    attributes (password hashes are never filterable) and values of the wrong type."""
    rows: list[IndexRow] = []

    def single(defn: AttributeDef, item: Any, elem: int) -> None:
        if defn.is_complex:
            if not isinstance(item, dict):
                return
            marker = len(rows)
            rows.append((defn, elem, None, None, None))
            any_present = False
            for key, sub_value in item.items():
                sub = defn.sub(key)
                if sub is None or sub.returned == "never":
                    continue
                values = (
                    sub_value if sub.multi_valued and isinstance(sub_value, list) else [sub_value]
                )
                for one in values:
                    leaf = _leaf(sub, one)
                    if leaf is not None:
                        rows.append((sub, elem, leaf[0], leaf[1], one))
                        any_present = any_present or _present(*leaf)
            if any_present:
                rows[marker] = (defn, elem, None, 1, None)
            return
        leaf = _leaf(defn, item)
        if leaf is not None:
            rows.append((defn, elem, leaf[0], leaf[1], item))

    def attribute(defn: AttributeDef, value: Any) -> None:
        if defn.returned == "never" or _is_id(defn) or relations.owner(defn) is not None:
            return
        if defn.multi_valued:
            items = value if isinstance(value, list) else [value]
            for elem, item in enumerate(items):
                single(defn, item, elem)
        else:
            single(defn, value, 0)

    for key, value in resource.items():
        if ":" in key:
            schema = rtype.schema_for_uri(key)
            if schema is not None and isinstance(value, dict):
                for name, ext_value in value.items():
                    ext_defn = schema.attr(name)
                    if ext_defn is not None:
                        attribute(ext_defn, ext_value)
            continue
        defn = rtype.lookup(None, key)
        if defn is not None:
            attribute(defn, value)
    return rows


# --------------------------------------------------------------------------- compiler


def _next_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (in code
    point order, which is SQLite's BINARY order over UTF-8), or None if there is none."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    nxt = last + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be encoded; no character sits there
        nxt = 0xE000
    return prefix[:-1] + chr(nxt)


class FilterCompiler:
    """Compiles a resolved filter into SQL over ``resources r`` with bound parameters.

    :param path_id: maps a ``path_key`` to its ``attr_paths`` id, or None when no value of
        that attribute was ever stored (the comparison then sees no values).
    """

    def __init__(
        self,
        rtype: ResourceType,
        tenant: str,
        relations: Relations,
        path_id: Callable[[str], int | None],
    ) -> None:
        self.rtype = rtype
        self.tenant = tenant
        self.relations = relations
        self.path_id = path_id
        self.params: dict[str, Any] = {}
        self._alias = 0

    # -- helpers

    def _p(self, value: Any) -> str:
        """Bind ``value``; returns its (named, so order-independent) placeholder."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name

    def _new_alias(self, prefix: str) -> str:
        self._alias += 1
        return f"{prefix}{self._alias}"

    @staticmethod
    def _defn(path: AttrPath) -> AttributeDef:
        if path.defn is None:
            raise InvalidFilter(f"Unresolved attribute {path} in filter")
        return path.defn

    def _value_defn(self, defn: AttributeDef) -> AttributeDef | None:
        """A complex attribute has no comparable value (the parser already turned
        ``emails co "x"`` into ``emails.value co "x"``)."""
        return None if defn.is_complex else defn

    # -- entry point

    def compile(self, node: Filter) -> str:
        return self._node(node, None)

    def _node(self, node: Filter, elem: _Elem | None) -> str:
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

    # -- comparisons

    def _comparison(self, node: Comparison, elem: _Elem | None) -> str:
        defn = self._defn(node.path)
        if node.op == "ne":
            return f"(NOT {self._comparison(Comparison(node.path, 'eq', node.value), elem)})"
        if node.value is None:
            if node.op == "eq":
                return f"(NOT {self._present(node.path, elem)})"
            return FALSE
        target = self._value_defn(defn)
        if target is None:
            return FALSE
        if elem is not None:
            return elem.any_value(self, target, node.op, node.value)
        if _is_id(target):
            return self._cond(target, node.op, node.value, "r.id", "NULL") or FALSE
        owner = self.relations.owner(target)
        if owner is not None:
            return _RelationElem(owner, self).exists(
                lambda e: e.any_value(self, target, node.op, node.value)
            )
        pid = self.path_id(path_key(target))
        cond = self._cond(target, node.op, node.value, "a.v_text", "a.v_num")
        if pid is None or cond is None:
            return FALSE
        # An IN over the value index: eq/sw/gt... on (tenant, rtype, path, v_text|v_num)
        # are index range scans, and the outer rows are then fetched by rowid.
        return (
            f"r.pk IN (SELECT a.pk FROM attr_values a WHERE a.tenant = {self._p(self.tenant)}"
            f" AND a.rtype = {self._p(self.rtype.name)} AND a.path = {self._p(pid)}"
            f" AND {cond})"
        )

    def _cond(self, defn: AttributeDef, op: str, value: Value, text: str, num: str) -> str | None:
        """SQL comparing one stored value (``text``/``num`` expressions) with ``value``;
        None when no stored value of this attribute can match."""
        kind = defn.type
        sql_op = {"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}.get(op)
        if kind == "boolean":
            if not isinstance(value, bool) or op != "eq":
                return None
            return f"{num} = {self._p(int(value))}"
        if kind in ("integer", "decimal"):
            if isinstance(value, bool) or not isinstance(value, int | float) or sql_op is None:
                return None
            return f"{num} {sql_op} {self._p(value)}"
        if not isinstance(value, str):
            return None
        if kind == "dateTime":
            instant = canonical_datetime(value)
            if instant is None or sql_op is None:
                return None
            return f"{text} {sql_op} {self._p(instant)}"
        if kind == "complex":
            return None
        operand = fold(value, defn.case_exact)
        if sql_op is not None:
            return f"{text} {sql_op} {self._p(operand)}"
        if operand == "":
            return f"{text} IS NOT NULL"
        if op == "co":
            # instr() needs no escaping, unlike LIKE, and compares code points exactly.
            return f"instr({text}, {self._p(operand)}) > 0"
        if op == "sw":
            upper = _next_prefix(operand)
            if upper is None:
                return f"substr({text}, 1, {self._p(len(operand))}) = {self._p(operand)}"
            # A range is exact for prefixes in BINARY order and can use the value index.
            return f"({text} >= {self._p(operand)} AND {text} < {self._p(upper)})"
        if op == "ew":
            return f"substr({text}, {self._p(-len(operand))}) = {self._p(operand)}"
        return None

    # -- presence

    def _present(self, path: AttrPath, elem: _Elem | None) -> str:
        defn = self._defn(path)
        if elem is not None:
            return elem.present(self, defn)
        if _is_id(defn):
            return TRUE
        owner = self.relations.owner(defn)
        if owner is not None:
            rel = _RelationElem(owner, self)
            if defn is owner:
                return rel.exists(lambda e: TRUE)
            return rel.exists(lambda e: e.present(self, defn))
        pid = self.path_id(path_key(defn))
        if pid is None:
            return FALSE
        cond = "a.v_num = 1" if defn.is_complex else "(a.v_num IS NOT NULL OR a.v_text <> '')"
        return (
            f"EXISTS (SELECT 1 FROM attr_values a WHERE a.pk = r.pk"
            f" AND a.path = {self._p(pid)} AND {cond})"
        )

    # -- valuePath

    def _value_path(self, node: ValuePath) -> str:
        outer = self._defn(node.path)
        if outer.parent is not None:
            outer = outer.parent
        owner = self.relations.owner(outer)
        if owner is not None:
            return _RelationElem(owner, self).exists(lambda e: self._node(node.filter, e))
        if not outer.is_complex:
            return FALSE  # elements are objects; a simple attribute has none
        alias = self._new_alias("e")
        drive = self._driver(node.filter, outer)
        elem = _ValueElem(alias, outer, drive)
        if drive is not None:
            # Enter through the value index on a positive eq of a sub-attribute (the row
            # shares pk and elem with its element); the whole filter is still checked.
            target, value = drive
            pid = self.path_id(path_key(target))
            cond = self._cond(target, "eq", value, f"{alias}.v_text", f"{alias}.v_num")
            if pid is None or cond is None:
                return FALSE
        else:
            pid = self.path_id(path_key(outer))
            cond = TRUE
            if pid is None:
                return FALSE
        return (
            f"r.pk IN (SELECT {alias}.pk FROM attr_values {alias} WHERE {alias}.tenant ="
            f" {self._p(self.tenant)} AND {alias}.rtype = {self._p(self.rtype.name)}"
            f" AND {alias}.path = {self._p(pid)} AND {cond} AND {self._node(node.filter, elem)})"
        )

    def _driver(self, node: Filter, outer: AttributeDef) -> tuple[AttributeDef, Value] | None:
        """The most selective sub-attribute ``eq`` every match must satisfy (a conjunct of
        ``node``): ``emails[type eq "work"].value eq "x"`` enters through ``value``, not
        through ``type`` (which every work email shares)."""
        found: list[tuple[AttributeDef, Value]] = []
        self._drivers(node, outer, found)
        if not found:
            return None
        return min(found, key=lambda item: _selectivity_rank(item[0]))

    def _drivers(
        self, node: Filter, outer: AttributeDef, out: list[tuple[AttributeDef, Value]]
    ) -> None:
        if isinstance(node, And):
            self._drivers(node.left, outer, out)
            self._drivers(node.right, outer, out)
        elif isinstance(node, Comparison) and node.op == "eq" and node.value is not None:
            defn = node.path.defn
            if defn is not None and defn is not outer and defn.parent is outer:
                out.append((defn, node.value))


def _selectivity_rank(defn: AttributeDef) -> int:
    """Lower is (probably) more selective: unique values, then free-form values, then
    attributes with a few canonical values (``type``) and booleans (``primary``)."""
    if defn.uniqueness != "none":
        return 0
    if defn.type == "boolean":
        return 3
    if defn.canonical_values or defn.name.lower() == "type":
        return 2
    return 1


class _Elem(ABC):
    """One element of a multi-valued (or complex) attribute, inside a valuePath."""

    @abstractmethod
    def any_value(self, c: FilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        """SQL that is true when some value of ``defn`` in this element matches."""

    @abstractmethod
    def present(self, c: FilterCompiler, defn: AttributeDef) -> str:
        """SQL that is true when ``defn`` has a value in this element."""


class _ValueElem(_Elem):
    """An element of a complex attribute stored in ``attr_values`` (alias = its marker)."""

    def __init__(
        self, alias: str, outer: AttributeDef, entered: tuple[AttributeDef, Value] | None = None
    ) -> None:
        self.alias = alias
        self.outer = outer
        self.entered = entered
        """The sub-attribute ``eq`` the element was entered through (its own value row)."""

    def any_value(self, c: FilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        if defn is self.outer:
            return FALSE
        entered = self.entered
        if op == "eq" and entered is not None and entered[0] is defn and entered[1] == value:
            # The entry row itself is this element's value: no second lookup.
            return TRUE
        pid = c.path_id(path_key(defn))
        cond = c._cond(defn, op, value, "a.v_text", "a.v_num")
        if pid is None or cond is None:
            return FALSE
        return (
            f"EXISTS (SELECT 1 FROM attr_values a WHERE a.pk = {self.alias}.pk"
            f" AND a.path = {c._p(pid)} AND a.elem = {self.alias}.elem AND {cond})"
        )

    def present(self, c: FilterCompiler, defn: AttributeDef) -> str:
        if defn is self.outer:
            return FALSE
        pid = c.path_id(path_key(defn))
        if pid is None:
            return FALSE
        return (
            f"EXISTS (SELECT 1 FROM attr_values a WHERE a.pk = {self.alias}.pk"
            f" AND a.path = {c._p(pid)} AND a.elem = {self.alias}.elem"
            f" AND (a.v_num IS NOT NULL OR a.v_text <> ''))"
        )


class _RelationElem(_Elem):
    """An element of the ``members`` relation: a Group's member (group side) or a User's
    group (member side, ``groups``)."""

    def __init__(self, owner: AttributeDef, c: FilterCompiler) -> None:
        self.owner = owner
        self.c = c
        self.group_side = owner is c.relations.members
        self.alias = c._new_alias("m")

    def exists(self, inner: Callable[[_RelationElem], str]) -> str:
        """``r`` has a relation element for which ``inner`` holds."""
        c, m = self.c, self.alias
        if self.group_side:
            head = (
                f"r.id IN (SELECT {m}.group_id FROM members {m} WHERE {m}.tenant = "
                f"{c._p(c.tenant)} AND {m}.grtype = {c._p(c.rtype.name)}"
            )
        else:
            head = (
                f"r.id IN (SELECT {m}.member_id FROM members {m} WHERE {m}.tenant = "
                f"{c._p(c.tenant)}"
            )
        return f"{head} AND {inner(self)})"

    def column(self, sub: AttributeDef) -> str | None:
        m = self.alias
        name = sub.name.lower()
        if self.group_side:
            return {
                "value": f"{m}.member_id",
                "display": f"{m}.display",
                "type": f"{m}.member_type",
            }.get(name)
        return {
            "value": f"{m}.group_id",
            "display": f"(SELECT g.display FROM resources g WHERE g.tenant = {m}.tenant"
            f" AND g.rtype = {m}.grtype AND g.id = {m}.group_id)",
            "type": "'direct'",
        }.get(name)

    def _sub(self, defn: AttributeDef) -> AttributeDef | None:
        return None if defn is self.owner else defn

    def any_value(self, c: FilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        sub = self._sub(defn)
        if sub is None:
            return FALSE
        col = self.column(sub)
        if col is None:
            return FALSE
        if sub.name.lower() == "value":
            # NOT NULL ids. Member values are our own ids (casefold-invariant uuids), so a
            # folded operand against the stored id is the caseExact=false semantics, and a
            # bare comparison keeps the (tenant, member_id) / primary key index usable.
            return c._cond(sub, op, value, col, "NULL") or FALSE
        expr = col if sub.case_exact else f"scim_fold({col})"
        cond = c._cond(sub, op, value, expr, "NULL")
        if cond is None:
            return FALSE
        # Two-valued even for a NULL display (``members[not (display eq "x")]``).
        return f"({col} IS NOT NULL AND {cond})"

    def present(self, c: FilterCompiler, defn: AttributeDef) -> str:
        sub = self._sub(defn)
        if sub is None:
            return FALSE
        col = self.column(sub)
        if col is None:
            return FALSE
        return f"({col} IS NOT NULL AND {col} <> '')"


# --------------------------------------------------------------------------- sorting


def sort_expr(c: FilterCompiler, path: AttrPath) -> str:
    """SQL for the sort key of ``r`` by ``path``, equal to ``scimd.query.sort.sort_value``:
    the value of a singular attribute; for a multi-valued one, of the element with
    ``primary`` true, else of the first present element; NULL when absent or empty.
    Strings are in their comparable form (casefolded unless caseExact), dateTimes in the
    canonical UTC form."""
    defn = FilterCompiler._defn(path)
    if _is_id(defn):
        return "r.id"
    if defn.is_complex:
        return "NULL"
    column = "v_num" if defn.type in ("boolean", "integer", "decimal") else "v_text"
    present = "(a.v_num IS NOT NULL OR a.v_text <> '')"
    owner = c.relations.owner(defn)
    if owner is not None:
        rel = _RelationElem(owner, c)
        col = rel.column(defn)
        if col is None:
            return "NULL"
        if not defn.case_exact and defn.name.lower() != "value":
            col = f"scim_fold({col})"
        m = rel.alias
        own, key = ("group_id", "member_id") if rel.group_side else ("member_id", "group_id")
        # The first element in the order get() returns them (by id), as sort_value picks.
        return (
            f"(SELECT nullif({col}, '') FROM members {m} WHERE {m}.tenant = r.tenant"
            f" AND {m}.{own} = r.id ORDER BY {m}.{key} LIMIT 1)"
        )
    pid = c.path_id(path_key(defn))
    if pid is None:
        return "NULL"
    parent = defn.parent
    if parent is None or not parent.multi_valued:
        # Singular (or a simple multi-valued attribute: its first present value).
        return (
            f"(SELECT a.{column} FROM attr_values a WHERE a.pk = r.pk AND a.path = {c._p(pid)}"
            f" AND {present} ORDER BY a.elem LIMIT 1)"
        )
    outer = c.path_id(path_key(parent))
    if outer is None:
        return "NULL"
    primary = parent.sub("primary")
    ppid = c.path_id(path_key(primary)) if primary is not None else None
    order = "e.elem"
    if ppid is not None:
        order = (
            f"NOT EXISTS (SELECT 1 FROM attr_values p WHERE p.pk = e.pk"
            f" AND p.path = {c._p(ppid)} AND p.elem = e.elem AND p.v_num = 1), e.elem"
        )
    # The picked element: primary, else the first present one (a primary one is present).
    elem = (
        f"(SELECT e.elem FROM attr_values e WHERE e.pk = r.pk AND e.path = {c._p(outer)}"
        f" AND e.v_num = 1 ORDER BY {order} LIMIT 1)"
    )
    return (
        f"(SELECT a.{column} FROM attr_values a WHERE a.pk = r.pk AND a.path = {c._p(pid)}"
        f" AND a.elem = {elem} AND {present} ORDER BY a.rowid LIMIT 1)"
    )


def sortable(relations: Relations, path: AttrPath) -> AttributeDef | None:
    """The attribute whose sort values the ``sort_keys`` table holds, if ``path`` is one (a
    leaf attribute stored in ``attr_values``): a sorted page can then walk its ordered
    index instead of computing every row's sort key."""
    defn = path.defn
    if defn is None or _is_id(defn) or defn.is_complex or relations.owner(defn) is not None:
        return None
    return defn


def sort_keys(rows: list[IndexRow]) -> dict[AttributeDef, int | float | str]:
    """The sort value of every leaf attribute present in ``rows`` (``extract_values`` of one
    resource), exactly as ``sort_expr`` computes it: the first present value of a singular
    attribute; of a sub-attribute of a multi-valued complex attribute, the value in the
    element with ``primary`` true, else in the first present element. Absent (null) sort
    values have no entry."""
    primary: dict[AttributeDef, int] = {}
    first: dict[AttributeDef, int] = {}
    for defn, elem, _, v_num, _ in rows:
        if defn.is_complex:
            if v_num == 1 and defn.multi_valued and defn not in first:
                first[defn] = elem
        elif (
            defn.name.lower() == "primary"
            and v_num == 1
            and defn.parent is not None
            and defn.parent.multi_valued
            and defn.parent not in primary
        ):
            primary[defn.parent] = elem
    out: dict[AttributeDef, int | float | str] = {}
    for defn, elem, v_text, v_num, _ in rows:
        if defn.is_complex or defn in out or not _present(v_text, v_num):
            continue
        parent = defn.parent
        if parent is not None and parent.multi_valued:
            picked = primary.get(parent, first.get(parent))
            if picked is None or elem != picked:
                continue
        numeric = defn.type in ("boolean", "integer", "decimal")
        value = v_num if numeric else v_text
        if value is not None:
            out[defn] = value
    return out


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
