"""The aiohttp application and the server process(es).

``create_app`` wires settings, plugins, the schema registry, the backend, the state store,
the service layer, the middleware pipeline and the routes into one ``web.Application``;
backend and state store are started and stopped in a ``cleanup_ctx``. ``serve`` runs it:
one process, or ``server.workers`` processes sharing the port with ``SO_REUSEPORT`` (each
builds its own application), with graceful shutdown and JSON logging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from scimd.auth import TokenAuthenticator
from scimd.backend import Backend
from scimd.events import EventEmitter
from scimd.http.bulk import BulkViews
from scimd.http.context import RUNTIME, AuthPolicy, Runtime
from scimd.http.discovery import DiscoveryViews
from scimd.http.health import healthz
from scimd.http.me import MeViews
from scimd.http.middlewares import build_middlewares
from scimd.http.resources import ResourceViews
from scimd.http.search import SearchViews
from scimd.plugins import PluginManager
from scimd.schema.loader import load_registry
from scimd.schema.model import SchemaRegistry
from scimd.service import Service
from scimd.settings import LoggingSettings, Settings
from scimd.state.base import StateStore

__all__ = [
    "JsonLogFormatter",
    "configure_logging",
    "create_app",
    "load_schema_registry",
    "serve",
    "server_ssl_context",
]

log = logging.getLogger("scimd.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_schema_registry(settings: Settings, plugins: PluginManager) -> SchemaRegistry:
    """Builtin schemas + plugin schema files + ``schema.files``/``schema.resource_types``."""

    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else settings.base_dir / p

    schema_files = [*plugins.schema_files(), *(resolve(p) for p in settings.schema.files)]
    rt_files = [resolve(p) for p in settings.schema.resource_types]
    return load_registry(schema_files=schema_files, resource_type_files=rt_files)


def _ci(segment: str) -> str:
    """A route segment that matches ``segment`` in any case (Entra/Okta send ``/users``)."""
    return "{ep:(?i:" + re.escape(segment) + ")}"


def _fixed(segment: str) -> str:
    # Same as _ci, for endpoints that are not resource types (the match key is unused).
    return "{_" + re.sub(r"\W", "", segment).lower() + ":(?i:" + re.escape(segment) + ")}"


def create_app(
    settings: Settings,
    plugins: PluginManager,
    *,
    registry: SchemaRegistry | None = None,
    backend: Backend | None = None,
    state: StateStore | None = None,
) -> web.Application:
    """Build the application. Explicit ``registry``/``backend``/``state`` override what the
    settings and plugins would build (tests inject failing or shared objects this way).
    The backend and state store are started when the application starts and closed when
    it stops (``cleanup_ctx``), whoever built them."""
    registry = registry if registry is not None else load_schema_registry(settings, plugins)
    backend = backend if backend is not None else plugins.backend(settings, registry)
    state = state if state is not None else plugins.state_store(settings)
    events = EventEmitter(state, plugins.event_sinks(), log_events=settings.events.log)
    service = Service(registry, backend, state, settings, events)
    endpoints = {rt.endpoint.strip("/").lower(): rt for rt in registry.resource_types.values()}
    runtime = Runtime(
        settings=settings,
        registry=registry,
        backend=backend,
        state=state,
        service=service,
        authenticator=TokenAuthenticator(state),
        endpoints=endpoints,
    )
    # The largest body any endpoint accepts; each endpoint checks its own limit.
    client_max_size = max(settings.server.max_payload_size, settings.bulk.max_payload_size)
    app = web.Application(middlewares=build_middlewares(runtime), client_max_size=client_max_size)
    app[RUNTIME] = runtime
    _add_routes(app, runtime)
    from scimd.jit.http import mount_jit

    mount_jit(app, runtime)  # POST /jit/v1/logins, outside the SCIM base path
    app.cleanup_ctx.append(_lifecycle(runtime))
    return app


def _add_routes(app: web.Application, runtime: Runtime) -> None:
    base = runtime.settings.server.base_path.rstrip("/")
    router = app.router
    policies = runtime.policies

    def add(path: str, method: str, handler: Handler, policy: AuthPolicy) -> None:
        resource = router.add_resource(path)
        route = resource.add_route(method, handler)
        policies[route] = policy

    def add_resource(path: str, routes: list[tuple[str, Handler, AuthPolicy]]) -> None:
        resource = router.add_resource(path)
        for method, handler, policy in routes:
            policies[resource.add_route(method, handler)] = policy

    resources = ResourceViews(runtime)
    discovery = DiscoveryViews(runtime)
    search = SearchViews(runtime)
    me = MeViews(runtime, resources)
    bulk = BulkViews(runtime)

    add("/healthz", "GET", healthz, "public")
    # Resource types first: they are the hot path and the router tries routes in order.
    for rtype in runtime.registry.resource_types.values():
        seg = _ci(rtype.endpoint.strip("/"))
        add_resource(
            f"{base}/{seg}",
            [("GET", resources.list, "read"), ("POST", resources.create, "write")],
        )
        # ".search" before "{id}": POST /Users/.search is a search, GET on it is a 405.
        add_resource(f"{base}/{seg}/.search", [("POST", resources.search, "read")])
        add_resource(
            # Not ".search": GET /Users/.search is a 405, not a lookup of id ".search".
            f"{base}/{seg}/{{id:(?!\\.search$)[^/]+}}",
            [
                ("GET", resources.get, "read"),
                ("PUT", resources.replace, "write"),
                ("PATCH", resources.patch, "write"),
                ("DELETE", resources.delete, "write"),
            ],
        )
    add_resource(f"{base}/.search", [("POST", search.root_search, "read")])
    # GET on the base path queries every resource type (RFC 7644 3.4.2.1).
    add_resource(base or "/", [("GET", search.root_list, "read")])
    add_resource(
        f"{base}/{_fixed('ServiceProviderConfig')}",
        [("GET", discovery.service_provider_config, "discovery")],
    )
    add_resource(
        f"{base}/{_fixed('ResourceTypes')}", [("GET", discovery.list_resource_types, "discovery")]
    )
    add_resource(
        f"{base}/{_fixed('ResourceTypes')}/{{id}}",
        [("GET", discovery.get_resource_type, "discovery")],
    )
    add_resource(f"{base}/{_fixed('Schemas')}", [("GET", discovery.list_schemas, "discovery")])
    add_resource(f"{base}/{_fixed('Schemas')}/{{id}}", [("GET", discovery.get_schema, "discovery")])
    add_resource(
        f"{base}/{_fixed('Me')}",
        [
            ("GET", me.get, "read"),
            ("PUT", me.replace, "write"),
            ("PATCH", me.patch, "write"),
            ("DELETE", me.delete, "write"),
        ],
    )
    add_resource(f"{base}/{_fixed('Bulk')}", [("POST", bulk.bulk, "write")])


def _lifecycle(runtime: Runtime) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await runtime.state.start()
        try:
            await runtime.backend.start()
            # A backend sharing the state store's database records audit events in the
            # write's own transaction (``Capabilities.events_in_transaction``).
            attach = getattr(runtime.backend, "attach_state_store", None)
            if attach is not None:
                attach(runtime.state)
            try:
                yield
            finally:
                await runtime.backend.aclose()
        finally:
            await runtime.state.aclose()

    return lifecycle


# -- logging ---------------------------------------------------------------------------

_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(cfg: LoggingSettings) -> None:
    """Root logging per ``[logging]``: level, ``json`` or ``text`` lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if cfg.format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(cfg.level.upper())


