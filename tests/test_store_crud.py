"""The embedded store: CRUD, meta/ETags, tenant isolation, uniqueness, members as a relation."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import MemberChange, PatchOp, Query
from scimd.errors import InvalidValue, NotFound, PreconditionFailed, ServiceUnavailable, Uniqueness
from scimd.query.parse import parse_filter, parse_path
from scimd.store.sqlite import SCHEMA_VERSION, SQLiteBackend, etag_matches
from tests._store_helpers import (
    ENTERPRISE_URN,
    ctx,
    group,
    group_type,
    make_backend,
    started,
    user,
    user_type,
)

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    async for backend in started(tmp_path / "store.db"):
        yield backend


def _ids(resources: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in resources}


# ---------------------------------------------------------------------------- CRUD


async def test_create_assigns_id_and_meta(store: SQLiteBackend) -> None:
    created = await store.create(ctx(), user_type(), user("bjensen", id="client-chosen"))
    assert UUID4.match(created["id"])
    meta = created["meta"]
    assert meta["resourceType"] == "User"
    assert meta["version"] == 'W/"1"'
    assert RFC3339_UTC.match(meta["created"])
    assert meta["lastModified"] == meta["created"]
    assert "location" not in meta
    assert created["userName"] == "bjensen"
    assert await store.get(ctx(), user_type(), created["id"]) == created


async def test_get_unknown_is_not_found(store: SQLiteBackend) -> None:
    with pytest.raises(NotFound):
        await store.get(ctx(), user_type(), "nope")


async def test_get_user_id_on_groups_endpoint_is_not_found(store: SQLiteBackend) -> None:
    created = await store.create(ctx(), user_type(), user("bjensen"))
    with pytest.raises(NotFound):
        await store.get(ctx(), group_type(), created["id"])


async def test_replace_bumps_version_and_keeps_created(store: SQLiteBackend) -> None:
    created = await store.create(ctx(), user_type(), user("bjensen", title="a"))
    new = user("bjensen", nickName="Babs")
    replaced = await store.replace(ctx(), user_type(), created["id"], new, if_match=None)
    assert replaced["meta"]["version"] == 'W/"2"'
    assert replaced["meta"]["created"] == created["meta"]["created"]
    assert replaced["id"] == created["id"]
    assert "title" not in replaced  # a true replace
    assert replaced["nickName"] == "Babs"
    assert await store.get(ctx(), user_type(), created["id"]) == replaced


async def test_replace_unknown_is_not_found(store: SQLiteBackend) -> None:
    with pytest.raises(NotFound):
        await store.replace(ctx(), user_type(), "nope", user("x"), if_match=None)


async def test_delete_then_get_and_second_delete_are_not_found(store: SQLiteBackend) -> None:
    created = await store.create(ctx(), user_type(), user("bjensen"))
    await store.delete(ctx(), user_type(), created["id"], if_match=None)
    with pytest.raises(NotFound):
        await store.get(ctx(), user_type(), created["id"])
    with pytest.raises(NotFound):
        await store.delete(ctx(), user_type(), created["id"], if_match=None)
    # the value rows are gone too: the userName is free again
    await store.create(ctx(), user_type(), user("bjensen"))


async def test_extension_attributes_round_trip_and_filter(store: SQLiteBackend) -> None:
    body = user(
        "bjensen", **{ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "m1"}}}
    )
    created = await store.create(ctx(), user_type(), body)
    assert created[ENTERPRISE_URN]["employeeNumber"] == "701984"
    f = parse_filter(f'{ENTERPRISE_URN}:employeeNumber eq "701984"', user_type())
    page = await store.query(ctx(), user_type(), Query(filter=f))
    assert _ids(page.resources) == {created["id"]}
    f = parse_filter(f'{ENTERPRISE_URN}:manager.value eq "m1"', user_type())
    assert (await store.query(ctx(), user_type(), Query(filter=f))).total_results == 1


async def test_data_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async for backend in started(path):
        created = await backend.create(ctx(), user_type(), user("bjensen"))
    async for backend in started(path):
        assert (await backend.get(ctx(), user_type(), created["id"]))["userName"] == "bjensen"
        with pytest.raises(Uniqueness):
            await backend.create(ctx(), user_type(), user("BJENSEN"))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_newer_layout_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    backend = make_backend(path)
    with pytest.raises(ServiceUnavailable, match="layout"):
        await backend.start()
    await backend.aclose()


async def test_not_started_is_service_unavailable(tmp_path: Path) -> None:
    backend = make_backend(tmp_path / "s.db")
    with pytest.raises(ServiceUnavailable):
        await backend.get(ctx(), user_type(), "x")


# ---------------------------------------------------------------------------- ETags


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (None, True),
        ("*", True),
        ('W/"3"', True),
        ('"3"', True),
        ('W/"1", W/"3"', True),
        ('W/"2"', False),
        ("3", False),
        ("", False),
        ('W/"33"', False),
    ],
)
def test_etag_matches(header: str | None, ok: bool) -> None:
    assert etag_matches(header, 3) is ok


async def test_replace_with_stale_if_match_fails(store: SQLiteBackend) -> None:
    created = await store.create(ctx(), user_type(), user("bjensen"))
    rid = created["id"]
    await store.replace(ctx(), user_type(), rid, user("bjensen", title="x"), if_match='W/"1"')
    with pytest.raises(PreconditionFailed):
        await store.replace(ctx(), user_type(), rid, user("bjensen"), if_match='W/"1"')
    with pytest.raises(PreconditionFailed):
        await store.delete(ctx(), user_type(), rid, if_match='W/"1"')
    ops = [PatchOp("replace", parse_path("title", user_type()), "y")]
    with pytest.raises(PreconditionFailed):
        await store.patch(ctx(), user_type(), rid, ops, if_match='W/"1"')
    patched = await store.patch(ctx(), user_type(), rid, ops, if_match='W/"2"')
    assert patched["meta"]["version"] == 'W/"3"'
    await store.delete(ctx(), user_type(), rid, if_match="*")


async def test_two_replaces_with_same_if_match_exactly_one_wins(store: SQLiteBackend) -> None:
    created = await store.create(ctx(), user_type(), user("bjensen"))
    rid = created["id"]
    results = await asyncio.gather(
        *(
            store.replace(ctx(), user_type(), rid, user("bjensen", title=str(i)), if_match='W/"1"')
            for i in range(8)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1
    assert all(isinstance(r, PreconditionFailed) for r in results if not isinstance(r, dict))
    assert (await store.get(ctx(), user_type(), rid))["title"] == winners[0]["title"]


# ---------------------------------------------------------------------------- tenants


async def test_tenant_isolation(store: SQLiteBackend) -> None:
    a, b = ctx("tenant-a"), ctx("tenant-b")
    ua = await store.create(a, user_type(), user("bjensen"))
    ga = await store.create(a, group_type(), group("Admins", ua["id"]))
    for rt, res in ((user_type(), ua), (group_type(), ga)):
        with pytest.raises(NotFound):
            await store.get(b, rt, res["id"])
        with pytest.raises(NotFound):
            await store.replace(b, rt, res["id"], user("x"), if_match=None)
        with pytest.raises(NotFound):
            await store.patch(
                b,
                rt,
                res["id"],
                [PatchOp("replace", parse_path("displayName", rt), "x")],
                if_match=None,
            )
        with pytest.raises(NotFound):
            await store.delete(b, rt, res["id"], if_match=None)
        assert (await store.query(b, rt, Query())).total_results == 0
    # the same unique values are free in another tenant
    ub = await store.create(b, user_type(), user("bjensen"))
    await store.create(b, group_type(), group("Admins"))
    # tenant B cannot reference tenant A's user as a member, nor see A's memberships
    with pytest.raises(InvalidValue):
        await store.create(b, group_type(), group("Other", ua["id"]))
    f = parse_filter(f'members.value eq "{ua["id"]}"', group_type())
    assert (await store.query(b, group_type(), Query(filter=f))).total_results == 0
    assert "groups" not in await store.get(b, user_type(), ub["id"])
    # A is untouched
    assert (await store.get(a, user_type(), ua["id"]))["groups"][0]["value"] == ga["id"]


# ---------------------------------------------------------------------------- uniqueness


async def test_username_unique_case_insensitively(store: SQLiteBackend) -> None:
    await store.create(ctx(), user_type(), user("bjensen"))
    with pytest.raises(Uniqueness, match='userName "BJensen" is already in use'):
        await store.create(ctx(), user_type(), user("BJensen"))


async def test_group_display_name_unique(store: SQLiteBackend) -> None:
    await store.create(ctx(), group_type(), group("Admins"))
    with pytest.raises(Uniqueness, match="displayName"):
        await store.create(ctx(), group_type(), group("admins"))
    # a user may share a group's displayName: uniqueness is per resource type
    await store.create(ctx(), user_type(), user("u", displayName="Admins"))


async def test_uniqueness_on_replace_and_patch(store: SQLiteBackend) -> None:
    await store.create(ctx(), user_type(), user("alice"))
    bob = await store.create(ctx(), user_type(), user("bob"))
    with pytest.raises(Uniqueness):
        await store.replace(ctx(), user_type(), bob["id"], user("ALICE"), if_match=None)
    with pytest.raises(Uniqueness):
        await store.patch(
            ctx(),
            user_type(),
            bob["id"],
            [PatchOp("replace", parse_path("userName", user_type()), "Alice")],
            if_match=None,
        )
    # the failed writes changed nothing; renaming to itself (other case) is fine
    assert (await store.get(ctx(), user_type(), bob["id"]))["meta"]["version"] == 'W/"1"'
    renamed = await store.replace(ctx(), user_type(), bob["id"], user("BOB"), if_match=None)
    assert renamed["userName"] == "BOB"


async def test_concurrent_creates_one_wins(store: SQLiteBackend) -> None:
    results = await asyncio.gather(
        *(store.create(ctx(), user_type(), user(name)) for name in ["dup", "DUP", "Dup", "dUp"]),
        return_exceptions=True,
    )
    assert sum(isinstance(r, dict) for r in results) == 1
    assert sum(isinstance(r, Uniqueness) for r in results) == 3


async def test_unique_index_is_the_last_line(store: SQLiteBackend) -> None:
    """Even past the pre-check (another process racing), a duplicate is a 409, not a 500."""
    await store.create(ctx(), user_type(), user("dup"))
    conn = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO attr_values (pk, tenant, rtype, path, elem, v_text, uniq)"
                " SELECT pk + 1000, tenant, rtype, path, elem, v_text, 1 FROM attr_values"
                " WHERE uniq = 1"
            )
    finally:
        conn.close()


# ---------------------------------------------------------------------------- members


async def test_members_stored_as_relation_with_type(store: SQLiteBackend) -> None:
    u = await store.create(ctx(), user_type(), user("bjensen", displayName="Babs"))
    inner = await store.create(ctx(), group_type(), group("Inner"))
    g = await store.create(ctx(), group_type(), group("Outer", u["id"], inner["id"]))
    members = {m["value"]: m for m in g["members"]}
    assert members[u["id"]]["type"] == "User"
    assert members[u["id"]]["display"] == "Babs"
    assert members[inner["id"]]["type"] == "Group"
    conn = sqlite3.connect(store.path)
    try:
        (data,) = conn.execute("SELECT data FROM resources WHERE id = ?", (g["id"],)).fetchone()
        assert b"members" not in data  # never inside the group's JSON
    finally:
        conn.close()


async def test_member_must_exist(store: SQLiteBackend) -> None:
    with pytest.raises(InvalidValue, match="does not exist"):
        await store.create(ctx(), group_type(), group("G", "missing-id"))


async def test_dangling_members_allowed_by_setting(tmp_path: Path) -> None:
    async for backend in started(tmp_path / "s.db", allow_dangling=True):
        g = await backend.create(ctx(), group_type(), group("G", "external-1"))
        assert g["members"] == [{"value": "external-1"}]


async def test_get_group_without_members_reads_no_member_rows(tmp_path: Path) -> None:
    statements: list[str] = []
    backend = make_backend(tmp_path / "s.db")
    backend.trace = statements.append
    await backend.start()
    try:
        u = await backend.create(ctx(), user_type(), user("bjensen"))
        g = await backend.create(ctx(), group_type(), group("G", u["id"]))
        statements.clear()
        got = await backend.get(ctx(load_members=False), group_type(), g["id"])
        assert "members" not in got
        assert statements and not any("members" in s for s in statements)
        statements.clear()
        page = await backend.query(
            ctx(load_members=False),
            group_type(),
            Query(filter=parse_filter('displayName eq "G"', group_type())),
        )
        assert page.total_results == 1 and "members" not in page.resources[0]
        assert not any("FROM members" in s for s in statements)
        statements.clear()
        got = await backend.get(ctx(load_groups=False), user_type(), u["id"])
        assert "groups" not in got and not any("members" in s for s in statements)
        got = await backend.get(ctx(), group_type(), g["id"])
        assert got["members"] == [{"value": u["id"], "type": "User"}]
    finally:
        await backend.aclose()


async def test_groups_computed_from_membership(store: SQLiteBackend) -> None:
    u = await store.create(ctx(), user_type(), user("bjensen"))
    g1 = await store.create(ctx(), group_type(), group("One", u["id"]))
    g2 = await store.create(ctx(), group_type(), group("Two", u["id"]))
    got = await store.get(ctx(), user_type(), u["id"])
    assert sorted(got["groups"], key=lambda x: x["display"]) == [
        {"value": g1["id"], "display": "One", "type": "direct"},
        {"value": g2["id"], "display": "Two", "type": "direct"},
    ]
    # the group's display follows renames; deleting the group removes it
    await store.replace(ctx(), group_type(), g1["id"], group("Uno", u["id"]), if_match=None)
    await store.delete(ctx(), group_type(), g2["id"], if_match=None)
    got = await store.get(ctx(), user_type(), u["id"])
    assert got["groups"] == [{"value": g1["id"], "display": "Uno", "type": "direct"}]


async def test_delete_member_removes_its_memberships(store: SQLiteBackend) -> None:
    u = await store.create(ctx(), user_type(), user("bjensen"))
    g = await store.create(ctx(), group_type(), group("G", u["id"]))
    await store.delete(ctx(), user_type(), u["id"], if_match=None)
    assert "members" not in await store.get(ctx(), group_type(), g["id"])


async def test_replace_without_members_clears_membership(store: SQLiteBackend) -> None:
    u = await store.create(ctx(), user_type(), user("bjensen"))
    g = await store.create(ctx(), group_type(), group("G", u["id"]))
    replaced = await store.replace(ctx(), group_type(), g["id"], group("G"), if_match=None)
    assert "members" not in replaced


async def _bulk_users(store: SQLiteBackend, n: int) -> list[str]:
    ids: list[str] = []
    for i in range(n):
        ids.append((await store.create(ctx(), user_type(), user(f"user{i:05d}")))["id"])
    return ids


async def test_member_patch_touches_only_named_rows(store: SQLiteBackend) -> None:
    ids = await _bulk_users(store, 300)
    g = await store.create(ctx(), group_type(), group("Big", *ids[:250]))
    members_path = parse_path("members", group_type())
    writer = store._writer
    assert writer is not None

    async def rows_written(op: PatchOp) -> int:
        before = writer.total_changes
        await store.patch(ctx(), group_type(), g["id"], [op], if_match=None)
        return writer.total_changes - before

    # set = diff: 200 stay, 50 leave, 50 arrive -> ~100 member rows + the group's own rows
    target = [{"value": v} for v in ids[50:300]]
    written = await rows_written(PatchOp("replace", members_path, target))
    assert 100 <= written < 100 + 40
    got = await store.get(ctx(), group_type(), g["id"])
    assert {m["value"] for m in got["members"]} == set(ids[50:300])
    # add of an existing member and a new one: one member row
    written = await rows_written(
        PatchOp("add", members_path, [{"value": ids[60]}, {"value": ids[0]}])
    )
    assert 1 <= written < 1 + 40
    # remove one by filter
    remove = PatchOp("remove", parse_path(f'members[value eq "{ids[0]}"]', group_type()))
    written = await rows_written(remove)
    assert 1 <= written < 1 + 40
    got = await store.get(ctx(), group_type(), g["id"])
    assert len(got["members"]) == 250 and ids[0] not in {m["value"] for m in got["members"]}


async def test_patch_member_ops_apply_in_order(store: SQLiteBackend) -> None:
    """INTEROP: add members u, then remove members[value eq "u"] -> empty."""
    (uid,) = await _bulk_users(store, 1)
    g = await store.create(ctx(), group_type(), group("G"))
    ops = [
        PatchOp("add", parse_path("members", group_type()), [{"value": uid, "display": "U"}]),
        PatchOp("remove", parse_path(f'members[value eq "{uid}"]', group_type())),
    ]
    result = await store.patch(ctx(), group_type(), g["id"], ops, if_match=None)
    assert "members" not in result


async def test_patch_member_add_unknown_is_invalid_value_and_atomic(store: SQLiteBackend) -> None:
    (uid,) = await _bulk_users(store, 1)
    g = await store.create(ctx(), group_type(), group("G"))
    ops = [
        PatchOp("replace", parse_path("displayName", group_type()), "Renamed"),
        PatchOp("add", parse_path("members", group_type()), [{"value": uid}, {"value": "ghost"}]),
    ]
    with pytest.raises(InvalidValue):
        await store.patch(ctx(), group_type(), g["id"], ops, if_match=None)
    got = await store.get(ctx(), group_type(), g["id"])
    assert got["displayName"] == "G" and "members" not in got
    assert got["meta"]["version"] == 'W/"1"'


async def test_member_changes_native(store: SQLiteBackend) -> None:
    """The MemberChange operations, applied directly (what apply_patch produces)."""
    ids = await _bulk_users(store, 4)
    g = await store.create(ctx(), group_type(), group("G", ids[0], ids[1]))
    writer = store._writer
    assert writer is not None

    def apply(changes: list[MemberChange]) -> int:
        writer.execute("BEGIN IMMEDIATE")
        try:
            return store._apply_member_changes(writer, "acme", group_type(), g["id"], changes)
        finally:
            writer.execute("COMMIT")

    loop = asyncio.get_running_loop()
    assert store._wpool is not None
    touched = await loop.run_in_executor(
        store._wpool,
        apply,
        [
            MemberChange("add", members=({"value": ids[1]}, {"value": ids[2]})),
            MemberChange("remove", values=(ids[0], "not-a-member")),
            MemberChange("set", members=({"value": ids[2]}, {"value": ids[3]})),
        ],
    )
    assert touched == 1 + 1 + 2  # add ids[2]; remove ids[0]; set: -ids[1] +ids[3]
    got = await store.get(ctx(), group_type(), g["id"])
    assert {m["value"] for m in got["members"]} == {ids[2], ids[3]}
    touched = await loop.run_in_executor(store._wpool, apply, [MemberChange("clear")])
    assert touched == 2


async def test_schema_change_rebuilds_value_index(tmp_path: Path) -> None:
    """A changed schema fingerprint (caseExact, uniqueness... edited in config) rebuilds the
    value rows from the stored JSON at start."""
    path = tmp_path / "store.db"
    async for backend in started(path):
        created = await backend.create(ctx(), user_type(), user("bjensen"))
    conn = sqlite3.connect(path)
    try:
        conn.execute("DELETE FROM attr_values")
        conn.execute("UPDATE store_meta SET value = 'old' WHERE key = 'fingerprint'")
        conn.commit()
    finally:
        conn.close()
    async for backend in started(path):
        f = parse_filter('userName eq "BJensen"', user_type())
        page = await backend.query(ctx(), user_type(), Query(filter=f))
        assert [r["id"] for r in page.resources] == [created["id"]]
        with pytest.raises(Uniqueness):
            await backend.create(ctx(), user_type(), user("bjensen"))


async def test_concurrent_first_start_on_one_file(tmp_path: Path) -> None:
    """Worker processes (``--workers N``) open a new database at once: exactly one creates
    the layout, none fails."""
    path = tmp_path / "shared.db"
    backends = [make_backend(path) for _ in range(4)]
    try:
        await asyncio.gather(*(b.start() for b in backends))
        made = await backends[0].create(ctx(), user_type(), user("bjensen"))
        for b in backends:
            assert (await b.get(ctx(), user_type(), made["id"]))["userName"] == "bjensen"
        with pytest.raises(Uniqueness):
            await backends[3].create(ctx(), user_type(), user("BJENSEN"))
    finally:
        for b in backends:
            await b.aclose()
