"""The embedded store: filter pushdown (every operator, every type, valuePath correlation),
sorting, index and cursor paging, and query plans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import Keyset, Query, SortSpec
from scimd.query.evaluate import matches, parse_datetime
from scimd.query.parse import parse_attr_path, parse_filter
from scimd.query.sort import sort_key
from scimd.schema.model import ResourceType
from scimd.store.sqlite import SQLiteBackend
from tests._store_helpers import (
    DEVICE_URN,
    ENTERPRISE_URN,
    ctx,
    device_type,
    group,
    group_type,
    started,
    user,
    user_type,
)


@dataclass
class Corpus:
    store: SQLiteBackend
    users: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    devices: dict[str, dict[str, Any]]

    def uid(self, key: str) -> str:
        return str(self.users[key]["id"])

    def gid(self, key: str) -> str:
        return str(self.groups[key]["id"])


def device(serial: str, **attrs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [DEVICE_URN], "serial": serial}
    body.update(attrs)
    return body


@pytest.fixture
async def corpus(tmp_path: Path) -> AsyncIterator[Corpus]:
    async for store in started(tmp_path / "q.db"):
        c = ctx()
        users = {
            "u1": user(
                "bjensen",
                displayName="Babs Jensen",
                name={"givenName": "Barbara", "familyName": "Jensen"},
                title="Tour Guide",
                active=True,
                emails=[
                    {"value": "b@example.com", "type": "work", "primary": True},
                    {"value": "babs@jensen.org", "type": "home"},
                ],
                **{ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "m-1"}}},
            ),
            "u2": user(
                "JSmith",
                displayName="John Smith",
                title="",
                active=False,
                emails=[
                    {"value": "j@example.com", "type": "home"},
                    {"value": "john@work.example.com", "type": "work", "primary": True},
                ],
            ),
            "u3": user("Ärger-Straße", nickName="ß"),
            "u4": user("percent%_user", emails=[{"value": "x%y_z@example.com", "type": "work"}]),
            "u5": user("zed", externalId="EXT-5", active=True, emails=[{"type": "work"}]),
        }
        created_users = {k: await store.create(c, user_type(), v) for k, v in users.items()}
        ids = {k: v["id"] for k, v in created_users.items()}
        groups = {
            "g1": group("Admins", ids["u1"], ids["u2"]),
            "g2": group("Staff", ids["u1"]),
            "g3": group("Empty"),
        }
        created_groups = {k: await store.create(c, group_type(), v) for k, v in groups.items()}
        devices = {
            "d1": device(
                "SN-1",
                label="Router",
                cores=4,
                weight=1.5,
                enabled=True,
                seenAt="2024-05-01T10:00:00Z",
                tags=["Core", "edge"],
                ports=[
                    {"name": "eth0", "speed": 1000, "primary": True},
                    {"name": "eth1", "speed": 10},
                ],
            ),
            "d2": device(
                "sn-1",
                label="switch",
                cores=16,
                weight=0.25,
                enabled=False,
                seenAt="2024-05-01T12:30:00+02:00",
                tags=["edge"],
                ports=[
                    {"name": "ge-0", "speed": 10000},
                    {"name": "mgmt", "speed": 100, "primary": True},
                ],
            ),
            "d3": device("SN-3", cores=-2, weight=3),
        }
        created_devices = {k: await store.create(c, device_type(), v) for k, v in devices.items()}
        yield Corpus(
            store,
            {k: await store.get(c, user_type(), v["id"]) for k, v in created_users.items()},
            {k: await store.get(c, group_type(), v["id"]) for k, v in created_groups.items()},
            created_devices,
        )


async def _run(corpus: Corpus, rtype: ResourceType, text: str) -> set[str]:
    """Store result for ``text``, asserted equal to the reference evaluator's."""
    flt = parse_filter(text, rtype)
    page = await corpus.store.query(ctx(), rtype, Query(filter=flt, count=1000))
    got = {r["id"] for r in page.resources}
    assert page.total_results == len(got)
    pool = {"User": corpus.users, "Group": corpus.groups, "Device": corpus.devices}[rtype.name]
    expected = {r["id"] for r in pool.values() if matches(flt, r)}
    assert got == expected, text
    return got


