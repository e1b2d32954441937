"""The plugin module named by the entry point: hook implementations only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scimd.backend import Backend, BackendEnv, BackendFactory
from scimd.hookspecs import hookimpl
from scimd_example_backend.backend import CAPABILITIES, MemoryBackend

if TYPE_CHECKING:
    from scimd.config import SettingSpec

__all__ = ["MemoryFactory", "scimd_backends", "scimd_setting_declarations"]


class MemoryFactory:
    """Builds the ``example-memory`` backend."""

    name = "example-memory"
    description = "In-memory store (example plugin; data is lost at exit); options: max_results"
    capabilities = CAPABILITIES

    def __call__(self, env: BackendEnv) -> Backend:
        return MemoryBackend(max_results=int(env.options.get("max_results", 1000)))


@hookimpl
def scimd_backends() -> list[BackendFactory]:
    return [MemoryFactory()]


@hookimpl
def scimd_setting_declarations() -> list[SettingSpec]:
    from scimd.config import SettingSpec

    return [
        SettingSpec(
            "storage.example-memory",
            "max_results",
            "int",
            1000,
            "Largest page served.",
            minimum=1,
        )
    ]
