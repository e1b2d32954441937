"""The ``postgres`` backend: asyncpg pool, one transaction per operation.

Layout (``migrations/0001_initial.sql``):

* ``scimd_resources``: one row per resource, ``data`` jsonb (the SCIM JSON with ``meta``,
  without ``members``/``groups``), ``version`` (the ETag counter), ``display`` and its
  casefolded ``display_fold`` (the ``display`` of computed ``groups``).
* ``scimd_attr_paths``: attribute key -> small int, every attribute of the configured
  schemas registered at start.
* ``scimd_attr_values``: the values of unique attributes (layout 10: the other filterable
  values are in ``scimd_resources.sv``, ``scimd_postgres.single``), rewritten with the
  resource; their partial UNIQUE index enforces ``uniqueness: server|global`` per tenant
  and resource type (userName is casefolded).
* ``scimd_members``: Group membership as a relation.
* ``scimd_unique_keys``: the derived unique keys of ``scimd.store.unique_keys`` (the
  normalised primary email of a User), written in the resource's write transaction; the
  partial unique index ``WHERE NOT shared`` makes a second holder a 409 even when two
  processes race (``migrations/0005_unique_keys.sql``).

Writes run in READ COMMITTED transactions that lock the resource row first
(``SELECT ... FOR UPDATE``), so the If-Match check and the write are atomic and concurrent
patches serialise; serialization failures and deadlocks rerun the transaction up to
``retries`` times. A GET and an index page are one statement each (the resource or the
page with its relations and total: one round trip, one snapshot, no BEGIN/COMMIT); a
cursor page runs in one REPEATABLE READ READ ONLY transaction (total, page and neighbours
from one snapshot).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, TypeVar

import asyncpg  # type: ignore[import-untyped]
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
from scimd.query.ast import Filter
from scimd.schema.model import AttributeDef, ResourceType, SchemaRegistry
from scimd.store.sql import Relations, fold, path_key
from scimd.store.sqlcommon import IndexRow, stored_form, uniqueness_message, weak_etag
from scimd.store.sqlite import etag_matches
from scimd.store.unique_keys import EMAIL, UniqueKey, conflict, derive_keys, kinds_of
from scimd_postgres.bulk import (
    VALUE_COLUMNS,
    BulkMode,
    Encoded,
    RowEncoder,
    number,
    resource_of,
    stamp,
)
from scimd_postgres.compiler import (
    PgFilterCompiler,
    few_matches,
    sort_expr,
)
from scimd_postgres.errors import RETRY, RETRY_AFTER, classify
from scimd_postgres.migrations import MIGRATIONS, current_version, migrate
from scimd_postgres.pool import reset_plain
from scimd_postgres.single import SV_INDEXES, SingleValues, sv_json
from scimd_postgres.state import PostgresStateStore, insert_events

__all__ = ["DRIVER_ERRORS", "PostgresBackend"]

log = logging.getLogger("scimd.postgres")

_T = TypeVar("_T")

DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

_SQL_GET = (
    "SELECT pk, version, data FROM scimd_resources WHERE tenant = $1 AND rtype = $2 AND id = $3"
)
_SQL_LOCK = _SQL_GET + " FOR UPDATE"
_SQL_MEMBERS = (
    "SELECT member_id, member_type, display FROM scimd_members"
    " WHERE tenant = $1 AND group_id = $2 ORDER BY member_id"
)
_SQL_GROUPS = (
    "SELECT m.group_id, g.display FROM scimd_members m JOIN scimd_resources g"
    " ON g.tenant = m.tenant AND g.rtype = m.grtype AND g.id = m.group_id"
    " WHERE m.tenant = $1 AND m.member_id = $2 ORDER BY m.group_id"
)
_INSERT_UNIQUE = (
    "INSERT INTO scimd_attr_values"
    " (pk, n, tenant, rtype, path, elem, v_text, v_num, uniq, fts)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, true, false)"
)
EMAIL_OWNERS_SQL = (
    # One B-tree lookup per key and per owner, whatever the plan: a join or "= ANY" let the
    # planner (and the generic plan of the prepared statement) hash every stored key or
    # user, quadratic over an import's batches (2 s per batch of 5,000 at 100,000 users).
    "SELECT DISTINCT ON (r.pk) r.data FROM unnest($4::text[]) AS t(k)"
    " CROSS JOIN LATERAL (SELECT u.pk FROM scimd_unique_keys u WHERE u.tenant = $1"
    " AND u.kind = $2 AND u.key = t.k OFFSET 0) AS u"
    " CROSS JOIN LATERAL (SELECT r.pk, r.data FROM scimd_resources r WHERE r.pk = u.pk"
    " AND r.rtype = $3 OFFSET 0) AS r"
)
"""``PostgresBackend.import_email_owners``: the stored resources whose primary email key
is one of ``$4`` (tenant ``$1``, kind ``$2``, resource type ``$3``)."""
_INSERT_MEMBERS = (
    "INSERT INTO scimd_members (tenant, grtype, group_id, member_id, member_type,"
    " member_type_fold, display, display_fold)"
    " SELECT $1, $2, $3, t.v, t.mt, t.mtf, t.d, t.df"
    " FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[])"
    " AS t(v, mt, mtf, d, df) ON CONFLICT DO NOTHING"
)


# Derived unique keys (scimd.store.unique_keys). A new key is inserted owned (outside the
# unique index only when shared) in one statement with its existence check: when another
# resource of the tenant already holds it, an enforced key inserts nothing (a 409) and an
# unenforced one is stored shared; a racing owner is a unique violation (enforced) or a
# conflict turned into a shared row (unenforced).
_KEY_HELD = (
    "EXISTS (SELECT 1 FROM scimd_unique_keys u WHERE u.tenant = $2 AND u.kind = $3"
    " AND u.key = $4 AND u.pk <> $1)"
)
_INSERT_KEY_ENFORCED = (
    "INSERT INTO scimd_unique_keys (pk, tenant, kind, key, shared)"
    f" SELECT $1, $2, $3, $4, false WHERE NOT {_KEY_HELD}"
)
_INSERT_KEY_FREE = (
    "INSERT INTO scimd_unique_keys (pk, tenant, kind, key, shared)"
    f" SELECT $1, $2, $3, $4, {_KEY_HELD}"
    " ON CONFLICT (tenant, kind, key) WHERE NOT shared DO NOTHING"
)
_INSERT_KEY_SHARED = (
    "INSERT INTO scimd_unique_keys (pk, tenant, kind, key, shared) VALUES ($1, $2, $3, $4, true)"
)
_INSERT_KEYS_BULK = (
    "INSERT INTO scimd_unique_keys (pk, tenant, kind, key, shared)"
    " SELECT t.pk, $1, t.kind, t.key,"
    " row_number() OVER (PARTITION BY t.kind, t.key ORDER BY t.pk) > 1"
    " OR EXISTS (SELECT 1 FROM scimd_unique_keys u WHERE u.tenant = $1 AND u.kind = t.kind"
    " AND u.key = t.key)"
    " FROM unnest($2::bigint[], $3::text[], $4::text[]) AS t(pk, kind, key)"
)
SV_TASK = "single_values_backfill"
"""The ``scimd_pending_tasks`` row migration 0010 leaves for ``backfill_single_values``."""
_SV_LOCK = 0x5C1D_0000_0010
BACKFILL_TASK = "unique_keys_backfill"
"""The ``scimd_pending_tasks`` row migration 0005 leaves for ``backfill_unique_keys``."""
_BACKFILL_LOCK = 0x5C1D_0000_0005
_BACKFILL_BATCH = 5000

_now = stamp

_SHAPE_PROBE = "scimd-shape-probe"
"""The second value ``PostgresBackend._flat_sql`` compiles a filter shape with."""
_SHAPE_SQL_SIZE = 256
"""Statements kept per filter shape (cleared when full)."""


def _fold(value: str | None) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def _count(status: str) -> int:
    """Rows affected, from a command status (``INSERT 0 3``, ``DELETE 2``)."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, IndexError):
        return 0


def _num_text(value: int | float | None) -> str | None:
    return None if value is None else str(value)


