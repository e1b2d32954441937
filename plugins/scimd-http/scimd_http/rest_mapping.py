"""The declarative description of a non-SCIM REST API (the ``rest`` backend's mapping file):
endpoints per resource type, the field mapping both ways, the filters the API answers,
its pagination style and its error format. ``load_mapping`` reads and checks a TOML file;
``ResourceMapping.to_api`` / ``to_scim`` convert resources. See docs/http-backend.md.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scimd import errors

__all__ = [
    "ERROR_KINDS",
    "ApiSpec",
    "Endpoint",
    "FieldMap",
    "FilterMap",
    "MappingError",
    "Pagination",
    "ResourceMapping",
    "RestMapping",
    "get_path",
    "load_mapping",
    "parse_mapping",
    "set_path",
]

#: Names an API error may be mapped to (RFC 7644 3.12 scimTypes and plain statuses).
ERROR_KINDS: dict[str, type[errors.ScimError]] = {
    "uniqueness": errors.Uniqueness,
    "invalidValue": errors.InvalidValue,
    "invalidFilter": errors.InvalidFilter,
    "invalidSyntax": errors.InvalidSyntax,
    "invalidPath": errors.InvalidPath,
    "mutability": errors.Mutability,
    "tooMany": errors.TooMany,
    "sensitive": errors.Sensitive,
    "noTarget": errors.NoTarget,
    "badRequest": errors.BadRequest,
    "forbidden": errors.Forbidden,
    "notFound": errors.NotFound,
    "conflict": errors.Conflict,
    "preconditionFailed": errors.PreconditionFailed,
    "unavailable": errors.ServiceUnavailable,
}

OPERATIONS = ("list", "get", "create", "replace", "delete")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_PATH = re.compile(
    r"^(?:(?P<urn>urn:[^\[\]]+):)?(?P<attr>[A-Za-z][\w$-]*)"
    r"(?:\[(?:(?P<sel>primary eq true|type eq \"[^\"]*\")|(?P<all>))\])?"
    r"(?:\.(?P<sub>[A-Za-z][\w$-]*))?$"
)
_API_PATH = re.compile(r"^[A-Za-z_$][\w$-]*(\.[A-Za-z_$][\w$-]*)*(\[\](\.[A-Za-z_$][\w$-]*)?)?$")


class MappingError(ValueError):
    """The mapping file is unreadable or inconsistent (message names the key)."""


def get_path(doc: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``doc`` (``""``: ``doc`` itself), or None."""
    if not path:
        return doc
    node = doc
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set dotted ``path`` in ``doc``, creating objects on the way."""
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    """With ``{id}`` where the resource id goes (URL-quoted)."""


@dataclass(frozen=True, slots=True)
class ScimPath:
    urn: str | None
    attr: str
    sub: str | None
    selector: Literal["", "primary", "type", "all"]
    type_value: str = ""

    @property
    def top(self) -> str:
        """The top-level key of the resource the path lives under."""
        return self.urn or self.attr

    def whole(self) -> bool:
        """True when the path names a whole top-level attribute."""
        return self.urn is None and self.sub is None and self.selector == ""


@dataclass(frozen=True, slots=True)
class FieldMap:
    scim: ScimPath
    scim_text: str
    api: str
    values: Mapping[str, Any] = field(default_factory=dict)
    """SCIM value (as TOML key text: ``"true"``) -> API value; read the other way too."""
    direction: Literal["both", "read", "write"] = "both"


@dataclass(frozen=True, slots=True)
class FilterMap:
    path_key: str
    """``Capabilities.filterable`` spelling of the SCIM attribute (``username``)."""
    op: str
    param: str
    field: FieldMap | None
    """The field mapping whose ``values`` convert the filter value, if any."""


@dataclass(frozen=True, slots=True)
class Pagination:
    style: Literal["page", "offset", "cursor", "url"]
    items: str = "data"
    total: str = ""
    size_param: str = "per_page"
    page_param: str = "page"
    first_page: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next: str = ""
    """JSON path of the next cursor (``cursor``) or the next page's URL (``url``)."""
    max_page_size: int = 100
    max_scan: int = 10000


@dataclass(frozen=True, slots=True)
class ApiSpec:
    media_type: str = "application/json"
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    error_code: str = ""
    error_message: str = ""
    error_codes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """API error code -> (error kind, detail or "")."""
    error_statuses: Mapping[int, str] = field(default_factory=dict)


