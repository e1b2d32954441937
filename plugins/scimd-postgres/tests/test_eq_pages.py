"""Index pages of the ``postgres`` backend in one statement (``PostgresBackend._index_page``).

An identity provider's lookup (``userName eq "x"``, ``emails[type eq "work"].value eq
"x"``: RFC 7644 3.4.2.2 filters, what Entra ID and Okta poll with) is one statement, the
total taken from the page's own rows when the page is not full; a full page, a page past
the first, a sorted page, or a filter matching many resources is the general statement,
which counts the matches only when the page cannot tell. Both statements carry each
resource's ``members``/``groups``. What is checked: the matches against the reference
evaluator (``scimd.query.evaluate.matches``) and an explicit expectation, the exact
``totalResults`` (RFC 7644 3.4.2), the order, and the statements sent."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from scimd_postgres.backend import PostgresBackend

from scimd.backend import OpContext, Query
from scimd.query.evaluate import matches
from scimd.query.parse import parse_filter
from scimd.schema.model import ResourceType

from ._backend import rtype_of

CTX = OpContext(tenant="t1", principal="system", request_id="r1")
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"

# name -> emails; each a case the valuePath statement must get right.
EMAILS: dict[str, list[dict[str, Any]]] = {
    "alice": [
        {"value": "alice@work.example", "type": "work", "primary": True},
        {"value": "alice@home.example", "type": "home"},
    ],
    # The work element carries another address: "shared@" is in the home element only.
    "bob": [
        {"value": "shared@example.com", "type": "home"},
        {"value": "bob@work.example", "type": "work"},
    ],
    # type and value differ in case only: both are caseExact false (RFC 7643 4.1.2).
    "carol": [{"value": "Carol@Work.Example", "type": "WORK"}],
    # No type at all.
    "dave": [{"value": "dave@example.com"}],
    # Several work addresses and one of another type.
    "erin": [
        {"value": "erin1@work.example", "type": "work"},
        {"value": "erin2@work.example", "type": "work"},
        {"value": "erin3@other.example", "type": "other"},
    ],
    # The same address as bob's home one, as work: only she matches it as work.
    "frank": [{"value": "shared@example.com", "type": "work"}],
}


@pytest.fixture
def backend(one_connection_backend: PostgresBackend) -> PostgresBackend:
    return one_connection_backend


async def _seed(backend: PostgresBackend) -> dict[str, dict[str, Any]]:
    users = rtype_of(backend, "User")
    out: dict[str, dict[str, Any]] = {}
    for name, emails in EMAILS.items():
        body: dict[str, Any] = {"schemas": [USER_URN], "userName": name, "emails": emails}
        if name in ("alice", "bob", "carol", "dave", "erin"):
            body["name"] = {"familyName": "Same"}
        out[name] = await backend.create(CTX, users, body)
    return out


async def _names(backend: PostgresBackend, text: str, **kw: Any) -> tuple[list[str], int | None]:
    users = rtype_of(backend, "User")
    page = await backend.query(CTX, users, Query(filter=parse_filter(text, users), **kw))
    return [r["userName"] for r in page.resources], page.total_results


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('emails[type eq "work"].value eq "alice@work.example"', ["alice"]),
        ('emails[type eq "work"].value eq "alice@home.example"', []),
        ('emails[type eq "work"].value eq "shared@example.com"', ["frank"]),
        ('emails[type eq "home"].value eq "shared@example.com"', ["bob"]),
        ('emails[type eq "work" and value eq "shared@example.com"]', ["frank"]),
        ('emails[type eq "work"].value eq "CAROL@work.example"', ["carol"]),
        ('emails[type eq "Work"].value eq "carol@work.example"', ["carol"]),
        ('emails[type eq "work"].value eq "dave@example.com"', []),
        ('emails.value eq "dave@example.com"', ["dave"]),
        ('emails[type eq "work"].value eq "erin2@work.example"', ["erin"]),
        ('emails[type eq "work"].value eq "erin3@other.example"', []),
        ('emails[type eq "other"].value eq "erin3@other.example"', ["erin"]),
        ('emails.value eq "shared@example.com"', ["bob", "frank"]),
        ('userName eq "ALICE"', ["alice"]),
        ('userName eq "nobody"', []),
        ('emails[type eq "work"].value eq "nobody@example.com"', []),
    ],
)
async def test_eq_lookups_match_the_evaluator(
    backend: PostgresBackend, text: str, want: list[str]
) -> None:
    stored = await _seed(backend)
    users = rtype_of(backend, "User")
    flt = parse_filter(text, users)
    reference = []
    for name, created in stored.items():
        if matches(flt, await backend.get(CTX, users, created["id"])):
            reference.append(name)
    assert sorted(reference) == want  # the expectation is the RFC's, not only the evaluator's
    names, total = await _names(backend, text, count=100)
    assert sorted(names) == want
    assert total == len(want)
    # A page of one: full when there is a match, so the total is counted.
    names, total = await _names(backend, text, count=1)
    assert total == len(want)
    assert len(names) == min(1, len(want))


async def test_totals_when_the_page_is_full_or_past_the_first(backend: PostgresBackend) -> None:
    """``name.familyName eq "Same"`` (five matches) through every total path: the page's
    rows (not full), the count (full page, empty page past the end), start index plus rows
    (a last page past the first); pages in id order (unsorted)."""
    stored = await _seed(backend)
    text = 'name.familyName eq "same"'
    ids = sorted(r["id"] for n, r in stored.items() if n != "frank")
    by_id = {r["id"]: n for n, r in stored.items()}
    order = [by_id[i] for i in ids]
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"count": 10}, order),
        ({"count": 5}, order),
        ({"count": 2}, order[:2]),
        ({"count": 2, "start_index": 3}, order[2:4]),
        ({"count": 2, "start_index": 5}, order[4:]),
        ({"count": 10, "start_index": 5}, order[4:]),
        ({"count": 2, "start_index": 6}, []),
        ({"count": 2, "start_index": 50}, []),
    ]
    for kw, want in cases:
        names, total = await _names(backend, text, **kw)
        assert (names, total) == (want, 5), kw
    names, total = await _names(backend, text, count=2, want_total=False)
    assert (names, total) == (order[:2], None)
    names, total = await _names(backend, 'userName eq "nobody"', count=2, start_index=3)
    assert (names, total) == ([], 0)
    users = rtype_of(backend, "User")
    page = await backend.query(CTX, users, Query(filter=parse_filter(text, users), count=0))
    assert (page.resources, page.total_results) == ([], 5)


async def test_filters_matching_many_and_sorted_pages(backend: PostgresBackend) -> None:
    """The general statement: a filter not expected to match a few (``pr``, ``sw``), a
    sorted page, no filter (the trigger-kept counts)."""
    stored = await _seed(backend)
    users = rtype_of(backend, "User")
    all_ids = sorted(r["id"] for r in stored.values())
    by_id = {r["id"]: n for n, r in stored.items()}
    names, total = await _names(backend, "emails pr", count=4)
    assert (names, total) == ([by_id[i] for i in all_ids[:4]], 6)
    names, total = await _names(backend, 'emails.value sw "erin"', count=4)
    assert (names, total) == (["erin"], 1)
    page = await backend.query(CTX, users, Query(count=3, start_index=2))
    assert [r["id"] for r in page.resources] == all_ids[1:4]
    assert page.total_results == 6
    page = await backend.query(CTX, users, Query(count=3, start_index=20))
    assert (page.resources, page.total_results) == ([], 6)
    from scimd.backend import SortSpec
    from scimd.query.parse import parse_attr_path

    spec = SortSpec(parse_attr_path("userName", users), descending=True)
    flt = parse_filter('name.familyName eq "Same"', users)
    page = await backend.query(CTX, users, Query(filter=flt, sort=spec, count=2))
    assert [r["userName"] for r in page.resources] == ["erin", "dave"]
    assert page.total_results == 5


async def test_pages_carry_the_relations_a_get_returns(backend: PostgresBackend) -> None:
    stored = await _seed(backend)
    users, groups = rtype_of(backend, "User"), rtype_of(backend, "Group")
    members = [{"value": stored[n]["id"]} for n in ("alice", "bob")]
    for name in ("Admins", "Staff"):
        await backend.create(
            CTX, groups, {"schemas": [GROUP_URN], "displayName": name, "members": members}
        )
    for text, count in (('userName eq "alice"', 100), ('userName eq "alice"', 1), ("emails pr", 3)):
        page = await backend.query(CTX, users, Query(filter=parse_filter(text, users), count=count))
        assert page.resources
        for got in page.resources:
            assert got == await backend.get(CTX, users, got["id"]), text
    alice = (await _page(backend, users, 'userName eq "alice"'))[0]
    assert sorted(g["display"] for g in alice["groups"]) == ["Admins", "Staff"]
    assert "groups" not in (await _page(backend, users, 'userName eq "carol"'))[0]
    for text in ('displayName eq "admins"', "displayName pr"):
        for got in await _page(backend, groups, text):
            assert got == await backend.get(CTX, groups, got["id"]), text
            assert sorted(m["value"] for m in got["members"]) == sorted(m["value"] for m in members)
    lean = OpContext(
        tenant="t1", principal="system", request_id="r2", load_members=False, load_groups=False
    )
    flt = parse_filter('userName eq "alice"', users)
    assert "groups" not in (await backend.query(lean, users, Query(filter=flt))).resources[0]
    flt = parse_filter("displayName pr", groups)
    assert all(
        "members" not in g for g in (await backend.query(lean, groups, Query(filter=flt))).resources
    )


async def _page(backend: PostgresBackend, rtype: ResourceType, text: str) -> list[dict[str, Any]]:
    page = await backend.query(CTX, rtype, Query(filter=parse_filter(text, rtype)))
    return page.resources


async def _statement_log(backend: PostgresBackend) -> list[tuple[str, str]]:
    """A list that receives ``(pool, SQL)`` for every statement either pool sends (each
    pool has one connection in these tests); cleared once the loggers are attached."""
    sent: list[tuple[str, str]] = []
    for name, pool in (("main", backend.pool), ("lookup", backend.lookup_pool)):
        assert pool is not None
        async with pool.acquire() as conn:
            assert isinstance(conn, asyncpg.pool.PoolConnectionProxy)
            conn.add_query_logger(lambda record, name=name: sent.append((name, record.query)))
    sent.clear()  # the main pool's reset after the acquire above
    return sent


async def test_an_eq_lookup_is_one_statement_without_a_transaction(
    backend: PostgresBackend,
) -> None:
    """No BEGIN/COMMIT, no count, no per-resource relation query: one round trip, on the
    lookup pool (both pools have one connection here, so their logs are every statement
    sent)."""
    await _seed(backend)
    users = rtype_of(backend, "User")
    sent = await _statement_log(backend)
    for text in (
        'userName eq "alice"',
        'emails[type eq "work"].value eq "alice@work.example"',
        'id eq "00000000-0000-0000-0000-000000000000"',
    ):
        sent.clear()
        page = await backend.query(CTX, users, Query(filter=parse_filter(text, users)))
        assert page.total_results == len(page.resources)
        # Not even the pool's reset query: the lookup pool does not need one.
        assert len(sent) == 1, sent
        assert sent[0][0] == "lookup"
        assert "count(" not in sent[0][1]


async def test_get_by_id_is_one_statement_on_the_lookup_pool(backend: PostgresBackend) -> None:
    """GET by id: the resource and its groups in one round trip, no transaction, no reset
    query on release; a missing id is still 404."""
    from scimd.errors import NotFound

    stored = await _seed(backend)
    users = rtype_of(backend, "User")
    sent = await _statement_log(backend)
    alice = stored["alice"]
    got = await backend.get(CTX, users, alice["id"])
    assert got["userName"] == "alice" and got["id"] == alice["id"]
    assert [n for n, _ in sent] == ["lookup"], sent
    with pytest.raises(NotFound):
        await backend.get(CTX, users, "00000000-0000-0000-0000-000000000000")


async def test_polled_lookups_run_on_a_generic_plan(backend: PostgresBackend) -> None:
    """The statement of a polled shape (``userName eq "<each user>"``) is planned once:
    PostgreSQL's own choice may replan it on every execution (0.4 ms of planning for a
    0.1 ms lookup at a million users), so the lookup connections force the generic plan;
    the other connections keep PostgreSQL's choice."""
    from scimd.query.filter_cache import FilterCache

    await _seed(backend)
    users = rtype_of(backend, "User")
    cache = FilterCache()
    for name in [*EMAILS, *EMAILS]:  # more than the five custom plans PostgreSQL tries
        flt, shape = cache.parse_shaped(f'userName eq "{name}"', users)
        assert shape is not None
        page = await backend.query(CTX, users, Query(filter=flt, shape=shape))
        assert [r["userName"] for r in page.resources] == [name]
    assert backend.lookup_pool is not None and backend.pool is not None
    async with backend.lookup_pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        plans = await conn.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%FROM scimd_resources r WHERE%'"
        )
    assert plans, "no lookup statement on the lookup connection"
    assert sum(p["generic_plans"] for p in plans) >= 2 * len(EMAILS), plans
    assert all(p["custom_plans"] == 0 for p in plans), plans
    async with backend.pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"


