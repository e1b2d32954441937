"""The ``postgres`` state store: tokens, events, server secrets and the JIT state in the
PostgreSQL database (``migrations/0002_state.sql``), shared by every scimd process.

It implements ``scimd.state.base.StateStore``, ``JitStateStore`` and ``EmailMarkStore``
(``migrations/0006_email_marks.sql``) with the semantics of
the SQLite store (``scimd.state.sqlite``): tokens are ``scimd_`` + 32 random bytes and only
their SHA-256 is stored (a 256-bit random token cannot be guessed whatever the hash costs),
looked up by hash and compared with ``hmac.compare_digest``; recording an event twice is
harmless; ``get_or_create_secret`` returns the value of whichever process inserted first;
identity links keep the first writer unless ``replace``.

Driver errors (PostgreSQL unreachable, shutting down, too many connections) are
``ServiceUnavailable`` with ``Retry-After``, as in the backend.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import orjson

from scimd.errors import ScimError, ServiceUnavailable
from scimd.state.base import (
    TOKEN_PREFIX,
    Event,
    IdempotencyRecord,
    TokenRecord,
    hash_token,
    new_token,
)
from scimd_postgres.errors import RETRY, RETRY_AFTER, classify
from scimd_postgres.migrations import MIGRATIONS, current_version, migrate
from scimd_postgres.pool import reset_plain

__all__ = [
    "TOKEN_PREFIX",
    "PostgresStateStore",
    "hash_token",
    "insert_events",
]

log = logging.getLogger("scimd.postgres")

DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

_T = TypeVar("_T")


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


async def insert_events(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Insert ``events`` into the audit log (``scimd_state_events``) on ``conn``: by the
    state store, and by the backend inside a write's own transaction when both share the
    database (``PostgresBackend.attach_state_store``). ON CONFLICT DO NOTHING: recording
    an event twice (a retried flush) is harmless."""
    rows = [
        (
            e.id,
            e.type,
            _utc(e.time),
            e.tenant,
            e.resource_type,
            e.resource_id,
            e.actor,
            e.request_id,
            orjson.dumps(list(e.changed_attributes)).decode(),
            orjson.dumps(e.data, default=str).decode(),
        )
        for e in events
    ]
    await conn.executemany(
        "INSERT INTO scimd_state_events (id, type, time, tenant, resource_type,"
        " resource_id, actor, request_id, changed, data)"
        # JSON as text: the backend's connections decode/encode jsonb themselves
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::jsonb)"
        " ON CONFLICT (id) DO NOTHING",
        rows,
    )


