"""The query property suite: a backend's query results are the reference semantics.

For random Users (random SCIM values of every attribute type, including the contract
extension, ``scimd.testing.extension``) and random filters (every operator, ``and``/``or``/
``not``, value paths, ``pr``, ``eq null``), the resources a backend's ``query`` returns are
exactly those the reference evaluator ``scimd.query.evaluate.matches`` selects, with the
exact ``total_results``, in the order of ``scimd.query.sort.sort_key``, and a cursor walk
in small pages visits them in that order once each. Hypothesis shrinks any disagreement to
a minimal example (the filter text and the stored resources are in the failure message).

It is capability-aware, like the contract suite. Filters are generated from what the
backend's ``Capabilities`` claim (operators in ``filter_ops``, logical operators in
``logic``, value paths if ``value_path``, attributes in ``filterable``), and the backend
must evaluate those exactly. When the backend declares a limitation, some filters also
combine a claimed part with an unclaimed one; they are split by the planner
(``scimd.query.planner.plan``) as the service splits them: the backend gets the pushed
part, which it must evaluate exactly, and the residual is applied in memory, which must
give the reference result for the whole filter. Sorting is checked only when ``sort`` is
claimed, the cursor walk only when ``cursor`` is, and results are collected by index
paging or, without ``index_paging``, by a cursor walk. Each example runs in a new tenant
(or, without ``multi_tenant``, deletes what it created).

Subclass it next to your ``BackendContract`` subclass with the same fixtures::

    class TestMyBackendQueryProperties(QueryPropertyContract):
        property_max_examples = 100

        @pytest.fixture
        def backend_factory(self) -> Callable[[BackendEnv], Backend]:
            return MyBackendFactory()

Needs ``hypothesis`` (``pip install "scimd[dev]"``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimd.backend import ALL_FILTER_OPS, Backend, Capabilities, Keyset, OpContext, Query, SortSpec
from scimd.query.ast import Filter
from scimd.query.evaluate import matches
from scimd.query.parse import parse_attr_path, parse_filter
from scimd.query.planner import filterable_key, plan
from scimd.query.sort import sort_key
from scimd.schema.model import ResourceType
from scimd.testing.contract import ContractBase
from scimd.testing.extension import CONTRACT_EXTENSION_URN
from scimd.testing.samples import user

__all__ = ["QueryPropertyContract", "filter_texts", "user_bodies"]

_EXT = CONTRACT_EXTENSION_URN

#: Strings that differ only in case, by Unicode case folding (ß/ss), by LIKE and regex
#: metacharacters, and the empty string.
WORDS = ["", "a", "A", "ab", "aB", "b", "ba", "ß", "ss", "SS", "é", "a_b", "a%b", "Z", "a\\b"]
DATES = [
    "2024-05-01T10:00:00Z",
    "2024-05-01T12:00:00+02:00",  # the same instant as the first, written differently
    "2024-05-01T10:00:00.5Z",
    "2024-05-01T09:59:59Z",
    "2023-12-31T23:00:00-01:00",
]
STRING_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
ORDER_OPS = ("eq", "ne", "gt", "ge", "lt", "le")
BOOL_OPS = ("eq", "ne")

words = st.sampled_from(WORDS)
ints = st.integers(-3, 3)
decimals = st.sampled_from([-1, 0, 0.5, 1, 1.5, 2.25])
dates = st.sampled_from(DATES)
#: Dense values: a filter correlating two sub-attributes of one element then differs from
#: one matching them across elements.
small_words = st.sampled_from(["a", "A", "b"])

_Table = list[tuple[str, st.SearchStrategy[Any], tuple[str, ...]]]

#: (attribute path, value strategy, operators): every attribute the generated Users have.
TOP: _Table = [
    ("userName", st.sampled_from(["S0", "s0", "S1", "S", "s", "0"]), STRING_OPS),
    ("displayName", words, STRING_OPS),
    ("title", words, STRING_OPS),
    ("active", st.booleans(), BOOL_OPS),
    ("emails.value", words, STRING_OPS),
    ("emails.type", small_words, STRING_OPS),
    ("emails.primary", st.booleans(), BOOL_OPS),
    (f"{_EXT}:score", ints, ORDER_OPS),
    (f"{_EXT}:ratio", decimals, ORDER_OPS),
    (f"{_EXT}:since", dates, ORDER_OPS),
    (f"{_EXT}:flag", st.booleans(), BOOL_OPS),
    (f"{_EXT}:code", words, STRING_OPS),  # caseExact
    (f"{_EXT}:tags", words, STRING_OPS),  # multi-valued string
]
#: The sub-attributes of ``emails`` inside a value path ``emails[...]``.
SUB: _Table = [
    ("value", words, STRING_OPS),
    ("type", small_words, STRING_OPS),
    ("primary", st.booleans(), BOOL_OPS),
]
SORT_PATHS: tuple[str, ...] = (
    "userName",
    "displayName",
    "title",
    "active",
    "emails.value",
    f"{_EXT}:score",
    f"{_EXT}:ratio",
    f"{_EXT}:since",
    f"{_EXT}:flag",
    f"{_EXT}:code",
    f"{_EXT}:tags",
    "meta.created",
)

_email = st.one_of(
    st.fixed_dictionaries({}, optional={"value": words, "type": words, "primary": st.booleans()}),
    st.fixed_dictionaries(
        {"value": small_words, "type": small_words}, optional={"primary": st.booleans()}
    ),
)
_extension = st.fixed_dictionaries(
    {},
    optional={
        "score": ints,
        "ratio": decimals,
        "since": dates,
        "flag": st.booleans(),
        "code": words,
        "tags": st.lists(words, min_size=1, max_size=3),
    },
)
_attributes = st.fixed_dictionaries(
    {},
    optional={
        "displayName": words,
        "title": words,
        "active": st.booleans(),
        "emails": st.lists(_email, min_size=1, max_size=3),
        _EXT: _extension,
    },
)


def user_bodies(max_size: int = 8) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of canonical User bodies (userNames ``S0``, ``S1`` ... are unique)."""

    def build(attrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for i, extra in enumerate(attrs):
            extra = {k: v for k, v in extra.items() if v != {}}  # no empty extension object
            out.append(user(f"S{i}", **extra))
        return out

    return st.lists(_attributes, min_size=1, max_size=max_size).map(build)


def _leaves(table: _Table, ops_allowed: Callable[[str], bool]) -> list[st.SearchStrategy[str]]:
    options: list[st.SearchStrategy[str]] = []
    for attr, values, ops in table:
        usable = [op for op in ops if ops_allowed(op)]
        if usable:
            options.append(
                st.tuples(st.just(attr), st.sampled_from(usable), values).map(
                    lambda t: f"{t[0]} {t[1]} {json.dumps(t[2])}"
                )
            )
        if ops_allowed("pr"):
            options.append(st.just(f"{attr} pr"))
        nulls = [f"{attr} {op} null" for op in ("eq", "ne") if ops_allowed(op)]
        if nulls:
            options.append(st.sampled_from(nulls))
    return options


def _logic(
    leaves: st.SearchStrategy[str], words_: frozenset[str], max_leaves: int
) -> st.SearchStrategy[str]:
    binary = sorted(words_ & {"and", "or"})
    if not binary and "not" not in words_:
        return leaves

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        options: list[st.SearchStrategy[str]] = []
        if binary:
            options.append(
                st.tuples(inner, st.sampled_from(binary), inner).map(
                    lambda t: f"({t[0]} {t[1]} {t[2]})"
                )
            )
        if "not" in words_:
            options.append(inner.map(lambda x: f"not ({x})"))
        return st.one_of(options)

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def filter_texts(
    ops_allowed: Callable[[str], bool],
    logic: frozenset[str],
    value_paths: bool,
    table: _Table | None = None,
) -> st.SearchStrategy[str] | None:
    """Filter texts over the generated Users using only the operators ``ops_allowed``
    accepts, the logical operators in ``logic`` and, if ``value_paths``, ``emails[...]``;
    None when nothing can be generated."""
    leaves = _leaves(TOP if table is None else table, ops_allowed)
    kinds: list[st.SearchStrategy[str]] = []
    if leaves:
        kinds.append(st.one_of(leaves))
    sub = _leaves(SUB, ops_allowed)
    if value_paths and sub:
        inner = _logic(st.one_of(sub), logic, 4)
        kinds.append(inner.map(lambda x: f"emails[{x}]"))
        if ops_allowed("eq") and logic & {"and", "or"}:
            correlated = st.tuples(
                small_words,
                small_words,
                st.sampled_from(sorted(logic & {"and", "or"})),
                st.sampled_from(["eq", "ne"] if ops_allowed("ne") else ["eq"]),
            ).map(lambda t: f'emails[type eq "{t[0]}" {t[2]} value {t[3]} "{t[1]}"]')
            kinds += [correlated, correlated]  # explicit weight: nested one_ofs flatten
    if not kinds:
        return None
    return _logic(st.integers(0, len(kinds) - 1).flatmap(lambda i: kinds[i]), logic, 6)


def _parenthesised(text: str) -> str:
    return f"({text})"


def _declares_everything(caps: Capabilities) -> bool:
    return (
        caps.filter_ops >= ALL_FILTER_OPS
        and caps.logic >= {"and", "or", "not"}
        and caps.value_path
        and caps.filterable is None
    )


@dataclass
class _Tally:
    """How the generated filters were planned, for the suite's own sanity check."""

    pushed_only: int = 0
    with_residual: int = 0
    tenants: itertools.count[int] = field(default_factory=itertools.count)


class QueryPropertyContract(ContractBase):
    """The backend's filter, sort and paging agree with the reference semantics on random
    data. Override ``backend_factory`` (and ``backend_options``), or ``backend``, as for
    ``BackendContract``; set ``property_max_examples`` to trade time for depth."""

    #: Hypothesis examples (each: up to 8 Users, up to 4 filters, one sort, one walk).
    property_max_examples: ClassVar[int] = 200

    def filter_strategy(self, caps: Capabilities, rtype: ResourceType) -> st.SearchStrategy[str]:
        """The filters the test draws: claimed ones and, when the backend declares a
        limitation, ``and``/``or`` combinations with an unclaimed part the planner splits."""

        def is_filterable(attr: str) -> bool:
            key = filterable_key(parse_attr_path(attr, rtype))
            return caps.filterable is None or key in caps.filterable

        claimed_table = [row for row in TOP if is_filterable(row[0])]
        value_paths = caps.value_path and all(is_filterable(f"emails.{r[0]}") for r in SUB)
        claimed = filter_texts(
            lambda op: op in caps.filter_ops, caps.logic, value_paths, claimed_table
        )
        if _declares_everything(caps):
            assert claimed is not None
            return claimed
        anything = filter_texts(lambda op: True, frozenset(), True)
        assert anything is not None
        # Unclaimed: an unclaimed attribute, operator, value path or logical operator.
        unclaimed = _leaves([row for row in TOP if not is_filterable(row[0])], lambda op: True)
        unclaimed += _leaves(claimed_table, lambda op: op not in caps.filter_ops)
        if not caps.value_path:
            unclaimed.append(anything.filter(lambda text: "[" in text))
        for word in sorted({"and", "or"} - caps.logic):
            unclaimed.append(
                st.tuples(anything, st.just(word), anything).map(" ".join).map(_parenthesised)
            )
        if "not" not in caps.logic:
            unclaimed.append(anything.map(lambda text: f"not ({text})"))
        odd = st.one_of(unclaimed)
        mixed = st.tuples(
            claimed if claimed is not None else odd, st.sampled_from(["and", "or"]), odd
        ).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})")
        if claimed is None:
            return st.one_of(odd, mixed)
        return st.one_of(claimed, claimed, mixed)

    async def test_query_agrees_with_reference_semantics(
        self, backend: Backend, users: ResourceType
    ) -> None:
        caps = backend.capabilities
        loop = asyncio.get_running_loop()
        tally = _Tally()
        sorts = st.tuples(st.sampled_from(SORT_PATHS), st.booleans())

        @settings(
            max_examples=self.property_max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(
            bodies=user_bodies(),
            texts=st.lists(self.filter_strategy(caps, users), min_size=1, max_size=4),
            sort=sorts,
        )
        def example(bodies: list[dict[str, Any]], texts: list[str], sort: tuple[str, bool]) -> None:
            # Hypothesis runs in a worker thread; the backend stays on the test's loop.
            check = self._check(backend, users, tally, bodies, texts, sort)
            asyncio.run_coroutine_threadsafe(check, loop).result()

        await asyncio.to_thread(example)
        assert tally.pushed_only > 0, "no generated filter was pushed down whole"
        if not _declares_everything(caps):
            assert tally.with_residual > 0, "no generated filter exercised residual planning"

    async def _check(
        self,
        backend: Backend,
        rtype: ResourceType,
        tally: _Tally,
        bodies: list[dict[str, Any]],
        texts: list[str],
        sort: tuple[str, bool],
    ) -> None:
        caps = backend.capabilities
        tenant = f"prop{next(tally.tenants)}" if caps.multi_tenant else "prop"
        ctx = OpContext(tenant=tenant, principal="system", request_id="property")
        stored: list[dict[str, Any]] = []
        try:
            for body in bodies:
                made = await backend.create(ctx, rtype, body)
                stored.append(await backend.get(ctx, rtype, made["id"]))
            for text in texts:
                await self._check_filter(backend, ctx, rtype, tally, stored, text)
            if caps.sort:
                spec = SortSpec(parse_attr_path(sort[0], rtype), sort[1])
                got = await self._collect(backend, ctx, rtype, None, spec)
                want = [r["id"] for r in sorted(stored, key=lambda r: sort_key(r, spec))]
                assert [r["id"] for r in got] == want, ("sortBy", sort, stored)
            if caps.cursor:
                await self._check_walk(backend, ctx, rtype, stored, texts[0], sort)
        finally:
            if not caps.multi_tenant:
                for resource in stored:
                    await backend.delete(ctx, rtype, resource["id"], if_match=None)

    async def _check_filter(
        self,
        backend: Backend,
        ctx: OpContext,
        rtype: ResourceType,
        tally: _Tally,
        stored: list[dict[str, Any]],
        text: str,
    ) -> None:
        flt = parse_filter(text, rtype)
        split = plan(flt, backend.capabilities)
        if split.residual is None:
            tally.pushed_only += 1
        else:
            tally.with_residual += 1
        candidates = await self._collect(backend, ctx, rtype, split.pushed, None)
        got = {r["id"] for r in candidates}
        pushed = split.pushed
        want_pushed = {r["id"] for r in stored if pushed is None or matches(pushed, r)}
        assert got == want_pushed, ("pushed filter", str(pushed), "of", text, stored)
        residual = split.residual
        final = {r["id"] for r in candidates if residual is None or matches(residual, r)}
        assert final == {r["id"] for r in stored if matches(flt, r)}, ("filter", text, stored)

    async def _check_walk(
        self,
        backend: Backend,
        ctx: OpContext,
        rtype: ResourceType,
        stored: list[dict[str, Any]],
        text: str,
        sort: tuple[str, bool],
    ) -> None:
        """A cursor walk in pages of 3 visits the pushed filter's matches once each, in
        order (sorted when the backend sorts, else in its own stable order)."""
        caps = backend.capabilities
        pushed = plan(parse_filter(text, rtype), caps).pushed
        spec = SortSpec(parse_attr_path(sort[0], rtype), sort[1]) if caps.sort else None
        walked = [r["id"] for r in await self._walk(backend, ctx, rtype, pushed, spec, 3)]
        matching = [r for r in stored if pushed is None or matches(pushed, r)]
        if spec is not None:
            want = [r["id"] for r in sorted(matching, key=lambda r: sort_key(r, spec))]
            assert walked == want, ("cursor walk", str(pushed), sort, stored)
        else:
            assert sorted(walked) == sorted(r["id"] for r in matching), ("cursor walk", stored)

    @staticmethod
    async def _walk(
        backend: Backend,
        ctx: OpContext,
        rtype: ResourceType,
        flt: Filter | None,
        spec: SortSpec | None,
        count: int,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        keyset: Keyset | None = None
        for _ in range(1000):  # bounded: the suite never stores that many pages
            q = Query(filter=flt, sort=spec, paging="cursor", keyset=keyset, count=count)
            page = await backend.query(ctx, rtype, q)
            out.extend(page.resources)
            if page.next_keyset is None:
                return out
            keyset = page.next_keyset
        raise AssertionError("the cursor walk did not end")

    async def _collect(
        self,
        backend: Backend,
        ctx: OpContext,
        rtype: ResourceType,
        flt: Filter | None,
        spec: SortSpec | None,
    ) -> list[dict[str, Any]]:
        """Every match: one index page (with the exact total), or a cursor walk."""
        caps = backend.capabilities
        if caps.index_paging:
            count = min(caps.max_results, 1000)
            page = await backend.query(ctx, rtype, Query(filter=flt, sort=spec, count=count))
            assert page.total_results == len(page.resources), "total_results is not exact"
            return page.resources
        return await self._walk(backend, ctx, rtype, flt, spec, min(caps.max_results, 1000))
