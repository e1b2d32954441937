"""Property test: ``co``/``sw``/``ew`` on the embedded store equal the reference evaluator
for short operands (the value index) and long ones (the trigram index, ``scimd.store.fts``).

The shared query property suite (``tests/test_store_property.py``) draws its strings from a
few words of at most three characters; here values are longer random strings over an
alphabet chosen for the trigram index's edge cases: letters that differ by case and by
Unicode case folding (``ß``/``ss``, Kelvin sign), FTS5 and LIKE syntax (``"``, ``*``, ``%``,
``_``), multi-byte characters, NUL. Operands are random strings or pieces of the stored
values with their case changed, combined with ``and``/``or``/``not``; the users are written,
some rewritten, and every filter's answer must be exactly the evaluator's.
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
from scimd.query.parse import parse_filter
from scimd.store.sqlite import SQLiteBackend
from tests._store_helpers import ctx, started, user, user_type

ALPHABET = 'aAbBsSß\u212a k"*%_.@é日😀\x00'
TEXT_ATTRS = ("displayName", "title", "externalId", "name.familyName", "emails.value")
OPS = ("co", "co", "sw", "ew", "ew")

texts = st.text(ALPHABET, max_size=10)


@st.composite
def users(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        body = user(f"{draw(texts)}#{i}")  # unique after folding
        for attr in ("displayName", "title", "externalId"):
            if draw(st.booleans()):
                body[attr] = draw(texts)
        if draw(st.booleans()):
            body["name"] = {"familyName": draw(texts)}
        emails = draw(st.lists(texts, max_size=2))
        if emails:
            body["emails"] = [{"value": v} for v in emails]
        out.append(body)
    return out


def _values(bodies: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for body in bodies:
        found.append(body["userName"])
        found += [body[a] for a in ("displayName", "title", "externalId") if a in body]
        found += [e["value"] for e in body.get("emails", [])]
        if "name" in body:
            found.append(body["name"]["familyName"])
    return [v for v in found if v]


@st.composite
def operand(draw: st.DrawFn, values: list[str]) -> str:
    from_a_value = draw(st.booleans())
    if values and from_a_value:
        value = draw(st.sampled_from(values))
        start = draw(st.integers(0, len(value)))
        end = draw(st.integers(start, len(value)))
        piece = value[start:end]
        return draw(st.sampled_from([piece, piece.upper(), piece.lower(), piece.swapcase()]))
    return draw(texts)


@st.composite
def filters(draw: st.DrawFn, values: list[str], depth: int = 0) -> str:
    kind = draw(st.integers(0, 5 if depth < 2 else 0))
    if kind <= 3:
        attr = draw(st.sampled_from(("userName", *TEXT_ATTRS)))
        return f"{attr} {draw(st.sampled_from(OPS))} {json.dumps(draw(operand(values)))}"
    if kind == 4:
        return f"not ({draw(filters(values, depth + 1))})"
    left = draw(filters(values, depth + 1))
    right = draw(filters(values, depth + 1))
    return f"({left}) {draw(st.sampled_from(['and', 'or']))} ({right})"


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    bodies = draw(users())
    rewrites = [
        dict(body, displayName=draw(texts), title=draw(texts))
        for body in bodies
        if draw(st.booleans())
    ]
    values = _values(bodies + rewrites)
    return bodies, rewrites, draw(st.lists(filters(values), min_size=1, max_size=5))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    async for backend in started(tmp_path / "s.db"):
        yield backend


async def test_substring_filters_equal_the_reference_evaluator(store: SQLiteBackend) -> None:
    rt = user_type()
    loop = asyncio.get_running_loop()
    tenants = itertools.count()
    long_operands = 0

    async def check(
        bodies: list[dict[str, Any]], rewrites: list[dict[str, Any]], texts_: list[str]
    ) -> None:
        nonlocal long_operands
        c = ctx(f"t{next(tenants)}")
        made = {b["userName"]: await store.create(c, rt, b) for b in bodies}
        for body in rewrites:
            await store.replace(c, rt, made[body["userName"]]["id"], body, if_match=None)
        stored = [await store.get(c, rt, r["id"]) for r in made.values()]
        for text in texts_:
            flt = parse_filter(text, rt)
            page = await store.query(c, rt, Query(filter=flt, count=1000))
            want = {r["id"] for r in stored if matches(flt, r)}
            assert {r["id"] for r in page.resources} == want, (text, stored)
            assert page.total_results == len(want), text
            long_operands += sum(len(v.casefold()) >= 3 for v in _operands(text))

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=cases())
    def example(case: tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]) -> None:
        # Hypothesis runs in a worker thread; the store stays on the test's loop.
        asyncio.run_coroutine_threadsafe(check(*case), loop).result()

    await asyncio.to_thread(example)
    assert long_operands > 50, "too few operands long enough for the trigram index"


def _operands(text: str) -> list[str]:
    """The JSON string operands of a generated filter text."""
    out: list[str] = []
    decoder = json.JSONDecoder()
    i = text.find('"')
    while i != -1:
        value, end = decoder.raw_decode(text, i)
        out.append(value)
        i = text.find('"', end)
    return out
