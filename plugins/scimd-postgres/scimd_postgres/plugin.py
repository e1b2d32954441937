"""The ``postgres`` backend as a scimd plugin (entry point ``postgres`` in group ``scimd``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scimd.backend import Backend, BackendEnv, BackendFactory, Capabilities
from scimd.hookspecs import hookimpl

if TYPE_CHECKING:
    from scimd.config import SettingSpec

__all__ = ["PostgresFactory", "scimd_backends", "scimd_setting_declarations"]

SECTION = "storage.postgres"


class PostgresFactory:
    """Builds the ``postgres`` backend (asyncpg pool)."""

    name = "postgres"
    description = (
        "PostgreSQL store (asyncpg, full filter pushdown, keyset cursors, several scimd "
        "processes per database); options: dsn, min_pool, max_pool, migrate_on_start, "
        "command_timeout, retries"
    )
    capabilities = Capabilities()

    def __call__(self, env: BackendEnv) -> Backend:
        from scimd_postgres.backend import PostgresBackend

        return PostgresBackend(env)


@hookimpl
def scimd_backends() -> list[BackendFactory]:
    """The PostgreSQL backend."""
    return [PostgresFactory()]


@hookimpl
def scimd_setting_declarations() -> list[SettingSpec]:
    """The ``[storage.postgres]`` options."""
    from scimd.config import SettingSpec

    return [
        SettingSpec(
            SECTION,
            "dsn",
            "str",
            "",
            "libpq connection URI (postgresql://user@host:5432/db); a secret: give it as "
            '{ "$env" = "SCIMD_PG_DSN" } or { "$file" = "..." }.',
            secret=True,
        ),
        SettingSpec(SECTION, "min_pool", "int", 1, "Connections kept open.", minimum=0),
        SettingSpec(
            SECTION, "max_pool", "int", 10, "Most connections per scimd process.", minimum=1
        ),
        SettingSpec(
            SECTION,
            "migrate_on_start",
            "bool",
            False,
            "Apply pending migrations at start (otherwise run `scimd migrate`).",
        ),
        SettingSpec(
            SECTION,
            "command_timeout",
            "duration",
            30.0,
            "Longest a statement (or waiting for a pool connection) may take.",
            minimum=0.001,
        ),
        SettingSpec(
            SECTION,
            "retries",
            "int",
            5,
            "Reruns of a transaction after a serialization failure or deadlock.",
            minimum=0,
        ),
    ]
