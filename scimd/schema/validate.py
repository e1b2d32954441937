"""Input validation and normalisation of SCIM resources (RFC 7643), over plain dicts.

What comes in (a POST/PUT body, a PATCH value) is checked against the compiled schema and
turned into scimd's canonical form:

- attribute names in the schema's case (RFC 7643 2.1), extension blocks under the
  extension's canonical URN, keys in schema order;
- values of the declared type: ``dateTime`` as UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``,
  ``decimal`` as float, booleans as JSON booleans;
- absent means absent: ``null``, ``[]`` and ``{}`` values are dropped;
- readOnly attributes (``id``, ``meta``, ``groups``...) dropped (RFC 7644 3.5.1: "any
  values provided SHALL be ignored"), so the result never carries them;
- ``schemas`` recomputed: the core URN plus the extensions actually present.

Tolerated deviations are counted in :mod:`scimd.quirks`; anything else is an
:class:`~scimd.errors.InvalidValue` (or :class:`~scimd.errors.InvalidSyntax` when the body
is not an object) whose detail names the attribute path and what was expected, never the
offending value (it may be a password).

Everything that can be is computed once per resource type (:func:`_plan`): per-attribute
nodes with their coercion function, lower-case lookup maps, required lists. The per-request
walk is plain dict/list work.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from scimd import quirks
from scimd.errors import InvalidSyntax, InvalidValue, Mutability
from scimd.schema.model import COMMON_SCHEMA, AttributeDef, ResourceType, SchemaDef

__all__ = [
    "Unknown",
    "check_required",
    "merge_for_replace",
    "normalize_datetime",
    "normalize_resource",
    "normalize_value",
]

Unknown: TypeAlias = Literal["error", "ignore"]


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


#: "No value": returned by the walkers for null, [] and {} so that callers drop the key.
_ABSENT: Any = _Absent()

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# xsd:dateTime / RFC 3339 date-time; the offset is optional as in xsd (then UTC is assumed).
_DATETIME_RE = re.compile(
    r"-?\d{4,}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _type_error(node: _Node, expected: str, value: Any) -> InvalidValue:
    # The value itself is never echoed: it may be a password or other personal data.
    return InvalidValue(f"Attribute '{node.label}' must be {expected}, got {_json_type(value)}")


# ------------------------------------------------------------------------ scalar types


def _coerce_string(value: Any, node: _Node) -> Any:
    if type(value) is str:
        return value
    raise _type_error(node, "a string", value)


def _coerce_reference(value: Any, node: _Node) -> Any:
    if type(value) is str:
        return value
    raise _type_error(node, "a reference (URI string)", value)


def _coerce_boolean(value: Any, node: _Node) -> Any:
    if value is True or value is False:
        return value
    if type(value) is str:
        low = value.lower()
        if low == "true":
            quirks.record("boolean_as_string")
            return True
        if low == "false":
            quirks.record("boolean_as_string")
            return False
    raise _type_error(node, "a boolean", value)


def _coerce_integer(value: Any, node: _Node) -> Any:
    if type(value) is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
        raise InvalidValue(f"Attribute '{node.label}' is out of the 64-bit integer range")
    raise _type_error(node, "an integer", value)


def _coerce_decimal(value: Any, node: _Node) -> Any:
    if type(value) is int or type(value) is float:
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
        if math.isfinite(result):
            return result
        raise InvalidValue(f"Attribute '{node.label}' must be a finite decimal number")
    raise _type_error(node, "a decimal number", value)


def normalize_datetime(text: str) -> str | None:
    """``text`` (xsd:dateTime / RFC 3339) as UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``, or
    ``None`` when it is not a valid date-time. Sub-second precision is kept (to the
    microsecond, trailing zeros dropped); a missing offset means UTC."""
    m = _DATETIME_RE.fullmatch(text)
    if m is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.upper() if m.group(2) else text.upper() + "Z")
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    out = (
        f"{parsed.year:04d}-{parsed.month:02d}-{parsed.day:02d}"
        f"T{parsed.hour:02d}:{parsed.minute:02d}:{parsed.second:02d}"
    )
    if parsed.microsecond:
        out += f".{parsed.microsecond:06d}".rstrip("0")
    return out + "Z"


def _coerce_datetime(value: Any, node: _Node) -> Any:
    if type(value) is str:
        result = normalize_datetime(value)
        if result is not None:
            return result
        raise InvalidValue(
            f"Attribute '{node.label}' must be an xsd:dateTime such as '2008-01-23T04:56:22Z'"
        )
    raise _type_error(node, "a dateTime string", value)


def _coerce_binary(value: Any, node: _Node) -> Any:
    if type(value) is str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidValue(
                f"Attribute '{node.label}' must be base64-encoded binary (RFC 4648 4)"
            ) from None
        return value
    raise _type_error(node, "a base64 string", value)


_COERCERS: dict[str, Callable[[Any, _Node], Any]] = {
    "string": _coerce_string,
    "reference": _coerce_reference,
    "boolean": _coerce_boolean,
    "integer": _coerce_integer,
    "decimal": _coerce_decimal,
    "dateTime": _coerce_datetime,
    "binary": _coerce_binary,
}


# ---------------------------------------------------------------------- compiled plans


@dataclass(slots=True, eq=False)
class _Node:
    """An attribute with what the walkers need, precomputed."""

    attr: AttributeDef
    name: str
    label: str
    """Path used in error details: ``emails.value``, ``urn:...:User:manager.value``."""
    coerce: Callable[[Any, _Node], Any] | None
    """Scalar coercion; ``None`` for complex attributes."""
    subs: dict[str, _Node] = field(default_factory=dict)
    order: tuple[_Node, ...] = ()
    read_only: bool = False
    has_primary: bool = False
    required_subs: tuple[_Node, ...] = ()


@dataclass(slots=True, eq=False)
class _Block:
    """A schema's top-level attributes (core, common or one extension)."""

    schema: SchemaDef
    required: bool
    nodes: dict[str, _Node]
    order: tuple[_Node, ...]
    required_nodes: tuple[_Node, ...]


