"""Fixtures: one throwaway PostgreSQL cluster per session, one new database per test, and
``scim``/``make_scim`` with the interface of the core suite's (``<repo>/tests/conftest.py``)
building the app on the ``postgres`` backend and the ``postgres`` state store."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import scimd_postgres.plugin
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.testing import PostgresCluster, postgres_cluster

from scimd.backend import Backend, BackendEnv
from scimd.plugins import PluginManager
from scimd.schema.loader import load_registry
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.settings import Settings, StateSettings, StorageSettings
from scimd.testing import build_contract_registry
from tests._http_helpers import AiohttpClient, MakeScim, Scim, make_settings, start_scim

__all__ = [
    "fresh_dsn",
    "make_scim",
    "one_connection_backend",
    "pg_template",
    "plugins",
    "postgres_cluster",
    "scim",
]


@pytest.fixture(scope="session")
def pg_template(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A database with every migration applied, copied by ``fresh_dsn`` (fast)."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]
    from scimd_postgres.migrations import migrate

    name = "scimd_template"
    postgres_cluster.psql(f'CREATE DATABASE "{name}" TEMPLATE template0')

    async def run() -> None:
        conn = await asyncpg.connect(postgres_cluster.dsn(name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    yield name


@pytest.fixture
def fresh_dsn(postgres_cluster: PostgresCluster) -> str:
    """The DSN of a new, empty database (no test sees another's data)."""
    return postgres_cluster.create_database()


@pytest.fixture
def pg_dsn(postgres_cluster: PostgresCluster, pg_template: str) -> str:
    """The DSN of a new, migrated database."""
    return postgres_cluster.create_database(template=pg_template)


def postgres_sections(dsn: str) -> dict[str, Any]:
    """``storage`` and ``state`` settings on the PostgreSQL database ``dsn``."""
    return {
        "storage": StorageSettings(
            backend="postgres", options={"postgres": {"dsn": dsn, "max_pool": 4}}
        ),
        "state": StateSettings(backend="postgres", options={"dsn": dsn, "max_pool": 2}),
    }


@pytest.fixture
def registry() -> SchemaRegistry:
    """The built-in schemas (RFC 7643 User, Group, EnterpriseUser)."""
    return load_registry()


@pytest.fixture
def users(registry: SchemaRegistry) -> ResourceType:
    rt = registry.resource_type("User")
    assert rt is not None
    return rt


@pytest.fixture
def plugins() -> PluginManager:
    """Builtin plugins and this one (other installed entry points must not change tests)."""
    return PluginManager.create(entry_points=False, extra=[scimd_postgres.plugin])


@pytest.fixture
async def make_scim(
    aiohttp_client: AiohttpClient, tmp_path: Path, plugins: PluginManager, pg_dsn: str
) -> AsyncIterator[MakeScim]:
    """Build a running app on PostgreSQL: ``await make_scim(settings=..., backend=...)``.

    As in the core suite, every app of one test shares its storage (one database per test).
    Settings on the embedded store are moved to PostgreSQL; an injected ``backend`` stays.
    """

    async def build(
        *,
        settings: Settings | None = None,
        backend: Backend | None = None,
        **sections: Any,
    ) -> Scim:
        pg = postgres_sections(pg_dsn)
        if settings is None:
            s = make_settings(tmp_path, **{**pg, **sections})
        elif settings.storage.backend == "embedded":
            s = dataclasses.replace(settings, **pg)
        else:
            s = settings
        if "postgres" not in plugins.backend_factories():  # a module's own ``plugins``
            plugins.register(scimd_postgres.plugin)
        return await start_scim(aiohttp_client, s, plugins, backend)

    yield build


@pytest.fixture
async def scim(make_scim: MakeScim) -> Scim:
    """A running app on PostgreSQL with a read+write token of tenant default."""
    return await make_scim()


@pytest.fixture
async def one_connection_backend(fresh_dsn: str, tmp_path: Path) -> AsyncIterator[PostgresBackend]:
    """A started backend on a new database (migrated at start, the contract suite's
    schemas) whose pools hold one connection each: a statement logger on a pool's
    connection sees every statement that pool sends."""
    b = PostgresBackend(
        BackendEnv(
            options={"dsn": fresh_dsn, "migrate_on_start": True, "min_pool": 1, "max_pool": 1},
            registry=build_contract_registry(tmp_path),
            base_dir=tmp_path,
        )
    )
    await b.start()
    yield b
    await b.aclose()
