"""The ``[[jit.callers]]`` and ``[[jit.idp]]`` arrays of tables: typed and validated.

``scimd.config`` declares the scalar ``[jit]`` keys like every other setting and hands the
two arrays to :func:`parse_callers` / :func:`parse_idps`, which return the typed entries
plus a list of ``(key, reason)`` problems. Keys are reported as ``jit.idp[0].issuer`` so a
configuration error names the file, the entry and the reason. Secrets (``secret``) are
references only (``{ "$env" = ... }`` / ``{ "$file" = ... }``), as everywhere in scimd.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "Correlation",
    "GroupsConfig",
    "JitCaller",
    "JitIdp",
    "parse_callers",
    "parse_idps",
]

ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
"""Signature algorithms an IdP may be configured with. ``none`` and the HS* family are
never accepted: an HMAC keyed with a public key is the classic algorithm-confusion attack."""

OWNERSHIP = ("scim", "jit", "jit_if_empty")
GROUP_MODES = ("none", "assign", "append", "sync")
LINK_BY_EMAIL = ("never", "verified_domain_only", "verified_email")
UPDATE_ON_LOGIN = ("never", "owned_attributes", "always")

Deref = Callable[[Mapping[str, Any]], str]
"""Resolves a ``{"$env"...}``/``{"$file"...}`` reference; raises ValueError with the reason."""
Issues = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class JitCaller:
    """One ``[[jit.callers]]`` entry: who may call the hook, and for which IdPs."""

    id: str
    auth: str
    """``hmac`` (Standard Webhooks), ``mtls`` (pinned client certificate) or ``bearer``
    (development)."""
    secret: str = field(repr=False)
    allowed_idps: tuple[str, ...] = ()
    spki_sha256: tuple[bytes, ...] = ()
    """``mtls``: SHA-256 digests of the accepted client certificates' SubjectPublicKeyInfo."""


@dataclass(frozen=True, slots=True)
class Correlation:
    """How a SCIM-pushed record is recognised: ``scim_attribute eq <claim value>``."""

    scim_attribute: str = "externalId"
    claim: str = "sub"


@dataclass(frozen=True, slots=True)
class GroupsConfig:
    claim: str = "groups"
    mode: str = "none"
    managed: tuple[str, ...] = ()
    """Only these groups (displayName) are ever added or removed by JIT."""
    required: tuple[str, ...] = ()
    """When set, the login is denied (group_required) unless the claim names one of them."""


@dataclass(frozen=True, slots=True)
class JitIdp:
    """One ``[[jit.idp]]`` entry (see docs/jit.md for every key)."""

    id: str
    protocol: str = "oidc"
    mode: str = "verify"
    tenant: str = ""
    """Tenant the users go to; empty: ``auth.default_tenant``."""
    issuer: str = ""
    audiences: tuple[str, ...] = ()
    jwks_uri: str = ""
    jwks: Mapping[str, Any] | None = None
    """Pinned keys (inline ``jwks`` or read from ``jwks_file``): no fetch at all."""
    algorithms: tuple[str, ...] = ("RS256",)
    max_token_age: float = 600.0
    jwks_cache_ttl: float = 3600.0
    jwks_refetch_cooldown: float = 60.0
    jwks_timeout: float = 5.0
    allowed_email_domains: tuple[str, ...] = ()
    allow_subdomains: bool = False
    trust_email: bool = False
    lowercase_local_part: bool = True
    create_users: bool = True
    scim_authoritative: bool = False
    scim_correlation: Correlation | None = field(default_factory=Correlation)
    link_by_email: str = "never"
    update_on_login: str = "owned_attributes"
    on_deprovisioned: str = "deny"
    on_deleted: str = "deny"
    attributes: Mapping[str, str] = field(default_factory=lambda: {"userName": "email"})
    ownership: Mapping[str, str] = field(default_factory=lambda: {"default": "scim"})
    groups: GroupsConfig = field(default_factory=GroupsConfig)
    # SAML 2.0 (protocol = "saml2"): see scimd.jit.saml
    idp_entity_id: str = ""
    """The IdP's entityID: the Issuer of its assertions."""
    sp_entity_id: str = ""
    """Our (the application's) entityID: the required Audience."""
    acs_urls: tuple[str, ...] = ()
    """Accepted Recipient / Destination values (the application's ACS endpoints)."""
    signing_certs: tuple[str, ...] = ()
    """Pinned IdP signing certificates (PEM), from ``signing_certs`` or ``signing_certs_file``."""
    subject_source: str = "nameid"
    """``nameid`` (a persistent NameID) or the Name of a single-valued attribute."""
    email_attribute: str = "email"
    """The attribute whose value is the ``email`` claim."""
    allow_idp_initiated: bool = False
    max_response_bytes: int = 128 * 1024
    decryption_keys: tuple[str, ...] = field(default=(), repr=False)
    """The SP's RSA private keys (PEM, from ``decryption_key`` secret references) for
    encrypted assertions; empty: encrypted assertions are refused."""

    def owner(self, attribute: str) -> str:
        """Ownership of a SCIM attribute path (``default`` when not listed)."""
        return self.ownership.get(attribute, self.ownership.get("default", "scim"))


