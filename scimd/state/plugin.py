"""Builtin plugin: the ``sqlite`` state store (``scimd.state.sqlite``)."""

from __future__ import annotations

from scimd.hookspecs import StateStoreFactory, hookimpl
from scimd.settings import Settings
from scimd.state.base import StateStore
from scimd.state.sqlite import SqliteStateStore

__all__ = ["SqliteStateStoreFactory", "scimd_state_stores"]


class SqliteStateStoreFactory:
    """Builds a :class:`SqliteStateStore` on ``state.path``."""

    name = "sqlite"
    description = "SQLite file (state.path); fine for one host, WAL for several workers"

    def __call__(self, settings: Settings) -> StateStore:
        path = settings.state.path
        if not path.is_absolute():
            path = settings.base_dir / path
        return SqliteStateStore(path, retention_days=settings.events.retention_days)


@hookimpl
def scimd_state_stores() -> list[StateStoreFactory]:
    return [SqliteStateStoreFactory()]
