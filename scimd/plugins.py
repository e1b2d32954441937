"""The plugin manager: builtin plugins + ``scimd`` entry points behind a typed facade.

Loading order (tox ``manager.py`` style):

1. the hook specifications of :mod:`scimd.hookspecs`;
2. the builtin plugins, :data:`BUILTIN_PLUGINS` (the embedded store, the SQLite state store),
   registered like any other plugin;
3. every entry point of group ``scimd`` except the names in ``plugins.block``;
4. ``check_pending()`` (an implementation of an unknown hook is an error, usually a typo),
   and a check that no implementation is a coroutine function: hooks run synchronously at
   startup, and pluggy would take an un-awaited coroutine for a result.

The rest of scimd never calls ``pm.hook`` directly; it calls the typed methods below.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from scimd import hookspecs

if TYPE_CHECKING:
    from scimd.backend import Backend, BackendFactory
    from scimd.config import SettingSpec
    from scimd.hookspecs import EventSink, StateStoreFactory
    from scimd.schema.model import SchemaRegistry
    from scimd.settings import Settings
    from scimd.state.base import StateStore

__all__ = ["BUILTIN_PLUGINS", "ENTRY_POINT_GROUP", "PluginError", "PluginInfo", "PluginManager"]

ENTRY_POINT_GROUP = "scimd"
BUILTIN_PLUGINS: tuple[str, ...] = ("scimd.store.plugin", "scimd.state.plugin")
"""Modules registered first, under their module name."""


class PluginError(Exception):
    """A plugin cannot be loaded or is inconsistent; scimd refuses to start."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``scimd plugins`` shows about one registered plugin."""

    name: str
    dist: str | None = None
    """Distribution that provides it (None for builtins)."""
    version: str | None = None
    builtin: bool = False
    backends: tuple[tuple[str, str, Any], ...] = ()
    """(name, description, capabilities or None) of each backend factory."""
    state_stores: tuple[tuple[str, str], ...] = ()
    hooks: tuple[str, ...] = ()


@dataclass(slots=True)
class _Registered:
    name: str
    plugin: object
    dist: str | None = None
    version: str | None = None
    builtin: bool = False
    backends: list[BackendFactory] = field(default_factory=list)
    state_stores: list[StateStoreFactory] = field(default_factory=list)


