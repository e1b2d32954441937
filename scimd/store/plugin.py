"""The embedded store as a builtin plugin (registered by ``scimd.plugins``)."""

from __future__ import annotations

from scimd.backend import Backend, BackendEnv, BackendFactory
from scimd.hookspecs import hookimpl

__all__ = ["EmbeddedFactory", "scimd_backends"]


class EmbeddedFactory:
    """Builds the ``embedded`` backend (SQLite, zero setup)."""

    name = "embedded"
    description = (
        "Embedded SQLite store (WAL, full filter pushdown, keyset cursors); "
        "options: path, readers, busy_timeout, mmap_size, inline_budget"
    )

    def __call__(self, env: BackendEnv) -> Backend:
        from scimd.store.sqlite import SQLiteBackend

        return SQLiteBackend(env)


@hookimpl
def scimd_backends() -> list[BackendFactory]:
    """The embedded SQLite backend."""
    return [EmbeddedFactory()]
