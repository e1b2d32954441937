"""How the embedded store answers the list requests of the ``eq`` benchmark targets
(issue 3: an ``eq`` query within 1.5x of GET by id).

No timings: each test pins a mechanism through the store's ``trace`` hook (every SQL
statement a connection runs) or the plan, and checks the answer against GET by id:

* an index page (``userName eq``, ``emails[type eq "work"].value eq``, an unfiltered list)
  is ONE statement: ids, ``data``, the relations the response wants and the exact total,
  no BEGIN/COMMIT and no second round trip per page or per resource;
* the reader connections read the database through ``mmap``;
* the planner pushes a whole filter to a backend that supports everything without
  walking it;
* a polled filter shape (``userName eq "<each user>"``) is parsed once
  (``scimd.query.filter_cache``), with the same tree as a full parse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scimd.backend import BackendEnv, Capabilities, Query, SortSpec
from scimd.errors import ScimError
from scimd.query.ast import Comparison, Filter, Present, ValuePath
from scimd.query.filter_cache import FilterCache
from scimd.query.parse import parse_attr_path, parse_filter
from scimd.query.planner import plan
from scimd.store.sql import iter_nodes
from scimd.store.sqlite import SQLiteBackend
from tests._store_helpers import ctx, group, group_type, make_backend, user, user_type


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[SQLiteBackend, list[str]]]:
    """A started store whose every connection reports its statements."""
    seen: list[str] = []
    backend = make_backend(tmp_path / "s.db")
    backend.trace = seen.append
    await backend.start()
    try:
        yield backend, seen
    finally:
        await backend.aclose()


async def _seed(store: SQLiteBackend) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    users = []
    for i in range(5):
        body = user(
            f"user{i}",
            emails=[
                {"value": f"user{i}@example.com", "type": "work"},
                {"value": f"user{i}@home.example.org", "type": "home"},
            ],
        )
        users.append(await store.create(ctx(), user_type(), body))
    grp = await store.create(ctx(), group_type(), group("Admins", users[1]["id"], users[0]["id"]))
    await store.create(ctx(), group_type(), group("Staff", users[1]["id"]))
    return users, grp


@pytest.mark.parametrize(
    "text",
    ['userName eq "user1"', 'emails[type eq "work"].value eq "user1@example.com"'],
)
async def test_eq_query_is_one_statement_and_equals_get(
    traced: tuple[SQLiteBackend, list[str]], text: str
) -> None:
    store, seen = traced
    users, _ = await _seed(store)
    expected = await store.get(ctx(), user_type(), users[1]["id"])
    assert len(expected["groups"]) == 2  # the relation is part of the answer
    seen.clear()
    page = await store.query(ctx(), user_type(), Query(filter=parse_filter(text, user_type())))
    assert page.resources == [expected]
    assert page.total_results == 1
    assert len(seen) == 1, seen
    assert seen[0].startswith("SELECT") and "attr_values" in seen[0]


async def test_no_match_is_one_statement(traced: tuple[SQLiteBackend, list[str]]) -> None:
    store, seen = traced
    await _seed(store)
    seen.clear()
    flt = parse_filter('userName eq "nobody"', user_type())
    page = await store.query(ctx(), user_type(), Query(filter=flt))
    assert page.resources == [] and page.total_results == 0
    assert len(seen) == 1, seen


async def test_group_page_carries_members_like_get(
    traced: tuple[SQLiteBackend, list[str]],
) -> None:
    store, seen = traced
    _, grp = await _seed(store)
    expected = await store.get(ctx(), group_type(), grp["id"])
    assert [m["value"] for m in expected["members"]] == sorted(
        m["value"] for m in expected["members"]
    )
    seen.clear()
    flt = parse_filter('displayName eq "Admins"', group_type())
    page = await store.query(ctx(), group_type(), Query(filter=flt))
    assert page.resources == [expected]
    assert len(seen) == 1, seen


async def test_relations_not_wanted_are_not_read(
    traced: tuple[SQLiteBackend, list[str]],
) -> None:
    store, seen = traced
    users, _ = await _seed(store)
    seen.clear()
    flt = parse_filter('userName eq "user1"', user_type())
    page = await store.query(ctx(load_groups=False), user_type(), Query(filter=flt))
    assert page.resources[0]["id"] == users[1]["id"] and "groups" not in page.resources[0]
    assert len(seen) == 1 and "members" not in seen[0], seen


async def test_filtered_page_total_comes_from_the_page_unless_it_is_full(
    traced: tuple[SQLiteBackend, list[str]],
) -> None:
    """A page that is not full tells its own exact total (one statement); a full page,
    or an empty one past the start, counts the matches with one more statement."""
    store, seen = traced
    users, _ = await _seed(store)
    flt = parse_filter('userName sw "user"', user_type())
    ordered = sorted(u["id"] for u in users)
    for start, count, ids, statements in (
        (2, 2, ordered[1:3], 2),  # full page: counted
        (4, 5, ordered[3:], 1),  # the last, partial page: 3 + 2 = 5 from the page itself
        (1, 10, ordered, 1),  # everything on the first page
        (9, 2, [], 2),  # past the end: counted
    ):
        seen.clear()
        page = await store.query(
            ctx(), user_type(), Query(filter=flt, start_index=start, count=count)
        )
        assert page.total_results == 5, (start, count)
        assert [r["id"] for r in page.resources] == ids
        assert len(seen) == statements, seen
    no_total = await store.query(ctx(), user_type(), Query(filter=flt, count=2, want_total=False))
    assert no_total.total_results is None and len(no_total.resources) == 2


async def test_unfiltered_page_is_one_statement(
    traced: tuple[SQLiteBackend, list[str]],
) -> None:
    store, seen = traced
    users, _ = await _seed(store)
    seen.clear()
    page = await store.query(ctx(), user_type(), Query(count=3))
    assert page.total_results == 5
    assert [r["id"] for r in page.resources] == sorted(u["id"] for u in users)[:3]
    assert len(seen) == 1 and "resource_counts" in seen[0], seen


async def test_page_beyond_the_end_still_has_the_exact_total(
    traced: tuple[SQLiteBackend, list[str]],
) -> None:
    """An empty page after the first carries no row to read the total from: the store
    then counts the matches (a filter) or reads the maintained count in a read
    transaction (no filter)."""
    store, seen = traced
    await _seed(store)
    flt = parse_filter('userName sw "user"', user_type())
    for f in (flt, None):
        seen.clear()
        page = await store.query(ctx(), user_type(), Query(filter=f, start_index=50, count=2))
        assert page.resources == [] and page.total_results == 5
        if f is None:
            assert "BEGIN" in seen, seen
        else:
            assert seen[-1].startswith("SELECT count(*)"), seen


async def test_sorted_page_still_walks_the_sort_index(
    traced: tuple[SQLiteBackend, list[str]],
) -> None:
    store, seen = traced
    await _seed(store)
    seen.clear()
    spec = SortSpec(parse_attr_path("userName", user_type()), True)
    page = await store.query(ctx(), user_type(), Query(sort=spec, count=2))
    assert [r["userName"] for r in page.resources] == ["user4", "user3"]
    assert any("sort_keys" in sql for sql in seen), seen


async def test_readers_map_the_database(traced: tuple[SQLiteBackend, list[str]]) -> None:
    store = traced[0]

    def mmap_size() -> int:
        value: int = store._conn().execute("PRAGMA mmap_size").fetchone()[0]
        return value

    assert await store._read(mmap_size) > 0


async def test_mmap_can_be_turned_off(tmp_path: Path) -> None:
    """``[storage.embedded] mmap_size = 0``: plain reads (the mapped pages count in RSS)."""
    backend = make_backend(tmp_path / "s.db")
    env = BackendEnv(
        options={"path": "s.db", "mmap_size": 0}, registry=backend.registry, base_dir=tmp_path
    )
    store = SQLiteBackend(env)
    await store.start()
    try:

        def mmap_size() -> int:
            value: int = store._conn().execute("PRAGMA mmap_size").fetchone()[0]
            return value

        assert await store._read(mmap_size) == 0
        created = await store.create(ctx(), user_type(), user("bjensen"))
        flt = parse_filter('userName eq "bjensen"', user_type())
        page = await store.query(ctx(), user_type(), Query(filter=flt))
        assert [r["id"] for r in page.resources] == [created["id"]]
    finally:
        await store.aclose()


def test_planner_pushes_a_supported_filter_without_rebuilding_it() -> None:
    flt = parse_filter('userName eq "a" and (active eq true and title ne "x")', user_type())
    p = plan(flt, Capabilities())
    assert p.pushed is flt and p.residual is None and p.reasons == ()
    # A backend without "ne" still gets the rewrite (not the fast path).
    limited = Capabilities(filter_ops=frozenset({"eq"}))
    assert plan(flt, limited).pushed is not flt


# --------------------------------------------------------------------------- filter shapes

_SHAPES = (
    'userName eq "{}"',
    'USERNAME EQ  "{}"  ',
    'emails[type eq "work"].value eq "{}"',
    'emails[type eq "work"].value eq "{}"'.replace("work", "{}", 1),
    'emails eq "{}"',
    'name.familyName eq "{}"',
    'id eq "{}"',
    'externalId eq "{}"',
    'groups.value eq "{}"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "{}"',
    'userName eq "a" or title eq "{}"',
    'userName sw "a" and not (active eq true) and displayName eq "{}"',
    'active eq "{}"',
    'meta.lastModified eq "{}"',
    'nosuchattr eq "{}"',
    'userName co "{}"',
    'emails[value eq "{}"]',
    'userName eq "{}" and title eq "{}"',
)

_VALUES = st.lists(
    st.sampled_from(
        [*'abcAZ09 .@-_[]()"\\/', "\t", "\n", "é", "ß", "İ", "🙂", " and ", " eq ", '\\"']
    ),
    max_size=8,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(shape=st.sampled_from(_SHAPES), values=st.lists(_VALUES, min_size=2, max_size=2))
def test_filter_cache_equals_parse_filter(shape: str, values: list[str]) -> None:
    """Whatever the shape and the value, the cached (shape-built) tree is the parsed one,
    and a filter parse_filter rejects is rejected the same way."""
    cache = FilterCache()
    rt = user_type()
    for value in (*values, "warm", values[0]):
        text = shape.replace("{}", value, 1).replace("{}", values[1])
        try:
            expected: Filter | ScimError = parse_filter(text, rt)
        except ScimError as exc:
            expected = exc
        try:
            got: Filter | ScimError = cache.parse(text, rt)
        except ScimError as exc:
            got = exc
        if isinstance(expected, ScimError):
            assert isinstance(got, ScimError) and type(got) is type(expected)
            assert got.detail == expected.detail
        else:
            assert got == expected
            assert _defns(got) == _defns(expected)


def _defns(node: Filter) -> list[object]:
    """The resolved attribute definitions of a tree (not part of AttrPath equality)."""
    out: list[object] = []
    for n in iter_nodes(node):
        if isinstance(n, Comparison | Present | ValuePath):
            out.append(n.path.defn)
    return out


def test_filter_cache_builds_a_polled_shape_without_parsing() -> None:
    cache = FilterCache()
    rt = user_type()
    for i in range(20):
        value = f"user{i}@example.com"
        got = cache.parse(f'emails[type eq "work"].value eq "{value}"', rt)
        assert got == parse_filter(f'emails[type eq "work"].value eq "{value}"', rt)
    assert cache.shape_hits == 20
    # the repeated text is a plain hit
    cache.parse('emails[type eq "work"].value eq "user3@example.com"', rt)
    assert cache.shape_hits == 20
    # a dateTime value is checked by the parser: never built from a shape
    with pytest.raises(ScimError):
        cache.parse('meta.lastModified gt "2020-01-01T00:00:00Z" and meta.created eq "x"', rt)
    assert cache.shape_hits == 20


# --------------------------------------------------------------------------------------
# Reads on the event loop under a budget (``[storage.embedded] inline_budget``): index
# probes are answered on the loop's own connection, anything bigger is interrupted by
# SQLite's progress handler and answered by a reader thread — with the same result.


async def _budgeted(tmp_path: Path, budget: int) -> tuple[SQLiteBackend, list[tuple[str, str]]]:
    import threading

    seen: list[tuple[str, str]] = []
    base = make_backend(tmp_path / "s.db")
    env = BackendEnv(
        options={"path": "s.db", "readers": 2, "inline_budget": budget},
        registry=base.registry,
        base_dir=tmp_path,
    )
    store = SQLiteBackend(env)
    store.trace = lambda sql: seen.append((threading.current_thread().name, sql))
    await store.start()
    return store, seen


async def test_index_probes_run_on_the_loop_and_scans_move_to_a_reader(tmp_path: Path) -> None:
    import threading

    store, seen = await _budgeted(tmp_path, 5_000)
    loop_thread = threading.current_thread().name
    try:
        for i in range(200):
            await store.create(ctx(), user_type(), user(f"person{i:03d}"))
        some = (await store.query(ctx(), user_type(), Query(count=1))).resources[0]

        seen.clear()
        before = store.inline_reads
        got = await store.get(ctx(), user_type(), some["id"])
        assert got["userName"] == some["userName"]
        assert store.inline_reads == before + 1
        assert seen and {thread for thread, _ in seen} == {loop_thread}

        # A substring search reads every userName: over budget on the loop, so it is
        # interrupted there and answered in full by a reader thread.
        seen.clear()
        flt = parse_filter('userName co "person"', user_type())
        page = await store.query(ctx(), user_type(), Query(filter=flt, count=5, want_total=True))
        assert page.total_results == 200 and len(page.resources) == 5
        threads = [thread for thread, _ in seen]
        assert threads[0] == loop_thread  # tried inline first
        assert threads[-1].startswith("scimd-store-r")  # finished by a reader
        assert store._inline is not None and not store._inline.in_transaction

        # The loop's connection is still good for the next probe.
        before = store.inline_reads
        assert (await store.get(ctx(), user_type(), some["id"]))["id"] == some["id"]
        assert store.inline_reads == before + 1
    finally:
        await store.aclose()


async def test_inline_reads_can_be_turned_off(tmp_path: Path) -> None:
    import threading

    store, seen = await _budgeted(tmp_path, 0)
    try:
        created = await store.create(ctx(), user_type(), user("solo"))
        seen.clear()
        assert (await store.get(ctx(), user_type(), created["id"]))["userName"] == "solo"
        assert store.inline_reads == 0
        assert {thread for thread, _ in seen} != {threading.current_thread().name}
        assert all(thread.startswith("scimd-store-r") for thread, _ in seen)
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("shape", "stored", "asked"),
    [
        # userName is caseExact=false: the polled value is casefolded like the stored one.
        ('userName eq "{}"', "Polled{}", "POLLED{}"),
        ('emails[type eq "work"].value eq "{}"', "p{}@Example.com", "P{}@EXAMPLE.COM"),
        # externalId is caseExact: another case is another value.
        ('externalId eq "{}"', "Ext-{}", "Ext-{}"),
    ],
)
async def test_a_polled_shape_compiles_once_and_answers_every_value(
    traced: tuple[SQLiteBackend, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    shape: str,
    stored: str,
    asked: str,
) -> None:
    """``Query.shape``: the statement compiled for the first filter of a shape serves the
    next ones with only the compared value changed — and each gets its own answer."""
    store = traced[0]
    rt = user_type()
    ids = []
    for i in range(6):
        body = user(
            f"polled{i}" if "userName" not in shape else stored.format(i),
            emails=[{"value": stored.format(i), "type": "work"}],
            externalId=stored.format(i),
        )
        ids.append((await store.create(ctx(), rt, body))["id"])
    cache = FilterCache()
    compiled = 0
    real = store.compile_where

    def counting(*args: Any, **kw: Any) -> Any:
        nonlocal compiled
        compiled += 1
        return real(*args, **kw)

    monkeypatch.setattr(store, "compile_where", counting)
    for i in range(6):
        flt, shaped = cache.parse_shaped(shape.format(asked.format(i)), rt)
        assert shaped is not None
        page = await store.query(ctx(), rt, Query(filter=flt, shape=shaped))
        assert [r["id"] for r in page.resources] == [ids[i]], shape
        assert page.total_results == 1
        # the same filter without the hint gives the same answer
        plain = await store.query(ctx(), rt, Query(filter=flt))
        assert plain.resources == page.resources
    with_hint = compiled - 6  # the unhinted queries compile every time
    assert with_hint == 2  # the first query of the shape: its filter and a probe value
    if "externalId" in shape:
        flt, shaped = cache.parse_shaped(shape.format("EXT-1"), rt)
        page = await store.query(ctx(), rt, Query(filter=flt, shape=shaped))
        assert page.resources == []


async def test_a_shape_first_seen_before_its_attribute_is_stored_still_finds_it_later(
    traced: tuple[SQLiteBackend, list[str]],
) -> None:
    """Canaille's push: ``externalId eq "<id>"`` asked before any user has an externalId
    (the statement then matches nothing), the user POSTed, then the same shape again."""
    store = traced[0]
    rt = user_type()
    cache = FilterCache()
    for value in ("first", "second"):
        flt, shaped = cache.parse_shaped(f'externalId eq "{value}"', rt)
        assert (await store.query(ctx(), rt, Query(filter=flt, shape=shaped))).resources == []
    created = await store.create(ctx(), rt, user("pushed", externalId="third"))
    flt, shaped = cache.parse_shaped('externalId eq "third"', rt)
    page = await store.query(ctx(), rt, Query(filter=flt, shape=shaped))
    assert [r["id"] for r in page.resources] == [created["id"]]


async def test_unique_eq_is_one_flat_statement_without_a_sort(
    traced: tuple[SQLiteBackend, list[str]],
) -> None:
    """``userName eq`` and ``id eq`` match one resource at most (a unique index says so):
    nothing to order, the total is the row count — and the answer is still exact on a
    page past the match."""
    store, seen = traced
    users, _ = await _seed(store)
    expected = await store.get(ctx(), user_type(), users[2]["id"])
    for text in ('userName eq "USER2"', f'id eq "{users[2]["id"]}"'):
        seen.clear()
        flt = parse_filter(text, user_type())
        page = await store.query(ctx(), user_type(), Query(filter=flt))
        assert page.resources == [expected] and page.total_results == 1
        assert len(seen) == 1 and "ORDER BY" not in seen[0], seen
        later = await store.query(ctx(), user_type(), Query(filter=flt, start_index=2))
        assert later.resources == [] and later.total_results == 1
    # Not unique: ordered as usual.
    seen.clear()
    flt = parse_filter('externalId eq "nobody"', user_type())
    await store.query(ctx(), user_type(), Query(filter=flt))
    assert "ORDER BY" in seen[-1], seen
