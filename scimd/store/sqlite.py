"""The embedded store: a SQLite ``Backend`` (stdlib ``sqlite3``, WAL).

Layout (``PRAGMA user_version`` = ``SCHEMA_VERSION``):

* ``resources``: one row per resource; ``data`` is the resource's JSON (orjson) with its
  ``meta`` and without ``members``/``groups`` (those are relations); ``display`` is its
  ``displayName`` (the ``display`` of computed ``groups``).
* ``attr_paths``: attribute key (``<schema urn>:<dotted path>``, lower case) -> small int.
* ``attr_values``: the filterable leaf values of every resource (see ``scimd.store.sql``),
  rewritten with the resource; ``uniq = 1`` rows carry a partial UNIQUE index that enforces
  ``uniqueness: server|global`` per tenant and resource type.
* ``members``: Group membership as a relation, so membership changes touch only the named
  rows and a read that does not want members never reads them.
* ``attr_fts`` (layout 4): a trigram index of the text values, for ``co``/``ew`` filters
  (``scimd.store.fts``).

Concurrency: one writer connection on a single dedicated thread (so every write is
serialised, and the check and the write of an If-Match happen in one ``BEGIN IMMEDIATE``
transaction), and a pool of reader threads with their own connections (WAL readers never
block the writer). The event loop only ever awaits futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from scimd.backend import (
    BackendEnv,
    Capabilities,
    Keyset,
    MemberChange,
    OpContext,
    Page,
    PatchOp,
    Query,
    SortSpec,
)
from scimd.errors import (
    InvalidValue,
    NotFound,
    PreconditionFailed,
    ScimError,
    ServiceUnavailable,
    Uniqueness,
)
from scimd.query.ast import Comparison, Filter
from scimd.schema.model import COMMON_SCHEMA, AttributeDef, ResourceType, SchemaRegistry
from scimd.sqlite_wal import enter_wal
from scimd.store import fts
from scimd.store.sql import (
    FilterCompiler,
    IndexRow,
    Relations,
    extract_values,
    fold,
    path_key,
    sort_expr,
    sort_keys,
    sortable,
)
from scimd.store.sqlcommon import stored_form, uniqueness_message, weak_etag
from scimd.store.unique_keys import (
    EMAIL,
    SQLITE_DDL,
    sqlite_backfill,
    sqlite_delete_keys,
    sqlite_write_keys,
)

__all__ = ["SCHEMA_VERSION", "SQLiteBackend", "etag_matches"]

log = logging.getLogger("scimd.store")

SCHEMA_VERSION = 4

_MMAP_SIZE = 1 << 30
"""Default ``mmap_size``: bytes of the database file read through ``mmap`` (beyond them,
reads are system calls). The mapped pages are the OS page cache: they count in the
process's RSS (RssFile), not in its own memory (RssAnon)."""

_INLINE_BUDGET = 20_000
"""Default ``inline_budget``: SQLite VM instructions a read may take on the event loop's
own connection before it is interrupted and handed to a reader thread (see ``_read``)."""

_PROGRESS_STEP = 500
"""The progress handler runs every this many VM instructions (its own cost: a Python call)."""

_GROUP_COMMIT_MAX = 64
"""Writes committed together at most (group commit, see ``_write_tx``)."""

_SHAPE_SQL_SIZE = 256
"""Statements kept per filter shape (cleared when full)."""

_SHAPE_PROBE = "scimd-shape-probe"

_UNORDERED_ROWS = 2
"""A lookup's first page (``_index_page_one_statement``) is first read unordered, at most
this many rows: fewer is the whole answer (no sort needed), as many takes the ordered
statement. Polled lookups (``emails[type eq "work"].value eq``) match one resource or none."""

_T = TypeVar("_T")

