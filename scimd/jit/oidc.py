"""OIDC ``id_token`` verification (JIT.md "Verification checklist", OIDC part).

* The algorithm comes from the IdP's configuration only: a header ``alg`` not configured
  (``none``, ``HS256`` ...) is ``unsupported_algorithm``; the configuration accepts only
  asymmetric algorithms, so an HMAC keyed with a public key cannot happen.
* Keys by ``kid`` from the pinned ``jwks`` or from ``jwks_uri``, fetched asynchronously
  (aiohttp, no redirects, size-capped), cached for ``jwks_cache_ttl``, refetched when an
  unknown ``kid`` appears but at most once per ``jwks_refetch_cooldown``. ``jku``, ``x5u``
  and embedded ``jwk`` headers are ignored: keys never come from the token. No keys at all:
  503 ``idp_keys_unavailable`` with Retry-After (fail closed).
* Claims: ``iss`` exact, ``aud`` contains a configured audience, ``azp`` required and
  configured when there are several audiences, ``exp`` required, ``iat`` required and not
  older than ``max_token_age``, ``nbf``, ``nonce`` equal to the caller's (constant time),
  ``sub`` required. ``email_verified`` is true only when the claim is the JSON ``true``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from scimd.jit.config import JitIdp
from scimd.jit.errors import JitError

__all__ = ["JwksCache", "VerifiedToken", "load_key_set", "token_hash", "verify_id_token"]

_MAX_JWKS_BYTES = 256 * 1024
_MAX_TOKEN_BYTES = 16 * 1024
_RETRY_AFTER = 30


def load_key_set(doc: Any) -> KeySet:
    """A JWKS document -> joserfc ``KeySet`` (public keys only); ``ValueError`` if invalid."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
        raise ValueError('a JWKS must be an object with a "keys" array')
    keys = []
    for jwk in doc["keys"]:
        if not isinstance(jwk, Mapping) or jwk.get("kty") not in ("RSA", "EC", "OKP"):
            # Symmetric ("oct") keys never verify an IdP token; skip unknown key types.
            continue
        if any(p in jwk for p in ("d", "p", "q")):
            raise ValueError("a JWKS for verification must not contain private keys")
        keys.append(dict(jwk))
    try:
        return KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"invalid JWKS: {exc}") from None


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a raw token: what the audit log carries, never the token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _unavailable(internal: str) -> JitError:
    return JitError(
        503,
        "idp_keys_unavailable",
        "The identity provider's signing keys cannot be obtained; retry later",
        internal=internal,
        headers={"Retry-After": str(_RETRY_AFTER)},
    )


