"""``mtls`` JIT callers: a real TLS server on 127.0.0.1 (scimd's own ``server_ssl_context``)
and aiohttp clients presenting client certificates from a throwaway CA.

The caller is recognised by the SHA-256 of its certificate's SubjectPublicKeyInfo only; a
certificate of the same CA that is not pinned, no certificate, or a forwarded certificate
header are 401; a pinned caller speaking for another IdP is 403; SCIM clients without a
certificate keep working on the same port.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scimd.app import create_app, server_ssl_context
from scimd.config import ConfigError, load_config
from scimd.http.context import RUNTIME
from scimd.jit.caller import authenticate, spki_sha256
from scimd.jit.config import JitCaller, parse_callers
from scimd.jit.errors import JitError
from scimd.plugins import PluginManager
from tests._jit_helpers import SECRET, jit_settings, make_idp, make_token

# --------------------------------------------------------------------------- throwaway PKI


@dataclass
class Pem:
    cert: Path
    key: Path
    der: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    tmp: Path,
    stem: str,
    cn: str,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
    server: bool = False,
) -> tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if issuer_cert is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer_cert.public_key()  # type: ignore[arg-type]
                ),
                critical=False,
            )
    if server:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = tmp / f"{stem}.pem", tmp / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pem(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)), cert, key


@dataclass
class Pki:
    ca: Pem
    server: Pem
    good: Pem
    other: Pem
    foreign: Pem
    """Signed by another CA: the TLS handshake itself refuses it."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = _issue(tmp, "ca", "scimd test CA", ca=True)
    issuer = (ca_cert, ca_key)
    server, _c, _k = _issue(tmp, "server", "127.0.0.1", issuer=issuer, server=True)
    good, _c, _k = _issue(tmp, "good", "sso-gateway", issuer=issuer)
    other, _c, _k = _issue(tmp, "other", "someone-else", issuer=issuer)
    _rogue, rogue_cert, rogue_key = _issue(tmp, "rogue-ca", "rogue CA", ca=True)
    foreign, _c, _k = _issue(tmp, "foreign", "sso-gateway", issuer=(rogue_cert, rogue_key))
    return Pki(ca, server, good, other, foreign)


def pin(pem: Pem) -> bytes:
    return spki_sha256(pem.der)


def pin_b64(pem: Pem) -> str:
    return base64.b64encode(pin(pem)).decode()


# --------------------------------------------------------------------------- server


@dataclass
class TlsScimd:
    url: str
    ca: Path
    token: str
    app: web.Application

    def session(self, client: Pem | None = None) -> aiohttp.ClientSession:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if client is not None:
            ctx.load_cert_chain(str(client.cert), str(client.key))
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))

    async def login(
        self, client: Pem | None, idp: str = "okta", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        body = {"idp": idp, "protocol": "oidc", "id_token": make_token(), "nonce": "n-1"}
        async with (
            self.session(client) as s,
            s.post(
                self.url + "/jit/v1/logins",
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json", **(headers or {})},
            ) as resp,
        ):
            return resp.status, orjson.loads(await resp.read())


@pytest.fixture
async def tls_scimd(pki: Pki, tmp_path: Path) -> AsyncIterator[TlsScimd]:
    callers = (
        JitCaller(
            id="mtls-gw",
            auth="mtls",
            secret="",
            allowed_idps=("okta",),
            spki_sha256=(pin(pki.good),),
        ),
        JitCaller(id="hmac-gw", auth="hmac", secret=SECRET, allowed_idps=("okta", "other")),
    )
    base = jit_settings(tmp_path, (make_idp(), make_idp(id="other")), callers=callers)
    settings = dataclasses.replace(
        base,
        server=dataclasses.replace(
            base.server,
            tls_cert_file=str(pki.server.cert),
            tls_key_file=str(pki.server.key),
            tls_client_ca_file=str(pki.ca.cert),
        ),
    )
    app = create_app(settings, PluginManager.create(entry_points=False))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_ssl_context(settings))
    try:
        _record, token = await app[RUNTIME].state.create_token(
            tenant="default", scopes=("read", "write")
        )
        url = str(server.make_url("")).rstrip("/")
        assert url.startswith("https://127.0.0.1:")
        yield TlsScimd(url, pki.ca.cert, token, app)
    finally:
        await server.close()


async def test_pinned_client_certificate_is_accepted(tls_scimd: TlsScimd, pki: Pki) -> None:
    status, body = await tls_scimd.login(pki.good)
    assert status == 201, body
    assert body["outcome"] == "created"
    events = await tls_scimd_events(tls_scimd)
    assert ("jit.login.accepted", "jit:mtls-gw") in events


async def tls_scimd_events(t: TlsScimd) -> list[tuple[str, str | None]]:
    async with (
        t.session() as s,
        s.get(t.url + "/scim/v2/Users", headers={"Authorization": f"Bearer {t.token}"}) as resp,
    ):
        assert resp.status == 200  # a SCIM client without a certificate still works
    return [(e.type, e.actor) for e in await t.app[RUNTIME].state.list_events(type_prefix="jit.")]


async def test_certificate_of_the_same_ca_not_pinned_is_401(tls_scimd: TlsScimd, pki: Pki) -> None:
    status, body = await tls_scimd.login(pki.other)
    assert (status, body["reason"]) == (401, "unauthenticated")


async def test_no_certificate_is_401(tls_scimd: TlsScimd) -> None:
    status, body = await tls_scimd.login(None)
    assert (status, body["reason"]) == (401, "unauthenticated")


