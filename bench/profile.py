"""Where scimd's event loop spends its time, per request, for one scenario.

``make bench`` says how fast; this says why. It serves scimd (embedded store) in this
process, seeds users over HTTP, then drives one scenario from a separate load-generator
process (so the client's CPU is not counted) and reports the event-loop thread's CPU per
request (``time.thread_time``: steady even on a busy machine, unlike req/s) and,
with ``--cprofile``, the functions that use it.

    python -m bench.profile [--scenario get|username|emails|list] [--users 2000]
                            [--requests 20000] [--cprofile] [--top 40] [--store DIR]

``--store DIR`` keeps the seeded store in DIR (created if missing) and reuses it on the next
run, so several scenarios can be profiled against 100,000 users seeded once (over HTTP, like
``make bench``, so the stored resources are what a client creates).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from bench.__main__ import HOST, SCIM_JSON, free_port, load, scimd_cmd, seed
from bench.bare import make_app as make_bare_app

SCENARIOS = {
    "bare": "bare aiohttp GET (the ceiling)",
    "get": "GET /Users/{id}",
    "username": 'GET /Users?filter=userName eq "x"',
    "emails": 'GET /Users?filter=emails[type eq "work"].value eq "x"',
    "list": "GET /Users?count=100",
    "getq": "GET /Users/{id}?x=<an emails filter, ignored>",
}


def _path(scenario: str, ids: list[str], i: int) -> str:
    n = i * 7919 % len(ids)
    if scenario in ("get", "bare"):
        return f"/Users/{ids[n]}"
    if scenario == "getq":
        return (
            f"/Users/{ids[n]}?x=emails%5Btype+eq+%22work%22%5D.value+eq+"
            f"%22u{n:07d}%40example.com%22"
        )
    if scenario == "username":
        return f'/Users?filter=userName+eq+"u{n:07d}@example.com"'
    if scenario == "emails":
        return f"/Users?filter=emails%5Btype+eq+%22work%22%5D.value+eq+%22u{n:07d}%40example.com%22"
    return "/Users?count=100"


async def _client(args: argparse.Namespace) -> None:
    """The load generator (runs in its own process): prints requests and p50 ms."""
    ids = orjson.loads(sys.stdin.buffer.read())
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": SCIM_JSON}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        res = await load(
            session,
            args.scenario,
            args.base,
            lambda i: ("GET", _path(args.scenario, ids, i), None),
            seconds=600,
            concurrency=32,
            max_requests=args.requests,
            headers=headers,
        )
    print(
        orjson.dumps({"requests": res.requests, "errors": res.errors, "p50": res.pct(50)}).decode()
    )


async def _serve(args: argparse.Namespace) -> None:
    from scimd.app import create_app
    from scimd.config import load_config

    with contextlib.ExitStack() as stack:
        if args.store:
            tmp = args.store  # made by main()
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="scimd-profile-"))
        port = free_port()
        config = Path(tmp) / "profile.toml"
        config.write_text(
            f'[server]\nhost = "{HOST}"\nport = {port}\n'
            '[storage.embedded]\npath = "scimd.db"\n[state]\npath = "state.db"\n'
            '[logging]\nlevel = "WARNING"\n[events]\nlog = false\n'
            "[auth]\nbootstrap_token = false\n"
        )
        made = subprocess.run(  # noqa: ASYNC221 - once, before serving
            scimd_cmd("token", "create", "-c", str(config)),
            check=True,
            capture_output=True,
            text=True,
        )
        token = made.stdout.strip().splitlines()[-1]
        loaded = load_config(config)
        assert loaded.plugins is not None
        loaded.plugins.configure(loaded.settings)
        bare = args.scenario == "bare"
        app = make_bare_app() if bare else create_app(loaded.settings, loaded.plugins)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        base = f"http://{HOST}:{port}/scim/v2"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
        try:
            kept = Path(tmp) / "ids.json"
            if bare:
                ids = ["2819c223"]
            elif args.store and kept.exists():
                ids = orjson.loads(kept.read_bytes())
            else:
                async with aiohttp.ClientSession() as session:
                    ids = await seed(session, base, headers, args.users, "u")
                if args.store:
                    kept.write_bytes(orjson.dumps(ids))
            cmd = [sys.executable, "-m", "bench.profile", "--client", "--base", base]
            cmd += ["--token", token, "--scenario", args.scenario]
            cmd += ["--requests", str(args.requests)]
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            profiler = cProfile.Profile() if args.cprofile else None
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            stdout, _ = await proc.communicate(orjson.dumps(ids))
            if profiler:
                profiler.disable()
            cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        finally:
            await runner.cleanup()
    res = orjson.loads(stdout.splitlines()[-1])
    n = max(1, res["requests"])
    print(
        f"{SCENARIOS[args.scenario]}: {res['requests']} requests, {res['errors']} errors, "
        f"{n / wall:.0f} req/s, p50 {res['p50']:.2f} ms, "
        f"event-loop CPU {cpu / n * 1e6:.0f} us/request"
        + (" (under cProfile: inflated)" if profiler else "")
    )
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="get")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--cprofile", action="store_true")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--store", help="keep the seeded store in this directory and reuse it")
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--base", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.store and not args.client:
        Path(args.store).mkdir(parents=True, exist_ok=True)
    asyncio.run(_client(args) if args.client else _serve(args))


if __name__ == "__main__":
    main()
