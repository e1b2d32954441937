"""A thin async adapter over python-ldap.

python-ldap is synchronous (C, libldap). ``LdapPool`` keeps at most ``size`` bound
connections; ``run(fn)`` borrows one, calls ``fn(conn)`` in a worker thread
(``asyncio.to_thread``) and gives it back, so each connection is used by one thread at a
time and the event loop never blocks. Every connection has ``OPT_NETWORK_TIMEOUT`` and
``OPT_TIMEOUT`` set (every operation is bounded), referrals are off, and a call that fails
with ``SERVER_DOWN`` (or ``CONNECT_ERROR``) is retried once on a fresh connection.

Keep it thin: everything else (mapping, filters, errors) lives elsewhere, so the client can
be swapped for an async one later.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import ldap  # type: ignore[import-untyped]

__all__ = ["LdapPool"]

T = TypeVar("T")

_RECONNECT = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR)


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
    ) -> None:
        self.url = url
        self.bind_dn = bind_dn
        self._password = password
        self.size = size
        self.timeout = timeout
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self) -> Any:
        conn = ldap.initialize(self.url, bytes_mode=False)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, self.timeout)
        conn.timeout = self.timeout  # python-ldap's per-call default for *_s methods
        if self.bind_dn:
            conn.simple_bind_s(self.bind_dn, self._password)
        return conn

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

    def _call(self, fn: Callable[[Any], T]) -> T:
        """In a worker thread: run ``fn`` on a pooled connection, once more on a fresh one
        if the server went away."""
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
            self._give(conn)  # a result code: the connection stays usable
            raise
        except BaseException:
            self._unbind(conn)
            raise
        self._give(conn)
        return result

    async def run(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` in a worker thread with a connection of the pool."""
        if self._closed:
            raise ldap.SERVER_DOWN({"desc": "the LDAP pool is closed"})
        async with self._slots:
            return await asyncio.to_thread(self._call, fn)

    async def check(self) -> None:
        """Open (and bind) one connection now, so a wrong URL or password shows at start."""
        await self.run(lambda conn: conn.whoami_s())

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            await asyncio.to_thread(self._unbind, conn)
