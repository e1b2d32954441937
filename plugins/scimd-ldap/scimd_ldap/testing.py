"""A throwaway OpenLDAP server (slapd) for tests.

``SlapdServer`` writes a cn=config LDIF into a temporary directory (back_mdb, suffix
``dc=example,dc=org``, a root DN with a password, the core/cosine/inetorgperson/nis schemas
from ``/etc/ldap/schema`` plus scimd's own auxiliary schema), loads it with
``slapadd -n0``, starts ``slapd -d 0 -h "ldap://127.0.0.1:<port>/ ldaps://127.0.0.1:<port2>/"
-F <confdir>`` in the foreground as a child process (TLS: a throwaway CA and a server
certificate for 127.0.0.1/localhost made with ``cryptography``, ``ca_file``; StartTLS on
the ldap:// port, LDAPS on ``ldaps_url``; ``other_ca_file`` is a CA that did not sign it),
waits until it answers a bind, loads the base entries
(``ou=people``, ``ou=groups``) and removes everything on ``stop()``.

``slapd_server`` is a session-scoped pytest fixture built on it, with the ``sssvlv`` overlay
(server-side sort and VLV); ``plain_slapd_server`` is a second one without it. Import them
into a ``conftest.py`` (``from scimd_ldap.testing import slapd_server``). When slapd is missing it
fails when ``CI=true`` (a missing service in CI is a failure) and otherwise skips with a
reason naming what is missing (listed by ``pytest -ra``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

__all__ = [
    "BASE_DN",
    "ROOT_DN",
    "ROOT_PASSWORD",
    "SlapdServer",
    "SlapdUnavailable",
    "plain_slapd_server",
    "slapd_server",
]

BASE_DN = "dc=example,dc=org"
ROOT_DN = "cn=admin,dc=example,dc=org"
ROOT_PASSWORD = "scimd-test-secret"  # noqa: S105 - a throwaway test server
SCHEMA_DIR = Path("/etc/ldap/schema")
SCIMD_SCHEMA = Path(__file__).parent / "schema" / "scimd.ldif"
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap")


class SlapdUnavailable(RuntimeError):
    """slapd (or its tools and schemas) is not installed, or the server cannot start."""


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not found:
        raise SlapdUnavailable(f"{name} not found (Debian: apt-get install slapd ldap-utils)")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_tls_files(directory: Path) -> tuple[Path, Path, Path, Path]:
    """A throwaway CA, a server certificate it signs (SAN 127.0.0.1, ::1, localhost) with
    its key, and an unrelated second CA: ``(ca, cert, key, other_ca)`` PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))

    def ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cert, key

    ca_cert, ca_key = ca("scimd test CA")
    other_cert, _ = ca("scimd unrelated CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    other = directory / "other-ca.pem"
    other.write_bytes(other_cert.public_bytes(pem))
    return paths[0], paths[1], paths[2], other


def _config_ldif(
    db_dir: Path, tls: tuple[Path, Path, Path] | None = None, *, sssvlv: bool = True
) -> str:
    module_dir = next((d for d in MODULE_DIRS if Path(d, "back_mdb.la").exists()), None)
    glob = "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n"
    if tls:
        glob += (
            f"olcTLSCACertificateFile: {tls[0]}\nolcTLSCertificateFile: {tls[1]}\n"
            f"olcTLSCertificateKeyFile: {tls[2]}\n"
        )
    parts = [glob]
    if module_dir:
        parts.append(
            "dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n"
            f"olcModulePath: {module_dir}\nolcModuleLoad: back_mdb\n"
            + ("olcModuleLoad: sssvlv\n" if sssvlv else "")
        )
    parts.append("dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n")
    for name in ("core", "cosine", "inetorgperson", "nis"):
        path = SCHEMA_DIR / f"{name}.ldif"
        if not path.is_file():
            raise SlapdUnavailable(f"schema {path} not found (Debian: apt-get install slapd)")
        parts.append(path.read_text())
    parts.append(SCIMD_SCHEMA.read_text())
    parts.append(
        "dn: olcDatabase={-1}frontend,cn=config\nobjectClass: olcDatabaseConfig\n"
        "objectClass: olcFrontendConfig\nolcDatabase: {-1}frontend\nolcSizeLimit: unlimited\n"
    )
    parts.append(
        "dn: olcDatabase={0}config,cn=config\nobjectClass: olcDatabaseConfig\n"
        "olcDatabase: {0}config\nolcAccess: {0}to * by * none\n"
    )
    parts.append(
        "dn: olcDatabase={1}mdb,cn=config\nobjectClass: olcDatabaseConfig\n"
        "objectClass: olcMdbConfig\nolcDatabase: {1}mdb\n"
        f"olcDbDirectory: {db_dir}\nolcSuffix: {BASE_DN}\nolcRootDN: {ROOT_DN}\n"
        f"olcRootPW: {ROOT_PASSWORD}\nolcDbMaxSize: 268435456\nolcDbNoSync: TRUE\n"
        "olcSizeLimit: unlimited\nolcDbIndex: objectClass eq\nolcDbIndex: entryUUID eq\n"
        "olcDbIndex: uid,cn,mail eq,sub\nolcDbIndex: member eq\n"
        "olcAccess: {0}to * by * read\n"
    )
    if sssvlv:
        # Server-side sort (RFC 2891) and VLV: the bridge pages sorted lists with them.
        parts.append(
            "dn: olcOverlay={0}sssvlv,olcDatabase={1}mdb,cn=config\n"
            "objectClass: olcOverlayConfig\nobjectClass: olcSssVlvConfig\n"
            "olcOverlay: {0}sssvlv\nolcSssVlvMax: 64\nolcSssVlvMaxKeys: 3\n"
        )
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


BASE_ENTRIES = f"""dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: example
o: scimd tests

dn: ou=people,{BASE_DN}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE_DN}
objectClass: organizationalUnit
ou: groups
"""


class ChildServer:
    """A throwaway server run as a child process from a temporary directory ``root``
    (its output in ``root / log_name``): ``log()`` and ``stop()``."""

    log_name = "server.log"
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        if self.root is None or not (self.root / self.log_name).exists():
            return ""
        return (self.root / self.log_name).read_text(errors="replace")[-2000:]

    def wait_until_answering(
        self,
        timeout: float,
        probe: Callable[[], None],
        unavailable: type[Exception],
        name: str,
    ) -> None:
        """Poll ``probe()`` (an LDAP bind) until it succeeds; ``unavailable`` when the
        process exits or ``timeout`` passes first."""
        import ldap  # type: ignore[import-untyped]

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise unavailable(f"{name} exited ({self.process.returncode}): {self.log()}")
            try:
                probe()
                return
            except ldap.LDAPError as exc:
                last = exc
                # Polling a starting server: a short back-off between connection attempts.
                time.sleep(0.05)
        raise unavailable(f"{name} did not answer within {timeout}s: {last}; {self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


S = TypeVar("S", bound=ChildServer)


def server_or_report(
    make: Callable[[], S], unavailable: tuple[type[BaseException], ...], what: str
) -> Iterator[S]:
    """Start ``make()``'s server for a pytest fixture and stop it afterwards. When it cannot
    start (``unavailable``): a failure when ``CI=true`` (a missing service in CI is a
    failure), else a skip naming what is missing (listed by ``pytest -ra``)."""
    from scimd.testing.services import service_missing

    try:
        server = make()
    except unavailable as exc:
        service_missing(f"{what} not available: {exc}")
    try:
        yield server
    finally:
        with contextlib.suppress(OSError):
            server.stop()


class SlapdServer(ChildServer):
    """One throwaway slapd: ``start()``, ``fresh_base()`` per test, ``stop()``."""

    log_name = "slapd.log"

    def __init__(self, *, sssvlv: bool = True) -> None:
        self.sssvlv = sssvlv
        """Load the ``sssvlv`` overlay (server-side sort and VLV controls advertised)."""
        self.root: Path | None = None
        self.port = 0
        self.ldaps_port = 0
        self.ca_file = ""
        self.other_ca_file = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._counter = itertools.count(1)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def start(self, timeout: float = 30.0) -> None:
        slapd, slapadd = _tool("slapd"), _tool("slapadd")
        root = Path(tempfile.mkdtemp(prefix="scimd-slapd-"))
        self.root = root
        try:
            conf, db = root / "slapd.d", root / "db"
            conf.mkdir()
            db.mkdir()
            ca, cert, key, other = make_tls_files(root)
            self.ca_file, self.other_ca_file = str(ca), str(other)
            (root / "config.ldif").write_text(_config_ldif(db, (ca, cert, key), sssvlv=self.sssvlv))
            proc = subprocess.run(  # noqa: S603
                [slapadd, "-n0", "-F", str(conf), "-l", str(root / "config.ldif")],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if proc.returncode != 0:
                raise SlapdUnavailable(f"slapadd -n0 failed: {proc.stderr.strip()}")
            self.port = _free_port()
            self.ldaps_port = _free_port()
            log = (root / "slapd.log").open("wb")
            # -d 0: stay in the foreground (a child we can stop) without debug output.
            self.process = subprocess.Popen(  # noqa: S603
                [slapd, "-d", "0", "-h", f"{self.url}/ {self.ldaps_url}/", "-F", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            self._wait_ready(timeout)
            self.add_ldif(BASE_ENTRIES)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        import ldap

        def probe() -> None:
            conn = ldap.initialize(self.url)
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 1.0)
            conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
            conn.unbind_s()

        self.wait_until_answering(timeout, probe, SlapdUnavailable, "slapd")

    def add_ldif(self, text: str) -> None:
        """Add entries with ldapadd-like semantics (as the root DN)."""
        import ldap
        import ldap.modlist  # type: ignore[import-untyped]

        conn = ldap.initialize(self.url)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        try:
            for block in text.strip().split("\n\n"):
                dn = ""
                attrs: dict[str, list[bytes]] = {}
                for line in block.splitlines():
                    key, _, value = line.partition(": ")
                    if key == "dn":
                        dn = value
                    else:
                        attrs.setdefault(key, []).append(value.encode())
                conn.add_s(dn, ldap.modlist.addModlist(attrs))
        finally:
            conn.unbind_s()

    def fresh_base(self, prefix: str = "test") -> str:
        """A new, empty organizational unit under the suffix; returns its DN."""
        name = f"{prefix}-{os.getpid()}-{next(self._counter)}"
        dn = f"ou={name},{BASE_DN}"
        self.add_ldif(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n")
        return dn


def _server_or_report(*, sssvlv: bool = True) -> Iterator[SlapdServer]:
    def make() -> SlapdServer:
        server = SlapdServer(sssvlv=sssvlv)
        server.start()
        return server

    yield from server_or_report(make, (SlapdUnavailable, ImportError), "slapd")


def _make_fixtures() -> tuple[object, object]:
    import pytest

    @pytest.fixture(scope="session")
    def slapd_server() -> Iterator[SlapdServer]:
        """A throwaway slapd for the whole test session (with the sssvlv overlay)."""
        yield from _server_or_report()

    @pytest.fixture(scope="session")
    def plain_slapd_server() -> Iterator[SlapdServer]:
        """A second throwaway slapd without sssvlv: no server-side sort nor VLV offered."""
        yield from _server_or_report(sssvlv=False)

    return slapd_server, plain_slapd_server


slapd_server, plain_slapd_server = _make_fixtures()