async def _pending(conn: asyncpg.Connection, lock: int, task: str) -> bool:
    """In a transaction: take the advisory lock of ``task`` (until the transaction ends)
    and tell whether a migration left it in ``scimd_pending_tasks``."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
    found = await conn.fetchval("SELECT 1 FROM scimd_pending_tasks WHERE name = $1", task)
    return found is not None


def _defs_of(rt: ResourceType) -> Iterable[AttributeDef]:
    """Every attribute (and sub-attribute) of the schemas of ``rt``."""

    def walk(defn: AttributeDef) -> Iterable[AttributeDef]:
        yield defn
        for sub in defn.sub_order:
            yield from walk(sub)

    for schema in (rt.common, rt.schema, *(s for s, _ in rt.extensions.values())):
        for defn in schema.order:
            yield from walk(defn)


def _all_defs(registry: SchemaRegistry) -> Iterable[AttributeDef]:
    for rt in registry.resource_types.values():
        yield from _defs_of(rt)


def _has_nul(text: str) -> bool:
    return "\x00" in text


class _Chunks:
    """An async iterable of COPY data chunks (``Connection.copy_to_table(source=...)``)."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        step = 2000
        for start in range(0, len(self._chunks), step):
            yield b"".join(self._chunks[start : start + step])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: b"\x01" + orjson.dumps(v),
        decoder=lambda b: orjson.loads(b[1:]),
        schema="pg_catalog",
        format="binary",
    )


