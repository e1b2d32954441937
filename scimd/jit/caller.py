"""Caller authentication of the JIT hook.

``hmac`` follows Standard Webhooks: headers ``webhook-id``, ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` = space-separated ``v1,<base64 HMAC-SHA256(secret,
id + "." + timestamp + "." + raw body)>`` (several signatures allowed, for secret rotation).
The timestamp must be within 300 s of now; every comparison is constant-time. Secrets may be
given as ``whsec_<base64>`` (the Standard Webhooks form) or as plain text.

``mtls``: the TLS client certificate scimd received (it must serve TLS itself, with
``server.tls_client_ca_file``); the SHA-256 of its SubjectPublicKeyInfo must equal one of
the caller's ``spki_sha256`` pins (constant-time). A request with an ``Authorization`` or
``webhook-*`` header is authenticated by that header, never by the certificate. No
forwarded header (``X-Client-Cert`` ...) is ever trusted.

``bearer`` (development only): ``Authorization: Bearer <secret>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scimd.jit.config import JitCaller
from scimd.jit.errors import JitError

__all__ = [
    "TOLERANCE",
    "AuthenticatedCaller",
    "authenticate",
    "hmac_key",
    "sign",
    "spki_sha256",
]

TOLERANCE = 300
"""Seconds a ``webhook-timestamp`` may differ from now (Standard Webhooks)."""

_ID_RE = re.compile(r"^[A-Za-z0-9._:~+/=-]{1,256}$")


@dataclass(frozen=True, slots=True)
class AuthenticatedCaller:
    caller: JitCaller
    idempotency_key: str | None
    """``webhook-id`` (hmac) or ``Idempotency-Key`` (bearer), if any."""


def hmac_key(secret: str) -> bytes:
    """The HMAC key of a caller secret: ``whsec_<base64>`` decoded, else the UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message (used by callers and tests)."""
    mac = hmac.new(hmac_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def spki_sha256(der_certificate: bytes) -> bytes:
    """SHA-256 of a DER certificate's SubjectPublicKeyInfo (the ``spki_sha256`` pin)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_der_x509_certificate(der_certificate)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def _unauthenticated(internal: str) -> JitError:
    return JitError(
        401,
        "unauthenticated",
        "The caller could not be authenticated",
        internal=internal,
        headers={"WWW-Authenticate": 'Bearer realm="scimd-jit"'},
    )


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    callers: Sequence[JitCaller],
    now: float,
    *,
    peer_cert: bytes | None = None,
) -> AuthenticatedCaller:
    """The caller that sent this request, or ``JitError`` 401 ``unauthenticated``.

    ``peer_cert``: the DER client certificate of the TLS connection, if any."""
    authorization = headers.get("Authorization")
    signed = bool(headers.get("webhook-signature"))
    if authorization is None and not signed and any(c.auth == "mtls" for c in callers):
        return _mtls(headers, peer_cert, callers)
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated("malformed Authorization header")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for caller in callers:
            if caller.auth != "bearer":
                continue
            # Compare hashes: equal length, constant time, all callers tried.
            if hmac.compare_digest(digest, hashlib.sha256(caller.secret.encode()).digest()):
                found = caller
        if found is None:
            raise _unauthenticated("unknown bearer token")
        key = headers.get("Idempotency-Key") or headers.get("webhook-id")
        if key is not None and not _ID_RE.match(key):
            raise JitError(400, "bad_request", "Invalid Idempotency-Key")
        return AuthenticatedCaller(found, key)

    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise _unauthenticated("missing webhook-id, webhook-timestamp or webhook-signature")
    if not _ID_RE.match(msg_id):
        raise _unauthenticated("malformed webhook-id")
    if not re.fullmatch(r"\d{1,12}", stamp.strip()):
        raise _unauthenticated("malformed webhook-timestamp")
    ts = int(stamp.strip())
    if abs(now - ts) > TOLERANCE:
        raise _unauthenticated(f"webhook-timestamp outside the {TOLERANCE}s tolerance")
    presented: list[bytes] = []
    for part in signatures.split():
        version, _, value = part.partition(",")
        if version != "v1":
            continue
        try:
            presented.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not presented:
        raise _unauthenticated("no v1 signature")
    message = f"{msg_id}.{stamp.strip()}.".encode() + body
    found = None
    for caller in callers:
        if caller.auth != "hmac":
            continue
        expected = hmac.new(hmac_key(caller.secret), message, hashlib.sha256).digest()
        for sig in presented:
            if hmac.compare_digest(expected, sig) and found is None:
                found = caller
    if found is None:
        raise _unauthenticated("no signature matches a configured caller secret")
    return AuthenticatedCaller(found, msg_id)


def _mtls(
    headers: Mapping[str, str], peer_cert: bytes | None, callers: Sequence[JitCaller]
) -> AuthenticatedCaller:
    if peer_cert is None:
        raise _unauthenticated("no client certificate and no other credentials")
    try:
        digest = spki_sha256(peer_cert)
    except ValueError:
        raise _unauthenticated("unreadable client certificate") from None
    found = None
    for caller in callers:
        if caller.auth != "mtls":
            continue
        for pin in caller.spki_sha256:
            # Every pin of every caller is compared: no early exit, constant time.
            if hmac.compare_digest(digest, pin) and found is None:
                found = caller
    if found is None:
        raise _unauthenticated(
            "client certificate not pinned (spki sha256 " + base64.b64encode(digest).decode() + ")"
        )
    key = headers.get("Idempotency-Key") or headers.get("webhook-id")
    if key is not None and not _ID_RE.match(key):
        raise JitError(400, "bad_request", "Invalid Idempotency-Key")
    return AuthenticatedCaller(found, key)
