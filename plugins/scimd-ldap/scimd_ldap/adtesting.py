"""Active Directory for tests: a throwaway Samba AD DC, a recorder of the raw python-ldap
traffic and a replayer of those recordings.

``SambaServer`` provisions a Samba 4 Active Directory domain controller into a temporary
directory (``samba-tool domain provision --server-role=dc --dns-backend=NONE
--use-rfc2307``, realm ``CORP.EXAMPLE``, its own ``smb.conf`` with only the ``ldap`` service,
bound to 127.0.0.1, TLS with a throwaway CA from ``make_tls_files``) and runs ``samba -i -M
single`` as a child process. Samba's LDAP ports are fixed (389, and 636 for LDAPS): a
second instance on the same host cannot start, and the ports need root.

``Recorder.initialize`` stands where ``ldap.initialize`` does (``LdapPool(initialize=...)``,
``LdapBackend(env, initialize=...)``): it opens a real connection and logs every call the
bridge makes on it with the raw result python-ldap returned (or the exception), in a JSON
form (``Recorder.dump``): bytes that are printable UTF-8 as text, others as ``{"hex": ...}``.
Bind passwords are not recorded. ``Replay`` loads such a file and answers the same calls with
the recorded results, matching each call by its arguments (in recorded order per distinct
call), so the whole bridge above the connection runs on what the server really sent; a
call that was not recorded raises ``AssertionError`` naming it (re-record after changing
what the bridge asks).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]
from ldap.controls import SimplePagedResultsControl  # type: ignore[import-untyped]

from scimd_ldap.testing import ChildServer, make_tls_files, server_or_report

__all__ = [
    "AD_ADMIN_DN",
    "AD_ADMIN_PASSWORD",
    "AD_BASE_DN",
    "Recorder",
    "Replay",
    "SambaServer",
    "SambaUnavailable",
    "decode_value",
    "encode_value",
    "samba_server",
]

AD_BASE_DN = "DC=corp,DC=example"
AD_ADMIN_DN = f"CN=Administrator,CN=Users,{AD_BASE_DN}"
AD_ADMIN_PASSWORD = "Scimd-Test-Pa55!"  # noqa: S105 - a throwaway test domain
_PAGED = SimplePagedResultsControl.controlType


class SambaUnavailable(RuntimeError):
    """Samba (with the AD DC provisioning data) is not installed or cannot start."""


# -- JSON form of python-ldap values ------------------------------------------------------


def encode_value(value: Any) -> Any:
    """python-ldap arguments and results -> JSON: bytes as text when they are printable
    UTF-8, else ``{"hex": ...}``; tuples as lists; exceptions as ``{"error": ...}``."""
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": value.hex()}
        return text if text.isprintable() else {"hex": value.hex()}
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if isinstance(value, ldap.LDAPError):
        info = value.args[0] if value.args and isinstance(value.args[0], dict) else {}
        return {
            "error": type(value).__name__,
            "result": info.get("result"),
            "desc": info.get("desc"),
            "info": info.get("info"),
        }
    return value


def decode_value(value: Any) -> Any:
    """The inverse of ``encode_value`` for results: text values as UTF-8 bytes (attribute
    values are always bytes in python-ldap), ``{"hex"}`` as bytes."""
    if isinstance(value, dict):
        if set(value) == {"hex"}:
            return bytes.fromhex(value["hex"])
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, str):
        return value.encode()
    return value


def _entries(data: Any) -> list[Any]:
    return [[dn, encode_value(attrs)] for dn, attrs in data or [] if dn]


def _raise(recorded: dict[str, Any]) -> None:
    cls = getattr(ldap, recorded["error"], ldap.LDAPError)
    raise cls(
        {
            "result": recorded.get("result"),
            "desc": recorded.get("desc"),
            "info": recorded.get("info"),
            "ctrls": [],
        }
    )


def _cookie(ctrls: Any) -> str:
    for c in ctrls or ():
        if getattr(c, "controlType", None) == _PAGED:
            return bytes(c.cookie or b"").hex()
    return ""


def _paged_call(base: str, scope: int, flt: str, attrs: Any, kw: dict[str, Any]) -> dict[str, Any]:
    """The logged form of a ``search_ext`` with the paged results control."""
    ctrls = kw.get("serverctrls") or []
    return {
        "op": "paged_search",
        "base": base,
        "scope": scope,
        "filter": flt,
        "attrs": attrs,
        "cookie": _cookie(ctrls),
        "size": next((c.size for c in ctrls if c.controlType == _PAGED), None),
    }


def _key(call: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in call.items() if k not in {"result", "error"}})


# -- recording ------------------------------------------------------------------------------


class Recorder:
    """Opens real connections and logs the calls the bridge makes on them."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def initialize(self, url: str) -> _Recording:
        return _Recording(self, ldap.initialize(url, bytes_mode=False))

    def dump(self, path: Path, **meta: Any) -> None:
        """Write the calls (and ``meta``: how they were made) as JSON."""
        body = {**meta, "calls": self.calls}
        path.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n")