# -- serving ---------------------------------------------------------------------------


async def _bootstrap_token(settings: Settings, plugins: PluginManager) -> None:
    """First start with no token at all: create one for the default tenant, print it once
    on stdout (never in the log)."""
    state = plugins.state_store(settings)
    await state.start()
    try:
        if await state.count_tokens() == 0:
            record, token = await state.create_token(
                tenant=settings.auth.default_tenant,
                scopes=("read", "write"),
                description="bootstrap token",
            )
            log.info("created bootstrap token %s for tenant %s", record.id, record.tenant)
            print(  # shown once to the operator; on purpose not logged
                f"scimd: bootstrap token for tenant {record.tenant!r} (shown once): {token}",
                flush=True,
            )
    finally:
        await state.aclose()


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``server.tls_*`` (None: plain HTTP).

    With ``tls_client_ca_file``, a client certificate is requested but optional
    (``CERT_OPTIONAL``): SCIM clients without one still connect, and one that is sent must
    chain to that CA (``mtls`` JIT callers then pin its public key)."""
    server = settings.server
    if not server.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(server.tls_cert_file, server.tls_key_file or None)
    if server.tls_client_ca_file:
        context.load_verify_locations(cafile=server.tls_client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _run_worker(settings: Settings, plugins: PluginManager, reuse_port: bool) -> None:
    app = create_app(settings, plugins)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        ssl_context=server_ssl_context(settings),
        reuse_port=reuse_port or None,
        shutdown_timeout=settings.server.shutdown_timeout,
        access_log=logging.getLogger("scimd.access") if settings.logging.access_log else None,
        # Called once the socket listens: the line operators (and tests) wait for.
        print=lambda _msg: log.info(
            "worker %d ready on %s:%d", os.getpid(), settings.server.host, settings.server.port
        ),
        handle_signals=True,
    )


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM to this worker if the parent dies (a killed
    supervisor must not leave orphan workers holding the port)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's forwarding still applies
        pass


def _child_main(settings: Settings, plugins: PluginManager) -> None:
    _die_with_parent()
    configure_logging(settings.logging)
    # A second Ctrl-C during shutdown must not print a traceback per worker.
    with contextlib.suppress(KeyboardInterrupt):
        _run_worker(settings, plugins, True)


def serve(settings: Settings, plugins: PluginManager) -> None:
    """Run the server until SIGINT/SIGTERM (blocking).

    ``server.workers`` > 1 forks that many processes, each building its own application
    and listening on the same port with ``SO_REUSEPORT``; the parent forwards SIGTERM and
    SIGINT to them and waits. If a worker dies, the others are stopped and ``serve``
    raises ``SystemExit`` with a non-zero status. Cursor secrets and tokens are shared
    through the state store, so any worker can serve any request.
    """
    configure_logging(settings.logging)
    if settings.auth.bootstrap_token:
        asyncio.run(_bootstrap_token(settings, plugins))
    workers = max(1, settings.server.workers)
    log.info(
        "scimd listening on %s:%d%s with %d worker(s), backend %s",
        settings.server.host,
        settings.server.port,
        settings.server.base_path,
        workers,
        settings.storage.backend,
    )
    if workers == 1:
        _run_worker(settings, plugins, False)
        return
    ctx = multiprocessing.get_context("fork")
    children = [
        ctx.Process(target=_child_main, args=(settings, plugins), name=f"scimd-worker-{i}")
        for i in range(workers)
    ]
    for child in children:
        child.start()
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    try:
        from multiprocessing.connection import wait

        alive = list(children)
        while alive:
            wait([c.sentinel for c in alive])
            for child in list(alive):
                if not child.is_alive():
                    alive.remove(child)
                    if not stopping and child.exitcode not in (0, None):
                        log.error("worker %s exited with %s; stopping", child.name, child.exitcode)
                        failed = True
                        forward(signal.SIGTERM, None)
    finally:
        for child in children:
            child.join(settings.server.shutdown_timeout + 5)
    if failed:
        raise SystemExit(1)
