"""Filters and sorts compiled to PostgreSQL, with every value a bound ``$n`` parameter.

The PostgreSQL dialect of ``scimd.store.sql`` (same layout idea, same semantics): the
indexed values come from ``scimd.store.sql.extract_values`` (casefolded in Python at write
time unless caseExact, dateTimes as canonical UTC strings, numbers and booleans in
``v_num``), text columns are ``COLLATE "C"`` so comparisons are by code point, and every
predicate is two-valued (never SQL NULL) so ``NOT`` is Python's ``not``.

Member values (``members.value``, ``groups.value``) and ``id`` are compared against the
columns of ``scimd_members``/``scimd_resources`` directly, so ``eq`` on them is an index
lookup; ``eq`` on any other attribute is a lookup of ``scimd_attr_values_prefix`` (the
first ``PREFIX`` characters of the value; the full value is rechecked), ``sw`` a prefix
range on it, ``co``/``ew`` an escaped ``LIKE`` served by the pg_trgm GIN index
``scimd_attr_values_trgm`` (migration 0003).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
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
from scimd.schema.model import AttributeDef, ResourceType
from scimd.store.sqlcommon import (
    Relations,
    entered_by,
    fold,
    iter_nodes,
    path_key,
    selectivity_rank,
    value_path_driver,
)
from scimd.store.sqlcommon import is_id as _is_id
from scimd.store.sqlcommon import next_prefix as _next_prefix
from scimd_postgres.single import SEP, in_sv, searchable_by_substring

__all__ = [
    "FALSE",
    "PREFIX",
    "TRUE",
    "PgFilterCompiler",
    "few_matches",
    "like_escape",
    "needed_keys",
    "searchable_by_substring",
    "sort_expr",
]

TRUE = "TRUE"
FALSE = "FALSE"


PREFIX = 200
"""Characters of ``v_text`` in the value index (``left(v_text, 200)``, migration 0004)."""


def _prefix(column: str) -> str:
    return f"left({column}, {PREFIX})"


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (default escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def sv_columns(key: str) -> tuple[str, str]:
    """(text, number) SQL of the single value under ``key`` (an SQL literal) of ``r``:
    NULL when absent or of the other kind."""
    value = f"(r.sv -> {key})"
    text = f"(CASE WHEN jsonb_typeof({value}) = 'string' THEN (r.sv ->> {key}) COLLATE \"C\" END)"
    num = f"(CASE WHEN jsonb_typeof({value}) = 'number' THEN {value}::numeric END)"
    return text, num


def _probe(defn: AttributeDef, value: Value) -> tuple[str, Any] | None:
    """(SQL type, bound value) of the ``sv`` value equal to ``value``: what
    ``scimd.store.sql.extract_values`` stores for it; None when no stored value of
    ``defn`` can equal it."""
    kind = defn.type
    if kind == "boolean":
        return ("numeric", int(value)) if isinstance(value, bool) else None
    if kind in ("integer", "decimal"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return "numeric", str(value)
    if not isinstance(value, str) or "\x00" in value or kind == "complex":
        return None
    if kind == "dateTime":
        instant = canonical_datetime(value)
        return None if instant is None else ("text", instant)
    return "text", fold(value, defn.case_exact)


def few_matches(flt: Filter | None) -> bool:
    """Whether ``flt`` is expected to match a few resources: it has, as a conjunct, a
    positive ``eq`` with a non-empty string on an attribute that is not one of a few
    canonical values (``selectivity_rank`` 0 or 1: id, userName, externalId, emails.value,
    members.value...), directly or as the driving comparison of a valuePath
    (``emails[type eq "work"].value eq "x"``). Only a guess that picks a statement: the
    answer does not depend on it."""
    if isinstance(flt, And):
        return few_matches(flt.left) or few_matches(flt.right)
    if isinstance(flt, ValuePath):
        outer = flt.path.defn
        if outer is not None and outer.parent is not None:
            outer = outer.parent
        drive = value_path_driver(flt.filter, outer) if outer is not None else None
        return drive is not None and _selective(drive[0], drive[1])
    if isinstance(flt, Comparison) and flt.op == "eq" and flt.path.defn is not None:
        return _selective(flt.path.defn, flt.value)
    return False


def _selective(defn: AttributeDef, value: Value) -> bool:
    if not isinstance(value, str) or value == "" or defn.is_complex:
        return False
    return _is_id(defn) or selectivity_rank(defn) <= 1


def needed_keys(rtype: ResourceType, flt: Filter | None, sort: AttrPath | None) -> set[str]:
    """The ``scimd_attr_paths`` keys compiling ``flt`` and ``sort`` may look up."""
    keys: set[str] = set()

    def add(defn: AttributeDef | None) -> None:
        if defn is None:
            return
        keys.add(path_key(defn))
        if defn.parent is not None:
            keys.add(path_key(defn.parent))
            primary = defn.parent.sub("primary")
            if primary is not None:
                keys.add(path_key(primary))

    if flt is not None:
        for node in iter_nodes(flt):
            if isinstance(node, Comparison | Present | ValuePath):
                add(node.path.defn)
    if sort is not None:
        add(sort.defn)
    return keys


class PgFilterCompiler:
    """Compiles a resolved filter into SQL over ``scimd_resources r``.

    :param path_id: maps a ``path_key`` to its id, or None when no value of that attribute
        was ever stored (the comparison then sees no values).
    :param params: the statement's parameter list; placeholders continue its numbering.
    """

    def __init__(
        self,
        rtype: ResourceType,
        tenant: str,
        relations: Relations,
        path_id: Callable[[str], int | None],
        params: list[Any] | None = None,
    ) -> None:
        self.rtype = rtype
        self.tenant = tenant
        self.relations = relations
        self.path_id = path_id
        self.params: list[Any] = params if params is not None else []
        self._alias = 0
        self._tenant_p: str | None = None
        self._rtype_p: str | None = None

    # -- helpers

    def p(self, value: Any) -> str:
        """Bind ``value``; returns its placeholder."""
        self.params.append(value)
        return f"${len(self.params)}"

    def tenant_p(self) -> str:
        if self._tenant_p is None:
            self._tenant_p = self.p(self.tenant)
        return self._tenant_p

    def rtype_p(self) -> str:
        if self._rtype_p is None:
            self._rtype_p = self.p(self.rtype.name)
        return self._rtype_p

    def _new_alias(self, prefix: str) -> str:
        self._alias += 1
        return f"{prefix}{self._alias}"

    @staticmethod
    def defn(path: AttrPath) -> AttributeDef:
        if path.defn is None:
            raise InvalidFilter(f"Unresolved attribute {path} in filter")
        return path.defn

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
        defn = self.defn(node.path)
        if node.op == "ne":
            return f"(NOT {self._comparison(Comparison(node.path, 'eq', node.value), elem)})"
        if node.value is None:
            if node.op == "eq":
                return f"(NOT {self._present(node.path, elem)})"
            return FALSE
        if defn.is_complex:
            return FALSE
        if elem is not None:
            return elem.any_value(self, defn, node.op, node.value)
        if _is_id(defn):
            return self.cond(defn, node.op, node.value, "r.id", "NULL") or FALSE
        owner = self.relations.owner(defn)
        if owner is not None:
            return _RelationElem(owner, self).exists(
                lambda e: e.any_value(self, defn, node.op, node.value)
            )
        if in_sv(defn):
            return self.single(defn, node.op, node.value)
        return self.values_of(defn, node.op, node.value)

    def values_of(self, defn: AttributeDef, op: str, value: Value) -> str:
        """Whether a value row of ``defn`` of the resource matches (entered by the value
        indexes)."""
        pid = self.path_id(path_key(defn))
        cond = self.cond(defn, op, value, "a.v_text", "a.v_num")
        if pid is None or cond is None:
            return FALSE
        return (
            f"r.pk IN (SELECT a.pk FROM scimd_attr_values a WHERE a.tenant = {self.tenant_p()}"
            f" AND a.rtype = {self.rtype_p()} AND a.path = {self.p(pid)} AND {cond})"
        )

    def cond(self, defn: AttributeDef, op: str, value: Value, text: str, num: str) -> str | None:
        """SQL comparing one stored value (``text``/``num`` expressions) with ``value``;
        None when no stored value of this attribute can match."""
        kind = defn.type
        sql_op = {"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}.get(op)
        if kind == "boolean":
            if not isinstance(value, bool) or op != "eq":
                return None
            return f"{num} = {self.p(int(value))}::numeric"
        if kind in ("integer", "decimal"):
            if isinstance(value, bool) or not isinstance(value, int | float) or sql_op is None:
                return None
            if value != value or value in (float("inf"), float("-inf")):
                return None
            return f"{num} {sql_op} {self.p(str(value))}::numeric"
        if not isinstance(value, str):
            return None
        if "\x00" in value:
            return None  # PostgreSQL text cannot hold NUL: no stored value contains it
        if kind == "dateTime":
            instant = canonical_datetime(value)
            if instant is None or sql_op is None:
                return None
            return self._ordered(text, sql_op, instant)
        if kind == "complex":
            return None
        operand = fold(value, defn.case_exact)
        # scimd_attr_values is indexed on left(v_text, PREFIX) (migration 0004): a
        # condition on the prefix lets the index narrow the rows, the full value rechecks.
        indexed = text.endswith(".v_text")
        if sql_op is not None:
            return self._ordered(text, sql_op, operand)
        if operand == "":
            return f"{text} IS NOT NULL"
        # the trigram index holds the rows with fts (every row of a searchable attribute):
        # the condition lets the planner use it
        fts = (
            f"{text[: -len('v_text')]}fts AND " if indexed and searchable_by_substring(defn) else ""
        )
        if op == "co":
            # LIKE with an escaped pattern: exact, and served by the pg_trgm GIN index
            # (migration 0003); strpos() would not be.
            return f"({fts}{text} LIKE {self.p('%' + like_escape(operand) + '%')}::text)"
        if op == "sw":
            if indexed and len(operand) > PREFIX:
                return (
                    f"({_prefix(text)} = {self.p(operand[:PREFIX])}::text"
                    f" AND starts_with({text}, {self.p(operand)}::text))"
                )
            upper = _next_prefix(operand)
            if upper is None:
                return f"starts_with({text}, {self.p(operand)}::text)"
            # A range is exact for prefixes in code point order and uses the value index;
            # on the indexed prefix too, as long as the operand is no longer than it.
            col = _prefix(text) if indexed else text
            return f"({col} >= {self.p(operand)}::text AND {col} < {self.p(upper)}::text)"
        if op == "ew":
            return f"({fts}{text} LIKE {self.p('%' + like_escape(operand))}::text)"
        return None

    def _ordered(self, text: str, sql_op: str, operand: str) -> str:
        """``text <sql_op> operand``; on ``scimd_attr_values.v_text`` with a condition on
        its indexed prefix first (eq: equal prefixes; a greater string has a prefix >=,
        a smaller one a prefix <=), so the value index narrows the rows."""
        full = f"{text} {sql_op} {self.p(operand)}::text"
        if not text.endswith(".v_text"):
            return full
        pre_op = {"=": "=", ">": ">=", ">=": ">=", "<": "<=", "<=": "<="}[sql_op]
        return f"({_prefix(text)} {pre_op} {self.p(operand[:PREFIX])}::text AND {full})"

    # -- single values (``scimd_resources.sv``, ``scimd_postgres.single``)

    def sv_key(self, defn: AttributeDef) -> str | None:
        """The ``sv`` key of ``defn`` as an SQL literal (a path id: digits only), or None
        when no value of it was ever stored."""
        pid = self.path_id(path_key(defn))
        return None if pid is None else f"'{int(pid)}'"

    def single(self, defn: AttributeDef, op: str, value: Value) -> str:
        """``defn <op> value`` on the resource's single value of ``defn`` (not None)."""
        key = self.sv_key(defn)
        if key is None:
            return FALSE
        if op == "eq":
            # containment: served by the GIN index on sv, exact (numbers by value)
            probe = _probe(defn, value)
            if probe is None:
                return FALSE
            cast, operand = probe
            return f"r.sv @> jsonb_build_object({key}::text, {self.p(operand)}::{cast})"
        text, num = sv_columns(key)
        cond = self.cond(defn, op, value, text, num)
        if cond is None:
            return FALSE
        narrow = ""
        if op in ("co", "sw", "ew") and isinstance(value, str) and value:
            operand = fold(value, defn.case_exact)
            if searchable_by_substring(defn):
                # sv_text holds this value between SEP characters: its trigram index
                # narrows the resources, the condition on the value itself decides
                pattern = {
                    "co": f"%{like_escape(operand)}%",
                    "sw": f"%{SEP}{like_escape(operand)}%",
                    "ew": f"%{like_escape(operand)}{SEP}%",
                }[op]
                narrow = f"r.sv_text LIKE {self.p(pattern)}::text AND "
        return f"({narrow}coalesce({cond}, false))"

    def single_present(self, defn: AttributeDef) -> str:
        key = self.sv_key(defn)
        if key is None:
            return FALSE
        if defn.is_complex:
            return f"coalesce(r.sv -> {key} = '1'::jsonb, false)"
        return f"coalesce(r.sv -> {key} <> '\"\"'::jsonb, false)"

    # -- presence

    def _present(self, path: AttrPath, elem: _Elem | None) -> str:
        defn = self.defn(path)
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
        if in_sv(defn):
            return self.single_present(defn)
        return self.values_present(defn)

    def values_present(self, defn: AttributeDef) -> str:
        """Whether the resource has a present value row of ``defn``."""
        pid = self.path_id(path_key(defn))
        if pid is None:
            return FALSE
        cond = "a.v_num = 1" if defn.is_complex else "(a.v_num IS NOT NULL OR a.v_text <> '')"
        return (
            f"EXISTS (SELECT 1 FROM scimd_attr_values a WHERE a.pk = r.pk"
            f" AND a.path = {self.p(pid)} AND {cond})"
        )

    # -- valuePath

    def _value_path(self, node: ValuePath) -> str:
        outer = self.defn(node.path)
        if outer.parent is not None:
            outer = outer.parent
        owner = self.relations.owner(outer)
        if owner is not None:
            return _RelationElem(owner, self).exists(lambda e: self._node(node.filter, e))
        if not outer.is_complex:
            return FALSE
        if in_sv(outer):
            # the resource's one element: there when its marker is
            key = self.sv_key(outer)
            if key is None:
                return FALSE
            return f"(r.sv ? {key} AND {self._node(node.filter, _SingleElem(outer))})"
        alias = self._new_alias("e")
        drive = value_path_driver(node.filter, outer)
        elem = _ValueElem(alias, outer, drive)
        if drive is not None:
            # Enter through the value index (path, prefix, tenant, rtype) on the most
            # selective positive eq of a sub-attribute; the whole filter is still checked,
            # but not that eq again (``entered_by``).
            target, value = drive
            pid = self.path_id(path_key(target))
            cond = self.cond(target, "eq", value, f"{alias}.v_text", f"{alias}.v_num")
            if pid is None or cond is None:
                return FALSE
        else:
            # No value to enter by: each resource's elements, by its marker rows (primary
            # key (pk, path, ...); markers have no text and are not in the value index).
            pid = self.path_id(path_key(outer))
            if pid is None:
                return FALSE
            return (
                f"EXISTS (SELECT 1 FROM scimd_attr_values {alias} WHERE {alias}.pk = r.pk"
                f" AND {alias}.path = {self.p(pid)} AND {self._node(node.filter, elem)})"
            )
        return (
            f"r.pk IN (SELECT {alias}.pk FROM scimd_attr_values {alias} WHERE {alias}.tenant ="
            f" {self.tenant_p()} AND {alias}.rtype = {self.rtype_p()}"
            f" AND {alias}.path = {self.p(pid)} AND {cond} AND {self._node(node.filter, elem)})"
        )


