"""Rows of ``scimd import`` in PostgreSQL's COPY text format, built where the CPU is.

``RowEncoder`` turns one normalised resource into its ``scimd_resources`` row (with ``sv``
and ``sv_text``) and its unique value rows (``scimd_postgres.single.SingleValues``,
exactly what ``create`` writes) as COPY text. It is a small picklable object:
``scimd.bulk_import`` runs it in its worker processes, next to normalisation, so the
importing process only filters, numbers and streams bytes. The primary key is not known
yet when a row is encoded: every row starts with the placeholder byte ``\\x01`` (escaped
wherever it occurs in data), which ``number()`` replaces by the key taken from the
sequence.

``BulkMode`` (``scimd import --bulk``, or a big file): the secondary indexes that are
cheaper to rebuild than to maintain are dropped for the load and rebuilt after it; the
dropped definitions are recorded in ``scimd_store_meta`` so that an interrupted import is
completed by rerunning it or by ``scimd migrate`` (``restore_bulk_indexes``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from scimd.schema.model import AttributeDef, ResourceType
from scimd.store.sql import Relations, path_key
from scimd.store.sqlcommon import stored_form, uniqueness_message
from scimd.store.unique_keys import derive_keys
from scimd_postgres.single import SV_INDEXES, SingleValues, sv_json

__all__ = [
    "BULK_INDEXES",
    "BULK_LOCK",
    "BULK_MARKER",
    "PK",
    "VALUE_COLUMNS",
    "BulkMode",
    "Encoded",
    "RowEncoder",
    "copy_text",
    "drop_bulk_indexes",
    "number",
    "resource_of",
    "restore_bulk_indexes",
    "stamp",
]

PK = b"\x01"
"""Placeholder of the primary key at the start of every encoded row."""
VALUE_COLUMNS = ["pk", "n", "tenant", "rtype", "path", "elem", "v_text", "v_num", "uniq", "fts"]
"""The ``scimd_attr_values`` columns of an encoded value row, in order."""

_NULL = "\\N"


def copy_text(value: str) -> str:
    """``value`` as a field of COPY's text format (and ``\\x01`` escaped)."""
    if value.isprintable() and "\\" not in value:  # the common case: nothing to escape
        return value
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value or "\n" in value or "\r" in value or "\x01" in value:
        value = (
            value.replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\x01", "\\x01")
        )
    return value


_STAMP: list[tuple[int, str]] = [(-1, "")]  # the last (millisecond, stamp)


def stamp() -> str:
    """``meta.created``/``lastModified`` of this moment (as ``create`` writes them); one
    ``strftime`` per millisecond."""
    ms = time.time_ns() // 1_000_000
    last = _STAMP[0]
    if last[0] == ms:
        return last[1]
    text = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
    text += f"{ms % 1000:03d}Z"
    _STAMP[0] = (ms, text)
    return text


class Encoded(NamedTuple):
    """One resource ready for COPY, or the reason it cannot be stored (a tuple: it crosses
    the process boundary once per resource, and tuples unpickle fastest)."""

    rid: str
    error: str | None
    # (path id, indexed text, 409 message) of each value of a unique attribute
    unique: tuple[tuple[int, str, str], ...]
    resource_row: bytes
    value_rows: bytes
    # (kind, key) of each derived unique key (``scimd.store.unique_keys.derive_keys``)
    keys: tuple[tuple[str, str], ...] = ()


def resource_of(encoded: Encoded) -> dict[str, Any]:
    """The normalised resource ``encoded`` was made from (its stored data without ``id``
    and ``meta``), for the one-by-one fallback of ``import_encoded``: read back from the
    resource row rather than sent between the processes a second time."""
    data = encoded.resource_row.split(b"\t", 8)[7]
    resource: dict[str, Any] = orjson.loads(data.replace(b"\\\\", b"\\"))
    resource.pop("id", None)
    resource.pop("meta", None)
    return resource


def number(encoded: Encoded, pk: int) -> tuple[bytes, bytes]:
    """The resource row and value rows of ``encoded`` with primary key ``pk``."""
    key = b"%d" % pk
    return encoded.resource_row.replace(PK, key, 1), encoded.value_rows.replace(PK, key)


