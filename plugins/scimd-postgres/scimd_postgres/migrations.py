"""Versioned SQL migrations (``scimd_postgres/migrations/NNNN_name.sql``).

``migrate(conn)`` applies the missing ones in order, each in its own transaction, under a
session advisory lock (so several scimd processes starting together apply each migration
once), and records them in ``scimd_schema_version``. Running it again is a no-op. A
database migrated by a newer scimd-postgres (a version this one does not know) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg  # type: ignore[import-untyped]

from scimd_postgres.bulk import restore_bulk_indexes

__all__ = ["LOCK_KEY", "MIGRATIONS", "Migration", "MigrationError", "current_version", "migrate"]

LOCK_KEY = 0x5C1D_0000_0001
"""The ``pg_advisory_lock`` key held while migrating."""

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


class MigrationError(Exception):
    """The database layout cannot be used by this version of the plugin."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def _load() -> tuple[Migration, ...]:
    found: list[Migration] = []
    for entry in resources.files("scimd_postgres").joinpath("migrations").iterdir():
        m = _NAME.fullmatch(entry.name)
        if m is not None:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions are not 1..n: {versions}")
    return tuple(found)


MIGRATIONS: tuple[Migration, ...] = _load()

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS scimd_schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def current_version(conn: asyncpg.Connection) -> int:
    """The newest applied migration (0 for an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('scimd_schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM scimd_schema_version"))


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply the missing migrations; return the ones applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_VERSION_TABLE)
        applied = {int(r[0]) for r in await conn.fetch("SELECT version FROM scimd_schema_version")}
        newest = len(MIGRATIONS)
        if applied and max(applied) > newest:
            raise MigrationError(
                f"the database is at layout version {max(applied)}; this scimd-postgres knows "
                f"up to {newest} (upgrade scimd-postgres)"
            )
        if applied:  # the indexes an interrupted bulk import dropped, before newer layouts
            await restore_bulk_indexes(conn)
        done: list[Migration] = []
        for mig in MIGRATIONS:
            if mig.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO scimd_schema_version (version, name) VALUES ($1, $2)",
                    mig.version,
                    mig.name,
                )
            done.append(mig)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