@dataclass(slots=True, eq=False)
class _Plan:
    rtype: ResourceType
    top: dict[str, _Node]
    """common (minus ``schemas``) + core attributes, by lower-case name."""
    top_order: tuple[_Node, ...]
    core_urn: str
    core_urn_low: str
    ext: dict[str, _Block]
    """Extension blocks by lower-case URN, in resource type order."""
    qualified: dict[str, tuple[str | None, _Node]]
    """``lower(urn:attr)`` -> (lower extension URN or None for core, node)."""
    required_top: tuple[_Node, ...]
    by_attr: dict[AttributeDef, _Node]
    known_urns: frozenset[str]


def _compile_node(attr: AttributeDef, label: str, by_attr: dict[AttributeDef, _Node]) -> _Node:
    node = _Node(
        attr=attr,
        name=attr.name,
        label=label,
        coerce=None if attr.type == "complex" else _COERCERS[attr.type],
        read_only=attr.mutability == "readOnly",
    )
    if attr.type == "complex":
        order = tuple(_compile_node(s, f"{label}.{s.name}", by_attr) for s in attr.sub_order)
        node.order = order
        node.subs = {n.name.lower(): n for n in order}
        primary = node.subs.get("primary")
        node.has_primary = (
            attr.multi_valued and primary is not None and primary.attr.type == "boolean"
        )
        node.required_subs = tuple(n for n in order if n.attr.required and not n.read_only)
    by_attr[attr] = node
    return node


def _block(
    schema: SchemaDef, required: bool, prefix: str, by_attr: dict[AttributeDef, _Node]
) -> _Block:
    order = tuple(_compile_node(a, prefix + a.name, by_attr) for a in schema.order)
    return _Block(
        schema=schema,
        required=required,
        nodes={n.name.lower(): n for n in order},
        order=order,
        required_nodes=tuple(n for n in order if n.attr.required and not n.read_only),
    )


_PLANS: dict[ResourceType, _Plan] = {}


def _plan(rtype: ResourceType) -> _Plan:
    plan = _PLANS.get(rtype)
    if plan is None:
        plan = _PLANS[rtype] = _build_plan(rtype)
    return plan


