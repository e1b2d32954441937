"""Opening a ``postgres`` backend on a test database, for the modules that drive the
backend directly (without the HTTP app of ``conftest.make_scim``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scimd_postgres.backend import PostgresBackend

from scimd.backend import BackendEnv
from scimd.schema.model import ResourceType, SchemaRegistry

__all__ = ["open_backend", "rtype_of"]


async def open_backend(
    dsn: str, registry: SchemaRegistry, base_dir: Path, **options: Any
) -> PostgresBackend:
    """A started backend on ``dsn`` (``options``: further backend options, e.g.
    ``max_pool``); the caller closes it."""
    backend = PostgresBackend(
        BackendEnv(options={"dsn": dsn, **options}, registry=registry, base_dir=base_dir)
    )
    await backend.start()
    return backend


def rtype_of(backend: PostgresBackend, name: str) -> ResourceType:
    """The resource type ``name`` of the backend's registry."""
    rtype = backend.registry.resource_type(name)
    assert rtype is not None
    return rtype
