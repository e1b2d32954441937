"""The RFC 7644 3.5.2 PATCH engine, on plain resource dicts, through the schema tables.

Two steps, both pure:

* :func:`parse_patch_request` checks a PatchOp message and returns typed
  :class:`~scimd.backend.PatchOp` objects (``op`` lower-cased, ``path`` parsed and resolved
  against the resource type).
* :func:`apply_patch` applies them, in order, to a copy of a resource and returns a
  :class:`PatchResult`. A request is atomic (RFC 7644 3.5.2): if any operation fails the
  caller gets the error and the input resource is untouched.

Semantics are RFC 7644 3.5.2.1 (add), 3.5.2.2 (remove) and 3.5.2.3 (replace), plus the
tolerances for what Okta and Microsoft Entra really send (``docs INTEROP.md`` "PATCH"); each
tolerance is counted with :func:`scimd.quirks.record` under the name given in the comment
where it is handled.

Decisions where the RFC is silent or loose (each one is tested):

* A message without ``schemas`` is accepted (quirk ``missing_schemas``); a
  ``schemas`` that is present but does not name the PatchOp URN is 400 invalidSyntax.
* ``remove`` of an attribute, sub-attribute or filtered value that is not there succeeds
  without change (RFC 7644 3.5.2.2 does not make it an error, and IdPs retry removals).
* ``add`` or ``replace`` with a filter that matches nothing creates the element from the
  filter's ``eq`` terms (quirks ``patch_filtered_add_creates`` and
  ``patch_filtered_replace_creates``), so that several operations on the same filter in
  one request build one element (what Entra sends: ``Replace emails[type eq "work"].value``
  on a user without a work email). RFC 7644 3.5.2.3 makes the replace a 400 noTarget;
  scimd is lenient, as the RFC allows servers to be. A filter that does not describe an
  element (not only ``eq`` terms joined by ``and``) still gives 400 noTarget.
* ``replace`` with ``value: null`` (or ``[]`` for a multi-valued attribute) unassigns the
  attribute: RFC 7643 2.5 makes null, empty and unassigned equivalent.
* Adding to a multi-valued attribute merges into an existing element with the same
  ``value`` (and ``type`` when both have one) instead of appending a duplicate; Group
  members are identified by ``value`` alone and an existing member is left as it is.
* Setting ``primary: true`` on one element clears it (sets ``false``) on the others
  (RFC 7643 2.4: at most one primary value); two new primary elements are 400 invalidValue.
* readOnly sub-attributes inside a complex value (``manager.displayName``) are dropped, as
  RFC 7643 2.2 says for POST/PUT; a ``path`` that targets a readOnly attribute is 400
  mutability (RFC 7644 3.5.2), except a no-path value repeating a readOnly attribute with
  its current value (Okta's ``id``), which is skipped. immutable attributes may be set
  when unset (or to their current value), never changed or removed: 400 mutability.
* A single-valued complex attribute given a bare string becomes ``{"value": s}`` (Entra's
  ``manager``) and ``""`` unassigns it; a one-element array is unwrapped.
* ``remove`` with a ``value`` on a multi-valued attribute removes only the listed values
  (members by ``value``; other attributes where every given sub-attribute is equal).
* Removing a required attribute is 400 invalidValue, checked once after all operations so
  that remove-then-add in one request works.
* ``writeOnly`` values (``password``) are stored as given: the caller hashes them when
  ``PatchResult.changed`` names them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scimd import quirks
from scimd.backend import MemberChange, PatchOp
from scimd.errors import (
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
    ScimError,
)
from scimd.query.ast import And, AttrPath, Comparison, Filter, Or, PatchPath
from scimd.query.evaluate import compile_filter
from scimd.query.parse import parse_path
from scimd.schema.model import COMMON_SCHEMA, AttributeDef, ResourceType
from scimd.schema.validate import check_required, normalize_value

__all__ = [
    "PATCH_OP_URN",
    "PatchResult",
    "apply_patch",
    "needs_members",
    "parse_patch_request",
]

PATCH_OP_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

_KINDS: dict[str, Literal["add", "replace", "remove"]] = {
    "add": "add",
    "replace": "replace",
    "remove": "remove",
}
_OP_KEYS: frozenset[str] = frozenset({"op", "path", "value"})
_MEMBERS = "members"

Unknown = Literal["error", "ignore"]


@dataclass(frozen=True, slots=True)
class PatchResult:
    """What :func:`apply_patch` produced.

    * ``resource``: the new resource. Attributes the operations did not touch are shared
      with the input dict (structural sharing, to keep PATCH on large groups cheap): treat
      both as read-only or copy before mutating.
    * ``member_changes``: with ``members_external=True``, the ordered membership changes
      the store applies natively (empty otherwise).
    * ``changed``: canonical names of the attributes whose value actually changed
      (``displayName``, ``name.givenName``, ``members``,
      ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager``), for audit
      events. Empty when the request changed nothing.
    """

    resource: dict[str, Any]
    member_changes: list[MemberChange]
    changed: frozenset[str]


# --------------------------------------------------------------------------------------
# Parsing the PatchOp message
# --------------------------------------------------------------------------------------


def parse_patch_request(
    rtype: ResourceType, body: Any, *, unknown: Unknown = "error"
) -> list[PatchOp]:
    """Check a PatchOp request body (RFC 7644 3.5.2) and return its operations.

    :param rtype: the resource type of the PATCHed resource (paths resolve against it).
    :param body: the decoded JSON body.
    :param unknown: ``"ignore"`` drops operations whose path names an attribute the
        resource type does not have (instead of 400 invalidPath).
    :raises InvalidSyntax: the body is not a PatchOp message, ``Operations`` is missing or
        empty, an operation is not an object, ``op`` is not add/replace/remove, or
        ``value`` is missing on add/replace.
    :raises InvalidPath: a ``path`` is malformed or names an unknown attribute.
    :raises NoTarget: a ``remove`` without ``path`` (RFC 7644 3.5.2.2).
    """
    if not isinstance(body, dict):
        raise InvalidSyntax("A PATCH body must be a JSON object (a PatchOp message)")
    fields = _fold_keys(body)
    schemas = fields.get("schemas")
    if schemas is None:
        # Some scripts and older connectors omit it; the body is unambiguous anyway.
        _quirk("missing_schemas")
    elif not isinstance(schemas, list) or not any(
        isinstance(s, str) and s.lower() == PATCH_OP_URN.lower() for s in schemas
    ):
        raise InvalidSyntax(f"'schemas' must contain {PATCH_OP_URN}")
    operations = fields.get("operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("'Operations' must be a non-empty array of operations")

    ops: list[PatchOp] = []
    for index, raw in enumerate(operations):
        op = _parse_operation(rtype, raw, index, unknown)
        if op is not None:
            ops.append(op)
    return ops


def _parse_operation(rtype: ResourceType, raw: Any, index: int, unknown: Unknown) -> PatchOp | None:
    where = f"Operations[{index}]"
    if not isinstance(raw, dict):
        raise InvalidSyntax(f"{where} must be a JSON object")
    fields = _fold_keys(raw)
    if set(fields) - _OP_KEYS:
        # Entra's early client sent {"op": ..., "name": "addMember", ...}.
        _quirk("patch_extra_keys")
    kind = fields.get("op")
    if not isinstance(kind, str) or kind.lower() not in _KINDS:
        raise InvalidSyntax(f"{where}: 'op' must be one of add, replace, remove")
    if kind != kind.lower():
        _quirk("patch_op_case")  # Entra sends "Add", "Replace", "Remove"
    op_kind = _KINDS[kind.lower()]

    raw_path = fields.get("path")
    if raw_path is not None and not isinstance(raw_path, str):
        raise InvalidPath(f"{where}: 'path' must be a string")
    if isinstance(raw_path, str) and not raw_path.strip():
        _quirk("patch_empty_path")  # counted once registered in scimd.quirks
        raw_path = None

    has_value = "value" in fields
    value = fields.get("value")
    if op_kind in ("add", "replace") and not has_value:
        raise InvalidSyntax(f"{where}: '{op_kind}' requires a 'value' (RFC 7644 3.5.2)")
    if op_kind == "remove" and raw_path is None:
        raise NoTarget(f"{where}: 'remove' requires a 'path' (RFC 7644 3.5.2.2)")

    if raw_path is None:
        if isinstance(value, str) and value.lstrip().startswith("{"):
            value = _decode_json_text(value)
        if not isinstance(value, dict):
            raise InvalidValue(f"{where}: without 'path', 'value' must be an object of attributes")
        return PatchOp(op_kind, None, value)

    path_text = raw_path.strip()
    try:
        path = parse_path(path_text, rtype)
    except InvalidPath:
        if unknown == "ignore" and not _path_head_known(rtype, path_text):
            return None
        raise
    if _is_whole_extension(path) and op_kind != "remove":
        # "path": "urn:...:enterprise:2.0:User" addresses the extension object itself:
        # the same as a no-path operation whose value is {urn: value}.
        assert path.attr.uri is not None
        return PatchOp(op_kind, None, {path.attr.uri: value})
    return PatchOp(op_kind, path, value)


def _fold_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """Message keys (``Operations``, ``op``, ``path``, ``value``) are matched in any case."""
    return {k.lower() if isinstance(k, str) else k: v for k, v in obj.items()}


def _is_whole_extension(path: PatchPath) -> bool:
    """``parse_path`` gives ``AttrPath(<urn>, "")`` for a path that is an extension URN."""
    return path.attr.attr == "" and path.attr.uri is not None


_HEAD = re.compile(r"^(?P<head>[^\[]*)")


def _path_head_known(rtype: ResourceType, text: str) -> bool:
    """Whether the attribute a path starts with exists (to tell unknown from malformed)."""
    head = _HEAD.match(text)
    name = head.group("head") if head else text
    uri: str | None = None
    for sid in rtype.all_schema_ids:
        if name.lower().startswith(sid.lower() + ":"):
            uri, name = sid, name[len(sid) + 1 :]
            break
    attr = name.split(".", 1)[0]
    return bool(attr) and rtype.lookup(uri, attr) is not None


# --------------------------------------------------------------------------------------
# Members as MemberChange lists
# --------------------------------------------------------------------------------------


def _members_attr(rtype: ResourceType) -> AttributeDef | None:
    attr = rtype.schema.attr(_MEMBERS)
    if attr is None or not attr.multi_valued or not attr.is_complex:
        return None
    return attr


def _is_members_path(rtype: ResourceType, path: PatchPath) -> bool:
    members = _members_attr(rtype)
    return (
        members is not None
        and path.attr.attr.lower() == _MEMBERS
        and (path.attr.uri is None or path.attr.uri.lower() == rtype.schema.id.lower())
    )


def _member_values_of_filter(flt: Filter) -> list[Any] | None:
    """``value eq "a"`` or an ``or`` of them -> ["a", ...]; anything else -> None."""
    if isinstance(flt, Comparison):
        sub = flt.path.sub or ""
        if flt.op == "eq" and sub.lower() == "value" and isinstance(flt.value, str):
            return [flt.value]
        return None
    if isinstance(flt, Or):
        left = _member_values_of_filter(flt.left)
        right = _member_values_of_filter(flt.right)
        if left is None or right is None:
            return None
        return left + right
    return None


def _member_op_expressible(rtype: ResourceType, op: PatchOp) -> bool:
    path = op.path
    if path is None:
        return True  # a no-path value's "members" key is an add or a set
    if path.attr.sub is not None or path.sub is not None:
        return False  # members.display, members[...].display
    if path.filter is None:
        return True
    return op.op == "remove" and _member_values_of_filter(path.filter) is not None


def needs_members(rtype: ResourceType, ops: Sequence[PatchOp]) -> bool:
    """Whether some operation on ``members`` cannot be expressed as a MemberChange list.

    Stores that keep Group members in their own table call :func:`apply_patch` with
    ``members_external=True`` unless this returns True; then they load the members into
    the resource dict and call it with ``members_external=False``. Expressible: add,
    replace and remove of ``members`` (with or without a list of values), and remove of
    ``members[value eq "x"]`` (or an ``or`` of such terms). Not expressible: any other
    filter (``members[display eq "x"]``), a sub-attribute (``members[value eq "x"].display``),
    add/replace with a filter.
    """
    if _members_attr(rtype) is None:
        return False
    for op in ops:
        if op.path is not None and _is_members_path(rtype, op.path):
            if not _member_op_expressible(rtype, op):
                return True
        elif op.path is None and isinstance(op.value, dict):
            for key in op.value:
                if isinstance(key, str) and key.lower().startswith(_MEMBERS + "."):
                    return True
    return False


# --------------------------------------------------------------------------------------
# Applying operations
# --------------------------------------------------------------------------------------


def apply_patch(
    rtype: ResourceType,
    resource: dict[str, Any],
    ops: Sequence[PatchOp],
    *,
    members_external: bool = False,
    unknown: Unknown = "error",
) -> PatchResult:
    """Apply PATCH operations in order to ``resource`` and return the result.

    The input dict is never mutated; if any operation fails, the error propagates and
    nothing is applied (RFC 7644 3.5.2: a PATCH request is atomic). After all operations,
    required attributes are checked (``check_required``).

    :param rtype: the resource type (its compiled schema tables drive everything).
    :param resource: the current resource, canonical SCIM JSON (``scimd.schema.model``).
    :param ops: operations from :func:`parse_patch_request`.
    :param members_external: the store keeps the resource type's ``members`` outside the
        dict: operations on ``members`` become ``PatchResult.member_changes`` and
        ``resource["members"]`` is never read or written. Callers must first check
        :func:`needs_members`; an inexpressible member operation raises ``ValueError``.
    :param unknown: ``"ignore"`` skips unknown attributes inside values instead of 400.
    :raises ScimError: invalidValue, invalidPath, noTarget, mutability (all 400).
    """
    patcher = _Patcher(rtype, resource, members_external=members_external, unknown=unknown)
    for op in ops:
        patcher.apply(op)
    return patcher.finish()


@dataclass(slots=True)
class _Loc:
    """Where a top-level attribute lives: at the top level (``ext is None``) or inside the
    extension object keyed by the canonical URN ``ext``."""

    top: AttributeDef
    ext: str | None

    def name(self) -> str:
        return f"{self.ext}:{self.top.name}" if self.ext else self.top.name


class _Patcher:
    def __init__(
        self,
        rtype: ResourceType,
        resource: dict[str, Any],
        *,
        members_external: bool,
        unknown: Unknown,
    ) -> None:
        self.rtype = rtype
        self.original = resource
        self.res: dict[str, Any] = dict(resource)
        self.members_external = members_external
        self.unknown: Unknown = unknown
        self.members_def = _members_attr(rtype)
        self.member_changes: list[MemberChange] = []
        # (ext, lower name) of attributes already deep-copied into self.res
        self._owned: set[tuple[str | None, str]] = set()
        self._owned_ext: set[str] = set()
        self.touched: dict[tuple[str | None, str], _Loc] = {}
        self.touched_ext: set[str] = set()

    # ---- locations and copy-on-write --------------------------------------------------

    def _loc(self, top: AttributeDef) -> _Loc:
        if top.schema in (self.rtype.schema.id, COMMON_SCHEMA):
            return _Loc(top, None)
        schema = self.rtype.schema_for_uri(top.schema)
        if schema is None:  # pragma: no cover - paths are resolved against rtype
            raise InvalidPath(f"Attribute '{top.name}' is not part of {self.rtype.name}")
        return _Loc(top, schema.id)

    def _resolve_top(self, attr: AttrPath) -> AttributeDef:
        top = self.rtype.lookup(attr.uri, attr.attr)
        if top is None:
            raise InvalidPath(f"Unknown attribute '{attr}'")
        return top

    def _container(self, loc: _Loc, *, create: bool) -> dict[str, Any] | None:
        if loc.ext is None:
            return self.res
        current = self.res.get(loc.ext)
        if loc.ext not in self._owned_ext:
            if current is None and not create:
                return None
            if current is not None and not isinstance(current, dict):
                raise InvalidValue(f"'{loc.ext}' in the stored resource is not an object")
            if current is None:
                current = {}
                # a new extension goes before meta, where normalize_resource puts it
                meta = self.res.pop("meta", None)
                self.res[loc.ext] = current
                if meta is not None:
                    self.res["meta"] = meta
            else:
                current = self.res[loc.ext] = _clone(current)
            self._owned_ext.add(loc.ext)
        elif current is None:  # emptied and dropped by this request
            if not create:
                return None
            current = self.res[loc.ext] = {}
        assert isinstance(current, dict)
        return current

    def get(self, loc: _Loc) -> Any:
        container = self._container(loc, create=False)
        return None if container is None else container.get(loc.top.name)

    def mutable(self, loc: _Loc) -> Any:
        """The current value, deep-copied the first time this request changes it."""
        container = self._container(loc, create=True)
        assert container is not None
        value = container.get(loc.top.name)
        key = (loc.ext, loc.top.name.lower())
        if loc.ext is None and key not in self._owned and value is not None:
            value = _clone(value)
            container[loc.top.name] = value
        self._owned.add(key)
        self._touch(loc)
        return value

    def store(self, loc: _Loc, value: Any) -> None:
        """Set (or, for None / [] / {}, unassign) a top-level attribute."""
        self._touch(loc)
        if _is_empty(value):
            container = self._container(loc, create=False)
            if container is not None:
                container.pop(loc.top.name, None)
            return
        container = self._container(loc, create=True)
        assert container is not None
        container[loc.top.name] = value
        self._owned.add((loc.ext, loc.top.name.lower()))

    def _touch(self, loc: _Loc) -> None:
        self.touched.setdefault((loc.ext, loc.top.name.lower()), loc)
        if loc.ext:
            self.touched_ext.add(loc.ext)

    # ---- normalisation ------------------------------------------------------------------

    def norm(self, attr: AttributeDef, value: Any) -> Any:
        # Cloned: the result is mutated later and must not alias the operation's value.
        return _clone(normalize_value(self.rtype, attr, value, unknown=self.unknown))

    def norm_elements(self, top: AttributeDef, value: Any) -> list[Any]:
        """A value for a multi-valued attribute -> its normalised list of elements."""
        if value is None:
            return []
        from_text = False
        if isinstance(value, str) and top.is_complex and value.lstrip().startswith(("{", "[")):
            value = _decode_json_text(value)
            from_text = True
        if not isinstance(value, list):
            # RFC 7644 says an array; a lone object or value is what a few clients send.
            _quirk("single_value_for_multi_valued")
            value = [value]
        if top.is_complex:
            value = [self._decode_element(top, e, from_text) for e in value]
            for element in value:
                if isinstance(element, dict) and any(
                    k.lower() == "$ref" and v is None for k, v in element.items()
                ):
                    _quirk("member_ref_null")  # Entra: {"$ref": null, "value": "<id>"}
        normalized = self.norm(top, value)
        if not isinstance(normalized, list):  # pragma: no cover - defensive
            normalized = [normalized]
        # normalize_value drops readOnly sub-attributes and empty elements
        out = [e for e in normalized if not _is_empty(e)]
        if self._is_members(top):
            _member_ids(out)  # a member is identified by its value: required
        return out

    def _decode_element(self, top: AttributeDef, element: Any, from_text: bool) -> Any:
        """Entra's app-role forms: an element given as JSON text, or whose ``value`` is
        JSON text of the whole role (``{"id": ..., "value": "Admin", "displayName": ...}``).
        A role decoded from text is mapped onto the schema (``displayName`` -> ``display``,
        Entra's role ``id`` dropped)."""
        if isinstance(element, str) and element.lstrip().startswith("{"):
            element, from_text = _decode_json_text(element), True
        if not isinstance(element, dict):
            return element
        if from_text:
            return _map_role(top, {}, element)
        for key, inner in element.items():
            if (
                isinstance(key, str)
                and key.lower() == "value"
                and isinstance(inner, str)
                and inner.lstrip().startswith("{")
            ):
                try:
                    decoded = json.loads(inner)
                except ValueError:
                    return element
                if not isinstance(decoded, dict) or "value" not in decoded:
                    return element
                _quirk("patch_value_json_text")
                return _map_role(top, {k: v for k, v in element.items() if k != key}, decoded)
        return element

    def norm_complex(self, top: AttributeDef, value: Any) -> dict[str, Any] | None:
        """A value for a single-valued complex attribute -> normalised dict (None: unassign)."""
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.lstrip().startswith("{"):
            value = _decode_json_text(value)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            if top.sub("value") is None:
                raise InvalidValue(f"'{top.name}' is complex: send an object")
            # Entra: "path": "...:manager", "value": "<id>"
            _quirk("patch_manager_string")
            value = {"value": value}
        elif isinstance(value, list):
            if len(value) != 1:
                raise InvalidValue(f"'{top.name}' is single-valued: send one object")
            # the manager as [{"$ref": ..., "value": ...}]
            _quirk("single_element_list_for_single_valued")
            value = value[0]
        if not isinstance(value, dict):
            raise InvalidValue(f"'{top.name}' is complex: send an object")
        normalized = self.norm(top, value)  # readOnly sub-attributes dropped
        return normalized if isinstance(normalized, dict) else None

    # ---- dispatch -------------------------------------------------------------------

    def apply(self, op: PatchOp) -> None:
        if op.path is None:
            if op.op == "remove":
                raise NoTarget("'remove' requires a 'path' (RFC 7644 3.5.2.2)")
            self.apply_no_path(op.op, op.value)
            return
        self.apply_path(op.op, op.path, op.value)

    def apply_no_path(self, kind: str, value: Any) -> None:
        """RFC 7644 3.5.2.1/3.5.2.3 without path: ``value`` is a set of attributes."""
        if isinstance(value, str) and value.lstrip().startswith("{"):
            value = _decode_json_text(value)
        if not isinstance(value, dict):
            raise InvalidValue("Without 'path', 'value' must be an object of attributes")
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValue("Attribute names must be strings")
            low = key.lower()
            if low == "schemas":
                continue  # extension URNs in 'schemas' follow the attributes present
            ext = self.rtype.extensions.get(low)
            if ext is not None or low == self.rtype.schema.id.lower():
                schema = ext[0] if ext is not None else self.rtype.schema
                if item is None and ext is not None and kind == "replace":
                    self.remove_extension(schema.id)
                    continue
                if not isinstance(item, dict):
                    raise InvalidValue(f"'{key}' must be an object of attributes")
                for sub_key, sub_item in item.items():
                    self._apply_keyed(kind, f"{schema.id}:{sub_key}", sub_item)
                continue
            if "." in key or low.startswith("urn:"):
                # Entra/Okta: {"name.givenName": ..., "urn:...:User:employeeNumber": ...}
                _quirk("patch_no_path_dotted_keys")
            self._apply_keyed(kind, key, item)

    def _apply_keyed(self, kind: str, key: str, item: Any) -> None:
        try:
            path = parse_path(key, self.rtype)
        except InvalidPath:
            if self.unknown == "ignore" and not _path_head_known(self.rtype, key):
                return
            raise InvalidPath(f"Unknown or invalid attribute '{key}' in 'value'") from None
        top = self._resolve_top(path.attr)
        if top.mutability == "readOnly" and path.attr.sub is None and path.filter is None:
            current = self.get(self._loc(top))
            if current is not None and item == current:
                # Okta's group rename sends the group's own (readOnly) id in the value.
                _quirk("patch_readonly_id_equal")
                return
        self.apply_path(kind, path, item)

    def apply_path(self, kind: str, path: PatchPath, value: Any) -> None:
        if _is_whole_extension(path):
            assert path.attr.uri is not None
            if kind == "remove":
                self.remove_extension(path.attr.uri)
            else:
                self.apply_no_path(kind, {path.attr.uri: value})
            return
        top = self._resolve_top(path.attr)
        loc = self._loc(top)
        if top.mutability == "readOnly":
            raise Mutability(f"'{loc.name()}' is readOnly")
        if (
            self.members_external
            and self.members_def is not None
            and top is self.members_def
            and loc.ext is None
        ):
            self.member_change(kind, path, value)
            return
        sub_name = path.attr.sub
        if path.filter is not None:
            if not top.multi_valued:
                raise InvalidPath(f"A value filter needs a multi-valued attribute: '{path}'")
            self.apply_filtered(kind, loc, path, value)
        elif sub_name is not None:
            sub = top.sub(sub_name)
            if sub is None:
                raise InvalidPath(f"Unknown sub-attribute '{path}'")
            if top.multi_valued:
                self.apply_sub_of_all(kind, loc, sub, value)
            else:
                self.apply_sub(kind, loc, sub, value)
        elif top.multi_valued:
            self.apply_multi(kind, loc, value)
        elif top.is_complex:
            self.apply_complex(kind, loc, value)
        else:
            self.apply_simple(kind, loc, value)

    # ---- simple and complex single-valued ----------------------------------------------

    def apply_simple(self, kind: str, loc: _Loc, value: Any) -> None:
        old = self.get(loc)
        if kind == "remove" or value is None:
            if kind == "add" and value is None:
                raise InvalidValue(f"'add' needs a value for '{loc.name()}'")
            _check_immutable(loc.name(), loc.top, old, None)
            self.store(loc, None)
            return
        new = self.norm(loc.top, value)
        _check_immutable(loc.name(), loc.top, old, new)
        self.store(loc, new)

    def apply_complex(self, kind: str, loc: _Loc, value: Any) -> None:
        old = self.get(loc)
        if kind == "remove":
            _check_immutable(loc.name(), loc.top, old, None)
            for sub in loc.top.sub_order:
                if isinstance(old, dict) and sub.name in old:
                    _check_immutable(f"{loc.name()}.{sub.name}", sub, old[sub.name], None)
            self.store(loc, None)
            return
        new = self.norm_complex(loc.top, value)
        if new is None:
            if kind == "add":
                raise InvalidValue(f"'add' needs a value for '{loc.name()}'")
            self.apply_complex("remove", loc, None)
            return
        # RFC 7644 3.5.2.1/3.5.2.3: given sub-attributes replace, the others stay.
        current = self.mutable(loc)
        merged: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
        for sub_name, sub_value in new.items():
            sub_def = loc.top.sub(sub_name)
            if sub_def is not None:
                _check_immutable(
                    f"{loc.name()}.{sub_def.name}", sub_def, merged.get(sub_def.name), sub_value
                )
            merged[sub_name] = sub_value
        _check_immutable(loc.name(), loc.top, old, merged)
        self.store(loc, merged)

    def apply_sub(self, kind: str, loc: _Loc, sub: AttributeDef, value: Any) -> None:
        name = f"{loc.name()}.{sub.name}"
        if sub.mutability == "readOnly":
            raise Mutability(f"'{name}' is readOnly")
        current = self.get(loc)
        old = current.get(sub.name) if isinstance(current, dict) else None
        if kind == "remove" or value is None:
            if kind == "add":
                raise InvalidValue(f"'add' needs a value for '{name}'")
            if old is None:
                return
            _check_immutable(name, sub, old, None)
            owned = self.mutable(loc)
            owned.pop(sub.name, None)
            self.store(loc, owned)
            return
        new = self.norm(sub, value)
        _check_immutable(name, sub, old, new)
        owned = self.mutable(loc)
        owned = owned if isinstance(owned, dict) else {}
        owned[sub.name] = new
        self.store(loc, owned)

    # ---- multi-valued ----------------------------------------------------------------

    def apply_multi(self, kind: str, loc: _Loc, value: Any) -> None:
        top = loc.top
        old = self.get(loc)
        if kind == "remove":
            if value is None or value == []:
                _check_immutable(loc.name(), top, old, None)
                self.store(loc, None)
                return
            # {"op":"Remove","path":"members","value":[{"value":"<id>"}]}: only those.
            if self._is_members(top):
                _quirk("patch_members_remove_by_value")
            targets = self.norm_elements(top, value)
            if not isinstance(old, list) or not old:
                return
            _check_immutable(loc.name(), top, old, None)
            if self._is_members(top):
                # a set lookup keeps removals from large groups linear
                gone = {t["value"] for t in targets}
                kept = [e for e in old if not (isinstance(e, dict) and e.get("value") in gone)]
            else:
                kept = [e for e in old if not any(self._same(top, e, t) for t in targets)]
            if len(kept) != len(old):
                kept_ids = {id(e) for e in kept}
                owned = self.mutable(loc)  # a copy: later operations may change elements
                self.store(loc, [e for e, o in zip(owned, old, strict=True) if id(o) in kept_ids])
            return
        new_elements = self.norm_elements(top, value)
        if kind == "replace":
            if self._is_members(top):
                new_elements = _dedup_members(new_elements)
            _check_immutable(loc.name(), top, old, new_elements or None)
            _check_one_primary(top, new_elements)
            self.store(loc, new_elements)
            return
        # add: append, merging into an element that is already there
        if not new_elements:
            return
        if (
            top.mutability == "immutable"
            and isinstance(old, list)
            and old
            and any(not any(self._same(top, e, n) for e in old) for n in new_elements)
        ):
            raise Mutability(f"'{loc.name()}' is immutable and already has a value")
        current = self.mutable(loc)
        elements: list[Any] = current if isinstance(current, list) else []
        fresh: list[Any] = []
        if self._is_members(top):
            # Members are identified by value; one already present is left as it is.
            present = {e.get("value") for e in elements if isinstance(e, dict)}
            for element in new_elements:
                if element["value"] not in present:
                    present.add(element["value"])
                    elements.append(element)
            self.store(loc, elements)
            return
        for element in new_elements:
            existing = next((e for e in elements if self._same(top, e, element)), None)
            if existing is None:
                elements.append(element)
                fresh.append(element)
            elif isinstance(existing, dict):
                existing.update(element)
                fresh.append(existing)
        _fix_primary(top, elements, fresh)
        self.store(loc, elements)

    def apply_sub_of_all(self, kind: str, loc: _Loc, sub: AttributeDef, value: Any) -> None:
        """``emails.type`` without a filter: every element's sub-attribute."""
        name = f"{loc.name()}.{sub.name}"
        if sub.mutability == "readOnly":
            raise Mutability(f"'{name}' is readOnly")
        current = self.get(loc)
        elements = current if isinstance(current, list) else []
        if kind == "remove" or value is None:
            if kind == "add":
                raise InvalidValue(f"'add' needs a value for '{name}'")
            if not any(isinstance(e, dict) and sub.name in e for e in elements):
                return
            owned = self.mutable(loc)
            for element in owned:
                if isinstance(element, dict) and sub.name in element:
                    _check_immutable(name, sub, element[sub.name], None)
                    del element[sub.name]
            self.store(loc, [e for e in owned if not _is_empty(e)])
            return
        new = self.norm(sub, value)
        if not elements:
            if kind == "replace":
                raise NoTarget(f"'{loc.name()}' has no values to set '{sub.name}' on")
            self.store(loc, [{sub.name: new}])
            return
        owned = self.mutable(loc)
        for element in owned:
            if isinstance(element, dict):
                _check_immutable(name, sub, element.get(sub.name), new)
                element[sub.name] = new
        if sub.name == "primary" and new is True and len(owned) > 1:
            raise InvalidValue(f"At most one '{loc.name()}' value may be primary")
        self.store(loc, owned)

    def apply_filtered(self, kind: str, loc: _Loc, path: PatchPath, value: Any) -> None:
        top = loc.top
        assert path.filter is not None
        vsub: AttributeDef | None = None
        if path.sub is not None:
            vsub = top.sub(path.sub)
            if vsub is None:
                raise InvalidPath(f"Unknown sub-attribute '{top.name}.{path.sub}'")
            if vsub.mutability == "readOnly":
                raise Mutability(f"'{loc.name()}.{vsub.name}' is readOnly")
        current = self.get(loc)
        elements = current if isinstance(current, list) else []
        # Inside a valuePath the filter's paths address the element's own sub-attributes,
        # so the compiled predicate is applied to each element directly.
        pred = compile_filter(path.filter)
        hits = [i for i, e in enumerate(elements) if isinstance(e, dict) and pred(e)]

        if kind == "remove":
            if not hits:
                return  # nothing to remove is not an error (RFC 7644 3.5.2.2)
            owned = self.mutable(loc)
            if vsub is None:
                _check_immutable(loc.name(), top, owned, None)
                hit_set = set(hits)
                self.store(loc, [e for i, e in enumerate(owned) if i not in hit_set])
                return
            name = f"{loc.name()}.{vsub.name}"
            for i in hits:
                element = owned[i]
                if isinstance(element, dict) and vsub.name in element:
                    _check_immutable(name, vsub, element[vsub.name], None)
                    del element[vsub.name]
            self.store(loc, [e for e in owned if not _is_empty(e)])
            return

        if value is None:
            if kind == "add":
                raise InvalidValue(f"'add' needs a value for '{path}'")
            self.apply_filtered("remove", loc, path, None)
            return

        if vsub is not None:
            new_sub = self.norm(vsub, value)
            if not hits:
                created = self._element_from_filter(loc, path.filter)
                created[vsub.name] = new_sub
                self._add_created(loc, created, kind)
                return
            owned = self.mutable(loc)
            fresh = []
            for i in hits:
                element = owned[i]
                if not isinstance(element, dict):
                    raise InvalidPath(f"'{top.name}' values are not complex: '{path}'")
                _check_immutable(f"{loc.name()}.{vsub.name}", vsub, element.get(vsub.name), new_sub)
                element[vsub.name] = new_sub
                fresh.append(element)
            if vsub.name.lower() == "primary" and new_sub is True and len(fresh) > 1:
                raise InvalidValue(f"At most one '{loc.name()}' value may be primary")
            _fix_primary(top, owned, fresh)
            self.store(loc, owned)
            return

        # whole elements: replace them (RFC 7644 3.5.2.3) or merge into them (add)
        replacements = self.norm_elements(top, value)
        if top.is_complex and len(replacements) != 1:
            raise InvalidValue(f"'{path}' takes one {top.name} value (an object)")
        if not hits:
            created = self._element_from_filter(loc, path.filter)
            created.update(replacements[0])
            self._add_created(loc, created, kind)
            return
        owned = self.mutable(loc)
        fresh = []
        for i in hits:
            old_element = owned[i]
            if kind == "add" and isinstance(old_element, dict):
                new_element: Any = {**old_element, **replacements[0]}
            else:
                new_element = _clone(replacements[0])
            if isinstance(old_element, dict) and isinstance(new_element, dict):
                for sub in top.sub_order:
                    if sub.name in old_element:
                        _check_immutable(
                            f"{loc.name()}.{sub.name}",
                            sub,
                            old_element[sub.name],
                            new_element.get(sub.name),
                        )
            owned[i] = new_element
            fresh.append(new_element)
        if len(fresh) > 1:
            _check_one_primary(top, fresh)
        _fix_primary(top, owned, fresh)
        self.store(loc, owned)

    def _add_created(self, loc: _Loc, created: dict[str, Any], kind: str) -> None:
        # Entra: add (or replace) emails[type eq "work"].value when the user has no work
        # email. RFC 7644 3.5.2.3 says noTarget for the replace; Entra sends it anyway.
        _quirk("patch_filtered_add_creates" if kind == "add" else "patch_filtered_replace_creates")
        normalized = self.norm_elements(loc.top, [created])
        current = self.mutable(loc)
        elements: list[Any] = current if isinstance(current, list) else []
        elements.extend(normalized)
        _fix_primary(loc.top, elements, normalized)
        self.store(loc, elements)

    def _element_from_filter(self, loc: _Loc, flt: Filter) -> dict[str, Any]:
        """The element an ``eq``-only filter describes (``type eq "work"`` -> {type: work})."""
        terms = _eq_terms(flt)
        if terms is None:
            raise NoTarget(
                f"No value of '{loc.name()}' matches the filter, and the filter does not "
                "describe a value to create (only 'eq' terms joined by 'and' do)"
            )
        created: dict[str, Any] = {}
        for sub_name, raw in terms:
            sub = loc.top.sub(sub_name)
            if sub is None:
                raise InvalidPath(f"Unknown sub-attribute '{loc.top.name}.{sub_name}'")
            created[sub.name] = raw
        return created

    def _is_members(self, top: AttributeDef) -> bool:
        return top is self.members_def

    def _same(self, top: AttributeDef, a: Any, b: Any) -> bool:
        """Whether ``b`` names the same element as ``a`` (for add-dedup and remove-by-value)."""
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return bool(a == b)
        if self._is_members(top):
            return a.get("value") is not None and a.get("value") == b.get("value")
        if "value" in b and top.sub("value") is not None:
            if a.get("value") != b["value"]:
                return False
            return "type" not in a or "type" not in b or a["type"] == b["type"]
        return all(a.get(k) == v for k, v in b.items())

    def remove_extension(self, urn: str) -> None:
        schema = self.rtype.schema_for_uri(urn)
        if schema is None:  # pragma: no cover - parse only builds known URNs
            raise InvalidPath(f"Unknown schema '{urn}'")
        current = self.res.get(schema.id)
        if isinstance(current, dict):
            for top in schema.order:
                if top.name in current:
                    loc = _Loc(top, schema.id)
                    if top.mutability == "readOnly":
                        raise Mutability(f"'{loc.name()}' is readOnly")
                    _check_immutable(loc.name(), top, current[top.name], None)
                    self.store(loc, None)

    # ---- members kept outside the dict -------------------------------------------------

    def member_change(self, kind: str, path: PatchPath, value: Any) -> None:
        assert self.members_def is not None
        top = self.members_def
        if path.attr.sub is not None or path.sub is not None:
            raise ValueError("needs_members(): a members sub-attribute needs loaded members")
        self._touch(_Loc(top, None))
        if path.filter is not None:
            values = _member_values_of_filter(path.filter)
            if kind != "remove" or values is None:
                raise ValueError("needs_members(): this members filter needs loaded members")
            self._emit(MemberChange("remove", values=tuple(str(v) for v in values)))
            return
        if kind == "remove":
            if value is None or value == []:
                self._emit(MemberChange("clear"))
                return
            _quirk("patch_members_remove_by_value")
            elements = self.norm_elements(top, value)
            self._emit(MemberChange("remove", values=tuple(_member_ids(elements))))
            return
        elements = self.norm_elements(top, value)
        ids = _member_ids(elements)  # every member needs a value
        if kind == "replace":
            if not elements:
                self._emit(MemberChange("clear"))
            else:
                self._emit(MemberChange("set", members=tuple(_dedup_members(elements))))
            return
        if ids:
            self._emit(MemberChange("add", members=tuple(_dedup_members(elements))))

    def _emit(self, change: MemberChange) -> None:
        self.member_changes.append(change)

    # ---- finishing -------------------------------------------------------------------

    def finish(self) -> PatchResult:
        self._sync_extension_schemas()
        changed = self._changed()
        if changed or self.member_changes:
            # RFC 7643 2.2 "required"; see _check_required_after_patch for the scimType.
            _check_required_after_patch(self.rtype, self.res)
        return PatchResult(self.res, list(self.member_changes), frozenset(changed))

    def _sync_extension_schemas(self) -> None:
        """An extension's URN is in ``schemas`` exactly when it has attributes."""
        if not self.touched_ext:
            return
        schemas = self.res.get("schemas")
        ids = list(schemas) if isinstance(schemas, list) else [self.rtype.schema.id]
        for urn in sorted(self.touched_ext):
            content = self.res.get(urn)
            present = isinstance(content, dict) and bool(content)
            if not present:
                self.res.pop(urn, None)
            listed = [s for s in ids if isinstance(s, str) and s.lower() == urn.lower()]
            if present and not listed:
                ids.append(urn)
            elif not present and listed:
                ids = [s for s in ids if s not in listed]
        if ids != schemas:
            self.res["schemas"] = ids

    def _changed(self) -> set[str]:
        changed: set[str] = set()
        for (ext, _), loc in self.touched.items():
            if self.members_external and loc.top is self.members_def:
                if self.member_changes:
                    changed.add(loc.name())
                continue
            old_container = self.original if ext is None else self.original.get(ext)
            old = old_container.get(loc.top.name) if isinstance(old_container, dict) else None
            new = self.get(loc)
            if old == new:
                continue
            if loc.top.is_complex and not loc.top.multi_valued:
                old_d = old if isinstance(old, dict) else {}
                new_d = new if isinstance(new, dict) else {}
                for key in old_d.keys() | new_d.keys():
                    if old_d.get(key) != new_d.get(key):
                        changed.add(f"{loc.name()}.{key}")
            else:
                changed.add(loc.name())
        return changed


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _quirk(name: str) -> None:
    # Like scimd.query.parse: a name not (yet) registered must not turn a tolerated request
    # into a 500; tests check that every name this module uses is registered.
    if name in quirks.QUIRKS:
        quirks.record(name)


def _check_required_after_patch(rtype: ResourceType, resource: dict[str, Any]) -> None:
    """Removing (or unassigning) a required attribute is 400 ``invalidValue``.

    RFC 7644 3.5.2 leaves the code to 3.12, whose table defines ``invalidValue`` as "A
    required value was missing, or the value specified was not compatible with the
    operation or attribute type"; ``mutability`` is about readOnly/immutable attributes,
    which a required readWrite attribute (``userName``) is not.
    """
    try:
        check_required(rtype, resource)
    except InvalidValue:
        raise
    except ScimError as exc:
        if exc.status != 400:
            raise
        raise InvalidValue(exc.detail) from exc


def _check_immutable(name: str, attr: AttributeDef, old: Any, new: Any) -> None:
    """RFC 7644 3.5.2: an immutable attribute may be set when it has no value, not changed."""
    if attr.mutability != "immutable" or _is_empty(old) or old == new:
        return
    raise Mutability(f"'{name}' is immutable and already has a value")


def _check_one_primary(top: AttributeDef, elements: Iterable[Any]) -> None:
    if top.sub("primary") is None:
        return
    if sum(1 for e in elements if isinstance(e, dict) and e.get("primary") is True) > 1:
        raise InvalidValue(f"At most one '{top.name}' value may be primary (RFC 7643 2.4)")


def _fix_primary(top: AttributeDef, elements: list[Any], fresh: list[Any]) -> None:
    """A value newly set primary takes the flag from the others (RFC 7643 2.4)."""
    if top.sub("primary") is None:
        return
    primaries = [e for e in fresh if isinstance(e, dict) and e.get("primary") is True]
    if len(primaries) > 1:
        raise InvalidValue(f"At most one '{top.name}' value may be primary (RFC 7643 2.4)")
    if not primaries:
        return
    for element in elements:
        if (
            element is not primaries[0]
            and isinstance(element, dict)
            and element.get("primary") is True
        ):
            element["primary"] = False


def _eq_terms(flt: Filter) -> list[tuple[str, Any]] | None:
    if isinstance(flt, Comparison):
        if flt.op != "eq" or flt.path.sub is None:
            return None
        return [(flt.path.sub, flt.value)]
    if isinstance(flt, And):
        left = _eq_terms(flt.left)
        right = _eq_terms(flt.right)
        return None if left is None or right is None else left + right
    return None


def _member_ids(elements: list[Any]) -> list[str]:
    ids: list[str] = []
    for element in elements:
        value = element.get("value") if isinstance(element, dict) else None
        if not isinstance(value, str) or not value:
            raise InvalidValue("Every member needs a 'value' (the member's id)")
        ids.append(value)
    return ids


def _dedup_members(elements: list[Any]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for element in elements:
        if element["value"] not in seen:
            seen.add(element["value"])
            out.append(element)
    return out


def _map_role(top: AttributeDef, base: dict[str, Any], decoded: dict[str, Any]) -> dict[str, Any]:
    """Merge a role object Entra serialised as JSON text into an element of ``top``."""
    merged = dict(base)
    for key, value in decoded.items():  # JSON object keys are strings
        sub = top.sub(key)
        if sub is not None:
            merged[sub.name] = value
        elif key.lower() == "displayname" and top.sub("display") is not None:
            merged["display"] = value
        # other keys (the role's "id") have no place in the schema
    return merged


def _decode_json_text(text: str) -> Any:
    try:
        decoded = json.loads(text)
    except ValueError:
        raise InvalidValue("'value' is neither an object nor valid JSON text") from None
    # Entra: "value": "{\"id\":\"...\",\"value\":\"Admin\"}" for a complex attribute.
    _quirk("patch_value_json_text")
    return decoded


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _clone(value: Any) -> Any:
    """Deep copy of JSON data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value