class PostgresBackend:
    """The ``postgres`` backend. See the module docstring for the layout.

    Options (``[storage.postgres]``): ``dsn`` (secret), ``min_pool``, ``max_pool``,
    ``migrate_on_start``, ``command_timeout`` (seconds), ``retries``.
    """

    def __init__(self, env: BackendEnv) -> None:
        opts = env.options
        dsn = opts.get("dsn")
        if not isinstance(dsn, str) or not dsn:
            raise ServiceUnavailable("storage.postgres.dsn is not set")
        self.dsn = dsn
        self.min_pool = int(opts.get("min_pool", 1))
        self.max_pool = max(self.min_pool, int(opts.get("max_pool", 10)))
        self.migrate_on_start = bool(opts.get("migrate_on_start", False))
        self.command_timeout = float(opts.get("command_timeout", 30.0))
        self.retries = int(opts.get("retries", 5))
        self.registry = env.registry
        scim = getattr(env.settings, "scim", None)
        self.allow_dangling = bool(getattr(scim, "allow_dangling_members", False))
        self.capabilities = Capabilities(
            max_results=int(getattr(scim, "max_results", 1000)), unique_keys=frozenset({EMAIL})
        )
        schema_settings = getattr(env.settings, "schema", None)
        unknown = getattr(schema_settings, "unknown_attributes", "error")
        self._unknown: Literal["error", "ignore"] = "ignore" if unknown == "ignore" else "error"
        self._relations: dict[str, Relations] = {}
        self._paths: dict[str, int] = {}
        self._sv = SingleValues(self._paths)
        self._shape_sql: dict[tuple[Any, ...], tuple[str, list[Any], tuple[int, ...]]] = {}
        self.pool: asyncpg.Pool | None = None
        self.lookup_pool: asyncpg.Pool | None = None
        """Connections for point reads only (GET by id, the flat ``eq`` lookups of
        ``_lookup_page``): single autocommit SELECTs, on generic plans. Neither pool sends
        a reset query on release (``scimd_postgres.pool.reset_plain``)."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the pool, migrate (``migrate_on_start``) or check the layout version, and
        register the attribute paths of the configured schemas."""
        try:
            self.pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_pool,
                max_size=self.max_pool,
                command_timeout=self.command_timeout,
                init=_init_connection,
                reset=reset_plain,
            )
            # The lookups identity providers poll with (``userName eq "<each user>"``) are
            # one prepared statement that only the compared value changes. After five
            # executions PostgreSQL compares its generic plan with the custom ones and,
            # where the generic estimate comes out a little higher (``userName`` at a
            # million users: 92 vs 69), plans every execution anew: 0.4 ms of planning
            # for a 0.1 ms lookup. Both plans are the same index lookups, so these
            # connections always take the generic plan; every other statement keeps
            # PostgreSQL's choice (a LIKE or a range may deserve a plan per value). GET by
            # id runs here too: one statement, and no reset query on release.
            self.lookup_pool = await asyncpg.create_pool(
                self.dsn,
                min_size=min(self.min_pool, 1),
                max_size=self.max_pool,
                command_timeout=self.command_timeout,
                init=_init_connection,
                server_settings={
                    "plan_cache_mode": "force_generic_plan",
                    # A generic plan cannot know the value, so it estimates 1% of the
                    # rows for an ``sv`` containment (10,000 at a million users) and
                    # plans parallel workers: 5-8 ms of worker start for a 0.1 ms
                    # lookup. The statements here fetch a few rows by index.
                    "max_parallel_workers_per_gather": "0",
                    # ...and costs it high enough for JIT compilation (16 ms for
                    # ``emails[type eq "work"].value eq "x"`` at a million users)
                    "jit": "off",
                },
                reset=reset_plain,
            )
        except DRIVER_ERRORS as exc:
            await self.aclose()
            raise ServiceUnavailable(
                f"Cannot connect to PostgreSQL: {exc}", retry_after=RETRY_AFTER
            ) from exc
        try:
            if self.migrate_on_start:  # on a connection of its own: see reset_plain
                await self.migrate()
            async with self.pool.acquire() as conn:
                version = await current_version(conn)
                if version != len(MIGRATIONS):
                    raise ServiceUnavailable(
                        f"the PostgreSQL layout is at version {version}, this scimd-postgres "
                        f"needs {len(MIGRATIONS)}: run `scimd migrate`"
                    )
                await self.backfill_unique_keys(conn)
                await self._register_paths(conn)
                await self.backfill_single_values(conn)
        except BaseException:
            await self.aclose()
            raise

    async def migrate(self) -> list[str]:
        """Apply pending migrations (``scimd migrate``); returns the names applied."""
        try:
            conn = await asyncpg.connect(self.dsn, timeout=self.command_timeout)
        except DRIVER_ERRORS as exc:
            raise ServiceUnavailable(f"Cannot connect to PostgreSQL: {exc}") from exc
        try:
            done = [f"{m.version:04d}_{m.name}" for m in await migrate(conn)]
            await self.backfill_unique_keys(conn)
            await self._register_paths(conn)
            await self.backfill_single_values(conn)
            return done
        finally:
            await conn.close()

    async def _register_paths(self, conn: asyncpg.Connection) -> None:
        """Give every attribute of the configured schemas its path id (and learn them)."""
        keys = sorted({path_key(d) for d in _all_defs(self.registry)})
        await conn.execute(
            "INSERT INTO scimd_attr_paths (key) SELECT unnest($1::text[])"
            " ON CONFLICT (key) DO NOTHING",
            keys,
        )
        for key, pid in await conn.fetch("SELECT key, id FROM scimd_attr_paths"):
            self._paths[key] = pid

    async def backfill_single_values(self, conn: asyncpg.Connection) -> int | None:
        """Move the filterable values of the stored resources into ``sv``/``sv_text`` when
        migration 0010 asked for it (``scimd migrate`` and start; once, under an advisory
        lock, in one transaction): compute them from each resource's data, delete the
        value rows they replace (not the unique ones) and create the indexes on them;
        then ``VACUUM FULL`` of the value rows. Returns the number of resources filled,
        or None when there was nothing to do."""
        async with conn.transaction():
            if not await _pending(conn, _SV_LOCK, SV_TASK):
                return None
            # cheaper built once after than maintained meanwhile, as migration 0010 defines
            saved = await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = current_schema() AND indexname = ANY($1::text[])",
                list(SV_INDEXES),
            )
            for name, _ in saved:
                await conn.execute(f'DROP INDEX "{name}"')
            done = 0
            for rtype in self.registry.resource_types.values():
                done += await self._backfill_sv_type(conn, rtype)
            for _, definition in saved:
                await conn.execute(definition)
            await conn.execute("DELETE FROM scimd_pending_tasks WHERE name = $1", SV_TASK)
        # the value rows left are a twentieth of what was there: give the space back
        # (5 s at a million users; plain VACUUM would only mark it reusable)
        await conn.execute("VACUUM FULL scimd_attr_values")
        await conn.execute("ANALYZE scimd_resources; ANALYZE scimd_attr_values")
        return done

    async def _backfill_sv_type(self, conn: asyncpg.Connection, rtype: ResourceType) -> int:
        done, last = 0, 0
        while True:
            batch = await conn.fetch(  # data as text: `scimd migrate` has no jsonb codec
                "SELECT pk, data::text FROM scimd_resources WHERE rtype = $1 AND pk > $2"
                " ORDER BY pk LIMIT $3",
                rtype.name,
                last,
                _BACKFILL_BATCH,
            )
            if not batch:
                return done
            pks, svs, texts = [], [], []
            for pk, data in batch:
                sv, sv_text, _ = self._values(rtype, orjson.loads(data))
                pks.append(pk)
                svs.append(sv)
                texts.append(sv_text)
            await conn.execute(
                "UPDATE scimd_resources r SET sv = t.sv::jsonb, sv_text = t.txt"
                " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS t(pk, sv, txt)"
                " WHERE r.pk = t.pk",
                pks,
                svs,
                texts,
            )
            await conn.execute(
                "DELETE FROM scimd_attr_values WHERE pk = ANY($1::bigint[]) AND NOT uniq", pks
            )
            done += len(batch)
            last = pks[-1]

    async def backfill_unique_keys(self, conn: asyncpg.Connection) -> int | None:
        """Fill ``scimd_unique_keys`` for the stored resources when migration 0005 asked for
        it (run by ``scimd migrate`` and at start; once, under an advisory lock, in one
        transaction). In ``pk`` order the oldest holder of a key owns it and the later ones
        share it (legacy duplicates stay editable). Returns the number of shared keys, or
        None when there was nothing to do."""
        async with conn.transaction():
            if not await _pending(conn, _BACKFILL_LOCK, BACKFILL_TASK):
                return None
            await conn.execute("DELETE FROM scimd_unique_keys")
            for rtype in self.registry.resource_types.values():
                if kinds_of(rtype):
                    await _backfill_type(conn, rtype)
            await conn.execute("DELETE FROM scimd_pending_tasks WHERE name = $1", BACKFILL_TASK)
            shared = int(await conn.fetchval("SELECT count(*) FROM scimd_unique_keys WHERE shared"))
        if shared:
            log.warning(
                "postgres: %d stored users share their primary email with an older user; "
                "they stay editable while they keep it (scim.unique_email)",
                shared,
            )
        return shared

    async def aclose(self) -> None:
        for pool in (self.pool, self.lookup_pool):
            if pool is not None:
                await pool.close()
        self.pool = self.lookup_pool = None

    # ------------------------------------------------------------------ plumbing

    async def _run(
        self,
        fn: Callable[..., Awaitable[_T]],
        *args: Any,
        readonly: bool = False,
        single: bool = False,
        lookup: bool = False,
    ) -> _T:
        """Run ``fn(conn, *args)`` in one transaction; rerun it on serialization failures
        and deadlocks; translate driver errors (``scimd_postgres.errors``).

        ``single``: ``fn`` runs one statement, its own snapshot and transaction, so no
        BEGIN/COMMIT round trips around it. ``lookup``: on ``lookup_pool``."""
        pool = self.lookup_pool if lookup else self.pool
        if pool is None:
            raise ServiceUnavailable("The PostgreSQL backend is not started")
        attempt = 0
        while True:
            try:
                async with pool.acquire(timeout=self.command_timeout) as conn:
                    if single:
                        return await fn(conn, *args)
                    tx = conn.transaction(
                        isolation="repeatable_read" if readonly else "read_committed",
                        readonly=readonly,
                    )
                    async with tx:
                        return await fn(conn, *args)
            except ScimError:
                raise
            except DRIVER_ERRORS as exc:
                what = classify(exc)
                if what == RETRY:
                    attempt += 1
                    if attempt <= self.retries:
                        log.info("postgres: retrying after %s (attempt %d)", exc, attempt)
                        continue
                    raise ServiceUnavailable(
                        "The resource store is busy; try again", retry_after=1
                    ) from exc
                assert isinstance(what, ScimError)
                raise what from exc

    def relations(self, rtype: ResourceType) -> Relations:
        rel = self._relations.get(rtype.name)
        if rel is None:
            rel = self._relations[rtype.name] = Relations.of(rtype)
        return rel

    # ------------------------------------------------------------------ values and members

    def _values(
        self, rtype: ResourceType, resource: dict[str, Any]
    ) -> tuple[str, str, list[tuple[int, IndexRow]]]:
        """(``sv`` as JSON, ``sv_text``, the unique value rows) of a resource's stored form
        (``scimd_postgres.single``)."""
        sv, sv_text, unique_rows = self._sv(rtype, resource, self.relations(rtype))
        return sv_json(sv).decode(), sv_text, unique_rows

    async def _write_values(
        self,
        conn: asyncpg.Connection,
        pk: int,
        tenant: str,
        rtype: ResourceType,
        rows: list[tuple[int, IndexRow]],
    ) -> None:
        """Write the unique value rows ``rows`` (``_values``) of resource ``pk``: a value
        another resource holds is a 409 naming the attribute."""
        seen: set[tuple[int, str]] = set()
        for n, (defn, elem, v_text, v_num, original) in rows:
            pid = self._paths[path_key(defn)]
            assert v_text is not None
            if (pid, v_text) in seen:  # repeated within the resource: one row holds it
                continue
            seen.add((pid, v_text))
            try:
                await conn.execute(
                    _INSERT_UNIQUE, pk, n, tenant, rtype.name, pid, elem, v_text, _num_text(v_num)
                )
            except asyncpg.UniqueViolationError as exc:
                raise _uniqueness(defn, original) from exc

    async def _resolve_members(
        self,
        conn: asyncpg.Connection,
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
        wanted: list[tuple[str, str | None, str | None]] = []
        for member in members:
            if not isinstance(member, Mapping):
                raise InvalidValue("Each member must be an object with a value")
            value = member.get("value")
            if not isinstance(value, str) or not value:
                raise InvalidValue("Each member needs a non-empty string value")
            display = member.get("display")
            mtype = member.get("type")
            wanted.append(
                (
                    value,
                    display if isinstance(display, str) else None,
                    mtype if isinstance(mtype, str) else None,
                )
            )
        if not wanted:
            return {}
        ids = [v for v, _, _ in wanted if not _has_nul(v)]
        found: dict[str, tuple[str, str | None]] = {
            row[0]: (row[1], row[2])
            for row in await conn.fetch(
                "SELECT id, rtype, display FROM scimd_resources"
                " WHERE tenant = $1 AND rtype = ANY($2::text[]) AND id = ANY($3::text[])",
                tenant,
                types,
                ids,
            )
        }
        out: dict[str, tuple[str | None, str | None]] = {}
        for value, display, mtype in wanted:
            hit = found.get(value)
            if hit is None:
                if not self.allow_dangling or _has_nul(value):
                    raise InvalidValue(f'Member "{value}" does not exist')
                out[value] = (mtype, display)
            else:
                out[value] = (hit[0], display if display is not None else hit[1])
        return out

    async def _insert_members(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        rtype: ResourceType,
        gid: str,
        resolved: Mapping[str, tuple[str | None, str | None]],
    ) -> int:
        if not resolved:
            return 0
        values = list(resolved)
        types = [resolved[v][0] for v in values]
        displays = [resolved[v][1] for v in values]
        status = await conn.execute(
            _INSERT_MEMBERS,
            tenant,
            rtype.name,
            gid,
            values,
            types,
            [_fold(t) for t in types],
            displays,
            [_fold(d) for d in displays],
        )
        return _count(status)

    async def _remove_members(
        self, conn: asyncpg.Connection, tenant: str, gid: str, values: Iterable[str]
    ) -> int:
        ids = [v for v in values if isinstance(v, str) and not _has_nul(v)]
        if not ids:
            return 0
        status = await conn.execute(
            "DELETE FROM scimd_members WHERE tenant = $1 AND group_id = $2"
            " AND member_id = ANY($3::text[])",
            tenant,
            gid,
            ids,
        )
        return _count(status)

    async def _set_members(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        rtype: ResourceType,
        gid: str,
        members: Iterable[Mapping[str, Any]],
    ) -> int:
        """Make the membership exactly ``members`` as a diff (only changed rows)."""
        wanted = await self._resolve_members(conn, tenant, rtype, members)
        current = {
            row[0]
            for row in await conn.fetch(
                "SELECT member_id FROM scimd_members WHERE tenant = $1 AND group_id = $2",
                tenant,
                gid,
            )
        }
        changed = await self._remove_members(conn, tenant, gid, current.difference(wanted))
        new = {v: wanted[v] for v in wanted if v not in current}
        return changed + await self._insert_members(conn, tenant, rtype, gid, new)

    async def _apply_member_changes(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        rtype: ResourceType,
        gid: str,
        changes: Sequence[MemberChange],
    ) -> int:
        touched = 0
        for change in changes:
            if change.op == "add":
                resolved = await self._resolve_members(conn, tenant, rtype, change.members)
                touched += await self._insert_members(conn, tenant, rtype, gid, resolved)
            elif change.op == "remove":
                touched += await self._remove_members(conn, tenant, gid, change.values)
            elif change.op == "set":
                touched += await self._set_members(conn, tenant, rtype, gid, change.members)
            else:  # clear
                status = await conn.execute(
                    "DELETE FROM scimd_members WHERE tenant = $1 AND group_id = $2", tenant, gid
                )
                touched += _count(status)
        return touched

    async def _load_members(
        self, conn: asyncpg.Connection, tenant: str, gid: str
    ) -> list[dict[str, Any]]:
        return [_member_item(*row) for row in await conn.fetch(_SQL_MEMBERS, tenant, gid)]

    async def _load_groups(
        self, conn: asyncpg.Connection, tenant: str, rid: str
    ) -> list[dict[str, Any]]:
        return [_group_item(*row) for row in await conn.fetch(_SQL_GROUPS, tenant, rid)]

    async def _attach(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rel: Relations,
        rid: str,
        resource: dict[str, Any],
    ) -> dict[str, Any]:
        if rel.members is not None and ctx.load_members:
            members = await self._load_members(conn, ctx.tenant, rid)
            if members:
                resource[rel.members.name] = members
        if rel.groups is not None and ctx.load_groups:
            groups = await self._load_groups(conn, ctx.tenant, rid)
            if groups:
                resource[rel.groups.name] = groups
        return resource

    # ------------------------------------------------------------------ derived unique keys

    async def _write_keys(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        pk: int,
        resource: Mapping[str, Any],
        *,
        new: bool,
    ) -> None:
        """Make the derived keys of resource ``pk`` those of ``resource`` (its stored state,
        after a PATCH's operations), in the write's transaction: a key another resource of
        the tenant holds is a 409 when its kind is in ``ctx.unique_keys``, else stored
        shared; keys the resource already had are kept (shared or not)."""
        if not kinds_of(rtype):
            return
        wanted = {(k.kind, k.key): k for k in derive_keys(rtype, resource)}
        old: set[tuple[str, str]] = set()
        if not new:
            old = {
                (r[0], r[1])
                for r in await conn.fetch(
                    "SELECT kind, key FROM scimd_unique_keys WHERE pk = $1", pk
                )
            }
        for kind, key in old - wanted.keys():
            await conn.execute(
                "DELETE FROM scimd_unique_keys WHERE pk = $1 AND kind = $2 AND key = $3",
                pk,
                kind,
                key,
            )
        for (kind, key), uk in wanted.items():
            if (kind, key) not in old:
                await self._insert_key(conn, ctx, pk, uk)

    @staticmethod
    async def _insert_key(conn: asyncpg.Connection, ctx: OpContext, pk: int, uk: UniqueKey) -> None:
        args = (pk, ctx.tenant, uk.kind, uk.key)
        if uk.kind in ctx.unique_keys:
            try:
                status = await conn.execute(_INSERT_KEY_ENFORCED, *args)
            except asyncpg.UniqueViolationError as exc:  # a racing writer committed it
                raise conflict(uk) from exc
            if _count(status) == 0:
                raise conflict(uk)
        elif _count(await conn.execute(_INSERT_KEY_FREE, *args)) == 0:
            await conn.execute(_INSERT_KEY_SHARED, *args)

    # ------------------------------------------------------------------ CRUD

    def attach_state_store(self, state: object) -> None:
        """Called once both are started: when the state store is the ``postgres`` one on
        the same database (same DSN), every write records its audit events
        (``OpContext.outbox``) in its own transaction (``_recorded``), so a committed write
        always has its event, whatever happens to the process after the commit."""
        shared = isinstance(state, PostgresStateStore) and state.dsn == self.dsn
        self.capabilities = dataclasses.replace(self.capabilities, events_in_transaction=shared)

    async def _recorded(
        self,
        conn: asyncpg.Connection,
        write: Callable[..., Awaitable[_T]],
        ctx: OpContext,
        *args: Any,
    ) -> _T:
        """``write(conn, ctx, *args)``, then, in the same transaction, the audit events its
        outbox builds from the result (``OpContext.outbox``: set by the service when
        ``attach_state_store`` found the audit log in this database)."""
        result = await write(conn, ctx, *args)
        outbox = ctx.outbox
        if outbox is not None and self.capabilities.events_in_transaction:
            events = outbox.build(result if isinstance(result, Mapping) else None)
            await insert_events(conn, events)
            outbox.recorded = list(events)  # a retried transaction: its last attempt's
        return result

    async def create(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._run(self._recorded, self._create_tx, ctx, rtype, resource)

    async def _create_tx(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        resource: dict[str, Any],
    ) -> dict[str, Any]:
        rel = self.relations(rtype)
        rid = str(uuid.uuid4())
        data = stored_form(rtype, rid, rel.stored(resource), 1, _now())
        display = data.get("displayName")
        display = display if isinstance(display, str) else None
        sv, sv_text, rows = self._values(rtype, data)
        pk = await conn.fetchval(
            "INSERT INTO scimd_resources (tenant, rtype, id, version, display, display_fold,"
            " data, sv, sv_text) VALUES ($1, $2, $3, 1, $4, $5, $6, $7::text::jsonb, $8)"
            " RETURNING pk",
            ctx.tenant,
            rtype.name,
            rid,
            display,
            _fold(display),
            data,
            sv,
            sv_text,
        )
        await self._write_values(conn, pk, ctx.tenant, rtype, rows)
        await self._write_keys(conn, ctx, rtype, pk, data, new=True)
        members = rel.members_in(resource)
        if members:
            resolved = await self._resolve_members(conn, ctx.tenant, rtype, members)
            await self._insert_members(conn, ctx.tenant, rtype, rid, resolved)
        return await self._attach(conn, ctx, rel, rid, orjson.loads(orjson.dumps(data)))

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        if _has_nul(rid):
            raise NotFound(f"{rtype.name} not found")
        return await self._run(self._get_one, ctx, rtype, rid, single=True, lookup=True)

    async def _get_one(
        self, conn: asyncpg.Connection, ctx: OpContext, rtype: ResourceType, rid: str
    ) -> dict[str, Any]:
        """The resource with its relations in one statement (no transaction around it)."""
        rel = self.relations(rtype)
        members, groups = _relations_json(rel, ctx, "r")
        row = await conn.fetchrow(
            f"SELECT r.data, {members}, {groups} FROM scimd_resources r"
            " WHERE r.tenant = $1 AND r.rtype = $2 AND r.id = $3",
            ctx.tenant,
            rtype.name,
            rid,
        )
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        return _with_relations(rel, row[0], row[1], row[2])

    async def _lock(
        self, conn: asyncpg.Connection, ctx: OpContext, rtype: ResourceType, rid: str
    ) -> tuple[int, int, dict[str, Any]]:
        row = await conn.fetchrow(_SQL_LOCK, ctx.tenant, rtype.name, rid)
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        return row[0], row[1], row[2]

    async def _store(
        self,
        conn: asyncpg.Connection,
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
        display = display if isinstance(display, str) else None
        sv, sv_text, rows = self._values(rtype, data)
        await conn.execute(
            "UPDATE scimd_resources SET version = $1, display = $2, display_fold = $3,"
            " data = $4, sv = $5::text::jsonb, sv_text = $6 WHERE pk = $7",
            version + 1,
            display,
            _fold(display),
            data,
            sv,
            sv_text,
            pk,
        )
        await conn.execute("DELETE FROM scimd_attr_values WHERE pk = $1", pk)
        await self._write_values(conn, pk, ctx.tenant, rtype, rows)
        await self._write_keys(conn, ctx, rtype, pk, data, new=False)
        return orjson.loads(orjson.dumps(data))  # type: ignore[no-any-return]

    async def replace(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        if _has_nul(rid):
            raise NotFound(f"{rtype.name} not found")
        return await self._run(
            self._recorded, self._replace_tx, ctx, rtype, rid, resource, if_match
        )

    async def _replace_tx(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        if_match: str | None,
    ) -> dict[str, Any]:
        pk, version, old = await self._lock(conn, ctx, rtype, rid)
        if not etag_matches(if_match, version):
            raise PreconditionFailed(
                f"{rtype.name} {rid} is at version {weak_etag(version)}, not {if_match}"
            )
        data = await self._store(conn, ctx, rtype, pk, rid, version, old, resource)
        rel = self.relations(rtype)
        members = rel.members_in(resource)
        if members is not None:
            await self._set_members(conn, ctx.tenant, rtype, rid, members)
        return await self._attach(conn, ctx, rel, rid, data)

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        if _has_nul(rid):
            raise NotFound(f"{rtype.name} not found")
        return await self._run(self._recorded, self._patch_tx, ctx, rtype, rid, ops, if_match)

    async def _patch_tx(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        if_match: str | None,
    ) -> dict[str, Any]:
        from scimd.patch import apply_patch, needs_members

        pk, version, old = await self._lock(conn, ctx, rtype, rid)
        if not etag_matches(if_match, version):
            raise PreconditionFailed(
                f"{rtype.name} {rid} is at version {weak_etag(version)}, not {if_match}"
            )
        rel = self.relations(rtype)
        inline = rel.members is not None and needs_members(rtype, ops)
        current = dict(old)
        if inline and rel.members is not None:
            loaded = await self._load_members(conn, ctx.tenant, rid)
            if loaded:
                current[rel.members.name] = loaded
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
                touched = await self._set_members(conn, ctx.tenant, rtype, rid, after)
            else:
                touched = await self._apply_member_changes(
                    conn, ctx.tenant, rtype, rid, result.member_changes
                )
        if not result.changed and touched == 0:
            return await self._attach(conn, ctx, rel, rid, old)
        data = await self._store(conn, ctx, rtype, pk, rid, version, old, new)
        return await self._attach(conn, ctx, rel, rid, data)

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        if _has_nul(rid):
            raise NotFound(f"{rtype.name} not found")
        await self._run(self._recorded, self._delete_tx, ctx, rtype, rid, if_match)

    async def _delete_tx(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        if_match: str | None,
    ) -> None:
        row = await conn.fetchrow(
            "SELECT pk, version FROM scimd_resources WHERE tenant = $1 AND rtype = $2"
            " AND id = $3 FOR UPDATE",
            ctx.tenant,
            rtype.name,
            rid,
        )
        if row is None:
            raise NotFound(f"{rtype.name} {rid} not found")
        if not etag_matches(if_match, row[1]):
            raise PreconditionFailed(
                f"{rtype.name} {rid} is at version {weak_etag(row[1])}, not {if_match}"
            )
        await conn.execute("DELETE FROM scimd_resources WHERE pk = $1", row[0])
        await conn.execute("DELETE FROM scimd_attr_values WHERE pk = $1", row[0])
        if kinds_of(rtype):
            await conn.execute("DELETE FROM scimd_unique_keys WHERE pk = $1", row[0])
        await conn.execute(
            "DELETE FROM scimd_members WHERE tenant = $1 AND group_id = $2", ctx.tenant, rid
        )
        await conn.execute(
            "DELETE FROM scimd_members WHERE tenant = $1 AND member_id = $2", ctx.tenant, rid
        )

    # ------------------------------------------------------------------ bulk import

    def import_bulk(self, records: int, force: bool | None) -> BulkMode:
        """``scimd import`` bulk mode around a whole load (``scimd_postgres.bulk.BulkMode``:
        secondary indexes dropped, then rebuilt)."""
        return BulkMode(self.dsn, records, force, self.command_timeout)

    def import_encoder(self, tenant: str, rtype: ResourceType) -> RowEncoder:
        """The picklable encoder of ``scimd import`` rows (``scimd_postgres.bulk``), run by
        the importer next to normalisation (in its worker processes)."""
        return RowEncoder(tenant, rtype.name, dict(self._paths))

    async def import_resources(
        self, ctx: OpContext, rtype: ResourceType, resources: Sequence[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        """Bulk path of ``scimd import`` for already normalised ``resources`` (password
        hashed): encodes them here and stores them with ``import_encoded``. A Group with
        members goes through ``create``."""
        rel = self.relations(rtype)
        out: list[tuple[str, str]] = []
        plain: list[tuple[int, dict[str, Any]]] = []
        for i, resource in enumerate(resources):
            out.append(("error", ""))
            if rel.members_in(resource):
                try:
                    made = await self.create(ctx, rtype, resource)
                    out[i] = ("created", str(made["id"]))
                except Uniqueness as exc:
                    out[i] = ("skipped", await self._owner_of(ctx, rtype, resource) or "")
                    if not out[i][1]:
                        out[i] = ("error", exc.detail)
                except ScimError as exc:
                    out[i] = ("error", exc.detail)
            else:
                plain.append((i, resource))
        encoder = self.import_encoder(ctx.tenant, rtype)
        encoded = [encoder(rtype, resource) for _, resource in plain]
        for (i, _), result in zip(
            plain, await self.import_encoded(ctx, rtype, encoded), strict=True
        ):
            out[i] = result
        return out

    async def _owner_of(
        self, ctx: OpContext, rtype: ResourceType, resource: Mapping[str, Any]
    ) -> str | None:
        """The id of the stored resource holding one of ``resource``'s unique values."""
        encoded = self.import_encoder(ctx.tenant, rtype)(rtype, dict(resource))
        found = await self._run(self._stored_unique, ctx, rtype, list(encoded.unique))
        return next(iter(found.values()), None)

    async def _stored_unique(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        keys: Sequence[tuple[int, str, str]],
    ) -> dict[tuple[int, str], str]:
        """(path id, text) -> id of the stored resources holding these unique values."""
        if not keys:
            return {}
        rows = await conn.fetch(
            "SELECT a.path, a.v_text, r.id FROM unnest($3::int[], $4::text[]) AS t(path, v)"
            " JOIN scimd_attr_values a ON a.tenant = $1 AND a.rtype = $2 AND a.uniq"
            " AND a.path = t.path AND md5(a.v_text) = md5(t.v) AND a.v_text = t.v"
            " JOIN scimd_resources r ON r.pk = a.pk",
            ctx.tenant,
            rtype.name,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(pid, text): rid for pid, text, rid in rows}

    async def import_encoded(
        self, ctx: OpContext, rtype: ResourceType, items: Sequence[Encoded]
    ) -> list[tuple[str, str]]:
        """Store resources encoded by ``import_encoder`` (``Encoded``, or its fields as a
        plain tuple: how ``scimd import``'s workers send them) in one transaction; one ``(status,
        detail)`` per item: ``("created", id)``, ``("skipped", id)`` (a resource with the
        same unique value, e.g. the userName, is already stored: re-running an import
        resumes it) or ``("error", message)`` (a unique value repeated within the batch).

        One set-based lookup of the batch's unique values, primary keys from the sequence,
        then ``COPY`` (text format) into ``scimd_resources`` and ``scimd_attr_values``.
        When a concurrent writer takes a unique value in between, or PostgreSQL refuses a
        row, the batch is rolled back and stored one resource at a time. With the audit log
        in this database (``attach_state_store``), ``ctx.outbox`` (the batch's
        ``scim.user.imported`` event, built from ``{"outcomes": [...]}``) is recorded in
        the batch's transaction; a batch stored one by one records none (``scimd
        import`` records it after)."""
        items = [it if isinstance(it, Encoded) else Encoded._make(it) for it in items]
        try:
            stored = await self._run(self._recorded, self._import_recorded, ctx, rtype, items)
            return list(stored["outcomes"])
        except ServiceUnavailable:
            raise
        except ScimError:  # a value taken meanwhile, a value PostgreSQL refuses: one by one
            if ctx.outbox is not None:  # the batch's event is recorded after it, by scimd
                ctx.outbox.recorded = []
                ctx = dataclasses.replace(ctx, outbox=None)
            out: list[tuple[str, str]] = []
            for item in items:
                if item.error is not None:
                    out.append(("error", item.error))
                    continue
                try:
                    made = await self.create(ctx, rtype, resource_of(item))
                    out.append(("created", str(made["id"])))
                except Uniqueness as exc:
                    stored = await self._run(self._stored_unique, ctx, rtype, list(item.unique))
                    owner = next(iter(stored.values()), None)
                    out.append(("skipped", owner) if owner else ("error", exc.detail))
                except ScimError as exc:
                    out.append(("error", exc.detail))
            return out

    async def _import_recorded(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        items: Sequence[Encoded],
    ) -> dict[str, Any]:
        """``_import_tx`` as ``_recorded`` writes take it: the outcomes, ``{"outcomes":
        [...]}``, are what the batch's outbox builds its event from (``scimd.bulk_import``)."""
        return {"outcomes": await self._import_tx(conn, ctx, rtype, items)}

    async def _import_tx(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        items: Sequence[Encoded],
    ) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = [("error", "")] * len(items)
        owner: dict[tuple[int, str], int] = {}
        clashes: list[tuple[int, str]] = []
        candidates: list[int] = []
        keys: list[tuple[int, str, str]] = []
        for i, item in enumerate(items):
            if item.error is not None:
                out[i] = ("error", item.error)
                continue
            clash = next((m for p, t, m in item.unique if (p, t) in owner), None)
            if clash is not None:
                clashes.append((i, clash + " (earlier in this batch)"))
                continue
            for pid, text, msg in item.unique:
                owner[(pid, text)] = i
                keys.append((pid, text, msg))
            candidates.append(i)
        for i, _ in clashes:
            keys.extend(items[i].unique)
        existing = await self._stored_unique(conn, ctx, rtype, keys)
        for i, clash in clashes:  # stored before: skipped, else a duplicate line
            stored = next(
                (existing[(p, t)] for p, t, _ in items[i].unique if (p, t) in existing), None
            )
            out[i] = ("skipped", stored) if stored is not None else ("error", clash)
        bulk: list[int] = []
        for i in candidates:
            hit = next(
                (existing[(p, t)] for p, t, _ in items[i].unique if (p, t) in existing), None
            )
            if hit is not None:
                out[i] = ("skipped", hit)
            else:
                bulk.append(i)
        if not bulk:
            return out
        pks = await conn.fetch(
            # the sequence looked up once (an initplan), not per key: 4 -> 0.5 µs per User
            "SELECT nextval((SELECT pg_get_serial_sequence('scimd_resources', 'pk')::regclass))"
            " FROM generate_series(1, $1)",
            len(bulk),
        )
        res_rows: list[bytes] = []
        val_rows: list[bytes] = []
        for i, pk in zip(bulk, pks, strict=True):
            res, vals = number(items[i], pk[0])
            res_rows.append(res)
            val_rows.append(vals)
            out[i] = ("created", items[i].rid)
        try:
            await conn.copy_to_table(
                "scimd_resources",
                source=_Chunks(res_rows),
                columns=[
                    "pk",
                    "tenant",
                    "rtype",
                    "id",
                    "version",
                    "display",
                    "display_fold",
                    "data",
                    "sv",
                    "sv_text",
                ],
            )
            await conn.copy_to_table(
                "scimd_attr_values",
                source=_Chunks(val_rows),
                columns=VALUE_COLUMNS,
            )
            if kinds_of(rtype):
                await _import_keys(
                    conn,
                    ctx.tenant,
                    [(pk[0], items[i].keys) for i, pk in zip(bulk, pks, strict=True)],
                )
        except asyncpg.UniqueViolationError as exc:
            raise Uniqueness("a unique value was taken during the import") from exc
        return out

    async def import_email_owners(
        self, ctx: OpContext, rtype: ResourceType, values: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The stored resources of ``rtype`` whose primary email is one of ``values``
        (their derived key in ``scimd_unique_keys``, the normalised address):
        ``scimd import``'s set-based check of ``scim.unique_email``, which compares
        primary emails. One B-tree lookup per value, also while a bulk import has dropped
        the GIN indexes."""
        keys = sorted({v for v in values if not _has_nul(v)})
        if EMAIL not in kinds_of(rtype) or not keys:
            return []

        async def run(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            rows = await conn.fetch(EMAIL_OWNERS_SQL, ctx.tenant, EMAIL, rtype.name, keys)
            return [row[0] for row in rows]

        return await self._run(run, readonly=True)

    # ------------------------------------------------------------------ query

    def compile_where(
        self,
        tenant: str,
        rtype: ResourceType,
        flt: Filter | None,
        sort: SortSpec | None = None,
    ) -> tuple[str, str | None, str | None, list[Any], int]:
        """(WHERE clause over ``scimd_resources r``, sort key SQL or None, its kind,
        params, how many of the params the WHERE clause uses). Public for the query-plan
        tests."""
        c = PgFilterCompiler(rtype, tenant, self.relations(rtype), self._paths.get)
        where = f"r.tenant = {c.tenant_p()} AND r.rtype = {c.rtype_p()}"
        if flt is not None:
            where += " AND " + c.compile(flt)
        n_where = len(c.params)
        sk: str | None = None
        kind: str | None = None
        if sort is not None:
            sk, kind = sort_expr(c, sort.path)
        return where, sk, kind, c.params, n_where

    async def query(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        if q.paging == "index":
            if q.sort is None and q.start_index <= 1 and q.count > 0 and few_matches(q.filter):
                page = await self._run(self._lookup_page, ctx, rtype, q, single=True, lookup=True)
                if page is not None:
                    return page
            return await self._run(self._index_page, ctx, rtype, q, readonly=True, single=True)
        return await self._run(self._query_tx, ctx, rtype, q, readonly=True)

    async def _index_page(
        self, conn: asyncpg.Connection, ctx: OpContext, rtype: ResourceType, q: Query
    ) -> Page:
        """An index page in one statement (one round trip, one snapshot, no transaction):
        the page, each resource's data and relations, and the total.

        The total of a filtered page is the page's own row count when that is exact (the
        page is not full, and starts at 1 or holds rows), else ``count(*)`` of the
        matches in the same statement (an InitPlan the CASE runs only then). An unsorted
        first page of a filter expected to match a few resources is ``_lookup_page``
        first."""
        count = max(0, min(q.count, self.capabilities.max_results))
        if count == 0:
            sql, args = self._total_sql(ctx, rtype, q.filter)
            return Page([], int(await conn.fetchval(sql, *args)))
        total: int | None = None
        sql, args = self._page_sql(ctx, rtype, q, count, flat=False)
        rows = list(await conn.fetch(sql, *args))
        if rows:
            total = rows[0][6]
        if rows and rows[0][0] is None:
            rows = []  # an empty page: one row of NULLs carrying the total
        return self._page_of(rtype, q, rows, total)

    async def _lookup_page(
        self, conn: asyncpg.Connection, ctx: OpContext, rtype: ResourceType, q: Query
    ) -> Page | None:
        """The unsorted first page of a filter expected to match a few resources
        (``few_matches``: what identity providers poll with, ``userName eq "x"``,
        ``emails[type eq "work"].value eq "x"``): the flat statement, on a
        ``lookup_pool`` connection, its total the row count. ``None`` when the page is
        full (the total is then unknown): ``_index_page`` answers instead."""
        count = max(0, min(q.count, self.capabilities.max_results))
        sql, args = self._flat_sql(ctx, rtype, q, count)
        rows = list(await conn.fetch(sql, *args))
        if len(rows) >= count:
            return None
        return self._page_of(rtype, q, rows, len(rows))

    def _page_of(self, rtype: ResourceType, q: Query, rows: list[Any], total: int | None) -> Page:
        rel = self.relations(rtype)
        out = [_with_relations(rel, row[3], row[4], row[5]) for row in rows]
        return Page(out, int(total) if q.want_total and total is not None else None)

    def _flat_sql(
        self, ctx: OpContext, rtype: ResourceType, q: Query, count: int
    ) -> tuple[str, list[Any]]:
        """``_page_sql(flat=True)``; for a query carrying a filter shape (``Query.shape``:
        ``userName eq "<each user>"``) from the statement compiled for the first filter of
        that shape, with the new value put in. Where the value goes is learnt by compiling
        the shape with a second value: the statement is kept when its SQL is the same and
        the arguments that differ hold each value as the compiler binds it (casefolded
        unless caseExact; a valuePath entered by it binds it twice: for its entry and in
        its filter)."""
        if q.shape is None:
            return self._page_sql(ctx, rtype, q, count, flat=True)
        shape, value = q.shape
        operand = fold(value, shape.case_exact)
        key = (shape, ctx.tenant, rtype.name, ctx.load_members, ctx.load_groups)
        known = self._shape_sql.get(key)
        if known is not None:
            sql, template, slots = known
            args = list(template)
            for slot in slots:
                args[slot] = operand
            args[-1] = count
            return sql, args
        sql, args = self._page_sql(ctx, rtype, q, count, flat=True)
        probe = dataclasses.replace(q, filter=shape.build(_SHAPE_PROBE))
        sql2, args2 = self._page_sql(ctx, rtype, probe, count, flat=True)
        slots = tuple(i for i, (a, b) in enumerate(zip(args, args2, strict=False)) if a != b)
        folded = fold(_SHAPE_PROBE, shape.case_exact)
        if (
            sql2 == sql
            and len(args) == len(args2)
            and slots
            and all(args[i] == operand and args2[i] == folded for i in slots)
        ):
            if len(self._shape_sql) >= _SHAPE_SQL_SIZE:
                self._shape_sql.clear()
            self._shape_sql[key] = (sql, list(args), slots)
        return sql, args

    def _total_sql(
        self, ctx: OpContext, rtype: ResourceType, flt: Filter | None
    ) -> tuple[str, list[Any]]:
        """A statement counting the resources of ``rtype`` matching ``flt``: the
        trigger-kept counts (migration 0008) without a filter."""
        if flt is None:
            return (
                "SELECT coalesce(sum(n), 0) FROM scimd_resource_counts"
                " WHERE tenant = $1 AND rtype = $2",
                [ctx.tenant, rtype.name],
            )
        where, _, _, params, _ = self.compile_where(ctx.tenant, rtype, flt)
        return f"SELECT count(*) FROM scimd_resources r WHERE {where}", params

    def _page_sql(
        self, ctx: OpContext, rtype: ResourceType, q: Query, count: int, *, flat: bool
    ) -> tuple[str, list[Any]]:
        """The statement of ``_index_page`` and its arguments. Its rows: pk, id, sort key,
        data, members JSON, groups JSON, total; an empty page is one row of NULLs but the
        total (general form). ``flat``: the first page of an unsorted query without its
        total (the caller counts the rows); PostgreSQL evaluates the relation subqueries
        above the sort and limit, for the page's rows only."""
        where, sk, _kind, params, _ = self.compile_where(ctx.tenant, rtype, q.filter, q.sort)
        args = list(params)
        rel = self.relations(rtype)
        if flat:
            # The matches first, then their order: ``OFFSET 0`` keeps the planner from
            # walking the id index in order while it filters, which it chose for the
            # generic plan of an ``sv`` containment (1% of the rows expected): a scan of
            # half the table on average for the one user looked up.
            args.append(count)
            members, groups = _relations_json(rel, ctx, "f")
            sql = (
                f"SELECT f.pk, f.id, NULL::text, f.data, {members}, {groups}, NULL::bigint"
                f" FROM (SELECT r.pk, r.id, r.tenant, r.data FROM scimd_resources r"
                f" WHERE {where} OFFSET 0) f ORDER BY f.id LIMIT ${len(args)}"
            )
            return sql, args
        desc = q.sort is not None and q.sort.descending
        sorted_ = sk is not None
        skx = sk if sk is not None else "NULL::text"
        args.extend((count, max(0, q.start_index - 1)))
        limit, offset = f"${len(args) - 1}", f"${len(args)}"
        if not q.want_total:
            total = "NULL::bigint"
        elif q.filter is None:
            args.extend((ctx.tenant, rtype.name))
            total = (
                "(SELECT coalesce(sum(c.n), 0) FROM scimd_resource_counts c"
                f" WHERE c.tenant = ${len(args) - 1} AND c.rtype = ${len(args)})"
            )
        else:
            # The matches in the page, when that is all of them; else counted.
            rows = "count(p.pk) OVER ()"
            total = (
                f"CASE WHEN {rows} < {limit} AND ({offset} = 0 OR {rows} > 0)"
                f" THEN {offset} + {rows}"
                f" ELSE (SELECT count(*) FROM scimd_resources r WHERE {where}) END"
            )
        members, groups = _relations_json(rel, ctx, "p")
        # The data rides along with the page rows (the heap row is read for the tenant
        # check anyway); the relations are read for the page's rows only.
        sql = (
            f"SELECT p.pk, p.id, p.sk, p.data, {members}, {groups}, {total}"
            " FROM (SELECT 1) o LEFT JOIN LATERAL (SELECT q.* FROM (SELECT r.pk AS pk,"
            f" r.id AS id, {skx} AS sk, r.tenant AS tenant, r.data AS data"
            f" FROM scimd_resources r WHERE {where}) q"
            f" ORDER BY {_order(sorted_, desc, reverse=False)} LIMIT {limit} OFFSET {offset}) p"
            f" ON TRUE ORDER BY {_order(sorted_, desc, reverse=False, alias='p')}"
        )
        return sql, args

    async def _query_tx(
        self, conn: asyncpg.Connection, ctx: OpContext, rtype: ResourceType, q: Query
    ) -> Page:
        """A cursor page (keyset), its neighbours and total in one transaction."""
        total: int | None = None
        if q.want_total or q.count <= 0:
            # From this transaction's snapshot.
            sql, args = self._total_sql(ctx, rtype, q.filter)
            total = int(await conn.fetchval(sql, *args))
        count = max(0, min(q.count, self.capabilities.max_results))
        if count == 0:
            return Page([], total)
        where, sk, kind, params, _ = self.compile_where(ctx.tenant, rtype, q.filter, q.sort)
        desc = q.sort is not None and q.sort.descending
        sorted_ = sk is not None
        skx = sk if sk is not None else "NULL::text"
        inner = f"SELECT r.pk AS pk, r.id AS id, {skx} AS sk FROM scimd_resources r WHERE {where}"
        ks = q.keyset
        reverse = ks is not None and ks.direction == "prev"
        args = list(params)
        cond = _keyset_cond(sorted_, desc, kind, ks, args) if ks is not None else "TRUE"
        order = _order(sorted_, desc, reverse=reverse)
        args.append(count + 1)
        rows = list(
            await conn.fetch(
                f"SELECT q.pk, q.id, q.sk FROM ({inner}) q WHERE {cond} ORDER BY {order}"
                f" LIMIT ${len(args)}",
                *args,
            )
        )
        more = len(rows) > count
        rows = rows[:count]
        if reverse:
            rows.reverse()
        next_ks: Keyset | None = None
        prev_ks: Keyset | None = None
        # The page's other link (previous going forward, next going back) exists when a
        # row lies beyond its edge row: asked in the statement that reads the page's data.
        probe: Keyset | None = None
        if rows:
            first = Keyset(_sort_value(rows[0][2], kind, q.sort), rows[0][1], "prev")
            last = Keyset(_sort_value(rows[-1][2], kind, q.sort), rows[-1][1], "next")
            if reverse:
                prev_ks = first if more else None
                probe = last
            else:
                next_ks = last if more else None
                probe = first if ks is not None else None
        beyond_sql: tuple[str, list[Any]] | None = None
        if probe is not None:
            beyond_args = list(params)
            cond = _keyset_cond(sorted_, desc, kind, probe, beyond_args)
            beyond_sql = (f"EXISTS (SELECT 1 FROM ({inner}) q WHERE {cond})", beyond_args)
        resources, beyond = await self._fetch(conn, ctx, rtype, rows, beyond_sql)
        if probe is not None and beyond:
            if reverse:
                next_ks = probe
            else:
                prev_ks = probe
        return Page(resources, total, next_ks, prev_ks)

    async def _fetch(
        self,
        conn: asyncpg.Connection,
        ctx: OpContext,
        rtype: ResourceType,
        rows: Sequence[Any],
        beyond: tuple[str, list[Any]] | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """The data and relations of a cursor page's rows, in their order, and the value
        of the ``beyond`` condition (``(sql, its arguments)``, an uncorrelated EXISTS
        run once) in the same round trip."""
        if not rows:
            return [], False
        rel = self.relations(rtype)
        members, groups = _relations_json(rel, ctx, "d")
        exists, args = beyond if beyond is not None else ("FALSE", [])
        args = [*args, [row[0] for row in rows]]
        found = {
            r[0]: r
            for r in await conn.fetch(
                f"SELECT d.pk, d.data, {members}, {groups}, {exists} FROM scimd_resources d"
                f" WHERE d.pk = ANY(${len(args)}::bigint[])",
                *args,
            )
        }
        out: list[dict[str, Any]] = []
        for pk, _rid, _ in rows:
            got = found.get(pk)
            if got is not None:
                out.append(_with_relations(rel, got[1], got[2], got[3]))
        return out, any(r[4] for r in found.values())


async def _import_keys(
    conn: asyncpg.Connection,
    tenant: str,
    stored: Sequence[tuple[int, tuple[tuple[str, str], ...]]],
) -> None:
    """The derived keys of imported resources ``(pk, ((kind, key), ...))``, derived by the
    encoder (``Encoded.keys``): never enforced (docs/jit.md: users written by ``scimd
    import`` get their keys, shared when they duplicate a stored key or an earlier line of
    the batch)."""
    pks: list[int] = []
    kinds: list[str] = []
    keys: list[str] = []
    for pk, derived in stored:
        for kind, key in derived:
            pks.append(pk)
            kinds.append(kind)
            keys.append(key)
    if pks:
        await conn.execute(_INSERT_KEYS_BULK, tenant, pks, kinds, keys)


async def _backfill_type(conn: asyncpg.Connection, rtype: ResourceType) -> None:
    """Insert the keys of every stored resource of ``rtype`` (in ``pk`` batches), the oldest
    holder of each key owning it."""
    last = 0
    while True:
        rows = await conn.fetch(
            "SELECT pk, tenant, (data -> 'emails')::text FROM scimd_resources"
            " WHERE rtype = $1 AND pk > $2 ORDER BY pk LIMIT $3",
            rtype.name,
            last,
            _BACKFILL_BATCH,
        )
        if not rows:
            return
        last = rows[-1][0]
        by_tenant: dict[str, list[tuple[int, str, str]]] = {}
        for pk, tenant, emails in rows:
            if emails is None:
                continue
            for uk in derive_keys(rtype, {"emails": orjson.loads(emails)}):
                by_tenant.setdefault(tenant, []).append((pk, uk.kind, uk.key))
        for tenant, found in by_tenant.items():
            await conn.execute(
                _INSERT_KEYS_BULK,
                tenant,
                [f[0] for f in found],
                [f[1] for f in found],
                [f[2] for f in found],
            )


def _sort_value(value: Any, kind: str | None, spec: SortSpec | None) -> Any:
    """A sort key as ``scimd.query.sort.sort_value`` gives it (bools, ints, floats)."""
    if value is None or spec is None:
        return None
    if kind == "bool":
        return bool(value)
    if isinstance(value, Decimal):
        defn = spec.path.defn
        if defn is not None and defn.type == "integer" and value == value.to_integral_value():
            return int(value)
        return float(value)
    return value


def _order(sorted_: bool, desc: bool, *, reverse: bool, alias: str = "q") -> str:
    """ORDER BY of the total order of ``scimd.query.sort`` (sort key, nulls last in both
    directions, ties by id in the sort's direction), or its exact reverse, over the
    ``sk``/``id`` columns of ``alias``."""
    q = alias
    if not sorted_:
        return f"{q}.id DESC" if reverse else f"{q}.id"
    direction = "DESC" if desc != reverse else "ASC"
    nulls = "DESC" if reverse else "ASC"
    return f"({q}.sk IS NULL) {nulls}, {q}.sk {direction}, {q}.id {direction}"


def _relations_json(rel: Relations, ctx: OpContext, alias: str) -> tuple[str, str]:
    """SQL for the members and the groups of the resource row ``alias`` (``_SQL_MEMBERS``,
    ``_SQL_GROUPS``) as JSON arrays of arrays, NULL when there are none (or the projection
    leaves them out: ``OpContext.load_members``/``load_groups``)."""
    members = "NULL::text"
    if rel.members is not None and ctx.load_members:
        members = (
            "(SELECT json_agg(json_build_array(m.member_id, m.member_type, m.display)"
            f" ORDER BY m.member_id)::text FROM scimd_members m WHERE m.tenant = {alias}.tenant"
            f" AND m.group_id = {alias}.id)"
        )
    groups = "NULL::text"
    if rel.groups is not None and ctx.load_groups:
        groups = (
            "(SELECT json_agg(json_build_array(m.group_id, g.display) ORDER BY m.group_id)::text"
            " FROM scimd_members m JOIN scimd_resources g ON g.tenant = m.tenant"
            " AND g.rtype = m.grtype AND g.id = m.group_id"
            f" WHERE m.tenant = {alias}.tenant AND m.member_id = {alias}.id)"
        )
    return members, groups


def _with_relations(
    rel: Relations, data: dict[str, Any], members: str | None, groups: str | None
) -> dict[str, Any]:
    """``data`` with the relations of ``_relations_json`` attached as ``_attach`` does."""
    if members is not None and rel.members is not None:
        data[rel.members.name] = [_member_item(*m) for m in orjson.loads(members)]
    if groups is not None and rel.groups is not None:
        data[rel.groups.name] = [_group_item(*g) for g in orjson.loads(groups)]
    return data


def _member_item(value: str, mtype: str | None, display: str | None) -> dict[str, Any]:
    """A Group's ``members`` element from its ``scimd_members`` row."""
    item: dict[str, Any] = {"value": value}
    if display is not None:
        item["display"] = display
    if mtype is not None:
        item["type"] = mtype
    return item


def _group_item(gid: str, display: str | None) -> dict[str, Any]:
    """A User's (computed) ``groups`` element: every membership is direct."""
    item: dict[str, Any] = {"value": gid}
    if display is not None:
        item["display"] = display
    item["type"] = "direct"
    return item


def _keyset_cond(sorted_: bool, desc: bool, kind: str | None, ks: Keyset, args: list[Any]) -> str:
    """Rows strictly after (``next``) or before (``prev``) ``ks`` in the total order;
    binds its values into ``args``."""
    args.append(ks.id if isinstance(ks.id, str) else str(ks.id))
    ks_id = f"${len(args)}::text"
    after = ks.direction == "next"
    if not sorted_:
        return f"q.id > {ks_id}" if after else f"q.id < {ks_id}"
    beyond = ">" if (after != desc) else "<"
    if ks.sort_value is None:
        if after:
            return f"(q.sk IS NULL AND q.id {beyond} {ks_id})"
        return f"(q.sk IS NOT NULL OR q.id {beyond} {ks_id})"
    sv = ks.sort_value
    if kind in ("text", None):
        args.append(sv if isinstance(sv, str) else str(sv))
        ks_sv = f"${len(args)}::text"
    else:
        if isinstance(sv, bool):
            sv = int(sv)
        if not isinstance(sv, int | float) or sv != sv or sv in (float("inf"), float("-inf")):
            raise InvalidValue("The cursor does not fit the sort attribute")
        args.append(str(sv))
        ks_sv = f"${len(args)}::numeric"
    core = (
        f"(q.sk IS NOT NULL AND (q.sk {beyond} {ks_sv} OR (q.sk = {ks_sv}"
        f" AND q.id {beyond} {ks_id})))"
    )
    return f"({core} OR q.sk IS NULL)" if after else core


def _uniqueness(defn: AttributeDef, value: Any) -> Uniqueness:
    return Uniqueness(uniqueness_message(defn, value))
