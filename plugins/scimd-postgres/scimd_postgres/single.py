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

from scimd.schema.model import COMMON_SCHEMA, AttributeDef
from scimd.store.sqlcommon import IndexRow, path_key

__all__ = [
    "ANY",
    "SEP",
    "SV_INDEXES",
    "in_sv",
    "searchable_by_substring",
    "split_values",
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


# (path key, parent's path key when the parent is multi-valued, multi-valued, complex,
# in sv_text, unique)
_Shape = tuple[str, str | None, bool, bool, bool, bool]
_SHAPES: dict[AttributeDef, _Shape] = {}
_SHAPES_LIMIT = 4096


def _shape(defn: AttributeDef) -> _Shape:
    """The ``_Shape`` of ``defn``, remembered (schema objects live as long as their
    registry; bounded)."""
    if len(_SHAPES) >= _SHAPES_LIMIT:
        _SHAPES.clear()
    parent = defn.parent
    found = _SHAPES[defn] = (
        path_key(defn),
        path_key(parent) if parent is not None and parent.multi_valued else None,
        defn.multi_valued,
        defn.is_complex,
        searchable_by_substring(defn),
        defn.uniqueness != "none",
    )
    return found


def split_values(
    rows: list[IndexRow], pid_of: Mapping[str, int]
) -> tuple[dict[str, Any], str, list[tuple[int, IndexRow]]]:
    """(``sv``, ``sv_text``, the unique value rows with their position ``n``) of ``rows``
    (``scimd.store.sql.extract_values``: an element's marker row comes before its
    leaves).

    :param pid_of: maps a path key (``scimd.store.sql.path_key``) to its id."""
    sv: dict[str, Any] = {}
    texts: list[str] = []
    unique_rows: list[tuple[int, IndexRow]] = []
    shapes = _SHAPES
    for n, row in enumerate(rows):
        defn, _, v_text, v_num, _ = row
        try:
            key, outer, multi, is_complex, searchable, unique = shapes[defn]
        except KeyError:
            key, outer, multi, is_complex, searchable, unique = _shape(defn)
        pid = str(pid_of[key])
        value: Any
        if is_complex:
            value = 1 if v_num == 1 else 0
        elif v_num is not None:
            value = v_num
        else:
            value = v_text
            if v_text:
                if searchable:
                    texts.append(v_text)
                if unique:
                    unique_rows.append((n, row))
        if outer is not None:  # inside the current element of a multi-valued attribute
            element = sv[str(pid_of[outer])][-1]
            if multi:
                element.setdefault(pid, []).append(value)
            else:
                element[pid] = value
        elif not multi:
            sv[pid] = value
        elif is_complex:
            sv.setdefault(pid, []).append({ANY: value})
        else:
            sv.setdefault(pid, []).append(value)
    sv_text = SEP + SEP.join(texts) + SEP if texts else ""
    return sv, sv_text, unique_rows


def sv_json(sv: dict[str, Any]) -> bytes:
    """``sv`` as JSON (the same encoder as the resource's ``data``)."""
    return orjson.dumps(sv)