USER_CASES: list[tuple[str, set[str]]] = [
    ('userName eq "BJENSEN"', {"u1"}),
    ('userName ne "bjensen"', {"u2", "u3", "u4", "u5"}),
    ('userName co "SMI"', {"u2"}),
    ('userName sw "j"', {"u2"}),
    ('userName ew "USER"', {"u4"}),
    ('userName co "%"', {"u4"}),
    ('userName co "_"', {"u4"}),
    ('userName sw "%"', set()),
    ('userName ew "_"', set()),
    ('userName co ""', {"u1", "u2", "u3", "u4", "u5"}),
    ('userName eq "ärger-strasse"', {"u3"}),  # full casefolding: ß -> ss
    ('nickName eq "SS"', {"u3"}),
    ('userName gt "m"', {"u3", "u4", "u5"}),
    ('userName le "jsmith"', {"u1", "u2"}),
    ('userName lt "jsmith"', {"u1"}),
    ('userName ge "zed"', {"u3", "u5"}),  # ä (U+00E4) sorts after z
    ('externalId eq "ext-5"', set()),  # externalId is caseExact
    ('externalId eq "EXT-5"', {"u5"}),
    ("externalId pr", {"u5"}),
    ("title pr", {"u1"}),  # "" is not present
    ("not (title pr)", {"u2", "u3", "u4", "u5"}),
    ('title eq ""', {"u2"}),
    ("title eq null", {"u2", "u3", "u4", "u5"}),
    ("title ne null", {"u1"}),
    ("active eq true", {"u1", "u5"}),
    ("active eq false", {"u2"}),
    ("active ne true", {"u2", "u3", "u4"}),
    ("active pr", {"u1", "u2", "u5"}),
    ('emails.value co "EXAMPLE.com"', {"u1", "u2", "u4"}),
    ('emails co "jensen.org"', {"u1"}),
    ('emails.value ne "b@example.com"', {"u2", "u3", "u4", "u5"}),
    ('emails[type eq "work" and value co "jensen"]', set()),  # correlated: not across emails
    ('emails[type eq "home" and value co "jensen"]', {"u1"}),
    ('emails[type eq "work"].value eq "john@work.example.com"', {"u2"}),
    ('emails[type eq "home"].value eq "john@work.example.com"', set()),
    ('emails[type eq "work" and value pr]', {"u1", "u2", "u4"}),
    ("emails[not (value pr)]", {"u5"}),
    ('emails[type ne "work"]', {"u1", "u2"}),
    ('emails[primary eq true and type eq "work"]', {"u1", "u2"}),
    ('emails[primary eq true and type eq "home"]', set()),
    ('emails[value sw "J" or type eq "nothing"]', {"u2"}),
    ("emails pr", {"u1", "u2", "u4", "u5"}),
    ('emails.type eq "work" and emails.value co "jensen"', {"u1"}),  # uncorrelated
    ('name.givenName sw "bar"', {"u1"}),
    ("name pr", {"u1"}),
    ('meta.created gt "2000-01-01T00:00:00Z"', {"u1", "u2", "u3", "u4", "u5"}),
    ('meta.lastModified lt "2000-01-01T00:00:00+01:00"', set()),
    ('meta.resourceType eq "User"', {"u1", "u2", "u3", "u4", "u5"}),
    ('meta.resourceType eq "user"', set()),  # caseExact
    (f'{ENTERPRISE_URN}:employeeNumber eq "701984"', {"u1"}),
    (f'{ENTERPRISE_URN}:manager.value eq "m-1"', {"u1"}),
    (f'{ENTERPRISE_URN}:manager.value eq "M-1"', set()),  # caseExact
    (f"{ENTERPRISE_URN}:employeeNumber pr", {"u1"}),
    ('userName eq "bjensen" or (active eq false and not (emails[type eq "home"]))', {"u1"}),
    ('not (userName sw "b" or userName sw "j") and emails pr', {"u4", "u5"}),
    ("groups pr", {"u1", "u2"}),
    ("not (groups pr)", {"u3", "u4", "u5"}),
    ('groups[display eq "ADMINS"]', {"u1", "u2"}),
    ('groups.display sw "st"', {"u1"}),
    ('groups.type eq "direct"', {"u1", "u2"}),
]