async def test_forwarded_certificate_header_is_not_trusted(tls_scimd: TlsScimd, pki: Pki) -> None:
    pem = pki.good.cert.read_text()
    forged = {
        "X-Client-Cert": pem.replace("\n", ""),
        "X-SSL-Client-Cert": pem.replace("\n", " "),
        "X-Forwarded-Client-Cert": f"Hash={hashlib.sha256(pki.good.der).hexdigest()}",
    }
    status, body = await tls_scimd.login(None, headers=forged)
    assert (status, body["reason"]) == (401, "unauthenticated")


async def test_pinned_caller_for_another_idp_is_403(tls_scimd: TlsScimd, pki: Pki) -> None:
    status, body = await tls_scimd.login(pki.good, idp="other")
    assert (status, body["reason"]) == (403, "caller_not_allowed_for_idp")


async def test_certificate_of_another_ca_fails_the_handshake(tls_scimd: TlsScimd, pki: Pki) -> None:
    with pytest.raises(aiohttp.ClientError):
        await tls_scimd.login(pki.foreign)


async def test_header_credentials_win_over_the_certificate(tls_scimd: TlsScimd, pki: Pki) -> None:
    # A pinned certificate plus a bad hmac signature: judged by the signature, refused.
    bad = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
    status, body = await tls_scimd.login(pki.good, headers=bad)
    assert (status, body["reason"]) == (401, "unauthenticated")


# --------------------------------------------------------------------------- unit + config


def test_authenticate_compares_every_pin(pki: Pki) -> None:
    callers = [
        JitCaller(id="a", auth="mtls", secret="", allowed_idps=("x",), spki_sha256=(b"\0" * 32,)),
        JitCaller(
            id="b",
            auth="mtls",
            secret="",
            allowed_idps=("x",),
            spki_sha256=(b"\1" * 32, pin(pki.other)),
        ),
    ]
    assert authenticate({}, b"", callers, 0, peer_cert=pki.other.der).caller.id == "b"
    got = authenticate({"Idempotency-Key": "k-1"}, b"", callers, 0, peer_cert=pki.other.der)
    assert got.idempotency_key == "k-1"
    with pytest.raises(JitError) as info:
        authenticate({}, b"", callers, 0, peer_cert=pki.good.der)
    assert info.value.status == 401
    with pytest.raises(JitError):
        authenticate({}, b"", callers, 0, peer_cert=b"not a certificate")


def test_pin_matches_openssl_recipe(pki: Pki) -> None:
    cert = x509.load_pem_x509_certificate(pki.good.cert.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert pin(pki.good) == hashlib.sha256(spki).digest()


def _deref(_v: object) -> str:
    raise AssertionError("no secret expected")


def test_parse_mtls_callers(pki: Pki) -> None:
    table = {
        "id": "gw",
        "auth": "mtls",
        "spki_sha256": [pin_b64(pki.good), "sha256//" + pin_b64(pki.other)],
        "allowed_idps": ["okta"],
    }
    (caller,), issues = parse_callers([table], _deref)
    assert issues == []
    assert caller.spki_sha256 == (pin(pki.good), pin(pki.other))
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in table.items() if k != "spki_sha256"}, "spki_sha256"),
        ({**table, "spki_sha256": ["abc"]}, "spki_sha256"),
        ({**table, "spki_sha256": []}, "spki_sha256"),
        ({**table, "secret": {"$env": "X"}}, "secret"),
    ]
    for bad, key in cases:
        _c, issues = parse_callers([bad], _deref)
        assert [k for k, _r in issues] == [f"jit.callers[0].{key}"], bad


def _write_config(tmp_path: Path, pki: Pki, server: str) -> Path:
    path = tmp_path / "scimd.toml"
    path.write_text(
        f"""
[server]
{server}

[jit]
enabled = true

[[jit.callers]]
id = "gw"
auth = "mtls"
spki_sha256 = ["{pin_b64(pki.good)}"]
allowed_idps = ["okta"]

[[jit.idp]]
id = "okta"
mode = "trusted_claims"
"""
    )
    return path


def test_config_tls_keys(pki: Pki, tmp_path: Path) -> None:
    for name in ("server.pem", "server.key", "ca.pem"):
        src = {"server.pem": pki.server.cert, "server.key": pki.server.key, "ca.pem": pki.ca.cert}
        (tmp_path / name).write_bytes(src[name].read_bytes())
    good = (
        'tls_cert_file = "server.pem"\ntls_key_file = "server.key"\ntls_client_ca_file = "ca.pem"'
    )
    s = load_config(_write_config(tmp_path, pki, good), environ={}).settings
    assert s.server.tls_cert_file == str(tmp_path / "server.pem")
    assert s.server.tls_client_ca_file == str(tmp_path / "ca.pem")
    ctx = server_ssl_context(s)
    assert ctx is not None and ctx.verify_mode == ssl.CERT_OPTIONAL

    bad = {
        'tls_cert_file = "server.pem"\ntls_key_file = "server.key"': "jit.callers[0].auth",
        'tls_cert_file = "server.pem"\ntls_client_ca_file = "ca.pem"': "server.tls_key_file",
        'tls_client_ca_file = "ca.pem"': "server.tls_client_ca_file",
        good.replace('"server.pem"', '"missing.pem"'): "server.tls_cert_file",
    }
    for server, key in bad.items():
        with pytest.raises(ConfigError) as info:
            load_config(_write_config(tmp_path, pki, server), environ={})
        assert key in str(info.value), (server, str(info.value))


def test_no_tls_by_default(tmp_path: Path) -> None:
    from tests._http_helpers import make_settings

    assert server_ssl_context(make_settings(tmp_path)) is None
