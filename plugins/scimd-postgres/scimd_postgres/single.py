"""The filterable values of a resource as one jsonb object (layout 10): ``sv`` and
``sv_text`` on ``scimd_resources``.

Every filterable value of a resource (``scimd.store.sql.extract_values``: a string
casefolded unless caseExact, a dateTime as the canonical UTC instant, a number, a boolean
as 1/0) is in ``sv``, keyed by the attribute's path id (``scimd_attr_paths``), shaped
like the resource:

* a single-valued attribute (top-level, extension, or a sub-attribute of a single-valued
  complex attribute, which has a key of its own) is its value; a single-valued complex
  attribute's own key is 1 when it has a present leaf, else 0;
* a multi-valued simple attribute is the list of its values;
* a multi-valued complex attribute is the list of its elements, each an object of its
  sub-attributes' values (a list for a multi-valued sub-attribute) and ``ANY``: 1 when
  the element has a present leaf, else 0.

``{"12": "alice@example.com", "4": 1, "5": "alice", "20": [{"_": 1, "21": "alice@example.com",
"22": "work", "23": 1}]}``. ``sv_text`` joins the strings that are searchable by
substring (``searchable_by_substring``), each between two ``SEP`` characters, for one
pg_trgm index that narrows ``co``/``sw``/``ew`` on any of them (the compiler always
rechecks the attribute's own values). ``scimd_attr_values`` keeps only the unique values
(``uniqueness`` server/global), which its unique index enforces.

A typical User was 20 value rows (layout 9): it is now one row, and one for userName.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from scimd.schema.model import COMMON_SCHEMA, AttributeDef, ResourceType, SchemaDef
from scimd.store.sqlcommon import (
    IndexRow,
    Relations,
    canonical_instant,
    has_value,
    indexed,
    indexed_sub,
    leaf_value,
    path_key,
)

__all__ = [
    "ANY",
    "SEP",
    "SV_INDEXES",
    "SingleValues",
    "in_sv",
    "searchable_by_substring",
    "sv_json",
]

ANY = "_"
"""The key, in an element of a multi-valued complex attribute, of its marker (1 when the
element has a present leaf, else 0); path ids are digits."""
SEP = "\x1f"
"""Separates (and surrounds) the values in ``sv_text``: a ``sw`` pattern is ``%<SEP>x%``,
an ``ew`` one ``%x<SEP>%``."""


SV_INDEXES = ("scimd_resources_sv", "scimd_resources_sv_trgm")
"""The GIN indexes on ``sv`` and ``sv_text`` (defined by migration 0010): dropped while the
layout 10 backfill fills the columns and while a bulk import loads, rebuilt after from
their definitions in ``pg_indexes``."""


def searchable_by_substring(defn: AttributeDef) -> bool:
    """Whether the string values of ``defn`` go into ``sv_text`` (the trigram index that
    narrows ``co``/``sw``/``ew``). No for dateTimes (the filter parser refuses co/sw/ew on
    them) and for the built-in common attributes but ``externalId`` (``schemas`` and the
    server's ``meta`` values, one value repeated on every resource), whose ``co``/``ew``
    is decided on ``sv`` alone: the same answers, slower. Yes for every other attribute.
    It depends only on what an operator's schema edit cannot change without invalidating
    the stored values anyway (a dateTime is stored as a canonical instant; the common
    schema is built in): values written under one answer are never searched under the
    other."""
    if defn.schema == COMMON_SCHEMA:
        return defn.type == "string" and defn.parent is None  # externalId (id is a column)
    return defn.type != "dateTime"


def in_sv(defn: AttributeDef) -> bool:
    """Whether ``defn`` has a key of its own in ``sv`` holding one value: a single-valued
    attribute that is not inside a multi-valued one. The shape depends only on the
    schema, which an operator cannot change without invalidating the stored values."""
    if defn.multi_valued:
        return False
    parent = defn.parent
    return parent is None or not parent.multi_valued


# A leaf's kind in ``_Info``: how ``scimd.store.sqlcommon.extract_values`` turns it into
# a value (``leaf_value``); OTHER is a sub-attribute typed complex, decided by ``leaf_value``.
_STRING, _DATETIME, _BOOLEAN, _NUMBER, _OTHER = range(5)

# What SingleValues needs of an attribute: (its path id as the sv key, leaf kind, caseExact,
# its strings go into sv_text, unique, multi-valued, complex, the attribute)
_Info = tuple[str, int, bool, bool, bool, bool, bool, AttributeDef]
_CACHE_LIMIT = 4096


def _kind(defn: AttributeDef) -> int:
    if defn.is_complex:
        return _OTHER
    return {"dateTime": _DATETIME, "boolean": _BOOLEAN, "integer": _NUMBER, "decimal": _NUMBER}.get(
        defn.type, _STRING
    )


class SingleValues:
    """``(sv, sv_text, unique value rows)`` of a resource's stored form, in one pass over
    it (``__call__``). The values are exactly the rows of
    ``scimd.store.sqlcommon.extract_values`` (``tests/test_sv_builder.py`` compares the
    two on generated resources), placed as the module doc says; a unique value row is
    ``(n, row)``, ``n`` the row's position among them. An importing worker builds ~17
    values per User: this is the import's hottest code (it replaced building the value
    rows, then sorting them into ``sv``: 44 -> ~10 µs per User).

    :param pid_of: path key (``scimd.store.sqlcommon.path_key``) -> path id; may gain
        keys later (the backend registers new attributes in it)."""

    __slots__ = ("_info", "_sub", "_top", "pid_of")

    def __init__(self, pid_of: Mapping[str, int]) -> None:
        self.pid_of = pid_of
        self._info: dict[AttributeDef, _Info] = {}
        # (resource type, key) -> the attribute's info, None when it has no values in sv
        # (unknown, ``id``, ``returned: never``, a relation), or the extension it names
        self._top: dict[tuple[ResourceType, str], _Info | _Extension | None] = {}
        self._sub: dict[tuple[AttributeDef, str], _Info | None] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return SingleValues, (dict(self.pid_of),)

    def _of(self, defn: AttributeDef) -> _Info:
        if len(self._info) >= _CACHE_LIMIT:
            self._info.clear()
        found = self._info[defn] = (
            str(self.pid_of[path_key(defn)]),
            _kind(defn),
            defn.case_exact,
            searchable_by_substring(defn),
            defn.uniqueness != "none",
            defn.multi_valued,
            defn.is_complex,
            defn,
        )
        return found

    def _lookup(
        self, rtype: ResourceType, key: str, relations: Relations
    ) -> _Info | _Extension | None:
        cache = self._top
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        found: _Info | _Extension | None = None
        if ":" in key:
            schema = rtype.schema_for_uri(key)
            if schema is not None:
                found = _Extension(schema)
        else:
            found = self._top_info(rtype.lookup(None, key), relations)
        cache[(rtype, key)] = found
        return found

    def _top_info(self, defn: AttributeDef | None, relations: Relations) -> _Info | None:
        """The info of a top-level or extension attribute, None when it has no values in
        sv (``scimd.store.sqlcommon.indexed``) or is a relation (Group ``members``, User
        ``groups``), as for ``extract_values``."""
        defn = indexed(defn)
        if defn is None or relations.owner(defn) is not None:
            return None
        return self._of(defn)

    def _ext_attr(self, ext: _Extension, name: str, relations: Relations) -> _Info | None:
        if len(ext.names) >= _CACHE_LIMIT:
            ext.names.clear()
        found = ext.names[name] = self._top_info(ext.schema.attr(name), relations)
        return found

    def _sub_of(self, parent: AttributeDef, key: str) -> _Info | None:
        if len(self._sub) >= _CACHE_LIMIT:
            self._sub.clear()
        sub = indexed_sub(parent, key)
        found = None if sub is None else self._of(sub)
        self._sub[(parent, key)] = found
        return found

    def __call__(
        self, rtype: ResourceType, resource: Mapping[str, Any], relations: Relations
    ) -> tuple[dict[str, Any], str, list[tuple[int, IndexRow]]]:
        out = _Out()
        top = self._top
        for key, value in resource.items():
            try:
                found = top[(rtype, key)]
            except KeyError:
                found = self._lookup(rtype, key, relations)
            if found is None:
                continue
            if isinstance(found, _Extension):
                if isinstance(value, dict):
                    for name, ext_value in value.items():
                        try:
                            info = found.names[name]
                        except KeyError:
                            info = self._ext_attr(found, name, relations)
                        if info is not None:
                            self._attribute(info, ext_value, out)
                continue
            self._attribute(found, value, out)
        texts = out.texts
        sv_text = SEP + SEP.join(texts) + SEP if texts else ""
        return out.sv, sv_text, out.unique

    def _attribute(self, info: _Info, value: Any, out: _Out) -> None:
        pid, _, _, _, _, multi, is_complex, _ = info
        sv = out.sv
        if not multi:
            if is_complex:
                if isinstance(value, dict):
                    out.n += 1
                    sv[pid] = 0
                    if self._element(info, value, 0, out, sv):
                        sv[pid] = 1
            else:
                leaf = _value(info, value, 0, out)
                if leaf is not _NONE:
                    sv[pid] = leaf
            return
        items = value if isinstance(value, list) else [value]
        for elem, item in enumerate(items):
            if is_complex:
                if isinstance(item, dict):
                    out.n += 1
                    element: dict[str, Any] = {ANY: 0}
                    sv.setdefault(pid, []).append(element)
                    if self._element(info, item, elem, out, element):
                        element[ANY] = 1
            else:
                leaf = _value(info, item, elem, out)
                if leaf is not _NONE:
                    sv.setdefault(pid, []).append(leaf)

    def _element(
        self, info: _Info, item: dict[str, Any], elem: int, out: _Out, into: dict[str, Any]
    ) -> bool:
        """Put the sub-attribute values of the complex value ``item`` into ``into`` (the
        element's object, or ``sv`` for a single-valued attribute); whether one is
        present."""
        parent = info[7]
        subs = self._sub
        present = False
        for key, sub_value in item.items():
            try:
                sub = subs[(parent, key)]
            except KeyError:
                sub = self._sub_of(parent, key)
            if sub is None:
                continue
            spid = sub[0]
            if sub[5]:  # multi-valued
                ones = sub_value if isinstance(sub_value, list) else [sub_value]
                for one in ones:
                    leaf = _value(sub, one, elem, out)
                    if leaf is not _NONE:
                        into.setdefault(spid, []).append(leaf)
                        present = present or out.present
                continue
            leaf = _value(sub, sub_value, elem, out)
            if leaf is not _NONE:
                into[spid] = leaf
                present = present or out.present
        return present


class _Extension:
    """An extension schema's key in a resource, and its attributes' info by name."""

    __slots__ = ("names", "schema")

    def __init__(self, schema: SchemaDef) -> None:
        self.schema = schema
        self.names: dict[str, _Info | None] = {}


class _Out:
    """What ``SingleValues.__call__`` is building."""

    __slots__ = ("n", "present", "sv", "texts", "unique")

    def __init__(self) -> None:
        self.sv: dict[str, Any] = {}
        self.texts: list[str] = []
        self.unique: list[tuple[int, IndexRow]] = []
        self.n = 0  # rows so far (extract_values' numbering)
        self.present = False  # whether the last value was a present one


_NONE: Any = object()
"""``_value`` of a value ``extract_values`` has no row for."""


def _value(info: _Info, value: Any, elem: int, out: _Out) -> Any:
    """The sv value of one leaf value (``_NONE``: no row), counting its row, recording its
    text in ``out`` when searchable or unique and whether it is present."""
    kind = info[1]
    if kind == _STRING and isinstance(value, str):
        text = value if info[2] else value.casefold()
    elif value is None:
        return _NONE
    elif kind == _BOOLEAN:
        if not isinstance(value, bool):
            return _NONE
        out.n += 1
        out.present = True
        return int(value)
    elif kind == _NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _NONE
        out.n += 1
        out.present = True
        return value
    elif kind == _OTHER:  # a complex-typed leaf: leaf_value's rule, stored like a marker
        leaf = leaf_value(info[7], value)
        if leaf is None:
            return _NONE
        out.n += 1
        out.present = has_value(*leaf)
        return 1 if leaf[1] == 1 else 0
    elif kind == _DATETIME and isinstance(value, str):
        instant = canonical_instant(value)
        if instant is None:
            return _NONE
        text = instant
    else:
        return _NONE
    n = out.n
    out.n = n + 1
    if text:
        out.present = True
        if info[3]:
            out.texts.append(text)
        if info[4]:
            out.unique.append((n, (info[7], elem, text, None, value)))
    else:
        out.present = False
    return text


def sv_json(sv: dict[str, Any]) -> bytes:
    """``sv`` as JSON (the same encoder as the resource's ``data``)."""
    return orjson.dumps(sv)