def _build_plan(rtype: ResourceType) -> _Plan:
    by_attr: dict[AttributeDef, _Node] = {}
    common = _block(rtype.common, False, "", by_attr)
    core = _block(rtype.schema, False, "", by_attr)
    top_order = tuple(n for n in common.order if n.name != "schemas") + core.order
    ext: dict[str, _Block] = {}
    qualified: dict[str, tuple[str | None, _Node]] = {}
    for n in core.order:
        qualified[f"{rtype.schema.id}:{n.name}".lower()] = (None, n)
    for low, (schema, required) in rtype.extensions.items():
        block = _block(schema, required, schema.id + ":", by_attr)
        ext[low] = block
        for n in block.order:
            qualified[f"{schema.id}:{n.name}".lower()] = (low, n)
    return _Plan(
        rtype=rtype,
        top={n.name.lower(): n for n in top_order},
        top_order=top_order,
        core_urn=rtype.schema.id,
        core_urn_low=rtype.schema.id.lower(),
        ext=ext,
        qualified=qualified,
        required_top=core.required_nodes
        + tuple(n for n in common.required_nodes if n.name != "schemas"),
        by_attr=by_attr,
        known_urns=frozenset(s.lower() for s in rtype.all_schema_ids),
    )


# ------------------------------------------------------------------------------ walkers


def _value(node: _Node, value: Any, unknown: Unknown) -> Any:
    """Normalise the value of ``node`` (single or multi-valued); ``_ABSENT`` if empty."""
    if value is None:
        quirks.record("null_value")
        return _ABSENT
    if node.attr.multi_valued:
        if type(value) is not list:
            quirks.record("single_value_for_multi_valued")
            value = [value]
        return _multi(node, value, unknown)
    if type(value) is list:
        if not value:
            return _ABSENT
        if len(value) > 1:
            raise InvalidValue(
                f"Attribute '{node.label}' is single-valued, got an array of {len(value)}"
            )
        quirks.record("single_element_list_for_single_valued")
        value = value[0]
        if value is None:
            return _ABSENT
    return _single(node, value, unknown)


def _multi(node: _Node, items: list[Any], unknown: Unknown) -> Any:
    out = []
    for item in items:
        if item is None:
            continue
        if type(item) is list:
            raise _type_error(node, "an array of single values", item)
        v = _single(node, item, unknown)
        if v is not _ABSENT:
            out.append(v)
    if not out:
        return _ABSENT
    # RFC 7643 2.4: the primary attribute value "true" MUST appear no more than once.
    if node.has_primary and len(out) > 1 and sum(1 for v in out if v.get("primary") is True) > 1:
        raise InvalidValue(f"Attribute '{node.label}' has more than one value with 'primary' true")
    return out


def _single(node: _Node, value: Any, unknown: Unknown) -> Any:
    if node.coerce is not None:
        return node.coerce(value, node)
    if type(value) is not dict:
        raise _type_error(node, "a complex value (JSON object)", value)
    return _complex(node, value, unknown)


def _complex(node: _Node, value: dict[str, Any], unknown: Unknown) -> Any:
    out: dict[str, Any] = {}
    subs = node.subs
    for key, v in value.items():
        sub = subs.get(key.lower())
        if sub is None:
            if unknown == "error":
                raise InvalidValue(f"Unknown attribute '{node.label}.{key}'")
            continue
        if key != sub.name:
            quirks.record("attribute_name_case")
        if sub.read_only:
            continue
        if sub.name in out:
            raise InvalidValue(f"Attribute '{sub.label}' is given more than once")
        if v is None:
            # Entra sends group members as {"$ref": null, "value": ...}: counted apart.
            quirks.record("member_ref_null" if sub.name == "$ref" else "null_value")
            continue
        nv = _value(sub, v, unknown)
        if nv is not _ABSENT:
            out[sub.name] = nv
    if not out:
        return _ABSENT
    for req in node.required_subs:
        if _empty(out.get(req.name)):
            raise InvalidValue(f"Missing required attribute '{req.label}'")
    if len(out) > 1:
        out = {n.name: out[n.name] for n in node.order if n.name in out}
    return out


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _put(target: dict[str, Any], node: _Node, value: Any, unknown: Unknown) -> None:
    if node.name in target:
        raise InvalidValue(f"Attribute '{node.label}' is given more than once")
    nv = _value(node, value, unknown)
    if nv is not _ABSENT:
        target[node.name] = nv


