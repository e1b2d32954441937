"""Typed, validated settings: what the rest of scimd reads.

``scimd.config`` builds a ``Settings`` from ``scimd.toml``, ``SCIMD_<SECTION>_<KEY>``
environment variables and ``{"$env"=...}`` / ``{"$file"=...}`` secret references; every key
is declared once there (type, default, description). This module only holds the typed
result so that every part of scimd can import it without importing the loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from scimd.jit.config import JitCaller, JitIdp

__all__ = [
    "AuthSettings",
    "BulkSettings",
    "EventSettings",
    "JitSettings",
    "LoggingSettings",
    "PluginSettings",
    "SchemaSettings",
    "ScimSettings",
    "ServerSettings",
    "Settings",
    "StateSettings",
    "StorageSettings",
]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = "/scim/v2"
    public_url: str = ""
    """Absolute URL prefix used in ``meta.location`` and ``Location`` headers (e.g.
    ``https://scim.example.com``); empty: derived from the request."""
    workers: int = 1
    max_payload_size: int = 1_048_576
    anonymous_discovery: bool = False
    """Serve /ServiceProviderConfig, /ResourceTypes and /Schemas without a token."""
    shutdown_timeout: float = 10.0
    tls_cert_file: str = ""
    """PEM certificate (chain) scimd serves TLS with; empty: plain HTTP (TLS in front)."""
    tls_key_file: str = ""
    """PEM private key of ``tls_cert_file``."""
    tls_client_ca_file: str = ""
    """PEM CA(s) client certificates are verified against (optional client certificates,
    used by ``mtls`` JIT callers); empty: no client certificates."""


@dataclass(frozen=True, slots=True)
class StorageSettings:
    backend: str = "embedded"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-backend option tables: ``[storage.embedded]`` -> options["embedded"]."""

    def backend_options(self) -> dict[str, Any]:
        return dict(self.options.get(self.backend, {}))


@dataclass(frozen=True, slots=True)
class StateSettings:
    backend: str = "sqlite"
    path: Path = Path("scimd-state.db")
    """SQLite file of the default state store (relative to the config file)."""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SchemaSettings:
    files: tuple[Path, ...] = ()
    """Extra schema JSON files (custom schemas and extensions)."""
    resource_types: tuple[Path, ...] = ()
    """Extra resource type JSON files (or replacements of User/Group)."""
    unknown_attributes: Literal["error", "ignore"] = "error"


@dataclass(frozen=True, slots=True)
class ScimSettings:
    patch_success_status: Literal[200, 204] = 200
    allow_dangling_members: bool = False
    default_count: int = 100
    max_results: int = 1000
    """``filter.maxResults``: largest page; larger ``count`` is capped."""
    cursor_ttl: float = 3600.0
    """Seconds a pagination cursor stays valid (RFC 9865 ``cursorTimeout``)."""
    cursor_secret: str = ""
    """Key that signs cursors; empty: generated and kept in the state store."""
    residual_limit: int = 10_000
    """Most candidates the planner filters in memory when a backend cannot evaluate part
    of a filter."""
    unique_email: bool = True
    """The normalised primary email of a User is unique per tenant (SCIM and JIT)."""
    advertise_pagination: bool = True
    """Include the RFC 9865 ``pagination`` block in /ServiceProviderConfig."""


@dataclass(frozen=True, slots=True)
class BulkSettings:
    enabled: bool = True
    max_operations: int = 1000
    max_payload_size: int = 1_048_576


@dataclass(frozen=True, slots=True)
class AuthSettings:
    bootstrap_token: bool = True
    """At first start with no token, create one for tenant ``default`` and print it once."""
    default_tenant: str = "default"


@dataclass(frozen=True, slots=True)
class EventSettings:
    log: bool = True
    """Write every provisioning event as one JSON log line (logger ``scimd.events``)."""
    retention_days: int = 90


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"
    format: Literal["json", "text"] = "json"
    access_log: bool = False


@dataclass(frozen=True, slots=True)
class PluginSettings:
    block: tuple[str, ...] = ()
    """Entry-point plugin names not to load."""


@dataclass(frozen=True, slots=True)
class JitSettings:
    """``[jit]``: the JIT login hook (``POST /jit/v1/logins``, see docs/jit.md)."""

    enabled: bool = False
    clock_skew: float = 120.0
    idempotency_ttl: float = 86400.0
    rate_limit: float = 20.0
    """Sustained hook requests per second allowed per caller and per IdP (0: no limit)."""
    rate_burst: int = 40
    """Requests a caller (or an IdP) may make at once before ``rate_limit`` applies."""
    options: dict[str, Any] = field(default_factory=dict)
    """The arrays of tables, validated by ``scimd.jit.config``: ``callers``
    (``[[jit.callers]]``) and ``idp`` (``[[jit.idp]]``); read them via the properties."""

    @property
    def callers(self) -> tuple[JitCaller, ...]:
        return tuple(self.options.get("callers", ()))

    @property
    def idp(self) -> tuple[JitIdp, ...]:
        return tuple(self.options.get("idp", ()))


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    state: StateSettings = field(default_factory=StateSettings)
    schema: SchemaSettings = field(default_factory=SchemaSettings)
    scim: ScimSettings = field(default_factory=ScimSettings)
    bulk: BulkSettings = field(default_factory=BulkSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    events: EventSettings = field(default_factory=EventSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    jit: JitSettings = field(default_factory=JitSettings)
    base_dir: Path = field(default_factory=Path.cwd)
    """Directory of the config file; relative paths resolve against it."""
    source: Path | None = None
    """The config file, if any."""
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Plugin-declared sections (``scimd_setting_declarations``) other than ``storage.*``
    and ``state.*``, by dotted section name, with defaults filled in."""
