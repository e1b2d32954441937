"""Substring search for the embedded store: a trigram index of the text values.

``co`` and ``ew`` cannot use the ``attr_values`` value index (a B-tree finds prefixes,
which is how ``sw`` is answered), so without help they read every value of the attribute.
This module keeps an FTS5 table with SQLite's ``trigram`` tokenizer (SQLite 3.34+) over the
text values of ``attr_values``:

* ``attr_fts``: a contentless FTS5 table with one row per ``attr_values`` row of an
  indexed attribute (a text attribute: string, reference, binary; not the server's own
  ``schemas`` and ``meta``: see :func:`indexed`) with a non-empty value, sharing its rowid.
  The indexed text is the stored comparable form (``v_text``: casefolded unless
  caseExact), so the tokenizer runs ``case_sensitive 1`` and a phrase of trigrams is an
  exact substring test. NUL characters are indexed as U+FFFD (FTS5 stops reading a value
  at a NUL), so every NUL-free substring of a value is a substring of its indexed text.
* It is written in the same transaction as the ``attr_values`` rows
  (``SubstringIndex.index_resource`` after they are inserted, ``unindex_resource`` before
  they are deleted, ``clear`` with a full reindex). A contentless row is removed by
  giving its indexed text again, which both read from ``attr_values`` with the same
  condition (the attribute ids of the indexed attributes, a non-empty value).
* ``store_meta`` key ``substring_index`` = ``"1"`` says the table is complete. A store
  opened where the tokenizer is missing removes it (its writes do not maintain the
  table) and filters use the scan; the next open that has it rebuilds the table
  (:func:`open_index`). Layout 4 is a store whose writers know this contract.

``SubstringIndex.source`` is the ``FilterCompiler`` hook: a ``co``/``ew`` comparison whose folded
operand has 3 or more characters reads the candidate rows from the trigram index
(``MATCH`` on the operand as one phrase), and the compiler's own condition (``instr`` /
``substr`` on ``v_text``, the tenant, type and attribute) is still applied to each
candidate: the index only narrows, the answer is the reference semantics. Shorter
operands (no trigram to look up) and operands with a NUL keep the scan.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from scimd.query.ast import Value
from scimd.schema.model import COMMON_SCHEMA, AttributeDef, SchemaRegistry
from scimd.store.sql import fold, path_key

__all__ = ["MIN_OPERAND", "TABLE", "SubstringIndex", "available", "indexed", "open_index", "phrase"]

log = logging.getLogger("scimd.store")

TABLE = "attr_fts"
MIN_OPERAND = 3
"""Shortest operand (in characters, after folding) the trigram index can answer."""

_META_KEY = "substring_index"
_TOKENIZER = "trigram case_sensitive 1"
_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5"
    f"(v, content = '', tokenize = '{_TOKENIZER}', detail = full, columnsize = 0)"
)
_NOT_TEXT = frozenset({"boolean", "integer", "decimal", "dateTime", "complex"})
# The indexed text of an attr_values row (see the module doc): a NUL would end it early
# (and SQL's replace() cannot replace a NUL).
_TEXT = "scim_fts_text(v_text)"


def _fts_text(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def available(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite has FTS5 with the ``trigram`` tokenizer (and its options)."""
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    try:
        conn.execute(
            "CREATE VIRTUAL TABLE temp.scimd_trigram_probe USING fts5"
            f"(v, tokenize = '{_TOKENIZER}')"
        )
        conn.execute("DROP TABLE temp.scimd_trigram_probe")
    except sqlite3.Error:
        return False
    return True


def indexed(defn: AttributeDef) -> bool:
    """Whether values of ``defn`` are in the trigram index: the attributes whose ``co``/``ew``
    compare text (``FilterCompiler._cond``: not numbers, booleans, dateTimes), except the
    common ``schemas`` and ``meta`` the server writes itself (``externalId`` is indexed):
    every write rewrites them, and nobody searches them by substring (they still can, by
    the scan)."""
    if defn.type in _NOT_TEXT:
        return False
    return defn.schema != COMMON_SCHEMA or defn.path.lower() == "externalid"


def phrase(operand: str) -> str:
    """``operand`` as one FTS5 phrase (a string in double quotes, quotes doubled)."""
    return '"' + operand.replace('"', '""') + '"'


