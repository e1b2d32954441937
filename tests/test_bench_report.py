"""The reports of ``make bench`` and ``python -m bench.postgres`` (bench/RESULTS.md is
written from them): the table, and each target check computed from the right scenarios."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.__main__ import ONE, Result, report
from bench.postgres import report as pg_report
from bench.postgres import statement_times


def _result(name: str, ms: float, rps: float = 100.0, note: str = "") -> Result:
    return Result(name, int(rps), 0, 1.0, [ms / 1000] * 10, note)


RESULTS = [
    _result("bare aiohttp GET", 0.1, rps=1000),
    _result("GET /Users/{id}", 1.0, rps=500),
    _result('filter userName eq "x"', 1.2),
    _result('filter emails[type eq "work"].value eq "x"', 1.5),
    _result("GET /Users/{id}" + ONE, 0.5),
    _result('filter userName eq "x"' + ONE, 0.6),
    _result('filter emails[type eq "work"].value eq "x"' + ONE, 0.7),
    _result("cursor page 1 (count=10)", 2.0),
    _result("cursor page 1000 (count=10)", 2.2),
    _result("cursor page 1 (count=10)" + ONE, 1.0),
    _result("cursor page 1000 (count=10)" + ONE, 1.1),
    _result("PATCH add/remove 1 member, 10-member group", 4.0, note="group of 10 members"),
    _result("PATCH add/remove 1 member, 100,000-member group", 6.0),
    Result("scimd RSS", 0, 0, 0.0, note="88 MiB now"),
]


def test_embedded_report() -> None:
    args = argparse.Namespace(concurrency=32, seconds=8.0, max_requests=1000, users=10, workers=1)
    text = report(RESULTS, args, ["--users", "10"])
    assert "| scenario | req/s | % of bare | p50 ms | p99 ms | errors | note |" in text
    assert "| GET /Users/{id} | 500 | 50% | 1.00 | 1.00 | 0 |  |" in text
    assert "| scimd RSS | | | | | 0 | 88 MiB now |" in text
    assert "- GET by id at 50% of the bare endpoint (target >= 40%)." in text
    assert (
        '- `filter userName eq "x"` latency p50 = 1.20x GET by id, p99 = 1.20x '
        "(1 connection; target <= 1.5x)." in text
    )
    assert '`filter emails[type eq "work"].value eq "x"` p50 under 32 connections = 1.50x' in text
    assert f"- cursor page 1000 (count=10){ONE} p50 = 1.10x page 1 (1 connection" in text
    assert "- cursor page 1000 (count=10) p50 = 1.10x page 1 (under load)." in text
    assert "100,000-member group p50 = 1.50x the 10-member group (target: about 1x)." in text


def test_postgres_report() -> None:
    args = argparse.Namespace(concurrency=16, seconds=4.0, users=1000, import_only=False, dsn=None)
    text = pg_report(RESULTS[1:], args, ["--users", "1000"], "1,000 users in 1.0 s")
    assert "| scenario | req/s | p50 ms | p99 ms | errors | note |" in text
    assert "| GET /Users/{id} | 500 | 1.00 | 1.00 | 0 |  |" in text
    assert "| scimd RSS | | | | 0 | 88 MiB now |" in text
    assert "- Import: 1,000 users in 1.0 s (target >= 20,000 users/s)." in text
    assert '- `filter userName eq "x"` p99 = 1.20x, p50 = 1.20x GET by id (<= 1.5x).' in text
    assert f'- `filter userName eq "x"`{ONE} p99 = 1.20x' in text
    assert "- cursor page 1000 (count=10) p50 = 1.10x page 1 (<= 1.2x)." in text
    assert "100,000-member group p50 = 1.50x the 10-member group (<= 2x)." in text
    # an import-only run has no table
    only = pg_report([], argparse.Namespace(**{**vars(args), "import_only": True}), [], "x")
    assert "| scenario |" not in only and "- Import: x" in only


def test_statement_times_rank_the_import_statements(tmp_path: Path) -> None:
    """``--statements``: the durations PostgreSQL logged after the import began, summed per
    statement (simple, extended protocol and COPY lines), per user, largest first."""
    log = tmp_path / "server.log"
    before = "LOG:  duration: 999.000 ms  statement: SELECT before the import\n"
    log.write_text(
        before
        + 'LOG:  duration: 30.000 ms  statement: COPY "scimd_resources"("pk") FROM STDIN\n'
        + "LOG:  duration: 2.500 ms  execute __asyncpg_stmt_1__: SELECT nextval(x)\n"
        + "LOG:  duration: 2.500 ms  execute __asyncpg_stmt_1__: SELECT nextval(x)\n"
        + "LOG:  duration: 10.000 ms  statement: CREATE INDEX scimd_resources_sv ON t\n"
        + "LOG:  connection authorized: user=postgres\n"
    )
    text = statement_times(log, len(before), users=1000)
    assert text.startswith("statements per user")
    parts = text.split(": ", 1)[1].split(", ")
    assert parts[0] == '30.0 us `COPY "scimd_resources"("pk") FROM STDIN`'
    assert parts[1] == "10.0 us `CREATE INDEX scimd_resources_sv ON t`"
    assert parts[2] == "5.0 us `SELECT nextval(x)`"
    assert len(parts) == 3 and "before" not in text