class PluginManager:
    """A typed facade over ``pluggy.PluginManager("scimd")``."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("scimd")
        self.manager.add_hookspecs(hookspecs)
        self._registered: dict[str, _Registered] = {}
        self._backends: dict[str, tuple[BackendFactory, str]] | None = None
        self._state_stores: dict[str, tuple[StateStoreFactory, str]] | None = None

    @classmethod
    def create(
        cls,
        *,
        block: Iterable[str] = (),
        builtins: Sequence[str] = BUILTIN_PLUGINS,
        entry_points: bool = True,
        extra: Sequence[object] = (),
    ) -> PluginManager:
        """Register ``builtins``, then ``extra`` plugin objects (tests), then the entry points
        not in ``block``; then validate."""
        pm = cls()
        for module_name in builtins:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise PluginError(f"builtin plugin {module_name}: cannot import: {exc}") from exc
            pm._add(module_name, module, builtin=True)
        for obj in extra:
            pm._add(_plugin_name(obj), obj)
        if entry_points:
            pm._load_entry_points(frozenset(block))
        pm.check()
        return pm

    # -- registration
    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one more plugin object (a module or an instance) and validate."""
        self._add(name or _plugin_name(plugin), plugin)
        self.check()

    def _add(
        self,
        name: str,
        plugin: object,
        *,
        builtin: bool = False,
        dist: str | None = None,
        version: str | None = None,
    ) -> None:
        if name in self._registered:
            raise PluginError(f"plugin {name!r} is registered twice")
        try:
            self.manager.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r}: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r}: {exc}") from exc
        self._registered[name] = _Registered(name, plugin, dist, version, builtin)
        self._backends = self._state_stores = None

    def _load_entry_points(self, block: frozenset[str]) -> None:
        seen: set[str] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in block or ep.name in seen:
                # Several copies of the same distribution on sys.path list it twice.
                continue
            seen.add(ep.name)
            dist = ep.dist.metadata["Name"] if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            where = f"entry point {ep.name!r} ({ep.value}" + (f", from {dist})" if dist else ")")
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(f"{where}: cannot load: {exc!r}") from exc
            self._add(ep.name, plugin, dist=dist, version=version)

    def check(self) -> None:
        """Refuse unknown hooks and coroutine hook implementations."""
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{exc} (is the hook name misspelled?)") from exc
        for caller_name in dir(self.manager.hook):
            if not caller_name.startswith("scimd_"):
                continue
            caller = getattr(self.manager.hook, caller_name)
            for impl in caller.get_hookimpls():
                fn = impl.function
                if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
                    first = (caller.spec and caller.spec.opts.get("firstresult")) or False
                    why = " (a firstresult hook would stop at the coroutine)" if first else ""
                    raise PluginError(
                        f"plugin {impl.plugin_name!r}: {caller_name} is 'async def'; scimd hooks "
                        f"are synchronous and run at startup{why}. Return the objects that do "
                        "async work instead."
                    )

    # -- hooks, typed
    def configure(self, settings: Settings) -> None:
        """Call ``scimd_configure`` on every plugin."""
        self.manager.hook.scimd_configure(settings=settings)

    def setting_declarations(self) -> list[SettingSpec]:
        return [spec for specs in self.manager.hook.scimd_setting_declarations() for spec in specs]

    def backend_factories(self) -> dict[str, BackendFactory]:
        """Installed backend factories by name."""
        return {name: f for name, (f, _) in self._collect_backends().items()}

    def state_store_factories(self) -> dict[str, StateStoreFactory]:
        return {name: f for name, (f, _) in self._collect_state_stores().items()}

    def backend(self, settings: Settings, registry: SchemaRegistry) -> Backend:
        """Build the backend named by ``storage.backend`` (not started)."""
        from scimd.backend import BackendEnv

        factories = self.backend_factories()
        name = settings.storage.backend
        if name not in factories:
            raise PluginError(
                f"storage.backend: unknown backend {name!r}; installed: "
                + (", ".join(sorted(factories)) or "none")
            )
        env = BackendEnv(
            options=settings.storage.backend_options(),
            registry=registry,
            base_dir=settings.base_dir,
            settings=settings,
        )
        return factories[name](env)

    def state_store(self, settings: Settings) -> StateStore:
        """Build the state store named by ``state.backend`` (not started)."""
        factories = self.state_store_factories()
        name = settings.state.backend
        if name not in factories:
            raise PluginError(
                f"state.backend: unknown state store {name!r}; installed: "
                + (", ".join(sorted(factories)) or "none")
            )
        return factories[name](settings)

    def schema_files(self) -> list[Path]:
        """Schema files contributed by plugins, builtins first."""
        results = self.manager.hook.scimd_schemas()
        # pluggy calls the last registered first; registration order is more natural here.
        return [Path(p) for paths in reversed(results) for p in paths]

    def event_sinks(self) -> list[EventSink]:
        return [s for sinks in reversed(self.manager.hook.scimd_event_sinks()) for s in sinks]

    def list_plugins(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution and what it provides."""
        self._collect_backends()
        self._collect_state_stores()
        out = []
        for reg in self._registered.values():
            hooks = tuple(
                sorted(
                    c.name
                    for c in self.manager.get_hookcallers(reg.plugin) or ()
                    if c.name.startswith("scimd_")
                )
            )
            out.append(
                PluginInfo(
                    name=reg.name,
                    dist=reg.dist,
                    version=reg.version,
                    builtin=reg.builtin,
                    backends=tuple(
                        (f.name, f.description, getattr(f, "capabilities", None))
                        for f in reg.backends
                    ),
                    state_stores=tuple((f.name, f.description) for f in reg.state_stores),
                    hooks=hooks,
                )
            )
        return out

    # -- internals
    def _per_plugin(self, hook_name: str) -> list[tuple[str, list[Any]]]:
        """Call a zero-argument list hook plugin by plugin, to know who provided what."""
        caller = getattr(self.manager.hook, hook_name)
        out = []
        for impl in reversed(caller.get_hookimpls()):  # registration order
            result = impl.function()
            if result is None:
                continue
            if not isinstance(result, list | tuple):
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: {hook_name} must return a list, "
                    f"got {type(result).__name__}"
                )
            out.append((impl.plugin_name, list(result)))
        return out

    def _collect_backends(self) -> dict[str, tuple[BackendFactory, str]]:
        if self._backends is None:
            self._backends = self._collect_factories("scimd_backends", "backend", "backends")
        return self._backends

    def _collect_state_stores(self) -> dict[str, tuple[StateStoreFactory, str]]:
        if self._state_stores is None:
            self._state_stores = self._collect_factories(
                "scimd_state_stores", "state store", "state_stores"
            )
        return self._state_stores

    def _collect_factories(self, hook: str, what: str, field: str) -> dict[str, tuple[Any, str]]:
        """Named factories from every plugin's ``hook``, each name provided once; also
        records them on the plugin's registration (``field``) for ``scimd plugins``."""
        found: dict[str, tuple[Any, str]] = {}
        for reg in self._registered.values():
            setattr(reg, field, [])
        for plugin_name, factories in self._per_plugin(hook):
            for f in factories:
                _check_factory(plugin_name, hook, f)
                if f.name in found:
                    raise PluginError(
                        f"{what} {f.name!r} is provided by both {found[f.name][1]!r} and "
                        f"{plugin_name!r}; block one of them with plugins.block"
                    )
                found[f.name] = (f, plugin_name)
                getattr(self._registered[plugin_name], field).append(f)
        return found


def _check_factory(plugin_name: str, hook: str, factory: Any) -> None:
    name = getattr(factory, "name", None)
    if not isinstance(name, str) or not name or not callable(factory):
        raise PluginError(
            f"plugin {plugin_name!r}: {hook} returned {factory!r}, which is not a factory "
            "(a callable with a non-empty 'name')"
        )


def _plugin_name(obj: object) -> str:
    if isinstance(obj, ModuleType):
        return obj.__name__
    name = getattr(obj, "__name__", None)
    if isinstance(name, str):
        return name
    return f"{type(obj).__module__}.{type(obj).__qualname__}@{id(obj):x}"
