"""Substring filters (``co``, ``ew``) on the embedded store from its trigram index
(``scimd.store.fts``, issue 3: a ``co`` search must not read every value).

Each test pins either *how* a filter is answered (its query plan, or the SQLite VM steps it
takes: no timings) or *what* it answers, compared with the reference evaluator
(``scimd.query.evaluate.matches``) over the stored resources. The index itself is checked
against ``attr_values`` term by term (``fts5vocab``) after writes, upgrades and reindexes.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import Query
from scimd.patch import parse_patch_request
from scimd.query.evaluate import matches
from scimd.query.parse import parse_attr_path, parse_filter
from scimd.store import fts
from scimd.store.sqlite import SCHEMA_VERSION, SQLiteBackend
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

PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    async for backend in started(tmp_path / "s.db"):
        yield backend


# --------------------------------------------------------------------------- helpers


async def plan(store: SQLiteBackend, text: str, rtype: Any = None) -> list[str]:
    """The query plan of the WHERE clause ``text`` compiles to."""
    rt = rtype if rtype is not None else user_type()

    def explain() -> list[str]:
        conn = store._conn()
        where, _, params = store.compile_where(conn, "acme", rt, parse_filter(text, rt))
        sql = f"EXPLAIN QUERY PLAN SELECT r.id FROM resources r WHERE {where}"
        return [str(row[3]) for row in conn.execute(sql, params)]

    return await store._read(explain)


def uses_trigram_index(lines: list[str]) -> bool:
    """The plan reads the trigram index and each candidate value by rowid only."""
    return (
        any("VIRTUAL TABLE" in line for line in lines)
        and any(line == "SEARCH a USING INTEGER PRIMARY KEY (rowid=?)" for line in lines)
        and not any("attr_values_text" in line or line.startswith("SCAN a") for line in lines)
    )


async def found(
    store: SQLiteBackend, text: str, tenant: str = "acme", rtype: Any = None
) -> set[str]:
    rt = rtype if rtype is not None else user_type()
    page = await store.query(ctx(tenant), rt, Query(filter=parse_filter(text, rt), count=1000))
    assert page.total_results == len(page.resources)
    return {r["id"] for r in page.resources}


def expected(stored: list[dict[str, Any]], text: str, rtype: Any = None) -> set[str]:
    flt = parse_filter(text, rtype if rtype is not None else user_type())
    return {r["id"] for r in stored if matches(flt, r)}


def index_terms(path: Path) -> dict[int, Counter[str]]:
    """The trigrams the index holds, by rowid (``fts5vocab`` over the FTS table)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            f"CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, {fts.TABLE}, instance)"
        )
        out: dict[int, Counter[str]] = {}
        for term, doc in conn.execute("SELECT term, doc FROM temp.vocab"):
            out.setdefault(doc, Counter())[term] += 1
        return out
    finally:
        conn.close()


def wanted_terms(path: Path, keys: frozenset[str]) -> dict[int, Counter[str]]:
    """What the index must hold: the trigrams of every non-empty value of an indexed
    attribute in ``attr_values`` (NUL indexed as U+FFFD), by the value's rowid."""
    conn = sqlite3.connect(path)
    try:
        out: dict[int, Counter[str]] = {}
        rows = conn.execute(
            "SELECT a.rowid, p.key, a.v_text FROM attr_values a JOIN attr_paths p"
            " ON p.id = a.path WHERE a.v_text <> ''"
        )
        for rowid, key, v_text in rows:
            if key not in keys:
                continue
            text = v_text.replace("\x00", "\ufffd")
            grams = Counter(text[i : i + 3] for i in range(len(text) - 2))
            if grams:
                out[rowid] = grams
        return out
    finally:
        conn.close()


