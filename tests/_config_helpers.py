"""Test plugins for the config, plugin-manager and CLI tests (no dependency on the real
embedded store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scimd.backend import Backend, BackendEnv, BackendFactory, Capabilities
from scimd.config import SettingSpec
from scimd.hookspecs import hookimpl
from scimd.plugins import PluginManager
from scimd.settings import Settings


class FakeBackendFactory:
    """A backend factory that records the env it was called with."""

    name = "fake"
    description = "test backend"
    capabilities = Capabilities(sort=False)

    def __init__(self) -> None:
        self.envs: list[BackendEnv] = []

    def __call__(self, env: BackendEnv) -> Backend:
        self.envs.append(env)
        return object()  # type: ignore[return-value]


class FakeBackendPlugin:
    """Provides backend "fake" with declared options in [storage.fake]."""

    def __init__(self) -> None:
        self.factory = FakeBackendFactory()
        self.configured: list[Settings] = []

    @hookimpl
    def scimd_backends(self) -> list[BackendFactory]:
        return [self.factory]

    @hookimpl
    def scimd_setting_declarations(self) -> list[SettingSpec]:
        return [
            SettingSpec("storage.fake", "path", "path", Path("fake.db"), "Database file."),
            SettingSpec("storage.fake", "dsn", "str", "", "Connection string.", secret=True),
            SettingSpec("storage.fake", "pool_size", "int", 4, "Connections.", minimum=1),
            SettingSpec("webhook", "url", "str", "", "Where to POST events."),
        ]

    @hookimpl
    def scimd_configure(self, settings: Settings) -> None:
        self.configured.append(settings)

    @hookimpl
    def scimd_schemas(self) -> list[Path]:
        return [Path("/plugin/schemas/custom.json")]


class NoOptionsBackendPlugin:
    """A backend "bare" that declares no settings: its table is passed through."""

    class Factory:
        name = "bare"
        description = "declares nothing"

        def __call__(self, env: BackendEnv) -> Backend:
            return object()  # type: ignore[return-value]

    @hookimpl
    def scimd_backends(self) -> list[BackendFactory]:
        return [self.Factory()]


def make_plugins(*extra: Any, embedded: bool = True) -> PluginManager:
    """Builtin state store + a stand-in "embedded" backend + the fake plugins."""
    plugins: list[object] = [FakeBackendPlugin()]
    if embedded:
        plugins.append(EmbeddedStandIn())
    plugins.extend(extra)
    return PluginManager.create(builtins=("scimd.state.plugin",), entry_points=False, extra=plugins)


class EmbeddedStandIn:
    """Only a name, so that the default ``storage.backend = "embedded"`` validates in tests
    that must not depend on the real store."""

    class Factory:
        name = "embedded"
        description = "stand-in"

        def __call__(self, env: BackendEnv) -> Backend:
            raise AssertionError("not built in config tests")

    @hookimpl
    def scimd_backends(self) -> list[BackendFactory]:
        return [self.Factory()]
