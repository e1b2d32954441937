"""Indexing and SQL compilation for the embedded store.

Two halves that must agree with each other (and with ``scimd.query.evaluate``), the
backend-neutral parts of both in ``scimd.store.sqlcommon`` (shared with the PostgreSQL
plugin):

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
from collections.abc import Callable
from typing import Any

from scimd.query.ast import (
    AttrPath,
    Comparison,
    Filter,
    Value,
    ValuePath,
)
from scimd.query.evaluate import canonical_datetime
from scimd.schema.model import AttributeDef, ResourceType
from scimd.store.sqlcommon import (
    FilterSkeleton,
    IndexRow,
    Relations,
    entered_by,
    extract_values,
    fold,
    iter_nodes,
    path_key,
    selectivity_rank,
    value_path_driver,
)
from scimd.store.sqlcommon import has_value as _present
from scimd.store.sqlcommon import is_id as _is_id
from scimd.store.sqlcommon import next_prefix as _next_prefix

__all__ = [
    "FALSE",
    "TRUE",
    "FilterCompiler",
    "IndexRow",
    "Relations",
    "extract_values",
    "fold",
    "iter_nodes",
    "path_key",
    "sort_expr",
    "sort_keys",
    "sortable",
]

TRUE = "1"
FALSE = "0"


# --------------------------------------------------------------------------- compiler


SubstringSource = Callable[[Callable[[Any], str], AttributeDef, str, Value], str | None]
"""``(bind, attribute, op, value)`` -> a FROM clause yielding the ``attr_values a`` rows that
may match a ``co``/``sw``/``ew`` comparison (``bind`` binds a parameter), or None."""


class FilterCompiler(FilterSkeleton):
    """Compiles a resolved filter into SQL over ``resources r`` with bound parameters.

    :param path_id: maps a ``path_key`` to its ``attr_paths`` id, or None when no value of
        that attribute was ever stored (the comparison then sees no values).
    :param substring: where a top-level comparison reads its candidate values from, when
        not the whole attribute (see ``SubstringSource``).
    """

    TRUE = TRUE
    FALSE = FALSE

    def __init__(
        self,
        rtype: ResourceType,
        tenant: str,
        relations: Relations,
        path_id: Callable[[str], int | None],
        substring: SubstringSource | None = None,
    ) -> None:
        self.rtype = rtype
        self.tenant = tenant
        self.relations = relations
        self.path_id = path_id
        self.substring = substring
        self.params: dict[str, Any] = {"tenant": tenant, "rtype": rtype.name}
        """Every bound value by name, ``tenant`` and ``rtype`` included."""
        self._bound: dict[tuple[type, Any], str] = {
            (str, tenant): ":tenant",
            (str, rtype.name): ":rtype",
        }
        self._alias = 0

    # -- helpers

    def _p(self, value: Any) -> str:
        """Bind ``value``; returns its (named, so order-independent) placeholder. Equal
        values of one type share one placeholder: sqlite3 looks every named parameter up
        by name on each execution, so a statement that names fewer runs faster."""
        key = (type(value), value)
        name = self._bound.get(key)
        if name is None:
            name = f":p{len(self.params)}"
            self.params[name[1:]] = value
            self._bound[key] = name
        return name

    def bind_all(self, params: dict[str, Any]) -> None:
        """Take over the parameters of an earlier compilation (``params``), so that what
        this compiler compiles next can run in one statement with it."""
        for name, value in params.items():
            self.params[name] = value
            self._bound.setdefault((type(value), value), ":" + name)

    # -- comparisons (the rest: FilterSkeleton)

    def _id_cond(self, defn: AttributeDef, op: str, value: Value) -> str:
        return self._cond(defn, op, value, "r.id", "NULL") or FALSE

    def _relation(self, owner: AttributeDef) -> _RelationElem:
        return _RelationElem(owner, self)

    def _stored_cond(self, defn: AttributeDef, op: str, value: Value) -> str:
        pid = self.path_id(path_key(defn))
        cond = self._cond(defn, op, value, "a.v_text", "a.v_num")
        if pid is None or cond is None:
            return FALSE
        # An IN over the value index: eq/sw/gt... on (tenant, rtype, path, v_text|v_num)
        # are index range scans, and the outer rows are then fetched by rowid.
        source = "attr_values a"
        if self.substring is not None:
            # co/ew: candidate rows from a substring index (scimd.store.fts), rechecked.
            source = self.substring(self._p, defn, op, value) or source
        return (
            f"r.pk IN (SELECT a.pk FROM {source} WHERE a.tenant = {self._p(self.tenant)}"
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
            # On bytes: substr() of a text stops at a NUL; a UTF-8 suffix is a string suffix.
            size = self._p(-len(operand.encode("utf-8", "surrogatepass")))
            return f"substr(CAST({text} AS BLOB), {size}) = CAST({self._p(operand)} AS BLOB)"
        return None

    # -- presence

    def _stored_present(self, defn: AttributeDef) -> str:
        pid = self.path_id(path_key(defn))
        if pid is None:
            return FALSE
        cond = "a.v_num = 1" if defn.is_complex else "(a.v_num IS NOT NULL OR a.v_text <> '')"
        return (
            f"EXISTS (SELECT 1 FROM attr_values a WHERE a.pk = r.pk"
            f" AND a.path = {self._p(pid)} AND {cond})"
        )

    # -- valuePath

    def _elements(self, outer: AttributeDef, flt: Filter) -> str:
        alias = self._new_alias("e")
        drive = self._driver(flt, outer)
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
            f" AND {alias}.path = {self._p(pid)} AND {cond} AND {self._node(flt, elem)})"
        )

    def _driver(self, node: Filter, outer: AttributeDef) -> tuple[AttributeDef, Value] | None:
        return value_path_driver(node, outer)

    # -- entry rows

    def entry_row(self, node: Filter) -> tuple[str, str] | None:
        """``(alias, condition)`` when ``node`` is one lookup in the value index: ``eq`` on
        a stored attribute (``emails.value eq "x"``, ``externalId eq "x"``) or a valuePath
        entered through an ``eq`` on one of its sub-attributes
        (``emails[type eq "work"].value eq "x"``), either on a value that is probably
        selective (``selectivity_rank`` 0 or 1: not ``type``, not a boolean).

        The condition holds over ``attr_values <alias>`` for exactly one row per resource
        ``node`` matches: the first (by rowid) of its rows with the compared value whose
        element satisfies the whole valuePath filter. A page can then join that row to its
        resource (``resources r ON r.pk = <alias>.pk``) instead of building the IN list of
        ``compile``, with no duplicate resources. None: use ``compile``."""
        inner: Filter | None = None
        outer: AttributeDef | None = None
        drive: tuple[AttributeDef, Value] | None = None
        if isinstance(node, ValuePath):
            outer = self.defn(node.path)
            if outer.parent is not None:
                outer = outer.parent
            if not outer.is_complex or self.relations.owner(outer) is not None:
                return None
            drive = self._driver(node.filter, outer)
            if drive is None:
                return None
            target, value = drive
            inner = node.filter
        elif isinstance(node, Comparison) and node.op == "eq" and node.value is not None:
            target, value = self.defn(node.path), node.value
            if target.is_complex or _is_id(target) or self.relations.owner(target) is not None:
                return None
        else:
            return None
        if selectivity_rank(target) > 1:
            return None
        pid = self.path_id(path_key(target))
        if pid is None:
            return None

        def rows(alias: str) -> str | None:
            """Rows of ``alias`` holding the value (in an element matching the filter)."""
            cond = self._cond(target, "eq", value, f"{alias}.v_text", f"{alias}.v_num")
            if cond is None:
                return None
            sql = f"{alias}.path = {self._p(pid)} AND {cond}"
            if inner is not None and outer is not None:
                sql += f" AND {self._node(inner, _ValueElem(alias, outer, drive))}"
            return sql

        alias = self._new_alias("e")
        head = (
            f"{alias}.tenant = {self._p(self.tenant)}"
            f" AND {alias}.rtype = {self._p(self.rtype.name)}"
        )
        mine = rows(alias)
        if mine is None:
            return None
        # A resource may hold the value in several rows (two elements, a multi-valued
        # sub-attribute): only the first one stands for it.
        first = self._new_alias("e")
        earlier = rows(first)
        return alias, (
            f"{head} AND {mine} AND NOT EXISTS (SELECT 1 FROM attr_values {first}"
            f" WHERE {first}.pk = {alias}.pk AND {first}.rowid < {alias}.rowid AND {earlier})"
        )


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
        if entered_by(self.entered, defn, op, value):
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
    defn = FilterCompiler.defn(path)
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
