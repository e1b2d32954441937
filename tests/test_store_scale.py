"""The embedded store at scale: the mechanisms behind the benchmark targets (issues 2-4).

No timings: each test pins *how* a query is answered (its plan, or the statements the
store runs, via the ``trace`` hook), so a change that would make it scan is caught."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import Keyset, Query, SortSpec
from scimd.patch import parse_patch_request
from scimd.query.parse import parse_attr_path, parse_filter
from scimd.query.sort import sort_key
from scimd.store.sqlite import SQLiteBackend, _SortedWalk
from tests._store_helpers import ctx, group, group_type, started, user, user_type

PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    async for backend in started(tmp_path / "s.db"):
        yield backend


async def _users(store: SQLiteBackend, n: int, tenant: str = "acme") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        body = user(
            f"user{i:03d}",
            emails=[
                {"value": f"user{i:03d}@example.com", "type": "work"},
                {"value": f"user{i:03d}@home.example.org", "type": "home", "primary": i % 2 == 0},
            ],
        )
        if i % 4:
            body["name"] = {"familyName": f"Family{i % 3}"}
        out.append(await store.create(ctx(tenant), user_type(), body))
    return out


def _recorder(store: SQLiteBackend) -> list[str]:
    """Record every statement of connections opened from now on (new reader threads)."""
    seen: list[str] = []
    store.trace = seen.append
    return seen


# --------------------------------------------------------------------------- sorted pages


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("keyset", [False, True])
async def test_sorted_page_walks_the_sort_index(
    store: SQLiteBackend, desc: bool, keyset: bool
) -> None:
    """``sortBy=name.familyName`` reads the ordered ``sort_keys`` index from the keyset on:
    no sort step over every matching row, whatever the page."""
    await _users(store, 5)
    rt = user_type()
    spec = SortSpec(parse_attr_path("name.familyName", rt), desc)

    def explain() -> list[str]:
        conn = store._conn()
        where, _, params = store.compile_where(conn, "acme", rt, None, spec)
        pid = store._path_reader(conn)("urn:ietf:params:scim:schemas:core:2.0:user:name.familyname")
        assert pid is not None
        walk = _SortedWalk(conn, where, params, pid, desc)
        cond = "(s.v, s.rid) > (:ks_sv, :ks_id)" if keyset else "1"
        sql = walk.sql_a(cond, False)
        args = dict(walk.params, ks_sv="family1", ks_id="x", s_limit=11, s_offset=0)
        return [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]

    plan = await store._read(explain)
    assert any("sort_keys_order" in line and "SEARCH" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan
    assert not any(line.startswith("SCAN") for line in plan), plan


@pytest.mark.parametrize("sort", ["name.familyName", "-name.familyName", "emails.value"])
async def test_sorted_index_pages_cross_into_the_null_group(
    store: SQLiteBackend, sort: str
) -> None:
    """Index paging over the two walks (values, then nulls) gives the evaluator's order,
    for every startIndex, including pages that start inside the null group."""
    made = await _users(store, 13)
    rt = user_type()
    spec = SortSpec(parse_attr_path(sort.lstrip("-"), rt), sort.startswith("-"))
    stored = [await store.get(ctx(), rt, r["id"]) for r in made]
    expected = [r["id"] for r in sorted(stored, key=lambda r: sort_key(r, spec))]
    for start in range(1, 16):
        page = await store.query(ctx(), rt, Query(sort=spec, start_index=start, count=4))
        assert [r["id"] for r in page.resources] == expected[start - 1 : start + 3], start
        assert page.total_results == 13


async def test_sort_keys_follow_updates_and_deletes(store: SQLiteBackend) -> None:
    made = await _users(store, 6)
    rt = user_type()
    spec = SortSpec(parse_attr_path("name.familyName", rt))
    ops = parse_patch_request(
        rt,
        {
            "schemas": [PATCH_URN],
            "Operations": [{"op": "replace", "path": "name.familyName", "value": "AAA"}],
        },
    )
    await store.patch(ctx(), rt, made[5]["id"], ops, if_match=None)
    await store.delete(ctx(), rt, made[1]["id"], if_match=None)
    page = await store.query(ctx(), rt, Query(sort=spec, paging="cursor", count=2))
    assert page.resources[0]["id"] == made[5]["id"]
    ids: list[str] = []
    ks: Keyset | None = None
    while True:
        page = await store.query(ctx(), rt, Query(sort=spec, paging="cursor", count=2, keyset=ks))
        ids += [r["id"] for r in page.resources]
        if page.next_keyset is None:
            break
        ks = page.next_keyset
    stored = [await store.get(ctx(), rt, r["id"]) for r in made if r is not made[1]]
    assert ids == [r["id"] for r in sorted(stored, key=lambda r: sort_key(r, spec))]


# --------------------------------------------------------------------------- totals


async def test_unfiltered_total_is_a_maintained_count(store: SQLiteBackend) -> None:
    made = await _users(store, 7)
    await _users(store, 3, tenant="other")
    await store.delete(ctx(), user_type(), made[0]["id"], if_match=None)
    seen = _recorder(store)
    await store.aclose()
    await store.start()
    page = await store.query(ctx(), user_type(), Query(count=2))
    assert page.total_results == 6
    other = await store.query(ctx("other"), user_type(), Query(count=0))
    assert other.total_results == 3
    none = await store.query(ctx("nobody"), user_type(), Query(count=1))
    assert none.total_results == 0 and none.resources == []
    assert any("resource_counts" in sql for sql in seen), seen
    assert not any("count(*)" in sql for sql in seen), seen


async def test_a_short_first_page_is_its_own_total(store: SQLiteBackend) -> None:
    await _users(store, 5)
    seen = _recorder(store)
    await store.aclose()
    await store.start()
    flt = parse_filter('userName eq "user003"', user_type())
    for paging in ("index", "cursor"):
        page = await store.query(ctx(), user_type(), Query(filter=flt, paging=paging, count=10))
        assert page.total_results == 1 and len(page.resources) == 1
    assert any("attr_values" in sql for sql in seen), seen
    # No counting statement: the index page counts within its one statement (window
    # over the matches it reads anyway), the cursor page's rows are the total.
    assert not any(sql.startswith("SELECT count(*)") for sql in seen), seen
    # a full page still counts, exactly
    flt = parse_filter('userName sw "user"', user_type())
    page = await store.query(ctx(), user_type(), Query(filter=flt, count=2))
    assert page.total_results == 5
    assert any("count(*)" in sql for sql in seen)


# --------------------------------------------------------------------------- valuePath


async def test_value_path_enters_through_the_selective_value(store: SQLiteBackend) -> None:
    """``emails[type eq "work"].value eq "x"`` uses the index on the address, not on
    ``type`` (which every work address shares)."""
    await _users(store, 3)
    rt = user_type()
    flt = parse_filter('emails[type eq "work"].value eq "user001@example.com"', rt)

    def compiled() -> tuple[str, dict[str, Any]]:
        where, _, params = store.compile_where(store._conn(), "acme", rt, flt)
        return where, params

    where, params = await store._read(compiled)
    driver = re.search(r"\be\d+\.v_text = :(p\d+)", where)
    assert driver is not None, where
    assert params[driver.group(1)] == "user001@example.com"
    page = await store.query(ctx(), rt, Query(filter=flt))
    assert [r["userName"] for r in page.resources] == ["user001"]


# --------------------------------------------------------------------------- membership


async def _member_writes(store: SQLiteBackend, size: int) -> list[str]:
    """The member statements of adding then removing one member of a ``size`` group."""
    users = await _users(store, size + 1, tenant=f"t{size}")
    members = [u["id"] for u in users[:size]]
    c = ctx(f"t{size}", load_members=False)
    created = await store.create(c, group_type(), group(f"g{size}", *members))
    extra = users[size]["id"]
    seen: list[str] = []
    writer = store._writer
    assert writer is not None
    writer.set_trace_callback(seen.append)
    try:
        for body in (
            {"op": "add", "path": "members", "value": [{"value": extra}]},
            {"op": "remove", "path": f'members[value eq "{extra}"]'},
        ):
            ops = parse_patch_request(group_type(), {"schemas": [PATCH_URN], "Operations": [body]})
            await store.patch(c, group_type(), created["id"], ops, if_match=None)
    finally:
        writer.set_trace_callback(None)
    return [sql for sql in seen if "members" in sql.lower()]


async def test_member_patch_touches_only_the_named_member(store: SQLiteBackend) -> None:
    """Adding or removing one member of a big group runs exactly the statements it runs on a
    small group: no statement reads or rewrites the other members."""
    small = await _member_writes(store, 3)
    big = await _member_writes(store, 60)
    assert small and len(small) == len(big), (small, big)
    for sql in big:
        assert "member_id = " in sql or "VALUES" in sql, sql
