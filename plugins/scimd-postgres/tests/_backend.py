"""Opening a ``postgres`` backend on a test database, for the modules that drive the
backend directly (without the HTTP app of ``conftest.make_scim``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scimd_postgres.backend import PostgresBackend

from scimd.backend import BackendEnv, OpContext, Query
from scimd.query.evaluate import matches
from scimd.query.parse import parse_filter
from scimd.schema.model import ResourceType, SchemaRegistry

__all__ = ["answers", "open_backend", "rtype_of"]


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


async def answers(
    backend: PostgresBackend, ctx: OpContext, rtype: ResourceType, filters: list[str]
) -> dict[str, set[str]]:
    """filter -> the userNames it finds among the (at most 100) stored resources, each
    asserted equal to what the reference evaluator (``scimd.query.evaluate``) finds."""
    stored = (await backend.query(ctx, rtype, Query(count=100))).resources
    got: dict[str, set[str]] = {}
    for text in filters:
        flt = parse_filter(text, rtype)
        page = await backend.query(ctx, rtype, Query(filter=flt, count=100))
        got[text] = {r["userName"] for r in page.resources}
        assert got[text] == {r["userName"] for r in stored if matches(flt, r)}, text
    return got
