"""PostgreSQL goes away while scimd runs (issue 5, item 4): requests get 503 with
``Retry-After`` within a bounded time (``command_timeout``), never a 500 or a hang; when the
cluster is back, service resumes by itself (no restart of scimd).

The test has its own cluster (stopping the session's would break the other tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from scimd_postgres.migrations import migrate
from scimd_postgres.testing import PostgresCluster

from tests._http_helpers import MakeScim, make_settings
from tests.conftest import postgres_sections

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def own_cluster(postgres_cluster: PostgresCluster) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(postgres_cluster.bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_outage_is_503_with_retry_after_and_service_resumes(
    own_cluster: PostgresCluster, make_scim: MakeScim, tmp_path: Path
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    dsn = own_cluster.create_database()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    sections = postgres_sections(dsn)
    sections["storage"].options["postgres"]["command_timeout"] = 3.0
    sections["state"].options["command_timeout"] = 3.0
    scim = await make_scim(settings=make_settings(tmp_path, **sections))
    user = await scim.create_user("before.outage")

    await asyncio.to_thread(own_cluster.pause)
    try:
        for method, path, body in (
            ("GET", f"/Users/{user['id']}", None),
            ("GET", '/Users?filter=userName sw "b"', None),
            ("POST", "/Users", {"schemas": [USER], "userName": "during.outage"}),
        ):
            # A hang guard, not a performance check: the store gives up after its
            # command_timeout (3 s) or at once when the connection is refused.
            async with asyncio.timeout(60):
                resp = await scim.request(method, path, json=body)
            doc = await resp.json(content_type=None)
            assert resp.status == 503, (method, path, doc)
            assert int(resp.headers["Retry-After"]) > 0
            assert doc["status"] == "503"
    finally:
        await asyncio.to_thread(own_cluster.resume)

    # Back: every pooled connection was dropped; the pool reconnects by itself. At most
    # one failure per pooled connection, then answers again.
    statuses: list[int] = []
    for _ in range(10):
        resp = await scim.request("GET", f"/Users/{user['id']}")
        statuses.append(resp.status)
        await resp.read()
        if resp.status == 200:
            break
    assert statuses[-1] == 200, statuses
    assert set(statuses[:-1]) <= {503}, statuses
    created = await scim.create_user("after.outage")
    assert created["userName"] == "after.outage"