def _read_only_seen(node: _Node, value: Any) -> None:
    # id and meta are echoed back by every client that PUTs what it GOT: not a deviation.
    # A non-empty readOnly schema attribute (groups) is worth counting.
    if node.attr.schema != COMMON_SCHEMA and not _empty(value):
        quirks.record("readonly_attribute_ignored")


def _check_schemas(plan: _Plan, value: Any) -> None:
    if type(value) is str:
        quirks.record("single_value_for_multi_valued")
        value = [value]
    if value is None:
        quirks.record("missing_schemas")
        return
    if type(value) is not list or not all(type(v) is str for v in value):
        raise InvalidValue("Attribute 'schemas' must be an array of schema URIs")
    for urn in value:
        if urn.lower() not in plan.known_urns:
            quirks.record("unknown_schema_urn")


def _ext_block(block: _Block, value: Any, into: dict[str, Any], unknown: Unknown) -> None:
    if value is None:
        quirks.record("null_value")
        return
    if type(value) is not dict:
        raise _type_error(_schema_node(block), "a JSON object", value)
    for key, v in value.items():
        node = block.nodes.get(key.lower())
        if node is None:
            if unknown == "error":
                raise InvalidValue(f"Unknown attribute '{block.schema.id}:{key}'")
            continue
        if key != node.name:
            quirks.record("attribute_name_case")
        if node.read_only:
            _read_only_seen(node, v)
            continue
        _put(into, node, v, unknown)


def _schema_node(block: _Block) -> _Node:
    # A throwaway node only to word an error about a whole extension block.
    first = block.order[0]
    return _Node(attr=first.attr, name=block.schema.id, label=block.schema.id, coerce=None)