class ResourceMapping:
    """One SCIM resource type over one API collection."""

    def __init__(
        self,
        name: str,
        endpoints: Mapping[str, Endpoint],
        fields: list[FieldMap],
        *,
        filters: list[FilterMap],
        constants: Mapping[str, Any],
        id_field: str = "id",
        item: str = "",
        wrap: str = "",
        created: str = "",
        last_modified: str = "",
        version: str = "",
        extras: str = "",
        groups_param: str = "",
    ) -> None:
        self.name = name
        self.endpoints = dict(endpoints)
        self.fields = fields
        self.filters = filters
        self.constants = dict(constants)
        self.id_field = id_field
        self.item = item
        self.wrap = wrap
        self.created = created
        self.last_modified = last_modified
        self.version = version
        self.extras = extras
        self.groups_param = groups_param
        self.covered = {f.scim.attr for f in fields if f.scim.whole() and f.direction == "both"}

    def endpoint(self, op: str) -> Endpoint:
        found = self.endpoints.get(op)
        if found is None:
            raise errors.MethodNotAllowed(f"the API offers no '{op}' operation for {self.name}")
        return found

    # -- SCIM -> API ------------------------------------------------------------------------

    def to_api(self, resource: Mapping[str, Any], *, nulls: bool = False) -> dict[str, Any]:
        """``resource`` as the API's body. ``nulls``: absent attributes are sent as null
        (a partial update, PATCH, must clear what the SCIM state no longer has)."""
        out: dict[str, Any] = {}
        for fm in self.fields:
            if fm.direction == "read":
                continue
            value = _read_scim(resource, fm.scim)
            if value is None:
                if nulls:
                    set_path(out, fm.api.split("[]")[0], [] if "[]" in fm.api else None)
                continue
            set_path(out, fm.api.split("[]")[0], _to_api_value(fm, value))
        for key, value in self.constants.items():
            set_path(out, key, copy.deepcopy(value))
        if self.extras:
            rest = {
                k: copy.deepcopy(v)
                for k, v in resource.items()
                if k not in ("id", "meta", "groups") and k not in self.covered
            }
            set_path(out, self.extras, rest)
        return {self.wrap: out} if self.wrap else out

    # -- API -> SCIM ------------------------------------------------------------------------

    def to_scim(self, doc: Any, schema_urn: str) -> dict[str, Any]:
        """An API resource as SCIM (without ``meta``: the backend adds it)."""
        if not isinstance(doc, Mapping):
            raise errors.ServiceUnavailable(f"the API answered a {self.name} that is not an object")
        rid = doc.get(self.id_field)
        if rid is None or isinstance(rid, bool | dict | list):
            raise errors.ServiceUnavailable(f"the API answered a {self.name} without an id")
        out: dict[str, Any] = {}
        extra = get_path(doc, self.extras) if self.extras else None
        if isinstance(extra, Mapping):
            out.update(copy.deepcopy(dict(extra)))
        out.setdefault("schemas", [schema_urn])
        for fm in self.fields:
            if fm.direction == "write":
                continue
            _write_scim(out, fm, _from_api_value(fm, _api_value(doc, fm.api)))
        for key in ("id", "meta", "groups"):
            out.pop(key, None)
        out["id"] = str(rid)
        return out


def _api_value(doc: Any, api: str) -> Any:
    if "[]" not in api:
        return get_path(doc, api)
    base, _, key = api.partition("[]")
    items = get_path(doc, base)
    if not isinstance(items, list):
        return None
    key = key.lstrip(".")
    if not key:
        return list(items)
    return [get_path(i, key) for i in items if get_path(i, key) is not None]


def _to_api_value(fm: FieldMap, value: Any) -> Any:
    if fm.scim.selector == "all":
        key = fm.api.partition("[]")[2].lstrip(".")
        return [{key: v} for v in value] if key else list(value)
    if fm.values:
        text = _value_key(value)
        if text not in fm.values:
            raise errors.InvalidValue(
                f"{fm.scim_text} value {value!r} has no equivalent in the API "
                f"(mapped values: {', '.join(sorted(fm.values))})"
            )
        return copy.deepcopy(fm.values[text])
    return copy.deepcopy(value)


def _value_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_api_value(fm: FieldMap, value: Any) -> Any:
    if value is None or not fm.values:
        return value
    for scim_text, api_value in fm.values.items():
        if api_value == value:
            if scim_text in ("true", "false"):
                return scim_text == "true"
            return scim_text
    return None  # an API value without SCIM equivalent: the attribute is absent


