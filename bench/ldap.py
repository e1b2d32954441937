"""LDAP bridge bench: 10,000 users in a throwaway slapd next to the embedded store.

    python -m bench.ldap [--users 10000] [--requests 200] [--seconds 5]
                        [--server-side-sort auto|off]

For each backend (embedded SQLite, ldap on slapd over loopback) the app runs in-process
behind aiohttp's test server (real HTTP on 127.0.0.1) and serves, one request at a time:
GET /Users/{id}, GET /Users?filter=userName eq "...", a paged list (count=100 at a random
startIndex), the same sorted by userName descending, and POST /Users. Each loop is bounded
by ``--requests`` and ``--seconds`` (so the whole run takes about seeding + 10 loops x
``--seconds`` at most). The slapd has the sssvlv overlay: with ``--server-side-sort auto``
(the default) the bridge pages lists with server-side sort + VLV, with ``off`` it reads
the container and sorts in memory (``max_scan`` raised to fit).
For the bridge, the time spent inside LDAP calls is measured at the adapter
(``LdapPool.run``) and the bridge's own overhead per request = total - LDAP time.
Needs slapd (``apt-get install slapd ldap-utils``) and the scimd-ldap plugin installed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from scimd.app import create_app
from scimd.http.context import RUNTIME
from scimd.plugins import PluginManager
from scimd.settings import AuthSettings, Settings, StateSettings, StorageSettings

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@dataclasses.dataclass
class Row:
    backend: str
    op: str
    n: int
    errors: int
    mean_ms: float
    p95_ms: float
    ldap_ms: float | None = None


def seed_slapd(server: Any, base: str, users: int) -> None:
    import ldap  # type: ignore[import-untyped]
    from scimd_ldap.testing import ROOT_DN, ROOT_PASSWORD

    conn = ldap.initialize(server.url)
    conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    try:
        for ou in ("people", "groups"):
            conn.add_s(
                f"ou={ou},{base}", [("objectClass", [b"organizationalUnit"]), ("ou", [ou.encode()])]
            )
        pending = []
        for i in range(users):
            name = f"user{i:05d}"
            attrs = [
                ("objectClass", [b"top", b"person", b"organizationalPerson", b"inetOrgPerson"]),
                ("uid", [name.encode()]),
                ("cn", [f"User {i}".encode()]),
                ("sn", [b"Bench"]),
                ("mail", [f"{name}@example.org".encode()]),
            ]
            pending.append(conn.add_ext(f"uid={name},ou=people,{base}", attrs))
            if len(pending) >= 200:
                for msgid in pending:
                    conn.result(msgid)
                pending.clear()
        for msgid in pending:
            conn.result(msgid)
    finally:
        conn.unbind_s()


async def seed_embedded(client: TestClient[Any, Any], headers: dict[str, str], users: int) -> None:
    runtime = client.app[RUNTIME]
    rtype = runtime.registry.resource_types["user"]
    ctx = runtime.service.op_context(rtype, tenant="default", principal="bench", request_id="b")
    for i in range(users):
        name = f"user{i:05d}"
        await runtime.backend.create(
            ctx,
            rtype,
            {
                "schemas": [USER],
                "userName": name,
                "displayName": f"User {i}",
                "emails": [{"value": f"{name}@example.org"}],
            },
        )


async def measure(
    name: str,
    op: str,
    call: Callable[[int], Awaitable[int]],
    requests: int,
    seconds: float,
    ldap_clock: list[float] | None,
) -> Row:
    latencies: list[float] = []
    errors = 0
    ldap_before = ldap_clock[0] if ldap_clock else 0.0
    deadline = time.monotonic() + seconds
    for i in range(requests):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        status = await call(i)
        latencies.append(time.perf_counter() - t0)
        errors += status >= 400
    n = len(latencies)
    ldap_ms = ((ldap_clock[0] - ldap_before) / n * 1000) if ldap_clock and n else None
    p95 = sorted(latencies)[max(0, round(0.95 * (n - 1)))] * 1000 if n else float("nan")
    return Row(
        name, op, n, errors, statistics.fmean(latencies) * 1000 if n else float("nan"), p95, ldap_ms
    )


async def run_backend(
    name: str,
    storage: StorageSettings,
    tmp: Path,
    users: int,
    requests: int,
    seconds: float,
    seed: Callable[[], None] | None,
    plugins: PluginManager,
) -> list[Row]:
    settings = Settings(
        storage=storage,
        state=StateSettings(path=tmp / f"{name}-state.db"),
        auth=AuthSettings(bootstrap_token=False),
        base_dir=tmp,
    )
    if seed:
        seed()
    app = create_app(settings, plugins)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        runtime = app[RUNTIME]
        _rec, token = await runtime.state.create_token(tenant="default", scopes=("read", "write"))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        if seed is None:
            await seed_embedded(client, headers, users)
        ldap_clock: list[float] | None = None
        pool = getattr(runtime.backend, "pool", None)
        if pool is not None:
            ldap_clock = [0.0]
            original = pool.run

            async def timed(fn: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await original(fn, **kw)
                finally:
                    ldap_clock[0] += time.perf_counter() - t0

            pool.run = timed
        base = "/scim/v2"
        _s = await client.get(f"{base}/Users?count=1000", headers=headers)
        ids = [r["id"] for r in (await _s.json(content_type=None))["Resources"]]
        rnd = random.Random(7)

        async def get_by_id(i: int) -> int:
            r = await client.get(f"{base}/Users/{rnd.choice(ids)}", headers=headers)
            await r.read()
            return r.status

        async def by_name(i: int) -> int:
            q = f'userName eq "user{rnd.randrange(users):05d}"'
            r = await client.get(f"{base}/Users", params={"filter": q}, headers=headers)
            await r.read()
            return r.status

        async def paged(i: int) -> int:
            start = rnd.randrange(1, users - 100)
            r = await client.get(f"{base}/Users?startIndex={start}&count=100", headers=headers)
            await r.read()
            return r.status

        async def sorted_page(i: int) -> int:
            start = rnd.randrange(1, users - 100)
            r = await client.get(
                f"{base}/Users?sortBy=userName&sortOrder=descending&startIndex={start}&count=100",
                headers=headers,
            )
            await r.read()
            return r.status

        async def create(i: int) -> int:
            body = {"schemas": [USER], "userName": f"new-{name}-{i}", "displayName": "New"}
            r = await client.post(f"{base}/Users", json=body, headers=headers)
            await r.read()
            return r.status

        rows = []
        for op, fn, n in (
            ("GET /Users/{id}", get_by_id, requests),
            ("userName eq", by_name, requests),
            ("paged list (count=100)", paged, max(5, requests // 4)),
            ("sorted page (count=100)", sorted_page, max(5, requests // 4)),
            ("POST /Users", create, requests),
        ):
            rows.append(await measure(name, op, fn, n, seconds, ldap_clock))
        return rows
    finally:
        await client.close()


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0, help="bound of each loop")
    ap.add_argument("--server-side-sort", choices=("auto", "off"), default="auto")
    args = ap.parse_args(argv)
    import scimd_ldap.plugin
    from scimd_ldap.testing import ROOT_DN, ROOT_PASSWORD, SlapdServer

    plugins = PluginManager.create(entry_points=False, extra=[scimd_ldap.plugin])
    server = SlapdServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="scimd-bench-ldap-") as tmpdir:
            tmp = Path(tmpdir)
            base = server.fresh_base("bench")
            ldap_storage = StorageSettings(
                backend="ldap",
                options={
                    "ldap": {
                        "url": server.url,
                        "bind_dn": ROOT_DN,
                        "bind_password": ROOT_PASSWORD,
                        "base_dn": base,
                        "max_scan": max(20_000, args.users * 2),
                        "pool_size": 4,
                        "server_side_sort": args.server_side_sort,
                    }
                },
            )
            embedded = StorageSettings(
                backend="embedded", options={"embedded": {"path": str(tmp / "scimd.db")}}
            )
            rows = await run_backend(
                "embedded", embedded, tmp, args.users, args.requests, args.seconds, None, plugins
            )
            rows += await run_backend(
                "ldap",
                ldap_storage,
                tmp,
                args.users,
                args.requests,
                args.seconds,
                lambda: seed_slapd(server, base, args.users),
                plugins,
            )
    finally:
        server.stop()
    print(
        f"{args.users} users; sequential requests over loopback HTTP; "
        f"ldap server_side_sort={args.server_side_sort}"
    )
    head = ("backend", "operation", "n", "err", "mean ms", "p95 ms", "LDAP ms", "bridge ms")
    print(f"{head[0]:9} {head[1]:24} " + " ".join(f"{h:>9}" for h in head[2:]))
    for r in rows:
        ldap_ms = f"{r.ldap_ms:9.2f}" if r.ldap_ms is not None else f"{'-':>9}"
        own = f"{r.mean_ms - r.ldap_ms:9.2f}" if r.ldap_ms is not None else f"{'-':>9}"
        nums = f"{r.n:9d} {r.errors:9d} {r.mean_ms:9.2f} {r.p95_ms:9.2f}"
        print(f"{r.backend:9} {r.op:24} {nums} {ldap_ms} {own}")


if __name__ == "__main__":
    asyncio.run(main())