# --------------------------------------------------------------------------- helpers


class _Entry:
    """Reads typed keys out of one table, collecting problems."""

    def __init__(self, where: str, table: Mapping[str, Any], issues: Issues) -> None:
        self.where = where
        self.table = table
        self.issues = issues
        self.used: set[str] = set()

    def issue(self, key: str, reason: str) -> None:
        self.issues.append((f"{self.where}.{key}" if key else self.where, reason))

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.table.get(key)

    def str_(self, key: str, default: str = "", *, choices: Sequence[str] = ()) -> str:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.issue(key, f"expected a string, got {_show(value)}")
            return default
        if choices:
            match = [c for c in choices if c.lower() == value.lower()]
            if not match:
                self.issue(key, f"expected one of {', '.join(choices)}, got {_show(value)}")
                return default
            return match[0]
        return value

    def bool_(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.issue(key, f"expected a boolean, got {_show(value)}")
            return default
        return value

    def strs(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.issue(key, f"expected a list of non-empty strings, got {_show(value)}")
            return default
        return tuple(value)

    def duration(self, key: str, default: float) -> float:
        from scimd.config import parse_duration

        value = self.raw(key)
        if value is None:
            return default
        try:
            return parse_duration(value)
        except (ValueError, TypeError, AttributeError):
            self.issue(
                key, f'expected a duration (seconds, or "30s", "5m", "1h"), got {_show(value)}'
            )
            return default

    def str_map(self, key: str, default: Mapping[str, str]) -> dict[str, str]:
        value = self.raw(key)
        if value is None:
            return dict(default)
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
        ):
            self.issue(key, f"expected a table of strings, got {_show(value)}")
            return dict(default)
        return dict(value)

    def unknown(self, known: Sequence[str]) -> None:
        for key in self.table:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                extra = f' (did you mean "{hint[0]}"?)' if hint else ""
                self.issue(key, f"unknown key{extra}; known keys: {', '.join(known)}")


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _entries(name: str, value: Any, issues: Issues) -> list[tuple[str, Mapping[str, Any]]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        issues.append((name, f"expected an array of tables ([[{name}]]), got {_show(value)}"))
        return []
    return [(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _id(entry: _Entry, seen: set[str]) -> str:
    ident = entry.str_("id")
    if not ident or not _ID_RE.match(ident):
        entry.issue("id", "required: letters, digits, '.', '_' or '-' (at most 64)")
    elif ident in seen:
        entry.issue("id", f"duplicate id {ident!r}")
    seen.add(ident)
    return ident


# --------------------------------------------------------------------------- callers

_CALLER_KEYS = ("id", "auth", "secret", "allowed_idps", "spki_sha256")


def parse_callers(value: Any, deref: Deref) -> tuple[tuple[JitCaller, ...], Issues]:
    """``[[jit.callers]]`` -> callers, problems."""
    issues: Issues = []
    out: list[JitCaller] = []
    seen: set[str] = set()
    for where, table in _entries("jit.callers", value, issues):
        e = _Entry(where, table, issues)
        before = len(issues)
        ident = _id(e, seen)
        auth = e.str_("auth", "hmac", choices=("hmac", "bearer", "mtls"))
        pins = _pins(e, required=auth == "mtls")
        secret = ""
        raw = e.raw("secret")
        if auth == "mtls":
            if raw is not None:
                e.issue("secret", "an mtls caller has no secret (its certificate is pinned)")
            allowed = e.strs("allowed_idps")
            if not allowed:
                e.issue("allowed_idps", "required: the IdPs this caller may speak for")
            e.unknown(_CALLER_KEYS)
            out.append(
                JitCaller(id=ident, auth=auth, secret="", allowed_idps=allowed, spki_sha256=pins)
            )
            continue
        if "spki_sha256" in table:
            e.issue("spki_sha256", 'only for auth = "mtls"')
        if isinstance(raw, dict):
            try:
                secret = deref(raw)
            except ValueError as exc:
                e.issue("secret", str(exc))
        elif isinstance(raw, str) and raw:
            e.issue(
                "secret",
                'secrets must not be written in the file; use { "$env" = "NAME" } or '
                '{ "$file" = "/run/secrets/name" }',
            )
        elif raw is not None:
            e.issue("secret", f"expected a secret reference, got {_show(raw)}")
        if raw is not None and not secret and len(issues) == before:
            e.issue("secret", "the secret is empty")
        if raw is None:
            e.issue("secret", "required")
        elif auth == "hmac" and secret and len(_hmac_key_bytes(secret)) < 16:
            e.issue("secret", "an hmac secret must be at least 16 bytes")
        allowed = e.strs("allowed_idps")
        if not allowed:
            e.issue("allowed_idps", "required: the IdPs this caller may speak for")
        e.unknown(_CALLER_KEYS)
        out.append(JitCaller(id=ident, auth=auth, secret=secret, allowed_idps=allowed))
    return tuple(out), issues


def _pins(e: _Entry, *, required: bool) -> tuple[bytes, ...]:
    """``spki_sha256``: base64 SHA-256 digests of SubjectPublicKeyInfo (``openssl x509
    -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary |
    base64``), as in HPKP / ``curl --pinnedpubkey sha256//...``."""
    raw = e.raw("spki_sha256")
    if raw is None:
        if required:
            e.issue("spki_sha256", "required for an mtls caller: base64 SHA-256 of the key")
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
        e.issue("spki_sha256", f"expected a list of base64 SHA-256 digests, got {_show(raw)}")
        return ()
    pins: list[bytes] = []
    for pin in raw:
        text = pin.strip().removeprefix("sha256//")
        try:
            digest = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 32:
            e.issue("spki_sha256", f"{pin!r} is not a base64 SHA-256 digest (32 bytes)")
            continue
        pins.append(digest)
    return tuple(pins)


def _hmac_key_bytes(secret: str) -> bytes:
    from scimd.jit.caller import hmac_key

    return hmac_key(secret)


# --------------------------------------------------------------------------- IdPs

_OIDC_ONLY = ("issuer", "audiences", "jwks_uri", "jwks", "jwks_file", "algorithms")
_SAML_ONLY = (
    "idp_entity_id",
    "sp_entity_id",
    "acs_urls",
    "signing_certs",
    "signing_certs_file",
    "subject_source",
    "email_attribute",
    "allow_idp_initiated",
    "max_response_bytes",
    "decryption_key",
)
_IDP_KEYS = (
    "id",
    "protocol",
    "mode",
    "tenant",
    *_OIDC_ONLY,
    "max_token_age",
    "jwks_cache_ttl",
    "jwks_refetch_cooldown",
    "jwks_timeout",
    "allowed_email_domains",
    "allow_subdomains",
    "trust_email",
    "lowercase_local_part",
    "create_users",
    "scim_authoritative",
    "scim_correlation",
    "link_by_email",
    "update_on_login",
    "on_deprovisioned",
    "on_deleted",
    "attributes",
    "ownership",
    "groups",
    *_SAML_ONLY,
)
MAX_SAML_RESPONSE = 192 * 1024
"""Upper bound of ``max_response_bytes`` (its base64 must fit the 256 KiB request cap)."""


def parse_idps(
    value: Any, base_dir: Path, deref: Deref | None = None
) -> tuple[tuple[JitIdp, ...], Issues]:
    """``[[jit.idp]]`` -> IdPs, problems (``deref`` resolves secret references)."""
    issues: Issues = []
    out: list[JitIdp] = []
    seen: set[str] = set()
    for where, table in _entries("jit.idp", value, issues):
        e = _Entry(where, table, issues)
        ident = _id(e, seen)
        protocol = e.str_("protocol", "oidc", choices=("oidc", "saml2"))
        saml = protocol == "saml2"
        for key in _SAML_ONLY if not saml else _OIDC_ONLY:
            if key in table:
                other = "saml2" if not saml else "oidc"
                e.issue(key, f'only for protocol = "{other}" (this IdP is {protocol})')
        mode = e.str_("mode", "verify", choices=("verify", "trusted_claims"))
        verify = mode == "verify"
        issuer = e.str_("issuer")
        audiences = e.strs("audiences")
        algorithms = e.strs("algorithms", ("RS256",))
        for alg in algorithms:
            if alg not in ASYMMETRIC_ALGORITHMS:
                e.issue(
                    "algorithms",
                    f"{alg!r} is not allowed; use asymmetric algorithms only: "
                    + ", ".join(ASYMMETRIC_ALGORITHMS),
                )
        jwks_uri = e.str_("jwks_uri")
        jwks = _jwks(e, base_dir)
        if verify and not saml:
            if not issuer:
                e.issue("issuer", "required in verify mode")
            if not audiences:
                e.issue("audiences", "required in verify mode (the client id)")
            if bool(jwks_uri) == (jwks is not None):
                e.issue("jwks_uri", "give exactly one of jwks_uri, jwks or jwks_file")
        if jwks_uri:
            parts = urlsplit(jwks_uri)
            loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                e.issue("jwks_uri", "must be an https URL (http only on loopback)")
        correlation: Correlation | None = Correlation()
        raw_corr = e.raw("scim_correlation")
        if raw_corr is not None:
            if raw_corr in ("none", False):
                correlation = None
            elif (
                isinstance(raw_corr, dict)
                and set(raw_corr) <= {"scim_attribute", "claim"}
                and all(isinstance(v, str) and v for v in raw_corr.values())
            ):
                correlation = Correlation(**raw_corr)
            else:
                e.issue(
                    "scim_correlation",
                    '{ scim_attribute = "externalId", claim = "sub" } or "none", got '
                    + _show(raw_corr),
                )
        attributes = e.str_map("attributes", {"userName": "email"})
        ownership = e.str_map("ownership", {"default": "scim"})
        for attr, owner in ownership.items():
            if owner not in OWNERSHIP:
                e.issue(f"ownership.{attr}", f"expected one of {', '.join(OWNERSHIP)}")
        groups = _groups(e)
        saml_keys = _saml(e, base_dir, required=verify and saml)
        saml_keys["decryption_keys"] = _decryption_keys(e, deref)
        idp = JitIdp(
            id=ident,
            protocol=protocol,
            mode=mode,
            tenant=e.str_("tenant"),
            issuer=issuer,
            audiences=audiences,
            jwks_uri=jwks_uri,
            jwks=jwks,
            algorithms=algorithms,
            max_token_age=e.duration("max_token_age", 600.0),
            jwks_cache_ttl=e.duration("jwks_cache_ttl", 3600.0),
            jwks_refetch_cooldown=e.duration("jwks_refetch_cooldown", 60.0),
            jwks_timeout=e.duration("jwks_timeout", 5.0),
            allowed_email_domains=tuple(
                d.lower().rstrip(".") for d in e.strs("allowed_email_domains")
            ),
            allow_subdomains=e.bool_("allow_subdomains", False),
            trust_email=e.bool_("trust_email", False),
            lowercase_local_part=e.bool_("lowercase_local_part", True),
            create_users=e.bool_("create_users", True),
            scim_authoritative=e.bool_("scim_authoritative", False),
            scim_correlation=correlation,
            link_by_email=e.str_("link_by_email", "never", choices=LINK_BY_EMAIL),
            update_on_login=e.str_("update_on_login", "owned_attributes", choices=UPDATE_ON_LOGIN),
            on_deprovisioned=e.str_("on_deprovisioned", "deny", choices=("deny", "reactivate")),
            on_deleted=e.str_("on_deleted", "deny", choices=("deny", "recreate")),
            attributes=attributes,
            ownership=ownership,
            groups=groups,
            **saml_keys,
        )
        if idp.link_by_email == "verified_domain_only" and not idp.allowed_email_domains:
            e.issue(
                "link_by_email",
                "verified_domain_only needs allowed_email_domains (or use never)",
            )
        e.unknown(_IDP_KEYS)
        out.append(idp)
    return tuple(out), issues


def _jwks(e: _Entry, base_dir: Path) -> Mapping[str, Any] | None:
    inline = e.raw("jwks")
    path = e.raw("jwks_file")
    if inline is not None and path is not None:
        e.issue("jwks", "give jwks or jwks_file, not both")
        return None
    doc: Any = inline
    key = "jwks"
    if path is not None:
        key = "jwks_file"
        if not isinstance(path, str) or not path:
            e.issue(key, f"expected a path, got {_show(path)}")
            return None
        file = Path(path).expanduser()
        file = file if file.is_absolute() else base_dir / file
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            e.issue(key, f"cannot read {file}: {exc.strerror or exc}")
            return None
        except ValueError as exc:
            e.issue(key, f"{file} is not JSON: {exc}")
            return None
    if doc is None:
        return None
    from scimd.jit.oidc import load_key_set

    try:
        load_key_set(doc)
    except ValueError as exc:
        e.issue(key, str(exc))
        return None
    return dict(doc)


def _saml(e: _Entry, base_dir: Path, *, required: bool) -> dict[str, Any]:
    """The SAML 2.0 keys of one IdP (``required``: a saml2 IdP in verify mode)."""
    out: dict[str, Any] = {
        "idp_entity_id": e.str_("idp_entity_id"),
        "sp_entity_id": e.str_("sp_entity_id"),
        "acs_urls": e.strs("acs_urls"),
        "subject_source": e.str_("subject_source", "nameid"),
        "email_attribute": e.str_("email_attribute", "email"),
        "allow_idp_initiated": e.bool_("allow_idp_initiated", False),
    }
    if out["subject_source"].lower() == "nameid":
        out["subject_source"] = "nameid"
    size = e.raw("max_response_bytes")
    if size is None:
        out["max_response_bytes"] = 128 * 1024
    elif (
        isinstance(size, bool) or not isinstance(size, int) or not 1024 <= size <= MAX_SAML_RESPONSE
    ):
        e.issue("max_response_bytes", f"expected an integer from 1024 to {MAX_SAML_RESPONSE}")
        out["max_response_bytes"] = 128 * 1024
    else:
        out["max_response_bytes"] = size
    out["signing_certs"] = _signing_certs(e, base_dir)
    for url in out["acs_urls"]:
        if urlsplit(url).scheme not in ("https", "http"):
            e.issue("acs_urls", f"{url!r} is not an http(s) URL")
    if required:
        for key in ("idp_entity_id", "sp_entity_id", "acs_urls"):
            if not out[key]:
                e.issue(key, "required for a saml2 IdP in verify mode")
        if (
            not out["signing_certs"]
            and "signing_certs" not in e.table
            and ("signing_certs_file" not in e.table)
        ):
            e.issue(
                "signing_certs",
                "required: the IdP's signing certificates (PEM), or signing_certs_file",
            )
    return out


def _decryption_keys(e: _Entry, deref: Deref | None) -> tuple[str, ...]:
    """``decryption_key``: a secret reference (or a list of them, for rollover) to the SP's
    RSA private key in PEM. Never a literal in the file, never shown in an error."""
    from scimd.jit.xmlenc import load_decryption_keys

    raw = e.raw("decryption_key")
    if raw is None:
        return ()
    refs = raw if isinstance(raw, list) else [raw]
    pems: list[str] = []
    for ref in refs:
        if not isinstance(ref, dict):
            e.issue(
                "decryption_key",
                'a private key must not be written in the file; use { "$file" = "/path" } '
                'or { "$env" = "NAME" }',
            )
            return ()
        if deref is None:
            e.issue("decryption_key", "secret references cannot be resolved here")
            return ()
        try:
            pem = deref(ref)
            load_decryption_keys([pem])
        except ValueError as exc:
            e.issue("decryption_key", str(exc))
            return ()
        pems.append(pem)
    return tuple(pems)


def _signing_certs(e: _Entry, base_dir: Path) -> tuple[str, ...]:
    inline = e.raw("signing_certs")
    path = e.raw("signing_certs_file")
    if inline is not None and path is not None:
        e.issue("signing_certs", "give signing_certs or signing_certs_file, not both")
        return ()
    key = "signing_certs"
    pems: list[str] = []
    if path is not None:
        key = "signing_certs_file"
        if not isinstance(path, str) or not path:
            e.issue(key, f"expected a path, got {_show(path)}")
            return ()
        file = Path(path).expanduser()
        file = file if file.is_absolute() else base_dir / file
        try:
            pems = [file.read_text(encoding="ascii")]
        except (OSError, UnicodeDecodeError) as exc:
            e.issue(key, f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}")
            return ()
    elif isinstance(inline, str) and inline:
        pems = [inline]
    elif isinstance(inline, list) and inline and all(isinstance(p, str) and p for p in inline):
        pems = list(inline)
    elif inline is not None:
        e.issue(key, f"expected PEM text or a list of PEM texts, got {_show(inline)}")
        return ()
    if not pems:
        return ()
    from scimd.jit.saml import load_signing_certs

    try:
        load_signing_certs("".join(p if p.endswith("\n") else p + "\n" for p in pems))
    except ValueError as exc:
        e.issue(key, str(exc))
        return ()
    return tuple(p if p.endswith("\n") else p + "\n" for p in pems)


def _groups(e: _Entry) -> GroupsConfig:
    raw = e.raw("groups")
    if raw is None:
        return GroupsConfig()
    if not isinstance(raw, dict):
        e.issue("groups", f"expected a table, got {_show(raw)}")
        return GroupsConfig()
    g = _Entry(f"{e.where}.groups", raw, e.issues)
    cfg = GroupsConfig(
        claim=g.str_("claim", "groups"),
        mode=g.str_("mode", "none", choices=GROUP_MODES),
        managed=g.strs("managed"),
        required=g.strs("required"),
    )
    g.unknown(("claim", "mode", "managed", "required"))
    return cfg


def check_references(callers: Sequence[JitCaller], idps: Sequence[JitIdp]) -> list[tuple[str, str]]:
    """Cross-checks: every ``allowed_idps`` entry names a configured IdP."""
    known = {i.id for i in idps}
    issues: Issues = []
    for n, caller in enumerate(callers):
        for name in caller.allowed_idps:
            if name not in known:
                issues.append(
                    (
                        f"jit.callers[{n}].allowed_idps",
                        f"unknown IdP {name!r}; configured: {', '.join(sorted(known)) or 'none'}",
                    )
                )
    return issues
