"""/ServiceProviderConfig reflects the backend's capabilities as they are after the backend
started (a gateway backend learns them from its upstream at start), not at app creation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scimd.backend import BackendEnv
from scimd.schema.loader import builtin_registry
from scimd.store.sqlite import SQLiteBackend
from tests._http_helpers import MakeScim, make_settings


class LateCapabilities(SQLiteBackend):
    """Declares no sort and no etag until ``start()``, then the real capabilities."""

    async def start(self) -> None:
        await super().start()
        self.capabilities = dataclasses.replace(self.capabilities, sort=True, etag=True)


async def test_spc_is_built_from_capabilities_after_start(
    make_scim: MakeScim, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    backend = LateCapabilities(
        BackendEnv(
            options={"path": str(tmp_path / "scimd.db")},
            registry=builtin_registry(),
            base_dir=tmp_path,
            settings=settings,
        )
    )
    backend.capabilities = dataclasses.replace(backend.capabilities, sort=False, etag=False)
    scim = await make_scim(settings=settings, backend=backend)
    status, doc = await scim.call("GET", "/ServiceProviderConfig")
    assert status == 200
    assert doc["sort"]["supported"] is True
    assert doc["etag"]["supported"] is True
