"""A thin async adapter over python-ldap.

python-ldap is synchronous (C, libldap). ``LdapPool`` keeps at most ``size`` bound
connections; ``run(fn)`` borrows one, calls ``fn(conn)`` in a worker thread
(``asyncio.to_thread``) and gives it back, so each connection is used by one thread at a
time and the event loop never blocks. Every connection has ``OPT_NETWORK_TIMEOUT`` and
``OPT_TIMEOUT`` set (every operation is bounded), referrals are off, and a call that fails
with ``SERVER_DOWN`` (or ``CONNECT_ERROR``) is retried once on a fresh connection. TLS:
``ldaps://`` URLs or ``start_tls``, with ``tls_require_cert`` (default ``demand``: the
certificate must verify against ``tls_ca_file``, or the system CAs when empty) and the name
checked. ``initialize`` replaces ``ldap.initialize`` (tests replay recorded responses
through a fake connection object).

Keep it thin: everything else (mapping, filters, errors) lives elsewhere, so the client can
be swapped for an async one later.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import ldap  # type: ignore[import-untyped]

__all__ = ["LdapPool"]

T = TypeVar("T")

_RECONNECT = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR)
_REQUIRE_CERT = {
    "demand": ldap.OPT_X_TLS_DEMAND,
    "hard": ldap.OPT_X_TLS_HARD,
    "allow": ldap.OPT_X_TLS_ALLOW,
    "try": ldap.OPT_X_TLS_TRY,
    "never": ldap.OPT_X_TLS_NEVER,
}


class LdapPool:
    """A bounded pool of bound python-ldap connections driven from worker threads."""

    def __init__(
        self,
        url: str,
        bind_dn: str,
        password: str,
        *,
        size: int = 4,
        timeout: float = 10.0,
        start_tls: bool = False,
        tls_ca_file: str = "",
        tls_require_cert: str = "demand",
        initialize: Callable[[str], Any] | None = None,
    ) -> None:
        if tls_require_cert not in _REQUIRE_CERT:
            raise ValueError(f"tls_require_cert must be one of {sorted(_REQUIRE_CERT)}")
        self.url = url
        self.start_tls = start_tls
        self.tls_ca_file = tls_ca_file
        self.tls_require_cert = tls_require_cert
        self._initialize = initialize or (lambda u: ldap.initialize(u, bytes_mode=False))
        self.bind_dn = bind_dn
        self._password = password
        self.size = size
        self.timeout = timeout
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def encrypted(self) -> bool:
        """Whether every connection is encrypted (LDAPS or StartTLS)."""
        return self.url.lower().startswith("ldaps://") or self.start_tls

    def _connect(self) -> Any:
        conn = self._initialize(self.url)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, self.timeout)
        conn.timeout = self.timeout  # python-ldap's per-call default for *_s methods
        if self.encrypted:
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, _REQUIRE_CERT[self.tls_require_cert])
            if self.tls_ca_file:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, self.tls_ca_file)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # apply the options above
        try:
            if self.start_tls:
                conn.start_tls_s()
            if self.bind_dn:
                conn.simple_bind_s(self.bind_dn, self._password)
        except _RECONNECT as exc:
            # libldap (GnuTLS) reports a failed certificate check as "Can't contact LDAP
            # server": when the port answers TCP, say it was TLS.
            if self.encrypted and self._tcp_reachable():
                raise ldap.CONNECT_ERROR(
                    {
                        "desc": "TLS handshake failed",
                        "info": "TLS: the server certificate was not verified or the "
                        "handshake failed",
                    }
                ) from exc
            raise
        return conn

    def _tcp_reachable(self) -> bool:
        parts = urllib.parse.urlsplit(self.url)
        default = 636 if parts.scheme.lower() == "ldaps" else 389
        try:
            port = parts.port or default
            with socket.create_connection((parts.hostname or "localhost", port), self.timeout):
                return True
        except (OSError, ValueError):
            return False

    def _take(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give(self, conn: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        self._unbind(conn)

    @staticmethod
    def _unbind(conn: Any) -> None:
        with contextlib.suppress(ldap.LDAPError):
            conn.unbind_s()

    def _release(self, conn: Any, discard: bool) -> None:
        if discard:
            self._unbind(conn)
        else:
            self._give(conn)

    def _call(self, fn: Callable[[Any], T], discard: bool = False) -> T:
        """In a worker thread: run ``fn`` on a pooled connection, once more on a fresh one
        if the server went away; ``discard``: close the connection afterwards."""
        conn = self._take()
        try:
            result = fn(conn)
        except _RECONNECT:
            self._unbind(conn)
            conn = self._connect()
            try:
                result = fn(conn)
            except BaseException:
                self._unbind(conn)
                raise
        except (ldap.TIMEOUT, ldap.TIMELIMIT_EXCEEDED):
            self._unbind(conn)  # an operation may still be outstanding on it
            raise
        except ldap.LDAPError:
            self._release(conn, discard)  # a result code: the connection stays usable
            raise
        except BaseException:
            self._unbind(conn)
            raise
        self._release(conn, discard)
        return result

    async def run(self, fn: Callable[[Any], T], *, discard: bool = False) -> T:
        """Run ``fn(conn)`` in a worker thread with a connection of the pool.

        ``discard=True`` unbinds the connection afterwards instead of pooling it: for
        operations that leave per-connection state on the server (OpenLDAP's sssvlv keeps a
        VLV sort context until the connection closes, and refuses a second one on it)."""
        if self._closed:
            raise ldap.SERVER_DOWN({"desc": "the LDAP pool is closed"})
        async with self._slots:
            return await asyncio.to_thread(self._call, fn, discard)

    async def check(self) -> None:
        """Open (and bind) one connection now, so a wrong URL or password shows at start.

        It reads the root DSE rather than asking "Who am I?" (RFC 4532): Samba's AD DC does
        not implement that extended operation (``protocolError``)."""
        timeout = self.timeout
        await self.run(
            lambda conn: conn.search_st(
                "", ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"], timeout=timeout
            )
        )

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            await asyncio.to_thread(self._unbind, conn)
