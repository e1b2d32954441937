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
    kept: Mapping[str, Any]
    """The default view's identity check (see :func:`_kept_as_is`): canonical top-level
    name -> what a value must look like to be returned exactly as stored."""
    ext_urns: tuple[str, ...]


_SIMPLE = 0
_ONE = 1
_MANY = 2


def _kept(order: Sequence[_PNode], first: int = 0) -> dict[str, Any]:
    """Canonical name -> ``(rank, kind, sub names)`` for the attributes a default view
    returns as they are: returned default/always, and for complex ones every sub-attribute
    too, with no complex sub-attributes. Anything else is left to the full projection.
    ``rank`` is the attribute's place in the canonical order."""
    out: dict[str, Any] = {}
    for rank, node in enumerate(order, first):
        if node.returned not in ("default", "always"):
            continue
        if not node.order:
            out[node.name] = (rank, _SIMPLE, None)
        elif node.plain and not any(sub.order for sub in node.order):
            kind = _MANY if node.attr.multi_valued else _ONE
            out[node.name] = (rank, kind, frozenset(sub.name for sub in node.order))
    return out


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
    # Ranks: common and core attributes, then the extensions, then meta (as _project).
    kept: dict[str, Any] = _kept(top_order)
    kept.pop("schemas", None)
    for rank, ext in enumerate(exts, len(top_order)):
        kept[ext.urn] = (rank, _kept(ext.order))
    if "meta" in kept:
        kept["meta"] = (len(top_order) + len(exts), *kept["meta"][1:])
    plan = _PPlan(
        rtype.schema.id, top, tuple(exts), blocks, tuple(urns), kept, tuple(e.urn for e in exts)
    )
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


def _kept_value(kind: int, subs: frozenset[str] | None, value: Any) -> bool:
    if kind == _SIMPLE:
        return True
    if kind == _MANY:
        # A plain multi-valued list is returned as stored by the full projection too.
        return type(value) is list
    assert subs is not None
    return type(value) is dict and bool(value) and subs.issuperset(value)


def _kept_as_is(plan: _PPlan, resource: Mapping[str, Any]) -> int:
    """Whether the default view of ``resource`` (no ``attributes``/``excludedAttributes``)
    is ``resource`` itself: only canonical names of attributes returned by default, no null
    values or empty complex values, no sub-attribute outside the schema, and ``schemas``
    listing the core URN then the extensions present in schema order. True for what the
    embedded store returns once the password hash is scrubbed, so a plain GET skips
    rebuilding it; anything that differs in any way takes the full projection.

    Returns 0 (no), 1 (yes, in canonical order but for ``schemas``) or 2 (yes, in another
    order: sort the keys)."""
    kept = plan.kept
    last = -1
    answer = 1
    for name, value in resource.items():
        if name == "schemas":
            continue
        how = kept.get(name)
        if how is None or value is None:
            return 0
        if how[0] <= last:
            answer = 2
        last = how[0]
        if len(how) == 2:  # an extension block
            if type(value) is not dict or not value:
                return 0
            sub_last = -1
            for sub_name, sub_value in value.items():
                sub_how = how[1].get(sub_name)
                if sub_how is None or sub_value is None:
                    return 0
                if sub_how[0] <= sub_last:
                    return 0  # rare: rebuild the block in order
                sub_last = sub_how[0]
                if not _kept_value(sub_how[1], sub_how[2], sub_value):
                    return 0
        elif not _kept_value(how[1], how[2], value):
            return 0
    schemas = [plan.core_urn]
    for urn in plan.ext_urns:
        if urn in resource:
            schemas.append(urn)
    return answer if resource.get("schemas") == schemas else 0


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
    plan = _plan(rtype)
    if not attributes and not excluded:
        kept = _kept_as_is(plan, resource)
        if kept == 1:
            return {"schemas": resource["schemas"], **resource}
        if kept == 2:
            # E.g. relations a store attaches after ``meta``.
            rank = plan.kept
            ordered = sorted((k for k in resource if k != "schemas"), key=lambda k: rank[k][0])
            out = {"schemas": resource["schemas"]}
            for key in ordered:
                out[key] = resource[key]
            return out
    return _project(plan, _spec(rtype, tuple(attributes), tuple(excluded)), resource)


def _project(plan: _PPlan, spec: _Spec, resource: Mapping[str, Any]) -> dict[str, Any]:
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