def _container(resource: Mapping[str, Any], p: ScimPath) -> Any:
    return resource.get(p.urn, {}).get(p.attr) if p.urn else resource.get(p.attr)


def _select(items: list[Any], p: ScimPath) -> dict[str, Any] | None:
    objs = [i for i in items if isinstance(i, dict)]
    if p.selector == "primary":
        return next((i for i in objs if i.get("primary") is True), objs[0] if objs else None)
    return next((i for i in objs if i.get("type") == p.type_value), None)


def _read_scim(resource: Mapping[str, Any], p: ScimPath) -> Any:
    node = _container(resource, p)
    if p.selector == "all":
        if not isinstance(node, list):
            return None
        return [i.get(p.sub) if p.sub else i for i in node if isinstance(i, dict)] or None
    if p.selector:
        node = _select(node, p) if isinstance(node, list) else None
    if p.sub:
        return node.get(p.sub) if isinstance(node, dict) else None
    return node


def _write_scim(out: dict[str, Any], fm: FieldMap, value: Any) -> None:
    p = fm.scim
    holder: dict[str, Any] = out
    if p.urn:
        holder = out.setdefault(p.urn, {}) if value is not None else out.get(p.urn, {})
    if p.selector == "all":
        # The API's list is authoritative; elements kept in extras keep their other
        # sub-attributes (display, type) when their value is still listed.
        old = {
            str(i.get(p.sub)): i for i in holder.get(p.attr) or [] if isinstance(i, dict) and p.sub
        }
        vals = value if isinstance(value, list) else []
        merged = [old.get(str(v)) or {p.sub: v} for v in vals] if p.sub else vals
        if merged:
            holder[p.attr] = merged
        else:
            holder.pop(p.attr, None)
        return
    if p.selector:
        items = holder.get(p.attr)
        items = items if isinstance(items, list) else []
        target = _select(items, p)
        if value is None:
            if target is not None and p.sub:
                target.pop(p.sub, None)
            return
        if target is None:
            target = {"primary": True} if p.selector == "primary" else {"type": p.type_value}
            items.append(target)
            holder[p.attr] = items
        target[p.sub or "value"] = value
        return
    if p.sub:
        parent = holder.get(p.attr)
        if value is None:
            if isinstance(parent, dict):
                parent.pop(p.sub, None)
                if not parent:
                    holder.pop(p.attr, None)
            return
        if not isinstance(parent, dict):
            parent = holder[p.attr] = {}
        parent[p.sub] = value
        return
    if value is None:
        holder.pop(p.attr, None)
    else:
        holder[p.attr] = value
    if p.urn and not holder:
        out.pop(p.urn, None)


@dataclass(frozen=True, slots=True)
class RestMapping:
    api: ApiSpec
    pagination: Pagination
    resources: Mapping[str, ResourceMapping]

    def resource(self, name: str) -> ResourceMapping:
        found = self.resources.get(name)
        if found is None:
            raise errors.NotFound(f"resource type {name} is not mapped to the API")
        return found


# -- loading --------------------------------------------------------------------------------


def load_mapping(path: Path) -> RestMapping:
    """Read and check a mapping file; ``MappingError`` names the offending key."""
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise MappingError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: {exc}") from None
    try:
        return parse_mapping(doc)
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from None


