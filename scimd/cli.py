"""The ``scimd`` command.

::

    scimd serve        [-c FILE] [--workers N] [--host H] [--port P]
    scimd token create [-c FILE] [--tenant T] [--scope read|write]... [--description D] [--me ID]
    scimd token list   [-c FILE] [--tenant T] [--json]
    scimd token revoke [-c FILE] TOKEN_ID
    scimd check-config [-c FILE]
    scimd migrate      [-c FILE]
    scimd import       [-c FILE] [--tenant T] [--format jsonl|csv] [--batch N] [--workers N]
                       [--bulk/--no-bulk]
                       [--progress] FILE
    scimd show-config  [-c FILE] [--sample]
    scimd plugins      [-c FILE]
    scimd events       [-c FILE] [--tenant T] [--resource ID] [--type P] [--since T] [--limit N]

``-c`` defaults to ``$SCIMD_CONFIG``, else ``scimd.toml`` in the working directory when it
exists, else built-in defaults. Exit codes: 0 success, 1 error, 2 configuration or usage
error. Errors are one message on stderr, never a traceback (``SCIMD_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.metadata
import json
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

from scimd.config import (
    ConfigError,
    LoadedConfig,
    find_config_file,
    load_config,
    parse_duration,
    render_sample_config,
    show_config,
)
from scimd.plugins import PluginError, PluginManager
from scimd.settings import Settings
from scimd.state.base import Event, StateStore, TokenRecord

__all__ = ["main"]

T = TypeVar("T")


class CliError(Exception):
    """A user-facing failure: printed as is, exit code 1."""


# --------------------------------------------------------------------------- helpers


def _load(args: argparse.Namespace) -> LoadedConfig:
    path = find_config_file(args.config)
    loaded = load_config(path)
    assert loaded.plugins is not None  # load_config builds them when not given
    loaded.plugins.configure(loaded.settings)
    return loaded


def _plugins(loaded: LoadedConfig) -> PluginManager:
    assert loaded.plugins is not None
    return loaded.plugins


def _with_store(
    loaded: LoadedConfig,
    work: Callable[[StateStore], Awaitable[T]],
    settings: Settings | None = None,
) -> T:
    store = _plugins(loaded).state_store(settings or loaded.settings)

    async def run() -> T:
        await store.start()
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(run())


def _fmt_time(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else "-"


def _parse_since(text: str) -> datetime:
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO time (2024-05-01T12:00:00Z) or a duration (1h, 30m), got {text!r}"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected an integer between 1 and 65535, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# --------------------------------------------------------------------------- commands


def cmd_serve(args: argparse.Namespace) -> int:
    loaded = _load(args)
    settings = loaded.settings
    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    if overrides:
        settings = dataclasses.replace(
            settings, server=dataclasses.replace(settings.server, **overrides)
        )
    _make_data_dirs(settings)

    if settings.auth.bootstrap_token:

        async def bootstrap(store: StateStore) -> tuple[TokenRecord, str] | None:
            if await store.count_tokens() > 0:
                return None
            return await store.create_token(
                tenant=settings.auth.default_tenant,
                scopes=("read", "write"),
                description="bootstrap token (scimd serve)",
            )

        created = _with_store(loaded, bootstrap, settings)
        if created is not None:
            record, token = created
            print(
                f"scimd: no token existed; created token {record.id} for tenant "
                f"{record.tenant!r} with scopes {' '.join(record.scopes)}.\n"
                "scimd: it is shown ONLY NOW (only its hash is stored). Bearer token:\n"
                f"{token}",
                flush=True,
            )

    from scimd.app import serve

    serve(settings, _plugins(loaded))
    return 0


def _make_data_dirs(settings: Settings) -> None:
    """Create the directories of configured files (``data/`` of the default config)."""
    paths = [settings.state.path]
    for key, value in settings.storage.backend_options().items():
        if isinstance(value, Path | str) and (key == "path" or key.endswith(("_path", "_file"))):
            paths.append(Path(value))
    for path in paths:
        p = path if path.is_absolute() else settings.base_dir / path
        p.parent.mkdir(parents=True, exist_ok=True)


def cmd_token_create(args: argparse.Namespace) -> int:
    loaded = _load(args)
    tenant = args.tenant or loaded.settings.auth.default_tenant
    scopes = tuple(dict.fromkeys(args.scope or ("read", "write")))

    async def create(store: StateStore) -> tuple[TokenRecord, str]:
        return await store.create_token(
            tenant=tenant, scopes=scopes, description=args.description, me_user_id=args.me
        )

    record, token = _with_store(loaded, create)
    print(
        f"created token {record.id} for tenant {record.tenant!r}, scopes "
        f"{' '.join(record.scopes)}; it is shown only once (only its hash is stored):",
        file=sys.stderr,
    )
    print(token, flush=True)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    loaded = _load(args)

    async def list_(store: StateStore) -> list[TokenRecord]:
        return await store.list_tokens(args.tenant)

    records = _with_store(loaded, list_)
    if args.json:
        for r in records:
            print(
                json.dumps(
                    {
                        "id": r.id,
                        "tenant": r.tenant,
                        "scopes": list(r.scopes),
                        "description": r.description,
                        "me": r.me_user_id,
                        "created": _fmt_time(r.created),
                        "lastUsed": r.last_used and _fmt_time(r.last_used),
                        "revoked": r.revoked and _fmt_time(r.revoked),
                    }
                )
            )
        return 0
    rows = [("ID", "TENANT", "SCOPES", "CREATED", "LAST USED", "REVOKED", "DESCRIPTION")]
    rows += [
        (
            r.id,
            r.tenant,
            ",".join(r.scopes),
            _fmt_time(r.created),
            _fmt_time(r.last_used),
            _fmt_time(r.revoked),
            r.description,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    loaded = _load(args)

    async def revoke(store: StateStore) -> bool:
        return await store.revoke_token(args.token_id)

    if not _with_store(loaded, revoke):
        raise CliError(f"no active token with id {args.token_id!r}")
    print(f"revoked {args.token_id}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load(args)
    # Building the factories validates the plugins too (duplicate names, bad factories).
    _plugins(loaded).backend_factories()
    _plugins(loaded).state_store_factories()
    print(f"{loaded.settings.source or '<defaults>'}: OK")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the storage backend's pending schema migrations (a backend with a
    ``migrate()`` coroutine method, e.g. ``postgres``); others have nothing to migrate."""
    from scimd.app import load_schema_registry

    loaded = _load(args)
    plugins = _plugins(loaded)
    backend = plugins.backend(loaded.settings, load_schema_registry(loaded.settings, plugins))
    name = loaded.settings.storage.backend
    migrate = getattr(backend, "migrate", None)
    if migrate is None:
        print(f"storage backend {name!r} has no migrations (it creates its layout at start)")
        return 0
    try:
        applied: list[str] = list(asyncio.run(migrate()) or [])
    except Exception as exc:
        raise CliError(f"migrate: {getattr(exc, 'detail', None) or exc}") from exc
    if applied:
        print(f"storage backend {name!r}: applied " + ", ".join(applied))
    else:
        print(f"storage backend {name!r}: up to date")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Load Users/Groups from JSON lines or CSV (``scimd.bulk_import``); exit 1 when a
    line failed (the others are loaded), 0 otherwise."""
    from scimd.app import load_schema_registry
    from scimd.bulk_import import import_file

    loaded = _load(args)
    plugins = _plugins(loaded)
    settings = loaded.settings
    registry = load_schema_registry(settings, plugins)
    backend = plugins.backend(settings, registry)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"import: no such file: {path}")

    async def run() -> Any:
        from scimd.events import EventEmitter

        state = plugins.state_store(settings)
        await backend.start()
        try:
            await state.start()
            try:
                # as in serve: a backend sharing the audit log's database records each
                # batch's event in the batch's transaction
                attach = getattr(backend, "attach_state_store", None)
                if attach is not None:
                    attach(state)
                return await import_file(
                    path,
                    backend,
                    registry,
                    tenant=args.tenant or settings.auth.default_tenant,
                    fmt=args.format,
                    batch_size=args.batch,
                    unknown=settings.schema.unknown_attributes,
                    progress=args.progress,
                    events=EventEmitter(
                        state, plugins.event_sinks(), log_events=settings.events.log
                    ),
                    unique_email=settings.scim.unique_email,
                    workers=args.workers,
                    bulk=args.bulk,
                )
            finally:
                await state.aclose()
        finally:
            await backend.aclose()

    try:
        stats = asyncio.run(run())
    except OSError as exc:
        raise CliError(f"import: {exc}") from exc
    rate = (stats.created + stats.skipped) / stats.seconds if stats.seconds else 0.0
    print(
        f"{path}: {stats.lines} lines: {stats.created} created, {stats.skipped} skipped"
        f" (already stored), {stats.errors} errors in {stats.seconds:.1f}s ({rate:,.0f}/s)"
    )
    return 1 if stats.errors else 0


def cmd_show_config(args: argparse.Namespace) -> int:
    if args.sample:
        sys.stdout.write(render_sample_config())
        return 0
    sys.stdout.write(show_config(_load(args)))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    loaded = _load(args)
    _print_plugins(_plugins(loaded), loaded.settings, sys.stdout)
    return 0


def _capabilities(pm: PluginManager, settings: Settings, name: str) -> Any:
    """A backend's capabilities: declared on the factory, else read from a backend that is
    built with this config but never started (construction opens nothing)."""
    from scimd.backend import BackendEnv
    from scimd.schema.loader import builtin_registry

    factory = pm.backend_factories()[name]
    caps = getattr(factory, "capabilities", None)
    if caps is not None:
        return caps
    env = BackendEnv(
        options=settings.storage.options.get(name, {}),
        registry=builtin_registry(),
        base_dir=settings.base_dir,
        settings=settings,
    )
    return getattr(factory(env), "capabilities", None)


def _print_plugins(pm: PluginManager, settings: Settings, out: TextIO) -> None:
    for info in pm.list_plugins():
        origin = "builtin" if info.builtin else f"{info.dist or '?'} {info.version or ''}".strip()
        print(f"{info.name} ({origin})", file=out)
        for name, description, _ in info.backends:
            print(f"  backend {name}: {description}", file=out)
            try:
                caps = _capabilities(pm, settings, name)
            except Exception as exc:  # a broken plugin must not hide the others
                caps = f"unknown ({type(exc).__name__}: {exc})"
            if caps is not None:
                print(f"    capabilities: {_describe_caps(caps)}", file=out)
        for name, description in info.state_stores:
            print(f"  state store {name}: {description}", file=out)
        others = [h for h in info.hooks if h not in ("scimd_backends", "scimd_state_stores")]
        if others:
            print(f"  hooks: {', '.join(others)}", file=out)


def _describe_caps(caps: Any) -> str:
    if not dataclasses.is_dataclass(caps):
        return str(caps)
    parts = []
    for f in dataclasses.fields(caps):
        value = getattr(caps, f.name)
        if isinstance(value, bool):
            parts.append(f.name if value else f"no {f.name}")
        elif isinstance(value, frozenset):
            parts.append(f"{f.name}={','.join(sorted(value))}")
        elif value is not None:
            parts.append(f"{f.name}={value}")
    return "; ".join(parts)


def cmd_events(args: argparse.Namespace) -> int:
    loaded = _load(args)

    async def query(store: StateStore) -> list[Event]:
        return await store.list_events(
            tenant=args.tenant,
            resource_id=args.resource,
            type_prefix=args.type,
            since=args.since,
            limit=args.limit,
        )

    for e in _with_store(loaded, query):
        print(
            json.dumps(
                {
                    "id": e.id,
                    "type": e.type,
                    "time": e.time.astimezone(UTC).isoformat(timespec="milliseconds"),
                    "tenant": e.tenant,
                    "resourceType": e.resource_type,
                    "resourceId": e.resource_id,
                    "actor": e.actor,
                    "requestId": e.request_id,
                    "changedAttributes": list(e.changed_attributes),
                    "data": e.data,
                },
                default=str,
            )
        )
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    try:
        version = importlib.metadata.version("scimd")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    parser = argparse.ArgumentParser(
        prog="scimd", description="SCIM 2.0 provisioning daemon with pluggable storage."
    )
    parser.add_argument("--version", action="version", version=f"scimd {version}")
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="config file (default: $SCIMD_CONFIG, else ./scimd.toml if present)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("serve", parents=[config], help="run the server")
    p.add_argument("--host", help="override server.host")
    p.add_argument("--port", type=_port, help="override server.port")
    p.add_argument("--workers", type=_positive, help="override server.workers")
    p.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="manage bearer tokens")
    tsub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    p = tsub.add_parser("create", parents=[config], help="create a token (printed once)")
    p.add_argument("--tenant", help="tenant (default: auth.default_tenant)")
    p.add_argument(
        "--scope",
        action="append",
        choices=("read", "write"),
        help="scope; repeatable (default: read and write)",
    )
    p.add_argument("--description", default="", help="free text shown by token list")
    p.add_argument("--me", metavar="USER_ID", help="User id bound to the token for /Me")
    p.set_defaults(func=cmd_token_create)
    p = tsub.add_parser("list", parents=[config], help="list tokens (never the secrets)")
    p.add_argument("--tenant", help="only this tenant")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_token_list)
    p = tsub.add_parser("revoke", parents=[config], help="revoke a token by id")
    p.add_argument("token_id", metavar="TOKEN_ID")
    p.set_defaults(func=cmd_token_revoke)

    p = sub.add_parser("check-config", parents=[config], help="validate the configuration")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("migrate", parents=[config], help="apply storage schema migrations")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("import", parents=[config], help="bulk-load users/groups (JSONL or CSV)")
    p.add_argument("file", metavar="FILE", help="users.jsonl or users.csv")
    p.add_argument("--tenant", help="tenant (default: auth.default_tenant)")
    p.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file suffix")
    p.add_argument("--batch", type=_positive, default=1000, help="resources per batch (1000)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes normalising users (default: one per CPU for 5000+ lines; 0: none)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: when stderr is a terminal)",
    )
    p.add_argument(
        "--bulk",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the backend's bulk mode: indexes rebuilt after the load (default: for big files)",
    )
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("show-config", parents=[config], help="effective configuration with origins")
    p.add_argument("--sample", action="store_true", help="print every key, commented")
    p.set_defaults(func=cmd_show_config)
    p = sub.add_parser("plugins", parents=[config], help="installed plugins and backends")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("events", parents=[config], help="provisioning events as JSON lines")
    p.add_argument("--tenant", help="only this tenant")
    p.add_argument("--resource", metavar="ID", help="only events of this resource id")
    p.add_argument("--type", metavar="PREFIX", help="event type or prefix (scim.user)")
    p.add_argument(
        "--since", type=_parse_since, metavar="TIME", help="ISO time or duration (1h, 7d)"
    )
    p.add_argument("--limit", type=_positive, default=1000, help="newest N events (1000)")
    p.set_defaults(func=cmd_events)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scimd`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help / --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print("scimd: invalid configuration:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    except (PluginError, CliError) as exc:
        print(f"scimd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("SCIMD_DEBUG"):
            traceback.print_exc()
        print(f"scimd: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # python -m scimd.cli
    sys.exit(main())