@pytest.mark.parametrize(("text", "expected"), USER_CASES, ids=[c[0] for c in USER_CASES])
async def test_user_filters(corpus: Corpus, text: str, expected: set[str]) -> None:
    got = await _run(corpus, user_type(), text)
    assert got == {corpus.uid(k) for k in expected}


async def test_filters_with_ids(corpus: Corpus) -> None:
    u1, u3, g1, g2 = corpus.uid("u1"), corpus.uid("u3"), corpus.gid("g1"), corpus.gid("g2")
    assert await _run(corpus, user_type(), f'id eq "{u3}"') == {u3}
    assert await _run(corpus, user_type(), f'id ne "{u3}"') == set(
        corpus.uid(k) for k in corpus.users
    ) - {u3}
    assert await _run(corpus, user_type(), f'groups.value eq "{g2}"') == {u1}
    assert await _run(corpus, user_type(), f'groups.value eq "{g1}"') == {u1, corpus.uid("u2")}
    assert await _run(corpus, group_type(), f'members.value eq "{corpus.uid("u2")}"') == {g1}
    assert await _run(corpus, group_type(), f'members[value eq "{u1}" and type eq "user"]') == {
        g1,
        g2,
    }
    assert (
        await _run(corpus, group_type(), f'members[value eq "{u1}" and type eq "Group"]') == set()
    )
    assert await _run(corpus, group_type(), f'not (members.value eq "{u1}")') == {corpus.gid("g3")}


async def test_datetime_filters_compare_instants(corpus: Corpus) -> None:
    created = corpus.users["u3"]["meta"]["created"]
    instant = parse_datetime(created)
    assert instant is not None
    shifted = instant.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert shifted.endswith("+02:00")
    assert await _run(corpus, user_type(), f'meta.created eq "{shifted}"') >= {corpus.uid("u3")}
    later = (instant + timedelta(microseconds=1)).isoformat()
    assert corpus.uid("u3") not in await _run(corpus, user_type(), f'meta.created ge "{later}"')


GROUP_CASES: list[tuple[str, set[str]]] = [
    ('displayName eq "admins"', {"g1"}),
    ('displayName ne "admins"', {"g2", "g3"}),
    ("members pr", {"g1", "g2"}),
    ("not (members pr)", {"g3"}),
    ('members.display co "BABS"', {"g1", "g2"}),
    ('members[display co "john"]', {"g1"}),
    ('members[not (display co "john")]', {"g1", "g2"}),
    ('members.type eq "User"', {"g1", "g2"}),
    ("members.display pr", {"g1", "g2"}),
]


