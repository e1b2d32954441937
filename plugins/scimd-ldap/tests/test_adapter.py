"""The async adapter: bounded pool, event loop never blocked, reconnect on SERVER_DOWN."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import ldap  # type: ignore[import-untyped]
import pytest
from scimd_ldap.adapter import LdapPool
from scimd_ldap.testing import ROOT_DN, ROOT_PASSWORD, SlapdServer


def _pool(server: SlapdServer, size: int = 2) -> LdapPool:
    return LdapPool(server.url, ROOT_DN, ROOT_PASSWORD, size=size, timeout=5.0)


async def test_event_loop_keeps_running_during_blocking_ldap_calls(
    slapd_server: SlapdServer,
) -> None:
    """A heartbeat task must tick while LDAP calls are stuck in worker threads: the calls
    block on an Event that only the heartbeat releases, so a blocked loop deadlocks (and the
    wait_for fails) instead of passing."""
    pool = _pool(slapd_server)
    release = threading.Event()
    ticks = 0

    def slow(conn: Any) -> str:
        assert release.wait(10), "the heartbeat never ran: the event loop was blocked"
        return str(conn.whoami_s())

    async def heartbeat() -> None:
        nonlocal ticks
        while ticks < 50:
            ticks += 1
            await asyncio.sleep(0)
        release.set()

    try:
        results = await asyncio.wait_for(
            asyncio.gather(pool.run(slow), pool.run(slow), heartbeat()), timeout=20
        )
        assert results[0] == results[1] == f"dn:{ROOT_DN}"
        assert ticks == 50
    finally:
        await pool.aclose()


async def test_pool_is_bounded(slapd_server: SlapdServer) -> None:
    pool = _pool(slapd_server, size=2)
    active = 0
    peak = 0
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=10)

    def call(conn: Any) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()  # two calls run together; a third would have to wait
        conn.whoami_s()
        with lock:
            active -= 1

    try:
        await asyncio.wait_for(asyncio.gather(*(pool.run(call) for _ in range(6))), timeout=30)
        assert peak == 2
        assert len(pool._idle) <= 2
    finally:
        await pool.aclose()


async def test_reconnects_after_server_down(slapd_server: SlapdServer) -> None:
    pool = _pool(slapd_server, size=1)
    try:
        await pool.check()
        (conn,) = pool._idle
        conn.unbind_s()
        pool._idle[0] = _Dead()  # the server dropped the pooled connection
        assert await pool.run(lambda c: c.whoami_s()) == f"dn:{ROOT_DN}"
    finally:
        await pool.aclose()


class _Dead:
    def whoami_s(self) -> str:
        raise ldap.SERVER_DOWN({"desc": "Can't contact LDAP server"})

    def unbind_s(self) -> None:
        raise ldap.SERVER_DOWN({"desc": "Can't contact LDAP server"})


async def test_unreachable_server_is_service_unavailable() -> None:
    import socket

    from scimd_ldap.errors import to_scim

    from scimd.errors import ServiceUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = LdapPool(f"ldap://127.0.0.1:{port}", ROOT_DN, "x", size=1, timeout=2.0)
    with pytest.raises(ldap.SERVER_DOWN) as info:
        await pool.check()
    assert isinstance(to_scim(info.value), ServiceUnavailable)
    await pool.aclose()
