"""The pieces of ``scimd_postgres.bulk`` that ``scimd import`` runs per resource and per
value: ``copy_text`` (COPY text escaping, with its shortcut for text that needs none),
``stamp`` (one ``strftime`` per millisecond), ``RowEncoder`` (picklable, its caches
rebuilt in the worker processes, the same rows after a pickle), and the index rebuild on
two connections (``restore_bulk_indexes``: every index back, a failure in one lane
reported after the other lane finished, the record kept for a rerun)."""

from __future__ import annotations

import pickle
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scimd_postgres import bulk

from scimd.query.evaluate import canonical_datetime
from scimd.schema.loader import builtin_registry
from scimd.schema.validate import normalize_resource
from scimd.store.sqlcommon import path_key

from .test_import_bulk import index_state, started
from .test_import_differential import varied_user


def _escaped(value: str) -> str:
    """COPY text format escaping, written out (backslash first), and ``\\x01``."""
    out = value.replace("\\", "\\\\")
    for raw, esc in (("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\x01", "\\x01")):
        out = out.replace(raw, esc)
    return out


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_copy_text_escapes_like_copy(value: str) -> None:
    assert bulk.copy_text(value) == _escaped(value)


@pytest.mark.parametrize("value", ["plain", "a\\b", "tab\there", "\x01", "\r\n", "é\u2028", ""])
def test_copy_text_examples(value: str) -> None:
    assert bulk.copy_text(value) == _escaped(value)


def test_stamp_is_now_to_the_millisecond() -> None:
    shape = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    seen: set[str] = set()
    for _ in range(200_000):  # bounded: stops once it has seen a few milliseconds
        before = datetime.now(UTC)
        got = bulk.stamp()
        after = datetime.now(UTC)
        assert shape.match(got), got
        low = before.strftime("%Y-%m-%dT%H:%M:%S.") + f"{before.microsecond // 1000:03d}Z"
        high = after.strftime("%Y-%m-%dT%H:%M:%S.") + f"{after.microsecond // 1000:03d}Z"
        assert low <= got <= high
        seen.add(got)
        if len(seen) >= 3:
            break
    assert len(seen) >= 3


def test_row_encoder_pickles_and_encodes_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = builtin_registry()
    users = registry.resource_type("User")
    assert users is not None
    paths: dict[str, int] = {}

    def path_id(key: str) -> int:
        return paths.setdefault(key, len(paths) + 1)

    for defn in [*users.schema.order, *users.common.order]:
        path_id(path_key(defn))
        for sub in defn.sub_order:
            path_id(path_key(sub))
    for schema, _ in users.extensions.values():
        for defn in schema.order:
            path_id(path_key(defn))
            for sub in defn.sub_order:
                path_id(path_key(sub))
    encoder = bulk.RowEncoder("ten\tant", "User", paths)
    copy = pickle.loads(pickle.dumps(encoder))  # noqa: S301 - our own object
    assert copy == encoder and copy is not encoder
    fixed = uuid.UUID("12345678-1234-5678-1234-567812345678")
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    monkeypatch.setattr(bulk, "stamp", lambda: "2026-11-28T17:00:00.123Z")
    for i in range(24):
        resource = normalize_resource(users, varied_user(i), unknown="error")
        first, again, other = (
            encoder(users, resource),
            encoder(users, resource),
            copy(users, resource),
        )
        assert first == again == other
        assert first.error is None and first.rid == str(fixed)
        assert first.resource_row.startswith(bulk.PK + b"\tten\\tant\tUser\t" + str(fixed).encode())
        assert bulk.resource_of(first) == resource  # read back for the fallback
        rows = [row.split("\t") for row in first.value_rows.decode().splitlines()]
        assert all(row[0] == "\x01" and len(row) == len(bulk.VALUE_COLUMNS) for row in rows)
        meta, user_name = users.lookup(None, "meta"), users.lookup(None, "userName")
        emails = users.lookup(None, "emails")
        assert meta is not None and user_name is not None and emails is not None
        # the values are on the resource row (sv, sv_text); userName is also a row, for
        # the unique index (uniq t, fts f), and the only one
        assert [(row[4], row[-2], row[-1]) for row in rows] == [
            (str(paths[path_key(user_name)]), "t", "f")
        ]
        columns = first.resource_row.decode().rstrip("\n").split("\t")
        assert len(columns) == 10
        sv = orjson.loads(columns[8].replace("\\\\", "\\"))
        assert sv[str(paths[path_key(user_name)])] == resource["userName"].casefold()
        created = str(paths[path_key(meta.sub("created"))])  # type: ignore[arg-type]
        assert sv[created] == canonical_datetime("2026-11-28T17:00:00.123Z")
        if "emails" in resource:  # a multi-valued complex attribute: its elements
            elements = sv[str(paths[path_key(emails)])]
            value = str(paths[path_key(emails.sub("value"))])  # type: ignore[arg-type]
            assert [e.get(value) for e in elements] == [
                e["value"].casefold() for e in resource["emails"]
            ]
            assert all(e["_"] == 1 for e in elements)
        sv_text = columns[9]
        # sv_text (the trigram index): not dateTimes, schemas nor the server's meta values
        assert "\x1f" + resource["userName"].casefold() + "\x1f" in sv_text
        assert "2026-11-28" not in sv_text and "user" not in sv_text.split("\x1f")
    # a second pickle of a used encoder (its caches filled) is still small and equal
    assert pickle.loads(pickle.dumps(encoder)) == encoder  # noqa: S301
    assert len(pickle.dumps(encoder)) < len(pickle.dumps(paths)) + 200


