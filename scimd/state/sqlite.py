"""The default state store: one SQLite file (stdlib ``sqlite3``), WAL mode.

All database work runs on one dedicated thread per store (a single-worker executor), so the
event loop never blocks on disk I/O and the connection is only ever used from the thread that
opened it. Several scimd processes may share the file: WAL lets readers proceed during a
write, ``busy_timeout`` waits for the writer, and schema migrations take an immediate write
lock so that concurrent first starts do not race.

Tokens are ``scimd_`` followed by 32 random bytes (``secrets.token_urlsafe(32)``). Only the
SHA-256 of a token is stored. A slow password hash (argon2, bcrypt) exists to make guessing a
*low-entropy* secret expensive; a 256-bit random token cannot be guessed whatever the hash
costs, so a fast hash loses nothing and keeps verification on every request cheap.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from scimd.errors import ServiceUnavailable
from scimd.sqlite_wal import enter_wal
from scimd.state.base import (
    TOKEN_PREFIX,
    Event,
    IdempotencyRecord,
    TokenRecord,
    hash_token,
    new_token,
)

__all__ = ["TOKEN_PREFIX", "SqliteStateStore", "StateStoreError"]


T = TypeVar("T")

# Migration n brings the schema from user_version n to n + 1. Append only.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            scopes TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            me_user_id TEXT,
            created TEXT NOT NULL,
            revoked TEXT,
            last_used TEXT
        )""",
        "CREATE INDEX tokens_tenant ON tokens (tenant)",
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            time TEXT NOT NULL,
            tenant TEXT NOT NULL,
            resource_type TEXT,
            resource_id TEXT,
            actor TEXT,
            request_id TEXT,
            changed TEXT NOT NULL DEFAULT '[]',
            data TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX events_tenant_time ON events (tenant, time)",
        "CREATE INDEX events_time ON events (time)",
        "CREATE INDEX events_resource ON events (resource_id)",
        "CREATE INDEX events_type ON events (type)",
        """CREATE TABLE kv (
            name TEXT PRIMARY KEY,
            value BLOB NOT NULL,
            created TEXT NOT NULL
        )""",
    ),
    # 1 -> 2: the JIT hook (identity links, tombstones, replay and idempotency caches).
    (
        """CREATE TABLE jit_links (
            tenant TEXT NOT NULL,
            idp TEXT NOT NULL,
            subject TEXT NOT NULL,
            user_id TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (tenant, idp, subject)
        )""",
        "CREATE INDEX jit_links_user ON jit_links (tenant, user_id)",
        """CREATE TABLE jit_tombstones (
            tenant TEXT NOT NULL,
            key TEXT NOT NULL,
            user_id TEXT NOT NULL,
            deleted TEXT NOT NULL,
            PRIMARY KEY (tenant, key)
        )""",
        "CREATE INDEX jit_tombstones_user ON jit_tombstones (tenant, user_id)",
        """CREATE TABLE jit_replay (
            key TEXT PRIMARY KEY,
            expires TEXT NOT NULL
        )""",
        "CREATE INDEX jit_replay_expires ON jit_replay (expires)",
        """CREATE TABLE jit_idempotency (
            caller TEXT NOT NULL,
            key TEXT NOT NULL,
            body_sha256 TEXT NOT NULL,
            status INTEGER NOT NULL,
            response BLOB NOT NULL,
            expires TEXT NOT NULL,
            PRIMARY KEY (caller, key)
        )""",
        "CREATE INDEX jit_idempotency_expires ON jit_idempotency (expires)",
    ),
    # 2 -> 3: emails set by a JIT email change, unverified for link-by-email.
    (
        """CREATE TABLE jit_email_marks (
            tenant TEXT NOT NULL,
            user_id TEXT NOT NULL,
            email TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (tenant, user_id, email)
        )""",
    ),
    # 3 -> 4: JIT rate-limit buckets shared by the processes using this file.
    (
        """CREATE TABLE jit_rate (
            key TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated REAL NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class StateStoreError(Exception):
    """The state database cannot be used (newer schema, unreadable file)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(dt: datetime) -> str:
    # Fixed-width UTC text sorts chronologically, so indexes on it serve range queries.
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class SqliteStateStore:
    """``scimd.state.base.StateStore`` on a SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        retention_days: int = 0,
        last_used_interval: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self.last_used_interval = last_used_interval
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._rate_takes = 0
        # token id -> monotonic time of the last ``last_used`` write; touched only on the
        # store thread. Losing it (restart) costs one extra write per token.
        self._last_used_written: dict[str, float] = {}

    # -- lifecycle
    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="scimd-state")
        await self._run(self._open)

    async def aclose(self) -> None:
        if self._executor is None:
            return
        await self._run(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("SqliteStateStore used before start()")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except sqlite3.OperationalError as exc:
            # Locked beyond busy_timeout, disk full, file gone: a transient condition for
            # the client, never a 500 with a driver message.
            raise ServiceUnavailable("state store unavailable") from exc

    def _open(self) -> None:
        if self._conn is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            enter_wal(conn, 10.0)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._migrate(conn)
            if self.retention_days > 0:
                cutoff = _ts(_now() - timedelta(days=self.retention_days))
                conn.execute("DELETE FROM events WHERE time < ?", (cutoff,))
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateStoreError(
                    f"{self.path}: state schema version {version} is newer than this scimd "
                    f"supports ({SCHEMA_VERSION}); upgrade scimd"
                )
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteStateStore used before start()")
        return self._conn

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
        await self._run(self._insert_token, record, hash_token(token))
        return record, token

    def _insert_token(self, record: TokenRecord, digest: bytes) -> None:
        self._db.execute(
            "INSERT INTO tokens (id, hash, tenant, scopes, description, me_user_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                digest,
                record.tenant,
                " ".join(record.scopes),
                record.description,
                record.me_user_id,
                _ts(record.created),
            ),
        )

    async def verify_token(self, token: str) -> TokenRecord | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        return await self._run(self._verify, hash_token(token))

    def _verify(self, digest: bytes) -> TokenRecord | None:
        # The lookup is by hash, so its timing depends only on the hash of the presented
        # token, which tells an attacker nothing about any stored token; the final
        # compare_digest keeps the equality check itself constant-time as well.
        row = self._db.execute(
            "SELECT hash, id, tenant, scopes, description, me_user_id, created, revoked,"
            " last_used FROM tokens WHERE hash = ?",
            (digest,),
        ).fetchone()
        if row is None or not hmac.compare_digest(row[0], digest) or row[7] is not None:
            return None
        record = self._record(row[1:])
        now = time.monotonic()
        last = self._last_used_written.get(record.id)
        if last is None or now - last >= self.last_used_interval:
            self._last_used_written[record.id] = now
            self._db.execute(
                "UPDATE tokens SET last_used = ? WHERE id = ?", (_ts(_now()), record.id)
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
            created=_dt(row[5]) or _now(),
            revoked=_dt(row[6]),
            last_used=_dt(row[7]),
        )

    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]:
        return await self._run(self._list_tokens, tenant)

    def _list_tokens(self, tenant: str | None) -> list[TokenRecord]:
        sql = (
            "SELECT id, tenant, scopes, description, me_user_id, created, revoked, last_used"
            " FROM tokens"
        )
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params = (tenant,)
        rows = self._db.execute(sql + " ORDER BY created, id", params).fetchall()
        return [self._record(r) for r in rows]

    async def revoke_token(self, token_id: str) -> bool:
        return await self._run(self._revoke, token_id)

    def _revoke(self, token_id: str) -> bool:
        cur = self._db.execute(
            "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
            (_ts(_now()), token_id),
        )
        return cur.rowcount == 1

    async def count_tokens(self) -> int:
        return await self._run(self._count_tokens)

    def _count_tokens(self) -> int:
        row = self._db.execute("SELECT count(*) FROM tokens WHERE revoked IS NULL").fetchone()
        return int(row[0])

    # -- events
    async def record_events(self, events: Sequence[Event]) -> None:
        if events:
            await self._run(self._record_events, list(events))

    def _record_events(self, events: list[Event]) -> None:
        rows = [
            (
                e.id,
                e.type,
                _ts(e.time),
                e.tenant,
                e.resource_type,
                e.resource_id,
                e.actor,
                e.request_id,
                json.dumps(list(e.changed_attributes)),
                json.dumps(e.data, default=str),
            )
            for e in events
        ]
        db = self._db
        db.execute("BEGIN")
        try:
            # OR IGNORE: recording the same event twice (a retried flush) is harmless.
            db.executemany(
                "INSERT OR IGNORE INTO events (id, type, time, tenant, resource_type,"
                " resource_id, actor, request_id, changed, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

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
        return await self._run(self._list_events, tenant, resource_id, type_prefix, since, limit)

    def _list_events(
        self,
        tenant: str | None,
        resource_id: str | None,
        type_prefix: str | None,
        since: datetime | None,
        limit: int,
    ) -> list[Event]:
        where: list[str] = []
        params: list[Any] = []
        if tenant is not None:
            where.append("tenant = ?")
            params.append(tenant)
        if resource_id is not None:
            where.append("resource_id = ?")
            params.append(resource_id)
        if type_prefix:
            # A half-open range instead of LIKE: uses the index and needs no escaping.
            upper = type_prefix[:-1] + chr(ord(type_prefix[-1]) + 1)
            where.append("type >= ? AND type < ?")
            params += [type_prefix, upper]
        if since is not None:
            where.append("time >= ?")
            params.append(_ts(since))
        sql = (
            "SELECT id, type, time, tenant, resource_type, resource_id, actor, request_id,"
            " changed, data FROM events"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, seq DESC LIMIT ?"
        params.append(max(0, limit))
        rows = self._db.execute(sql, params).fetchall()
        return [
            Event(
                id=r[0],
                type=r[1],
                time=_dt(r[2]) or _now(),
                tenant=r[3],
                resource_type=r[4],
                resource_id=r[5],
                actor=r[6],
                request_id=r[7],
                changed_attributes=tuple(json.loads(r[8])),
                data=json.loads(r[9]),
            )
            for r in reversed(rows)
        ]

    # -- server secrets
    async def get_or_create_secret(self, name: str, size: int = 32) -> bytes:
        return await self._run(self._secret, name, size)

    def _secret(self, name: str, size: int) -> bytes:
        # INSERT OR IGNORE then SELECT: when two processes start together, both read the
        # value of whichever insert won.
        self._db.execute(
            "INSERT OR IGNORE INTO kv (name, value, created) VALUES (?, ?, ?)",
            (name, secrets.token_bytes(size), _ts(_now())),
        )
        row = self._db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
        return bytes(row[0])

    # -- JIT: identity links, tombstones, replay and idempotency caches
    async def get_identity_link(self, tenant: str, idp: str, subject: str) -> str | None:
        return await self._run(self._get_link, tenant, idp, subject)

    def _get_link(self, tenant: str, idp: str, subject: str) -> str | None:
        row = self._db.execute(
            "SELECT user_id FROM jit_links WHERE tenant = ? AND idp = ? AND subject = ?",
            (tenant, idp, subject),
        ).fetchone()
        return str(row[0]) if row else None

    async def put_identity_link(
        self, tenant: str, idp: str, subject: str, user_id: str, *, replace: bool = False
    ) -> str:
        return await self._run(self._put_link, tenant, idp, subject, user_id, replace)

    def _put_link(self, tenant: str, idp: str, subject: str, user_id: str, replace: bool) -> str:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        self._db.execute(
            f"{verb} INTO jit_links (tenant, idp, subject, user_id, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (tenant, idp, subject, user_id, _ts(_now())),
        )
        return self._get_link(tenant, idp, subject) or user_id

    async def identity_links_of(self, tenant: str, user_id: str) -> list[tuple[str, str]]:
        return await self._run(self._links_of, tenant, user_id)

    def _links_of(self, tenant: str, user_id: str) -> list[tuple[str, str]]:
        rows = self._db.execute(
            "SELECT idp, subject FROM jit_links WHERE tenant = ? AND user_id = ?"
            " ORDER BY idp, subject",
            (tenant, user_id),
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    async def add_tombstone(self, tenant: str, user_id: str, keys: Sequence[str]) -> None:
        await self._run(self._add_tombstone, tenant, user_id, list(keys))

    def _add_tombstone(self, tenant: str, user_id: str, keys: list[str]) -> None:
        now = _ts(_now())
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO jit_tombstones (tenant, key, user_id, deleted)"
                " VALUES (?, ?, ?, ?)",
                [(tenant, k, user_id, now) for k in {f"id:{user_id}", *keys}],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def find_tombstone(self, tenant: str, keys: Sequence[str]) -> str | None:
        if not keys:
            return None
        return await self._run(self._find_tombstone, tenant, list(keys))

    def _find_tombstone(self, tenant: str, keys: list[str]) -> str | None:
        marks = ", ".join("?" for _ in keys)
        row = self._db.execute(
            f"SELECT user_id FROM jit_tombstones WHERE tenant = ? AND key IN ({marks})"
            " ORDER BY deleted DESC LIMIT 1",
            (tenant, *keys),
        ).fetchone()
        return str(row[0]) if row else None

    async def remove_tombstone(self, tenant: str, user_id: str) -> None:
        await self._run(
            lambda: self._db.execute(
                "DELETE FROM jit_tombstones WHERE tenant = ? AND user_id = ?", (tenant, user_id)
            )
        )

    async def claim_replay(self, key: str, expires: datetime) -> bool:
        return await self._run(self._claim_replay, key, expires)

    def _claim_replay(self, key: str, expires: datetime) -> bool:
        now = _ts(_now())
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM jit_replay WHERE expires < ?", (now,))
            cur = db.execute(
                "INSERT OR IGNORE INTO jit_replay (key, expires) VALUES (?, ?)",
                (key, _ts(expires)),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return cur.rowcount == 1

    async def get_idempotency(self, caller: str, key: str) -> IdempotencyRecord | None:
        return await self._run(self._get_idempotency, caller, key)

    def _get_idempotency(self, caller: str, key: str) -> IdempotencyRecord | None:
        row = self._db.execute(
            "SELECT body_sha256, status, response, expires FROM jit_idempotency"
            " WHERE caller = ? AND key = ? AND expires >= ?",
            (caller, key, _ts(_now())),
        ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            caller=caller,
            key=key,
            body_sha256=str(row[0]),
            status=int(row[1]),
            response=bytes(row[2]),
            expires=_dt(row[3]) or _now(),
        )

    async def put_idempotency(self, record: IdempotencyRecord) -> None:
        await self._run(self._put_idempotency, record)

    def _put_idempotency(self, r: IdempotencyRecord) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM jit_idempotency WHERE expires < ?", (_ts(_now()),))
            db.execute(
                "INSERT OR IGNORE INTO jit_idempotency (caller, key, body_sha256, status,"
                " response, expires) VALUES (?, ?, ?, ?, ?, ?)",
                (r.caller, r.key, r.body_sha256, r.status, r.response, _ts(r.expires)),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- JIT: rate-limit token buckets shared by every process on this file
    async def take_rate_token(self, key: str, rate: float, burst: int, now: float) -> float:
        return await self._run(self._take_rate_token, key, rate, burst, now)

    def _take_rate_token(self, key: str, rate: float, burst: int, now: float) -> float:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT tokens, updated FROM jit_rate WHERE key = ?", (key,)
            ).fetchone()
            tokens, last = (float(row[0]), float(row[1])) if row else (float(burst), now)
            tokens = min(float(burst), tokens + max(0.0, now - last) * rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
            if wait == 0.0:
                tokens -= 1.0
            db.execute(
                "INSERT OR REPLACE INTO jit_rate (key, tokens, updated) VALUES (?, ?, ?)",
                (key, tokens, max(now, last)),
            )
            self._rate_takes += 1
            if self._rate_takes % 1000 == 0:
                # Buckets idle long enough to be full again carry no information.
                db.execute("DELETE FROM jit_rate WHERE updated < ?", (now - burst / rate - 60,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return wait

    async def refund_rate_token(self, key: str, burst: int) -> None:
        await self._run(
            lambda: self._db.execute(
                "UPDATE jit_rate SET tokens = min(?, tokens + 1.0) WHERE key = ?",
                (float(burst), key),
            )
        )

    # -- JIT: emails set by a JIT email change (unverified for link-by-email)
    async def mark_email_unverified(self, tenant: str, user_id: str, email: str) -> None:
        await self._run(
            lambda: self._db.execute(
                "INSERT OR IGNORE INTO jit_email_marks (tenant, user_id, email, created)"
                " VALUES (?, ?, ?, ?)",
                (tenant, user_id, email, _ts(_now())),
            )
        )

    async def email_unverified(self, tenant: str, user_id: str, email: str) -> bool:
        return await self._run(self._email_unverified, tenant, user_id, email)

    def _email_unverified(self, tenant: str, user_id: str, email: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM jit_email_marks WHERE tenant = ? AND user_id = ? AND email = ?",
            (tenant, user_id, email),
        ).fetchone()
        return row is not None

    async def clear_email_marks(self, tenant: str, user_id: str) -> None:
        await self._run(
            lambda: self._db.execute(
                "DELETE FROM jit_email_marks WHERE tenant = ? AND user_id = ?", (tenant, user_id)
            )
        )
