"""Property tests: logic and precedence against an independent oracle, and the
AST -> text -> AST round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimd.query.ast import And, Filter, Not, Or
from scimd.query.evaluate import matches
from scimd.query.parse import format_filter, parse_filter
from tests._query_helpers import ENTERPRISE, user_type

# --------------------------------------------------------------- logic oracle
# Boolean variables are string attributes that are present (true) or absent (false) on a
# generated resource. Trees are rendered with the FEWEST parentheses the RFC's precedence
# allows (not > and > or), so a parser with the wrong precedence gives wrong answers.

VARS = ("title", "nickName", "userType", "locale", "timezone", "displayName")


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Neg:
    expr: Any


@dataclass(frozen=True)
class Bin:
    op: str  # "and" | "or"
    left: Any
    right: Any


def oracle(t: Any, env: dict[str, bool]) -> bool:
    if isinstance(t, Var):
        return env[t.name]
    if isinstance(t, Neg):
        return not oracle(t.expr, env)
    if t.op == "and":
        return oracle(t.left, env) and oracle(t.right, env)
    return oracle(t.left, env) or oracle(t.right, env)


def render(t: Any) -> str:
    if isinstance(t, Var):
        # alternate leaf spellings: presence test or an eq comparison
        return f"{t.name} pr" if len(t.name) % 2 else f'{t.name} eq "v"'
    if isinstance(t, Neg):
        return f"not ({render(t.expr)})"
    left, right = render(t.left), render(t.right)
    if t.op == "and":
        # an "or" child of "and" needs parentheses; an "and" on the right too (the
        # chain would re-associate, which is harmless, but keep the tree exact).
        if isinstance(t.left, Bin) and t.left.op == "or":
            left = f"({left})"
        if isinstance(t.right, Bin):
            right = f"({right})"
    else:
        if isinstance(t.right, Bin) and t.right.op == "or":
            right = f"({right})"
    return f"{left} {t.op} {right}"


trees = st.recursive(
    st.sampled_from(VARS).map(Var),
    lambda kids: st.one_of(
        kids.map(Neg),
        st.tuples(st.sampled_from(["and", "or"]), kids, kids).map(lambda x: Bin(*x)),
    ),
    max_leaves=12,
)
envs = st.fixed_dictionaries({v: st.booleans() for v in VARS})


@settings(max_examples=400, deadline=None)
@given(trees, envs)
def test_evaluator_agrees_with_oracle(tree: Any, env: dict[str, bool]) -> None:
    resource = {"id": "1", **{k: "v" for k, on in env.items() if on}}
    text = render(tree)
    assert matches(parse_filter(text, user_type()), resource) == oracle(tree, env), text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(VARS), st.sampled_from(["and", "or"])), min_size=1, max_size=30
    ),
    st.sampled_from(VARS),
    envs,
)
def test_flat_chains_follow_rfc_precedence(
    chain: list[tuple[str, str]], last: str, env: dict[str, bool]
) -> None:
    # "a op b op c ..." without parentheses: evaluate as a disjunction of conjunctions.
    names = [n for n, _ in chain] + [last]
    ops = [o for _, o in chain]
    text = " ".join(
        part
        for i, n in enumerate(names)
        for part in ([f"{n} pr"] + ([ops[i]] if i < len(ops) else []))
    )
    groups: list[list[str]] = [[names[0]]]
    for op, n in zip(ops, names[1:], strict=True):
        if op == "and":
            groups[-1].append(n)
        else:
            groups.append([n])
    expected = any(all(env[n] for n in g) for g in groups)
    resource = {k: "v" for k, on in env.items() if on}
    assert matches(parse_filter(text, user_type()), resource) == expected, text


# --------------------------------------------------------------- round trip
# Random resolved ASTs (built by parsing random leaves) -> format_filter -> parse -> equal.

text_values = st.text(max_size=20)


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


leaf_texts = st.one_of(
    st.builds(
        lambda op, v: f"userName {op} {_q(v)}",
        st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "le"]),
        text_values,
    ),
    st.builds(lambda v: f"name.familyName eq {_q(v)}", text_values),
    st.builds(lambda b: f"active eq {'true' if b else 'false'}", st.booleans()),
    st.builds(lambda v: f"{ENTERPRISE}:employeeNumber sw {_q(v)}", text_values),
    st.builds(lambda v: f"{ENTERPRISE}:manager.value eq {_q(v)}", text_values),
    st.builds(
        lambda op: f'meta.lastModified {op} "2011-05-13T04:42:34Z"',
        st.sampled_from(["eq", "gt", "ge", "lt", "le", "ne"]),
    ),
    st.sampled_from(["title pr", "emails pr", "id pr", "externalId pr", "meta.created pr"]),
    st.builds(
        lambda t, v: f"emails[type eq {_q(t)} and value co {_q(v)}]", text_values, text_values
    ),
    st.builds(lambda v: f"emails[not (primary eq true) or value ew {_q(v)}]", text_values),
    st.builds(lambda v: f"addresses[type eq {_q(v)}].locality pr", text_values),
)


def _ast(text: str) -> Filter:
    return parse_filter(text, user_type())


asts = st.recursive(
    leaf_texts.map(_ast),
    lambda kids: st.one_of(
        kids.map(Not),
        st.builds(And, kids, kids),
        st.builds(Or, kids, kids),
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(asts)
def test_round_trip(tree: Filter) -> None:
    text = format_filter(tree)
    assert parse_filter(text, user_type()) == tree, text


# --------------------------------------------------------------- fuzz: only SCIM errors

pieces = st.sampled_from(
    [
        "userName",
        "emails",
        "name.givenName",
        ".value",
        "meta.created",
        ENTERPRISE + ":",
        "manager",
        " eq ",
        " ne ",
        " co ",
        " gt ",
        " pr",
        " and ",
        " or ",
        "not ",
        "(",
        ")",
        "[",
        "]",
        '"x"',
        '"',
        "\\",
        "true",
        "null",
        "12",
        "-1.5e3",
        " ",
        "type",
        "password",
        '"2011-05-13T04:42:34Z"',
        ":",
        ".",
        "$ref",
        "é",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(pieces, max_size=25).map("".join)))
def test_any_text_parses_or_raises_invalid_filter(text: str) -> None:
    from scimd.errors import InvalidFilter, InvalidPath

    try:
        tree = parse_filter(text, user_type())
    except InvalidFilter:
        pass
    else:
        assert parse_filter(format_filter(tree), user_type()) == tree
    try:
        from scimd.query.parse import parse_path

        parse_path(text, user_type())
    except InvalidPath:
        pass
