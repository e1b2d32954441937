"""Filters and sorts compiled to PostgreSQL, with every value a bound ``$n`` parameter.

The PostgreSQL dialect of ``scimd.store.sql`` (same semantics): the values come from
``scimd.store.sql.extract_values`` (casefolded in Python at write time unless caseExact,
dateTimes as canonical UTC strings, booleans as 1/0) and live in the resource's ``sv``
object (``scimd_postgres.single``, layout 10); text compares ``COLLATE "C"`` so
comparisons are by code point, and every predicate is two-valued (never SQL NULL) so
``NOT`` is Python's ``not``.

Member values (``members.value``, ``groups.value``) and ``id`` are compared against the
columns of ``scimd_members``/``scimd_resources`` directly, so ``eq`` on them is an index
lookup; ``eq`` on any other attribute is containment (``sv @> {"<path id>": value}``,
shaped like the attribute's place in ``sv``), served by the GIN index
``scimd_resources_sv``; ``co``/``sw``/``ew`` narrow the resources by an escaped ``LIKE``
on ``sv_text`` (pg_trgm, ``scimd_resources_sv_trgm``). Any other comparison, presence
and sorting read the values from ``sv`` itself (``jsonb_path_query`` over a path built
from path ids only).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from scimd.query.ast import (
    And,
    AttrPath,
    Comparison,
    Filter,
    Present,
    Value,
    ValuePath,
)
from scimd.query.evaluate import canonical_datetime
from scimd.schema.model import AttributeDef, ResourceType
from scimd.store.sqlcommon import (
    FilterSkeleton,
    Relations,
    fold,
    iter_nodes,
    path_key,
    selectivity_rank,
    value_path_driver,
)
from scimd.store.sqlcommon import is_id as _is_id
from scimd_postgres.single import ANY, SEP, in_sv, searchable_by_substring

__all__ = [
    "FALSE",
    "PRESENT",
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


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (default escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def jsonb_columns(value: str) -> tuple[str, str]:
    """(text, number) SQL of the jsonb ``value``: NULL when absent or of the other kind."""
    text = (
        f"(CASE WHEN jsonb_typeof({value}) = 'string' THEN ({value} #>> '{{}}') COLLATE \"C\" END)"
    )
    num = f"(CASE WHEN jsonb_typeof({value}) = 'number' THEN ({value})::numeric END)"
    return text, num


PRESENT = "<> '\"\"'::jsonb"
"""Of a jsonb value: present (a number, or a non-empty string)."""


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


class PgFilterCompiler(FilterSkeleton):
    """Compiles a resolved filter into SQL over ``scimd_resources r``.

    :param path_id: maps a ``path_key`` to its id, or None when no value of that attribute
        was ever stored (the comparison then sees no values).
    :param params: the statement's parameter list; placeholders continue its numbering.
    """

    TRUE = TRUE
    FALSE = FALSE

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

    # -- comparisons (the rest: FilterSkeleton)

    def _id_cond(self, defn: AttributeDef, op: str, value: Value) -> str:
        return self.cond(defn, op, value, "r.id", "NULL") or FALSE

    def _relation(self, owner: AttributeDef) -> _RelationElem:
        return _RelationElem(owner, self)

    def _stored_cond(self, defn: AttributeDef, op: str, value: Value) -> str:
        return self.values(defn, op, value)

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
            return f"{text} {sql_op} {self.p(instant)}::text"
        if kind == "complex":
            return None
        operand = fold(value, defn.case_exact)
        if sql_op is not None:
            return f"{text} {sql_op} {self.p(operand)}::text"
        if operand == "":
            return f"{text} IS NOT NULL"
        if op == "co":
            return f"{text} LIKE {self.p('%' + like_escape(operand) + '%')}::text"
        if op == "sw":
            return f"starts_with({text}, {self.p(operand)}::text)"
        if op == "ew":
            return f"{text} LIKE {self.p('%' + like_escape(operand))}::text"
        return None

    # -- values in sv (``scimd_postgres.single``)

    def sv_key(self, defn: AttributeDef) -> str | None:
        """The ``sv`` key of ``defn`` as an SQL literal (a path id: digits only), or None
        when no value of it was ever stored."""
        pid = self.path_id(path_key(defn))
        return None if pid is None else f"'{int(pid)}'"

    def sv_path(self, defn: AttributeDef, *, within: bool = False) -> str | None:
        """The jsonpath (an SQL literal of path ids only) of every value of ``defn`` in
        ``r.sv`` (``within``: in one element of its multi-valued parent): lax ``[*]``
        reads one value and a list alike."""
        pid = self.path_id(path_key(defn))
        if pid is None:
            return None
        path = f'$."{int(pid)}"[*]'
        parent = defn.parent
        if not within and parent is not None and parent.multi_valued:
            ppid = self.path_id(path_key(parent))
            if ppid is None:
                return None
            path = f'$."{int(ppid)}"[*]."{int(pid)}"[*]'
        return f"'{path}'::jsonpath"

    def member(self, defn: AttributeDef, value: Value) -> str | None:
        """``<key>, <value>`` of a ``jsonb_build_object`` holding ``defn``'s value equal to
        ``value`` as ``sv`` stores it (a list for a multi-valued attribute), or None when
        no stored value can equal it."""
        found = _probe(defn, value)
        key = self.sv_key(defn)
        if found is None or key is None:
            return None
        cast, operand = found
        leaf = f"{self.p(operand)}::{cast}"
        if defn.multi_valued:
            leaf = f"jsonb_build_array({leaf})"
        return f"{key}::text, {leaf}"

    def probe(self, defn: AttributeDef, value: Value, *, within: bool = False) -> str | None:
        """SQL of the jsonb that ``sv`` contains when a value of ``defn`` equals ``value``
        (shaped like its place in ``sv``; ``within``: in one element of its multi-valued
        parent), or None when no stored value can equal it. Exact: strings, numbers by
        value; served by the GIN index on ``sv``."""
        member = self.member(defn, value)
        if member is None:
            return None
        node = f"jsonb_build_object({member})"
        parent = defn.parent
        if within or parent is None or not parent.multi_valued:
            return node
        outer = self.sv_key(parent)
        if outer is None:
            return None
        return f"jsonb_build_object({outer}::text, jsonb_build_array({node}))"

    def values(self, defn: AttributeDef, op: str, value: Value, on: str = "r.sv") -> str:
        """Whether a value of ``defn`` in ``on`` (the resource's ``sv``, or an element of
        a multi-valued attribute inside a valuePath) matches ``op value``."""
        within = on != "r.sv"
        if op == "eq":
            probe = self.probe(defn, value, within=within)
            return FALSE if probe is None else f"{on} @> {probe}"
        if in_sv(defn) and not within:
            key = self.sv_key(defn)
            if key is None:
                return FALSE
            text, num = jsonb_columns(f"(r.sv -> {key})")
            cond = self.cond(defn, op, value, text, num)
            if cond is None:
                return FALSE
            return f"({self._narrow(defn, op, value)}coalesce({cond}, false))"
        alias = self._new_alias("v")
        path = self.sv_path(defn, within=within)
        text, num = jsonb_columns(alias)
        cond = self.cond(defn, op, value, text, num)
        if path is None or cond is None:
            return FALSE
        narrow = "" if within else self._narrow(defn, op, value)
        return (
            f"({narrow}EXISTS (SELECT 1 FROM jsonb_path_query({on}, {path}) {alias} WHERE {cond}))"
        )

    def _narrow(self, defn: AttributeDef, op: str, value: Value) -> str:
        """A condition on ``sv_text`` (pg_trgm) for ``co``/``sw``/``ew``: its trigram index
        narrows the resources, the condition on the values decides."""
        if op not in ("co", "sw", "ew") or not isinstance(value, str) or not value:
            return ""
        if not searchable_by_substring(defn) or "\x00" in value:
            return ""
        operand = like_escape(fold(value, defn.case_exact))
        pattern = {"co": f"%{operand}%", "sw": f"%{SEP}{operand}%", "ew": f"%{operand}{SEP}%"}
        return f"r.sv_text LIKE {self.p(pattern[op])}::text AND "

    def present(self, defn: AttributeDef, on: str = "r.sv") -> str:
        """Whether ``defn`` has a present value in ``on`` (see ``values``)."""
        within = on != "r.sv"
        key = self.sv_key(defn)
        if key is None:
            return FALSE
        if in_sv(defn) and not within:
            if defn.is_complex:
                return f"coalesce(r.sv -> {key} = '1'::jsonb, false)"
            return f"coalesce(r.sv -> {key} {PRESENT}, false)"
        alias = self._new_alias("v")
        if defn.is_complex:  # a multi-valued one: an element with a present leaf
            return (
                f"EXISTS (SELECT 1 FROM jsonb_path_query(r.sv, {self.sv_path(defn)}) {alias}"
                f" WHERE {alias} -> '{ANY}' = '1'::jsonb)"
            )
        path = self.sv_path(defn, within=within)
        if path is None:
            return FALSE
        return (
            f"EXISTS (SELECT 1 FROM jsonb_path_query({on}, {path}) {alias} WHERE {alias} {PRESENT})"
        )

    # -- presence

    def _stored_present(self, defn: AttributeDef) -> str:
        return self.present(defn)

    # -- valuePath

    def _elements(self, outer: AttributeDef, flt: Filter) -> str:
        key = self.sv_key(outer)
        if key is None:
            return FALSE
        if not outer.multi_valued:
            # the resource's one element: there when its marker is
            return f"(r.sv ? {key} AND {self._node(flt, _SingleElem(outer))})"
        equal = _eq_conjuncts(flt, outer)
        if equal is not None:
            # ``emails[type eq "work" and value eq "x"]`` (what identity providers send):
            # one element holding all of them, one containment
            members = [self.member(defn, value) for defn, value in equal]
            if None in members:
                return FALSE
            element = f"jsonb_build_object({', '.join(m for m in members if m is not None)})"
            return f"r.sv @> jsonb_build_object({key}::text, jsonb_build_array({element}))"
        alias = self._new_alias("e")
        entry = ""
        drive = value_path_driver(flt, outer)
        if drive is not None:
            # Enter through the GIN index on the most selective positive eq of a
            # sub-attribute (every match has it); the whole filter is checked per element.
            probe = self.probe(drive[0], drive[1])
            if probe is None:
                return FALSE
            entry = f"r.sv @> {probe} AND "
        return (
            f"({entry}EXISTS (SELECT 1 FROM jsonb_path_query(r.sv, {self.sv_path(outer)})"
            f" {alias} WHERE {self._node(flt, _JsonElem(alias, outer))}))"
        )


def _eq_conjuncts(node: Filter, outer: AttributeDef) -> list[tuple[AttributeDef, Value]] | None:
    """The (sub-attribute, value) pairs when ``node`` is only positive ``eq`` comparisons
    with values on distinct sub-attributes of ``outer``, joined by ``and``; else None."""
    found: list[tuple[AttributeDef, Value]] = []
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, And):
            todo += [item.right, item.left]
            continue
        if not isinstance(item, Comparison) or item.op != "eq" or item.value is None:
            return None
        defn = item.path.defn
        if defn is None or defn.parent is not outer or defn.is_complex:
            return None
        if any(d is defn for d, _ in found):
            return None
        found.append((defn, item.value))
    return found


class _Elem(ABC):
    """One element of a multi-valued (or complex) attribute, inside a valuePath."""

    @abstractmethod
    def any_value(self, c: PgFilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        """SQL that is true when some value of ``defn`` in this element matches."""

    @abstractmethod
    def present(self, c: PgFilterCompiler, defn: AttributeDef) -> str:
        """SQL that is true when ``defn`` has a value in this element."""


class _JsonElem(_Elem):
    """An element of a multi-valued complex attribute in ``sv`` (alias: the jsonb
    object)."""

    def __init__(self, alias: str, outer: AttributeDef) -> None:
        self.alias = alias
        self.outer = outer

    def any_value(self, c: PgFilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        if defn is self.outer:
            return FALSE
        return c.values(defn, op, value, on=self.alias)

    def present(self, c: PgFilterCompiler, defn: AttributeDef) -> str:
        if defn is self.outer:
            return FALSE
        return c.present(defn, on=self.alias)


class _SingleElem(_Elem):
    """The value of a single-valued complex attribute (its leaves have keys of their own
    in ``sv``)."""

    def __init__(self, outer: AttributeDef) -> None:
        self.outer = outer

    def any_value(self, c: PgFilterCompiler, defn: AttributeDef, op: str, value: Value) -> str:
        if defn is self.outer:
            return FALSE
        return c.values(defn, op, value)

    def present(self, c: PgFilterCompiler, defn: AttributeDef) -> str:
        if defn is self.outer:
            return FALSE
        return c.present(defn)


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
        text, num = jsonb_columns(f"(r.sv -> {sv})")
        return (f"nullif({text}, '')" if kind == "text" else num), kind
    # the first present value: of the attribute, or of the first element with a present
    # leaf, a primary one first
    v = c._new_alias("v")
    text, num = jsonb_columns(v)
    value = text if kind == "text" else num
    parent = defn.parent
    if parent is None or not parent.multi_valued:
        path_sql = c.sv_path(defn)
        if path_sql is None:
            return null, kind
        return (
            f"(SELECT {value} FROM jsonb_path_query(r.sv, {path_sql}) {v}"
            f" WHERE {v} {PRESENT} LIMIT 1)",
            kind,
        )
    elements, sub = c.sv_path(parent), c.sv_path(defn, within=True)
    if elements is None or sub is None:
        return null, kind
    primary = parent.sub("primary")
    pkey = c.sv_key(primary) if primary is not None else None
    order = "x.i"
    if pkey is not None:
        order = f"coalesce(x.e -> {pkey} = '1'::jsonb, false) DESC, x.i"
    return (
        f"(SELECT {value} FROM (SELECT x.e FROM jsonb_path_query(r.sv, {elements})"
        f" WITH ORDINALITY AS x(e, i) WHERE x.e -> '{ANY}' = '1'::jsonb ORDER BY {order}"
        f" LIMIT 1) pe, jsonb_path_query(pe.e, {sub}) {v}"
        f" WHERE {v} {PRESENT} LIMIT 1)",
        kind,
    )
