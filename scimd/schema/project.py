"""Response projection: which attributes of a resource a client gets back.

Rules (RFC 7643 section 7 ``returned``, RFC 7644 3.4.2.5 and 3.9):

- ``always`` (``id``, ``schemas``) is always returned; ``never`` (``password``) never;
- ``request`` only when named in ``attributes``;
- ``default`` unless named in ``excludedAttributes``, or unless ``attributes`` is given
  and does not name it.

Names are case-insensitive and may be sub-attributes (``name.givenName``), URN-qualified
(``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber``) or a whole
schema URN; unknown names are ignored. Naming a sub-attribute keeps its parent with only
that sub-attribute (plus the parent's ``always`` sub-attributes).

The output is in canonical order (``schemas``, ``id``, ``externalId``, core attributes,
extensions, ``meta``) and ``schemas`` lists the extensions still present. Nested values are
shared with the input resource, not copied: treat both as read-only afterwards.

A parsed ``attributes``/``excludedAttributes`` pair is compiled once per resource type and
cached (clients repeat the same few projections).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scimd.schema.model import AttributeDef, ResourceType

__all__ = ["project", "wants"]

_CORE = ""
"""Block key of the top level (common + core attributes); extensions use their lower URN."""


@dataclass(frozen=True, slots=True, eq=False)
class _PNode:
    attr: AttributeDef
    name: str
    returned: str
    subs: Mapping[str, _PNode]
    order: tuple[_PNode, ...]
    plain: bool
    """No sub-attribute (at any depth) is returned never/request: a value can be shared as is."""
    always_subs: frozenset[str]


@dataclass(frozen=True, slots=True, eq=False)
class _PBlock:
    key: str
    urn: str
    """Canonical URN of an extension block; empty for the top level."""
    nodes: Mapping[str, _PNode]
    order: tuple[_PNode, ...]


@dataclass(frozen=True, slots=True, eq=False)
class _PPlan:
    core_urn: str
    top: _PBlock
    exts: tuple[_PBlock, ...]
    blocks: Mapping[str, _PBlock]
    urns: tuple[tuple[str, str], ...]
    """(lower URN + ':', block key), longest first, to split qualified names."""


def _pnode(attr: AttributeDef) -> _PNode:
    order = tuple(_pnode(s) for s in attr.sub_order)
    plain = all(n.returned in ("default", "always") and n.plain for n in order)
    return _PNode(
        attr=attr,
        name=attr.name,
        returned=attr.returned,
        subs={n.name.lower(): n for n in order},
        order=order,
        plain=plain,
        always_subs=frozenset(n.name.lower() for n in order if n.returned == "always"),
    )


_PLANS: dict[ResourceType, _PPlan] = {}


def _plan(rtype: ResourceType) -> _PPlan:
    plan = _PLANS.get(rtype)
    if plan is not None:
        return plan
    common = [_pnode(a) for a in rtype.common.order if a.name != "meta"]
    meta = [_pnode(a) for a in rtype.common.order if a.name == "meta"]
    core = [_pnode(a) for a in rtype.schema.order]
    # ``meta`` goes last in the canonical order, after the extensions: assembled by project.
    top_order = tuple(common + core + meta)
    top = _PBlock(_CORE, "", {n.name.lower(): n for n in top_order}, top_order)
    exts = []
    for low, (schema, _required) in rtype.extensions.items():
        order = tuple(_pnode(a) for a in schema.order)
        exts.append(_PBlock(low, schema.id, {n.name.lower(): n for n in order}, order))
    blocks = {b.key: b for b in exts}
    blocks[_CORE] = top
    urns = [(rtype.schema.id.lower() + ":", _CORE)] + [(b.key + ":", b.key) for b in exts]
    urns.sort(key=lambda u: -len(u[0]))
    plan = _PPlan(rtype.schema.id, top, tuple(exts), blocks, tuple(urns))
    _PLANS[rtype] = plan
    return plan


_WHOLE = None
"""Selection value: the whole attribute (as opposed to a set of sub-attribute names)."""


@dataclass(frozen=True, slots=True)
class _Spec:
    selected: Mapping[tuple[str, str], frozenset[str] | None] | None
    """``attributes``: (block, attr) -> named subs or None for the whole attribute;
    ``None`` when ``attributes`` was not given."""
    whole_blocks: frozenset[str]
    """Schema URNs named whole in ``attributes`` (block keys)."""
    excluded: Mapping[tuple[str, str], frozenset[str] | None]
    excluded_blocks: frozenset[str]


def _resolve(plan: _PPlan, name: str) -> tuple[str, str | None, str | None] | None:
    """``name`` -> (block key, attr lower or None for the whole block, sub lower or None);
    ``None`` if it names nothing this resource type has."""
    low = name.strip().lower()
    if not low:
        return None
    if low in plan.blocks and low != _CORE:
        return (low, None, None)
    if low == plan.core_urn.lower():
        return (_CORE, None, None)
    block_key = _CORE
    rest = low
    for prefix, key in plan.urns:
        if low.startswith(prefix):
            block_key, rest = key, low[len(prefix) :]
            break
    attr, _, sub = rest.partition(".")
    block = plan.blocks[block_key]
    node = block.nodes.get(attr)
    if node is None and block_key == _CORE and rest is low:
        # Tolerance: an extension attribute named without its URN.
        for ext in plan.exts:
            node = ext.nodes.get(attr)
            if node is not None:
                block_key = ext.key
                break
    if node is None:
        return None
    if sub:
        if sub.partition(".")[0] not in node.subs:
            return None
        return (block_key, attr, sub.partition(".")[0])
    return (block_key, attr, None)


def _selection(
    plan: _PPlan, names: Sequence[str]
) -> tuple[dict[tuple[str, str], frozenset[str] | None], frozenset[str]]:
    sel: dict[tuple[str, str], set[str] | None] = {}
    whole: set[str] = set()
    for name in names:
        found = _resolve(plan, name)
        if found is None:
            continue
        block, attr, sub = found
        if attr is None:
            whole.add(block)
            continue
        key = (block, attr)
        if sub is None:
            sel[key] = _WHOLE
        elif key not in sel:
            sel[key] = {sub}
        else:
            current = sel[key]
            if current is not None:
                current.add(sub)
    return {k: (None if v is None else frozenset(v)) for k, v in sel.items()}, frozenset(whole)


@functools.lru_cache(maxsize=1024)
def _spec(rtype: ResourceType, attributes: tuple[str, ...], excluded: tuple[str, ...]) -> _Spec:
    plan = _plan(rtype)
    selected: dict[tuple[str, str], frozenset[str] | None] | None = None
    whole: frozenset[str] = frozenset()
    if attributes:
        selected, whole = _selection(plan, attributes)
    exc, exc_blocks = _selection(plan, excluded) if excluded else ({}, frozenset())
    return _Spec(selected, whole, exc, exc_blocks)


_DROP = 0
_ALL = 1
_SOME = 2


def _decide(
    spec: _Spec, block: str, node: _PNode
) -> tuple[int, frozenset[str] | None, frozenset[str] | None]:
    """(_DROP | _ALL | _SOME, named subs for _SOME, excluded subs)."""
    returned = node.returned
    if returned == "never":
        return _DROP, None, None
    if returned == "always":
        return _ALL, None, None
    key = (block, node.name.lower())
    if spec.selected is not None:
        if key in spec.selected:
            subs = spec.selected[key]
            mode = _ALL if subs is None else _SOME
        elif block in spec.whole_blocks and returned == "default":
            subs, mode = None, _ALL
        else:
            return _DROP, None, None
    elif returned == "request":
        return _DROP, None, None
    else:
        subs, mode = None, _ALL
    if block in spec.excluded_blocks:
        return _DROP, None, None
    if key in spec.excluded:
        exc_subs = spec.excluded[key]
        if exc_subs is None:
            return _DROP, None, None
        return mode, subs, exc_subs
    return mode, subs, None


def _filter_complex(
    node: _PNode, value: dict[str, Any], named: frozenset[str] | None, exc: frozenset[str] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sub in node.order:
        if sub.name not in value:
            continue
        low = sub.name.lower()
        r = sub.returned
        if r == "never":
            continue
        if r != "always":
            if named is not None:
                if low not in named:
                    continue
            elif r == "request" or (exc is not None and low in exc):
                continue
        v = value[sub.name]
        if sub.order and not sub.plain:
            v = _value(sub, v, None, None)
            if v is None:
                continue
        out[sub.name] = v
    return out


def _value(
    node: _PNode, value: Any, named: frozenset[str] | None, exc: frozenset[str] | None
) -> Any:
    """Projected ``value`` of ``node``; ``None`` when nothing is left."""
    if not node.order:
        return value
    if node.plain and named is None and exc is None and type(value) is list:
        # Multi-valued elements are shared as stored (canonical when they came through
        # scimd.schema.validate): a 100k-member group is not rebuilt element by element.
        # Single-valued complex values are cheap to rebuild in schema order.
        return value
    if type(value) is list:
        items = []
        for item in value:
            if type(item) is dict:
                item = _filter_complex(node, item, named, exc)
                if item:
                    items.append(item)
            else:
                items.append(item)
        return items or None
    if type(value) is dict:
        return _filter_complex(node, value, named, exc) or None
    return value


def _block(spec: _Spec, block: _PBlock, source: Mapping[str, Any], out: dict[str, Any]) -> None:
    for node in block.order:
        value = source.get(node.name)
        if value is None:
            continue
        mode, named, exc = _decide(spec, block.key, node)
        if mode == _DROP:
            continue
        if node.order:
            value = _value(node, value, named if mode == _SOME else None, exc)
            if value is None:
                continue
        out[node.name] = value


def project(
    rtype: ResourceType,
    resource: Mapping[str, Any],
    *,
    attributes: Sequence[str] = (),
    excluded: Sequence[str] = (),
) -> dict[str, Any]:
    """The representation of the canonical ``resource`` to return to a client.

    :param attributes: the ``attributes`` query parameter, split on commas (empty: not
        given).
    :param excluded: the ``excludedAttributes`` parameter, split on commas.
    """
    spec = _spec(rtype, tuple(attributes), tuple(excluded))
    plan = _plan(rtype)
    schemas = [plan.core_urn]
    out: dict[str, Any] = {"schemas": schemas}
    top: dict[str, Any] = {}
    _block(spec, plan.top, resource, top)
    top.pop("schemas", None)
    meta = top.pop("meta", None)
    out.update(top)
    for ext in plan.exts:
        source = resource.get(ext.urn)
        if not source:
            continue
        block: dict[str, Any] = {}
        _block(spec, ext, source, block)
        if block:
            schemas.append(ext.urn)
            out[ext.urn] = block
    if meta is not None:
        out["meta"] = meta
    return out


def wants(
    rtype: ResourceType,
    attr_name: str,
    *,
    attributes: Sequence[str] = (),
    excluded: Sequence[str] = (),
) -> bool:
    """Whether top-level attribute ``attr_name`` (``members``, ``groups``, or URN-qualified)
    would appear in :func:`project`'s output (when the resource has a value for it).
    Lets a backend skip loading member rows for ``excludedAttributes=members``."""
    plan = _plan(rtype)
    found = _resolve(plan, attr_name)
    if found is None:
        return False
    block, attr, _ = found
    if attr is None:
        return False
    node = plan.blocks[block].nodes[attr]
    spec = _spec(rtype, tuple(attributes), tuple(excluded))
    return _decide(spec, block, node)[0] != _DROP