_DDL = (
    """CREATE TABLE resources (
        pk INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        rtype TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        display TEXT,
        data BLOB NOT NULL,
        UNIQUE (tenant, rtype, id)
    )""",
    "CREATE TABLE attr_paths (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)",
    """CREATE TABLE attr_values (
        pk INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        rtype TEXT NOT NULL,
        path INTEGER NOT NULL,
        elem INTEGER NOT NULL,
        v_text TEXT,
        v_num NUMERIC,
        uniq INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX attr_values_pk ON attr_values (pk, path, elem)",
    "CREATE INDEX attr_values_text ON attr_values (tenant, rtype, path, v_text)",
    "CREATE INDEX attr_values_num ON attr_values (tenant, rtype, path, v_num)"
    " WHERE v_num IS NOT NULL",
    "CREATE UNIQUE INDEX attr_values_unique ON attr_values (tenant, rtype, path, v_text)"
    " WHERE uniq = 1",
    """CREATE TABLE members (
        tenant TEXT NOT NULL,
        grtype TEXT NOT NULL,
        group_id TEXT NOT NULL,
        member_id TEXT NOT NULL,
        member_type TEXT,
        display TEXT,
        PRIMARY KEY (tenant, group_id, member_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX members_member ON members (tenant, member_id)",
    "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

# Layout 2: the sort value of every leaf attribute of every resource, in an ordered index
# (a sorted page walks it with a keyset instead of computing every row's sort key), and
# the number of resources per tenant and type (exact totalResults of unfiltered lists
# without counting rows).
_DDL_2 = (
    """CREATE TABLE sort_keys (
        pk INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        rtype TEXT NOT NULL,
        path INTEGER NOT NULL,
        v NOT NULL,
        rid TEXT NOT NULL
    )""",
    "CREATE INDEX sort_keys_order ON sort_keys (tenant, rtype, path, v, rid, pk)",
    "CREATE INDEX sort_keys_pk ON sort_keys (pk, path)",
    """CREATE TABLE resource_counts (
        tenant TEXT NOT NULL,
        rtype TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (tenant, rtype)
    ) WITHOUT ROWID""",
)

# Fixed planner statistics (sqlite_stat1) describing a large multi-tenant store, so query
# plans do not depend on what the data looked like when ANALYZE last ran (or on an empty
# database): equality on a value is selective, a tenant is not.
_STATS = (
    ("resources", "sqlite_autoindex_resources_1", "1000000 100000 50000 1"),
    ("attr_values", "attr_values_pk", "20000000 20 2 1"),
    ("attr_values", "attr_values_text", "20000000 2000000 1000000 50000 2"),
    ("attr_values", "attr_values_num", "2000000 200000 100000 10000 10"),
    ("attr_values", "attr_values_unique", "1000000 100000 50000 25000 1"),
    ("members", "members", "5000000 500000 100 1"),
    ("members", "members_member", "5000000 500000 5"),
    ("sort_keys", "sort_keys_order", "10000000 1000000 500000 50000 2 1 1"),
    ("sort_keys", "sort_keys_pk", "10000000 10 1"),
)

_SQL_GET = "SELECT pk, version, data FROM resources WHERE tenant = ? AND rtype = ? AND id = ?"
_SQL_MEMBERS = (
    "SELECT member_id, member_type, display FROM members WHERE tenant = ? AND group_id = ?"
)
_SQL_GROUPS = (
    "SELECT m.group_id, g.display FROM members m JOIN resources g"
    " ON g.tenant = m.tenant AND g.rtype = m.grtype AND g.id = m.group_id"
    " WHERE m.tenant = ? AND m.member_id = ? ORDER BY m.group_id"
)
# The relations of a page's resource ``p`` as JSON arrays, in the statement that reads the
# page (``_index_page_one_statement``); ordered in Python like _SQL_MEMBERS/_SQL_GROUPS.
_JSON_MEMBERS = (
    "(SELECT json_group_array(json_array(m.member_id, m.member_type, m.display))"
    " FROM members m WHERE m.tenant = :tenant AND m.group_id = {rid})"
)
_JSON_GROUPS = (
    "(SELECT json_group_array(json_array(m.group_id, g.display)) FROM members m"
    " JOIN resources g ON g.tenant = m.tenant AND g.rtype = m.grtype AND g.id = m.group_id"
    " WHERE m.tenant = :tenant AND m.member_id = {rid})"
)
_INSERT_VALUE = (
    "INSERT INTO attr_values (pk, tenant, rtype, path, elem, v_text, v_num, uniq)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SORT = "INSERT INTO sort_keys (pk, tenant, rtype, path, v, rid) VALUES (?, ?, ?, ?, ?, ?)"
_COUNT_ADD = (
    "INSERT INTO resource_counts (tenant, rtype, n) VALUES (?, ?, ?)"
    " ON CONFLICT (tenant, rtype) DO UPDATE SET n = n + excluded.n"
)


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def etag_matches(if_match: str | None, version: int) -> bool:
    """RFC 7232 3.1 with weak comparison: ``*`` matches any, else any listed entity tag
    whose opaque tag equals the current one (``W/`` prefixes ignored)."""
    if if_match is None:
        return True
    current = f'"{version}"'
    for raw in if_match.split(","):
        tag = raw.strip()
        if tag == "*":
            return True
        if tag[:2] in ("W/", "w/"):
            tag = tag[2:]
        if tag == current:
            return True
    return False


def _scim_fold(value: str | None) -> str | None:
    return value.casefold() if isinstance(value, str) else value


def _fingerprint(registry: SchemaRegistry) -> str:
    """What the ``attr_values`` content depends on; a change triggers a reindex."""
    parts: list[str] = []

    def walk(defn: AttributeDef) -> None:
        parts.append(
            f"{path_key(defn)}|{defn.type}|{defn.case_exact}|{defn.multi_valued}"
            f"|{defn.uniqueness}|{defn.returned}"
        )
        for sub in defn.sub_order:
            walk(sub)

    for key in sorted(registry.resource_types):
        rt = registry.resource_types[key]
        parts.append(f"rt:{rt.name}")
        for schema in (rt.common, rt.schema, *(s for s, _ in rt.extensions.values())):
            for defn in schema.order:
                walk(defn)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class _Unique:
    """A value that must be unique: (attribute, comparable value, original value)."""

    __slots__ = ("defn", "original", "value")

    def __init__(self, defn: AttributeDef, value: str, original: Any) -> None:
        self.defn = defn
        self.value = value
        self.original = original


class SQLiteBackend:
    """The ``embedded`` backend. See the module docstring for the layout.

    Options (``[storage.embedded]``): ``path`` (default ``scimd.db``, relative to the config
    directory; ``:memory:`` is not supported as readers need their own connections),
    ``readers`` (reader threads, default 4), ``busy_timeout`` (seconds, default 5),
    ``mmap_size`` (bytes of the file read through a memory map, default 1 GiB; 0: none),
    ``inline_budget`` (SQLite VM instructions a read may run on the event loop before it
    moves to a reader thread, default 20,000; 0: every read goes to a reader thread).
    """

    def __init__(self, env: BackendEnv) -> None:
        opts = env.options
        path = Path(str(opts.get("path", "scimd.db")))
        self.path = path if path.is_absolute() else env.base_dir / path
        self.readers = max(1, int(opts.get("readers", 4)))
        self.busy_timeout = float(opts.get("busy_timeout", 5.0))
        self.mmap_size = max(0, int(opts.get("mmap_size", _MMAP_SIZE)))
        self.inline_budget = max(0, int(opts.get("inline_budget", _INLINE_BUDGET)))
        self._inline: sqlite3.Connection | None = None
        self._inline_steps = 0
        self._inline_loop: asyncio.AbstractEventLoop | None = None
        self.inline_reads = 0
        self._shape_sql: dict[
            tuple[Any, ...],
            tuple[str, dict[str, Any], tuple[str, ...], str | None, str | None, int],
        ] = {}
        self._paths_gen = 0
        """Bumped whenever an attribute path id appears or is forgotten: a statement
        compiled before embeds the old path ids (or FALSE for a path not stored yet)."""
        """Reads answered on the event loop (the rest went to a reader thread); for tests."""
        self.registry = env.registry
        scim = getattr(env.settings, "scim", None)
        self.allow_dangling = bool(getattr(scim, "allow_dangling_members", False))
        self.capabilities = Capabilities(
            max_results=int(getattr(scim, "max_results", 1000)),
            unique_keys=frozenset({EMAIL}),
        )
        schema_settings = getattr(env.settings, "schema", None)
        unknown = getattr(schema_settings, "unknown_attributes", "error")
        self._unknown: Literal["error", "ignore"] = "ignore" if unknown == "ignore" else "error"
        self._relations: dict[str, Relations] = {}
        self._paths: dict[str, int] = {}
        self._new_paths: list[str] = []
        self.substring: fts.SubstringIndex | None = None
        """The trigram index ``co``/``ew`` filters use (``scimd.store.fts``), if any."""
        self._writer: sqlite3.Connection | None = None
        self._wpool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[Callable[..., Any], tuple[Any, ...], Any, Any]] = []
        self._pending_lock = threading.Lock()
        self._drain_scheduled = False
        self._rpool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self.trace: Callable[[str], None] | None = None
        """Test hook: called with every SQL statement any connection runs."""

    # ------------------------------------------------------------------ lifecycle

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        enter_wal(conn, self.busy_timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = OFF")
        # Read the database file through a memory map: a page that is not in this
        # connection's page cache costs a memory access instead of a read() system call
        # and a copy. Lookups by value walk the big ``attr_values`` indexes at random, so
        # they are what gains most (3x CPU in-process at 20,000 users); the mapped pages
        # are the OS page cache, shared by every connection and process.
        conn.execute(f"PRAGMA mmap_size = {int(self.mmap_size)}")
        if readonly:
            conn.execute("PRAGMA query_only = 1")
        conn.create_function("scim_fold", 1, _scim_fold, deterministic=True)
        if self.trace is not None:
            conn.set_trace_callback(self.trace)
        return conn

    def _init_reader(self) -> None:
        conn = self._connect(readonly=True)
        self._local.conn = conn
        with self._conns_lock:
            self._reader_conns.append(conn)

    async def start(self) -> None:
        """Open the writer, create or migrate the layout, start the reader threads."""
        self._wpool = ThreadPoolExecutor(1, thread_name_prefix="scimd-store-w")
        try:
            await self._write(self._open_writer)
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"Cannot open the embedded store: {exc}") from exc
        self._rpool = ThreadPoolExecutor(
            self.readers, thread_name_prefix="scimd-store-r", initializer=self._init_reader
        )
        if self.inline_budget:
            self._open_inline()

    def _open_inline(self) -> None:
        """The event loop's own read-only connection (this thread's ``_local.conn``)."""
        conn = self._connect(readonly=True)
        # Never wait for a lock on the loop: a busy database sends the read to a thread.
        conn.execute("PRAGMA busy_timeout = 0")
        conn.set_progress_handler(self._inline_progress, _PROGRESS_STEP)
        self._inline = conn
        self._inline_loop = asyncio.get_running_loop()
        self._local.conn = conn

    def _inline_progress(self) -> int:
        """Progress handler of the inline connection: non-zero interrupts the statement."""
        self._inline_steps -= _PROGRESS_STEP
        return 1 if self._inline_steps < 0 else 0

    def _open_writer(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect(readonly=False)
        self._writer = conn
        # Read the layout version under the write lock: several worker processes may
        # open a new database at the same time, and only one may create it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ServiceUnavailable(
                    f"{self.path} has storage layout {version}; this scimd knows up to "
                    f"{SCHEMA_VERSION} (upgrade scimd)"
                )
            migrated = False
            if version == 0:
                for stmt in _DDL:
                    conn.execute(stmt)
            if version < 2:
                for stmt in _DDL_2:
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO resource_counts (tenant, rtype, n)"
                    " SELECT tenant, rtype, count(*) FROM resources GROUP BY tenant, rtype"
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("ANALYZE sqlite_schema")  # creates sqlite_stat1
                conn.execute("DELETE FROM sqlite_stat1")
                conn.executemany(
                    "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", _STATS
                )
                migrated = version > 0  # sort_keys of the stored resources: reindex
            if version < 3:
                # Layout 3: derived unique keys (scimd.store.unique_keys), filled for the
                # stored resources; legacy duplicates become shared keys.
                for stmt in SQLITE_DDL:
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                shared = sqlite_backfill(conn, self.registry.resource_type)
                if shared:
                    log.warning(
                        "embedded store: %d users share their primary email with another"
                        " (stored before scim.unique_email); they stay editable",
                        shared,
                    )
            if version < 4:
                # Layout 4: the trigram index of text values (scimd.store.fts), built for
                # the stored resources by fts.open_index below.
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for key, pid in conn.execute("SELECT key, id FROM attr_paths"):
                self._paths[key] = pid
            self.substring = fts.open_index(conn, self.registry, self._paths)
            fp = _fingerprint(self.registry)
            row = conn.execute("SELECT value FROM store_meta WHERE key = 'fingerprint'").fetchone()
            if migrated or row is None or row[0] != fp:
                self._reindex(conn)
                conn.execute(
                    "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('fingerprint', ?)",
                    (fp,),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            self._forget_new_paths()
            raise
        conn.execute("COMMIT")
        self._new_paths.clear()

    def _reindex(self, conn: sqlite3.Connection) -> None:
        """Rebuild ``attr_values`` after a schema change (caseExact, uniqueness...)."""
        conn.execute("DELETE FROM attr_values")
        if self.substring is not None:
            self.substring.clear(conn)
        conn.execute("DELETE FROM sort_keys")
        rows = conn.execute("SELECT pk, tenant, rtype, id, data FROM resources").fetchall()
        for pk, tenant, rtype_name, rid, data in rows:
            rtype = self.registry.resource_type(rtype_name)
            if rtype is None:
                continue
            try:
                self._write_values(conn, pk, rid, tenant, rtype, orjson.loads(data), check=True)
            except Uniqueness as exc:
                raise ServiceUnavailable(
                    f"Cannot apply the schema to the stored {rtype.name} resources: {exc.detail}"
                ) from exc
        if rows:
            log.info("embedded store reindexed %d resources", len(rows))

    async def aclose(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
            self._local.conn = None
        if self._rpool is not None:
            self._rpool.shutdown(wait=True)
            self._rpool = None
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._wpool is not None:
            writer = self._writer
            if writer is not None:
                await asyncio.get_running_loop().run_in_executor(self._wpool, writer.close)
            self._wpool.shutdown(wait=True)
            self._wpool = None
            self._writer = None

    # ------------------------------------------------------------------ plumbing

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run the read ``fn(*args)`` (which uses ``self._local.conn``).

        Most reads the identity providers make are a handful of index probes (GET by id,
        ``userName eq``): tens of microseconds of SQLite work, while handing them to a
        reader thread and back costs the event loop more than that (a queue, a thread
        wake-up, a cross-thread callback). So a read first runs on the loop's own
        read-only connection under a budget of ``inline_budget`` VM instructions, enforced
        by SQLite's progress handler: one that needs more (a scan, a big page) is
        interrupted, rolled back and run again on a reader thread. The loop is never held
        for more than the budget; a locked database (``busy_timeout`` 0 here) also goes to
        a thread. Reads are side-effect free, so running one twice is safe.
        """
        conn = self._inline
        if conn is not None and asyncio.get_running_loop() is self._inline_loop:
            self._inline_steps = self.inline_budget
            try:
                result = fn(*args)
            except sqlite3.OperationalError:
                # Interrupted (over budget) or busy: leave no read transaction open.
                self._inline_steps = 1 << 30
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
            else:
                self.inline_reads += 1
                return result
        return await self._run(self._rpool, fn, *args)

    async def _write(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await self._run(self._wpool, fn, *args)

    async def _write_tx(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(conn, *args)`` in a write transaction on the writer thread, committed
        together with the other writes waiting at that moment (group commit).

        A commit costs more than most writes (the WAL frames of every touched page, the
        occasional checkpoint), and concurrent clients (an IdP provisioning with several
        connections, Bulk) queue behind the single writer anyway: the writer takes every
        waiting write, runs each under its own SAVEPOINT — one that fails is rolled back
        alone and gets its own error, the others are unaffected and see the writes before
        them as a serial order would — and commits once. Each caller is answered after
        that commit, so a 2xx still means durable as far as ``synchronous`` goes."""
        if self._wpool is None:
            raise ServiceUnavailable("The embedded store is not started")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._pending_lock:
            self._pending.append((fn, args, fut, loop))
            schedule = not self._drain_scheduled
            self._drain_scheduled = True
        if schedule:
            self._wpool.submit(self._drain)
        try:
            result: _T = await fut
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        return result

    def _drain(self) -> None:
        """Writer thread: one transaction for every write waiting now (see ``_write_tx``)."""
        with self._pending_lock:
            batch = self._pending[:_GROUP_COMMIT_MAX]
            del self._pending[:_GROUP_COMMIT_MAX]
            if self._pending:
                assert self._wpool is not None
                self._wpool.submit(self._drain)
            else:
                self._drain_scheduled = False
        outcomes: list[tuple[Any, Any, BaseException | None]] = []
        conn = self._writer
        try:
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as begin_failed:
            for _fn, _args, fut, loop in batch:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, fut, None, begin_failed)
            return
        try:
            for fn, args, fut, _loop in batch:
                mark = len(self._new_paths)
                conn.execute("SAVEPOINT w")
                try:
                    result = fn(conn, *args)
                except BaseException as failed:  # handed to that caller alone
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    self._forget_new_paths(since=mark)
                    outcomes.append((fut, None, failed))
                else:
                    conn.execute("RELEASE w")
                    outcomes.append((fut, result, None))
            conn.execute("COMMIT")
        except BaseException as commit_failed:
            # The commit, or a savepoint of a transaction SQLite already gave up (disk
            # full, I/O error): nothing of the batch is written, every caller hears so.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._forget_new_paths()
            outcomes = [(fut, None, commit_failed) for _fn, _args, fut, _loop in batch]
        self._new_paths.clear()
        for (fut, result, error), (_fn, _args, _fut, loop) in zip(outcomes, batch, strict=True):
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, fut, result, error)

    async def _run(self, pool: ThreadPoolExecutor | None, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn`` on a reader or the writer thread; SQLite errors become SCIM errors."""
        if pool is None:
            raise ServiceUnavailable("The embedded store is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    @staticmethod
    def _translate(exc: sqlite3.Error) -> ScimError:
        if isinstance(exc, sqlite3.OperationalError):
            log.warning("embedded store unavailable: %s", exc)
            return ServiceUnavailable("The resource store is busy or unavailable")
        log.error("embedded store error: %s", exc)
        return ScimError("Internal storage error")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = self._local.conn
        return conn

    def _tx(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(conn, *args)`` in a write transaction on the writer thread."""
        conn = self._writer
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            self._forget_new_paths()
            raise
        conn.execute("COMMIT")
        self._new_paths.clear()
        return result

    def _forget_new_paths(self, since: int = 0) -> None:
        # Path ids created in a rolled-back transaction (or savepoint: ``since`` = how many
        # new paths were there before it) do not exist: drop them from the cache so that
        # the id is not believed to belong to that key.
        gone = self._new_paths[since:]
        for key in gone:
            self._paths.pop(key, None)
        if gone:
            self._paths_gen += 1
        del self._new_paths[since:]

    def relations(self, rtype: ResourceType) -> Relations:
        rel = self._relations.get(rtype.name)
        if rel is None:
            rel = self._relations[rtype.name] = Relations.of(rtype)
        return rel

    def _path_for_write(self, conn: sqlite3.Connection, key: str) -> int:
        pid = self._paths.get(key)
        if pid is None:
            row = conn.execute("SELECT id FROM attr_paths WHERE key = ?", (key,)).fetchone()
            if row is None:
                pid = conn.execute(
                    "INSERT INTO attr_paths (key) VALUES (?) RETURNING id", (key,)
                ).fetchone()[0]
                self._new_paths.append(key)
                self._paths_gen += 1
            else:
                pid = row[0]
            self._paths[key] = pid
        return pid

    def _path_reader(self, conn: sqlite3.Connection) -> Callable[[str], int | None]:
        def lookup(key: str) -> int | None:
            pid = self._paths.get(key)
            if pid is None:
                row = conn.execute("SELECT id FROM attr_paths WHERE key = ?", (key,)).fetchone()
                if row is None:
                    return None
                pid = row[0]
            return pid

        return lookup

    # ------------------------------------------------------------------ values and members

    def _write_values(
        self,
        conn: sqlite3.Connection,
        pk: int,
        rid: str,
        tenant: str,
        rtype: ResourceType,
        resource: dict[str, Any],
        *,
        check: bool,
    ) -> None:
        rows: list[IndexRow] = extract_values(rtype, resource, self.relations(rtype))
        params: list[tuple[Any, ...]] = []
        uniques: list[_Unique] = []
        seen: set[tuple[int, str]] = set()
        for defn, elem, v_text, v_num, original in rows:
            pid = self._path_for_write(conn, path_key(defn))
            uniq = 0
            if defn.uniqueness != "none" and v_text is None and defn.type in _NUMERIC:
                # A unique number also gets a canonical text form (42 == 42.0), which the
                # partial UNIQUE index over v_text enforces; filters and sorts of numbers
                # read v_num only.
                v_text = _number_key(v_num)
            if defn.uniqueness != "none" and v_text and (pid, v_text) not in seen:
                seen.add((pid, v_text))
                uniq = 1
                uniques.append(_Unique(defn, v_text, original))
            params.append((pk, tenant, rtype.name, pid, elem, v_text, v_num, uniq))
        if check:
            for u in uniques:
                clash = conn.execute(
                    "SELECT 1 FROM attr_values WHERE tenant = ? AND rtype = ? AND path = ?"
                    " AND v_text = ? AND uniq = 1 AND pk <> ? LIMIT 1",
                    (tenant, rtype.name, self._paths[path_key(u.defn)], u.value, pk),
                ).fetchone()
                if clash is not None:
                    raise _uniqueness(u.defn, u.original)
        try:
            conn.executemany(_INSERT_VALUE, params)
        except sqlite3.IntegrityError as exc:
            # Another process won a race past the pre-check: still a 409, never a 500.
            name = uniques[0].defn.name if len(uniques) == 1 else "a unique attribute"
            raise Uniqueness(f"The value of {name} is already in use") from exc
        if self.substring is not None:
            self.substring.index_resource(conn, pk, self._paths)
        conn.executemany(
            _INSERT_SORT,
            [
                (pk, tenant, rtype.name, self._paths[path_key(defn)], value, rid)
                for defn, value in sort_keys(rows).items()
            ],
        )

    def _resolve_members(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        rtype: ResourceType,
        members: Iterable[Mapping[str, Any]],
    ) -> dict[str, tuple[str | None, str | None]]:
        """Member dicts -> {value: (type, display)}; values must name an existing User or
        Group of the tenant (unless dangling members are allowed)."""
        rel = self.relations(rtype)
        assert rel.members is not None
        ref = rel.members.sub("$ref")
        types = [t for t in (ref.reference_types if ref else ()) if self.registry.resource_type(t)]
        if not types:
            types = [rt.name for rt in self.registry.resource_types.values()]
        marks = ",".join("?" * len(types))
        sql = (
            f"SELECT rtype, display FROM resources WHERE tenant = ? AND rtype IN ({marks})"
            " AND id = ?"
        )
        out: dict[str, tuple[str | None, str | None]] = {}
        for member in members:
            if not isinstance(member, Mapping):
                raise InvalidValue("Each member must be an object with a value")
            value = member.get("value")
            if not isinstance(value, str) or not value:
                raise InvalidValue("Each member needs a non-empty string value")
            display = member.get("display")
            display = display if isinstance(display, str) else None
            found = conn.execute(sql, (tenant, *types, value)).fetchone()
            if found is None:
                if not self.allow_dangling:
                    raise InvalidValue(f'Member "{value}" does not exist')
                mtype = member.get("type")
                out[value] = (mtype if isinstance(mtype, str) else None, display)
            else:
                out[value] = (found[0], display if display is not None else found[1])
        return out

    def _insert_members(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        rtype: ResourceType,
        gid: str,
        resolved: Mapping[str, tuple[str | None, str | None]],
    ) -> int:
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO members (tenant, grtype, group_id, member_id, member_type,"
            " display) VALUES (?, ?, ?, ?, ?, ?)",
            [(tenant, rtype.name, gid, v, t, d) for v, (t, d) in resolved.items()],
        )
        return conn.total_changes - before

    def _remove_members(
        self, conn: sqlite3.Connection, tenant: str, gid: str, values: Iterable[str]
    ) -> int:
        before = conn.total_changes
        conn.executemany(
            "DELETE FROM members WHERE tenant = ? AND group_id = ? AND member_id = ?",
            [(tenant, gid, v) for v in values],
        )
        return conn.total_changes - before

    def _set_members(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        rtype: ResourceType,
        gid: str,
        members: Iterable[Mapping[str, Any]],
    ) -> int:
        """Make the membership exactly ``members`` as a diff (only changed rows)."""
        wanted = self._resolve_members(conn, tenant, rtype, members)
        current = {
            row[0]
            for row in conn.execute(
                "SELECT member_id FROM members WHERE tenant = ? AND group_id = ?", (tenant, gid)
            )
        }
        changed = self._remove_members(conn, tenant, gid, current.difference(wanted))
        new = {v: wanted[v] for v in wanted if v not in current}
        return changed + self._insert_members(conn, tenant, rtype, gid, new)

    def _apply_member_changes(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        rtype: ResourceType,
        gid: str,
        changes: Sequence[MemberChange],
    ) -> int:
        touched = 0
        for change in changes:
            if change.op == "add":
                resolved = self._resolve_members(conn, tenant, rtype, change.members)
                touched += self._insert_members(conn, tenant, rtype, gid, resolved)
            elif change.op == "remove":
                touched += self._remove_members(conn, tenant, gid, change.values)
            elif change.op == "set":
                touched += self._set_members(conn, tenant, rtype, gid, change.members)
            else:  # clear
                before = conn.total_changes
                conn.execute("DELETE FROM members WHERE tenant = ? AND group_id = ?", (tenant, gid))
                touched += conn.total_changes - before
        return touched

    def _load_members(
        self, conn: sqlite3.Connection, tenant: str, gid: str
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for value, mtype, display in conn.execute(_SQL_MEMBERS, (tenant, gid)):
            item: dict[str, Any] = {"value": value}
            if display is not None:
                item["display"] = display
            if mtype is not None:
                item["type"] = mtype
            out.append(item)
        return out

    def _load_groups(self, conn: sqlite3.Connection, tenant: str, rid: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for gid, display in conn.execute(_SQL_GROUPS, (tenant, rid)):
            item: dict[str, Any] = {"value": gid}
            if display is not None:
                item["display"] = display
            item["type"] = "direct"
            out.append(item)
        return out

    def _attach(
        self,
        conn: sqlite3.Connection,
        ctx: OpContext,
        rel: Relations,
        rid: str,
        resource: dict[str, Any],
    ) -> dict[str, Any]:
        if rel.members is not None and ctx.load_members:
            members = self._load_members(conn, ctx.tenant, rid)
            if members:
                resource[rel.members.name] = members
        if rel.groups is not None and ctx.load_groups:
            groups = self._load_groups(conn, ctx.tenant, rid)
            if groups:
                resource[rel.groups.name] = groups
        return resource

    # ------------------------------------------------------------------ CRUD

    async def create(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._write_tx(self._create_tx, ctx, rtype, resource)

    def _create_tx(
        self,
        conn: sqlite3.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        resource: dict[str, Any],
    ) -> dict[str, Any]:
        rel = self.relations(rtype)
        rid = str(uuid.uuid4())
        data = stored_form(rtype, rid, rel.stored(resource), 1, _now())
        display = data.get("displayName")
        pk = conn.execute(
            "INSERT INTO resources (tenant, rtype, id, version, display, data)"
            " VALUES (?, ?, ?, 1, ?, ?) RETURNING pk",
            (
                ctx.tenant,
                rtype.name,
                rid,
                display if isinstance(display, str) else None,
                orjson.dumps(data),
            ),
        ).fetchone()[0]
        self._write_values(conn, pk, rid, ctx.tenant, rtype, data, check=True)
        sqlite_write_keys(conn, ctx.tenant, rtype, pk, data, ctx.unique_keys)
        conn.execute(_COUNT_ADD, (ctx.tenant, rtype.name, 1))
        members = rel.members_in(resource)
        if members:
            resolved = self._resolve_members(conn, ctx.tenant, rtype, members)
            self._insert_members(conn, ctx.tenant, rtype, rid, resolved)
        return self._attach(conn, ctx, rel, rid, data)

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        return await self._read(self._get_sync, ctx, rtype, rid)

    def _get_sync(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        conn: sqlite3.Connection = self._local.conn
        rel = self.relations(rtype)
        needs_more = (rel.members is not None and ctx.load_members) or (
            rel.groups is not None and ctx.load_groups
        )
        if not needs_more:
            # The hot path: one indexed statement, one orjson.loads.
            row = conn.execute(_SQL_GET, (ctx.tenant, rtype.name, rid)).fetchone()
            if row is None:
                raise NotFound(f"{rtype.name} {rid} not found")
            resource: dict[str, Any] = orjson.loads(row[2])
            return resource
        # No read transaction: a concurrent change between the two statements can only
        # make the relation list as fresh as a GET issued a moment later would show.
        row = conn.execute(_SQL_GET, (ctx.tenant, rtype.name, rid)).fetchone()
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        return self._attach(conn, ctx, rel, rid, orjson.loads(row[2]))

    def _load_for_write(
        self, conn: sqlite3.Connection, ctx: OpContext, rtype: ResourceType, rid: str
    ) -> tuple[int, int, dict[str, Any]]:
        row = conn.execute(_SQL_GET, (ctx.tenant, rtype.name, rid)).fetchone()
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        return row[0], row[1], orjson.loads(row[2])

    def _store(
        self,
        conn: sqlite3.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        pk: int,
        rid: str,
        version: int,
        old: Mapping[str, Any],
        new: dict[str, Any],
    ) -> dict[str, Any]:
        """Write the new state of an existing resource (version bumped, values rewritten)."""
        rel = self.relations(rtype)
        data = stored_form(rtype, rid, rel.stored(new), version + 1, _now(), old)
        display = data.get("displayName")
        conn.execute(
            "UPDATE resources SET version = ?, display = ?, data = ? WHERE pk = ?",
            (
                version + 1,
                display if isinstance(display, str) else None,
                orjson.dumps(data),
                pk,
            ),
        )
        if self.substring is not None:
            self.substring.unindex_resource(conn, pk, self._paths)
        conn.execute("DELETE FROM attr_values WHERE pk = ?", (pk,))
        conn.execute("DELETE FROM sort_keys WHERE pk = ?", (pk,))
        self._write_values(conn, pk, rid, ctx.tenant, rtype, data, check=True)
        sqlite_write_keys(conn, ctx.tenant, rtype, pk, data, ctx.unique_keys)
        return data

    async def replace(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        return await self._write_tx(self._replace_tx, ctx, rtype, rid, resource, if_match)

    def _replace_tx(
        self,
        conn: sqlite3.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        if_match: str | None,
    ) -> dict[str, Any]:
        pk, version, old = self._load_for_write(conn, ctx, rtype, rid)
        if not etag_matches(if_match, version):
            raise PreconditionFailed(
                f"{rtype.name} {rid} is at version {weak_etag(version)}, not {if_match}"
            )
        data = self._store(conn, ctx, rtype, pk, rid, version, old, resource)
        rel = self.relations(rtype)
        members = rel.members_in(resource)
        if members is not None:
            # PUT is a true replace: the membership becomes exactly the given list (as a
            # diff, so unchanged members are not rewritten).
            self._set_members(conn, ctx.tenant, rtype, rid, members)
        return self._attach(conn, ctx, rel, rid, data)

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        return await self._write_tx(self._patch_tx, ctx, rtype, rid, ops, if_match)

    def _patch_tx(
        self,
        conn: sqlite3.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        if_match: str | None,
    ) -> dict[str, Any]:
        from scimd.patch import apply_patch, needs_members

        pk, version, old = self._load_for_write(conn, ctx, rtype, rid)
        if not etag_matches(if_match, version):
            raise PreconditionFailed(
                f"{rtype.name} {rid} is at version {weak_etag(version)}, not {if_match}"
            )
        rel = self.relations(rtype)
        inline = rel.members is not None and needs_members(rtype, ops)
        current = dict(old)
        loaded: list[dict[str, Any]] = []
        if inline and rel.members is not None:
            loaded = self._load_members(conn, ctx.tenant, rid)
            if loaded:
                current[rel.members.name] = [dict(m) for m in loaded]
        result = apply_patch(
            rtype,
            current,
            list(ops),
            members_external=rel.members is not None and not inline,
            unknown=self._unknown,
        )
        new = dict(result.resource)
        touched = 0
        if rel.members is not None:
            if inline:
                after = rel.members_in(new) or []
                touched = self._set_members(conn, ctx.tenant, rtype, rid, after)
            else:
                touched = self._apply_member_changes(
                    conn, ctx.tenant, rtype, rid, result.member_changes
                )
        if not result.changed and touched == 0:
            return self._attach(conn, ctx, rel, rid, old)
        data = self._store(conn, ctx, rtype, pk, rid, version, old, new)
        return self._attach(conn, ctx, rel, rid, data)

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        await self._write_tx(self._delete_tx, ctx, rtype, rid, if_match)

    def _delete_tx(
        self,
        conn: sqlite3.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        if_match: str | None,
    ) -> None:
        row = conn.execute(
            "SELECT pk, version FROM resources WHERE tenant = ? AND rtype = ? AND id = ?",
            (ctx.tenant, rtype.name, rid),
        ).fetchone()
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        if not etag_matches(if_match, row[1]):
            raise PreconditionFailed(
                f"{rtype.name} {rid} is at version {weak_etag(row[1])}, not {if_match}"
            )
        if self.substring is not None:
            self.substring.unindex_resource(conn, row[0], self._paths)
        conn.execute("DELETE FROM attr_values WHERE pk = ?", (row[0],))
        conn.execute("DELETE FROM sort_keys WHERE pk = ?", (row[0],))
        conn.execute("DELETE FROM resources WHERE pk = ?", (row[0],))
        sqlite_delete_keys(conn, row[0])
        conn.execute(_COUNT_ADD, (ctx.tenant, rtype.name, -1))
        conn.execute("DELETE FROM members WHERE tenant = ? AND group_id = ?", (ctx.tenant, rid))
        conn.execute("DELETE FROM members WHERE tenant = ? AND member_id = ?", (ctx.tenant, rid))

    # ------------------------------------------------------------------ query

    def compile_where(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        rtype: ResourceType,
        flt: Filter | None,
        sort: SortSpec | None = None,
    ) -> tuple[str, str | None, dict[str, Any]]:
        """(WHERE clause over ``resources r``, sort key SQL or None, params). Public for the
        query-plan tests."""
        c = self._compiler(conn, tenant, rtype)
        where = "r.tenant = :tenant AND r.rtype = :rtype"
        if flt is not None:
            where += " AND " + c.compile(flt)
        sk = sort_expr(c, sort.path) if sort is not None else None
        return where, sk, dict(c.params)

    def _compiler(
        self, conn: sqlite3.Connection, tenant: str, rtype: ResourceType
    ) -> FilterCompiler:
        return FilterCompiler(
            rtype,
            tenant,
            self.relations(rtype),
            self._path_reader(conn),
            self.substring.source if self.substring is not None else None,
        )

    async def query(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        return await self._read(self._query_sync, ctx, rtype, q)

    def _query_sync(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        conn: sqlite3.Connection = self._local.conn
        page = self._index_page_one_statement(conn, ctx, rtype, q)
        if page is not None:
            return page
        conn.execute("BEGIN")  # total, page and relations from one snapshot
        try:
            return self._query_in_tx(conn, ctx, rtype, q)
        finally:
            conn.execute("COMMIT")

    def _query_in_tx(
        self, conn: sqlite3.Connection, ctx: OpContext, rtype: ResourceType, q: Query
    ) -> Page:
        where, sk, params = self.compile_where(conn, ctx.tenant, rtype, q.filter, q.sort)
        want_total = q.want_total or q.count <= 0
        count_params = dict(params)

        def total_of(first_page: int | None) -> int | None:
            """Exact totalResults (same snapshot as the page). ``first_page``: the number
            of rows of a first page that was not full, which is then the total."""
            if not want_total:
                return None
            if first_page is not None:
                return first_page
            if q.filter is None:
                # Unfiltered: the maintained per-type count, not a scan of the type's rows.
                row = conn.execute(
                    "SELECT n FROM resource_counts WHERE tenant = ? AND rtype = ?",
                    (ctx.tenant, rtype.name),
                ).fetchone()
                return row[0] if row is not None else 0
            n: int = conn.execute(
                f"SELECT count(*) FROM resources r WHERE {where}", count_params
            ).fetchone()[0]
            return n

        count = max(0, min(q.count, self.capabilities.max_results))
        if count == 0:
            return Page([], total_of(None))
        first_index_page = q.paging == "index" and q.start_index <= 1
        if q.sort is not None:
            pid = self._sort_walk_path(conn, rtype, q.sort)
            if pid is not None:
                walk = _SortedWalk(conn, where, params, pid, q.sort.descending)
                return self._sorted_page(conn, ctx, rtype, q, walk, count, total_of)
        desc = q.sort is not None and q.sort.descending
        skx = sk if sk is not None else "NULL"
        inner = f"SELECT r.pk AS pk, r.id AS id, {skx} AS sk FROM resources r WHERE {where}"
        if q.paging == "index":
            order = _order(sk is not None, desc, reverse=False)
            params["limit"] = count
            params["offset"] = max(0, q.start_index - 1)
            rows = conn.execute(
                f"SELECT pk, id, sk FROM ({inner}) ORDER BY {order} LIMIT :limit OFFSET :offset",
                params,
            ).fetchall()
            seen = len(rows) if first_index_page and len(rows) < count else None
            return Page(self._fetch(conn, ctx, rtype, rows), total_of(seen))
        ks = q.keyset
        reverse = ks is not None and ks.direction == "prev"
        cond = _keyset_cond(sk is not None, desc, ks, params) if ks is not None else "1"
        order = _order(sk is not None, desc, reverse=reverse)
        params["limit"] = count + 1
        rows = conn.execute(
            f"SELECT pk, id, sk FROM ({inner}) WHERE {cond} ORDER BY {order} LIMIT :limit",
            params,
        ).fetchall()
        more = len(rows) > count
        total = total_of(len(rows) if ks is None and not more else None)
        rows = rows[:count]
        if reverse:
            rows.reverse()
        next_ks: Keyset | None = None
        prev_ks: Keyset | None = None
        if rows:
            as_bool = q.sort is not None and _sort_type(q.sort) == "boolean"
            first_sv, last_sv = rows[0][2], rows[-1][2]
            if as_bool:  # stored as 0/1; scimd.query.sort's sort values are bools
                first_sv = None if first_sv is None else bool(first_sv)
                last_sv = None if last_sv is None else bool(last_sv)
            first = Keyset(first_sv, rows[0][1], "prev")
            last = Keyset(last_sv, rows[-1][1], "next")
            if reverse:
                prev_ks = first if more else None
                next_ks = last if self._exists_beyond(conn, inner, sk, desc, last, params) else None
            else:
                next_ks = last if more else None
                if ks is not None and self._exists_beyond(conn, inner, sk, desc, first, params):
                    prev_ks = first
        return Page(self._fetch(conn, ctx, rtype, rows), total, next_ks, prev_ks)

    def _sort_walk_path(
        self, conn: sqlite3.Connection, rtype: ResourceType, sort: SortSpec
    ) -> int | None:
        """The ``sort_keys`` path id a sorted page walks (see ``_SortedWalk``), or None when
        the sort key is computed per row instead."""
        defn = sortable(self.relations(rtype), sort.path)
        if defn is None:
            return None
        return self._path_reader(conn)(path_key(defn))

    def _index_page_one_statement(
        self, conn: sqlite3.Connection, ctx: OpContext, rtype: ResourceType, q: Query
    ) -> Page | None:
        """An index page (not walking ``sort_keys``) answered by ONE statement, or None.

        The page's ids, their ``data`` and the relations the response wants (as JSON
        arrays) come from a single SELECT, which reads one snapshot by itself: no
        BEGIN/COMMIT, no second round trip per resource (``eq`` lookups, Entra's and Okta's
        ``userName eq`` polling, cost one statement, like a GET). The exact total: without
        a filter, the maintained ``resource_counts`` in the same statement; with one, a page
        that is not full tells it (start + rows), and only a full page, or an empty one
        past the start, counts the matches with a second statement (its own snapshot: the
        total is exact as of that moment). None when an unfiltered page is empty beyond
        the first one: the caller answers it in a read transaction.
        """
        count = max(0, min(q.count, self.capabilities.max_results))
        if q.paging != "index" or count == 0:
            return None
        if q.sort is not None and self._sort_walk_path(conn, rtype, q.sort) is not None:
            return None
        sql, params, count_sql, unordered = self._one_statement_sql(conn, ctx, rtype, q)
        offset = max(0, q.start_index - 1)
        params["limit"] = count
        params["offset"] = offset
        want_total = q.want_total
        total: int | None = None
        rows: list[Any] | None = None
        if unordered is not None and offset == 0:
            # A lookup (``_UNORDERED_ROWS``): the first page of at most one match needs no
            # order; more matches take the ordered statement.
            rows = conn.execute(unordered, params).fetchall()
            if len(rows) >= _UNORDERED_ROWS:
                rows = None
            elif want_total:
                total = len(rows)
        if rows is None:
            rows = conn.execute(sql, params).fetchall()
            if q.sort is None and len(rows) > 1:
                # Unsorted pages are in id order (code point order here, BINARY in SQLite:
                # the same order); a nested statement may hand its rows over in any order.
                rows.sort(key=_second)
            if count_sql is not None:
                # A filtered page that is not full tells its own total; only a full page
                # (or an empty one past the start) counts the matches with a second
                # statement.
                if len(rows) < count and (rows or offset == 0):
                    total = offset + len(rows)
                else:
                    total = int(conn.execute(count_sql, params).fetchone()[0])
            elif rows and want_total:
                total = rows[0][3]
        if not rows:
            if total is None and q.start_index > 1 and want_total:
                return None
            return Page([], (total or 0) if want_total else None)
        rel = self.relations(rtype)
        out: list[dict[str, Any]] = []
        for _pk, _rid, _sk, _n, blob, members, groups in rows:
            resource: dict[str, Any] = orjson.loads(blob)
            # (``[]``: no relation rows, the common case of a User's groups)
            if members is not None and members != "[]" and rel.members is not None:
                items = _member_items(orjson.loads(members))
                if items:
                    resource[rel.members.name] = items
            if groups is not None and groups != "[]" and rel.groups is not None:
                items = _group_items(orjson.loads(groups))
                if items:
                    resource[rel.groups.name] = items
            out.append(resource)
        return Page(out, total)

    def _one_statement_sql(
        self, conn: sqlite3.Connection, ctx: OpContext, rtype: ResourceType, q: Query
    ) -> tuple[str, dict[str, Any], str | None, str | None]:
        """The statement of ``_index_page_one_statement``, its parameters (without
        ``limit``/``offset``), for a filtered page that wants its total, the statement
        counting the matches, and for a lookup (``FilterCompiler.entry_row``) the unordered
        statement that answers a first page of at most one match (``_UNORDERED_ROWS``).

        A query carrying a filter shape (``Query.shape``: ``userName eq "<each user>"``)
        reuses the statement compiled for the first filter of that shape: only the compared
        value changes, in one parameter. The place of that parameter is learnt by compiling
        the shape with two values and keeping the statement only when the SQL is the same
        and the parameters that differ hold each value as the compiler binds it
        (casefolded unless caseExact): a valuePath binds it twice."""
        shape = q.shape
        key: tuple[Any, ...] | None = None
        if shape is not None:
            key = (shape[0], ctx.tenant, rtype.name, q.sort, q.want_total)
            key += (ctx.load_members, ctx.load_groups)
            known = self._shape_sql.get(key)
            if known is not None and known[5] == self._paths_gen:
                sql, template, slots, count_sql, unordered, _gen = known
                params = dict(template)
                value = fold(shape[1], shape[0].case_exact)
                for slot in slots:
                    params[slot] = value
                return sql, params, count_sql, unordered
        gen = self._paths_gen
        sql, params, count_sql, unordered = self._one_statement_sql_compiled(conn, ctx, rtype, q)
        if key is not None and shape is not None:
            other = shape[0].build(_SHAPE_PROBE)
            sql2, params2, _count, _unordered = self._one_statement_sql_compiled(
                conn, ctx, rtype, dataclasses.replace(q, filter=other)
            )
            slots = tuple(k for k in params if params[k] != params2.get(k))
            ce = shape[0].case_exact
            if (
                sql2 == sql
                and params.keys() == params2.keys()
                and slots
                and all(params[k] == fold(shape[1], ce) for k in slots)
                and all(params2[k] == fold(_SHAPE_PROBE, ce) for k in slots)
                and gen == self._paths_gen
            ):
                if len(self._shape_sql) >= _SHAPE_SQL_SIZE:
                    self._shape_sql.clear()
                self._shape_sql[key] = (sql, dict(params), slots, count_sql, unordered, gen)
        return sql, params, count_sql, unordered

    def _one_statement_sql_compiled(
        self, conn: sqlite3.Connection, ctx: OpContext, rtype: ResourceType, q: Query
    ) -> tuple[str, dict[str, Any], str | None, str | None]:
        where, sk, params = self.compile_where(conn, ctx.tenant, rtype, q.filter, q.sort)
        flat = q.sort is None and _at_most_one(q.filter)
        entry = None
        if q.sort is None and q.filter is not None and not flat:
            c = self._compiler(conn, ctx.tenant, rtype)
            c.bind_all(params)
            entry = c.entry_row(q.filter)
            params = dict(c.params)
        desc = q.sort is not None and q.sort.descending
        order = _order(sk is not None, desc, reverse=False)
        count_sql: str | None = None
        if not q.want_total:
            total = "NULL"
        elif q.filter is None:
            total = "(SELECT n FROM resource_counts WHERE tenant = :tenant AND rtype = :rtype)"
        else:
            total = "NULL"
            count_sql = f"SELECT count(*) FROM resources r WHERE {where}"
        rel = self.relations(rtype)

        def relations(rid: str) -> str:
            """The relations as JSON arrays, correlated on the outer query's id column."""
            members = "NULL"
            if rel.members is not None and ctx.load_members:
                members = _JSON_MEMBERS.format(rid=rid)
            groups = "NULL"
            if rel.groups is not None and ctx.load_groups:
                groups = _JSON_GROUPS.format(rid=rid)
            return f"{members}, {groups}"

        if flat:
            # ``userName eq`` (what Okta and Entra poll with), ``id eq``: a unique index
            # holds at most one match, so there is nothing to order and the total is the
            # row count: one flat statement, as cheap as a GET.
            sql = (
                f"SELECT r.pk, r.id, NULL, NULL, r.data, {relations('r.id')}"
                f" FROM resources r WHERE {where} LIMIT :limit OFFSET :offset"
            )
            return sql, params, count_sql, None
        if entry is not None:
            # ``emails[type eq "work"].value eq``, ``externalId eq``: the page joins each
            # matching resource's one entry row of the value index to the resource (no IN
            # list), sorts just (pk, id) and reads the data and relations of the page's rows
            # only (``_index_page_one_statement`` orders an unsorted page by id anyway).
            # A first page tries the unordered statement first: the same rows, flat, at
            # most _UNORDERED_ROWS of them; fewer is the whole answer, in any order.
            alias, cond = entry
            rows = (
                f"FROM attr_values {alias} JOIN resources r ON r.pk = {alias}.pk WHERE {cond}"
                f" AND r.tenant = :tenant AND r.rtype = :rtype"
            )
            sql = (
                f"SELECT p.pk, p.id, NULL, NULL, (SELECT d.data FROM resources d WHERE"
                f" d.pk = p.pk), {relations('p.id')} FROM (SELECT r.pk AS pk, r.id AS id"
                f" {rows} ORDER BY r.id LIMIT :limit OFFSET :offset) p"
            )
            unordered = (
                f"SELECT r.pk, r.id, NULL, NULL, r.data, {relations('r.id')} {rows}"
                f" LIMIT {_UNORDERED_ROWS}"
            )
            return sql, params, count_sql, unordered
        skx = sk if sk is not None else "NULL"
        sql = (
            f"SELECT p.pk, p.id, p.sk, p.n, (SELECT d.data FROM resources d WHERE d.pk = p.pk),"
            f" {relations('p.id')} FROM (SELECT pk, id, sk, {total} AS n FROM"
            f" (SELECT r.pk AS pk, r.id AS id, {skx} AS sk FROM resources r WHERE {where})"
            f" ORDER BY {order} LIMIT :limit OFFSET :offset) p ORDER BY {order}"
        )
        return sql, params, count_sql, None

    def _sorted_page(
        self,
        conn: sqlite3.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        q: Query,
        walk: _SortedWalk,
        count: int,
        total_of: Callable[[int | None], int | None],
    ) -> Page:
        """A sorted page from the ``sort_keys`` index (see ``_SortedWalk``)."""
        assert q.sort is not None
        if q.paging == "index":
            rows = walk.index_page(max(0, q.start_index - 1), count)
            seen = len(rows) if q.start_index <= 1 and len(rows) < count else None
            return Page(self._fetch(conn, ctx, rtype, rows), total_of(seen))
        ks = q.keyset
        reverse = ks is not None and ks.direction == "prev"
        rows = walk.after(ks, count + 1, reverse=reverse)
        more = len(rows) > count
        total = total_of(len(rows) if ks is None and not more else None)
        rows = rows[:count]
        if reverse:
            rows.reverse()
        next_ks: Keyset | None = None
        prev_ks: Keyset | None = None
        if rows:
            as_bool = _sort_type(q.sort) == "boolean"
            first_sv, last_sv = rows[0][2], rows[-1][2]
            if as_bool:
                first_sv = None if first_sv is None else bool(first_sv)
                last_sv = None if last_sv is None else bool(last_sv)
            first = Keyset(first_sv, rows[0][1], "prev")
            last = Keyset(last_sv, rows[-1][1], "next")
            if reverse:
                prev_ks = first if more else None
                next_ks = last if walk.after(last, 1, reverse=False) else None
            else:
                next_ks = last if more else None
                if ks is not None and walk.after(first, 1, reverse=True):
                    prev_ks = first
        return Page(self._fetch(conn, ctx, rtype, rows), total, next_ks, prev_ks)

    def _exists_beyond(
        self,
        conn: sqlite3.Connection,
        inner: str,
        sk: str | None,
        desc: bool,
        ks: Keyset,
        params: dict[str, Any],
    ) -> bool:
        params = dict(params)
        cond = _keyset_cond(sk is not None, desc, ks, params)
        row = conn.execute(f"SELECT 1 FROM ({inner}) WHERE {cond} LIMIT 1", params).fetchone()
        return row is not None

    def _fetch(
        self,
        conn: sqlite3.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        rows: list[Any],
    ) -> list[dict[str, Any]]:
        if not rows:
            return []
        pks = [row[0] for row in rows]
        marks = ",".join("?" * len(pks))
        data = dict(
            conn.execute(f"SELECT pk, data FROM resources WHERE pk IN ({marks})", pks).fetchall()
        )
        rel = self.relations(rtype)
        out: list[dict[str, Any]] = []
        for pk, rid, _ in rows:
            blob = data.get(pk)
            if blob is None:
                continue
            out.append(self._attach(conn, ctx, rel, rid, orjson.loads(blob)))
        return out


class _SortedWalk:
    """The total order of a sorted query (``scimd.query.sort``: sort value, nulls last in
    both directions, ties by id in the sort's direction) as two index walks:

    * group A, the resources with a sort value: ``sort_keys_order`` (tenant, rtype, path,
      v, rid) in order, each row checked against the filter by rowid;
    * group B, the resources without one (nulls): the resources by (tenant, rtype, id),
      those with a ``sort_keys`` row for the path skipped.

    A keyset page starts at the keyset's position within its group, so page 1,000 costs
    what page 1 costs. Rows are (pk, id, sort value).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        where: str,
        params: dict[str, Any],
        pid: int,
        desc: bool,
    ) -> None:
        self.conn = conn
        self.where = where
        self.params = dict(params, s_path=pid)
        self.desc = desc

    def sql_a(self, cond: str, reverse: bool) -> str:
        """Group A in (reversed) order: walks ``sort_keys_order`` (no sort step)."""
        d = "DESC" if self.desc != reverse else "ASC"
        return (
            "SELECT s.pk, s.rid, s.v FROM sort_keys s JOIN resources r ON r.pk = s.pk"
            " WHERE s.tenant = :tenant AND s.rtype = :rtype AND s.path = :s_path"
            f" AND {cond} AND {self.where} ORDER BY s.v {d}, s.rid {d}"
            " LIMIT :s_limit OFFSET :s_offset"
        )

    def sql_b(self, cond: str, reverse: bool) -> str:
        """Group B (no sort value) in (reversed) id order."""
        d = "DESC" if self.desc != reverse else "ASC"
        return (
            f"SELECT r.pk, r.id, NULL FROM resources r WHERE {self.where} AND {cond}"
            " AND NOT EXISTS (SELECT 1 FROM sort_keys n WHERE n.pk = r.pk AND n.path = :s_path)"
            f" ORDER BY r.id {d} LIMIT :s_limit OFFSET :s_offset"
        )

    def _a(
        self, cond: str, reverse: bool, extra: dict[str, Any], limit: int, offset: int
    ) -> list[Any]:
        params = dict(self.params, **extra, s_limit=limit, s_offset=offset)
        return self.conn.execute(self.sql_a(cond, reverse), params).fetchall()

    def _b(
        self, cond: str, reverse: bool, extra: dict[str, Any], limit: int, offset: int
    ) -> list[Any]:
        params = dict(self.params, **extra, s_limit=limit, s_offset=offset)
        return self.conn.execute(self.sql_b(cond, reverse), params).fetchall()

    def index_page(self, offset: int, limit: int) -> list[Any]:
        rows = self._a("1", False, {}, limit, offset)
        if len(rows) >= limit:
            return rows
        b_offset = 0
        if not rows and offset > 0:
            n_a = self.conn.execute(
                "SELECT count(*) FROM sort_keys s JOIN resources r ON r.pk = s.pk"
                " WHERE s.tenant = :tenant AND s.rtype = :rtype AND s.path = :s_path"
                f" AND {self.where}",
                self.params,
            ).fetchone()[0]
            b_offset = max(0, offset - n_a)
        return rows + self._b("1", False, {}, limit - len(rows), b_offset)

    def after(self, ks: Keyset | None, limit: int, *, reverse: bool) -> list[Any]:
        """Up to ``limit`` rows strictly beyond ``ks`` (from the start when None) walking
        forward, or strictly before it walking backward (``reverse``)."""
        # Forward, ids (and values) run "beyond" in the sort's direction.
        beyond = "<" if self.desc != reverse else ">"
        groups: list[tuple[str, str, dict[str, Any]]]
        if ks is None:
            groups = [("a", "1", {}), ("b", "1", {})]
        elif ks.sort_value is None:
            cond_b = f"r.id {beyond} :ks_id"
            groups = [("b", cond_b, {"ks_id": ks.id})]
            if reverse:
                groups.append(("a", "1", {}))
        else:
            cond_a = f"(s.v, s.rid) {beyond} (:ks_sv, :ks_id)"
            groups = [("a", cond_a, {"ks_sv": ks.sort_value, "ks_id": ks.id})]
            if not reverse:
                groups.append(("b", "1", {}))
        rows: list[Any] = []
        for kind, cond, extra in groups:
            if len(rows) >= limit:
                break
            fetch = self._a if kind == "a" else self._b
            rows.extend(fetch(cond, reverse, extra, limit - len(rows), 0))
        return rows


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """On the event loop: answer one waiting writer (unless it was cancelled meanwhile)."""
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _at_most_one(flt: Filter | None) -> bool:
    """Whether ``flt`` can match one resource at most: ``eq`` on ``id`` or on a
    single-valued attribute whose uniqueness the store enforces with a unique index
    (``attr_values_unique``: userName, a custom schema's unique attributes)."""
    if not isinstance(flt, Comparison) or flt.op != "eq" or flt.value in (None, ""):
        return False
    defn = flt.path.defn
    if defn is None or defn.multi_valued or defn.is_complex:
        return False
    if defn.parent is not None and defn.parent.multi_valued:
        return False
    return defn.uniqueness != "none" or (defn.schema == COMMON_SCHEMA and defn.path == "id")


def _member_items(rows: list[list[Any]]) -> list[dict[str, Any]]:
    """``_JSON_MEMBERS`` rows as ``_load_members`` gives them (by member id)."""
    out: list[dict[str, Any]] = []
    for value, mtype, display in sorted(rows, key=_first):
        item: dict[str, Any] = {"value": value}
        if display is not None:
            item["display"] = display
        if mtype is not None:
            item["type"] = mtype
        out.append(item)
    return out


def _group_items(rows: list[list[Any]]) -> list[dict[str, Any]]:
    """``_JSON_GROUPS`` rows as ``_load_groups`` gives them (by group id)."""
    out: list[dict[str, Any]] = []
    for gid, display in sorted(rows, key=_first):
        item: dict[str, Any] = {"value": gid}
        if display is not None:
            item["display"] = display
        item["type"] = "direct"
        out.append(item)
    return out


def _first(row: list[Any]) -> Any:
    return row[0]


def _second(row: Sequence[Any]) -> Any:
    return row[1]


def _sort_type(spec: SortSpec) -> str | None:
    return spec.path.defn.type if spec.path.defn is not None else None


def _order(sorted_: bool, desc: bool, *, reverse: bool) -> str:
    """ORDER BY of the total order of ``scimd.query.sort`` (sort key, nulls last in both
    directions, ties by id in the sort's direction), or its exact reverse."""
    if not sorted_:
        return "id DESC" if reverse else "id"
    direction = "DESC" if desc != reverse else "ASC"
    nulls = "DESC" if reverse else "ASC"
    return f"(sk IS NULL) {nulls}, sk {direction}, id {direction}"


def _keyset_cond(sorted_: bool, desc: bool, ks: Keyset, params: dict[str, Any]) -> str:
    """Rows strictly after (``next``) or before (``prev``) ``ks`` in the total order."""
    params["ks_id"] = ks.id
    after = ks.direction == "next"
    if not sorted_:
        return "id > :ks_id" if after else "id < :ks_id"
    # Within equal sort values (and within the null group) ids run in the sort direction.
    beyond = ">" if (after != desc) else "<"
    if ks.sort_value is None:
        if after:
            return f"(sk IS NULL AND id {beyond} :ks_id)"
        return f"(sk IS NOT NULL OR id {beyond} :ks_id)"
    params["ks_sv"] = ks.sort_value
    core = f"(sk IS NOT NULL AND (sk {beyond} :ks_sv OR (sk = :ks_sv AND id {beyond} :ks_id)))"
    return f"({core} OR sk IS NULL)" if after else core


_NUMERIC = ("integer", "decimal")


def _number_key(value: int | float | None) -> str | None:
    if value is None:
        return None
    as_float = float(value)
    return str(int(as_float)) if as_float.is_integer() else repr(as_float)


def _uniqueness(defn: AttributeDef, value: Any) -> Uniqueness:
    return Uniqueness(uniqueness_message(defn, value))