def _assemble(plan: _Plan, core: dict[str, Any], exts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Canonical order: schemas, id, externalId, core attributes, extensions, meta."""
    schemas = [plan.core_urn]
    out: dict[str, Any] = {"schemas": schemas}
    for node in plan.top_order:
        if node.name in core:
            out[node.name] = core[node.name]
    meta = out.pop("meta", None)
    for low, block in plan.ext.items():
        values = exts.get(low)
        if values:
            schemas.append(block.schema.id)
            out[block.schema.id] = {n.name: values[n.name] for n in block.order if n.name in values}
    if meta is not None:
        out["meta"] = meta
    return out


def _missing_required(plan: _Plan, core: Mapping[str, Any], exts: Mapping[str, Any]) -> None:
    missing = [n.label for n in plan.required_top if _empty(core.get(n.name))]
    for low, block in plan.ext.items():
        values = exts.get(low)
        if not values:
            if block.required:
                missing.append(block.schema.id)
            continue
        missing.extend(n.label for n in block.required_nodes if _empty(values.get(n.name)))
    if missing:
        raise InvalidValue(
            "Missing required attribute"
            + ("s" if len(missing) > 1 else "")
            + ": "
            + ", ".join(f"'{m}'" for m in missing)
        )


# ---------------------------------------------------------------------------- the API


def normalize_resource(
    rtype: ResourceType, body: Any, *, unknown: Unknown = "error"
) -> dict[str, Any]:
    """Validate a POST/PUT body for ``rtype`` and return its canonical form.

    Names are matched case-insensitively (extension URNs too), values coerced to their
    schema type, readOnly attributes (``id``, ``meta``, ``groups``) dropped, ``null`` /
    ``[]`` taken as absent. Unknown schema URNs (in ``schemas`` or as top-level keys) are
    ignored. The result is ordered as the schema orders attributes, carries ``schemas``
    (core URN + the extensions present) and never ``id``/``meta``. ``password`` is kept as
    given: hashing it is the service's job.

    :param unknown: ``"error"``: an attribute the schema does not define is an
        :class:`InvalidValue`; ``"ignore"``: it is dropped.
    :raises InvalidSyntax: ``body`` is not a JSON object.
    :raises InvalidValue: a type error, an unknown attribute, a missing required attribute
        or extension, more than one ``primary: true``.
    """
    if type(body) is not dict:
        raise InvalidSyntax("The request body must be a JSON object (a SCIM resource)")
    plan = _plan(rtype)
    core: dict[str, Any] = {}
    exts: dict[str, dict[str, Any]] = {}
    top = plan.top
    saw_schemas = False
    for key, value in body.items():
        low = key.lower()
        node = top.get(low)
        if node is not None:
            if key != node.name:
                quirks.record("attribute_name_case")
            if node.read_only:
                _read_only_seen(node, value)
                continue
            _put(core, node, value, unknown)
            continue
        if low == "schemas":
            saw_schemas = True
            _check_schemas(plan, value)
            continue
        block = plan.ext.get(low)
        if block is not None:
            _ext_block(block, value, exts.setdefault(low, {}), unknown)
            continue
        if ":" not in key:
            if unknown == "error":
                raise InvalidValue(f"Unknown attribute '{key}' for resource type {rtype.name}")
            continue
        if low == plan.core_urn_low:
            # Core attributes wrapped under the core URN: same schema, other spelling.
            if value is not None:
                _ext_block(_core_block(plan), value, core, unknown)
            continue
        qualified = plan.qualified.get(low)
        if qualified is not None:
            ext_low, qnode = qualified
            if qnode.read_only:
                _read_only_seen(qnode, value)
                continue
            target = core if ext_low is None else exts.setdefault(ext_low, {})
            _put(target, qnode, value, unknown)
            continue
        # A URN we do not serve (a misspelt extension, a vendor namespace): RFC 7644
        # allows no such key, but IdPs send them; their content is not ours to store.
        quirks.record("unknown_schema_urn")
    if not saw_schemas:
        quirks.record("missing_schemas")
    _missing_required(plan, core, exts)
    return _assemble(plan, core, exts)


_CORE_BLOCKS: dict[ResourceType, _Block] = {}


def _core_block(plan: _Plan) -> _Block:
    block = _CORE_BLOCKS.get(plan.rtype)
    if block is None:
        nodes = {n.name.lower(): n for n in plan.top_order if n.attr.schema == plan.core_urn}
        block = _Block(
            schema=plan.rtype.schema,
            required=True,
            nodes=nodes,
            order=tuple(nodes.values()),
            required_nodes=(),
        )
        _CORE_BLOCKS[plan.rtype] = block
    return block


def normalize_value(
    rtype: ResourceType, attr: AttributeDef, value: Any, *, unknown: Unknown = "error"
) -> Any:
    """Normalise ``value`` for one attribute or sub-attribute of ``rtype`` (PATCH values).

    For a multi-valued attribute, ``value`` may be a list or a single element; the result
    is a list (``[]`` when nothing is left). For a single-valued attribute the result is
    the normalised value, or ``None`` when ``value`` is ``null`` or an empty complex
    value. readOnly sub-attributes inside complex values are dropped.

    :raises InvalidValue: as :func:`normalize_resource`.
    """
    plan = _plan(rtype)
    node = plan.by_attr.get(attr)
    if node is None:
        # An AttributeDef from another compilation of the same schema: still usable.
        node = _compile_node(attr, attr.path, {})
    if value is None:
        return [] if attr.multi_valued else None
    if attr.multi_valued:
        items = value if type(value) is list else [value]
        result = _multi(node, items, unknown)
        return [] if result is _ABSENT else result
    result = _value(node, value, unknown)
    return None if result is _ABSENT else result


def _equal(node: _Node, a: Any, b: Any) -> bool:
    if (
        node.attr.type == "string"
        and not node.attr.case_exact
        and type(a) is str
        and type(b) is str
    ):
        return a.casefold() == b.casefold()
    return bool(a == b)


def merge_for_replace(
    rtype: ResourceType,
    existing: Mapping[str, Any],
    new: Any,
    *,
    unknown: Unknown = "error",
) -> dict[str, Any]:
    """PUT semantics (RFC 7644 3.5.1): the resource that replaces ``existing``.

    ``new`` (a request body, normalised here; an already normalised one is unchanged) gives
    every readWrite value. readOnly attributes (``id``, ``meta``, ``groups``) come from
    ``existing``. An immutable attribute set in ``existing`` may be omitted (it is kept) or
    repeated with the same value; a different value is a :class:`Mutability` error.
    writeOnly attributes (``password``) omitted from ``new`` are kept: a client cannot
    read them back, so omitting them is not a request to clear them.

    :raises Mutability: an immutable attribute would change.
    :raises InvalidValue: as :func:`normalize_resource`.
    """
    plan = _plan(rtype)
    out = normalize_resource(rtype, new, unknown=unknown)
    core: dict[str, Any] = {k: v for k, v in out.items() if k != "schemas"}
    exts: dict[str, dict[str, Any]] = {}
    for low, block in plan.ext.items():
        vals = core.pop(block.schema.id, None)
        exts[low] = dict(vals) if vals else {}

    def carry(node: _Node, old: Mapping[str, Any], target: dict[str, Any]) -> None:
        name = node.name
        if name not in old or _empty(old[name]):
            return
        mut = node.attr.mutability
        if mut == "readOnly":
            target[name] = old[name]
        elif mut == "immutable":
            if name not in target:
                target[name] = old[name]
            elif not _equal(node, old[name], target[name]):
                raise Mutability(f"Attribute '{node.label}' is immutable and cannot be changed")
        elif mut == "writeOnly" and name not in target:
            target[name] = old[name]
        elif (
            node.coerce is None
            and not node.attr.multi_valued
            and name in target
            and type(old[name]) is dict
        ):
            _carry_subs(node, old[name], target[name])

    for node in plan.top_order:
        carry(node, existing, core)
    for low, block in plan.ext.items():
        old_block = _lookup_block(existing, block.schema.id)
        if old_block:
            for node in block.order:
                carry(node, old_block, exts[low])
    return _assemble(plan, core, exts)


def _carry_subs(node: _Node, old: Mapping[str, Any], new: dict[str, Any]) -> None:
    """Mutability rules one level down, inside a single-valued complex attribute."""
    for sub in node.order:
        name = sub.name
        if name not in old or _empty(old[name]):
            continue
        mut = sub.attr.mutability
        if mut == "immutable":
            if name not in new:
                new[name] = old[name]
            elif not _equal(sub, old[name], new[name]):
                raise Mutability(f"Attribute '{sub.label}' is immutable and cannot be changed")
        elif mut == "writeOnly" and name not in new:
            new[name] = old[name]


def _lookup_block(resource: Mapping[str, Any], urn: str) -> Mapping[str, Any] | None:
    block = resource.get(urn)
    if block is None:
        low = urn.lower()
        for key, value in resource.items():
            if key.lower() == low:
                block = value
                break
    return block if isinstance(block, Mapping) else None


def check_required(rtype: ResourceType, resource: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidValue` naming every missing required attribute of a canonical
    ``resource`` (after PATCH): required core attributes, required extensions, required
    attributes of the extensions present and required sub-attributes of complex values."""
    plan = _plan(rtype)
    exts: dict[str, Any] = {}
    for low, block in plan.ext.items():
        values = _lookup_block(resource, block.schema.id)
        if values:
            exts[low] = values
    _missing_required(plan, resource, exts)
    for node in plan.top_order:
        _required_subs(node, resource.get(node.name))
    for low, values in exts.items():
        for node in plan.ext[low].order:
            _required_subs(node, values.get(node.name))


def _required_subs(node: _Node, value: Any) -> None:
    if node.coerce is not None or value is None:
        return
    items = value if type(value) is list else [value]
    for item in items:
        if type(item) is not dict:
            continue
        for req in node.required_subs:
            if _empty(item.get(req.name)):
                raise InvalidValue(f"Missing required attribute '{req.label}'")
        for sub in node.order:
            if sub.coerce is None:
                _required_subs(sub, item.get(sub.name))