class RowEncoder:
    """Encodes resources of one tenant and resource type (see the module doc). Picklable:
    its per-process caches (the row prefix of each attribute) are rebuilt after a pickle.

    :param paths: ``scimd_attr_paths`` key -> id (every attribute of the schemas)."""

    __slots__ = ("_head", "_prefix", "_relations", "_sv", "paths", "rtype", "tenant")

    def __init__(self, tenant: str, rtype: str, paths: dict[str, int]) -> None:
        self.tenant = tenant
        self.rtype = rtype
        self.paths = paths
        self._head = f"\t{copy_text(tenant)}\t{copy_text(rtype)}\t"
        # attribute -> (path id, "\t<tenant>\t<rtype>\t<path id>\t")
        self._prefix: dict[AttributeDef, tuple[int, str]] = {}
        self._relations: dict[ResourceType, Relations] = {}
        self._sv = SingleValues(paths)

    def __reduce__(self) -> tuple[Any, ...]:
        return RowEncoder, (self.tenant, self.rtype, self.paths)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowEncoder) and (self.tenant, self.rtype, self.paths) == (
            other.tenant,
            other.rtype,
            other.paths,
        )

    __hash__ = None  # type: ignore[assignment]

    def _row_prefix(self, defn: AttributeDef) -> tuple[int, str]:
        pid = self.paths[path_key(defn)]
        found = self._prefix[defn] = (pid, f"{self._head}{pid}\t")
        return found

    def __call__(self, rtype: ResourceType, resource: dict[str, Any]) -> Encoded:
        now = stamp()
        rel = self._relations.get(rtype)
        if rel is None:
            rel = self._relations[rtype] = Relations.of(rtype)
        rid = str(uuid.uuid4())
        data = stored_form(rtype, rid, rel.stored(resource), 1, now)
        doc = orjson.dumps(data)
        if b"\\u0000" in doc:
            return Encoded(rid, "PostgreSQL cannot store the NUL character (U+0000)", (), b"", b"")
        display = data.get("displayName")
        shown = copy_text(display) if isinstance(display, str) else _NULL
        folded = copy_text(display.casefold()) if isinstance(display, str) else _NULL
        sv, sv_text, rows = self._sv(rtype, data, rel)
        # orjson escapes every control character: only the backslashes need COPY escaping
        resource_row = b"".join(
            (
                PK,
                f"{self._head}{rid}\t1\t{shown}\t{folded}\t".encode(),
                doc.replace(b"\\", b"\\\\"),
                b"\t",
                sv_json(sv).replace(b"\\", b"\\\\"),
                f"\t{copy_text(sv_text)}\n".encode(),
            )
        )
        lines: list[str] = []
        unique: list[tuple[int, str, str]] = []
        seen: set[tuple[int, str]] = set()
        prefixes = self._prefix
        for n, (defn, elem, v_text, v_num, original) in rows:
            try:
                pid, prefix = prefixes[defn]
            except KeyError:
                pid, prefix = self._row_prefix(defn)
            assert v_text is not None
            if (pid, v_text) in seen:  # repeated within the resource: one row holds it
                continue
            seen.add((pid, v_text))
            unique.append((pid, v_text, uniqueness_message(defn, original)))
            num = _NULL if v_num is None else str(v_num)
            lines.append(f"\x01\t{n}{prefix}{elem}\t{copy_text(v_text)}\t{num}\tt\tf\n")
        keys = tuple((k.kind, k.key) for k in derive_keys(rtype, data))
        value_rows = "".join(lines).encode()
        return Encoded(rid, None, tuple(unique), resource_row, value_rows, keys)


# --------------------------------------------------------------------------- bulk mode

BULK_LOCK = 0x5C1D_0000_0002
"""The ``pg_advisory_lock`` key held by a bulk-mode import (one at a time per database)."""
BULK_MARKER = "bulk_import_dropped_indexes"
"""``scimd_store_meta`` key: the definitions of the indexes a bulk import dropped (JSON)."""
BULK_INDEXES = SV_INDEXES
"""Secondary indexes cheaper to rebuild than to maintain during a big load: the GIN
indexes on ``sv`` and ``sv_text``. Kept: the primary keys and the unique indexes
(uniqueness stays enforced by PostgreSQL; the import's per-batch checks of unique values
and primary emails are lookups in them). Measured on 100,000 bench users: bench/RESULTS.md
and docs/postgres.md."""
BULK_MIN_RECORDS = 50_000
"""``--bulk`` unset: bulk mode for files of at least this many records and at least a
quarter of the resources already stored."""


async def _saved_indexes(conn: Any) -> dict[str, str]:
    raw = await conn.fetchval("SELECT value FROM scimd_store_meta WHERE key = $1", BULK_MARKER)
    return dict(orjson.loads(raw)) if raw else {}


async def drop_bulk_indexes(conn: Any) -> list[str]:
    """Record the definitions of ``BULK_INDEXES`` in ``scimd_store_meta`` and drop them,
    in one transaction (a crash leaves either both or neither)."""
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() AND indexname = ANY($1::text[])",
            list(BULK_INDEXES),
        )
        saved = {**await _saved_indexes(conn), **{str(r[0]): str(r[1]) for r in rows}}
        await conn.execute(
            "INSERT INTO scimd_store_meta (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            BULK_MARKER,
            orjson.dumps(saved).decode(),
        )
        for row in rows:
            await conn.execute(f'DROP INDEX IF EXISTS "{row[0]}"')
    return [str(r[0]) for r in rows]


