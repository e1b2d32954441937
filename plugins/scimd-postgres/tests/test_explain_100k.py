"""At 100,000 Users the identity-provider lookups are index-backed with the planner free
to choose (no ``enable_seqscan = off``): ``eq`` on id, userName, externalId, displayName,
emails.value (also inside ``emails[type eq "work"]``), members.value and groups.value, and
``co``/``sw``/``ew`` on userName, displayName and emails.value (pg_trgm, migration 0003),
through the indexes on ``scimd_resources.sv`` and ``sv_text`` (layout 10, migration
0010).

The rows are loaded through the backend's bulk path (``import_resources``: COPY), the one
``scimd import`` uses, then ANALYZEd as autovacuum would."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.testing import PostgresCluster

from scimd.backend import BackendEnv, OpContext
from scimd.query.parse import parse_filter
from scimd.testing import build_contract_registry

USERS = 100_000
GROUPS = 50
CTX = OpContext(tenant="t1", principal="system", request_id="r1", load_members=False)
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"


def make_backend(dsn: str, base: Path) -> PostgresBackend:
    return PostgresBackend(
        BackendEnv(
            options={"dsn": dsn, "migrate_on_start": True},
            registry=build_contract_registry(base),
            base_dir=base,
        )
    )


def user(i: int) -> dict[str, object]:
    return {
        "schemas": [USER_URN],
        "userName": f"user{i:06d}.login",
        "externalId": f"ext-{i:06d}",
        "displayName": f"Person {i:06d} Surname{i % 997}",
        "emails": [
            {"value": f"user{i:06d}@corp{i % 100}.example.com", "type": "work", "primary": True},
            {"value": f"home{i:06d}@mail.example.org", "type": "home"},
        ],
    }


@pytest.fixture(scope="module")
def big_dsn(postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    dsn = postgres_cluster.create_database()
    base = tmp_path_factory.mktemp("big")

    async def load() -> None:
        b = make_backend(dsn, base)
        await b.start()
        try:
            ut = b.registry.resource_type("User")
            gt = b.registry.resource_type("Group")
            assert ut is not None and gt is not None
            ids: list[str] = []
            for start in range(0, USERS, 5000):
                out = await b.import_resources(
                    CTX, ut, [user(i) for i in range(start, min(USERS, start + 5000))]
                )
                assert all(status == "created" for status, _ in out), out[:3]
                ids.extend(detail for _, detail in out)
            groups = [
                {
                    "schemas": [GROUP_URN],
                    "displayName": f"Group {g:03d}",
                    "members": [{"value": ids[g * 10 + k]} for k in range(10)],
                }
                for g in range(GROUPS)
            ]
            out = await b.import_resources(CTX, gt, groups)
            assert all(status == "created" for status, _ in out), out[:3]
            assert b.pool is not None
            async with b.pool.acquire() as conn:
                await conn.execute("ANALYZE")
        finally:
            await b.aclose()

    asyncio.run(load())
    return dsn


@pytest.fixture
async def backend(big_dsn: str, tmp_path: Path) -> AsyncIterator[PostgresBackend]:
    b = make_backend(big_dsn, tmp_path)
    await b.start()
    yield b
    await b.aclose()


ID = "00000000-0000-0000-0000-000000000001"


SV = "scimd_resources_sv"  # GIN (sv jsonb_path_ops): eq
SV_TRGM = "scimd_resources_sv_trgm"  # pg_trgm on sv_text: co/sw/ew


@pytest.mark.parametrize(
    ("rtype_name", "text", "index"),
    [
        ("User", f'id eq "{ID}"', "scimd_resources_id"),
        ("User", 'userName eq "user012345.login"', SV),
        ("User", 'externalId eq "ext-012345"', SV),
        ("User", 'displayName eq "Person 012345 Surname1"', SV),
        ("User", 'emails.value eq "user012345@corp45.example.com"', SV),
        ("User", 'emails[type eq "work"].value eq "user012345@corp45.example.com"', SV),
        ("User", f'groups.value eq "{ID}"', "scimd_members_pkey"),
        ("Group", 'displayName eq "Group 007"', SV),
        ("Group", f'members.value eq "{ID}"', "scimd_members_member"),
        ("User", 'userName co "r01234"', SV_TRGM),
        ("User", 'userName sw "user01234"', SV_TRGM),
        ("User", 'userName ew "012345.login"', SV_TRGM),
        ("User", 'displayName co "012345 Sur"', SV_TRGM),
        ("User", 'displayName sw "Person 01234"', SV_TRGM),
        ("User", 'displayName ew "012345 Surname1"', SV_TRGM),
        ("User", 'emails.value co "r012345@corp"', SV_TRGM),
        ("User", 'emails.value sw "user01234"', SV_TRGM),
        ("User", 'emails.value ew "012345@corp45.example.com"', SV_TRGM),
    ],
)
async def test_lookups_use_indexes_at_100k(
    backend: PostgresBackend, rtype_name: str, text: str, index: str
) -> None:
    rtype = backend.registry.resource_type(rtype_name)
    assert rtype is not None
    where, _, _, params, n_where = backend.compile_where("t1", rtype, parse_filter(text, rtype))
    assert backend.pool is not None
    async with backend.pool.acquire() as conn:
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                f"EXPLAIN SELECT r.pk FROM scimd_resources r WHERE {where}", *params[:n_where]
            )
        )
    assert "Seq Scan" not in plan, plan
    assert re.search(rf"(?:using|on) {index}\b", plan), plan


async def test_bulk_loaded_users_answer_substring_filters(backend: PostgresBackend) -> None:
    """The bulk-loaded rows are the ones a created resource has: the filters find them."""
    from scimd.backend import Query

    rtype = backend.registry.resource_type("User")
    assert rtype is not None
    for text, want in [
        ('userName co "R012345"', {"user012345.login"}),
        ('emails.value ew "012345@MAIL.example.org"', {"user012345.login"}),
        ('displayName co "n 01234"', {f"user{i:06d}.login" for i in range(12340, 12350)}),
        ('userName co "%"', set()),
        ('userName co "_"', set()),
    ]:
        page = await backend.query(CTX, rtype, Query(filter=parse_filter(text, rtype), count=50))
        assert {r["userName"] for r in page.resources} == want, text


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


async def _analyze(backend: PostgresBackend, text: str) -> dict[str, Any]:
    """The root of ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` of the filter on Users."""
    rtype = backend.registry.resource_type("User")
    assert rtype is not None
    where, _, _, params, n_where = backend.compile_where("t1", rtype, parse_filter(text, rtype))
    assert backend.pool is not None
    async with backend.pool.acquire() as conn:
        raw = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
            f" SELECT r.pk FROM scimd_resources r WHERE {where}",
            *params[:n_where],
        )
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return plan


async def test_work_email_value_path_enters_through_the_sv_index(
    backend: PostgresBackend,
) -> None:
    """``emails[type eq "work"].value eq "x"`` (what Entra ID and Okta send) is one
    containment, an element holding both, looked up in the GIN index on ``sv`` (not the
    trigram index): it reads as few pages as ``userName eq`` although every user has a
    work email (GIN steps through the large posting list of "work" by the rare
    address's). (A plan entering by ``type`` read about 1,700 pages at 100,000 users,
    23x GET by id in bench/RESULTS.md); counted in buffers, which do not depend on the
    machine's load."""
    email = "user012345@corp45.example.com"
    for text in (
        f'emails[type eq "work"].value eq "{email}"',
        f'emails[type eq "work" and value eq "{email}"]',
    ):
        plan = await _analyze(backend, text)
        assert plan["Actual Rows"] == 1, text
        scans = [n for n in _plan_nodes(plan) if "Index Name" in n]
        assert {n["Index Name"] for n in scans} == {SV}, scans
        (entry,) = scans  # one containment: the address and the type in one element
        assert email in entry["Index Cond"], entry
        by_name = await _analyze(backend, 'userName eq "user012345.login"')
        assert plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0) <= 3 * (
            by_name["Shared Hit Blocks"] + by_name.get("Shared Read Blocks", 0)
        ), (text, plan)


async def test_lookup_statements_run_without_parallel_workers(backend: PostgresBackend) -> None:
    """The lookup pool's statements run on generic plans (``plan_cache_mode``), which
    cannot know the compared value: PostgreSQL estimates 1% of the rows for an ``sv``
    containment and, left to itself, planned two parallel workers for ``userName eq`` at
    a million users (5-8 ms of worker start for a 0.1 ms lookup). Its connections plan no
    parallel workers. And the flat page filters first, then orders: without that
    (``OFFSET 0`` in ``_page_sql``) the generic plan walked the id index in order,
    filtering every row on the way to the one looked up. The plan is read in nodes,
    which do not depend on the machine's load."""
    from scimd.backend import Query

    rtype = backend.registry.resource_type("User")
    assert rtype is not None and backend.lookup_pool is not None
    q = Query(filter=parse_filter('userName eq "user012345.login"', rtype), count=100)
    sql, args = backend._flat_sql(CTX, rtype, q, 100)
    async with backend.lookup_pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        # (at 100,000 users this plan has no parallel workers either way; at a million
        # it had: the setting is what keeps them off)
        assert await conn.fetchval("SHOW max_parallel_workers_per_gather") == "0"
        # nor JIT compilation, which the same estimate priced in at a million users
        # (16 ms for the emails valuePath lookup)
        assert await conn.fetchval("SHOW jit") == "off"
        types = [t.name for t in (await conn.prepare(sql)).get_parameters()]
        await conn.execute(f"PREPARE flat({', '.join(types)}) AS {sql}")
        try:
            raw = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE flat("
                + ", ".join(_literal(a) for a in args)
                + ")"
            )
        finally:
            await conn.execute("DEALLOCATE flat")
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes = list(_plan_nodes(plan))
    assert not any("Gather" in n["Node Type"] for n in nodes), nodes
    assert any(n.get("Index Name") == "scimd_resources_sv" for n in nodes), nodes
    assert plan["Actual Rows"] == 1


def _literal(value: Any) -> str:
    """``value`` as an SQL literal (test data: strings and integers)."""
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def test_import_email_check_is_one_lookup_per_address(backend: PostgresBackend) -> None:
    """``scimd import``'s per-batch check of ``scim.unique_email``
    (``import_email_owners``: the stored users whose primary email is one of a batch's)
    finds them, and its generic plan is index lookups only (read in plan nodes). Its
    statement puts each lookup in a ``LATERAL`` subquery so that no statistics can turn
    it into a hash of every stored key: a plain join with ``= ANY`` has the same plan as
    here with these fresh statistics, but during a bulk import (statistics of emptier
    tables) it took 2 s per batch of 5,000 at 100,000 users (bench/RESULTS.md)."""
    from scimd_postgres.backend import EMAIL_OWNERS_SQL

    from scimd.store.unique_keys import EMAIL

    rtype = backend.registry.resource_type("User")
    assert rtype is not None and backend.pool is not None
    keys = [f"user{i:06d}@corp{i % 100}.example.com" for i in range(0, USERS, 20)]
    owners = await backend.import_email_owners(CTX, rtype, [*keys, "nobody@example.com"])
    assert sorted(o["emails"][0]["value"] for o in owners) == sorted(keys)
    async with backend.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE owners(text, text, text, text[]) AS {EMAIL_OWNERS_SQL}")
        try:
            array = "ARRAY[" + ", ".join(_literal(k) for k in keys) + "]::text[]"
            raw = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) EXECUTE owners("
                f"{_literal('t1')}, {_literal(EMAIL)}, {_literal('User')}, {array})"
            )
        finally:
            await conn.execute("DEALLOCATE owners")
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes = list(_plan_nodes(plan))
    kinds = {n["Node Type"] for n in nodes}
    assert not kinds & {"Seq Scan", "Hash Join", "Merge Join"}, kinds
    assert {n.get("Relation Name") for n in nodes if "Index" in n["Node Type"]} >= {
        "scimd_unique_keys",
        "scimd_resources",
    }, nodes
