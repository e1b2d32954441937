"""Shared fixtures: a real scimd application over HTTP.

``scim`` is a running app on the real embedded store and the real SQLite state store, both
in ``tmp_path``, with a read+write token of tenant ``default``; ``make_scim`` builds one with
other settings or an injected backend. The ``Scim`` client helpers live in
``tests/_http_helpers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import Backend
from scimd.plugins import PluginManager
from scimd.settings import Settings
from tests._http_helpers import AiohttpClient, MakeScim, Scim, make_settings, start_scim


@pytest.fixture
def plugins() -> PluginManager:
    """Builtin plugins only (installed entry points must not change core tests)."""
    return PluginManager.create(entry_points=False)


@pytest.fixture
async def make_scim(
    aiohttp_client: AiohttpClient, tmp_path: Path, plugins: PluginManager
) -> AsyncIterator[MakeScim]:
    """Build a running app: ``await make_scim(settings=..., backend=...)``."""

    async def build(
        *,
        settings: Settings | None = None,
        backend: Backend | None = None,
        **sections: Any,
    ) -> Scim:
        s = settings or make_settings(tmp_path, **sections)
        return await start_scim(aiohttp_client, s, plugins, backend)

    yield build


@pytest.fixture
async def scim(make_scim: MakeScim) -> Scim:
    """A running app on the embedded store with a read+write token of tenant default."""
    return await make_scim()