@pytest.mark.parametrize(
    ("text", "count", "start_index"),
    [
        ('userName eq "alice"', 100, 1),
        ('emails[type eq "work"].value eq "alice@work.example"', 100, 1),
        ('emails[type eq "work"].value eq "alice@work.example"', 1, 1),
        ('name.familyName eq "Same"', 2, 3),
    ],
)
async def test_page_statements_are_index_lookups(
    backend: PostgresBackend, text: str, count: int, start_index: int
) -> None:
    """Both statements (flat and general, with its count) and the relation subqueries
    they carry are answered through indexes (sequential scans disabled: an index that
    serves each predicate exists; test_explain_100k.py checks the planner's free choice
    for the filters at 100,000 users)."""
    await _seed(backend)
    users = rtype_of(backend, "User")
    q = Query(filter=parse_filter(text, users), count=count, start_index=start_index)
    assert backend.pool is not None
    for flat in (True, False):
        sql, args = backend._page_sql(CTX, users, q, count, flat=flat)
        async with backend.pool.acquire() as conn:
            await conn.execute("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
        assert "Seq Scan" not in plan, plan
        assert "scimd_members" in plan, plan  # the groups of each user


async def test_filter_shapes_reuse_the_statement_with_each_value(
    backend: PostgresBackend,
) -> None:
    """A query carrying its filter shape (``Query.shape``, what the service passes for
    ``userName eq "<each user>"``) gets the statement compiled for the shape with its own
    value: the same answers as the filter compiled afresh, for casefolded values, values
    whose casefold is longer, and values longer than the value index's prefix."""
    from scimd.query.filter_cache import FilterCache

    stored = await _seed(backend)
    users = rtype_of(backend, "User")
    long_name = "l" * 230 + "x"
    for name in ("Straße", long_name, "l" * 230 + "y"):
        body = {"schemas": [USER_URN], "userName": name, "emails": [{"value": f"{len(name)}@x"}]}
        stored[name] = await backend.create(CTX, users, body)
    cache = FilterCache()
    texts = [
        'userName eq "{}"',
        'emails[type eq "work"].value eq "{}"',
    ]
    values = [
        "alice",
        "ALICE",
        "bob",
        "STRASSE",
        "straße",
        long_name,
        long_name.upper(),
        "l" * 230,
        "alice@work.example",
        "Carol@work.EXAMPLE",
        "shared@example.com",
        "nobody",
    ]
    for text in texts:
        for value in values:
            flt, shape = cache.parse_shaped(text.format(value), users)
            assert shape is not None, text
            shaped = await backend.query(CTX, users, Query(filter=flt, shape=shape))
            fresh = await backend.query(CTX, users, Query(filter=flt))
            want = sorted(n for n, r in stored.items() if matches(flt, r))
            got = sorted(r["userName"] for r in shaped.resources)
            assert got == want, (text, value)
            assert shaped.resources == fresh.resources, (text, value)
            assert shaped.total_results == len(want)
    assert len(backend._shape_sql) == len(texts)