async def test_rebuild_on_two_connections(pg_dsn: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_dsn)
    second = await asyncpg.connect(pg_dsn)
    try:
        assert set(await bulk.drop_bulk_indexes(conn)) == set(bulk.BULK_INDEXES)
        saved = orjson.loads(
            await conn.fetchval(
                "SELECT value FROM scimd_store_meta WHERE key = $1", bulk.BULK_MARKER
            )
        )
        broken = {**saved, "scimd_broken": "CREATE INDEX scimd_broken ON no_such_table (x)"}
        await conn.execute(
            "UPDATE scimd_store_meta SET value = $2 WHERE key = $1",
            bulk.BULK_MARKER,
            orjson.dumps(broken).decode(),
        )
        with pytest.raises(asyncpg.UndefinedTableError):
            await bulk.restore_bulk_indexes(conn, second=second)
        # (in name order, one at a time on each connection: the broken one and
        # scimd_resources_sv_trgm on the first, scimd_resources_sv on the second) the
        # other lane was built, the record stays for the next run
        names, marker = await index_state(pg_dsn)
        assert "scimd_resources_sv" in names and marker
        await conn.execute(
            "UPDATE scimd_store_meta SET value = $2 WHERE key = $1",
            bulk.BULK_MARKER,
            orjson.dumps(saved).decode(),
        )
        made = await bulk.restore_bulk_indexes(conn, second=second)
        assert made == ["scimd_resources_sv_trgm"]
        assert await index_state(pg_dsn) == (set(bulk.BULK_INDEXES), False)
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", bulk.BULK_LOCK)
    finally:
        await second.close()
        await conn.close()
    backend = await started(pg_dsn, tmp_path)  # the store works with the rebuilt indexes
    await backend.aclose()


async def test_a_value_taken_meanwhile_stores_the_batch_one_by_one(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a unique value is taken between a batch's check and its COPY (here: the
    check is made to miss a stored userName), the COPY fails, the batch is rolled back
    and stored one resource at a time from the resources read back from their rows
    (``bulk.resource_of``): the clash is skipped as already stored, the other line is
    created exactly as sent (COPY escapes included)."""
    from scimd.backend import OpContext

    backend = await started(pg_dsn, tmp_path)
    try:
        users = backend.registry.resource_type("User")
        assert users is not None
        ctx = OpContext("default", "import", "import:test")
        taken = await backend.create(
            ctx, users, normalize_resource(users, {"userName": "taken@example.com"})
        )
        bodies = [
            {"userName": "TAKEN@example.com", "displayName": "Second"},
            {"userName": "fresh@example.com", "displayName": "Back\\slash\tTab \u00fc"},
        ]
        encoder = backend.import_encoder("default", users)
        items = [encoder(users, normalize_resource(users, b)) for b in bodies]
        real = backend._stored_unique
        calls: list[int] = []

        async def miss_once(*args: object) -> dict[tuple[int, str], str]:
            calls.append(1)
            if len(calls) == 1:
                return {}  # the stored userName is not seen: the COPY will clash
            return await real(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(backend, "_stored_unique", miss_once)
        out = await backend.import_encoded(ctx, users, items)
        assert out[0] == ("skipped", taken["id"])
        assert out[1][0] == "created"
        made = await backend.get(ctx, users, out[1][1])
        assert made["displayName"] == "Back\\slash\tTab \u00fc"
        assert len(calls) >= 2
    finally:
        await backend.aclose()
