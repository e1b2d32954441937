"""A real SAML 2.0 IdP for end-to-end tests: SimpleSAMLphp (Debian package
``simplesamlphp``, run with ``php -S`` on 127.0.0.1 from a throwaway config directory), and
an HTTP client that performs an SP-initiated login against it (AuthnRequest by
HTTP-Redirect, the ``exampleauth:UserPass`` login form, the auto-POST form carrying the
signed ``SAMLResponse``).

Needs the Debian packages ``simplesamlphp php-cli php-xml php-mbstring php-curl``; when
they are missing the fixture fails under CI=true and is skipped, naming the packages, elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import html
import os
import re
import secrets
import shutil
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from scimd.testing.services import service_missing

__all__ = [
    "SIMPLESAML_ROOT",
    "USERS",
    "SamlLogin",
    "SimpleSamlIdp",
    "throwaway_certificate_pem",
]

SIMPLESAML_ROOT = Path("/usr/share/simplesamlphp")
DEBIAN_CONFIG = Path("/etc/simplesamlphp/config.php")

USERS = {
    "ann": {
        "password": "ann-password",
        "uid": "ann",
        "email": "Ann.Smith@Example.com",
        "givenName": "Ann",
        "sn": "Smith",
    }
}


def _php_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def throwaway_certificate_pem(tmp: Path) -> str:
    """A self-signed RSA certificate (PEM) whose key is written next to it in ``tmp``."""
    return _signing_pair(tmp)


def _signing_pair(tmp: Path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simplesamlphp test idp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp / "idp.crt").write_text(pem)
    (tmp / "idp.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return pem


@dataclass
class SamlLogin:
    saml_response: str
    """The ``SAMLResponse`` form field as the IdP posted it (base64)."""
    request_id: str
    """The ID of the AuthnRequest (the caller's ``in_response_to``)."""
    acs_url: str
    """Where the IdP's form posts to."""


class SimpleSamlIdp:
    """SimpleSAMLphp as an IdP for one SP (``sp_entity_id`` with ``acs_url``)."""

    def __init__(self, tmp: Path, sp_entity_id: str, acs_url: str) -> None:
        self.tmp = tmp
        self.sp_entity_id = sp_entity_id
        self.acs_url = acs_url
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.entity_id = self.base + "saml2/idp/metadata.php"
        self.sso_url = self.base + "saml2/idp/SSOService.php"
        self.certificate_pem = ""
        self.process: asyncio.subprocess.Process | None = None

    # ------------------------------------------------------------------ config

    def _write_config(self) -> Path:
        conf = self.tmp / "config"
        meta = self.tmp / "metadata"
        certs = self.tmp / "cert"
        for d in (conf, meta, certs, self.tmp / "data", self.tmp / "tmp", self.tmp / "log"):
            d.mkdir(parents=True, exist_ok=True)
        self.certificate_pem = _signing_pair(certs)
        overrides = {
            "baseurlpath": self.base,
            "certdir": str(certs) + "/",
            "loggingdir": str(self.tmp / "log") + "/",
            "datadir": str(self.tmp / "data") + "/",
            "tempdir": str(self.tmp / "tmp"),
            "metadatadir": str(meta) + "/",
            "secretsalt": secrets.token_hex(16),
            "auth.adminpassword": secrets.token_hex(16),
            "technicalcontact_email": "admin@example.test",
            "logging.handler": "file",
            "logging.logfile": "simplesamlphp.log",
            "store.type": "phpsession",
            "session.phpsession.savepath": str(self.tmp / "tmp"),
        }
        lines = ["<?php", f"require {_php_str(str(DEBIAN_CONFIG))};"]
        lines += [f"$config[{_php_str(k)}] = {_php_str(v)};" for k, v in overrides.items()]
        lines += [
            "$config['enable.saml20-idp'] = true;",
            "$config['session.cookie.secure'] = false;",
            "$config['session.cookie.samesite'] = null;",
            "$config['module.enable'] = ['exampleauth' => true, 'core' => true, "
            "'saml' => true, 'admin' => true];",
        ]
        (conf / "config.php").write_text("\n".join(lines) + "\n")
        users = []
        for name, u in USERS.items():
            attrs = ", ".join(
                f"{_php_str(k)} => [{_php_str(v)}]" for k, v in u.items() if k not in ("password",)
            )
            users.append(f"    {_php_str(name + ':' + u['password'])} => [{attrs}],")
        (conf / "authsources.php").write_text(
            "<?php\n$config = [\n  'admin' => ['core:AdminPassword'],\n"
            "  'example-userpass' => ['exampleauth:UserPass',\n" + "\n".join(users) + "\n  ],\n];\n"
        )
        persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
        (meta / "saml20-idp-hosted.php").write_text(
            "<?php\n"
            f"$metadata[{_php_str(self.entity_id)}] = [\n"
            "  'host' => '__DEFAULT__',\n"
            "  'privatekey' => 'idp.key',\n"
            "  'certificate' => 'idp.crt',\n"
            "  'auth' => 'example-userpass',\n"
            "  'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',\n"
            "  'saml20.sign.assertion' => true,\n"
            "  'saml20.sign.response' => true,\n"
            "  'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',\n"
            f"  'NameIDFormat' => {_php_str(persistent)},\n"
            "  'authproc' => [\n"
            "    50 => ['class' => 'saml:PersistentNameID', 'attribute' => 'uid'],\n"
            "  ],\n"
            "];\n"
        )
        (meta / "saml20-sp-remote.php").write_text(
            "<?php\n"
            f"$metadata[{_php_str(self.sp_entity_id)}] = [\n"
            f"  'AssertionConsumerService' => {_php_str(self.acs_url)},\n"
            f"  'NameIDFormat' => {_php_str(persistent)},\n"
            "  'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',\n"
            "  'saml20.sign.assertion' => true,\n"
            "  'saml20.sign.response' => true,\n"
            "];\n"
        )
        return conf

    # ------------------------------------------------------------------ process

    async def start(self) -> None:
        php = shutil.which("php")
        if php is None or not (SIMPLESAML_ROOT / "www").is_dir():
            # The project's rule for services: a failure in CI, a reasoned skip elsewhere
            # (so that `make test` passes on a machine with only Python).
            message = (
                "SimpleSAMLphp is not installed: apt-get install -y simplesamlphp php-cli "
                "php-xml php-mbstring php-curl"
            )
            service_missing(message)
        conf = self._write_config()
        env = {**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": str(conf)}
        with (self.tmp / "php.out").open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                php,
                "-S",
                f"127.0.0.1:{self.port}",
                "-t",
                str(SIMPLESAML_ROOT / "www"),
                cwd=str(SIMPLESAML_ROOT / "www"),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        # Wait (bounded) until the socket accepts connections.
        for _ in range(200):
            if self.process.returncode is not None:
                raise RuntimeError("php -S exited: " + (self.tmp / "php.out").read_text())
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            w.close()
            await w.wait_closed()
            return
        raise RuntimeError("php -S did not start listening")

    async def close(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def log(self) -> str:
        parts = []
        for f in (self.tmp / "php.out", self.tmp / "log" / "simplesamlphp.log"):
            if f.exists():
                parts.append(f.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    # ------------------------------------------------------------------ SP side

    def authn_request(self) -> tuple[str, str]:
        """An AuthnRequest for the HTTP-Redirect binding: (its ID, the redirect URL)."""
        request_id = "_" + secrets.token_hex(16)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        xml = (
            '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            f'ID="{request_id}" Version="2.0" IssueInstant="{now}" '
            f'Destination="{self.sso_url}" '
            'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
            f'AssertionConsumerServiceURL="{html.escape(self.acs_url)}">'
            f"<saml:Issuer>{html.escape(self.sp_entity_id)}</saml:Issuer>"
            '<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" '
            'AllowCreate="true"/>'
            "</samlp:AuthnRequest>"
        )
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        raw = deflate.compress(xml.encode()) + deflate.flush()
        query = urlencode({"SAMLRequest": base64.b64encode(raw).decode()})
        return request_id, f"{self.sso_url}?{query}"

    async def login(self, user: str = "ann") -> SamlLogin:
        """SP-initiated login of ``user``: returns the signed SAMLResponse the browser
        would post to the ACS URL."""
        request_id, url = self.authn_request()
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(url) as resp:
                page = await resp.text()
                login_url = str(resp.url)
                if resp.status != 200:
                    raise RuntimeError(f"SSO {resp.status}: {page[:2000]}\n{self.log()}")
            state = _input(page, "AuthState")
            if state is None:
                raise RuntimeError(f"no login form: {page[:2000]}\n{self.log()}")
            form = {"username": user, "password": USERS[user]["password"], "AuthState": state}
            async with http.post(login_url.split("?")[0], data=form) as resp:
                page = await resp.text()
                if resp.status != 200:
                    raise RuntimeError(f"login {resp.status}: {page[:2000]}\n{self.log()}")
        response = _input(page, "SAMLResponse")
        action = re.search(r'<form[^>]*action="([^"]+)"', page)
        if response is None or action is None:
            raise RuntimeError(f"no SAMLResponse form: {page[:2000]}\n{self.log()}")
        return SamlLogin(response, request_id, html.unescape(action.group(1)))


def _input(page: str, name: str) -> str | None:
    for tag in re.findall(r"<input[^>]*>", page):
        if re.search(rf'name="{re.escape(name)}"', tag):
            value = re.search(r'value="([^"]*)"', tag)
            if value:
                return html.unescape(value.group(1))
    return None