class _Elem(ABC):
    """One element of a multi-valued (or complex) attribute, inside a valuePath."""

    @abstractmethod
    def any_value(self, c: PgFilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        """SQL that is true when some value of ``defn`` in this element matches."""

    @abstractmethod
    def present(self, c: PgFilterCompiler, defn: AttributeDef) -> str:
        """SQL that is true when ``defn`` has a value in this element."""


class _ValueElem(_Elem):
    """An element of a complex attribute in ``scimd_attr_values`` (alias: its entry row)."""

    def __init__(
        self, alias: str, outer: AttributeDef, entered: tuple[AttributeDef, Value] | None
    ) -> None:
        self.alias = alias
        self.outer = outer
        self.entered = entered

    def any_value(self, c: PgFilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        if defn is self.outer:
            return FALSE
        if entered_by(self.entered, defn, op, value):
            return TRUE  # the entry row itself is this element's value
        pid = c.path_id(path_key(defn))
        cond = c.cond(defn, op, value, "a.v_text", "a.v_num")
        if pid is None or cond is None:
            return FALSE
        return (
            f"EXISTS (SELECT 1 FROM scimd_attr_values a WHERE a.pk = {self.alias}.pk"
            f" AND a.path = {c.p(pid)} AND a.elem = {self.alias}.elem AND {cond})"
        )

    def present(self, c: PgFilterCompiler, defn: AttributeDef) -> str:
        if defn is self.outer:
            return FALSE
        pid = c.path_id(path_key(defn))
        if pid is None:
            return FALSE
        return (
            f"EXISTS (SELECT 1 FROM scimd_attr_values a WHERE a.pk = {self.alias}.pk"
            f" AND a.path = {c.p(pid)} AND a.elem = {self.alias}.elem"
            f" AND (a.v_num IS NOT NULL OR a.v_text <> ''))"
        )


class _SingleElem(_Elem):
    """The value of a single-valued complex attribute (its leaves in ``sv``; a
    multi-valued sub-attribute's in ``scimd_attr_values``)."""

    def __init__(self, outer: AttributeDef) -> None:
        self.outer = outer

    def any_value(self, c: PgFilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        if defn is self.outer:
            return FALSE
        if in_sv(defn):
            return c.single(defn, op, value)
        return c.values_of(defn, op, value)

    def present(self, c: PgFilterCompiler, defn: AttributeDef) -> str:
        if defn is self.outer:
            return FALSE
        if in_sv(defn):
            return c.single_present(defn)
        return c.values_present(defn)


class _RelationElem(_Elem):
    """An element of ``scimd_members``: a Group's member or a User's group."""

    def __init__(self, owner: AttributeDef, c: PgFilterCompiler) -> None:
        self.owner = owner
        self.c = c
        self.group_side = owner is c.relations.members
        self.alias = c._new_alias("m")

    def exists(self, inner: Callable[[_RelationElem], str]) -> str:
        c, m = self.c, self.alias
        if self.group_side:
            head = (
                f"r.id IN (SELECT {m}.group_id FROM scimd_members {m} WHERE {m}.tenant = "
                f"{c.tenant_p()} AND {m}.grtype = {c.rtype_p()}"
            )
        else:
            head = (
                f"r.id IN (SELECT {m}.member_id FROM scimd_members {m} WHERE {m}.tenant = "
                f"{c.tenant_p()}"
            )
        return f"{head} AND {inner(self)})"

    def column(self, sub: AttributeDef, *, folded: bool) -> str | None:
        m = self.alias
        name = sub.name.lower()
        disp = "display_fold" if folded else "display"
        if self.group_side:
            return {
                "value": f"{m}.member_id",
                "display": f"{m}.{disp}",
                "type": f"{m}.member_type_fold" if folded else f"{m}.member_type",
            }.get(name)
        return {
            "value": f"{m}.group_id",
            "display": f"(SELECT g.{disp} FROM scimd_resources g WHERE g.tenant = {m}.tenant"
            f" AND g.rtype = {m}.grtype AND g.id = {m}.group_id)",
            "type": "'direct'::text",
        }.get(name)

    def _sub(self, defn: AttributeDef) -> AttributeDef | None:
        return None if defn is self.owner else defn

    def any_value(self, c: PgFilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        sub = self._sub(defn)
        if sub is None:
            return FALSE
        if sub.name.lower() == "value":
            # NOT NULL ids, our own casefold-invariant uuids: a bare comparison keeps the
            # (tenant, member_id) / primary key index usable.
            col = self.column(sub, folded=False)
            assert col is not None
            return c.cond(sub, op, value, col, "NULL::numeric") or FALSE
        col = self.column(sub, folded=not sub.case_exact)
        if col is None:
            return FALSE
        cond = c.cond(sub, op, value, col, "NULL::numeric")
        if cond is None:
            return FALSE
        # Two-valued even for a NULL display (``members[not (display eq "x")]``).
        return f"({col} IS NOT NULL AND {cond})"

    def present(self, c: PgFilterCompiler, defn: AttributeDef) -> str:
        sub = self._sub(defn)
        if sub is None:
            return FALSE
        col = self.column(sub, folded=False)
        if col is None:
            return FALSE
        return f"({col} IS NOT NULL AND {col} <> '')"


# --------------------------------------------------------------------------- sorting


def sort_expr(c: PgFilterCompiler, path: AttrPath) -> tuple[str, str | None]:
    """(SQL for the sort key of ``r`` by ``path``, its value kind) equal to
    ``scimd.query.sort.sort_value``; kind is ``text``, ``num``, ``bool`` or None (no key)."""
    defn = PgFilterCompiler.defn(path)
    if _is_id(defn):
        return "r.id", "text"
    if defn.is_complex:
        return "NULL::text", None
    kind = {"boolean": "bool", "integer": "num", "decimal": "num"}.get(defn.type, "text")
    column = "v_num" if kind != "text" else "v_text"
    present = "(a.v_num IS NOT NULL OR a.v_text <> '')"
    owner = c.relations.owner(defn)
    if owner is not None:
        rel = _RelationElem(owner, c)
        name = defn.name.lower()
        col = rel.column(defn, folded=not defn.case_exact and name != "value")
        if col is None:
            return "NULL::text", None
        m = rel.alias
        own, key = ("group_id", "member_id") if rel.group_side else ("member_id", "group_id")
        return (
            f"(SELECT nullif({col}, '') FROM scimd_members {m} WHERE {m}.tenant = r.tenant"
            f" AND {m}.{own} = r.id ORDER BY {m}.{key} LIMIT 1)",
            "text",
        )
    null = "NULL::numeric" if kind != "text" else "NULL::text"
    if in_sv(defn):
        sv = c.sv_key(defn)
        if sv is None:
            return null, kind
        text, num = sv_columns(sv)
        return (f"nullif({text}, '')" if kind == "text" else num), kind
    pid = c.path_id(path_key(defn))
    if pid is None:
        return null, kind
    parent = defn.parent
    if parent is None or not parent.multi_valued:
        return (
            f"(SELECT a.{column} FROM scimd_attr_values a WHERE a.pk = r.pk"
            f" AND a.path = {c.p(pid)} AND {present} ORDER BY a.elem, a.n LIMIT 1)",
            kind,
        )
    outer = c.path_id(path_key(parent))
    if outer is None:
        return null, kind
    primary = parent.sub("primary")
    ppid = c.path_id(path_key(primary)) if primary is not None else None
    order = "e.elem"
    if ppid is not None:
        order = (
            f"NOT EXISTS (SELECT 1 FROM scimd_attr_values p WHERE p.pk = e.pk"
            f" AND p.path = {c.p(ppid)} AND p.elem = e.elem AND p.v_num = 1), e.elem"
        )
    elem = (
        f"(SELECT e.elem FROM scimd_attr_values e WHERE e.pk = r.pk AND e.path = {c.p(outer)}"
        f" AND e.v_num = 1 ORDER BY {order} LIMIT 1)"
    )
    return (
        f"(SELECT a.{column} FROM scimd_attr_values a WHERE a.pk = r.pk AND a.path = {c.p(pid)}"
        f" AND a.elem = {elem} AND {present} ORDER BY a.n LIMIT 1)",
        kind,
    )
