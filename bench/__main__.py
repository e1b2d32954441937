"""``make bench``: load-test scimd on the embedded store next to a bare aiohttp endpoint.

Everything runs on this machine over loopback: a bare aiohttp server (the ceiling), a
scimd server on a throwaway embedded store, and an aiohttp client load generator whose
loops are bounded both in request count and in time. Figures are printed and written to
``bench/RESULTS.md`` with the machine and the command.

    python -m bench [--seconds 8] [--concurrency 32] [--users 100000] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
SCIM_JSON = "application/scim+json"


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float] = field(repr=False, default_factory=list)
    note: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        k = min(len(data) - 1, max(0, round(p / 100 * (len(data) - 1))))
        return data[k] * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> dict[str, int]:
    """Memory of a process in KiB from /proc: VmRSS (now), VmHWM (peak), RssAnon (the
    process's own memory) and RssFile (file pages mapped in: the embedded store reads its
    database through mmap, and those pages are the OS page cache, shared and reclaimable)."""
    out = {"VmRSS": 0, "VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key = line.split(":", 1)[0]
            if key in out:
                out[key] = int(line.split()[1])
    return out


async def wait_http(url: str, wait_s: float = 30.0) -> None:
    deadline = time.monotonic() + wait_s
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url) as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


RequestFactory = Callable[[int], tuple[str, str, bytes | None]]


async def load(
    session: aiohttp.ClientSession,
    name: str,
    base: str,
    make: RequestFactory,
    *,
    seconds: float,
    concurrency: int,
    max_requests: int,
    headers: dict[str, str],
    ok: Sequence[int] = (200, 201, 204),
) -> Result:
    """Run ``concurrency`` workers until ``seconds`` pass or ``max_requests`` are sent."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors, counter
        while counter < max_requests and time.perf_counter() < deadline:
            i = counter
            counter += 1
            method, path, body = make(i)
            t0 = time.perf_counter()
            try:
                async with session.request(method, base + path, data=body, headers=headers) as r:
                    await r.read()
                    if r.status not in ok:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    t_start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t_start
    return Result(name, len(latencies), errors, elapsed, latencies)


@contextlib.contextmanager
def process(cmd: Sequence[str], env: dict[str, str] | None = None) -> Any:
    proc = subprocess.Popen(
        list(cmd),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def scimd_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "scimd.cli", *args]


def make_user(i: int, tag: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": f"{tag}{i:07d}@example.com",
        "externalId": f"ext-{tag}-{i}",
        "name": {"givenName": f"Given{i}", "familyName": f"Family{i % 997}"},
        "displayName": f"User {tag} {i}",
        "emails": [
            {"value": f"{tag}{i:07d}@example.com", "type": "work", "primary": True},
            {"value": f"{tag}{i:07d}@home.example.org", "type": "home"},
        ],
        "active": True,
    }


@contextlib.asynccontextmanager
async def scimd_server(workdir: Path, workers: int) -> AsyncIterator[tuple[str, str, int]]:
    port = free_port()
    config = workdir / "bench.toml"
    config.write_text(
        "[server]\n"
        f'host = "{HOST}"\nport = {port}\nworkers = {workers}\n'
        '[storage]\nbackend = "embedded"\n'
        '[storage.embedded]\npath = "data/scimd.db"\n'
        '[state]\npath = "data/state.db"\n'
        '[logging]\nlevel = "WARNING"\n'
        "[events]\nlog = false\n"
        "[auth]\nbootstrap_token = false\n"
    )
    (workdir / "data").mkdir(exist_ok=True)
    out = subprocess.run(  # noqa: ASYNC221 - once, before the load starts
        scimd_cmd("token", "create", "-c", str(config), "--tenant", "default"),
        check=True,
        capture_output=True,
        text=True,
    )
    token = out.stdout.strip().splitlines()[-1]
    with process(scimd_cmd("serve", "-c", str(config))) as proc:
        base = f"http://{HOST}:{port}/scim/v2"
        try:
            await wait_http(f"http://{HOST}:{port}/healthz")
        except Exception:
            proc.terminate()
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"scimd did not start:\n{err[-4000:]}") from None
        yield base, token, proc.pid