@pytest.mark.parametrize(("text", "expected"), GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
async def test_group_filters(corpus: Corpus, text: str, expected: set[str]) -> None:
    got = await _run(corpus, group_type(), text)
    assert got == {corpus.gid(k) for k in expected}


DEVICE_CASES: list[tuple[str, set[str]]] = [
    ('serial eq "SN-1"', {"d1"}),  # caseExact
    ('serial eq "sn-1"', {"d2"}),
    ('serial co "N"', {"d1", "d3"}),
    ('serial sw "sn"', {"d2"}),
    ('serial gt "SN-2"', {"d2", "d3"}),  # code point order: "s" > "S"
    ('label eq "ROUTER"', {"d1"}),
    ("cores eq 4", {"d1"}),
    ("cores ne 4", {"d2", "d3"}),
    ("cores gt 4", {"d2"}),
    ("cores ge 4", {"d1", "d2"}),
    ("cores lt 0", {"d3"}),
    ("cores le 4", {"d1", "d3"}),
    ("weight eq 3.0", {"d3"}),
    ("weight gt 1", {"d1", "d3"}),
    ("weight le 0.25", {"d2"}),
    ("weight eq 3", {"d3"}),
    ("enabled eq true", {"d1"}),
    ("enabled eq false", {"d2"}),
    ("enabled ne false", {"d1", "d3"}),
    ("enabled pr", {"d1", "d2"}),  # false is present
    ('seenAt gt "2024-05-01T10:00:00Z"', {"d2"}),  # 12:30+02:00 is 10:30Z
    ('seenAt ge "2024-05-01T10:30:00Z"', {"d2"}),
    ('seenAt eq "2024-05-01T12:00:00+02:00"', {"d1"}),
    ('seenAt lt "2024-05-01T10:30:00.000001Z"', {"d1", "d2"}),
    ("seenAt pr", {"d1", "d2"}),
    ('tags eq "core"', {"d1"}),
    ('tags eq "edge"', {"d1", "d2"}),
    ('tags ne "edge"', {"d3"}),
    ('tags co "OR"', {"d1"}),
    ("tags pr", {"d1", "d2"}),
    ("ports[speed ge 1000 and primary eq true]", {"d1"}),
    ("ports[speed ge 1000 and not (primary eq true)]", {"d2"}),
    ('ports[name sw "eth" and speed lt 100]', {"d1"}),
    ("ports.speed gt 5000", {"d2"}),
    ('ports.name eq "MGMT"', {"d2"}),
]


@pytest.mark.parametrize(("text", "expected"), DEVICE_CASES, ids=[c[0] for c in DEVICE_CASES])
async def test_device_filters(corpus: Corpus, text: str, expected: set[str]) -> None:
    got = await _run(corpus, device_type(), text)
    assert got == {str(corpus.devices[k]["id"]) for k in expected}


async def test_custom_unique_attribute_is_case_exact(corpus: Corpus) -> None:
    from scimd.errors import Uniqueness

    with pytest.raises(Uniqueness, match='serial "SN-1"'):
        await corpus.store.create(ctx(), device_type(), device("SN-1"))
    await corpus.store.create(ctx(), device_type(), device("Sn-1"))  # caseExact: distinct


# ---------------------------------------------------------------------------- sorting


SORTS = [
    "userName",
    "title",
    "emails.value",
    "emails",
    "name.givenName",
    "meta.created",
    "active",
    "externalId",
    "id",
]


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("attr", SORTS)
async def test_sort_matches_reference_order(corpus: Corpus, attr: str, descending: bool) -> None:
    spec = SortSpec(parse_attr_path(attr, user_type()), descending)
    page = await corpus.store.query(ctx(), user_type(), Query(sort=spec, count=100))
    expected = sorted(corpus.users.values(), key=lambda r: sort_key(r, spec))
    assert [r["id"] for r in page.resources] == [r["id"] for r in expected]


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(
    "attr", ["cores", "weight", "enabled", "seenAt", "tags", "ports.speed", "label"]
)
async def test_sort_devices(corpus: Corpus, attr: str, descending: bool) -> None:
    spec = SortSpec(parse_attr_path(attr, device_type()), descending)
    page = await corpus.store.query(ctx(), device_type(), Query(sort=spec, count=100))
    expected = sorted(corpus.devices.values(), key=lambda r: sort_key(r, spec))
    assert [r["id"] for r in page.resources] == [r["id"] for r in expected]


async def test_sort_nulls_last_both_directions_and_primary_first(corpus: Corpus) -> None:
    spec = SortSpec(parse_attr_path("title", user_type()))
    for descending in (False, True):
        page = await corpus.store.query(
            ctx(), user_type(), Query(sort=SortSpec(spec.path, descending))
        )
        assert page.resources[0]["id"] == corpus.uid("u1")  # the only present title
    # emails.value sorts by the primary email: u2's is john@..., after b@ (u1)
    page = await corpus.store.query(
        ctx(), user_type(), Query(sort=SortSpec(parse_attr_path("emails.value", user_type())))
    )
    order = [r["id"] for r in page.resources]
    assert order[:3] == [corpus.uid("u1"), corpus.uid("u2"), corpus.uid("u4")]


# ---------------------------------------------------------------------------- paging


async def _many(store: SQLiteBackend, n: int, prefix: str = "user") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        title = None if i % 4 == 0 else f"T{i % 3}"
        body = user(f"{prefix}{i:03d}", **({"title": title} if title else {}))
        if i % 5:
            body["active"] = i % 2 == 0
        out.append(await store.create(ctx(), user_type(), body))
    return out


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    async for backend in started(tmp_path / "p.db"):
        yield backend


async def test_index_paging(store: SQLiteBackend) -> None:
    made = await _many(store, 23)
    all_ids = sorted(r["id"] for r in made)
    page = await store.query(ctx(), user_type(), Query(start_index=1, count=10))
    assert page.total_results == 23
    assert [r["id"] for r in page.resources] == all_ids[:10]
    page = await store.query(ctx(), user_type(), Query(start_index=21, count=10))
    assert [r["id"] for r in page.resources] == all_ids[20:]
    page = await store.query(ctx(), user_type(), Query(start_index=50, count=10))
    assert page.resources == [] and page.total_results == 23
    page = await store.query(ctx(), user_type(), Query(count=0))
    assert page.resources == [] and page.total_results == 23
    page = await store.query(ctx(), user_type(), Query(start_index=0, count=2))
    assert [r["id"] for r in page.resources] == all_ids[:2]


async def test_max_results_caps_count(tmp_path: Path) -> None:
    async for backend in started(tmp_path / "m.db", max_results=5):
        assert backend.capabilities.max_results == 5
        await _many(backend, 8)
        page = await backend.query(ctx(), user_type(), Query(count=100))
        assert len(page.resources) == 5 and page.total_results == 8


async def _walk(
    store: SQLiteBackend, spec: SortSpec | None, count: int
) -> tuple[list[str], list[Keyset | None]]:
    ids: list[str] = []
    keysets: list[Keyset | None] = []
    ks: Keyset | None = None
    while True:
        page = await store.query(
            ctx(), user_type(), Query(sort=spec, paging="cursor", count=count, keyset=ks)
        )
        ids += [r["id"] for r in page.resources]
        keysets.append(page.prev_keyset)
        if page.next_keyset is None:
            return ids, keysets
        ks = page.next_keyset


@pytest.mark.parametrize("sort", [None, "userName", "title", "-title", "-userName", "active"])
async def test_cursor_walk_forward_and_back(store: SQLiteBackend, sort: str | None) -> None:
    made = await _many(store, 17)
    spec = None
    if sort is not None:
        spec = SortSpec(parse_attr_path(sort.lstrip("-"), user_type()), sort.startswith("-"))
    stored = [await store.get(ctx(), user_type(), r["id"]) for r in made]
    expected = [r["id"] for r in sorted(stored, key=lambda r: sort_key(r, spec))]
    forward, prevs = await _walk(store, spec, 5)
    assert forward == expected
    if sort == "active":
        assert all(p is None or isinstance(p.sort_value, bool | None) for p in prevs)
    assert prevs[0] is None and all(p is not None for p in prevs[1:])
    # from the last page, walk back with prev_keyset
    pages: list[list[str]] = []
    ks = prevs[-1]
    tail = forward[len(forward) - (len(forward) % 5 or 5) :]
    pages.append(tail)
    while ks is not None:
        page = await store.query(
            ctx(), user_type(), Query(sort=spec, paging="cursor", count=5, keyset=ks)
        )
        pages.insert(0, [r["id"] for r in page.resources])
        assert page.next_keyset is not None
        ks = page.prev_keyset
    assert [i for p in pages for i in p] == expected


async def test_cursor_count_zero_and_total(store: SQLiteBackend) -> None:
    await _many(store, 3)
    page = await store.query(ctx(), user_type(), Query(paging="cursor", count=0))
    assert page.resources == [] and page.total_results == 3 and page.next_keyset is None
    page = await store.query(ctx(), user_type(), Query(paging="cursor", count=2, want_total=False))
    assert page.total_results is None and len(page.resources) == 2 and page.next_keyset is not None


@pytest.mark.parametrize("sort", [None, "userName", "title", "-title"])
async def test_cursor_walk_with_concurrent_changes(store: SQLiteBackend, sort: str | None) -> None:
    """Resources that exist throughout are seen exactly once; nothing is seen twice."""
    spec = None
    if sort is not None:
        spec = SortSpec(parse_attr_path(sort.lstrip("-"), user_type()), sort.startswith("-"))
    stable = await _many(store, 40, "stable")
    doomed = await _many(store, 20, "doomed")
    seen: list[str] = []
    ks: Keyset | None = None
    step = 0
    while True:
        page = await store.query(
            ctx(), user_type(), Query(sort=spec, paging="cursor", count=6, keyset=ks)
        )
        seen += [r["id"] for r in page.resources]
        # between pages: delete some, insert others (before and after the cursor)
        if doomed:
            await store.delete(ctx(), user_type(), doomed.pop()["id"], if_match=None)
        await store.create(ctx(), user_type(), user(f"a-new{step:03d}", title="T1"))
        await store.create(ctx(), user_type(), user(f"zz-new{step:03d}"))
        step += 1
        if page.next_keyset is None:
            break
        ks = page.next_keyset
    assert len(seen) == len(set(seen))
    assert {r["id"] for r in stable} <= set(seen)


# ---------------------------------------------------------------------------- query plans


PLAN_CASES = [
    (user_type, 'userName eq "x"', "attr_values_text"),
    (user_type, 'externalId eq "x"', "attr_values_text"),
    (group_type, 'displayName eq "x"', "attr_values_text"),
    (user_type, 'emails.value eq "x"', "attr_values_text"),
    (user_type, 'emails[type eq "work"].value eq "x"', "attr_values_text"),
    (user_type, 'userName sw "x"', "attr_values_text"),
    (group_type, 'members.value eq "x"', "members_member"),
    (user_type, 'groups.value eq "x"', "PRIMARY KEY"),
]


@pytest.mark.parametrize(("rtype", "text", "index"), PLAN_CASES, ids=[c[1] for c in PLAN_CASES])
async def test_eq_uses_an_index(corpus: Corpus, rtype: Any, text: str, index: str) -> None:
    rt: ResourceType = rtype()
    plan = await _plan(corpus.store, rt, text)
    assert any(index in line and "SEARCH" in line for line in plan), plan
    # the outer rows are fetched by rowid from the index hits, never scanned
    assert not any(line.startswith("SCAN") for line in plan), plan


async def test_id_eq_is_a_point_lookup(corpus: Corpus) -> None:
    plan = await _plan(corpus.store, user_type(), 'id eq "x"')
    assert plan == [
        "SEARCH r USING COVERING INDEX sqlite_autoindex_resources_1 (tenant=? AND rtype=? AND id=?)"
    ]


async def _plan(store: SQLiteBackend, rtype: ResourceType, text: str) -> list[str]:
    flt = parse_filter(text, rtype)

    def explain() -> list[str]:
        conn = store._conn()
        where, _, params = store.compile_where(conn, "acme", rtype, flt)
        rows = conn.execute(
            f"EXPLAIN QUERY PLAN SELECT r.pk FROM resources r WHERE {where}", params
        )
        return [str(row[3]) for row in rows]

    return await store._read(explain)