def assert_index_matches_values(store: SQLiteBackend) -> None:
    assert store.substring is not None
    assert index_terms(store.path) == wanted_terms(store.path, store.substring.keys)


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize(
    "text",
    [
        'userName co "abc"',
        'userName ew "abc"',
        'userName co "ABC"',
        'emails co "example"',  # the parser's emails.value
        'emails.value ew "@example.com"',
        'name.familyName co "jen"',
        'externalId co "X-1"',
        f'{ENTERPRISE_URN}:employeeNumber co "123"',
        'userName co "abc" and title co "xyz"',
    ],
)
async def test_co_and_ew_read_the_trigram_index(store: SQLiteBackend, text: str) -> None:
    body = user(
        "abc",
        title="xyz",
        externalId="X-1",
        name={"familyName": "Jensen"},
        emails=[{"value": "abc@example.com"}],
    )
    body[ENTERPRISE_URN] = {"employeeNumber": "0123"}
    await store.create(ctx(), user_type(), body)
    lines = await plan(store, text)
    assert uses_trigram_index(lines), lines


async def test_group_display_name_co_reads_the_trigram_index(store: SQLiteBackend) -> None:
    await store.create(ctx(), group_type(), group("Engineering"))
    lines = await plan(store, 'displayName co "ineer"', group_type())
    assert uses_trigram_index(lines), lines


@pytest.mark.parametrize(
    ("text", "index_line"),
    [
        # No trigram in the operand: the attribute's values, in the value index.
        ('userName co "ab"', "attr_values_text (tenant=? AND rtype=? AND path=?)"),
        ('userName ew "b"', "attr_values_text (tenant=? AND rtype=? AND path=?)"),
        ('displayName co "ß"', "attr_values_text (tenant=? AND rtype=? AND path=?)"),
        # sw is a range of the ordered value index, tighter than any substring index.
        ('userName sw "abc"', "v_text>? AND v_text<?"),
    ],
)
async def test_short_operands_and_sw_keep_the_value_index(
    store: SQLiteBackend, text: str, index_line: str
) -> None:
    await store.create(ctx(), user_type(), user("abc", displayName="x"))
    lines = await plan(store, text)
    assert not any("VIRTUAL TABLE" in line for line in lines), lines
    assert any(index_line in line for line in lines), lines


@pytest.mark.parametrize(
    ("path", "indexed"),
    [
        ("userName", True),
        ("displayName", True),
        ("emails.value", True),
        ("name.givenName", True),
        ("externalId", True),
        ("profileUrl", True),  # reference
        (f"{ENTERPRISE_URN}:manager.value", True),
        ("active", False),
        ("meta.created", False),  # dateTime
        ("meta.resourceType", False),  # the server's own
        ("meta.version", False),
        ("schemas", False),
    ],
)
def test_which_attributes_are_indexed(path: str, indexed: bool) -> None:
    defn = parse_attr_path(path, user_type()).defn
    assert defn is not None
    assert fts.indexed(defn) is indexed


# --------------------------------------------------------------------------- answers

EDGE_USERS: list[dict[str, Any]] = [
    user("BJensen@Example.com", displayName="Straße", title="abcabcabc", externalId="AbcDef"),
    user("jensen.b", displayName="STRASSE", title='say "quoted" words', externalId="abcdef"),
    user("x", displayName="日本語のテキスト", title="x\x00abcd", nickName="%_%_%"),
    user("emoji", displayName="😀😀😀 party", title="a\\b\\c", nickName="100%_sure"),
    user("plain", emails=[{"value": "Plain@Example.COM"}, {"value": "second@example.org"}]),
]

EDGE_FILTERS = [
    'userName co "JENSEN"',  # caseExact false: folded on both sides
    'userName ew "@EXAMPLE.COM"',
    'userName co "b.j"',
    'displayName co "strass"',  # ß casefolds to ss
    'displayName co "SSE"',
    'displayName ew "aße"',
    'displayName co "テキスト"',
    'displayName ew "語のテキスト"',
    'displayName co "😀😀😀"',
    'displayName co "😀 p"',
    'title co "cab"',  # overlapping occurrences
    'title ew "abc"',
    'title co "\\"quoted\\""',  # quotes are literal, not FTS5 syntax
    'title co "quoted\\" w"',
    'title co "abcd"',  # after a NUL
    'title co "x\\u0000a"',  # an operand with a NUL: the scan
    'title co "\\\\b\\\\"',
    'nickName co "%_%"',  # LIKE metacharacters are plain characters
    'nickName co "0%_"',
    'externalId co "bcD"',  # caseExact: exact
    'externalId co "bcd"',
    'externalId ew "DEF"',
    'emails co "@example.com"',
    'emails.value ew ".org"',
    'not (userName co "jensen")',
    'userName co "jensen" and displayName co "strasse"',
    'userName co "jensen" or title co "abcd"',
    'emails[value co "example"]',  # a value path keeps its own (per element) check
    'userName co "zzz"',
    'userName co "jen"',
]