async def seed(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], n: int, tag: str
) -> list[str]:
    """Create ``n`` users over HTTP (16 at a time); return their ids."""
    ids: list[str] = [""] * n
    sem = asyncio.Semaphore(16)
    done = 0
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal done
        async with (
            sem,
            session.post(
                base + "/Users", data=orjson.dumps(make_user(i, tag)), headers=headers
            ) as r,
        ):
            body = await r.read()
            if r.status != 201:
                raise SystemExit(f"seeding failed: {r.status} {body[:300]!r}")
            ids[i] = orjson.loads(body)["id"]
            done += 1
            if done % 10000 == 0:
                rate = done / (time.perf_counter() - t0)
                print(f"  seeded {done}/{n} users ({rate:.0f}/s)", file=sys.stderr)

    for start in range(0, n, 2000):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 2000))))
    return ids


async def run(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    conn = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        # 1. the ceiling
        bare_port = free_port()
        with process([sys.executable, "-m", "bench.bare", "--port", str(bare_port)]):
            bare = f"http://{HOST}:{bare_port}/scim/v2"
            await wait_http(bare + "/Users/x")
            results.append(
                await load(
                    session,
                    "bare aiohttp GET (ceiling)",
                    bare,
                    lambda i: ("GET", "/Users/2819c223", None),
                    seconds=args.seconds,
                    concurrency=args.concurrency,
                    max_requests=args.max_requests,
                    headers={},
                )
            )

        with tempfile.TemporaryDirectory(prefix="scimd-bench-") as tmp:
            async with scimd_server(Path(tmp), args.workers) as (base, token, pid):
                h = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
                t0 = time.perf_counter()
                ids = await seed(session, base, h, args.users, "u")
                seed_s = time.perf_counter() - t0
                print(
                    f"seeded {args.users} users in {seed_s:.1f}s ({args.users / seed_s:.0f}/s)",
                    file=sys.stderr,
                )
                rng = random.Random(7)

                def pick(_: int) -> int:
                    return rng.randrange(len(ids))

                kw: dict[str, Any] = {
                    "seconds": args.seconds,
                    "concurrency": args.concurrency,
                    "max_requests": args.max_requests,
                    "headers": h,
                }
                post_counter = iter(range(10_000_000))
                scenarios: list[tuple[str, RequestFactory]] = [
                    (
                        "POST /Users",
                        lambda i: (
                            "POST",
                            "/Users",
                            orjson.dumps(make_user(next(post_counter), "p")),
                        ),
                    ),
                    ("GET /Users/{id}", lambda i: ("GET", f"/Users/{ids[pick(i)]}", None)),
                    ("GET /Users?count=100 (list)", lambda i: ("GET", "/Users?count=100", None)),
                    (
                        'filter userName eq "x"',
                        lambda i: (
                            "GET",
                            f'/Users?filter=userName+eq+"u{pick(i):07d}@example.com"',
                            None,
                        ),
                    ),
                    (
                        'filter emails[type eq "work"].value eq "x"',
                        lambda i: (
                            "GET",
                            "/Users?filter=emails%5Btype+eq+%22work%22%5D.value+eq+"
                            f"%22u{pick(i):07d}%40example.com%22",
                            None,
                        ),
                    ),
                    (
                        'filter userName co "x" (count=10)',
                        lambda i: (
                            "GET",
                            f'/Users?count=10&filter=userName+co+"{pick(i):07d}"',
                            None,
                        ),
                    ),
                    (
                        "sorted list sortBy=name.familyName count=50",
                        lambda i: ("GET", "/Users?sortBy=name.familyName&count=50", None),
                    ),
                ]
                for name, make in scenarios:
                    results.append(await load(session, name, base, make, **kw))
                    print(f"  {name}: {results[-1].rps:.0f} req/s", file=sys.stderr)
                # Latency proper (the eq targets): one connection, so no request waits
                # behind another; under 32 connections p50 is queueing, i.e. throughput.
                for name, make in scenarios:
                    if name in LATENCY_SCENARIOS:
                        results.append(await load(session, name + ONE, base, make, **one(args, h)))

                # cursor paging: page 1 vs a deep page (RFC 9865)
                cursor_results = await cursor_pages(session, base, h, args)
                results.extend(cursor_results)
                # group membership at scale (issue 4): one member in and out of a big group
                results.extend(await membership(session, base, h, ids, args))
                mem = rss_kib(pid)
                results.append(
                    Result(
                        "scimd RSS",
                        0,
                        0,
                        0.0,
                        note=(
                            f"{mem['VmRSS'] / 1024:.0f} MiB now ({mem['RssAnon'] / 1024:.0f} MiB "
                            f"anonymous + {mem['RssFile'] / 1024:.0f} MiB mapped database "
                            f"pages), {mem['VmHWM'] / 1024:.0f} MiB peak"
                        ),
                    )
                )
    return results


async def cursor_pages(
    session: aiohttp.ClientSession, base: str, h: dict[str, str], args: argparse.Namespace
) -> list[Result]:
    """Walk cursors to page ``args.deep_page`` (count 10), then time page 1 and that page."""
    url = base + "/Users?count=10&cursor="
    async with session.get(url, headers=h) as r:
        if r.status != 200:
            return [Result("cursor paging", 0, 1, 0.0, note=f"HTTP {r.status}")]
        first = orjson.loads(await r.read())
    cursor = first.get("nextCursor")
    page = 1
    while cursor and page < args.deep_page:
        async with session.get(base + f"/Users?count=10&cursor={cursor}", headers=h) as r:
            body = orjson.loads(await r.read())
        cursor = body.get("nextCursor")
        page += 1
    if not cursor:
        return [Result("cursor paging", 0, 1, 0.0, note=f"walk stopped at page {page}")]
    deep = cursor
    kw: dict[str, Any] = {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "max_requests": args.max_requests,
        "headers": h,
    }
    out = []
    for opts, suffix in ((kw, ""), (one(args, h), ONE)):
        out.append(
            await load(
                session,
                "cursor page 1 (count=10)" + suffix,
                base,
                lambda i: ("GET", "/Users?count=10&cursor=", None),
                **opts,
            )
        )
        out.append(
            await load(
                session,
                f"cursor page {page + 1} (count=10)" + suffix,
                base,
                lambda i: ("GET", f"/Users?count=10&cursor={deep}", None),
                **opts,
            )
        )
    return out


ONE = " [1 connection]"
LATENCY_SCENARIOS = (
    "GET /Users/{id}",
    'filter userName eq "x"',
    'filter emails[type eq "work"].value eq "x"',
)


def one(args: argparse.Namespace, h: dict[str, str]) -> dict[str, Any]:
    """Load options for a latency measurement: one connection, bounded in time and count."""
    return {
        "seconds": args.latency_seconds,
        "concurrency": 1,
        "max_requests": args.latency_requests,
        "headers": h,
    }


GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def make_group(
    session: aiohttp.ClientSession,
    base: str,
    h: dict[str, str],
    name: str,
    members: Sequence[str],
    batch: int = 1000,
) -> str:
    """Create a group and add ``members`` by PATCH, ``batch`` per request."""
    async with session.post(
        base + "/Groups",
        data=orjson.dumps({"schemas": [GROUP_URN], "displayName": name}),
        headers=h,
    ) as r:
        body = await r.read()
        if r.status != 201:
            raise SystemExit(f"group create failed: {r.status} {body[:300]!r}")
        gid: str = orjson.loads(body)["id"]
    t0 = time.perf_counter()
    for start in range(0, len(members), batch):
        chunk = members[start : start + batch]
        op = {"op": "add", "path": "members", "value": [{"value": m} for m in chunk]}
        async with session.patch(
            base + f"/Groups/{gid}?excludedAttributes=members",
            data=orjson.dumps({"schemas": [PATCH_URN], "Operations": [op]}),
            headers=h,
        ) as r:
            body = await r.read()
            if r.status != 200:
                raise SystemExit(f"member add failed: {r.status} {body[:300]!r}")
    if len(members) >= 10 * batch:
        took = time.perf_counter() - t0
        print(
            f"  group of {len(members)} members seeded in {took:.1f}s "
            f"({len(members) / took:.0f} members/s)",
            file=sys.stderr,
        )
    return gid


async def membership(
    session: aiohttp.ClientSession,
    base: str,
    h: dict[str, str],
    ids: Sequence[str],
    args: argparse.Namespace,
) -> list[Result]:
    """PATCH add/remove of one member on a 10-member group and on a group holding every
    seeded user but a reserve of 1,000 (the members that are toggled in and out).

    Each request adds or removes one reserve member (Okta's and Entra's shape: ``add``
    with a value list, ``remove`` with ``members[value eq "id"]``); the response leaves
    the members out (``excludedAttributes=members``) as the big group's would otherwise
    carry every member."""
    reserve = list(ids[-1000:])
    big_members = list(ids[: max(0, len(ids) - len(reserve))])
    small = await make_group(session, base, h, "bench-small", big_members[:10])
    big = await make_group(session, base, h, "bench-big", big_members)
    kw: dict[str, Any] = {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "max_requests": args.max_requests,
        "headers": h,
    }

    def toggle(gid: str) -> RequestFactory:
        def make(i: int) -> tuple[str, str, bytes | None]:
            member = reserve[i % len(reserve)]
            if (i // len(reserve)) % 2 == 0:
                op: dict[str, Any] = {"op": "add", "path": "members", "value": [{"value": member}]}
            else:
                op = {"op": "remove", "path": f'members[value eq "{member}"]'}
            body = {"schemas": [PATCH_URN], "Operations": [op]}
            return "PATCH", f"/Groups/{gid}?excludedAttributes=members", orjson.dumps(body)

        return make

    out = []
    for label, gid, size in (
        ("PATCH add/remove 1 member, 10-member group", small, 10),
        (f"PATCH add/remove 1 member, {len(big_members):,}-member group", big, len(big_members)),
    ):
        res = await load(session, label, base, toggle(gid), **kw)
        res.note = f"group of {size} members"
        out.append(res)
        print(f"  {label}: {res.rps:.0f} req/s", file=sys.stderr)
    return out


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        mem = f"{int(fh.readline().split()[1]) // 1024 // 1024} GiB RAM"
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {mem}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
    )


EQ_LOOKUPS = ('filter userName eq "x"', 'filter emails[type eq "work"].value eq "x"')
"""The scenario names of the two identity-provider lookups compared with GET by id."""


def table(results: list[Result], ceiling: float | None = None) -> list[str]:
    """The markdown table of ``results``; with a ``ceiling`` (the bare endpoint's req/s) a
    "% of bare" column."""
    bare = ceiling is not None
    lines = [
        "| scenario | req/s |"
        + (" % of bare |" if bare else "")
        + " p50 ms | p99 ms | errors | note |",
        "|---|---:|" + ("---:|" if bare else "") + "---:|---:|---:|---|",
    ]
    for r in results:
        if not r.requests:
            lines.append(f"| {r.name} | |{' |' if bare else ''} | | {r.errors} | {r.note} |")
            continue
        share = f" {100 * r.rps / ceiling:.0f}% |" if ceiling else (" |" if bare else "")
        lines.append(
            f"| {r.name} | {r.rps:,.0f} |{share} {r.pct(50):.2f} | {r.pct(99):.2f} "
            f"| {r.errors} | {r.note} |"
        )
    return lines


def cursor_check(results: list[Result], one_connection: bool, what: str) -> list[str]:
    """The deep cursor page's p50 against page 1 (the last two cursor scenarios run on one
    connection, or under load)."""
    cursors = [
        r
        for r in results
        if r.name.startswith("cursor page") and r.name.endswith(ONE) == one_connection
    ][-2:]
    if len(cursors) != 2 or not all(c.requests for c in cursors):
        return []
    ratio = cursors[1].pct(50) / cursors[0].pct(50)
    return [f"- {cursors[1].name} p50 = {ratio:.2f}x page 1 ({what})."]


def patch_check(results: list[Result], target: str) -> list[str]:
    """The big group's member add/remove p50 against the 10-member group's."""
    patches = [r for r in results if r.name.startswith("PATCH add/remove")]
    if len(patches) != 2 or not all(p.requests for p in patches):
        return []
    ratio = patches[1].pct(50) / patches[0].pct(50)
    return [f"- {patches[1].name} p50 = {ratio:.2f}x the 10-member group ({target})."]


def report(results: list[Result], args: argparse.Namespace, argv: list[str]) -> str:
    ceiling = results[0].rps if results else 0.0
    by_name = {r.name: r for r in results}
    lines = table(results, ceiling)
    checks = []
    get = by_name.get("GET /Users/{id}")
    if get and ceiling:
        share = 100 * get.rps / ceiling
        checks.append(f"- GET by id at {share:.0f}% of the bare endpoint (target >= 40%).")
    get1 = by_name.get("GET /Users/{id}" + ONE)
    for name in EQ_LOOKUPS:
        q, q1 = by_name.get(name), by_name.get(name + ONE)
        if q1 and get1 and q1.requests and get1.requests:
            checks.append(
                f"- `{name}` latency p50 = {q1.pct(50) / get1.pct(50):.2f}x GET by id, "
                f"p99 = {q1.pct(99) / get1.pct(99):.2f}x (1 connection; target <= 1.5x)."
            )
        if q and get and q.requests and get.requests:
            checks.append(
                f"- `{name}` p50 under {args.concurrency} connections = "
                f"{q.pct(50) / get.pct(50):.2f}x GET by id (queueing: a throughput ratio)."
            )
    checks += cursor_check(results, True, "1 connection; target <= 1.2x")
    checks += cursor_check(results, False, "under load")
    checks += patch_check(results, "target: about 1x")
    cmd = "python -m bench " + " ".join(shlex.quote(a) for a in argv)
    return "\n".join(
        [
            f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "",
            f"- Machine: {machine()}",
            f"- Command: `make bench` (`{cmd}`)",
            f"- Load: {args.concurrency} concurrent connections, {args.seconds:g} s per scenario "
            f"(at most {args.max_requests} requests), {args.users} users seeded, "
            f"scimd workers={args.workers}; client and servers share the machine's cores.",
            "",
            *lines,
            "",
            *checks,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each scenario")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--users", type=int, default=100_000, help="users seeded before the reads")
    p.add_argument("--deep-page", type=int, default=1000, help="cursor page to compare")
    p.add_argument(
        "--latency-seconds", type=float, default=4.0, help="duration of a 1-connection run"
    )
    p.add_argument("--latency-requests", type=int, default=3000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = p.parse_args(argv)
    results = asyncio.run(run(args))
    text = report(results, args, argv)
    print(text)
    if args.out:
        header = "# Benchmark results\n\nNewest first. Produced by `make bench`.\n\n"
        old = args.out.read_text() if args.out.exists() else header
        body = old[len(header) :] if old.startswith(header) else old
        args.out.write_text(header + text + "\n" + body)


if __name__ == "__main__":
    main()
