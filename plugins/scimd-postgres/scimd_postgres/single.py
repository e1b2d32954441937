"""Single values in ``scimd_resources`` (layout 10): the ``sv`` and ``sv_text`` columns.

The values of a resource's *single-valued* attributes (a top-level or extension attribute
that is not multi-valued, a sub-attribute of a single-valued complex attribute, and that
complex attribute's own marker) are not rows of ``scimd_attr_values`` but one jsonb
object on the resource's row, keyed by the attribute's path id (``scimd_attr_paths``):

* a leaf is what its value row held: a string casefolded unless caseExact, a dateTime as
  the canonical UTC instant, a number, a boolean as 1/0;
* a single-valued complex attribute is 1 when it has a present leaf, else 0 (its marker).

``sv_text`` joins the strings of those leaves that are searchable by substring
(``scimd_postgres.compiler.searchable_by_substring``), each between two ``SEP``
characters, for one pg_trgm index that narrows ``co``/``sw``/``ew`` on any of them
(the compiler always rechecks the attribute's own value). Multi-valued attributes and
their sub-attributes keep their value rows, and so do the unique values
(``uniqueness`` server/global) which the unique index enforces: a single-valued unique
value (``userName``) is in both places, and the compiler reads it from ``sv``.

About 13 of the 20 value rows of a typical User are single values: one jsonb column
instead of them is most of what a bulk import costs PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from scimd.schema.model import COMMON_SCHEMA, AttributeDef
from scimd.store.sqlcommon import IndexRow, path_key

__all__ = ["SEP", "SV_INDEXES", "in_sv", "searchable_by_substring", "split_values", "sv_json"]

SEP = "\x1f"
"""Separates (and surrounds) the values in ``sv_text``: a ``sw`` pattern is ``%<SEP>x%``,
an ``ew`` one ``%x<SEP>%``."""


SV_INDEXES = {
    "scimd_resources_sv": "CREATE INDEX IF NOT EXISTS scimd_resources_sv ON scimd_resources"
    " USING gin (sv jsonb_path_ops) WITH (fastupdate = off)",
    "scimd_resources_sv_trgm": "CREATE INDEX IF NOT EXISTS scimd_resources_sv_trgm"
    " ON scimd_resources USING gin (sv_text gin_trgm_ops) WITH (fastupdate = off)",
}
"""The indexes on the single values (created by ``backfill_single_values``): ``eq`` on
any of them is containment (``sv @> {"<path id>": value}``), ``co``/``sw``/``ew`` a
``LIKE`` on ``sv_text``. Without a pending list (``fastupdate = off``) a lookup never
scans up to 4 MB of unmerged entries (2 ms at 100,000 users); a bulk import drops and
rebuilds them."""


def searchable_by_substring(defn: AttributeDef) -> bool:
    """The ``fts`` column of a value row of ``defn``: whether it belongs in the trigram
    index (``WHERE fts``, migration 0009), which serves ``co``/``ew`` on it; the compiler
    asks for ``fts`` exactly when this is true. No for dateTimes (the filter parser
    refuses co/sw/ew on them) and for the built-in common attributes but ``externalId``
    (``schemas`` and the server's ``meta`` values, one value repeated on every resource),
    whose ``co``/``ew`` reads that attribute's rows in the value index: the same rows,
    slower. Yes for every other attribute. It depends only on what an operator's schema
    edit cannot change without invalidating the stored values anyway (a dateTime is
    stored as a canonical instant; the common schema is built in): rows written under one
    answer are never searched under the other."""
    if defn.schema == COMMON_SCHEMA:
        return defn.type == "string" and defn.parent is None  # externalId (id is a column)
    return defn.type != "dateTime"


def in_sv(defn: AttributeDef) -> bool:
    """Whether the values of ``defn`` live in ``scimd_resources.sv``: a single-valued
    attribute that is not inside a multi-valued one. It depends only on the schema's
    shape, which an operator cannot change without invalidating the stored values."""
    if defn.multi_valued:
        return False
    parent = defn.parent
    return parent is None or not parent.multi_valued


_Shape = tuple[str, bool, bool, bool, bool]
_SHAPES: dict[AttributeDef, _Shape] = {}
_SHAPES_LIMIT = 4096


def _shape(defn: AttributeDef) -> _Shape:
    """(path key, in ``sv``, complex, in ``sv_text``, unique) of ``defn``, remembered
    (schema objects live as long as their registry; bounded)."""
    if len(_SHAPES) >= _SHAPES_LIMIT:
        _SHAPES.clear()
    found = _SHAPES[defn] = (
        path_key(defn),
        in_sv(defn),
        defn.is_complex,
        searchable_by_substring(defn),
        defn.uniqueness != "none",
    )
    return found


def split_values(
    rows: list[IndexRow], pid_of: Mapping[str, int]
) -> tuple[dict[str, Any], str, list[tuple[int, IndexRow, bool]]]:
    """(``sv``, ``sv_text``, the value rows to write) of ``rows``
    (``scimd.store.sql.extract_values``). Each row to write comes with its position (its
    ``n``) and whether it is a single value kept only for the unique index.

    :param pid_of: maps a path key (``scimd.store.sql.path_key``) to its id."""
    sv: dict[str, Any] = {}
    texts: list[str] = []
    keep: list[tuple[int, IndexRow, bool]] = []
    shapes = _SHAPES
    for n, row in enumerate(rows):
        defn, _, v_text, v_num, _ = row
        try:
            key, single, is_complex, searchable, unique = shapes[defn]
        except KeyError:
            key, single, is_complex, searchable, unique = _shape(defn)
        if not single:
            keep.append((n, row, False))
            continue
        pid = str(pid_of[key])
        if is_complex:
            sv[pid] = 1 if v_num == 1 else 0
        elif v_num is not None:
            sv[pid] = v_num
        else:
            sv[pid] = v_text
            if v_text:
                if searchable:
                    texts.append(v_text)
                if unique:
                    keep.append((n, row, True))
    sv_text = SEP + SEP.join(texts) + SEP if texts else ""
    return sv, sv_text, keep


def sv_json(sv: dict[str, Any]) -> bytes:
    """``sv`` as JSON (the same encoder as the resource's ``data``)."""
    return orjson.dumps(sv)