@pytest.mark.parametrize("text", EDGE_FILTERS)
async def test_answers_equal_the_reference_evaluator(store: SQLiteBackend, text: str) -> None:
    stored = [await store.create(ctx(), user_type(), body) for body in EDGE_USERS]
    assert await found(store, text) == expected(stored, text)


async def test_edge_filters_are_not_vacuous(store: SQLiteBackend) -> None:
    """Most edge filters above select some but not all users (they test something)."""
    stored = [await store.create(ctx(), user_type(), body) for body in EDGE_USERS]
    partial = [t for t in EDGE_FILTERS if 0 < len(expected(stored, t)) < len(stored)]
    assert len(partial) >= len(EDGE_FILTERS) - 4


async def test_tenants_and_types_are_separate(store: SQLiteBackend) -> None:
    a = await store.create(ctx("a"), user_type(), user("shared-name"))
    b = await store.create(ctx("b"), user_type(), user("shared-name"))
    g = await store.create(ctx("a"), group_type(), group("shared-name"))
    assert await found(store, 'userName co "red-na"', "a") == {a["id"]}
    assert await found(store, 'userName co "red-na"', "b") == {b["id"]}
    assert await found(store, 'displayName co "red-na"', "a", group_type()) == {g["id"]}
    assert await found(store, 'displayName co "red-na"', "b", group_type()) == set()


# --------------------------------------------------------------------------- writes


async def test_index_follows_creates_replaces_patches_and_deletes(store: SQLiteBackend) -> None:
    rt = user_type()
    made = [
        await store.create(ctx(), rt, user(f"person{i}", displayName=f"Person Number {i}"))
        for i in range(6)
    ]
    await store.replace(
        ctx(), rt, made[0]["id"], user("renamed0", displayName="Someone Else"), if_match=None
    )
    ops = parse_patch_request(
        rt,
        {
            "schemas": [PATCH_URN],
            "Operations": [
                {"op": "replace", "path": "displayName", "value": "Patched Name"},
                {"op": "add", "path": "title", "value": "Chief Tester"},
            ],
        },
    )
    await store.patch(ctx(), rt, made[1]["id"], ops, if_match=None)
    await store.delete(ctx(), rt, made[2]["id"], if_match=None)
    g = await store.create(ctx(), group_type(), group("Number Group", made[3]["id"]))
    await store.delete(ctx(), group_type(), g["id"], if_match=None)
    assert_index_matches_values(store)
    stored = [await store.get(ctx(), rt, m["id"]) for m in (made[0], made[1], *made[3:])]
    for text in (
        'displayName co "number"',
        'displayName co "else"',
        'displayName co "patched"',
        'title co "tester"',
        'userName co "son2"',
        'userName co "named"',
        'userName ew "son0"',
    ):
        assert await found(store, text) == expected(stored, text), text
    assert await found(store, 'displayName co "number"') == {m["id"] for m in made[3:]}


async def test_a_failed_write_leaves_the_index_as_it_was(store: SQLiteBackend) -> None:
    """A write that is refused (uniqueness) rolls back the index with the values."""
    rt = user_type()
    first = await store.create(ctx(), rt, user("taken", displayName="First One"))
    other = await store.create(ctx(), rt, user("other", displayName="Other One"))
    with pytest.raises(Exception, match="already"):
        await store.replace(
            ctx(), rt, other["id"], user("TAKEN", displayName="Changed"), if_match=None
        )
    assert_index_matches_values(store)
    assert await found(store, 'displayName co "changed"') == set()
    assert await found(store, 'displayName co " one"') == {first["id"], other["id"]}


# --------------------------------------------------------------------------- lifecycle


async def _reopen(path: Path) -> SQLiteBackend:
    backend = make_backend(path)
    await backend.start()
    return backend


