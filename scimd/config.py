"""Configuration: ``scimd.toml`` + ``SCIMD_<SECTION>_<KEY>`` environment variables + secret
references -> a validated, typed :class:`scimd.settings.Settings`.

Every key is declared exactly once, in :data:`CORE_SETTINGS` (or by a plugin through the
``scimd_setting_declarations`` hook) with its type, default and description. The loader,
``scimd show-config``, ``docs/configuration.md`` and the commented ``scimd.toml`` all follow
that table; a meta-test fails when one of them misses a key.

Rules:

* Unknown sections and keys are errors (with a "did you mean" hint), as are type errors.
  Every error says where (file or environment variable), which key, and why::

      scimd.toml: server.port: expected an integer between 1 and 65535, got "abc"

  All errors of a file are collected and reported together in one :class:`ConfigError`.
* ``SCIMD_<SECTION>_<KEY>`` overrides the file (``SCIMD_SERVER_PORT=9000``,
  ``SCIMD_STORAGE_EMBEDDED_PATH=...``); lists are comma-separated. A ``SCIMD_`` variable that
  starts like a known section but names no key is an error (a typo would otherwise be
  silently ignored).
* Secret keys (``secret=True``) are never written in the file: they take a reference,
  ``{ "$env" = "NAME" }`` or ``{ "$file" = "/run/secrets/x" }`` (the file's content without
  the trailing newline). A plain non-empty string in a secret key is an **error**, so a
  secret cannot end up in a config file that is committed or world-readable. Any string key
  may use a reference. An environment override of a secret key is accepted as is.
* Relative paths (``state.path``, ``schema.files``, path options of backends) resolve against
  the directory of the config file, not the working directory.
* Durations are seconds as a number, or a string such as ``"500ms"``, ``"120s"``, ``"5m"``,
  ``"1h30m"``, ``"7d"``.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from scimd.settings import (
    AuthSettings,
    BulkSettings,
    EventSettings,
    JitSettings,
    LoggingSettings,
    PluginSettings,
    SchemaSettings,
    ScimSettings,
    ServerSettings,
    Settings,
    StateSettings,
    StorageSettings,
)

if TYPE_CHECKING:
    from scimd.plugins import PluginManager

__all__ = [
    "CORE_SETTINGS",
    "ConfigError",
    "ConfigIssue",
    "LoadedConfig",
    "Origin",
    "SettingSpec",
    "find_config_file",
    "load_config",
    "load_settings",
    "parse_duration",
    "render_sample_config",
    "show_config",
]

Kind = Literal["str", "int", "float", "bool", "duration", "path", "paths", "strs"]

MASK = "********"

# Sections whose sub-tables are option tables of a named plugin component
# ([storage.embedded], [state.postgres]).
_OPTION_PARENTS = ("storage", "state")


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """The declaration of one configuration key."""

    section: str
    """Dotted section name: ``server``, ``storage.embedded``."""
    key: str
    kind: Kind
    default: Any
    description: str
    secret: bool = False
    """Only by reference in files; masked in ``show-config``."""
    choices: tuple[Any, ...] = ()
    """Allowed values (strings compare case-insensitively; the declared spelling is kept)."""
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None
    """Extra validation of the converted value: returns the reason it is wrong, or None."""

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        """The overriding environment variable."""
        return "SCIMD_" + re.sub(r"[^A-Za-z0-9]", "_", f"{self.section}_{self.key}").upper()

    def describe_type(self) -> str:
        """Human description of the accepted values (used in errors and docs)."""
        if self.choices:
            return "one of " + ", ".join(_show(c) for c in self.choices)
        base = {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "a boolean",
            "duration": 'a duration (seconds, or "500ms", "30s", "5m", "1h", "7d")',
            "path": "a path",
            "paths": "a list of paths",
            "strs": "a list of strings",
        }[self.kind]
        if self.minimum is not None and self.maximum is not None:
            return f"{base} between {_num(self.minimum)} and {_num(self.maximum)}"
        if self.minimum is not None:
            return f"{base} >= {_num(self.minimum)}"
        if self.maximum is not None:
            return f"{base} <= {_num(self.maximum)}"
        return base


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_base_path(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
        return 'must start with "/" and not end with "/" (e.g. "/scim/v2")'
    return None


def _check_public_url(value: Any) -> str | None:
    if value and not re.match(r"^https?://[^/\s]+(/\S*)?$", str(value)):
        return 'must be empty or an absolute http(s) URL such as "https://scim.example.com"'
    if str(value).endswith("/"):
        return 'must not end with "/"'
    return None


def _check_non_empty(value: Any) -> str | None:
    return "must not be empty" if not value else None


def _spec(
    section: str, key: str, kind: Kind, default: Any, description: str, **kw: Any
) -> SettingSpec:
    return SettingSpec(section, key, kind, default, description, **kw)


CORE_SETTINGS: tuple[SettingSpec, ...] = (
    # [server]
    _spec("server", "host", "str", "127.0.0.1", "Address to listen on.", check=_check_non_empty),
    _spec("server", "port", "int", 8080, "TCP port to listen on.", minimum=1, maximum=65535),
    _spec(
        "server",
        "base_path",
        "str",
        "/scim/v2",
        "URL path prefix of the SCIM endpoints.",
        check=_check_base_path,
    ),
    _spec(
        "server",
        "public_url",
        "str",
        "",
        "Absolute URL prefix used in meta.location and Location headers (e.g. "
        '"https://scim.example.com"); empty: derived from the request.',
        check=_check_public_url,
    ),
    _spec(
        "server",
        "workers",
        "int",
        1,
        "Number of server processes (SO_REUSEPORT); one per core is a good start.",
        minimum=1,
        maximum=1024,
    ),
    _spec(
        "server",
        "max_payload_size",
        "int",
        1_048_576,
        "Largest accepted request body in bytes (larger: 413).",
        minimum=1,
    ),
    _spec(
        "server",
        "anonymous_discovery",
        "bool",
        False,
        "Serve /ServiceProviderConfig, /ResourceTypes and /Schemas without a token.",
    ),
    _spec(
        "server",
        "shutdown_timeout",
        "duration",
        10.0,
        "How long in-flight requests may finish at shutdown.",
        minimum=0,
    ),
    _spec(
        "server",
        "tls_cert_file",
        "str",
        "",
        "PEM certificate (chain) to serve HTTPS with (relative to the config file); empty: "
        "plain HTTP, e.g. behind a TLS-terminating proxy.",
    ),
    _spec(
        "server",
        "tls_key_file",
        "str",
        "",
        "PEM private key of server.tls_cert_file (required with it).",
    ),
    _spec(
        "server",
        "tls_client_ca_file",
        "str",
        "",
        "PEM CA certificate(s) that optional client certificates must chain to (needed by "
        "mtls JIT callers); clients without a certificate still connect. Needs tls_cert_file.",
    ),
    # [storage]
    _spec(
        "storage",
        "backend",
        "str",
        "embedded",
        "Resource storage backend (see `scimd plugins`); its options go in [storage.<backend>].",
        check=_check_non_empty,
    ),
    # [state]
    _spec(
        "state",
        "backend",
        "str",
        "sqlite",
        "State store for tokens, events and other scimd data; options go in [state.<backend>].",
        check=_check_non_empty,
    ),
    _spec(
        "state",
        "path",
        "path",
        Path("scimd-state.db"),
        "SQLite file of the sqlite state store (relative to the config file).",
    ),
    # [schema]
    _spec(
        "schema",
        "files",
        "paths",
        (),
        "Extra schema JSON files (custom schemas and extensions), relative to the config file.",
    ),
    _spec(
        "schema",
        "resource_types",
        "paths",
        (),
        "Extra resource type JSON files (or replacements of User/Group).",
    ),
    _spec(
        "schema",
        "unknown_attributes",
        "str",
        "error",
        'Attributes not in the schema: "error" (400 invalidValue) or "ignore" (dropped).',
        choices=("error", "ignore"),
    ),
    # [scim]
    _spec(
        "scim",
        "patch_success_status",
        "int",
        200,
        "Status of a successful PATCH: 200 with the resource, or 204 without a body.",
        choices=(200, 204),
    ),
    _spec(
        "scim",
        "allow_dangling_members",
        "bool",
        False,
        "Accept group members whose id does not exist (otherwise 400 invalidValue).",
    ),
    _spec(
        "scim",
        "default_count",
        "int",
        100,
        "Page size when a list request has no count.",
        minimum=0,
    ),
    _spec(
        "scim",
        "max_results",
        "int",
        1000,
        "filter.maxResults: largest page; a larger count is capped.",
        minimum=1,
    ),
    _spec(
        "scim",
        "cursor_ttl",
        "duration",
        3600.0,
        "How long a pagination cursor stays valid (RFC 9865 cursorTimeout).",
        minimum=1,
    ),
    _spec(
        "scim",
        "cursor_secret",
        "str",
        "",
        "Key that signs pagination cursors; empty: generated once and kept in the state "
        "store. Set it (same value) when several scimd share no state store.",
        secret=True,
    ),
    _spec(
        "scim",
        "residual_limit",
        "int",
        10_000,
        "Most candidates filtered in memory when a backend cannot evaluate part of a filter.",
        minimum=0,
    ),
    _spec(
        "scim",
        "unique_email",
        "bool",
        True,
        "The normalised primary email of a User is unique per tenant, whether SCIM or a JIT "
        "login created the user; a write that would duplicate it is 409 uniqueness.",
    ),
    _spec(
        "scim",
        "advertise_pagination",
        "bool",
        True,
        "Include the RFC 9865 pagination block in /ServiceProviderConfig. Turn off for "
        "clients whose SCIM library rejects it (scim2-models before 0.10, as in Canaille 0.3).",
    ),
    # [bulk]
    _spec("bulk", "enabled", "bool", True, "Serve POST /Bulk (RFC 7644 3.7)."),
    _spec(
        "bulk",
        "max_operations",
        "int",
        1000,
        "bulk.maxOperations: most operations per request.",
        minimum=1,
    ),
    _spec(
        "bulk",
        "max_payload_size",
        "int",
        1_048_576,
        "bulk.maxPayloadSize: largest Bulk request body in bytes.",
        minimum=1,
    ),
    # [auth]
    _spec(
        "auth",
        "bootstrap_token",
        "bool",
        True,
        "At `scimd serve` with no token in the state store, create one for the default "
        "tenant and print it once.",
    ),
    _spec(
        "auth",
        "default_tenant",
        "str",
        "default",
        "Tenant of the bootstrap token and of `scimd token create` without --tenant.",
        check=_check_non_empty,
    ),
    # [events]
    _spec(
        "events",
        "log",
        "bool",
        True,
        "Write every provisioning event as one JSON log line (logger scimd.events).",
    ),
    _spec(
        "events",
        "retention_days",
        "int",
        90,
        "Days events are kept in the state store; 0 keeps them forever.",
        minimum=0,
    ),
    # [logging]
    _spec(
        "logging",
        "level",
        "str",
        "INFO",
        "Log level.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    ),
    _spec(
        "logging",
        "format",
        "str",
        "json",
        'Log line format: "json" (one object per line) or "text".',
        choices=("json", "text"),
    ),
    _spec("logging", "access_log", "bool", False, "Log one line per HTTP request."),
    # [plugins]
    _spec(
        "plugins",
        "block",
        "strs",
        (),
        'Entry-point plugin names not to load (e.g. ["ldap"]).',
    ),
    # [jit] (the [[jit.callers]] and [[jit.idp]] arrays: scimd.jit.config, docs/jit.md)
    _spec(
        "jit",
        "enabled",
        "bool",
        False,
        "Serve the JIT login hook POST /jit/v1/logins (callers and IdPs: [[jit.callers]], "
        "[[jit.idp]], see docs/jit.md).",
    ),
    _spec(
        "jit",
        "clock_skew",
        "duration",
        120.0,
        "Clock skew tolerated on token times (exp, nbf, iat); at most 5 minutes.",
        minimum=0,
        maximum=300,
    ),
    _spec(
        "jit",
        "idempotency_ttl",
        "duration",
        86400.0,
        "How long a JIT response is kept for an idempotent retry with the same webhook-id.",
        minimum=1,
    ),
    _spec(
        "jit",
        "rate_limit",
        "float",
        20.0,
        "Sustained JIT hook requests per second allowed per caller and per IdP, in each "
        "process (over it: 429 with Retry-After); 0 disables the limit.",
        minimum=0,
    ),
    _spec(
        "jit",
        "rate_burst",
        "int",
        40,
        "JIT hook requests a caller (or an IdP) may make at once before jit.rate_limit applies.",
        minimum=1,
    ),
)

# Arrays of tables, validated by their own parser: [[jit.callers]], [[jit.idp]].
_ARRAY_TABLES = ("jit.callers", "jit.idp")

_CORE_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "storage": StorageSettings,
    "state": StateSettings,
    "schema": SchemaSettings,
    "scim": ScimSettings,
    "bulk": BulkSettings,
    "auth": AuthSettings,
    "events": EventSettings,
    "logging": LoggingSettings,
    "plugins": PluginSettings,
    "jit": JitSettings,
}


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    source: str
    """The file as given, or ``SCIMD_X (environment)``."""
    key: str
    """Dotted key (``server.port``), a section, or empty for a whole-file problem."""
    reason: str

    def __str__(self) -> str:
        if self.key:
            return f"{self.source}: {self.key}: {self.reason}"
        return f"{self.source}: {self.reason}"


class ConfigError(Exception):
    """One or more configuration errors, each naming its source, key and reason."""

    def __init__(self, issues: Sequence[ConfigIssue] | str, key: str = "", reason: str = ""):
        if isinstance(issues, str):
            issues = [ConfigIssue(issues, key, reason)]
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


# --------------------------------------------------------------------------- origins


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an effective value came from."""

    kind: Literal["default", "file", "env"]
    where: str = ""
    """``scimd.toml:12`` (file), ``SCIMD_SERVER_PORT`` (env); empty for defaults."""
    reference: str = ""
    """``$env NAME`` / ``$file PATH`` when the value was given by reference."""

    def __str__(self) -> str:
        text = {"default": "default", "file": self.where, "env": f"env {self.where}"}[self.kind]
        return f"{text} ({self.reference})" if self.reference else text


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Settings plus, for every key, where its value came from."""

    settings: Settings
    origins: Mapping[str, Origin]
    """Keyed by dotted name: ``server.port``, ``storage.embedded.path``."""
    specs: tuple[SettingSpec, ...]
    plugins: PluginManager | None = None
    """The plugin manager used for the plugin-declared settings (reuse it)."""
    passthrough: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Undeclared option sections (plugin declares nothing) -> their keys."""


