"""``python -m bench.postgres``: scimd on PostgreSQL at a million users (issue 5).

Starts a throwaway cluster (``scimd_postgres.testing.PostgresCluster``), writes
``--users`` generated Users (``bench.__main__.make_user``) as JSON lines, times
``scimd import`` of them (the import figure), starts ``scimd serve`` on the database and
measures with ``bench.__main__.load``, next to GET by id in the same run: ``userName eq``,
``emails[type eq "work"].value eq``, cursor page 1 vs page ``--deep-page``, one-member
add/remove on a group of every user but 1,000 (at most ``--group``) vs a 10-member group,
and the RSS of the scimd process. Appends a section to ``bench/RESULTS.md``.

    python -m bench.postgres [--users 1000000] [--group 100000] [--seconds 5]
    python -m bench.postgres --import-only --users 100000 --out ''
    python -m bench.postgres --dsn postgresql://... --users 200000 --group 100000

``--dsn`` measures an existing database (a cluster kept between runs): it is imported
into and seeded when it holds fewer than ``--users`` users, else reused as it is, so the
scenarios can be measured again after a change without a new import.

``--import-only`` stops after the import and reports its users/s and where the CPU went:
the ``scimd import`` process with its worker processes (``RUSAGE_CHILDREN``) and the
PostgreSQL server (its processes' CPU from /proc, ended sessions included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import orjson
from scimd_postgres.testing import PostgresCluster

import bench.__main__ as core
from bench.__main__ import (
    GROUP_URN,
    HOST,
    ONE,
    ROOT,
    SCIM_JSON,
    RequestFactory,
    Result,
    free_port,
    load,
    machine,
    make_user,
    membership,
    one,
    process,
    rss_kib,
    scimd_cmd,
    wait_http,
)


def write_users(path: Path, n: int) -> None:
    with path.open("wb") as fh:
        for start in range(0, n, 10_000):
            fh.write(
                b"".join(
                    orjson.dumps(make_user(i, "pg")) + b"\n"
                    for i in range(start, min(n, start + 10_000))
                )
            )


def server_cpu(data_dir: Path) -> float:
    """CPU seconds of the PostgreSQL server in ``data_dir`` so far: the postmaster, its
    live processes and the ended ones it reaped (sessions end with their connection)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        own = int(fields[11]) + int(fields[12])  # utime, stime
        if int(entry.name) == pid:
            total += own + int(fields[13]) + int(fields[14])  # + cutime, cstime
        elif int(fields[1]) == pid:  # ppid
            total += own
    return total / tick


async def _statement_log(dsn: str, data_dir: Path | None, *, on: bool) -> int:
    """Turn PostgreSQL's log of every statement's duration on (new sessions of ``dsn``'s
    database) or off; the size of the server log before, to read from."""
    if data_dir is None:
        raise SystemExit("--statements needs the throwaway cluster (not --dsn)")
    log = data_dir.parent / "server.log"
    conn = await asyncpg.connect(dsn)
    try:
        db = await conn.fetchval("SELECT current_database()")
        setting = "SET log_min_duration_statement = 0" if on else "RESET log_min_duration_statement"
        await conn.execute(f'ALTER DATABASE "{db}" {setting}')
    finally:
        await conn.close()
    return log.stat().st_size if log.exists() else 0


_DURATION = re.compile(
    r"duration: ([\d.]+) ms\s+(?:statement|execute [^:]*|bind [^:]*|parse [^:]*): (.{0,60})"
)


def statement_times(log: Path, start: int, users: int, top: int = 10) -> str:
    """The statements that took the most time in ``log`` after byte ``start``: total
    wall-clock duration per imported user (the two index rebuilds run side by side)."""
    with log.open("rb") as fh:
        fh.seek(start)
        text = fh.read().decode("utf-8", "replace")
    total: dict[str, float] = {}
    for match in _DURATION.finditer(text):
        key = re.sub(r"\s+", " ", match.group(2)).strip()
        total[key] = total.get(key, 0.0) + float(match.group(1))
    ranked = sorted(total.items(), key=lambda kv: -kv[1])[:top]
    parts = [f"{ms * 1000 / max(1, users):.1f} us `{key[:48]}`" for key, ms in ranked]
    return "statements per user (wall, statement log on): " + ", ".join(parts)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seed_groups(work: Path, config: Path, env: dict[str, str], ids: list[str]) -> str:
    """Seed the groups of ``bench.__main__.membership`` (a 10-member group and one of
    every id but the last 1,000) with one ``scimd import`` of two Group lines."""
    path = work / "groups.jsonl"
    big = ids[: max(0, len(ids) - 1000)]
    with path.open("wb") as fh:
        for name, members in (("bench-small", big[:10]), ("bench-big", big)):
            line = {
                "schemas": [GROUP_URN],
                "displayName": name,
                "members": [{"value": m} for m in members],
            }
            fh.write(orjson.dumps(line) + b"\n")
    t0 = time.perf_counter()
    done = subprocess.run(
        scimd_cmd("import", "-c", str(config), str(path)),
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"group import failed:\n{done.stderr[-3000:]}")
    took = time.perf_counter() - t0
    print(f"  groups seeded ({len(big):,} members) in {took:.1f}s", file=sys.stderr)
    return f"the {len(big):,}-member group imported in {took:.1f} s"