class JwksCache:
    """The keys of one IdP: pinned, or fetched from ``jwks_uri`` and cached."""

    def __init__(self, idp: JitIdp, session_factory: Any) -> None:
        self.idp = idp
        self._session_factory = session_factory
        self._keys: KeySet | None = load_key_set(idp.jwks) if idp.jwks is not None else None
        self._fetched = 0.0  # monotonic time of the last successful fetch
        self._attempted = float("-inf")  # monotonic time of the last fetch attempt
        self._lock = asyncio.Lock()
        self.fetches = 0
        """Number of fetch attempts (observability and tests)."""

    @property
    def pinned(self) -> bool:
        return self.idp.jwks is not None

    async def key_set(self, kid: str | None) -> KeySet:
        """Keys that should hold ``kid``: cached, else (re)fetched within the cooldown."""
        if self.pinned:
            assert self._keys is not None
            return self._keys
        now = time.monotonic()
        keys = self._keys
        stale = keys is None or now - self._fetched > self.idp.jwks_cache_ttl
        unknown = keys is not None and kid is not None and not _has_kid(keys, kid)
        if stale or unknown:
            async with self._lock:
                keys = self._keys
                now = time.monotonic()
                stale = keys is None or now - self._fetched > self.idp.jwks_cache_ttl
                unknown = keys is not None and kid is not None and not _has_kid(keys, kid)
                cooled = now - self._attempted >= self.idp.jwks_refetch_cooldown
                if (stale or unknown) and cooled:
                    await self._fetch(keep_old=keys is not None)
                keys = self._keys
        if keys is None:
            raise _unavailable(f"no keys for IdP {self.idp.id} from {self.idp.jwks_uri}")
        return keys

    async def _fetch(self, *, keep_old: bool) -> None:
        self._attempted = time.monotonic()
        self.fetches += 1
        try:
            session: aiohttp.ClientSession = await self._session_factory()
            timeout = aiohttp.ClientTimeout(total=self.idp.jwks_timeout)
            async with session.get(
                self.idp.jwks_uri, allow_redirects=False, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                data = await resp.content.read(_MAX_JWKS_BYTES + 1)
                if len(data) > _MAX_JWKS_BYTES:
                    raise ValueError("JWKS too large")
            keys = load_key_set(json.loads(data))
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            if keep_old:
                return  # keep serving the cached keys
            raise _unavailable(f"JWKS fetch from {self.idp.jwks_uri} failed: {exc}") from None
        self._keys = keys
        self._fetched = time.monotonic()


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    claims: dict[str, Any]
    header: dict[str, Any]
    replay_key: str
    """``jti:<jti>`` or ``sha256:<hash>``: one-time use until ``expires``."""
    expires: float
    """Unix time until which the replay key must be remembered (exp + skew)."""
    token_sha256: str


def _reject(reason: str, internal: str) -> JitError:
    # Generic to the caller; the exact reason goes to the audit log.
    return JitError(422, reason, "The identity assertion was rejected", internal=internal)


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise _reject("invalid_signature", "not a compact JWS (3 parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _reject("invalid_signature", "undecodable JOSE header") from None
    if not isinstance(header, dict):
        raise _reject("invalid_signature", "JOSE header is not an object")
    return header


async def verify_id_token(
    token: Any,
    nonce: Any,
    idp: JitIdp,
    keys: JwksCache,
    *,
    clock_skew: float,
    now: float | None = None,
) -> VerifiedToken:
    """Verify an ``id_token`` for ``idp``; raises ``JitError`` (422/503) on any failure."""
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_BYTES:
        raise JitError(400, "bad_request", "id_token must be a non-empty string (compact JWT)")
    if not isinstance(nonce, str) or not nonce:
        raise JitError(400, "bad_request", "nonce is required: the one sent in the auth request")
    header = _header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in idp.algorithms:
        raise _reject("unsupported_algorithm", f"alg {alg!r} not in {list(idp.algorithms)}")
    if "crit" in header:
        raise _reject("invalid_signature", "crit header not supported")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _reject("invalid_signature", "kid is not a string")
    key_set = await keys.key_set(kid)
    if kid is not None:
        candidates = [k for k in key_set.keys if k.kid == kid]
    else:
        candidates = list(key_set.keys)
        if len(candidates) != 1:
            raise _reject("invalid_signature", "token without kid and not exactly one key")
    if not candidates:
        raise _reject("invalid_signature", f"unknown kid {kid!r}")
    try:
        decoded = jwt.decode(token, candidates[0], algorithms=[alg])
    except JoseError as exc:
        raise _reject("invalid_signature", f"signature check failed: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise _reject("invalid_signature", f"undecodable token: {exc}") from None
    claims = dict(decoded.claims)
    t = time.time() if now is None else now
    _check_claims(claims, nonce, idp, clock_skew, t)
    exp = float(claims["exp"])
    digest = token_hash(token)
    jti = claims.get("jti")
    replay = f"jti:{jti}" if isinstance(jti, str) and jti else f"sha256:{digest}"
    return VerifiedToken(
        claims=claims,
        header=dict(decoded.header),
        replay_key=replay,
        expires=exp + clock_skew,
        token_sha256=digest,
    )


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _reject("invalid_signature", f"{name} is not a number")
    return float(value)


def _check_claims(
    claims: Mapping[str, Any], nonce: str, idp: JitIdp, skew: float, now: float
) -> None:
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss != idp.issuer:
        raise _reject("invalid_issuer", f"iss {iss!r} != {idp.issuer!r}")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise _reject("invalid_audience", "aud missing or malformed")
    if not set(audiences) & set(idp.audiences):
        raise _reject("invalid_audience", f"aud {audiences!r} has none of {idp.audiences!r}")
    azp = claims.get("azp")
    if len(audiences) > 1 and (not isinstance(azp, str) or azp not in idp.audiences):
        raise _reject("invalid_audience", f"several audiences and azp {azp!r} not configured")
    if azp is not None and (not isinstance(azp, str) or azp not in idp.audiences):
        raise _reject("invalid_audience", f"azp {azp!r} not configured")
    exp = _number(claims, "exp")
    if exp is None:
        raise _reject("expired", "exp missing")
    if now > exp + skew:
        raise _reject("expired", f"exp {exp} is past")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + skew:
        raise _reject("not_yet_valid", f"nbf {nbf} is in the future")
    iat = _number(claims, "iat")
    if iat is None:
        raise _reject("expired", "iat missing")
    if iat > now + skew:
        raise _reject("not_yet_valid", f"iat {iat} is in the future")
    if now - iat > idp.max_token_age + skew:
        raise _reject("expired", f"iat {iat} older than max_token_age")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(
        token_nonce.encode(), nonce.encode()
    ):
        raise _reject("nonce_mismatch", "nonce differs from the caller's")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise _reject("invalid_signature", "sub missing or malformed")
