"""Several scimd processes on one PostgreSQL database lose nothing (issue 5, item 3).

Two separate ``scimd serve`` processes on two ports, the first with ``--workers 2`` (three
worker processes in all), share the database and the ``postgres`` state store (one token
works on both). Concurrent writes spread over both: duplicate userName creates -> exactly
one 201; 50 member adds -> all 50 in the group; PUTs with one If-Match -> one 200, the rest
412; PATCHes without If-Match -> none lost; one primary email created with different
userNames -> exactly one 201 (the rest 409 naming the email).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict
from scimd_postgres.state import PostgresStateStore

from tests._servers import ServeProcess, write_config

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"


class Cluster:
    """Two scimd processes, one token, requests spread round-robin over both."""

    def __init__(self, servers: list[ServeProcess], token: str, session: aiohttp.ClientSession):
        self.servers = servers
        self.token = token
        self.session = session

    async def call(
        self,
        n: int,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, CIMultiDict[str]]:
        """Send to server ``n % 2``; returns status, decoded body, headers."""
        server = self.servers[n % len(self.servers)]
        hdrs = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            hdrs["Content-Type"] = SCIM_JSON
        async with self.session.request(
            method, server.base + path, data=data, headers=hdrs
        ) as resp:
            raw = await resp.read()
            return resp.status, (orjson.loads(raw) if raw else None), CIMultiDict(resp.headers)


@pytest.fixture
async def cluster(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    store = PostgresStateStore(pg_dsn)
    await store.start()
    try:
        _record, token = await store.create_token(tenant="default", scopes=("read", "write"))
    finally:
        await store.aclose()
    config = write_config(tmp_path)
    servers = [ServeProcess(config, pg_dsn, workers=2), ServeProcess(config, pg_dsn, workers=1)]
    try:
        await asyncio.gather(*(s.start() for s in servers))
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, force_close=True)
        ) as session:
            yield Cluster(servers, token, session)
    finally:
        codes = await asyncio.gather(*(s.stop() for s in servers))
    assert codes == [0, 0], [s.log[-5:] for s in servers]


async def test_token_and_data_are_shared_by_both_processes(cluster: Cluster) -> None:
    status, user, _ = await cluster.call(0, "POST", "/Users", {"schemas": [USER], "userName": "a"})
    assert status == 201, user
    status, got, headers = await cluster.call(1, "GET", f"/Users/{user['id']}")
    assert status == 200
    assert got["userName"] == "a"
    assert headers["ETag"] == user["meta"]["version"]


async def test_duplicate_user_name_creates_from_both_processes_yield_one_201(
    cluster: Cluster,
) -> None:
    body = {"schemas": [USER], "userName": "race.user@example.com"}
    results = await asyncio.gather(*(cluster.call(n, "POST", "/Users", body) for n in range(20)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * 19, results
    for status, doc, _ in results:
        if status == 409:
            assert doc["scimType"] == "uniqueness"
    status, page, _ = await cluster.call(
        1, "GET", '/Users?filter=userName eq "RACE.user@example.com"'
    )
    assert (status, page["totalResults"]) == (200, 1)


async def test_one_primary_email_created_from_both_processes_yields_one_201(
    cluster: Cluster,
) -> None:
    # Different userNames, the same person's email in several spellings (scim.unique_email
    # is on by default): PostgreSQL's unique index decides across the processes.
    spellings = ["Race@Example.com", "race@example.COM", "RACE@EXAMPLE.COM", "race@Example.com"]
    results = await asyncio.gather(
        *(
            cluster.call(
                n,
                "POST",
                "/Users",
                {
                    "schemas": [USER],
                    "userName": f"racer{n}",
                    "emails": [{"value": spellings[n % 4], "type": "work", "primary": True}],
                },
            )
            for n in range(12)
        )
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * 11, results
    for n, (status, doc, _) in enumerate(results):
        if status == 409:
            assert doc["scimType"] == "uniqueness"
            assert spellings[n % 4] in doc["detail"], "the 409 names the email"
    status, page, _ = await cluster.call(
        1, "GET", '/Users?filter=emails[type eq "work"].value eq "race@example.com"'
    )
    assert (status, page["totalResults"]) == (200, 1)


async def test_50_concurrent_member_adds_across_processes_are_all_kept(cluster: Cluster) -> None:
    users = await asyncio.gather(
        *(
            cluster.call(n, "POST", "/Users", {"schemas": [USER], "userName": f"m{n}"})
            for n in range(50)
        )
    )
    assert {status for status, _, _ in users} == {201}
    ids = {doc["id"] for _, doc, _ in users}
    status, group, _ = await cluster.call(
        0, "POST", "/Groups", {"schemas": [GROUP], "displayName": "big"}
    )
    assert status == 201
    path = f"/Groups/{group['id']}"
    adds = await asyncio.gather(
        *(
            cluster.call(
                n,
                "PATCH",
                path,
                {
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
                },
            )
            for n, uid in enumerate(sorted(ids))
        )
    )
    assert {status for status, _, _ in adds} <= {200, 204}, adds
    for n in range(2):
        status, got, _ = await cluster.call(n, "GET", path)
        assert status == 200
        assert {m["value"] for m in got["members"]} == ids
    # Every add bumped the version once: 50 writes, none lost or merged.
    assert got["meta"]["version"] == 'W/"51"'


async def test_concurrent_puts_with_one_if_match_one_200_rest_412(cluster: Cluster) -> None:
    status, user, _ = await cluster.call(
        0, "POST", "/Users", {"schemas": [USER], "userName": "put.race"}
    )
    assert status == 201
    etag = user["meta"]["version"]
    results = await asyncio.gather(
        *(
            cluster.call(
                n,
                "PUT",
                f"/Users/{user['id']}",
                {"schemas": [USER], "userName": "put.race", "displayName": f"writer {n}"},
                headers={"If-Match": etag},
            )
            for n in range(10)
        )
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] + [412] * 9, results
    (winner,) = [doc for status, doc, _ in results if status == 200]
    status, got, headers = await cluster.call(1, "GET", f"/Users/{user['id']}")
    assert got["displayName"] == winner["displayName"]
    assert headers["ETag"] == winner["meta"]["version"] != etag


async def test_concurrent_patches_without_if_match_lose_no_update(cluster: Cluster) -> None:
    status, user, _ = await cluster.call(
        0, "POST", "/Users", {"schemas": [USER], "userName": "patch.race"}
    )
    assert status == 201
    results = await asyncio.gather(
        *(
            cluster.call(
                n,
                "PATCH",
                f"/Users/{user['id']}",
                {
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {
                            "op": "add",
                            "path": "phoneNumbers",
                            "value": [{"value": f"+1555000{n:04d}", "type": "other"}],
                        }
                    ],
                },
            )
            for n in range(20)
        )
    )
    assert {status for status, _, _ in results} <= {200, 204}, results
    _status, got, _ = await cluster.call(1, "GET", f"/Users/{user['id']}")
    assert {p["value"] for p in got["phoneNumbers"]} == {f"+1555000{n:04d}" for n in range(20)}