class _Recording:
    def __init__(self, recorder: Recorder, conn: Any) -> None:
        self._r = recorder
        self._conn = conn
        self._pending: dict[int, dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    @property
    def timeout(self) -> Any:
        return self._conn.timeout

    @timeout.setter
    def timeout(self, value: Any) -> None:
        self._conn.timeout = value

    def _log(self, call: dict[str, Any], fn: Any, shape: Any = None) -> Any:
        try:
            result = fn()
        except ldap.LDAPError as exc:
            self._r.calls.append({**call, "error": encode_value(exc)})
            raise
        self._r.calls.append({**call, "result": shape(result) if shape else None})
        return result

    def simple_bind_s(self, who: str, cred: str) -> Any:
        return self._log({"op": "bind", "dn": who}, lambda: self._conn.simple_bind_s(who, cred))

    def start_tls_s(self) -> Any:
        return self._log({"op": "start_tls"}, self._conn.start_tls_s)

    def search_st(
        self, base: str, scope: int, flt: str, attrs: Any = None, timeout: float = -1
    ) -> Any:
        call = {"op": "search", "base": base, "scope": scope, "filter": flt, "attrs": attrs}
        return self._log(
            call, lambda: self._conn.search_st(base, scope, flt, attrs, timeout=timeout), _entries
        )

    def search_ext(self, base: str, scope: int, flt: str, attrs: Any = None, **kw: Any) -> int:
        msgid: int = self._conn.search_ext(base, scope, flt, attrs, **kw)
        self._pending[msgid] = _paged_call(base, scope, flt, attrs, kw)
        return msgid

    def result3(self, msgid: int, **kw: Any) -> Any:
        call = self._pending.pop(msgid)
        return self._log(
            call,
            lambda: self._conn.result3(msgid, **kw),
            lambda r: {"entries": _entries(r[1]), "cookie": _cookie(r[3])},
        )

    def add_s(self, dn: str, modlist: Any) -> Any:
        call = {"op": "add", "dn": dn, "modlist": encode_value(modlist)}
        return self._log(call, lambda: self._conn.add_s(dn, modlist))

    def modify_s(self, dn: str, mods: Any) -> Any:
        call = {"op": "modify", "dn": dn, "mods": encode_value(mods)}
        return self._log(call, lambda: self._conn.modify_s(dn, mods))

    def delete_s(self, dn: str) -> Any:
        return self._log({"op": "delete", "dn": dn}, lambda: self._conn.delete_s(dn))

    def rename_s(self, dn: str, newrdn: str, newsuperior: Any = None, delold: int = 1) -> Any:
        call = {"op": "rename", "dn": dn, "rdn": newrdn, "superior": newsuperior}
        return self._log(call, lambda: self._conn.rename_s(dn, newrdn, newsuperior, delold))


# -- replay ---------------------------------------------------------------------------------


class Replay:
    """Answers the bridge's calls with a recording (``initialize`` for ``LdapPool``).

    ``calls`` logs the calls made during the replay (same shape as the recording) and
    ``connections`` the connections opened (their ``options`` and ``tls`` state)."""

    def __init__(self, path: Path) -> None:
        self.recording: dict[str, Any] = json.loads(path.read_text())
        self._answers: dict[str, collections.deque[dict[str, Any]]] = collections.defaultdict(
            collections.deque
        )
        for call in self.recording["calls"]:
            self._answers[_key(call)].append(call)
        self.calls: list[dict[str, Any]] = []
        self.connections: list[_Replaying] = []

    def initialize(self, url: str) -> _Replaying:
        conn = _Replaying(self, url)
        self.connections.append(conn)
        return conn

    def answer(self, call: dict[str, Any]) -> Any:
        self.calls.append(call)
        queue = self._answers.get(_key(call))
        if not queue:
            raise AssertionError(f"not in the recording (re-record?): {_key(call)}")
        recorded = queue.popleft()
        if "error" in recorded:
            _raise(recorded["error"])
        return recorded["result"]

    def recorded(self, op: str) -> list[dict[str, Any]]:
        """The recorded calls of one kind (``add``, ``modify``, ``search`` ...)."""
        return [c for c in self.recording["calls"] if c["op"] == op]


class _Replaying:
    def __init__(self, replay: Replay, url: str) -> None:
        self._r = replay
        self.url = url
        self.options: dict[int, Any] = {}
        self.tls = url.lower().startswith("ldaps://")
        self.timeout: float = -1
        self._pending: dict[int, dict[str, Any]] = {}
        self._ids = iter(range(1, 1 << 30))

    def set_option(self, option: int, value: Any) -> None:
        self.options[option] = value

    def simple_bind_s(self, who: str, cred: str) -> None:
        self._r.answer({"op": "bind", "dn": who})

    def start_tls_s(self) -> None:
        self._r.answer({"op": "start_tls"})
        self.tls = True

    def unbind_s(self) -> None:
        pass

    def search_st(
        self, base: str, scope: int, flt: str, attrs: Any = None, timeout: float = -1
    ) -> Any:
        call = {"op": "search", "base": base, "scope": scope, "filter": flt, "attrs": attrs}
        return [(dn, decode_value(a)) for dn, a in self._r.answer(call)]

    def search_ext(self, base: str, scope: int, flt: str, attrs: Any = None, **kw: Any) -> int:
        msgid = next(self._ids)
        self._pending[msgid] = _paged_call(base, scope, flt, attrs, kw)
        return msgid

    def result3(self, msgid: int, **kw: Any) -> Any:
        result = self._r.answer(self._pending.pop(msgid))
        data = [(dn, decode_value(a)) for dn, a in result["entries"]]
        ctrls = []
        if result["cookie"]:
            ctrls.append(SimplePagedResultsControl(size=0, cookie=bytes.fromhex(result["cookie"])))
        return ldap.RES_SEARCH_RESULT, data, msgid, ctrls

    def add_s(self, dn: str, modlist: Any) -> None:
        self._r.answer({"op": "add", "dn": dn, "modlist": encode_value(modlist)})

    def modify_s(self, dn: str, mods: Any) -> None:
        self._r.answer({"op": "modify", "dn": dn, "mods": encode_value(mods)})

    def delete_s(self, dn: str) -> None:
        self._r.answer({"op": "delete", "dn": dn})

    def rename_s(self, dn: str, newrdn: str, newsuperior: Any = None, delold: int = 1) -> None:
        self._r.answer({"op": "rename", "dn": dn, "rdn": newrdn, "superior": newsuperior})


# -- a throwaway Samba AD DC --------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not found:
        raise SambaUnavailable(
            f"{name} not found (Debian: apt-get install samba samba-ad-provision)"
        )
    return found


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class SambaServer(ChildServer):
    """One throwaway Samba AD DC: ``start()``, ``fresh_base()`` per test, ``stop()``."""

    url = "ldaps://127.0.0.1:636"
    log_name = "samba.out"

    def __init__(self) -> None:
        self.ca_file = ""
        self.version = ""
        self._counter = 0

    def start(self, timeout: float = 60.0) -> None:
        samba, samba_tool = _tool("samba"), _tool("samba-tool")
        if not Path("/usr/share/samba/setup/ad-schema").is_dir():
            raise SambaUnavailable("the AD schema is missing (apt-get install samba-ad-provision)")
        for port in (389, 636):
            if not _port_free(port):
                raise SambaUnavailable(f"127.0.0.1:{port} is in use (Samba's LDAP ports are fixed)")
        root = Path(tempfile.mkdtemp(prefix="scimd-samba-"))
        self.root = root
        try:
            tls = root / "tls"
            tls.mkdir()
            ca, cert, key, _ = make_tls_files(tls)
            key.chmod(0o600)
            self.ca_file = str(ca)
            options = {
                "interfaces": "127.0.0.1",
                "bind interfaces only": "yes",
                "server services": "ldap",
                "tls enabled": "yes",
                "tls keyfile": str(key),
                "tls certfile": str(cert),
                "tls cafile": str(ca),
                "log file": str(root / "samba.log"),
                "pid directory": str(root / "run"),
            }
            proc = subprocess.run(  # noqa: S603
                [
                    samba_tool,
                    "domain",
                    "provision",
                    f"--targetdir={root / 'dc'}",
                    "--use-rfc2307",
                    "--realm=CORP.EXAMPLE",
                    "--domain=CORP",
                    "--server-role=dc",
                    "--dns-backend=NONE",
                    f"--adminpass={AD_ADMIN_PASSWORD}",
                    *(f"--option={k}={v}" for k, v in options.items()),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if proc.returncode != 0:
                raise SambaUnavailable(f"samba-tool domain provision failed: {proc.stderr[-800:]}")
            version = subprocess.run(  # noqa: S603
                [samba, "-V"], capture_output=True, text=True, timeout=10, check=False
            )
            self.version = version.stdout.strip()
            log = (root / "samba.out").open("wb")
            self.process = subprocess.Popen(  # noqa: S603
                [samba, "-i", "-M", "single", "-s", str(root / "dc/etc/smb.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def connect(self) -> Any:
        conn = ldap.initialize(self.url, bytes_mode=False)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 2.0)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, self.ca_file)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.simple_bind_s(AD_ADMIN_DN, AD_ADMIN_PASSWORD)
        return conn

    def _wait_ready(self, timeout: float) -> None:
        def probe() -> None:
            self.connect().unbind_s()

        self.wait_until_answering(timeout, probe, SambaUnavailable, "samba")

    def fresh_base(self, prefix: str = "test", *, unique: bool = True) -> str:
        """A new organizational unit (with ``OU=Users`` and ``OU=Groups`` below it), named
        ``prefix`` made unique (``unique=False``: ``prefix`` as it is)."""
        self._counter += 1
        name = f"{prefix}-{os.getpid()}-{self._counter}" if unique else prefix
        base = f"OU={name},{AD_BASE_DN}"
        conn = self.connect()
        try:
            for dn in (base, f"OU=Users,{base}", f"OU=Groups,{base}"):
                ou = dn.split(",", 1)[0][3:]
                conn.add_s(dn, [("objectClass", [b"organizationalUnit"]), ("ou", [ou.encode()])])
        finally:
            conn.unbind_s()
        return base


def _server_or_report() -> Iterator[SambaServer]:
    def make() -> SambaServer:
        server = SambaServer()
        server.start()
        return server

    yield from server_or_report(make, (SambaUnavailable,), "Samba AD DC")


def _make_fixture() -> object:
    import pytest

    @pytest.fixture(scope="session")
    def samba_server() -> Iterator[SambaServer]:
        """A throwaway Samba AD DC for the whole test session (LDAPS on 127.0.0.1:636)."""
        yield from _server_or_report()

    return samba_server


samba_server = _make_fixture()
