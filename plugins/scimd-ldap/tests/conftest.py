"""Fixtures: one throwaway slapd per session, one new base DN per test, and
``scim``/``make_scim`` with the interface of the core suite's (``<repo>/tests/conftest.py``)
building the app on the ``ldap`` backend (StartTLS with the session's CA, multi-tenant)
and the SQLite state store."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import scimd_ldap.plugin
from scimd_ldap.testing import (
    ROOT_DN,
    ROOT_PASSWORD,
    SlapdServer,
    plain_slapd_server,
    slapd_server,
)

from scimd.backend import Backend
from scimd.plugins import PluginManager
from scimd.settings import Settings, StorageSettings
from tests._http_helpers import AiohttpClient, MakeScim, Scim, make_settings, start_scim

__all__ = [
    "fresh_base",
    "ldap_options",
    "make_scim",
    "plain_slapd_server",
    "plugins",
    "scim",
    "slapd_server",
]


@pytest.fixture
def fresh_base(slapd_server: SlapdServer) -> str:
    """The DN of a new, empty organizational unit (no test sees another's data)."""
    return slapd_server.fresh_base()


@pytest.fixture
def ldap_options(slapd_server: SlapdServer, fresh_base: str) -> dict[str, Any]:
    """``[storage.ldap]`` on the session's slapd: StartTLS verified with its CA."""
    return {
        "url": slapd_server.url,
        "start_tls": True,
        "tls_ca_file": slapd_server.ca_file,
        "bind_dn": ROOT_DN,
        "bind_password": ROOT_PASSWORD,
        "base_dn": fresh_base,
        "multi_tenant": True,
        "pool_size": 4,
        "timeout": 10.0,
    }


@pytest.fixture
def plugins() -> PluginManager:
    """Builtin plugins and this one (other installed entry points must not change tests)."""
    return PluginManager.create(entry_points=False, extra=[scimd_ldap.plugin])


@pytest.fixture
async def make_scim(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    plugins: PluginManager,
    ldap_options: dict[str, Any],
) -> AsyncIterator[MakeScim]:
    """Build a running app on the LDAP bridge: ``await make_scim(settings=..., backend=...)``.

    As in the core suite, every app of one test shares its storage (one base DN per test).
    Settings on the embedded store are moved to LDAP; an injected ``backend`` stays.
    """
    storage = StorageSettings(backend="ldap", options={"ldap": ldap_options})

    async def build(
        *,
        settings: Settings | None = None,
        backend: Backend | None = None,
        **sections: Any,
    ) -> Scim:
        if settings is None:
            s = make_settings(tmp_path, **{"storage": storage, **sections})
        elif settings.storage.backend == "embedded":
            s = dataclasses.replace(settings, storage=storage)
        else:
            s = settings
        if "ldap" not in plugins.backend_factories():  # a module's own ``plugins``
            plugins.register(scimd_ldap.plugin)
        return await start_scim(aiohttp_client, s, plugins, backend)

    yield build


@pytest.fixture
async def scim(make_scim: MakeScim) -> Scim:
    """A running app on the LDAP bridge with a read+write token of tenant default."""
    return await make_scim()
