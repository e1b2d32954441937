"""Planner: what is pushed to a backend and what stays residual."""

from __future__ import annotations

from scimd.backend import Capabilities
from scimd.query.ast import And, Comparison, Not
from scimd.query.evaluate import matches
from scimd.query.planner import explain, filterable_key, plan, supports
from tests._query_helpers import ENTERPRISE, f, full_user

FULL = Capabilities()
EQ_ONLY = Capabilities(filter_ops=frozenset({"eq"}), logic=frozenset({"and"}), value_path=False)


def test_no_filter() -> None:
    p = plan(None, FULL)
    assert p.pushed is None and p.residual is None and not p.needs_bounded_candidates


def test_full_capabilities_push_everything() -> None:
    tree = f('userName eq "x" or (emails[type eq "work"] and not (title pr))')
    p = plan(tree, FULL)
    assert p.pushed == tree and p.residual is None and p.reasons == ()


def test_unsupported_conjunct_becomes_residual() -> None:
    tree = f('userName eq "bjensen" and title co "Guide" and externalId eq "1"')
    p = plan(tree, EQ_ONLY)
    assert p.pushed == And(f('userName eq "bjensen"'), f('externalId eq "1"'))
    assert p.residual == f('title co "Guide"')
    assert p.needs_bounded_candidates and not p.unbounded
    assert p.reasons == ("the operator 'co'",)


def test_or_with_anything_unsupported_is_residual_as_a_whole() -> None:
    tree = f('userName eq "a" or title co "b"')
    p = plan(tree, EQ_ONLY)
    assert p.pushed is None and p.residual == tree and p.unbounded
    assert "the logical operator 'or'" in p.reasons
    assert "the operator 'co'" in p.reasons


def test_value_path_needs_capability() -> None:
    tree = f('userName eq "a" and emails[type eq "work"]')
    p = plan(tree, EQ_ONLY)
    assert p.pushed == f('userName eq "a"')
    assert p.residual == f('emails[type eq "work"]')
    assert any("emails[...]" in r for r in p.reasons)


def test_filterable_attributes() -> None:
    caps = Capabilities(
        filterable=frozenset({"username", "emails.value", f"{ENTERPRISE.lower()}:manager.value"})
    )
    assert filterable_key(f('manager eq "x"').path) == f"{ENTERPRISE.lower()}:manager.value"  # type: ignore[union-attr]
    tree = f('userName eq "a" and manager eq "m" and displayName eq "d" and emails co "x"')
    p = plan(tree, caps)
    assert p.pushed == And(And(f('userName eq "a"'), f('manager eq "m"')), f('emails co "x"'))
    assert p.residual == f('displayName eq "d"')
    assert p.reasons == ("filtering on 'displayName'",)


def test_ne_is_rewritten_for_backends_without_ne() -> None:
    caps = Capabilities(filter_ops=frozenset({"eq"}), logic=frozenset({"and", "not"}))
    tree = f('userType ne "Employee"')
    assert supports(tree, caps)
    p = plan(tree, caps)
    assert isinstance(tree, Comparison)
    assert p.pushed == Not(Comparison(tree.path, "eq", "Employee")) and p.residual is None
    # the rewrite is the same semantics
    for user in (full_user(), {**full_user(), "userType": "Intern"}, {"id": "x"}):
        assert matches(tree, user) == matches(p.pushed, user)


def test_without_and_only_one_conjunct_is_pushed() -> None:
    caps = Capabilities(logic=frozenset())
    tree = f('userName eq "a" and title pr')
    p = plan(tree, caps)
    assert p.pushed == f('userName eq "a"') and p.residual == f("title pr")


def test_pushed_and_residual_together_equal_the_filter() -> None:
    tree = f('userType eq "Employee" and title co "Guide" and not (emails[type eq "home"])')
    p = plan(tree, EQ_ONLY)
    user = full_user()
    both = (p.pushed is None or matches(p.pushed, user)) and (
        p.residual is None or matches(p.residual, user)
    )
    assert both == matches(tree, user)


def test_explain() -> None:
    text = explain(f('userName eq "a" or title co "b"'), EQ_ONLY)
    assert text.startswith("The storage backend cannot evaluate")
    assert "'or'" in text and "'co'" in text
    assert "can evaluate this filter" in explain(f('userName eq "a"'), FULL)
