"""Layouts 9 and 10 of ``scimd_attr_values``: since layout 10 it holds only the unique
values (the filters read ``scimd_resources.sv``), under the primary key (pk, path, elem,
n) and the unique index that layout 9 gave it. A database stored under layout 8, with an
interrupted bulk import's record, is upgraded in place (layout 9 rebuilds the indexes,
layout 10's backfill moves the values to ``sv`` and drops the value indexes) and answers
every filter as the reference evaluator does."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from scimd_postgres import bulk
from scimd_postgres.backend import PostgresBackend
from scimd_postgres.migrations import _VERSION_TABLE, MIGRATIONS, migrate

from scimd.backend import BackendEnv, OpContext
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.schema.validate import normalize_resource
from scimd.store.sql import Relations, extract_values, path_key

from ._backend import answers, open_backend

T = OpContext("default", "test", "r1")

EXPECTED_INDEXES = {
    "scimd_attr_values_pkey": "btree (pk, path, elem, n)",
    "scimd_attr_values_unique": "btree (path, md5(v_text), tenant, rtype) WHERE uniq",
}
"""Since layout 10 the filters read ``scimd_resources.sv``: the value, number and trigram
indexes of layout 9 are gone, the unique index enforces."""

FILTERS = [
    'userName eq "bob@example.com"',
    'userName co "LIC"',
    'name.familyName sw "sm"',
    'emails.value ew "example.org"',
    'emails[not (type eq "home")]',
    'emails[value co "carol" or primary eq true]',
    'meta.created gt "2000-01-01T00:00:00Z"',
    'schemas co "CORE:2.0:User"',
    'photos.value co "/ALICE."',
    'meta.resourceType co "se" and externalId co "x"',
    "displayName pr and not (title pr)",
]


def _users() -> list[dict[str, Any]]:
    urn = "urn:ietf:params:scim:schemas:core:2.0:User"
    return [
        {
            "schemas": [urn],
            "userName": "alice@example.com",
            "name": {"familyName": "Smith", "givenName": "Alice"},
            "displayName": "Alice",
            "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
            "photos": [{"value": "https://photos.example/alice.jpg", "type": "photo"}],
        },
        {
            "schemas": [urn],
            "userName": "bob@example.com",
            "title": "Boss",
            "displayName": "Bob",
            "externalId": "x-bob",
            "emails": [{"value": "bob@home.example.org", "type": "home"}],
        },
        {
            "schemas": [urn],
            "userName": "carol@example.com",
            "name": {"familyName": "Smythe"},
            "emails": [{"value": "carol@example.org"}, {"type": "home"}],
        },
    ]


def _layout_8_value_rows(
    users: ResourceType, paths: dict[str, int], pk: int, data: dict[str, Any]
) -> list[bytes]:
    """The value rows layout 8 stored for a resource: every value (no ``fts``)."""
    out = []
    for n, (defn, elem, v_text, v_num, _) in enumerate(
        extract_values(users, data, Relations.of(users))
    ):
        text = "\\N" if v_text is None else bulk.copy_text(v_text)
        num = "\\N" if v_num is None else str(v_num)
        uniq = "t" if defn.uniqueness != "none" and v_text else "f"
        out.append(
            f"{pk}\t{n}\tdefault\tUser\t{paths[path_key(defn)]}\t{elem}\t{text}\t{num}\t{uniq}\n".encode()
        )
    return out


async def _index_definitions(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'scimd_attr_values'"
    )
    return {r[0]: r[1].split(" USING ", 1)[1] for r in rows}


async def test_fresh_layout_and_fts_of_created_and_imported_rows(
    pg_dsn: str, registry: SchemaRegistry, users: ResourceType, tmp_path: Path
) -> None:
    backend = await open_backend(pg_dsn, registry, tmp_path)
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await _index_definitions(conn) == EXPECTED_INDEXES
        made = await backend.create(T, users, _users()[0])
        (kind, imported), *_ = await backend.import_resources(T, users, _users()[1:2])
        assert kind == "created"
        rows = await conn.fetch(
            "SELECT r.id, p.key, a.fts, a.v_text IS NOT NULL FROM scimd_attr_values a"
            " JOIN scimd_resources r ON r.pk = a.pk JOIN scimd_attr_paths p ON p.id = a.path"
        )
        core = "urn:ietf:params:scim:schemas:core:2.0:user"
        for rid in (made["id"], imported):
            # since layout 10 the value rows are the unique values only (userName), which
            # the filters read from sv
            mine = {(key, fts) for r_id, key, fts, _ in rows if r_id == rid}
            assert mine == {(f"{core}:username", False)}
        assert {k: v for k, v in (await answers(backend, T, users, FILTERS)).items() if v} == {
            'userName eq "bob@example.com"': {"bob@example.com"},
            'userName co "LIC"': {"alice@example.com"},
            'name.familyName sw "sm"': {"alice@example.com"},
            'emails.value ew "example.org"': {"bob@example.com"},
            'emails[not (type eq "home")]': {"alice@example.com"},
            'emails[value co "carol" or primary eq true]': {"alice@example.com"},
            'meta.created gt "2000-01-01T00:00:00Z"': {"alice@example.com", "bob@example.com"},
            'schemas co "CORE:2.0:User"': {"alice@example.com", "bob@example.com"},
            'photos.value co "/ALICE."': {"alice@example.com"},
            'meta.resourceType co "se" and externalId co "x"': {"bob@example.com"},
            "displayName pr and not (title pr)": {"alice@example.com"},
        }
    finally:
        await conn.close()
        await backend.aclose()


async def test_layout_8_database_is_upgraded_in_place(
    fresh_dsn: str, registry: SchemaRegistry, users: ResourceType, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    locker = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(_VERSION_TABLE)
        for mig in MIGRATIONS[:8]:
            await conn.execute(mig.sql)
            await conn.execute(
                "INSERT INTO scimd_schema_version (version, name) VALUES ($1, $2)",
                mig.version,
                mig.name,
            )
        # Rows as layout 8 stored them: the encoder's rows without the fts column.
        schemas = [users.schema, users.common, *(s for s, _ in users.extensions.values())]
        keys = sorted(
            {path_key(d) for s in schemas for top in s.order for d in (top, *top.sub_order)}
        )
        paths = {
            str(r[1]): int(r[0])
            for r in await conn.fetch(
                "INSERT INTO scimd_attr_paths (key) SELECT unnest($1::text[]) RETURNING id, key",
                keys,
            )
        }
        encoder = bulk.RowEncoder("default", "User", paths)
        res_rows: list[bytes] = []
        val_rows: list[bytes] = []
        for pk, body in enumerate(_users(), start=1):
            res, _ = bulk.number(encoder(users, normalize_resource(users, body)), pk)
            columns = res.split(b"\t")[:8]  # without layout 10's sv, sv_text
            res_rows.append(b"\t".join(columns) + b"\n")
            data = orjson.loads(columns[7].replace(b"\\\\", b"\\"))
            val_rows += _layout_8_value_rows(users, paths, pk, data)
        await conn.copy_to_table(
            "scimd_resources",
            source=io.BytesIO(b"".join(res_rows)),
            columns=["pk", "tenant", "rtype", "id", "version", "display", "display_fold", "data"],
        )
        await conn.copy_to_table(
            "scimd_attr_values",
            source=io.BytesIO(b"".join(val_rows)),
            columns=bulk.VALUE_COLUMNS[:-1],
        )
        await conn.execute("SELECT setval(pg_get_serial_sequence('scimd_resources', 'pk'), 3)")
        # A bulk import, still running (its lock held), dropped and recorded two indexes.
        saved = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1::text[])",
                ["scimd_attr_values_pk", "scimd_attr_values_trgm"],
            )
        }
        assert len(saved) == 2
        for name in saved:
            await conn.execute(f"DROP INDEX {name}")
        await conn.execute(
            "INSERT INTO scimd_store_meta (key, value) VALUES ($1, $2)",
            bulk.BULK_MARKER,
            orjson.dumps(saved).decode(),
        )
        assert await locker.fetchval("SELECT pg_try_advisory_lock($1)", bulk.BULK_LOCK)

        applied = await migrate(conn)

        assert [m.name for m in applied] == ["value_indexes", "single_values"]
        assert await _index_definitions(conn) == EXPECTED_INDEXES
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM scimd_store_meta WHERE key = $1", bulk.BULK_MARKER
            )
            == 0
        )
        # rows stored before keep fts true, nothing else changed until the backfill
        assert await conn.fetchval("SELECT bool_and(fts) FROM scimd_attr_values")
        assert await conn.fetchval("SELECT count(*) FROM scimd_attr_values") == len(val_rows)
        await locker.execute("SELECT pg_advisory_unlock($1)", bulk.BULK_LOCK)
        # `scimd migrate` (its own connection, no jsonb codec) runs layout 10's backfill
        migrator = PostgresBackend(
            BackendEnv(options={"dsn": fresh_dsn}, registry=registry, base_dir=tmp_path)
        )
        assert await migrator.migrate() == []
        backend = await open_backend(fresh_dsn, registry, tmp_path)
        try:
            # layout 10's backfill (at start): the single values moved to sv, sv_text
            assert await conn.fetchval("SELECT count(*) FROM scimd_attr_values WHERE uniq") == 3
            assert await conn.fetchval("SELECT count(*) FROM scimd_attr_values") == 3
            assert not await conn.fetchval(
                "SELECT count(*) FROM scimd_pending_tasks WHERE name = 'single_values_backfill'"
            )
            assert await conn.fetchval("SELECT bool_and(sv <> '{}') FROM scimd_resources")
            got = await answers(backend, T, users, FILTERS)
            assert got['userName co "LIC"'] == {"alice@example.com"}
            assert got['emails[not (type eq "home")]'] == {"alice@example.com", "carol@example.com"}
            assert len(got['meta.created gt "2000-01-01T00:00:00Z"']) == 3
        finally:
            await backend.aclose()
    finally:
        await locker.close()
        await conn.close()