# --------------------------------------------------------------------------- conversion

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_duration(value: str | float) -> float:
    """Seconds from a number or a string like ``"120s"``, ``"1h30m"``, ``"500ms"``, ``"90"``.

    Raises ``ValueError`` for anything else (negative or not finite included)."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            compact = text.replace(" ", "")
            for m in _DURATION_PART.finditer(compact):
                if m.start() != pos:
                    raise ValueError("not a duration") from None
                seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
                pos = m.end()
            if pos == 0 or pos != len(compact):
                raise ValueError("not a duration") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("not a duration")
    return seconds


def _show(value: Any) -> str:
    if isinstance(value, Path):
        return json.dumps(str(value))
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class _Invalid(Exception):
    """A value does not fit its declaration (the reason is the message)."""


def _convert(spec: SettingSpec, value: Any, *, from_env: bool, base_dir: Path) -> Any:
    """Convert and validate one value; raises ``_Invalid`` with the reason."""
    expected = f"expected {spec.describe_type()}, got {_show(value)}"
    kind = spec.kind
    out: Any
    if kind == "bool":
        if isinstance(value, bool):
            out = value
        elif from_env and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            out = value.strip().lower() in _TRUE
        else:
            raise _Invalid(expected)
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            out = value
        elif from_env and isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            out = int(value)
        else:
            raise _Invalid(expected)
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            out = float(value)
        elif from_env and isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise _Invalid(expected) from None
        else:
            raise _Invalid(expected)
        if not math.isfinite(out):
            raise _Invalid(expected)
    elif kind == "duration":
        try:
            out = parse_duration(value)
        except (ValueError, TypeError):
            raise _Invalid(expected) from None
    elif kind in ("str", "path"):
        if not isinstance(value, str):
            raise _Invalid(expected)
        out = value
        if kind == "path":
            if not value.strip():
                raise _Invalid(expected)
            out = _resolve(value, base_dir)
    elif kind in ("strs", "paths"):
        if from_env and isinstance(value, str):
            items: list[Any] = [p.strip() for p in value.split(",") if p.strip()]
        elif isinstance(value, list):
            items = value
        else:
            raise _Invalid(expected)
        if not all(isinstance(i, str) and i.strip() for i in items):
            raise _Invalid(expected)
        out = tuple(_resolve(i, base_dir) for i in items) if kind == "paths" else tuple(items)
    else:  # pragma: no cover - Kind is a closed Literal
        raise _Invalid(f"unsupported kind {kind}")

    if spec.choices:
        if isinstance(out, str):
            match = [c for c in spec.choices if isinstance(c, str) and c.lower() == out.lower()]
            if not match:
                raise _Invalid(expected)
            out = match[0]
        elif out not in spec.choices:
            raise _Invalid(expected)
    numeric = isinstance(out, int | float) and not isinstance(out, bool)
    if numeric and (
        (spec.minimum is not None and out < spec.minimum)
        or (spec.maximum is not None and out > spec.maximum)
    ):
        raise _Invalid(expected)
    if spec.check is not None:
        reason = spec.check(out)
        if reason:
            raise _Invalid(f"{reason}, got {_show(value)}")
    return out


def _resolve(value: str | Path, base_dir: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base_dir / p)


def _is_reference(value: Any) -> bool:
    return isinstance(value, dict) and len(value) >= 1 and any(k.startswith("$") for k in value)


def _deref(value: dict[str, Any], environ: Mapping[str, str], base_dir: Path) -> tuple[str, str]:
    """Resolve ``{"$env"=NAME}`` / ``{"$file"=PATH}``: (secret value, description)."""
    if len(value) != 1 or next(iter(value)) not in ("$env", "$file"):
        raise _Invalid(
            'a reference is { "$env" = "NAME" } or { "$file" = "/path" }, got '
            + ", ".join(sorted(value))
        )
    ((kind, target),) = value.items()
    if not isinstance(target, str) or not target:
        raise _Invalid(f"{kind} needs a non-empty string")
    if kind == "$env":
        if target not in environ:
            raise _Invalid(f"environment variable {target} (from $env) is not set")
        return environ[target], f"$env {target}"
    path = _resolve(target, base_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _Invalid(f"cannot read $file {path}: {exc.strerror or exc}") from None
    # Secret files conventionally end with a newline that is not part of the secret.
    return text.rstrip("\r\n"), f"$file {path}"


# --------------------------------------------------------------------------- locating keys

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEYLINE = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_-]+)\s*=')


def _locate(text: str) -> dict[str, int]:
    """Best-effort line numbers of ``section.key`` assignments (tomllib gives none)."""
    lines: dict[str, int] = {}
    section = ""
    for n, line in enumerate(text.splitlines(), 1):
        if m := _HEADER.match(line):
            section = ".".join(p.strip().strip('"') for p in m.group(1).split("."))
            continue
        if m := _KEYLINE.match(line):
            name = f"{section}.{m.group(1).strip(chr(34))}" if section else m.group(1)
            lines.setdefault(name, n)
    return lines


# --------------------------------------------------------------------------- loading


def find_config_file(
    explicit: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The config file to use: ``explicit``, else ``$SCIMD_CONFIG``, else ``scimd.toml`` in
    the working directory when present, else None (built-in defaults)."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("SCIMD_CONFIG"):
        return Path(env["SCIMD_CONFIG"])
    candidate = (cwd or Path.cwd()) / "scimd.toml"
    return candidate if candidate.is_file() else None


def load_settings(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    plugins: PluginManager | None = None,
) -> Settings:
    """Load, validate and type the configuration; see :func:`load_config`."""
    return load_config(path, environ=environ, plugins=plugins).settings


def load_config(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    plugins: PluginManager | None = None,
) -> LoadedConfig:
    """Load ``path`` (None: defaults only) with environment overrides.

    ``plugins`` supplies plugin-declared settings and the installed backend and state store
    names; when None, a :class:`scimd.plugins.PluginManager` is built (builtins plus entry
    points minus ``plugins.block``) and returned in ``LoadedConfig.plugins``.

    Raises :class:`ConfigError` listing every problem found.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    source = str(path) if path is not None else "<defaults>"
    doc: dict[str, Any] = {}
    text = ""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(source, "", "no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(source, "", f"cannot read: {exc}") from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"invalid TOML: {exc}") from None
        base_dir = Path(path).resolve().parent
    else:
        base_dir = Path.cwd()

    if plugins is None:
        from scimd.plugins import PluginManager

        plugins = PluginManager.create(block=_early_block_list(doc, env))

    return _Loader(source, text, doc, env, base_dir, plugins, Path(path) if path else None).run()


def _early_block_list(doc: Mapping[str, Any], env: Mapping[str, str]) -> tuple[str, ...]:
    """``plugins.block`` read before the plugins are loaded (they declare the other keys).
    Invalid values are ignored here; the full validation reports them."""
    if "SCIMD_PLUGINS_BLOCK" in env:
        return tuple(p.strip() for p in env["SCIMD_PLUGINS_BLOCK"].split(",") if p.strip())
    section = doc.get("plugins")
    block = section.get("block") if isinstance(section, dict) else None
    if isinstance(block, list) and all(isinstance(b, str) for b in block):
        return tuple(block)
    return ()


class _Loader:
    def __init__(
        self,
        source: str,
        text: str,
        doc: dict[str, Any],
        environ: Mapping[str, str],
        base_dir: Path,
        plugins: PluginManager,
        path: Path | None,
    ) -> None:
        self.source = source
        self.lines = _locate(text)
        self.doc = doc
        self.environ = environ
        self.base_dir = base_dir
        self.plugins = plugins
        self.path = path
        self.issues: list[ConfigIssue] = []
        self.specs = _merge_specs(CORE_SETTINGS, plugins.setting_declarations(), self.issues)
        self.by_name = {s.name: s for s in self.specs}
        self.sections: dict[str, list[SettingSpec]] = {}
        for s in self.specs:
            self.sections.setdefault(s.section, []).append(s)
        self.backends = sorted(plugins.backend_factories())
        self.state_stores = sorted(plugins.state_store_factories())
        self.values: dict[str, Any] = {}
        self.origins: dict[str, Origin] = {}
        self.passthrough: dict[str, dict[str, Any]] = {}
        self.arrays: dict[str, Any] = {}

    # -- walking the file
    def run(self) -> LoadedConfig:
        for key, value in self.doc.items():
            if isinstance(value, dict) and not _is_reference(value):
                self._table(key, value)
            else:
                self._issue(key, "settings belong in a section such as [server]")
        self._environment()
        settings = self._build() if not self.issues else None
        if self.issues or settings is None:
            raise ConfigError(self.issues)
        return LoadedConfig(
            settings=settings,
            origins=dict(self.origins),
            specs=self.specs,
            plugins=self.plugins,
            passthrough={k: tuple(v) for k, v in self.passthrough.items()},
        )

    def _issue(self, key: str, reason: str, source: str | None = None) -> None:
        self.issues.append(ConfigIssue(source or self.source, key, reason))

    def _file_origin(self, name: str, reference: str = "") -> Origin:
        line = self.lines.get(name)
        where = f"{self.source}:{line}" if line else self.source
        return Origin("file", where, reference)

    def _table(self, section: str, table: dict[str, Any]) -> None:
        parent, _, child = section.rpartition(".")
        if section not in self.sections:
            if parent in _OPTION_PARENTS and child in self._component_names(parent):
                # A component that declares no options: keep its table as given.
                self._passthrough(section, table)
                return
            self._unknown_section(section)
            return
        for key, value in table.items():
            name = f"{section}.{key}"
            if name in _ARRAY_TABLES:
                self.arrays[name] = value
                self.origins[name] = self._file_origin(name)
                continue
            if isinstance(value, dict) and not _is_reference(value):
                self._table(name, value)
                continue
            spec = self.by_name.get(name)
            if spec is None:
                known = [s.key for s in self.sections[section]]
                hint = difflib.get_close_matches(key, known, n=1)
                reason = "unknown key" + (f' (did you mean "{hint[0]}"?)' if hint else "")
                self._issue(name, f"{reason}; known keys: {', '.join(known)}")
                continue
            self._set(spec, value, self._file_origin(name), from_env=False, source=self.source)

    def _component_names(self, parent: str) -> list[str]:
        return self.backends if parent == "storage" else self.state_stores

    def _unknown_section(self, section: str) -> None:
        parent, _, child = section.rpartition(".")
        if parent in _OPTION_PARENTS:
            what = "storage backend" if parent == "storage" else "state store"
            names = ", ".join(self._component_names(parent)) or "none"
            self._issue(f"[{section}]", f"unknown {what} {child!r}; installed: {names}")
            return
        known = sorted({s.section for s in self.specs})
        hint = difflib.get_close_matches(section, known, n=1)
        extra = f' (did you mean "[{hint[0]}]"?)' if hint else ""
        self._issue(f"[{section}]", f"unknown section{extra}; known sections: {', '.join(known)}")

    def _passthrough(self, section: str, table: dict[str, Any]) -> None:
        out: dict[str, Any] = {}
        for key, value in table.items():
            name = f"{section}.{key}"
            reference = ""
            if _is_reference(value):
                try:
                    value, reference = _deref(value, self.environ, self.base_dir)
                except _Invalid as exc:
                    self._issue(name, str(exc))
                    continue
            if isinstance(value, str) and (key == "path" or key.endswith(("_path", "_file"))):
                value = _resolve(value, self.base_dir)
            out[key] = value
            self.origins[name] = self._file_origin(name, reference)
        self.passthrough[section] = out

    def _set(
        self, spec: SettingSpec, value: Any, origin: Origin, *, from_env: bool, source: str
    ) -> None:
        reference = ""
        if _is_reference(value):
            if spec.kind not in ("str", "path"):
                self._issue(spec.name, "only string settings can be given by reference", source)
                return
            try:
                value, reference = _deref(value, self.environ, self.base_dir)
            except _Invalid as exc:
                self._issue(spec.name, str(exc), source)
                return
            origin = Origin(origin.kind, origin.where, reference)
        elif spec.secret and not from_env and isinstance(value, str) and value:
            self._issue(
                spec.name,
                'secrets must not be written in the file; use { "$env" = "NAME" } or '
                '{ "$file" = "/run/secrets/name" }',
                source,
            )
            return
        try:
            self.values[spec.name] = _convert(
                spec, value, from_env=from_env and not reference, base_dir=self.base_dir
            )
        except _Invalid as exc:
            self._issue(spec.name, str(exc), source)
            return
        self.origins[spec.name] = origin

    def _environment(self) -> None:
        by_env = {s.env: s for s in self.specs}
        prefixes = sorted(
            {"SCIMD_" + re.sub(r"[^A-Za-z0-9]", "_", s.section).upper() + "_" for s in self.specs},
            key=len,
            reverse=True,
        )
        for var in sorted(self.environ):
            if not var.startswith("SCIMD_") or var == "SCIMD_CONFIG":
                continue
            source = f"{var} (environment)"
            spec = by_env.get(var)
            if spec is None:
                if self._passthrough_env(var):
                    continue
                if any(var.startswith(p) for p in prefixes):
                    hint = difflib.get_close_matches(var, list(by_env), n=1)
                    extra = f" (did you mean {hint[0]}?)" if hint else ""
                    self._issue(var, f"no such setting{extra}", "environment")
                continue
            self._set(spec, self.environ[var], Origin("env", var), from_env=True, source=source)

    def _passthrough_env(self, var: str) -> bool:
        """``SCIMD_STORAGE_<NAME>_<KEY>`` for a component that declares no options: set the
        key in its table, converted to the type of the file's value for that key if any."""
        for parent in _OPTION_PARENTS:
            for name in self._component_names(parent):
                section = f"{parent}.{name}"
                if section in self.sections:
                    continue  # declared: handled (and checked) like any other key
                prefix = "SCIMD_" + re.sub(r"[^A-Za-z0-9]", "_", section).upper() + "_"
                if not var.startswith(prefix) or len(var) == len(prefix):
                    continue
                key = var[len(prefix) :].lower()
                table = self.passthrough.setdefault(section, {})
                raw, current = self.environ[var], table.get(key)
                value: Any = raw
                try:
                    if isinstance(current, bool):
                        value = _convert(
                            SettingSpec(section, key, "bool", False, ""),
                            raw,
                            from_env=True,
                            base_dir=self.base_dir,
                        )
                    elif isinstance(current, int):
                        value = int(raw)
                    elif isinstance(current, float):
                        value = float(raw)
                    elif key == "path" or key.endswith(("_path", "_file")):
                        value = _resolve(raw, self.base_dir)
                except (ValueError, _Invalid):
                    self._issue(
                        f"{section}.{key}",
                        f"expected a value like {_show(current)}, got {_show(raw)}",
                        f"{var} (environment)",
                    )
                    return True
                table[key] = value
                self.origins[f"{section}.{key}"] = Origin("env", var)
                return True
        return False

    # -- building the typed result
    def _value(self, spec: SettingSpec) -> Any:
        if spec.name in self.values:
            return self.values[spec.name]
        self.origins.setdefault(spec.name, Origin("default"))
        default = spec.default
        if spec.kind == "path" and isinstance(default, str | Path):
            return _resolve(default, self.base_dir)
        if spec.kind == "paths":
            return tuple(_resolve(p, self.base_dir) for p in default)
        return default

    def _section_values(self, section: str) -> dict[str, Any]:
        return {s.key: self._value(s) for s in self.sections.get(section, [])}

    def _build(self) -> Settings | None:
        core: dict[str, Any] = {}
        for section in _CORE_SECTIONS:
            core[section] = self._section_values(section)

        storage_backend = core["storage"]["backend"]
        state_backend = core["state"]["backend"]
        if storage_backend not in self.backends:
            self._issue(
                "storage.backend",
                f"unknown storage backend {storage_backend!r}; installed: "
                + (", ".join(self.backends) or "none"),
                self._origin_source("storage.backend"),
            )
        if state_backend not in self.state_stores:
            self._issue(
                "state.backend",
                f"unknown state store {state_backend!r}; installed: "
                + (", ".join(self.state_stores) or "none"),
                self._origin_source("state.backend"),
            )
        scim = core["scim"]
        if scim["default_count"] > scim["max_results"]:
            self._issue(
                "scim.default_count",
                f"must not exceed scim.max_results ({scim['max_results']}), "
                f"got {scim['default_count']}",
                self._origin_source("scim.default_count"),
            )
        core["jit"]["options"] = self._jit_arrays()
        self._check_tls(core["server"], core["jit"]["options"])
        if self.issues:
            return None

        options: dict[str, dict[str, Any]] = {}
        state_options: dict[str, Any] = {}
        extra: dict[str, dict[str, Any]] = {}
        option_sections = set(self.sections) | set(self.passthrough)
        for section in sorted(option_sections - set(_CORE_SECTIONS)):
            parent, _, child = section.rpartition(".")
            present = section in self.passthrough or any(
                s.name in self.values for s in self.sections.get(section, [])
            )
            table = dict(self.passthrough.get(section, {}))
            if section in self.sections:
                active = (parent == "storage" and child == storage_backend) or (
                    parent == "state" and child == state_backend
                )
                if not (present or active or parent not in _OPTION_PARENTS):
                    continue  # declared by an installed but unused component
                table.update(self._section_values(section))
            if parent == "storage":
                options[child] = table
            elif parent == "state":
                if child == state_backend:
                    state_options = table
            else:
                extra[section] = table

        storage = StorageSettings(backend=storage_backend, options=options)
        state = StateSettings(
            backend=state_backend, path=core["state"]["path"], options=state_options
        )
        kwargs = {
            name: cls(**core[name])
            for name, cls in _CORE_SECTIONS.items()
            if name not in ("storage", "state")
        }
        return Settings(
            storage=storage,
            state=state,
            base_dir=self.base_dir,
            source=self.path.resolve() if self.path else None,
            extra=extra,
            **kwargs,
        )

    def _check_tls(self, server: dict[str, Any], jit: Mapping[str, Any]) -> None:
        """``server.tls_*``: resolve the files against the config directory, check they go
        together and are readable; ``mtls`` JIT callers need ``tls_client_ca_file``."""
        keys = ("tls_cert_file", "tls_key_file", "tls_client_ca_file")
        for key in keys:
            if server[key]:
                path = _resolve(server[key], self.base_dir)
                server[key] = str(path)
                if not path.is_file():
                    self._issue(
                        f"server.{key}",
                        f"cannot read {path}: no such file",
                        self._origin_source(f"server.{key}"),
                    )
        if bool(server["tls_cert_file"]) != bool(server["tls_key_file"]):
            self._issue(
                "server.tls_key_file",
                "tls_cert_file and tls_key_file go together",
                self._origin_source("server.tls_key_file"),
            )
        if server["tls_client_ca_file"] and not server["tls_cert_file"]:
            self._issue(
                "server.tls_client_ca_file",
                "needs tls_cert_file and tls_key_file (scimd must serve TLS itself)",
                self._origin_source("server.tls_client_ca_file"),
            )
        for n, caller in enumerate(jit.get("callers", ())):
            if caller.auth == "mtls" and not server["tls_client_ca_file"]:
                self._issue(
                    f"jit.callers[{n}].auth",
                    "mtls callers need server.tls_client_ca_file (and scimd serving TLS "
                    "itself: behind a TLS-terminating proxy use hmac)",
                    self._origin_source("server.tls_client_ca_file"),
                )

    def _jit_arrays(self) -> dict[str, Any]:
        from scimd.jit.config import check_references, parse_callers, parse_idps

        def deref(value: Mapping[str, Any]) -> str:
            if not _is_reference(value):
                raise ValueError('expected { "$env" = "NAME" } or { "$file" = "/path" }')
            try:
                return _deref(dict(value), self.environ, self.base_dir)[0]
            except _Invalid as exc:
                raise ValueError(str(exc)) from None

        callers, problems = parse_callers(self.arrays.get("jit.callers", []), deref)
        idps, more = parse_idps(self.arrays.get("jit.idp", []), self.base_dir, deref)
        problems += more
        if not problems:
            problems += check_references(callers, idps)
        for key, reason in problems:
            self._issue(key, reason)
        return {"callers": callers, "idp": idps}

    def _origin_source(self, name: str) -> str:
        origin = self.origins.get(name)
        if origin is not None and origin.kind == "env":
            return f"{origin.where} (environment)"
        return self.source


def _merge_specs(
    core: Iterable[SettingSpec], plugin: Iterable[SettingSpec], issues: list[ConfigIssue]
) -> tuple[SettingSpec, ...]:
    out: dict[str, SettingSpec] = {}
    for spec in core:
        out[spec.name] = spec
    for spec in plugin:
        if spec.section in _CORE_SECTIONS or spec.name in out:
            issues.append(
                ConfigIssue("<plugins>", spec.name, "declared twice (or in a core section)")
            )
            continue
        out[spec.name] = spec
    return tuple(out.values())


# --------------------------------------------------------------------------- rendering


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _looks_secret(key: str) -> bool:
    return bool(re.search(r"password|secret|token|dsn|credential|private|api_?key", key, re.I))


def show_config(loaded: LoadedConfig) -> str:
    """The effective configuration as TOML, each value annotated with its origin
    (``default``, ``file:line``, ``env VAR``); secret values masked."""
    settings = loaded.settings
    lines = [
        f"# effective scimd configuration (config file: {settings.source or 'none'})",
        "# origin of each value: default | file:line | env VARIABLE",
    ]
    sections: dict[str, list[tuple[str, Any, bool]]] = {}
    for spec in loaded.specs:
        value = _effective(settings, spec)
        if value is _ABSENT:
            continue
        sections.setdefault(spec.section, []).append((spec.key, value, spec.secret))
    for section, keys in loaded.passthrough.items():
        table = _section_table(settings, section)
        for key in keys:
            sections.setdefault(section, []).append((key, table.get(key), _looks_secret(key)))
    for section, entries in sections.items():
        lines.append("")
        lines.append(f"[{section}]")
        for key, value, secret in entries:
            origin = loaded.origins.get(f"{section}.{key}", Origin("default"))
            shown = _toml_value(MASK) if secret and value not in ("", None) else _toml_value(value)
            lines.append(f"{key} = {shown}  # {origin}")
    return "\n".join(lines) + "\n"


class _Absent:
    pass


_ABSENT: Any = _Absent()


def _section_table(settings: Settings, section: str) -> Mapping[str, Any]:
    parent, _, child = section.rpartition(".")
    if parent == "storage":
        return settings.storage.options.get(child, {})
    if parent == "state":
        return settings.state.options if child == settings.state.backend else {}
    return settings.extra.get(section, {})


def _effective(settings: Settings, spec: SettingSpec) -> Any:
    if spec.section in _CORE_SECTIONS:
        return getattr(getattr(settings, spec.section), spec.key)
    table = _section_table(settings, spec.section)
    return table.get(spec.key, _ABSENT)


def render_sample_config(specs: Iterable[SettingSpec] = CORE_SETTINGS) -> str:
    """Every key with its description and default, commented out (for a new scimd.toml)."""
    lines: list[str] = []
    section = None
    for spec in specs:
        if spec.section != section:
            section = spec.section
            lines += ["", f"[{section}]"]
        lines.append(f"# {spec.description} ({spec.describe_type()})")
        default = spec.default
        if spec.secret:
            lines.append(f'# {spec.key} = {{ "$env" = "{spec.env}_VALUE" }}')
        else:
            lines.append(f"# {spec.key} = {_toml_value(default)}")
    return "\n".join(lines).lstrip("\n") + "\n"