async def restore_bulk_indexes(conn: Any, *, locked: bool = False, second: Any = None) -> list[str]:
    """Recreate the indexes an interrupted or finished bulk import dropped (recorded in
    ``scimd_store_meta``), ``ANALYZE`` and clear the record; a no-op without one. Each
    ``CREATE INDEX`` is its own transaction: a crash during one leaves no half index and
    the record in place. Unless ``locked`` (the caller holds ``BULK_LOCK``), does nothing
    while a bulk import is running: that import restores them when it ends. With a
    ``second`` connection the indexes are built on both, in turn (a GIN index is built
    by one process). Returns the names created."""
    if not locked and not await conn.fetchval("SELECT pg_try_advisory_lock($1)", BULK_LOCK):
        return []
    try:
        saved = await _saved_indexes(conn)
        if not saved:
            return []
        lanes: list[tuple[Any, list[tuple[str, str]]]] = [(conn, [])]
        if second is not None:
            lanes.append((second, []))
        for i, (name, definition) in enumerate(sorted(saved.items())):
            lanes[i % len(lanes)][1].append((name, definition))
        done = await asyncio.gather(
            *(_create(c, todo) for c, todo in lanes if todo), return_exceptions=True
        )
        made: list[str] = []
        for names in done:  # both lanes finished: now report the first failure
            if isinstance(names, BaseException):
                raise names
            made += names
        await conn.execute("ANALYZE scimd_resources; ANALYZE scimd_attr_values")
        await conn.execute("DELETE FROM scimd_store_meta WHERE key = $1", BULK_MARKER)
        return made
    finally:
        if not locked:
            await conn.execute("SELECT pg_advisory_unlock($1)", BULK_LOCK)


async def _create(conn: Any, indexes: list[tuple[str, str]]) -> list[str]:
    """Create the missing ones of ``indexes`` (name, definition) on ``conn``, in order."""
    await conn.execute(
        "SET maintenance_work_mem = '512MB'; SET max_parallel_maintenance_workers = 4"
    )
    made: list[str] = []
    for name, definition in indexes:
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            await conn.execute(definition)
            made.append(name)
    await conn.execute("RESET maintenance_work_mem; RESET max_parallel_maintenance_workers")
    return made


class BulkMode:
    """``scimd import`` in bulk mode (``PostgresBackend.import_bulk``): an async context
    manager, entered around the whole load, whose value says whether bulk mode is on.

    On entry (bulk wanted and ``BULK_LOCK`` free): drops ``BULK_INDEXES`` (recorded first,
    see ``drop_bulk_indexes``). On exit, whatever the outcome: rebuilds them with a large
    ``maintenance_work_mem`` and parallel workers, ``ANALYZE``. Killed in between, the
    database keeps every row of every committed batch and the record of the dropped
    indexes: rerunning the import (it skips what is stored, then rebuilds) or ``scimd
    migrate`` recreates them.

    Concurrent SCIM traffic stays correct: the unique indexes and the value index used by
    ``eq``/``sw`` are kept, and a query whose index is missing (``co``/``ew``, numbers)
    is answered by a scan, slower but with the same rows. The rebuild (the GIN index on a
    second connection, next to the B-trees) takes a SHARE lock on ``scimd_attr_values``:
    writes wait for it (reads do not). A second bulk import while one runs loads in the
    normal mode.

    :param records: records in the file; ``force``: True/False (``--bulk/--no-bulk``),
        None to decide (``BULK_MIN_RECORDS`` and a quarter of the stored resources)."""

    def __init__(self, dsn: str, records: int, force: bool | None, timeout: float) -> None:
        self.dsn = dsn
        self.records = records
        self.force = force
        self.timeout = timeout
        self.conn: Any = None
        self.dropped: list[str] = []

    async def _wanted(self, conn: Any) -> bool:
        if self.force is not None:
            return self.force
        if self.records < BULK_MIN_RECORDS:
            return False
        stored = await conn.fetchval(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class"
            " WHERE oid = 'scimd_resources'::regclass"
        )
        return self.records * 4 >= int(stored or 0)

    async def __aenter__(self) -> bool:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
        try:
            pending = bool(await _saved_indexes(conn))  # an interrupted bulk import
            if not (pending or await self._wanted(conn)):
                await conn.close()
                return False
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", BULK_LOCK):
                await conn.close()
                return False
            self.dropped = await drop_bulk_indexes(conn)
        except BaseException:
            await conn.close()
            raise
        self.conn = conn
        return True

    async def __aexit__(self, *exc: object) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        import asyncpg

        second: Any = None
        try:
            try:
                second = await asyncpg.connect(self.dsn, timeout=self.timeout)
            except (OSError, asyncpg.PostgresError):  # then one index at a time
                second = None
            await restore_bulk_indexes(conn, locked=True, second=second)
        finally:
            if second is not None:
                await second.close()
            await conn.close()  # also releases BULK_LOCK