def config_text(port: int) -> str:
    return (
        f'[server]\nhost = "{HOST}"\nport = {port}\nworkers = 1\n'
        '[storage]\nbackend = "postgres"\n'
        '[storage.postgres]\ndsn = { "$env" = "SCIMD_PG_DSN" }\nmax_pool = 20\n'
        '[state]\nbackend = "postgres"\n'
        '[state.postgres]\ndsn = { "$env" = "SCIMD_PG_DSN" }\n'
        '[logging]\nlevel = "WARNING"\n[events]\nlog = false\n'
        "[auth]\nbootstrap_token = false\n"
    )


async def run(
    args: argparse.Namespace, work: Path, dsn: str, data_dir: Path | None = None
) -> tuple[list[Result], str]:
    env = {**os.environ, "SCIMD_PG_DSN": dsn}
    port = free_port()
    config = work / "bench.toml"
    config.write_text(config_text(port))
    data = work / "users.jsonl"
    t0 = time.perf_counter()
    write_users(data, args.users)
    print(f"  wrote {args.users} users in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    subprocess.run(scimd_cmd("migrate", "-c", str(config)), env=env, check=True)  # noqa: ASYNC221
    log_at = await _statement_log(dsn, data_dir, on=True) if args.statements else None
    t0 = time.perf_counter()
    cpu0 = (children_cpu(), server_cpu(data_dir) if data_dir is not None else 0.0)
    imported = subprocess.run(  # noqa: ASYNC221 - the timed import, before the load
        scimd_cmd("import", "-c", str(config), "--batch", str(args.batch), str(data)),
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t0
    summary = imported.stdout.strip().splitlines()[-1] if imported.stdout.strip() else ""
    import_note = (
        f"{args.users:,} users in {took:.1f} s = {args.users / took:,.0f} users/s "
        f"(wall clock of `scimd import --batch {args.batch}`; its own line: {summary})"
    )
    # Linux keeps the largest RSS of the processes this one waited for, and of theirs
    import_note += (
        f"; peak RSS of the largest importing process "
        f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB"
    )
    if data_dir is not None:
        py = children_cpu() - cpu0[0]
        pg = server_cpu(data_dir) - cpu0[1]
        import_note += (
            f"; CPU: scimd import {py:.1f} s ({py * 1e6 / args.users:.0f} us/user), "
            f"PostgreSQL {pg:.1f} s ({pg * 1e6 / args.users:.0f} us/user)"
        )
    if log_at is not None and data_dir is not None:
        await _statement_log(dsn, data_dir, on=False)
        import_note += "; " + statement_times(data_dir.parent / "server.log", log_at, args.users)
    print("  import: " + import_note, file=sys.stderr)
    if imported.returncode != 0:
        raise SystemExit(f"import failed:\n{imported.stderr[-3000:]}")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM scimd_attr_values")
        import_note += f"; {rows / max(1, args.users):.1f} value rows per user"
        if args.import_only:
            return [], import_note
        ids = [
            r[0]
            for r in await conn.fetch(
                "SELECT id FROM scimd_resources WHERE rtype = 'User' ORDER BY pk LIMIT $1",
                args.group + 1000,
            )
        ]
        group_note = seed_groups(work, config, env, ids)
        seeded = {
            str(r[0]): str(r[1])
            for r in await conn.fetch(
                "SELECT display, id FROM scimd_resources WHERE rtype = 'Group'"
            )
        }
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    import_note += f"; {group_note}"
    return await serve_and_measure(args, config, env, port, ids, seeded), import_note


async def serve_and_measure(
    args: argparse.Namespace,
    config: Path,
    env: dict[str, str],
    port: int,
    ids: list[str],
    seeded: dict[str, str],
) -> list[Result]:
    """Serve the database of ``env`` with ``config`` and run ``measure`` against it;
    ``seeded``: the ids of the groups ``seed_groups`` made, by displayName."""

    async def seeded_group(*a: Any, **kw: Any) -> str:
        """``bench.__main__.membership`` takes the groups seeded by the import."""
        return seeded[a[3]]

    core.make_group = seeded_group
    out = subprocess.run(  # noqa: ASYNC221 - once, before the load starts
        scimd_cmd("token", "create", "-c", str(config), "--tenant", "default"),
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = out.stdout.strip().splitlines()[-1]
    h = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
    with process(scimd_cmd("serve", "-c", str(config)), env=env) as proc:
        base = f"http://{HOST}:{port}/scim/v2"
        await wait_http(f"http://{HOST}:{port}/healthz", 60)
        return await measure(args, base, h, ids, proc.pid)


async def run_reused(args: argparse.Namespace, work: Path, dsn: str) -> tuple[list[Result], str]:
    """``--dsn``: measure a database an earlier run (with the same ``--users`` and
    ``--group``) imported and seeded, without importing again; an emptier database is
    imported into first (``run``)."""
    ids: list[str] = []
    seeded: dict[str, str] = {}
    conn = await asyncpg.connect(dsn)
    try:
        stored = 0
        if await conn.fetchval("SELECT to_regclass('scimd_resources') IS NOT NULL"):
            stored = await conn.fetchval(
                "SELECT count(*) FROM scimd_resources WHERE rtype = 'User'"
            )
        if stored >= args.users:
            sql = "SELECT id FROM scimd_resources WHERE rtype = 'User' ORDER BY pk LIMIT $1"
            ids = [r[0] for r in await conn.fetch(sql, args.group + 1000)]
            sql = "SELECT display, id FROM scimd_resources WHERE rtype = 'Group'"
            seeded = {str(r[0]): str(r[1]) for r in await conn.fetch(sql)}
    finally:
        await conn.close()
    if stored < args.users:
        return await run(args, work, dsn)
    note = f"reused: {stored:,} users already in the database (`--dsn`), not imported again"
    if args.import_only:
        return [], note
    port = free_port()
    config = work / "bench.toml"
    config.write_text(config_text(port))
    env = {**os.environ, "SCIMD_PG_DSN": dsn}
    if not {"bench-small", "bench-big"} <= seeded.keys():  # imported by --import-only
        note += "; " + seed_groups(work, config, env, ids)
        conn = await asyncpg.connect(dsn)
        try:
            sql = "SELECT display, id FROM scimd_resources WHERE rtype = 'Group'"
            seeded = {str(r[0]): str(r[1]) for r in await conn.fetch(sql)}
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
    return await serve_and_measure(args, config, env, port, ids, seeded), note


async def deep_cursor_pages(
    session: aiohttp.ClientSession, base: str, h: dict[str, str], args: argparse.Namespace
) -> list[Result]:
    """Cursor page 1 vs page ``args.deep_page`` of ``count=10``. The deep cursor is
    reached in pages of 1,000 (a cursor does not depend on ``count``): walking 10,000
    pages of 10 one by one would take longer than the whole run."""
    target = (args.deep_page - 1) * 10
    cursor, seen = "", 0
    while seen < target:
        step = min(1000, target - seen)
        async with session.get(base + f"/Users?count={step}&cursor={cursor}", headers=h) as r:
            body = orjson.loads(await r.read())
        cursor = body.get("nextCursor") or ""
        seen += len(body.get("Resources", []))
        if not cursor:
            return [Result("cursor paging", 0, 1, 0.0, note=f"walk stopped after {seen}")]
    kw = {"seconds": args.seconds, "concurrency": args.concurrency}
    out = []
    for opts, suffix in (
        ({**kw, "max_requests": args.max_requests, "headers": h}, ""),
        (one(args, h), ONE),
    ):
        for label, cur in (("cursor page 1", ""), (f"cursor page {args.deep_page}", cursor)):
            out.append(
                await load(
                    session,
                    f"{label} (count=10){suffix}",
                    base,
                    lambda i, c=cur: ("GET", f"/Users?count=10&cursor={c}", None),  # type: ignore[misc]
                    **opts,
                )
            )
    return out


async def measure(
    args: argparse.Namespace, base: str, h: dict[str, str], ids: list[str], pid: int
) -> list[Result]:
    """The scenarios against a running scimd (``pid``) on the imported database."""
    kw = {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "max_requests": args.max_requests,
        "headers": h,
    }
    rng = random.Random(7)
    picks = [rng.randrange(args.users) for _ in range(4096)]
    results: list[Result] = []
    conn_limit = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=conn_limit) as s:
        scenarios: list[tuple[str, RequestFactory]] = [
            ("GET /Users/{id}", lambda i: ("GET", f"/Users/{ids[i % len(ids)]}", None))
        ]
        for name, flt in (
            ('filter userName eq "x"', 'userName eq "pg{:07d}@example.com"'),
            (
                'filter emails[type eq "work"].value eq "x"',
                'emails[type eq "work"].value eq "pg{:07d}@example.com"',
            ),
        ):
            scenarios.append(
                (
                    name,
                    lambda i, f=flt: (  # type: ignore[misc]
                        "GET",
                        "/Users?filter=" + f.format(picks[i % len(picks)]).replace(" ", "%20"),
                        None,
                    ),
                )
            )
        for opts, suffix in ((kw, ""), (one(args, h), ONE)):  # loaded, then latency
            for name, make in scenarios:
                results.append(await load(s, name + suffix, base, make, **opts))
                print(f"  {name}{suffix}: p50 {results[-1].pct(50):.2f} ms", file=sys.stderr)
        results.extend(await deep_cursor_pages(s, base, h, args))
        results.extend(await membership(s, base, h, ids, args))
    mem = rss_kib(pid)
    results.append(
        Result(
            "scimd RSS",
            0,
            0,
            0.0,
            note=f"{mem['VmRSS'] / 1024:.0f} MiB now, {mem['VmHWM'] / 1024:.0f} MiB peak",
        )
    )
    return results


def report(results: list[Result], args: argparse.Namespace, argv: list[str], imp: str) -> str:
    by_name = {r.name: r for r in results}
    lines = core.table(results) if results else []
    checks = [f"- Import: {imp} (target >= 20,000 users/s)."]
    for suffix in ("", ONE):
        get = by_name.get("GET /Users/{id}" + suffix)
        for name in core.EQ_LOOKUPS:
            q = by_name.get(name + suffix)
            if q and get and q.requests and get.requests:
                checks.append(
                    f"- `{name}`{suffix} p99 = {q.pct(99) / get.pct(99):.2f}x, p50 = "
                    f"{q.pct(50) / get.pct(50):.2f}x GET by id (<= 1.5x)."
                )
    checks += core.cursor_check(results, False, "<= 1.2x")
    checks += core.cursor_check(results, True, "<= 1.2x")
    checks += core.patch_check(results, "<= 2x")
    cmd = "python -m bench.postgres " + " ".join(shlex.quote(a) for a in argv)
    return "\n".join(
        [
            f"## PostgreSQL, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "",
            f"- Machine: {machine()}",
            f"- Command: `{cmd}` ("
            + (
                "the database given"
                if getattr(args, "dsn", None)
                else "throwaway cluster, fsync off"
            )
            + ")",
            (
                f"- Import only: {args.users:,} users; scimd import and PostgreSQL share the "
                "machine's cores."
                if args.import_only
                else f"- Load: {args.concurrency} concurrent connections, {args.seconds:g} s per "
                f"scenario; {args.users:,} users imported; scimd workers=1 on the postgres "
                "backend and state store; client, scimd and PostgreSQL share the machine's cores."
            ),
            "",
            *lines,
            "",
            *checks,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.postgres", description=__doc__)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--group", type=int, default=100_000, help="members of the big group")
    p.add_argument("--batch", type=int, default=5000, help="scimd import --batch")
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each scenario")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-requests", type=int, default=50_000)
    p.add_argument("--latency-seconds", type=float, default=3.0, help="1-connection runs")
    p.add_argument("--latency-requests", type=int, default=2000)
    p.add_argument("--deep-page", type=int, default=10_000, help="cursor page to compare")
    p.add_argument(
        "--import-only", action="store_true", help="stop after the import (CPU split reported)"
    )
    p.add_argument(
        "--statements",
        action="store_true",
        help="log every statement of the import and report where PostgreSQL's time went "
        "(the log slows the import: for the breakdown, not the rate)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    p.add_argument(
        "--dsn",
        help="an existing database instead of a throwaway cluster: imported into when it "
        "holds fewer than --users users, else measured as it is (no import)",
    )
    args = p.parse_args(argv)
    if args.dsn:
        with tempfile.TemporaryDirectory(prefix="scimd-bench-pg-") as tmp:
            os.chmod(tmp, 0o755)
            results, imp = asyncio.run(run_reused(args, Path(tmp), args.dsn))
        _finish(results, args, argv, imp)
        return
    cluster = PostgresCluster()
    cluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="scimd-bench-pg-") as tmp:
            os.chmod(tmp, 0o755)
            data_dir = cluster.root / "data" if cluster.root is not None else None
            results, imp = asyncio.run(run(args, Path(tmp), cluster.create_database(), data_dir))
    finally:
        cluster.stop()
    _finish(results, args, argv, imp)


def _finish(results: list[Result], args: argparse.Namespace, argv: list[str], imp: str) -> None:
    text = report(results, args, argv, imp)
    print(text)
    if str(args.out) not in ("", "."):
        with args.out.open("a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
