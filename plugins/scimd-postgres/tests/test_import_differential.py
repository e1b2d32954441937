"""``scimd import`` writes exactly what the backend's normal create path writes: the same
Users imported into one tenant (the COPY path, in bulk mode and not) and created one by
one through ``PostgresBackend.create`` in another give, user by user, the same
``scimd_resources`` row, the same ``scimd_attr_values`` rows (every column but the
primary key and the tenant; the timestamps of ``meta`` compared as the stored document's)
and the same ``scimd_unique_keys`` rows. Queries, filters, sort and uniqueness read only
these rows, so they answer the same after an import as after POSTs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
from scimd_postgres.backend import PostgresBackend

from scimd.backend import BackendEnv, OpContext
from scimd.bulk_import import import_file
from scimd.query.evaluate import canonical_datetime
from scimd.schema.loader import builtin_registry
from scimd.schema.validate import normalize_resource
from scimd.store.unique_keys import EMAIL

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def varied_user(i: int) -> dict[str, Any]:
    """Users of many shapes: optional and multi-valued attributes present or not, the
    enterprise extension, non-ASCII and IDNA addresses, characters COPY escapes, mixed
    case in caseExact and case-insensitive attributes, booleans of both values."""
    user: dict[str, Any] = {"schemas": [USER_URN], "userName": f"User{i:04d}@Example.COM"}
    if i % 3:
        user["externalId"] = f"Ext\\{i}\t" if i % 7 == 0 else f"ext-{i}"
    if i % 4 != 1:
        user["name"] = {"givenName": f"Gïven{i}", "familyName": f"Fam\nily{i % 5}"}
        if i % 2:
            user["name"]["formatted"] = f"Ms. Gïven{i} Family"
    if i % 5:
        user["displayName"] = f"Ünïcode User {i}" if i % 2 else f"User {i}"
    emails: list[dict[str, Any]] = [
        {"value": f"User{i:04d}@Example.COM", "type": "work", "primary": i % 6 != 0}
    ]
    if i % 2:
        emails.append({"value": f"u{i}@bücher.example", "type": "home"})
    if i % 9 == 4:
        emails.append({"value": f"x{i}@other.example.org"})
    if i % 8 != 7:
        user["emails"] = emails
    if i % 3 == 2:
        user["phoneNumbers"] = [
            {"value": f"+1 555 01{i:02d}", "type": "mobile"},
            {"value": f"+1 555 02{i:02d}", "type": "work", "primary": True},
        ]
    if i % 4 == 3:
        user["addresses"] = [
            {"streetAddress": f"{i}\tMain St", "locality": "Springfield", "type": "work"}
        ]
        user["roles"] = [{"value": "admin", "primary": False}]
    if i % 5 == 2:
        user["title"] = "Engineer"
        user["nickName"] = f"nick{i}"
        user["locale"] = "en-US"
        user["timezone"] = "Europe/Paris"
        user["preferredLanguage"] = "fr"
        user["profileUrl"] = f"https://example.com/u/{i}"
    if i % 2 == 0:
        user["active"] = i % 4 == 0
    if i % 6 == 1:
        user["schemas"] = [USER_URN, ENTERPRISE]
        user[ENTERPRISE] = {
            "employeeNumber": f"E{i}",
            "department": "R&D",
            "manager": {"value": f"mgr-{i}"},
        }
    return user


COUNT = 60

_META_TIMES = ("urn:scimd:common:meta.created", "urn:scimd:common:meta.lastmodified")


async def stored_rows(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    """userName -> (resource row, value rows, unique keys, single values) of ``tenant``,
    free of what legitimately differs between two writes of one user (primary key, id,
    timestamps)."""
    paths = {r[0]: r[1] for r in await conn.fetch("SELECT id, key FROM scimd_attr_paths")}
    out: dict[str, Any] = {}
    resources = await conn.fetch(
        "SELECT pk, rtype, id, version, display, display_fold, data::text, sv::text, sv_text"
        " FROM scimd_resources WHERE tenant = $1",
        tenant,
    )
    for pk, rtype, rid, version, display, display_fold, raw, sv_raw, sv_text in resources:
        data = orjson.loads(raw)
        assert data.pop("id") == rid
        meta = data.pop("meta")
        assert meta["created"] == meta["lastModified"]
        stamp = canonical_datetime(meta["created"])
        assert stamp is not None
        single = {}
        for pid, value in orjson.loads(sv_raw).items():
            key = paths[int(pid)]
            if key in _META_TIMES:
                assert value == stamp, (key, value, stamp)
                value = "<stamp>"
            single[key] = value
        values = []
        for row in await conn.fetch(
            "SELECT n, rtype, path, elem, v_text, v_num, uniq FROM scimd_attr_values"
            " WHERE pk = $1 ORDER BY n",
            pk,
        ):
            n, vrtype, path, elem, v_text, v_num, uniq = row
            key = paths[path]
            if key in _META_TIMES:
                assert v_text == stamp, (key, v_text, stamp)
                v_text = "<stamp>"
            values.append((n, vrtype, key, elem, v_text, v_num, uniq))
        keys = sorted(
            tuple(r)
            for r in await conn.fetch(
                "SELECT kind, key, shared FROM scimd_unique_keys WHERE pk = $1", pk
            )
        )
        out[data["userName"]] = (
            rtype,
            version,
            display,
            display_fold,
            meta,
            data,
            values,
            keys,
            single,
            sv_text,
        )
    for entry in out.values():  # meta without its timestamps
        entry[4].pop("created")
        entry[4].pop("lastModified")
    return out


@pytest.mark.parametrize("bulk", [False, True], ids=["normal", "bulk"])
@pytest.mark.parametrize("workers", [0, 2], ids=["inline", "pool"])
async def test_import_writes_what_create_writes(
    pg_dsn: str, tmp_path: Path, bulk: bool, workers: int
) -> None:
    registry = builtin_registry()
    users = registry.resource_type("User")
    assert users is not None
    bodies = [varied_user(i) for i in range(COUNT)]
    source = tmp_path / "users.jsonl"
    source.write_bytes(b"".join(orjson.dumps(b) + b"\n" for b in bodies))
    backend = PostgresBackend(
        BackendEnv(options={"dsn": pg_dsn}, registry=registry, base_dir=tmp_path)
    )
    await backend.start()
    try:
        stats = await import_file(
            source,
            backend,
            registry,
            tenant="imported",
            batch_size=25,
            progress=False,
            workers=workers,
            bulk=bulk,
        )
        assert (stats.created, stats.errors, stats.skipped) == (COUNT, 0, 0), stats.error_lines
        ctx = OpContext(
            tenant="created", principal="t", request_id="t", unique_keys=frozenset({EMAIL})
        )
        for body in bodies:
            await backend.create(ctx, users, normalize_resource(users, body, unknown="error"))
    finally:
        await backend.aclose()
    conn = await asyncpg.connect(pg_dsn)
    try:
        imported = await stored_rows(conn, "imported")
        created = await stored_rows(conn, "created")
    finally:
        await conn.close()
    assert len(imported) == COUNT
    assert imported.keys() == created.keys()
    for name in created:
        assert imported[name] == created[name], name
    # the generator does reach the shapes it is meant to
    sample = imported[bodies[1]["userName"]]
    assert ENTERPRISE in sample[5]
    assert any("\t" in e[9] for e in imported.values())  # COPY escapes in sv_text
    # in the elements of a multi-valued attribute (addresses.streetAddress)
    assert any(
        b"\\t" in orjson.dumps(v)
        for e in imported.values()
        for v in e[8].values()
        if isinstance(v, list)
    )
    assert all(v[6] for e in imported.values() for v in e[6])  # value rows: unique ones
    assert all(len(e[6]) == 1 for e in imported.values())  # userName
    assert any(isinstance(x, int) for e in imported.values() for x in e[8].values())
