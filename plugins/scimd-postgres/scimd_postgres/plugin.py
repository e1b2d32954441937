"""The ``postgres`` backend as a scimd plugin (entry point ``postgres`` in group ``scimd``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scimd.backend import Backend, BackendEnv, BackendFactory, Capabilities
from scimd.hookspecs import StateStoreFactory, hookimpl

if TYPE_CHECKING:
    from scimd.config import SettingSpec
    from scimd.settings import Settings
    from scimd.state.base import StateStore

__all__ = [
    "PostgresFactory",
    "PostgresStateStoreFactory",
    "scimd_backends",
    "scimd_setting_declarations",
    "scimd_state_stores",
]

SECTION = "storage.postgres"
STATE_SECTION = "state.postgres"


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
    """The ``[storage.postgres]`` and ``[state.postgres]`` options."""
    from scimd.config import SettingSpec

    return [
        SettingSpec(
            STATE_SECTION,
            "dsn",
            "str",
            "",
            "libpq connection URI of the state store's database (usually the one in "
            '[storage.postgres]); a secret: give it as { "$env" = "SCIMD_PG_DSN" }.',
            secret=True,
        ),
        SettingSpec(STATE_SECTION, "min_pool", "int", 1, "Connections kept open.", minimum=0),
        SettingSpec(
            STATE_SECTION, "max_pool", "int", 5, "Most connections per scimd process.", minimum=1
        ),
        SettingSpec(
            STATE_SECTION,
            "migrate_on_start",
            "bool",
            False,
            "Apply pending migrations at start (otherwise run `scimd migrate`).",
        ),
        SettingSpec(
            STATE_SECTION,
            "command_timeout",
            "duration",
            30.0,
            "Longest a statement (or waiting for a pool connection) may take.",
            minimum=0.001,
        ),
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


class PostgresStateStoreFactory:
    """Builds the ``postgres`` state store from ``[state.postgres]``."""

    name = "postgres"
    description = (
        "PostgreSQL (tokens, events, secrets, JIT state shared by every scimd process); "
        "options: dsn, min_pool, max_pool, migrate_on_start, command_timeout"
    )

    def __call__(self, settings: Settings) -> StateStore:
        from scimd_postgres.state import PostgresStateStore

        opts = settings.state.options
        dsn = opts.get("dsn")
        return PostgresStateStore(
            dsn if isinstance(dsn, str) else "",
            min_pool=int(opts.get("min_pool", 1)),
            max_pool=int(opts.get("max_pool", 5)),
            migrate_on_start=bool(opts.get("migrate_on_start", False)),
            command_timeout=float(opts.get("command_timeout", 30.0)),
            retention_days=settings.events.retention_days,
        )


@hookimpl
def scimd_state_stores() -> list[StateStoreFactory]:
    """The PostgreSQL state store."""
    return [PostgresStateStoreFactory()]