def _table(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise MappingError(f"{where}{key} must be a table")
    return value


def _str(doc: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise MappingError(f"{where}{key} must be a string")
    return value


def _int(doc: Mapping[str, Any], key: str, where: str, default: int, minimum: int) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise MappingError(f"{where}{key} must be an integer >= {minimum}")
    return value


def _check_keys(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise MappingError(f"{where}: unknown keys {unknown}; known: {sorted(allowed)}")


def _api_path(text: str, where: str) -> str:
    if not _API_PATH.match(text):
        raise MappingError(f"{where}: {text!r} is not a JSON path like 'a.b' or 'list[].key'")
    return text


def parse_scim_path(text: str, where: str) -> ScimPath:
    m = _PATH.match(text)
    if m is None:
        raise MappingError(
            f"{where}: {text!r} is not a mapped SCIM path (attr, attr.sub, "
            'attr[primary eq true].sub, attr[type eq "x"].sub, attr[].sub, urn:...:attr)'
        )
    sel = m.group("sel") or ""
    if m.group("all") is not None:
        kind: Literal["", "primary", "type", "all"] = "all"
    elif sel.startswith("primary"):
        kind = "primary"
    elif sel.startswith("type"):
        kind = "type"
    else:
        kind = ""
    type_value = sel.split('"')[1] if kind == "type" else ""
    return ScimPath(m.group("urn"), m.group("attr"), m.group("sub"), kind, type_value)


def _endpoint(text: Any, where: str) -> Endpoint:
    if not isinstance(text, str) or " " not in text.strip():
        raise MappingError(f"{where}: expected 'METHOD /path', got {text!r}")
    method, _, path = text.strip().partition(" ")
    method = method.upper()
    path = path.strip()
    if method not in _METHODS or not path.startswith("/"):
        raise MappingError(f"{where}: expected 'METHOD /path', got {text!r}")
    return Endpoint(method, path)


def _field(scim_text: str, spec: Any, where: str) -> FieldMap:
    scim = parse_scim_path(scim_text, where)
    values: dict[str, Any] = {}
    direction = "both"
    if isinstance(spec, str):
        api = spec
    elif isinstance(spec, Mapping):
        _check_keys(spec, {"api", "values", "direction"}, where)
        api = _str(spec, "api", where + ".")
        raw = spec.get("values", {})
        if not isinstance(raw, Mapping):
            raise MappingError(f"{where}.values must be a table")
        values = dict(raw)
        if len({orjson_key(v) for v in values.values()}) != len(values):
            raise MappingError(f"{where}.values: two SCIM values map to the same API value")
        direction = _str(spec, "direction", where + ".", "both")
        if direction not in ("both", "read", "write"):
            raise MappingError(f"{where}.direction must be both, read or write")
    else:
        raise MappingError(f"{where}: expected an API path or a table")
    _api_path(api, where)
    if ("[]" in api) != (scim.selector == "all"):
        raise MappingError(f"{where}: a list ('[]') maps only to a list ('[]') on the other side")
    return FieldMap(scim, scim_text, api, values, direction)  # type: ignore[arg-type]


def orjson_key(value: Any) -> str:
    return repr(value)


def _pagination(doc: Mapping[str, Any]) -> Pagination:
    w = "api.pagination."
    allowed = {
        "style",
        "items",
        "total",
        "size_param",
        "page_param",
        "first_page",
        "offset_param",
        "cursor_param",
        "next",
        "max_page_size",
        "max_scan",
    }
    _check_keys(doc, allowed, "api.pagination")
    style = _str(doc, "style", w, "page")
    if style not in ("page", "offset", "cursor", "url"):
        raise MappingError(f"{w}style must be page, offset, cursor or url")
    nxt = _str(doc, "next", w)
    if style in ("cursor", "url") and not nxt:
        raise MappingError(f"{w}next is required with style = {style!r}")
    return Pagination(
        style=style,  # type: ignore[arg-type]
        items=_str(doc, "items", w, "data"),
        total=_str(doc, "total", w),
        size_param=_str(doc, "size_param", w, "per_page"),
        page_param=_str(doc, "page_param", w, "page"),
        first_page=_int(doc, "first_page", w, 1, 0),
        offset_param=_str(doc, "offset_param", w, "offset"),
        cursor_param=_str(doc, "cursor_param", w, "cursor"),
        next=nxt,
        max_page_size=_int(doc, "max_page_size", w, 100, 1),
        max_scan=_int(doc, "max_scan", w, 10000, 1),
    )


def _api(doc: Mapping[str, Any]) -> ApiSpec:
    _check_keys(doc, {"media_type", "auth_header", "auth_scheme", "errors", "pagination"}, "api")
    errs = _table(doc, "errors", "api.")
    _check_keys(errs, {"code", "message", "codes", "statuses"}, "api.errors")
    codes: dict[str, tuple[str, str]] = {}
    for code, spec in _table(errs, "codes", "api.errors.").items():
        where = f"api.errors.codes.{code}"
        if isinstance(spec, str):
            kind, detail = spec, ""
        elif isinstance(spec, Mapping):
            _check_keys(spec, {"error", "detail"}, where)
            kind, detail = _str(spec, "error", where + "."), _str(spec, "detail", where + ".")
        else:
            raise MappingError(f"{where}: expected an error name or a table")
        if kind not in ERROR_KINDS:
            raise MappingError(f"{where}: unknown error {kind!r}; known: {sorted(ERROR_KINDS)}")
        codes[str(code)] = (kind, detail)
    statuses: dict[int, str] = {}
    for status, kind in _table(errs, "statuses", "api.errors.").items():
        where = f"api.errors.statuses.{status}"
        if not str(status).isdigit() or not 400 <= int(status) <= 599:
            raise MappingError(f"{where}: not an HTTP error status")
        if kind not in ERROR_KINDS:
            raise MappingError(f"{where}: unknown error {kind!r}; known: {sorted(ERROR_KINDS)}")
        statuses[int(status)] = kind
    return ApiSpec(
        media_type=_str(doc, "media_type", "api.", "application/json"),
        auth_header=_str(doc, "auth_header", "api.", "Authorization"),
        auth_scheme=_str(doc, "auth_scheme", "api.", "Bearer"),
        error_code=_str(errs, "code", "api.errors."),
        error_message=_str(errs, "message", "api.errors."),
        error_codes=codes,
        error_statuses=statuses,
    )


_RESOURCE_KEYS = {
    *OPERATIONS,
    "path",
    "id",
    "item",
    "wrap",
    "created",
    "last_modified",
    "version",
    "extras",
    "groups_param",
    "fields",
    "filters",
    "constants",
}


def _resource(name: str, doc: Mapping[str, Any]) -> ResourceMapping:
    w = f"resources.{name}"
    _check_keys(doc, _RESOURCE_KEYS, w)
    base = _str(doc, "path", w + ".")
    endpoints: dict[str, Endpoint] = {}
    if base:
        if not base.startswith("/"):
            raise MappingError(f"{w}.path must start with '/'")
        base = base.rstrip("/")
        endpoints = {
            "list": Endpoint("GET", base),
            "get": Endpoint("GET", base + "/{id}"),
            "create": Endpoint("POST", base),
            "replace": Endpoint("PUT", base + "/{id}"),
            "delete": Endpoint("DELETE", base + "/{id}"),
        }
    for op in OPERATIONS:
        if op in doc:
            if doc[op] == "":
                endpoints.pop(op, None)  # the API has no such operation
            else:
                endpoints[op] = _endpoint(doc[op], f"{w}.{op}")
    for op in ("list", "get", "create"):
        if op not in endpoints:
            raise MappingError(f"{w}: the '{op}' endpoint is required (or set path)")
    for op in ("get", "replace", "delete"):
        if op in endpoints and "{id}" not in endpoints[op].path:
            raise MappingError(f"{w}.{op}: the path needs '{{id}}'")
    fields = [
        _field(str(k), v, f"{w}.fields.{k}") for k, v in _table(doc, "fields", w + ".").items()
    ]
    by_scim = {f.scim_text.lower(): f for f in fields}
    filters: list[FilterMap] = []
    for key, param in _table(doc, "filters", w + ".").items():
        where = f"{w}.filters.{key}"
        attr, _, op = str(key).strip().rpartition(" ")
        if op.lower() != "eq" or not attr:
            raise MappingError(f"{where}: only '<attribute> eq' filters map to a parameter")
        if not isinstance(param, str) or not param:
            raise MappingError(f"{where}: expected the query parameter name")
        p = parse_scim_path(attr, where)
        if p.selector in ("primary", "type"):
            raise MappingError(f"{where}: filters take plain attribute paths")
        key_text = (f"{p.urn}:" if p.urn else "") + p.attr + (f".{p.sub}" if p.sub else "")
        fm = by_scim.get(attr.lower())
        filters.append(FilterMap(key_text.lower(), "eq", param, fm))
    constants = dict(_table(doc, "constants", w + "."))
    return ResourceMapping(
        name,
        endpoints,
        fields,
        filters=filters,
        constants=constants,
        id_field=_str(doc, "id", w + ".", "id") or "id",
        item=_str(doc, "item", w + "."),
        wrap=_str(doc, "wrap", w + "."),
        created=_str(doc, "created", w + "."),
        last_modified=_str(doc, "last_modified", w + "."),
        version=_str(doc, "version", w + "."),
        extras=_str(doc, "extras", w + "."),
        groups_param=_str(doc, "groups_param", w + "."),
    )


def parse_mapping(doc: Mapping[str, Any]) -> RestMapping:
    _check_keys(doc, {"api", "resources"}, "mapping")
    api_doc = _table(doc, "api", "")
    resources = {
        str(name): _resource(str(name), spec if isinstance(spec, Mapping) else {})
        for name, spec in _table(doc, "resources", "").items()
    }
    if not resources:
        raise MappingError("resources: map at least one resource type ([resources.User])")
    return RestMapping(_api(api_doc), _pagination(_table(api_doc, "pagination", "api.")), resources)
