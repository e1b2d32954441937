"""scimd.plugins: builtins, entry points (a real dist-info on sys.path), block list,
refusal of async hook implementations, the typed facade."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import BackendEnv, Capabilities
from scimd.hookspecs import hookimpl
from scimd.plugins import BUILTIN_PLUGINS, PluginError, PluginManager
from scimd.settings import Settings, StateSettings, StorageSettings
from scimd.state.sqlite import SqliteStateStore
from tests._config_helpers import FakeBackendPlugin, make_plugins

PLUGIN_SOURCE = """
from scimd.hookspecs import hookimpl


class Factory:
    name = "{backend}"
    description = "from a distribution"

    def __call__(self, env):
        return ("built", env)


@hookimpl
def scimd_backends():
    return [Factory()]
"""


def make_dist(
    root: Path, dist: str, ep_name: str, module: str, backend: str, body: str | None = None
) -> None:
    """A minimal installed distribution: a module and a .dist-info with an entry point."""
    (root / f"{module}.py").write_text(body or PLUGIN_SOURCE.format(backend=backend))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[scimd]\n{ep_name} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    for name in ("scimd_testplug_a", "scimd_testplug_b", "scimd_testplug_bad"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return root


def test_builtins_are_registered_first() -> None:
    assert BUILTIN_PLUGINS == ("scimd.store.plugin", "scimd.state.plugin")
    pm = PluginManager.create(builtins=("scimd.state.plugin",), entry_points=False)
    (info,) = pm.list_plugins()
    assert info.name == "scimd.state.plugin"
    assert info.builtin
    assert info.state_stores == (
        ("sqlite", "SQLite file (state.path); fine for one host, WAL for several workers"),
    )
    assert "sqlite" in pm.state_store_factories()


def test_missing_builtin_is_a_clear_error() -> None:
    with pytest.raises(PluginError, match=r"builtin plugin scimd\.nope: cannot import"):
        PluginManager.create(builtins=("scimd.nope",), entry_points=False)


def test_entry_points_are_loaded_with_their_distribution(site: Path) -> None:
    make_dist(site, "scimd-testplug-a", "testa", "scimd_testplug_a", "alpha")
    pm = PluginManager.create(builtins=("scimd.state.plugin",))
    infos = {i.name: i for i in pm.list_plugins()}
    assert infos["testa"].dist == "scimd-testplug-a"
    assert infos["testa"].version == "1.2.3"
    assert not infos["testa"].builtin
    assert [b[0] for b in infos["testa"].backends] == ["alpha"]
    assert "alpha" in pm.backend_factories()


def test_block_list_skips_entry_points(site: Path) -> None:
    make_dist(site, "scimd-testplug-a", "testa", "scimd_testplug_a", "alpha")
    make_dist(site, "scimd-testplug-b", "testb", "scimd_testplug_b", "beta")
    pm = PluginManager.create(builtins=("scimd.state.plugin",), block=["testa"])
    names = {i.name for i in pm.list_plugins()}
    assert "testb" in names
    assert "testa" not in names
    assert "alpha" not in pm.backend_factories()
    assert "scimd_testplug_a" not in sys.modules  # blocked plugins are not even imported


def test_broken_entry_point_names_itself(site: Path) -> None:
    make_dist(site, "scimd-testplug-bad", "bad", "scimd_testplug_bad", "x", body="1/0\n")
    with pytest.raises(PluginError, match=r"entry point 'bad' .*scimd-testplug-bad.*cannot load"):
        PluginManager.create(builtins=(), entry_points=True)


class AsyncFirst:
    @hookimpl
    async def scimd_backends(self) -> list[Any]:
        return []


class AsyncConfigure:
    @hookimpl
    async def scimd_configure(self, settings: Settings) -> None:
        return None


@pytest.mark.parametrize("plugin", [AsyncFirst(), AsyncConfigure()])
def test_async_hookimpl_is_refused(plugin: object) -> None:
    with pytest.raises(PluginError, match="is 'async def'; scimd hooks are synchronous"):
        PluginManager.create(builtins=(), entry_points=False, extra=[plugin])


def test_async_hookimpl_registered_later_is_refused() -> None:
    pm = PluginManager.create(builtins=(), entry_points=False)
    with pytest.raises(PluginError, match="async def"):
        pm.register(AsyncConfigure())


class Misspelled:
    @hookimpl
    def scimd_backend(self) -> list[Any]:
        return []


def test_unknown_hook_is_refused() -> None:
    with pytest.raises(PluginError, match=r"scimd_backend.*misspelled"):
        PluginManager.create(builtins=(), entry_points=False, extra=[Misspelled()])


def test_duplicate_backend_names_are_an_error() -> None:
    pm = PluginManager.create(
        builtins=(), entry_points=False, extra=[FakeBackendPlugin(), FakeBackendPlugin()]
    )
    with pytest.raises(PluginError, match="backend 'fake' is provided by both"):
        pm.backend_factories()


class NotAList:
    @hookimpl
    def scimd_backends(self) -> Any:
        return "oops"


def test_hook_returning_a_non_list_is_an_error() -> None:
    pm = PluginManager.create(builtins=(), entry_points=False, extra=[NotAList()])
    with pytest.raises(PluginError, match="must return a list"):
        pm.backend_factories()


def test_backend_is_built_with_a_backend_env(tmp_path: Path) -> None:
    plugin = FakeBackendPlugin()
    pm = PluginManager.create(builtins=(), entry_points=False, extra=[plugin])
    settings = Settings(
        storage=StorageSettings(backend="fake", options={"fake": {"pool_size": 3}}),
        base_dir=tmp_path,
    )
    registry: Any = object()
    pm.backend(settings, registry)
    (env,) = plugin.factory.envs
    assert isinstance(env, BackendEnv)
    assert env.options == {"pool_size": 3}
    assert env.registry is registry
    assert env.base_dir == tmp_path
    assert env.settings is settings


def test_unknown_backend_lists_installed() -> None:
    pm = make_plugins()
    settings = Settings(storage=StorageSettings(backend="mongo"))
    with pytest.raises(PluginError, match="unknown backend 'mongo'; installed: embedded, fake"):
        pm.backend(settings, object())  # type: ignore[arg-type]


def test_state_store_is_built(tmp_path: Path) -> None:
    pm = make_plugins()
    store = pm.state_store(Settings(state=StateSettings(path=tmp_path / "s.db")))
    assert isinstance(store, SqliteStateStore)
    with pytest.raises(PluginError, match="unknown state store 'redis'; installed: sqlite"):
        pm.state_store(Settings(state=StateSettings(backend="redis")))


class Sink:
    async def emit(self, events: Any) -> None:
        return None


class SinkPlugin:
    sink = Sink()

    @hookimpl
    def scimd_event_sinks(self) -> list[Any]:
        return [self.sink]

    @hookimpl
    def scimd_schemas(self) -> list[Path]:
        return [Path("/second.json")]


def test_schema_files_and_event_sinks_in_registration_order() -> None:
    sinks = SinkPlugin()
    pm = PluginManager.create(builtins=(), entry_points=False, extra=[FakeBackendPlugin(), sinks])
    assert pm.schema_files() == [Path("/plugin/schemas/custom.json"), Path("/second.json")]
    assert pm.event_sinks() == [sinks.sink]


def test_list_plugins_shows_capabilities_and_hooks() -> None:
    pm = PluginManager.create(builtins=(), entry_points=False, extra=[FakeBackendPlugin()])
    (info,) = pm.list_plugins()
    ((name, description, caps),) = info.backends
    assert (name, description) == ("fake", "test backend")
    assert caps == Capabilities(sort=False)
    assert "scimd_setting_declarations" in info.hooks
    assert "scimd_configure" in info.hooks


def test_setting_declarations_are_collected() -> None:
    pm = PluginManager.create(builtins=(), entry_points=False, extra=[FakeBackendPlugin()])
    names = {s.name for s in pm.setting_declarations()}
    assert {"storage.fake.path", "storage.fake.dsn", "webhook.url"} <= names


def test_registering_the_same_name_twice_is_an_error() -> None:
    pm = PluginManager.create(builtins=(), entry_points=False)
    plugin = FakeBackendPlugin()
    pm.register(plugin, name="x")
    with pytest.raises(PluginError, match="registered twice"):
        pm.register(FakeBackendPlugin(), name="x")


def test_a_module_docstring_plugin(tmp_path: Path, site: Path) -> None:
    """Real plugin modules (not instances) work through entry points; covered above with
    dist-info, here through ``register`` of an imported module."""
    (site / "scimd_testplug_a.py").write_text(textwrap.dedent(PLUGIN_SOURCE.format(backend="m")))
    import importlib

    module = importlib.import_module("scimd_testplug_a")
    pm = PluginManager.create(builtins=(), entry_points=False)
    pm.register(module)
    assert list(pm.backend_factories()) == ["m"]
