"""valuePath and ``eq`` lookups on the embedded store, from RFC 7644 3.4.2.2.

``emails[type eq "work"].value eq "x"`` (what provisioning clients poll with) matches a User
when ONE element of ``emails`` has both ``type`` "work" and ``value`` "x": an element with
the type and another with the value is no match. ``type`` and ``value`` of ``emails`` are
``caseExact: false`` (RFC 7643 4.1.2), so case does not matter; an element without a
``type`` (absent or null) has no type "work". A User matching through several elements is
one result. Pages of an unsorted query are in a stable order (by id) with exact totals.

The store answers such filters (and ``eq`` on any stored attribute whose values are
probably selective) by joining the matching row of its value index to the resource; the
last tests check that statement's shape and query plan, and a property test holds random
users and filters equal to the reference evaluator (``scimd.query.evaluate.matches``) over
every page.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimd.backend import Query
from scimd.query.evaluate import matches
from scimd.query.filter_cache import FilterCache
from scimd.query.parse import parse_filter
from scimd.schema.model import ResourceType
from scimd.store.sqlite import SQLiteBackend
from tests._store_helpers import ctx, device_type, make_backend, started, user, user_type

WORK_X = 'emails[type eq "work"].value eq "x@example.com"'


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    async for backend in started(tmp_path / "s.db"):
        yield backend


async def _users(store: SQLiteBackend, **people: list[dict[str, Any]]) -> dict[str, str]:
    """Create one User per keyword (its userName) with those ``emails``; name -> id."""
    rt = user_type()
    return {
        name: (await store.create(ctx(), rt, user(name, emails=emails)))["id"]
        for name, emails in people.items()
    }


async def _names(store: SQLiteBackend, text: str, **query: Any) -> list[str]:
    rt = user_type()
    page = await store.query(ctx(), rt, Query(filter=parse_filter(text, rt), **query))
    return [r["userName"] for r in page.resources]


# --------------------------------------------------------------------------- RFC semantics


async def test_type_and_value_must_be_in_the_same_element(store: SQLiteBackend) -> None:
    await _users(
        store,
        same=[{"value": "x@example.com", "type": "work"}],
        split=[
            {"value": "x@example.com", "type": "home"},
            {"value": "y@example.com", "type": "work"},
        ],
        other=[{"value": "y@example.com", "type": "work"}],
    )
    assert await _names(store, WORK_X) == ["same"]
    # the same filter spelled as one valuePath
    assert await _names(store, 'emails[type eq "work" and value eq "x@example.com"]') == ["same"]


async def test_type_and_value_ignore_case(store: SQLiteBackend) -> None:
    await _users(
        store,
        upper_type=[{"value": "x@example.com", "type": "WORK"}],
        mixed_value=[{"value": "X@Example.COM", "type": "Work"}],
        home=[{"value": "x@example.com", "type": "Home"}],
    )
    assert sorted(await _names(store, WORK_X)) == ["mixed_value", "upper_type"]
    assert sorted(await _names(store, 'emails[type eq "WORK"].value eq "X@EXAMPLE.com"')) == [
        "mixed_value",
        "upper_type",
    ]


async def test_an_element_without_a_type_has_no_type_work(store: SQLiteBackend) -> None:
    await _users(
        store,
        absent=[{"value": "x@example.com"}],
        null=[{"value": "x@example.com", "type": None}],
        empty=[{"value": "x@example.com", "type": ""}],
    )
    assert await _names(store, WORK_X) == []
    # ... while the address itself is there
    assert sorted(await _names(store, 'emails.value eq "x@example.com"')) == [
        "absent",
        "empty",
        "null",
    ]


async def test_any_of_several_emails_matches_and_the_user_is_one_result(
    store: SQLiteBackend,
) -> None:
    await _users(
        store,
        third=[
            {"value": "a@example.com", "type": "home"},
            {"value": "b@example.com", "type": "other"},
            {"value": "x@example.com", "type": "work"},
        ],
        twice=[
            {"value": "x@example.com", "type": "work"},
            {"value": "X@example.com", "type": "Work", "primary": True},
        ],
        home_then_work=[
            {"value": "x@example.com", "type": "home"},
            {"value": "x@example.com", "type": "work"},
        ],
    )
    rt = user_type()
    page = await store.query(ctx(), rt, Query(filter=parse_filter(WORK_X, rt)))
    assert sorted(r["userName"] for r in page.resources) == ["home_then_work", "third", "twice"]
    assert page.total_results == 3
    page = await store.query(
        ctx(), rt, Query(filter=parse_filter('emails.value eq "X@example.com"', rt))
    )
    assert page.total_results == 3 and len(page.resources) == 3


async def test_other_conditions_in_the_element_still_apply(store: SQLiteBackend) -> None:
    await _users(
        store,
        primary=[{"value": "x@example.com", "type": "work", "primary": True}],
        secondary=[{"value": "x@example.com", "type": "work"}],
        primary_elsewhere=[
            {"value": "x@example.com", "type": "work"},
            {"value": "y@example.com", "type": "home", "primary": True},
        ],
    )
    text = 'emails[type eq "work" and value eq "x@example.com" and primary eq true]'
    assert await _names(store, text) == ["primary"]
    text = 'emails[value eq "x@example.com" and not (primary eq true)]'
    assert sorted(await _names(store, text)) == ["primary_elsewhere", "secondary"]


async def test_many_matches_page_in_id_order_with_exact_totals(store: SQLiteBackend) -> None:
    people = {f"u{i}": [{"value": "x@example.com", "type": "work"}] for i in range(7)}
    ids = await _users(store, **people, nope=[{"value": "x@example.com", "type": "home"}])
    rt = user_type()
    flt = parse_filter(WORK_X, rt)
    seen: list[str] = []
    for start in (1, 3, 5, 7, 9):
        page = await store.query(ctx(), rt, Query(filter=flt, start_index=start, count=2))
        assert page.total_results == 7
        seen += [r["id"] for r in page.resources]
    assert seen == sorted(v for k, v in ids.items() if k != "nope")


async def test_polled_values_each_get_their_own_user(store: SQLiteBackend) -> None:
    """The statement compiled once for the shape answers each polled address."""
    ids = await _users(
        store,
        **{f"p{i}": [{"value": f"p{i}@example.com", "type": "work"}] for i in range(4)},
        wrong_type=[{"value": "p9@example.com", "type": "home"}],
    )
    rt = user_type()
    cache = FilterCache()
    for i in (0, 1, 2, 3, 9, 1):
        flt, shape = cache.parse_shaped(f'emails[type eq "work"].value eq "P{i}@example.com"', rt)
        assert shape is not None
        page = await store.query(ctx(), rt, Query(filter=flt, shape=shape))
        assert [r["id"] for r in page.resources] == ([ids[f"p{i}"]] if i < 9 else [])
        assert page.total_results == (1 if i < 9 else 0)


async def test_a_polled_value_equal_to_the_tenant_or_type_name(store: SQLiteBackend) -> None:
    """A compared value equal to the tenant ("acme") or the resource type ("User") is
    still only that value: the statement compiled for the shape must not tie them."""
    rt = user_type()
    ids = {}
    for ext in ("acme", "User", "other"):
        ids[ext] = (await store.create(ctx(), rt, user(f"n-{ext}", externalId=ext)))["id"]
    cache = FilterCache()
    for ext in ("acme", "other", "User", "other", "acme", "nobody"):
        flt, shape = cache.parse_shaped(f'externalId eq "{ext}"', rt)
        page = await store.query(ctx(), rt, Query(filter=flt, shape=shape))
        assert [r["id"] for r in page.resources] == ([ids[ext]] if ext in ids else []), ext
        other = await store.query(ctx("elsewhere"), rt, Query(filter=flt, shape=shape))
        assert other.resources == []


async def test_multi_valued_simple_attribute_and_numbers(store: SQLiteBackend) -> None:
    rt = device_type()
    made = {}
    for serial, body in {
        "d1": {"tags": ["Lab", "lab", "x"], "cores": 4, "ports": [{"name": "eth0", "speed": 100}]},
        "d2": {
            "tags": ["lab"],
            "cores": 8,
            "ports": [{"name": "eth0", "speed": 10}, {"name": "eth1", "speed": 100}],
        },
        "d3": {"tags": ["other"], "cores": 4},
    }.items():
        body = {"schemas": ["urn:example:scimd:schemas:Device"], "serial": serial, **body}
        made[serial] = (await store.create(ctx(), rt, body))["id"]

    async def serials(text: str) -> list[str]:
        page = await store.query(ctx(), rt, Query(filter=parse_filter(text, rt)))
        assert page.total_results == len(page.resources)
        return sorted(r["serial"] for r in page.resources)

    assert await serials('tags eq "LAB"') == ["d1", "d2"]
    assert await serials("cores eq 4") == ["d1", "d3"]
    assert await serials('ports[speed eq 100 and name eq "eth0"]') == ["d1"]
    assert await serials("ports[speed eq 100]") == ["d1", "d2"]


async def test_two_matches_page_by_id_with_exact_totals(store: SQLiteBackend) -> None:
    """One resource or none is a lookup's usual answer; two must still be ordered and
    counted, whatever the page size, with and without a total asked for."""
    ids = await _users(
        store,
        a=[{"value": "x@example.com", "type": "work"}],
        b=[{"value": "y@example.com", "type": "home"}, {"value": "x@example.com", "type": "work"}],
    )
    rt = user_type()
    flt = parse_filter(WORK_X, rt)
    both = sorted(ids.values())
    for count, start, want in ((1, 1, both[:1]), (1, 2, both[1:]), (5, 1, both), (5, 2, both[1:])):
        page = await store.query(ctx(), rt, Query(filter=flt, count=count, start_index=start))
        assert [r["id"] for r in page.resources] == want, (count, start)
        assert page.total_results == 2
    page = await store.query(ctx(), rt, Query(filter=flt, want_total=False))
    assert [r["id"] for r in page.resources] == both
    assert page.total_results is None
    one = parse_filter('emails[type eq "home"].value eq "y@example.com"', rt)
    page = await store.query(ctx(), rt, Query(filter=one, want_total=False))
    assert [r["id"] for r in page.resources] == [ids["b"]]


async def test_a_single_match_is_one_unordered_statement(tmp_path: Path) -> None:
    """The first page of a lookup that finds one resource (or none) is read by one
    statement without a sort, like ``userName eq``; data and relations come
    with it."""
    seen: list[str] = []
    backend = make_backend(tmp_path / "s.db")
    backend.trace = seen.append
    await backend.start()
    try:
        rt = user_type()
        made = await backend.create(
            ctx(), rt, user("solo", emails=[{"value": "x@example.com", "type": "work"}])
        )
        for text, want in ((WORK_X, [made["id"]]), (WORK_X.replace("x@", "nobody@"), [])):
            seen.clear()
            page = await backend.query(ctx(), rt, Query(filter=parse_filter(text, rt)))
            assert [r["id"] for r in page.resources] == want
            assert page.total_results == len(want)
            selects = [sql for sql in seen if sql.lstrip().upper().startswith("SELECT")]
            assert len(selects) == 1, seen
            assert "ORDER BY" not in selects[0] and "JOIN resources r" in selects[0]
            if want:
                assert page.resources == [await backend.get(ctx(), rt, made["id"])]
    finally:
        await backend.aclose()


# --------------------------------------------------------------------------- the statement


async def _page_statement(
    store: SQLiteBackend, rt: ResourceType, text: str
) -> tuple[str, list[str]]:
    """The one statement of an index page for ``text`` and its query plan."""
    q = Query(filter=parse_filter(text, rt))

    def explain() -> tuple[str, list[str]]:
        conn = store._conn()
        sql, params, _count, _unordered = store._one_statement_sql(conn, ctx(), rt, q)
        params = dict(params, limit=100, offset=0)
        plan = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        return sql, [str(row[3]) for row in plan]

    return await store._read(explain)


@pytest.mark.parametrize(
    ("rtype", "text", "index"),
    [
        (user_type, WORK_X, "attr_values_text"),
        (user_type, 'emails.value eq "x@example.com"', "attr_values_text"),
        (user_type, 'externalId eq "x"', "attr_values_text"),
        (device_type, "cores eq 4", "attr_values_num"),
        (device_type, "ports[speed eq 100]", "attr_values_num"),
    ],
)
async def test_lookup_pages_join_the_entry_row(
    store: SQLiteBackend, rtype: Any, text: str, index: str
) -> None:
    await store.create(
        ctx(),
        user_type(),
        user("someone", externalId="e", emails=[{"value": "x@example.com", "type": "work"}]),
    )
    rt = rtype()
    if rt.name == "Device":
        body = {"schemas": ["urn:example:scimd:schemas:Device"], "serial": "s", "cores": 4}
        await store.create(ctx(), rt, dict(body, ports=[{"speed": 100}]))
    sql, plan = await _page_statement(store, rt, text)
    assert "JOIN resources r ON r.pk = " in sql and " IN (" not in sql, sql
    assert plan[1].startswith("SEARCH") and index in plan[1], plan
    # the resources are fetched by rowid from the index hits, never scanned
    assert not any(line.startswith("SCAN") and line != "SCAN p" for line in plan), plan


@pytest.mark.parametrize(
    "text",
    [
        'emails[type eq "work"]',  # every work address: not a selective entry
        'emails[type eq "work" or value eq "x"]',  # no eq every match must satisfy
        'userName eq "x"',  # at most one: the flat statement
        'emails[type eq "work"].value eq "x" and active eq true',
    ],
)
async def test_other_filters_keep_their_statement(store: SQLiteBackend, text: str) -> None:
    await _users(store, someone=[{"value": "x@example.com", "type": "work"}])
    sql, _plan = await _page_statement(store, user_type(), text)
    assert "JOIN resources r ON r.pk = " not in sql, sql


# --------------------------------------------------------------------------- property

VALUES = ("x@example.com", "X@EXAMPLE.COM", "y@example.com", "")
TYPES = ("work", "Work", "home", None, "absent")


@st.composite
def emails(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        item: dict[str, Any] = {"value": draw(st.sampled_from(VALUES))}
        kind = draw(st.sampled_from(TYPES))
        if kind != "absent":
            item["type"] = kind
        if draw(st.booleans()):
            item["primary"] = draw(st.booleans())
        out.append(item)
    return out


@st.composite
def filters(draw: st.DrawFn) -> str:
    value = json.dumps(draw(st.sampled_from(VALUES)))
    kind = json.dumps(draw(st.sampled_from(("work", "WORK", "home"))))
    return draw(
        st.sampled_from(
            [
                f"emails[type eq {kind}].value eq {value}",
                f"emails[value eq {value} and type eq {kind}]",
                f"emails.value eq {value}",
                f"emails[value eq {value} and not (type eq {kind})]",
                f"emails[value eq {value} and primary eq true]",
                f"emails[value eq {value} or type eq {kind}]",
                f"externalId eq {value}",
                f"not (emails[type eq {kind}].value eq {value})",
            ]
        )
    )


async def test_lookups_equal_the_reference_evaluator_on_every_page(store: SQLiteBackend) -> None:
    rt = user_type()
    loop = asyncio.get_running_loop()
    tenants = itertools.count()

    async def check(people: list[list[dict[str, Any]]], ext: list[str], texts: list[str]) -> None:
        c = ctx(f"t{next(tenants)}")
        stored = []
        for i, mails in enumerate(people):
            body = user(f"user{i}", emails=mails)
            if ext[i % len(ext)]:
                body["externalId"] = ext[i % len(ext)]
            made = await store.create(c, rt, body)
            stored.append(await store.get(c, rt, made["id"]))
        for text in texts:
            flt = parse_filter(text, rt)
            want = sorted(r["id"] for r in stored if matches(flt, r))
            got: list[str] = []
            for start in range(1, len(stored) + 3, 2):
                page = await store.query(c, rt, Query(filter=flt, start_index=start, count=2))
                assert page.total_results == len(want), (text, stored)
                got += [r["id"] for r in page.resources]
            assert got == want, (text, stored)

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        people=st.lists(emails(), min_size=1, max_size=6),
        ext=st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
        texts=st.lists(filters(), min_size=1, max_size=4),
    )
    def example(people: list[list[dict[str, Any]]], ext: list[str], texts: list[str]) -> None:
        # Hypothesis runs in a worker thread; the store stays on the test's loop.
        asyncio.run_coroutine_threadsafe(check(people, ext, texts), loop).result()

    await asyncio.to_thread(example)