class PostgresStateStore:
    """``StateStore`` + ``JitStateStore`` + ``EmailMarkStore`` on PostgreSQL (asyncpg pool).

    Options (``[state.postgres]``): ``dsn`` (secret), ``min_pool``, ``max_pool``,
    ``migrate_on_start``, ``command_timeout`` (seconds).
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_pool: int = 1,
        max_pool: int = 5,
        migrate_on_start: bool = False,
        command_timeout: float = 30.0,
        retention_days: int = 0,
        last_used_interval: float = 60.0,
        retries: int = 5,
    ) -> None:
        if not dsn:
            raise ServiceUnavailable("state.postgres.dsn is not set")
        self.dsn = dsn
        self.min_pool = min_pool
        self.max_pool = max(min_pool, max_pool)
        self.migrate_on_start = migrate_on_start
        self.command_timeout = command_timeout
        self._rate_takes = 0
        self.retention_days = retention_days
        self.last_used_interval = last_used_interval
        self.retries = retries
        self.pool: asyncpg.Pool | None = None
        # token id -> monotonic time of this process's last ``last_used`` write.
        self._last_used_written: dict[str, float] = {}

    # -- lifecycle
    async def start(self) -> None:
        if self.pool is not None:
            return
        try:
            self.pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_pool,
                max_size=self.max_pool,
                command_timeout=self.command_timeout,
                reset=reset_plain,
            )
        except DRIVER_ERRORS as exc:
            raise ServiceUnavailable(
                f"Cannot connect to PostgreSQL: {exc}", retry_after=RETRY_AFTER
            ) from exc
        try:
            if self.migrate_on_start:  # on a connection of its own: see reset_plain
                conn = await asyncpg.connect(self.dsn, timeout=self.command_timeout)
                try:
                    await migrate(conn)
                finally:
                    await conn.close()
            async with self.pool.acquire() as conn:
                version = await current_version(conn)
                if version != len(MIGRATIONS):
                    raise ServiceUnavailable(
                        f"the PostgreSQL layout is at version {version}, this scimd-postgres "
                        f"needs {len(MIGRATIONS)}: run `scimd migrate`"
                    )
                if self.retention_days > 0:
                    await conn.execute(
                        "DELETE FROM scimd_state_events WHERE time < $1",
                        _now() - timedelta(days=self.retention_days),
                    )
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()

    async def _run(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """``fn(conn, *args)`` in one transaction; serialization failures rerun it (bounded),
        driver errors become SCIM errors (``scimd_postgres.errors``)."""
        pool = self.pool
        if pool is None:
            raise RuntimeError("PostgresStateStore used before start()")
        attempt = 0
        while True:
            try:
                async with pool.acquire(timeout=self.command_timeout) as conn, conn.transaction():
                    return await fn(conn, *args)
            except ScimError:
                raise
            except DRIVER_ERRORS as exc:
                what = classify(exc)
                if what == RETRY and attempt < self.retries:
                    attempt += 1
                    continue
                if what == RETRY:
                    raise ServiceUnavailable(
                        "The state store is busy; try again", retry_after=1
                    ) from exc
                assert isinstance(what, ScimError)
                if what.status < 500 or isinstance(what, ServiceUnavailable):
                    raise what from exc
                log.error("postgres state store error: %r", exc)
                raise ServiceUnavailable("state store unavailable") from exc

    # -- tokens
    async def create_token(
        self,
        *,
        tenant: str,
        scopes: Sequence[str],
        description: str = "",
        me_user_id: str | None = None,
    ) -> tuple[TokenRecord, str]:
        record, token = new_token(
            tenant=tenant, scopes=scopes, description=description, me_user_id=me_user_id
        )

        async def insert(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO scimd_state_tokens (id, hash, tenant, scopes, description,"
                " me_user_id, created) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                record.id,
                hash_token(token),
                record.tenant,
                " ".join(record.scopes),
                record.description,
                record.me_user_id,
                record.created,
            )

        await self._run(insert)
        return record, token

    async def verify_token(self, token: str) -> TokenRecord | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        return await self._run(self._verify, hash_token(token))

    async def _verify(self, conn: asyncpg.Connection, digest: bytes) -> TokenRecord | None:
        # Looked up by hash: the timing depends only on the hash of the presented token;
        # compare_digest keeps the equality check itself constant-time as well.
        row = await conn.fetchrow(
            "SELECT hash, id, tenant, scopes, description, me_user_id, created, revoked,"
            " last_used FROM scimd_state_tokens WHERE hash = $1",
            digest,
        )
        if row is None or not hmac.compare_digest(bytes(row[0]), digest) or row[7] is not None:
            return None
        record = self._record(list(row)[1:])
        now = time.monotonic()
        last = self._last_used_written.get(record.id)
        if last is None or now - last >= self.last_used_interval:
            self._last_used_written[record.id] = now
            await conn.execute(
                "UPDATE scimd_state_tokens SET last_used = $1 WHERE id = $2", _now(), record.id
            )
        return record

    @staticmethod
    def _record(row: Sequence[Any]) -> TokenRecord:
        return TokenRecord(
            id=row[0],
            tenant=row[1],
            scopes=tuple(row[2].split()),
            description=row[3],
            me_user_id=row[4],
            created=row[5],
            revoked=row[6],
            last_used=row[7],
        )

    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]:
        async def fetch(conn: asyncpg.Connection) -> list[TokenRecord]:
            sql = (
                "SELECT id, tenant, scopes, description, me_user_id, created, revoked,"
                " last_used FROM scimd_state_tokens"
            )
            if tenant is not None:
                rows = await conn.fetch(sql + " WHERE tenant = $1 ORDER BY created, id", tenant)
            else:
                rows = await conn.fetch(sql + " ORDER BY created, id")
            return [self._record(list(r)) for r in rows]

        return await self._run(fetch)

    async def revoke_token(self, token_id: str) -> bool:
        async def revoke(conn: asyncpg.Connection) -> bool:
            status = await conn.execute(
                "UPDATE scimd_state_tokens SET revoked = $1 WHERE id = $2 AND revoked IS NULL",
                _now(),
                token_id,
            )
            return bool(status == "UPDATE 1")

        return await self._run(revoke)

    async def count_tokens(self) -> int:
        async def count(conn: asyncpg.Connection) -> int:
            return int(
                await conn.fetchval("SELECT count(*) FROM scimd_state_tokens WHERE revoked IS NULL")
            )

        return await self._run(count)

    # -- events
    async def record_events(self, events: Sequence[Event]) -> None:
        if not events:
            return

        async def insert(conn: asyncpg.Connection) -> None:
            await insert_events(conn, events)

        await self._run(insert)

    async def list_events(
        self,
        *,
        tenant: str | None = None,
        resource_id: str | None = None,
        type_prefix: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """The newest ``limit`` matching events, oldest first."""
        where: list[str] = []
        params: list[Any] = []

        def bind(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if tenant is not None:
            where.append(f"tenant = {bind(tenant)}")
        if resource_id is not None:
            where.append(f"resource_id = {bind(resource_id)}")
        if type_prefix:
            # A half-open range (C collation) instead of LIKE: uses the index, no escaping.
            upper = type_prefix[:-1] + chr(ord(type_prefix[-1]) + 1)
            where.append(f"type >= {bind(type_prefix)} AND type < {bind(upper)}")
        if since is not None:
            where.append(f"time >= {bind(_utc(since))}")
        sql = (
            "SELECT id, type, time, tenant, resource_type, resource_id, actor, request_id,"
            " changed::text, data::text FROM scimd_state_events"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY time DESC, seq DESC LIMIT {bind(max(0, limit))}"

        async def fetch(conn: asyncpg.Connection) -> list[Event]:
            rows = await conn.fetch(sql, *params)
            return [
                Event(
                    id=r[0],
                    type=r[1],
                    time=r[2],
                    tenant=r[3],
                    resource_type=r[4],
                    resource_id=r[5],
                    actor=r[6],
                    request_id=r[7],
                    changed_attributes=tuple(orjson.loads(r[8])),
                    data=orjson.loads(r[9]),
                )
                for r in reversed(rows)
            ]

        return await self._run(fetch)

    # -- server secrets
    async def get_or_create_secret(self, name: str, size: int = 32) -> bytes:
        async def secret(conn: asyncpg.Connection) -> bytes:
            # Insert-if-absent then read: processes starting together all read the winner.
            await conn.execute(
                "INSERT INTO scimd_state_kv (name, value) VALUES ($1, $2)"
                " ON CONFLICT (name) DO NOTHING",
                name,
                secrets.token_bytes(size),
            )
            return bytes(
                await conn.fetchval("SELECT value FROM scimd_state_kv WHERE name = $1", name)
            )

        return await self._run(secret)

    # -- JIT: identity links, tombstones, replay and idempotency caches
    async def get_identity_link(self, tenant: str, idp: str, subject: str) -> str | None:
        async def get(conn: asyncpg.Connection) -> str | None:
            value = await conn.fetchval(
                "SELECT user_id FROM scimd_jit_links WHERE tenant = $1 AND idp = $2"
                " AND subject = $3",
                tenant,
                idp,
                subject,
            )
            return None if value is None else str(value)

        return await self._run(get)

    async def put_identity_link(
        self, tenant: str, idp: str, subject: str, user_id: str, *, replace: bool = False
    ) -> str:
        conflict = (
            "DO UPDATE SET user_id = EXCLUDED.user_id, created = EXCLUDED.created"
            if replace
            else "DO NOTHING"
        )

        async def put(conn: asyncpg.Connection) -> str:
            await conn.execute(
                "INSERT INTO scimd_jit_links (tenant, idp, subject, user_id, created)"
                f" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, idp, subject) {conflict}",
                tenant,
                idp,
                subject,
                user_id,
                _now(),
            )
            value = await conn.fetchval(
                "SELECT user_id FROM scimd_jit_links WHERE tenant = $1 AND idp = $2"
                " AND subject = $3",
                tenant,
                idp,
                subject,
            )
            return user_id if value is None else str(value)

        return await self._run(put)

    async def identity_links_of(self, tenant: str, user_id: str) -> list[tuple[str, str]]:
        async def fetch(conn: asyncpg.Connection) -> list[tuple[str, str]]:
            rows = await conn.fetch(
                "SELECT idp, subject FROM scimd_jit_links WHERE tenant = $1 AND user_id = $2"
                " ORDER BY idp, subject",
                tenant,
                user_id,
            )
            return [(str(r[0]), str(r[1])) for r in rows]

        return await self._run(fetch)

    async def add_tombstone(self, tenant: str, user_id: str, keys: Sequence[str]) -> None:
        all_keys = sorted({f"id:{user_id}", *keys})

        async def add(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO scimd_jit_tombstones (tenant, key, user_id, deleted)"
                " SELECT $1, k, $2, $3 FROM unnest($4::text[]) AS k"
                " ON CONFLICT (tenant, key) DO UPDATE SET user_id = EXCLUDED.user_id,"
                " deleted = EXCLUDED.deleted",
                tenant,
                user_id,
                _now(),
                all_keys,
            )

        await self._run(add)

    async def find_tombstone(self, tenant: str, keys: Sequence[str]) -> str | None:
        if not keys:
            return None

        async def find(conn: asyncpg.Connection) -> str | None:
            value = await conn.fetchval(
                "SELECT user_id FROM scimd_jit_tombstones WHERE tenant = $1"
                " AND key = ANY($2::text[]) ORDER BY deleted DESC LIMIT 1",
                tenant,
                list(keys),
            )
            return None if value is None else str(value)

        return await self._run(find)

    async def remove_tombstone(self, tenant: str, user_id: str) -> None:
        async def remove(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM scimd_jit_tombstones WHERE tenant = $1 AND user_id = $2",
                tenant,
                user_id,
            )

        await self._run(remove)

    async def claim_replay(self, key: str, expires: datetime) -> bool:
        async def claim(conn: asyncpg.Connection) -> bool:
            await conn.execute("DELETE FROM scimd_jit_replay WHERE expires < $1", _now())
            status = await conn.execute(
                "INSERT INTO scimd_jit_replay (key, expires) VALUES ($1, $2)"
                " ON CONFLICT (key) DO NOTHING",
                key,
                _utc(expires),
            )
            return bool(status == "INSERT 0 1")

        return await self._run(claim)

    async def get_idempotency(self, caller: str, key: str) -> IdempotencyRecord | None:
        async def get(conn: asyncpg.Connection) -> IdempotencyRecord | None:
            row = await conn.fetchrow(
                "SELECT body_sha256, status, response, expires FROM scimd_jit_idempotency"
                " WHERE caller = $1 AND key = $2 AND expires >= $3",
                caller,
                key,
                _now(),
            )
            if row is None:
                return None
            return IdempotencyRecord(
                caller=caller,
                key=key,
                body_sha256=str(row[0]),
                status=int(row[1]),
                response=bytes(row[2]),
                expires=row[3],
            )

        return await self._run(get)

    async def put_idempotency(self, record: IdempotencyRecord) -> None:
        r = record

        async def put(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM scimd_jit_idempotency WHERE expires < $1", _now())
            # The first response recorded for a key stays (like INSERT OR IGNORE).
            await conn.execute(
                "INSERT INTO scimd_jit_idempotency (caller, key, body_sha256, status,"
                " response, expires) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (caller, key) DO NOTHING",
                r.caller,
                r.key,
                r.body_sha256,
                r.status,
                r.response,
                _utc(r.expires),
            )

        await self._run(put)

    # -- JIT: rate-limit token buckets shared by every process on this database
    async def take_rate_token(self, key: str, rate: float, burst: int, now: float) -> float:
        """The bucket row (created full) is read FOR UPDATE, refilled by the time elapsed
        and charged one token when it has one, in one transaction: concurrent takers in
        any process serialise on the row lock."""

        async def take(conn: asyncpg.Connection) -> float:
            await conn.execute(
                "INSERT INTO scimd_jit_rate (key, tokens, updated) VALUES ($1, $2, $3)"
                " ON CONFLICT (key) DO NOTHING",
                key,
                float(burst),
                now,
            )
            row = await conn.fetchrow(
                "SELECT tokens, updated FROM scimd_jit_rate WHERE key = $1 FOR UPDATE", key
            )
            assert row is not None
            last = float(row["updated"])
            tokens = min(float(burst), float(row["tokens"]) + max(0.0, now - last) * rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
            if wait == 0.0:
                tokens -= 1.0
            await conn.execute(
                "UPDATE scimd_jit_rate SET tokens = $2, updated = $3 WHERE key = $1",
                key,
                tokens,
                max(now, last),
            )
            self._rate_takes += 1
            if self._rate_takes % 1000 == 0:
                # Buckets idle long enough to be full again carry no information.
                await conn.execute(
                    "DELETE FROM scimd_jit_rate WHERE updated < $1", now - burst / rate - 60
                )
            return wait

        return await self._run(take)

    async def refund_rate_token(self, key: str, burst: int) -> None:
        async def refund(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE scimd_jit_rate SET tokens = least($2::float8, tokens + 1) WHERE key = $1",
                key,
                float(burst),
            )

        await self._run(refund)

    # -- JIT: emails set by a JIT email change (unverified for link-by-email)
    async def mark_email_unverified(self, tenant: str, user_id: str, email: str) -> None:
        async def mark(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO scimd_jit_email_marks (tenant, user_id, email) VALUES ($1, $2, $3)"
                " ON CONFLICT (tenant, user_id, email) DO NOTHING",
                tenant,
                user_id,
                email,
            )

        await self._run(mark)

    async def email_unverified(self, tenant: str, user_id: str, email: str) -> bool:
        async def find(conn: asyncpg.Connection) -> bool:
            row = await conn.fetchval(
                "SELECT 1 FROM scimd_jit_email_marks"
                " WHERE tenant = $1 AND user_id = $2 AND email = $3",
                tenant,
                user_id,
                email,
            )
            return row is not None

        return await self._run(find)

    async def clear_email_marks(self, tenant: str, user_id: str) -> None:
        async def clear(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM scimd_jit_email_marks WHERE tenant = $1 AND user_id = $2",
                tenant,
                user_id,
            )

        await self._run(clear)
