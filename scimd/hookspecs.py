"""scimd's pluggy hook specifications.

Hooks *configure*; typed objects *work* (ARCHITECTURE, core idea 4). Every hook here runs at
startup, synchronously, and returns factories, paths or declarations; per-request work goes
through the objects they return (``Backend``, ``StateStore``, ``EventSink``), never through
pluggy. ``scimd.plugins.PluginManager`` refuses to start when an implementation of any of
these hooks is a coroutine function: pluggy would take the un-awaited coroutine for a result.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` and published
under the ``scimd`` entry-point group::

    # pyproject.toml of the plugin
    [project.entry-points.scimd]
    postgres = "scimd_postgres.plugin"

    # scimd_postgres/plugin.py
    from scimd.hookspecs import hookimpl

    @hookimpl
    def scimd_backends():
        return [PostgresBackendFactory()]

None of these hooks is ``firstresult``: every list-returning hook collects the lists of every
plugin, and names (backend, state store) must be unique across plugins.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:
    from scimd.backend import BackendFactory
    from scimd.config import SettingSpec
    from scimd.settings import Settings
    from scimd.state.base import Event, StateStore

__all__ = [
    "EventSink",
    "StateStoreFactory",
    "hookimpl",
    "hookspec",
    "scimd_backends",
    "scimd_configure",
    "scimd_event_sinks",
    "scimd_schemas",
    "scimd_setting_declarations",
    "scimd_state_stores",
]

hookspec = pluggy.HookspecMarker("scimd")
hookimpl = pluggy.HookimplMarker("scimd")


class StateStoreFactory(Protocol):
    """Registered by plugins through :func:`scimd_state_stores`: a name and a constructor.

    The store is selected by ``state.backend``; its options are ``settings.state.options``
    (the ``[state.<name>]`` table, secrets resolved).
    """

    name: str
    description: str

    def __call__(self, settings: Settings) -> StateStore: ...


@runtime_checkable
class EventSink(Protocol):
    """Receives provisioning events after they are recorded in the state store (webhooks,
    RFC 8417/9967 SETs, message queues). ``emit`` must not raise for delivery failures: it
    retries or logs them itself."""

    async def emit(self, events: Sequence[Event]) -> None: ...


@hookspec
def scimd_setting_declarations() -> list[SettingSpec]:
    """Declare configuration keys read by the plugin.

    Each :class:`scimd.config.SettingSpec` names a section and a key, a type, a default and a
    description. Backend and state-store options live in ``storage.<backend>`` and
    ``state.<store>`` sections (``[storage.postgres] dsn = ...``); any other section name a
    plugin declares is delivered in ``Settings.extra``. Declared keys are validated (unknown
    keys are errors), can be overridden with ``SCIMD_<SECTION>_<KEY>`` environment variables,
    are listed by ``scimd show-config`` (secrets masked) and must be documented by the plugin.

    :return: the setting declarations of this plugin.

    .. versionadded:: 0.1
    """


@hookspec
def scimd_backends() -> list[BackendFactory]:
    """Register resource storage backends.

    The backend named by ``storage.backend`` is built once at startup by calling its factory
    with a :class:`scimd.backend.BackendEnv`. A factory may expose a ``capabilities``
    attribute (:class:`scimd.backend.Capabilities`) so that ``scimd plugins`` can show it
    without building the backend.

    :return: backend factories; each ``name`` must be unique among installed plugins.

    .. versionadded:: 0.1
    """


@hookspec
def scimd_state_stores() -> list[StateStoreFactory]:
    """Register state stores (tokens, events, JIT links; see ``scimd.state.base``).

    The store named by ``state.backend`` is built once at startup. The builtin store is
    ``sqlite``.

    :return: state store factories; each ``name`` must be unique among installed plugins.

    .. versionadded:: 0.1
    """


@hookspec
def scimd_schemas() -> list[Path]:
    """Contribute extra schema JSON files (custom schemas, schema extensions).

    The files have the form ``/Schemas`` serves (RFC 7643 section 7) and are loaded after
    the builtin schemas and before the files listed in ``schema.files``.

    :return: absolute paths of schema JSON files shipped with the plugin.

    .. versionadded:: 0.1
    """


@hookspec
def scimd_event_sinks() -> list[EventSink]:
    """Register event sinks that receive every provisioning event.

    Sinks are called after events are recorded in the state store, off the request path.

    :return: event sinks (objects with ``async def emit(events)``).

    .. versionadded:: 0.1
    """


@hookspec
def scimd_configure(settings: Settings) -> None:
    """Called once with the validated settings, after every plugin is registered and before
    any backend or state store is built.

    Use it to read the plugin's own section (``settings.extra``) or fail early: raising
    ``scimd.config.ConfigError`` reports a configuration error with exit code 2.

    :param settings: the effective, validated settings.

    .. versionadded:: 0.1
    """
