"""Split a filter between the backend (pushed down) and the core (residual, in memory).

The filter's top-level ``and`` conjuncts are considered one by one: a conjunct the
backend fully supports (every operator in ``caps.filter_ops``, every logical operator in
``caps.logic``, valuePath only if ``caps.value_path``, every attribute in
``caps.filterable`` when that is not ``None``) is pushed; any other conjunct becomes
residual *as a whole* (an ``or``/``not`` containing anything unsupported cannot be split
without changing its meaning).

The backend returns the candidates matching ``pushed``; the core keeps those that also
match ``residual`` (``scimd.query.evaluate``). When there is a residual, the candidates
set must be bounded (the service scans at most ``residual_limit`` candidates, otherwise it
answers 400 invalidFilter with ``explain(...)`` as the detail) and index paging / counts
are computed by the core over the filtered candidates.

One rewrite keeps more work in the backend: ``a ne v`` is ``not (a eq v)`` by definition
(see ``scimd.query.evaluate``), so a backend without ``ne`` but with ``not`` and ``eq``
gets the rewritten form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scimd.backend import ALL_FILTER_OPS, Capabilities
from scimd.query.ast import And, AttrPath, Comparison, Filter, Not, Or, Present, ValuePath

__all__ = ["Plan", "explain", "filterable_key", "plan", "supports"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the backend evaluates (``pushed``) and what the core evaluates in memory over
    the backend's candidates (``residual``). Both ``None``: no filter."""

    pushed: Filter | None
    residual: Filter | None
    reasons: tuple[str, ...] = field(default=())
    """Plain-words reasons the residual could not be pushed (empty without residual)."""

    @property
    def needs_bounded_candidates(self) -> bool:
        """True when the core must filter in memory: the service must bound the number of
        candidates it reads (or refuse with 400 invalidFilter, detail ``explain``)."""
        return self.residual is not None

    @property
    def unbounded(self) -> bool:
        """True when nothing narrows the candidates: the residual is the whole filter."""
        return self.residual is not None and self.pushed is None


def filterable_key(path: AttrPath) -> str:
    """The ``Capabilities.filterable`` key of a path: lower-cased dotted path
    (``username``, ``emails.value``, ``meta.created``), URN-prefixed for extension
    attributes (``urn:...:enterprise:2.0:user:manager.value``)."""
    dotted = f"{path.attr}.{path.sub}" if path.sub else path.attr
    if path.extension and path.uri:
        dotted = f"{path.uri}:{dotted}"
    return dotted.lower()


def _unsupported(f: Filter, caps: Capabilities, out: list[str]) -> None:
    """Append a reason for every part of ``f`` the backend cannot evaluate."""
    if isinstance(f, Comparison | Present):
        op = f.op if isinstance(f, Comparison) else "pr"
        if op not in caps.filter_ops and not (
            op == "ne" and {"eq"} <= caps.filter_ops and "not" in caps.logic
        ):
            out.append(f"the operator '{op}'")
        if caps.filterable is not None and filterable_key(f.path) not in caps.filterable:
            out.append(f"filtering on '{f.path.dotted()}'")
        return
    if isinstance(f, And | Or):
        word = "and" if isinstance(f, And) else "or"
        if word not in caps.logic:
            out.append(f"the logical operator '{word}'")
        _unsupported(f.left, caps, out)
        _unsupported(f.right, caps, out)
        return
    if isinstance(f, Not):
        if "not" not in caps.logic:
            out.append("the logical operator 'not'")
        _unsupported(f.expr, caps, out)
        return
    if isinstance(f, ValuePath):
        if not caps.value_path:
            out.append(f"complex attribute filters ('{f.path.attr}[...]')")
        _unsupported(f.filter, caps, out)
        return
    raise TypeError(f"not a filter node: {f!r}")  # pragma: no cover


def supports(f: Filter, caps: Capabilities) -> bool:
    """Can the backend evaluate ``f`` entirely (after the ``ne`` rewrite)?"""
    out: list[str] = []
    _unsupported(f, caps, out)
    return not out


def _rewrite_ne(f: Filter, caps: Capabilities) -> Filter:
    if "ne" in caps.filter_ops:
        return f
    if isinstance(f, Comparison):
        return Not(Comparison(f.path, "eq", f.value)) if f.op == "ne" else f
    if isinstance(f, And):
        return And(_rewrite_ne(f.left, caps), _rewrite_ne(f.right, caps))
    if isinstance(f, Or):
        return Or(_rewrite_ne(f.left, caps), _rewrite_ne(f.right, caps))
    if isinstance(f, Not):
        return Not(_rewrite_ne(f.expr, caps))
    if isinstance(f, ValuePath):
        return ValuePath(f.path, _rewrite_ne(f.filter, caps))
    return f


def _conjuncts(f: Filter) -> list[Filter]:
    out: list[Filter] = []
    stack = [f]
    while stack:
        node = stack.pop()
        if isinstance(node, And):
            stack.append(node.right)
            stack.append(node.left)
        else:
            out.append(node)
    return out


def _join(items: list[Filter]) -> Filter | None:
    if not items:
        return None
    node = items[0]
    for it in items[1:]:
        node = And(node, it)
    return node


_ALL_LOGIC = frozenset({"and", "or", "not"})


def _supports_everything(caps: Capabilities) -> bool:
    """Every operator, logical operator, valuePath and attribute: nothing is residual
    and ``ne`` needs no rewrite."""
    return (
        caps.filterable is None
        and caps.value_path
        and caps.filter_ops >= ALL_FILTER_OPS
        and caps.logic >= _ALL_LOGIC
    )


def plan(f: Filter | None, caps: Capabilities) -> Plan:
    """Split ``f`` into the part ``caps`` allows the backend to evaluate and the rest.

    A top-level ``and`` needs ``"and"`` in ``caps.logic`` to push more than one conjunct;
    without it only the first supported conjunct is pushed.
    """
    if f is None:
        return Plan(None, None)
    if _supports_everything(caps):
        # The embedded and PostgreSQL stores: the whole filter is pushed as it is (the
        # per-request hot path of every filtered list, so no walk of the tree).
        return Plan(f, None)
    pushed: list[Filter] = []
    residual: list[Filter] = []
    reasons: list[str] = []
    for c in _conjuncts(f):
        why: list[str] = []
        _unsupported(c, caps, why)
        if why or (pushed and "and" not in caps.logic):
            residual.append(c)
            if not why:
                why = ["the logical operator 'and'"]
            reasons.extend(w for w in why if w not in reasons)
        else:
            pushed.append(_rewrite_ne(c, caps))
    return Plan(_join(pushed), _join(residual), tuple(reasons))


def explain(f: Filter | None, caps: Capabilities) -> str:
    """A plain-words sentence saying what the backend cannot evaluate in ``f`` (the
    detail of the 400 invalidFilter when the residual would be unbounded)."""
    p = plan(f, caps)
    if not p.reasons:
        return "The storage backend can evaluate this filter."
    return (
        "The storage backend cannot evaluate "
        + "; ".join(p.reasons)
        + ". Add a condition it can evaluate (joined with 'and') to narrow the search."
    )