@pytest.mark.parametrize("mark_left", [False, True])
async def test_a_layout_3_store_gets_the_index_on_upgrade(tmp_path: Path, mark_left: bool) -> None:
    path = tmp_path / "s.db"
    store = await _reopen(path)
    made = [await store.create(ctx(), user_type(), user(f"legacy{i:02d}")) for i in range(12)]
    await store.aclose()
    # What scimd 3 left: no index, no mark, layout 3 (or a table lost with its mark left).
    conn = sqlite3.connect(path)
    conn.execute(f"DROP TABLE {fts.TABLE}")
    if not mark_left:
        conn.execute("DELETE FROM store_meta WHERE key = 'substring_index'")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    store = await _reopen(path)
    try:
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        conn.close()
        assert_index_matches_values(store)
        assert uses_trigram_index(await plan(store, 'userName co "acy0"'))
        assert await found(store, 'userName co "acy0"') == {m["id"] for m in made[:10]}
    finally:
        await store.aclose()


async def test_without_the_tokenizer_filters_scan_and_the_index_is_rebuilt_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    store = await _reopen(path)
    before = await store.create(ctx(), user_type(), user("before-outage"))
    await store.aclose()
    # An SQLite without FTS5 trigram: the store works (by scanning) and drops the mark,
    # since its writes do not maintain the index.
    monkeypatch.setattr(fts, "available", lambda conn: False)
    store = await _reopen(path)
    try:
        assert store.substring is None
        during = await store.create(ctx(), user_type(), user("during-outage"))
        await store.delete(ctx(), user_type(), before["id"], if_match=None)
        lines = await plan(store, 'userName co "outage"')
        assert not any("VIRTUAL TABLE" in line for line in lines), lines
        assert await found(store, 'userName co "outage"') == {during["id"]}
    finally:
        await store.aclose()
    monkeypatch.undo()
    store = await _reopen(path)
    try:
        assert_index_matches_values(store)
        assert uses_trigram_index(await plan(store, 'userName co "outage"'))
        assert await found(store, 'userName co "outage"') == {during["id"]}
    finally:
        await store.aclose()


async def test_a_schema_change_reindex_rebuilds_the_index(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await _reopen(path)
    made = [await store.create(ctx(), user_type(), user(f"member{i}")) for i in range(5)]
    await store.delete(ctx(), user_type(), made[0]["id"], if_match=None)
    await store.aclose()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE store_meta SET value = 'changed' WHERE key = 'fingerprint'")
    conn.commit()
    conn.close()
    store = await _reopen(path)
    try:
        assert_index_matches_values(store)
        assert await found(store, 'userName co "mber"') == {m["id"] for m in made[1:]}
    finally:
        await store.aclose()


# --------------------------------------------------------------------------- scale


async def test_co_at_20000_users_is_not_a_scan(store: SQLiteBackend) -> None:
    """``userName co`` at 20,000 users: with the index, the SQLite VM runs fewer instructions
    than half the number of users (a scan runs several per stored value) and a tenth of
    what the same query takes without it, with the same answer. Counted by the progress
    handler; the trigram lookups inside FTS5 are bounded by the matches, not the users."""
    n = 20_000
    rt = user_type()
    c = ctx()

    def seed(conn: sqlite3.Connection) -> None:
        for i in range(n):
            store._create_tx(conn, c, rt, user(f"u{i:07d}@example.com"))

    await store._write(store._tx, seed)
    conn = store._connect(readonly=True)
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(tick, 1)
    index = store.substring
    assert index is not None

    def run(text: str, with_index: bool) -> tuple[int, list[str]]:
        nonlocal steps
        store.substring = index if with_index else None
        store._local.conn = conn
        try:
            steps = 0
            page = store._query_sync(c, rt, Query(filter=parse_filter(text, rt), count=10))
            return steps, [r["userName"] for r in page.resources]
        finally:
            store.substring = index
            store._local.conn = None

    try:
        for text, hits in (
            ('userName co "0012345"', 1),
            ('userName co "U00123"', 10),
            ('userName ew "345@example.com"', 10),
        ):
            fast, got = await store._read(run, text, True)
            slow, scanned = await store._read(run, text, False)
            assert sorted(got) == sorted(scanned) and len(got) == hits, text
            assert slow > n, (text, slow)
            assert fast < n / 2, (text, fast)
            assert fast * 10 < slow, (text, fast, slow)
    finally:
        conn.close()
