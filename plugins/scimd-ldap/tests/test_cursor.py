"""Cursor paging (RFC 9865) on the LDAP bridge.

On a slapd with sort + VLV (``slapd_server``) an unfiltered walk in id order is positioned
by the directory (VLV targeted at the keyset's entryUUID): ``max_scan`` is below the corpus,
so a walk that read the container would be 400 tooMany. Other walks (a filter, another
sort, a server without sssvlv) run over the matches in memory, within ``max_scan``."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from scimd_ldap.backend import LdapBackend
from scimd_ldap.testing import SlapdServer

from scimd.backend import Keyset, OpContext, Query
from tests._http_helpers import MakeScim, Scim
from tests._lists import NAMES, expected, seed

SMALL_SCAN = 4


@pytest.fixture
def ldap_options(ldap_options: dict[str, Any]) -> dict[str, Any]:
    return {**ldap_options, "max_scan": SMALL_SCAN}


async def cursor_walk(scim: Scim, query: str, count: int) -> tuple[list[list[str]], Any]:
    """Every page of ``query`` by ``nextCursor``; returns the pages' ids and the last doc."""
    pages: list[list[str]] = []
    cursor = ""
    for _ in range(len(NAMES) + 2):
        q = urllib.parse.quote(cursor)
        status, doc = await scim.call("GET", f"/Users?{query}&cursor={q}&count={count}")
        assert status == 200, doc
        assert doc["totalResults"] == len(NAMES)
        assert ("previousCursor" in doc) == bool(pages)
        pages.append([r["id"] for r in doc.get("Resources", [])])
        if "nextCursor" not in doc:
            return pages, doc
        cursor = doc["nextCursor"]
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("query", ["", "sortBy=id", "sortBy=id&sortOrder=ascending"])
@pytest.mark.parametrize("count", [1, 4, 9, 10])
async def test_id_order_walk_is_positioned_by_the_directory(
    scim: Scim, query: str, count: int
) -> None:
    users = await seed(scim)
    pages, last = await cursor_walk(scim, query, count)
    assert [i for p in pages for i in p] == expected(users, None)
    assert all(len(p) == count for p in pages[:-1]) and pages[-1]
    # And back: previousCursor from the last page gives the pages before, in order.
    back: list[list[str]] = []
    doc = last
    while "previousCursor" in doc:
        q = urllib.parse.quote(doc["previousCursor"])
        status, doc = await scim.call("GET", f"/Users?{query}&cursor={q}&count={count}")
        assert status == 200, doc
        back.append([r["id"] for r in doc["Resources"]])
        assert len(back) <= len(pages)
    assert back == list(reversed(pages[:-1]))


async def test_walk_sees_inserts_ahead_not_behind(scim: Scim) -> None:
    users = await seed(scim)
    order = expected(users, None)
    status, doc = await scim.call("GET", "/Users?cursor=&count=3")
    assert status == 200, doc
    seen = [r["id"] for r in doc["Resources"]]
    await scim.call("DELETE", f"/Users/{seen[-1]}")  # the row the cursor points at
    added = [await scim.create_user(f"late{i}") for i in range(3)]
    walked = list(seen)
    while "nextCursor" in doc:
        q = urllib.parse.quote(doc["nextCursor"])
        status, doc = await scim.call("GET", f"/Users?cursor={q}&count=3")
        assert status == 200, doc
        walked += [r["id"] for r in doc["Resources"]]
    ahead = sorted(a["id"] for a in added if a["id"] > seen[-1])
    assert walked == seen + sorted(order[3:] + ahead)


async def test_other_walks_are_in_memory_within_max_scan(
    make_scim: MakeScim, ldap_options: dict[str, Any]
) -> None:
    scim = await make_scim()
    await seed(scim)
    status, doc = await scim.call("GET", "/Users?sortBy=userName&cursor=&count=2")
    assert status == 400, doc
    assert doc["scimType"] == "tooMany"
    assert "storage.ldap.max_scan" in doc["detail"]


async def test_keysets_the_directory_cannot_target(scim: Scim) -> None:
    """A keyset past every id, before every id, or not a UUID: still positions."""
    users = await seed(scim)
    order = expected(users, None)
    backend = scim.runtime.backend
    assert isinstance(backend, LdapBackend)
    rtype = scim.runtime.registry.resource_type("User")
    assert rtype is not None
    ctx = OpContext("default", "test", "r")
    after_all = Keyset(None, "ffffffff-ffff-ffff-ffff-ffffffffffff")
    page = await backend.query(ctx, rtype, Query(paging="cursor", keyset=after_all, count=3))
    assert page.resources == [] and page.next_keyset is None
    back = Keyset(None, after_all.id, "prev")
    page = await backend.query(ctx, rtype, Query(paging="cursor", keyset=back, count=3))
    assert [r["id"] for r in page.resources] == order[-3:]
    assert page.next_keyset is None and page.prev_keyset is not None
    before_all = Keyset(None, "00000000-0000-0000-0000-000000000000")
    page = await backend.query(ctx, rtype, Query(paging="cursor", keyset=before_all, count=3))
    assert [r["id"] for r in page.resources] == order[:3]
    assert page.prev_keyset is None and page.total_results == len(NAMES)


class TestWithoutSssvlv:
    """The same id-order walk on a slapd without sort/VLV: in memory, within max_scan."""

    @pytest.fixture
    def slapd_server(self, plain_slapd_server: SlapdServer) -> SlapdServer:
        return plain_slapd_server

    @pytest.fixture
    def ldap_options(self, ldap_options: dict[str, Any]) -> dict[str, Any]:
        return {**ldap_options, "max_scan": len(NAMES)}

    @pytest.mark.parametrize("query", ["", "sortBy=userName&sortOrder=descending"])
    async def test_walk_in_memory(self, scim: Scim, query: str) -> None:
        users = await seed(scim)
        pages, _ = await cursor_walk(scim, query, 4)
        attr = "userName" if query else None
        assert [i for p in pages for i in p] == expected(users, attr, bool(query))
