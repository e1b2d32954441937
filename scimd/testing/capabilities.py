"""Capability gating: a contract test runs unless the backend declares it cannot.

A contract test that needs a capability is skipped only when the backend's
``Capabilities`` declares that capability absent, and the skip reason names the capability
(``backend capability 'etag' is declared absent``), so ``pytest -ra`` shows exactly what a
backend opted out of. Nothing else ever skips: a backend that declares a capability and
then fails the test fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from scimd.backend import Backend, Capabilities, OpContext, Page, PatchOp, Query
from scimd.query.ast import (
    And,
    AttrPath,
    Comparison,
    Filter,
    Not,
    Or,
    Present,
    ValuePath,
)
from scimd.schema.model import ResourceType

__all__ = [
    "BOOLEAN_CAPABILITIES",
    "DeclaringBackend",
    "capability_absent_reason",
    "filter_paths",
    "needed_capabilities",
    "needs",
    "unsupported_filter_reason",
]

_F = TypeVar("_F", bound=Callable[..., Any])

#: The on/off capabilities a test can require with ``needs``.
BOOLEAN_CAPABILITIES: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(Capabilities) if f.type in ("bool", bool)
)

_NEEDS_ATTR = "__scimd_contract_needs__"


def needs(*names: str) -> Callable[[_F], _F]:
    """Mark a contract test as needing the boolean capabilities ``names``.

    The suite's autouse gate skips the test, naming the capability, when the backend
    declares one of them ``False``.
    """
    unknown = set(names) - BOOLEAN_CAPABILITIES
    if unknown:
        raise ValueError(
            f"unknown capabilities {sorted(unknown)}; known: {sorted(BOOLEAN_CAPABILITIES)}"
        )

    def mark(func: _F) -> _F:
        # vars(), not getattr(): a class must not inherit another class's requirements.
        previous: tuple[str, ...] = vars(func).get(_NEEDS_ATTR, ())
        setattr(func, _NEEDS_ATTR, (*previous, *names))
        return func

    return mark


def needed_capabilities(test_class: type, func: Callable[..., Any]) -> tuple[str, ...]:
    """The capabilities test ``func`` of ``test_class`` needs: those marked with ``needs``
    on the function and on the contract class that defines it."""
    found: tuple[str, ...] = vars(func).get(_NEEDS_ATTR, ())
    for klass in test_class.__mro__:
        if func.__name__ in vars(klass):
            found += vars(klass).get(_NEEDS_ATTR, ())
            break
    return found


def capability_absent_reason(caps: Capabilities, names: tuple[str, ...]) -> str | None:
    """The skip reason if one of ``names`` is declared ``False``, else ``None``."""
    absent = [n for n in names if getattr(caps, n) is False]
    if not absent:
        return None
    listed = ", ".join(repr(n) for n in absent)
    noun = "capability" if len(absent) == 1 else "capabilities"
    verb = "is" if len(absent) == 1 else "are"
    return f"backend {noun} {listed} {verb} declared absent"


def _walk(node: Filter) -> Iterator[Filter]:
    yield node
    if isinstance(node, And | Or):
        yield from _walk(node.left)
        yield from _walk(node.right)
    elif isinstance(node, Not):
        yield from _walk(node.expr)
    elif isinstance(node, ValuePath):
        yield from _walk(node.filter)


def _path_key(path: AttrPath) -> str:
    """The ``Capabilities.filterable`` spelling: lower-cased dotted, URN for extensions."""
    from scimd.query.planner import filterable_key

    return filterable_key(path)


def filter_paths(rtype: ResourceType, node: Filter) -> set[str]:
    """Every attribute path ``node`` filters on, spelled as in ``Capabilities.filterable``."""
    paths: set[str] = set()
    for sub in _walk(node):
        if isinstance(sub, Comparison | Present | ValuePath):
            paths.add(_path_key(sub.path))
    return paths


def unsupported_filter_reason(caps: Capabilities, rtype: ResourceType, node: Filter) -> str | None:
    """Why a backend that declares ``caps`` is not required to evaluate ``node``, or None.

    A filter is required when every operator is in ``filter_ops``, every logical operator in
    ``logic``, ``value_path`` is declared when the filter has a ``[...]`` value path, and every
    attribute path is ``filterable`` (``None`` = all).
    """
    ops: set[str] = set()
    logic: set[str] = set()
    value_path = False
    for sub in _walk(node):
        if isinstance(sub, Comparison):
            ops.add(sub.op)
        elif isinstance(sub, Present):
            ops.add("pr")
        elif isinstance(sub, And):
            logic.add("and")
        elif isinstance(sub, Or):
            logic.add("or")
        elif isinstance(sub, Not):
            logic.add("not")
        elif isinstance(sub, ValuePath):
            value_path = True
    missing_ops = sorted(ops - caps.filter_ops)
    if missing_ops:
        return f"backend capability 'filter_ops' declares {missing_ops} absent"
    missing_logic = sorted(logic - caps.logic)
    if missing_logic:
        return f"backend capability 'logic' declares {missing_logic} absent"
    if value_path and not caps.value_path:
        return "backend capability 'value_path' is declared absent"
    if caps.filterable is not None:
        not_filterable = sorted(filter_paths(rtype, node) - caps.filterable)
        if not_filterable:
            return f"backend capability 'filterable' declares {not_filterable} absent"
    return None


class DeclaringBackend:
    """``inner`` declaring other ``Capabilities`` than its own (``changes`` as for
    ``dataclasses.replace``), every call delegated: run a suite against a backend that
    declares fewer capabilities than it has, to check the capability-aware paths (skips,
    residual planning, cursor-only collection) with a backend known to be right."""

    def __init__(self, inner: Backend, **changes: Any) -> None:
        self.inner = inner
        self.capabilities = dataclasses.replace(inner.capabilities, **changes)

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def create(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.inner.create(ctx, rtype, resource)

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        return await self.inner.get(ctx, rtype, rid)

    async def replace(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        return await self.inner.replace(ctx, rtype, rid, resource, if_match=if_match)

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        return await self.inner.patch(ctx, rtype, rid, ops, if_match=if_match)

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        await self.inner.delete(ctx, rtype, rid, if_match=if_match)

    async def query(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        return await self.inner.query(ctx, rtype, q)