class SubstringIndex:
    """The trigram index of a store (see the module doc); ``keys``: the ``path_key`` of
    every indexed attribute of the registry."""

    def __init__(self, registry: SchemaRegistry) -> None:
        keys: set[str] = set()

        def walk(defn: AttributeDef) -> None:
            if indexed(defn):
                keys.add(path_key(defn))
            for sub in defn.sub_order:
                walk(sub)

        for rt in registry.resource_types.values():
            for schema in (rt.common, rt.schema, *(s for s, _ in rt.extensions.values())):
                for defn in schema.order:
                    walk(defn)
        self.keys = frozenset(keys)

    def _rows(self, paths: Mapping[str, int], where: str) -> tuple[str, list[int]]:
        """The rowid and indexed text of the indexed ``attr_values`` rows matching
        ``where`` (a condition with its own placeholders, then the path ids')."""
        pids = sorted(pid for key, pid in paths.items() if key in self.keys)
        marks = ",".join("?" * len(pids)) or "NULL"
        sql = (
            f"SELECT rowid, {_TEXT} FROM attr_values"
            f" WHERE {where} AND path IN ({marks}) AND v_text <> ''"
        )
        return sql, pids

    def build(self, conn: sqlite3.Connection, paths: Mapping[str, int]) -> int:
        """Index every stored value (the table must be empty); the number indexed."""
        sql, pids = self._rows(paths, "1")
        conn.execute(f"INSERT INTO {TABLE} (rowid, v) {sql}", pids)
        n: int = conn.execute(f"SELECT count(*) FROM ({sql})", pids).fetchone()[0]
        return n

    def index_resource(self, conn: sqlite3.Connection, pk: int, paths: Mapping[str, int]) -> None:
        """Index the values of resource ``pk`` (its ``attr_values`` rows, just inserted)."""
        sql, pids = self._rows(paths, "pk = ?")
        conn.execute(f"INSERT INTO {TABLE} (rowid, v) {sql}", (pk, *pids))

    def unindex_resource(self, conn: sqlite3.Connection, pk: int, paths: Mapping[str, int]) -> None:
        """Remove the values of resource ``pk`` (before its ``attr_values`` rows go)."""
        sql, pids = self._rows(paths, "pk = ?")
        conn.execute(
            f"INSERT INTO {TABLE} ({TABLE}, rowid, v) SELECT 'delete', * FROM ({sql})",
            (pk, *pids),
        )

    @staticmethod
    def clear(conn: sqlite3.Connection) -> None:
        """Empty the index (with ``attr_values``, before a full reindex)."""
        conn.execute(f"INSERT INTO {TABLE} ({TABLE}) VALUES ('delete-all')")

    @staticmethod
    def source(bind: Callable[[Any], str], defn: AttributeDef, op: str, value: Value) -> str | None:
        """The ``FilterCompiler`` hook (``substring``): for a ``co``/``ew`` comparison of
        ``defn`` with ``value`` the trigram index can answer, the FROM clause yielding the
        ``attr_values a`` rows that may match (the caller still applies the exact
        condition); None to read ``attr_values`` as before. ``bind`` binds a parameter."""
        if op not in ("co", "ew") or not isinstance(value, str) or not indexed(defn):
            return None
        operand = fold(value, defn.case_exact)
        if len(operand) < MIN_OPERAND or "\x00" in operand:
            return None
        # The index drives (CROSS JOIN keeps it outermost); a candidate is a rowid lookup.
        return (
            f"{TABLE} ft CROSS JOIN attr_values a ON a.rowid = ft.rowid"
            f" AND ft.v MATCH {bind(phrase(operand))}"
        )


def open_index(
    conn: sqlite3.Connection, registry: SchemaRegistry, paths: Mapping[str, int]
) -> SubstringIndex | None:
    """The trigram index, made usable on the writer connection (in its open transaction):
    created, and filled from ``attr_values`` unless it is marked complete (the index is then
    written through this connection only). None when this
    SQLite cannot have it (the mark is then removed: see the module doc)."""
    if not available(conn):
        conn.execute("DELETE FROM store_meta WHERE key = ?", (_META_KEY,))
        log.warning(
            "embedded store: SQLite %s has no FTS5 trigram tokenizer; co/ew filters scan",
            sqlite3.sqlite_version,
        )
        return None
    index = SubstringIndex(registry)
    conn.create_function("scim_fts_text", 1, _fts_text, deterministic=True)
    exists = conn.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (TABLE,)).fetchone()
    conn.execute(_DDL)
    row = conn.execute("SELECT value FROM store_meta WHERE key = ?", (_META_KEY,)).fetchone()
    if exists is None or row is None or row[0] != "1":
        index.clear(conn)
        n = index.build(conn, paths)
        conn.execute(f"INSERT INTO {TABLE} ({TABLE}) VALUES ('optimize')")  # one segment
        conn.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES (?, '1')", (_META_KEY,))
        if n:
            log.info("embedded store: substring index built over %d values", n)
    return index
