"""Compile schema and resource type JSON documents into a :class:`SchemaRegistry`.

The bundled documents (``scimd/schema/data/*.json``) are RFC 7643 section 8.7 schemas
(User, Group, EnterpriseUser, ServiceProviderConfig, ResourceType, Schema) and the section
8.6 resource types (User with the optional enterprise extension, Group), with the RFC's
obvious mistakes corrected:

- Group ``displayName`` is required with ``uniqueness: server`` (scimd rejects duplicate
  group names with 409, as the Entra validator expects); ``members`` gains ``display``
  (RFC 7643 4.2 describes it, 8.7.1 forgot it); ``members.value``/``$ref`` are caseExact
  (they are resource ids / URIs).
- User ``addresses`` gains ``primary`` (RFC 7643 4.1.2 and the 8.2 example use it).
- Enterprise ``manager.value``/``$ref`` are caseExact (an id / a URI).
- ResourceType ``schemaExtensions`` is multi-valued and optional; Schema
  ``attributes.type`` lists ``binary``; ``referenceTypes`` is multi-valued everywhere.
- ServiceProviderConfig has ``etag`` (RFC 7643 5 lists it, 8.7.2 forgot it) and
  ``authenticationSchemes`` has ``type`` and ``primary`` (RFC 7643 5); it also describes
  the RFC 9865 ``pagination`` settings.

Operators add custom schemas and extensions (schema files) and custom resource types (or
replacements of User/Group with extra extensions) through configuration; a bad file is a
:class:`SchemaLoadError` naming the file and the reason, raised at startup.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

from scimd.schema.model import (
    COMMON_SCHEMA,
    AttributeDef,
    AttrType,
    Mutability,
    ResourceType,
    Returned,
    SchemaDef,
    SchemaRegistry,
    Uniqueness,
)

__all__ = [
    "RESERVED_ENDPOINTS",
    "RESOURCE_TYPE_SCHEMA",
    "SCHEMA_SCHEMA",
    "SchemaLoadError",
    "builtin_registry",
    "load_registry",
]

SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"

#: Endpoints scimd serves itself; a resource type may not take them (lower-case).
RESERVED_ENDPOINTS = frozenset(
    {"/schemas", "/resourcetypes", "/serviceproviderconfig", "/bulk", "/me", "/.search"}
)

_TYPES: frozenset[str] = frozenset(
    {"string", "boolean", "decimal", "integer", "dateTime", "reference", "binary", "complex"}
)
_MUTABILITY: frozenset[str] = frozenset({"readOnly", "readWrite", "immutable", "writeOnly"})
_RETURNED: frozenset[str] = frozenset({"always", "never", "default", "request"})
_UNIQUENESS: frozenset[str] = frozenset({"none", "server", "global"})
_ATTR_KEYS: frozenset[str] = frozenset(
    {
        "name",
        "type",
        "multiValued",
        "description",
        "required",
        "caseExact",
        "mutability",
        "returned",
        "uniqueness",
        "canonicalValues",
        "referenceTypes",
        "subAttributes",
    }
)
_BUILTIN_SCHEMA_FILES = (
    "user.json",
    "group.json",
    "enterprise_user.json",
    "service_provider_config.json",
    "resource_type.json",
    "schema.json",
)
_BUILTIN_RESOURCE_TYPE_FILES = ("resource_types.json",)

#: RFC 7643 3.1 common attributes. ``schemas`` is listed so that filters and paths can
#: resolve it; it is handled specially by validation and projection.
_COMMON_DOCUMENT: dict[str, Any] = {
    "id": COMMON_SCHEMA,
    "name": "Common",
    "description": "Attributes common to all resources (RFC 7643 section 3.1)",
    "attributes": [
        {
            "name": "schemas",
            "type": "reference",
            "multiValued": True,
            "description": "The schema URIs of the resource: the core schema and the "
            "schema extensions present.",
            "required": True,
            "caseExact": False,
            "mutability": "readWrite",
            "returned": "always",
            "uniqueness": "none",
            "referenceTypes": ["uri"],
        },
        {
            "name": "id",
            "type": "string",
            "multiValued": False,
            "description": "A unique identifier for a SCIM resource as defined by the "
            "service provider.",
            "required": False,
            "caseExact": True,
            "mutability": "readOnly",
            "returned": "always",
            "uniqueness": "server",
        },
        {
            "name": "externalId",
            "type": "string",
            "multiValued": False,
            "description": "A String that is an identifier for the resource as defined by "
            "the provisioning client.",
            "required": False,
            "caseExact": True,
            "mutability": "readWrite",
            "returned": "default",
            "uniqueness": "none",
        },
        {
            "name": "meta",
            "type": "complex",
            "multiValued": False,
            "description": "A complex attribute containing resource metadata.",
            "required": False,
            "mutability": "readOnly",
            "returned": "default",
            "subAttributes": [
                {
                    "name": "resourceType",
                    "type": "string",
                    "description": "The name of the resource type of the resource.",
                    "caseExact": True,
                    "mutability": "readOnly",
                },
                {
                    "name": "created",
                    "type": "dateTime",
                    "description": "The DateTime that the resource was added to the "
                    "service provider.",
                    "mutability": "readOnly",
                },
                {
                    "name": "lastModified",
                    "type": "dateTime",
                    "description": "The most recent DateTime that the details of this "
                    "resource were updated at the service provider.",
                    "mutability": "readOnly",
                },
                {
                    "name": "location",
                    "type": "reference",
                    "description": "The URI of the resource being returned.",
                    "caseExact": True,
                    "mutability": "readOnly",
                    "referenceTypes": ["uri"],
                },
                {
                    "name": "version",
                    "type": "string",
                    "description": "The version of the resource being returned (an ETag).",
                    "caseExact": True,
                    "mutability": "readOnly",
                },
            ],
        },
    ],
}


class SchemaLoadError(ValueError):
    """A schema or resource type document cannot be loaded.

    :param source: the file (or ``"<builtin>"``) the document came from.
    :param reason: what is wrong, naming the schema/attribute involved.
    """

    def __init__(self, source: str | Path, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


# --------------------------------------------------------------------------- attributes


def _bool(doc: Mapping[str, Any], key: str, default: bool, where: str, src: str) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise SchemaLoadError(src, f"{where}: '{key}' must be true or false, got {value!r}")
    return value


def _choice(
    doc: Mapping[str, Any], key: str, default: str, allowed: frozenset[str], where: str, src: str
) -> str:
    value = doc.get(key, default)
    if value not in allowed:
        raise SchemaLoadError(
            src, f"{where}: '{key}' must be one of {sorted(allowed)}, got {value!r}"
        )
    return cast(str, value)


def _strings(doc: Mapping[str, Any], key: str, where: str, src: str) -> tuple[str, ...]:
    value = doc.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaLoadError(src, f"{where}: '{key}' must be a list of strings")
    return tuple(value)


def _compile_attribute(
    doc: Any, schema: str, parent: AttributeDef | None, src: str, where: str
) -> AttributeDef:
    if not isinstance(doc, dict):
        raise SchemaLoadError(src, f"{where}: an attribute must be a JSON object")
    name = doc.get("name")
    if not isinstance(name, str) or not name or any(c in name for c in ' .:[]"()'):
        raise SchemaLoadError(src, f"{where}: invalid attribute name {name!r}")
    path = f"{parent.path}.{name}" if parent else name
    where = f"schema {schema}, attribute {path}"
    unknown = set(doc) - _ATTR_KEYS
    if unknown:
        raise SchemaLoadError(src, f"{where}: unknown keys {sorted(unknown)}")
    atype = _choice(doc, "type", "", _TYPES, where, src)
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise SchemaLoadError(src, f"{where}: 'description' must be a string")
    attr = AttributeDef(
        name=name,
        type=cast(AttrType, atype),
        schema=schema,
        path=path,
        multi_valued=_bool(doc, "multiValued", False, where, src),
        required=_bool(doc, "required", False, where, src),
        case_exact=_bool(doc, "caseExact", False, where, src),
        mutability=cast(
            Mutability, _choice(doc, "mutability", "readWrite", _MUTABILITY, where, src)
        ),
        returned=cast(Returned, _choice(doc, "returned", "default", _RETURNED, where, src)),
        uniqueness=cast(Uniqueness, _choice(doc, "uniqueness", "none", _UNIQUENESS, where, src)),
        description=description,
        canonical_values=_strings(doc, "canonicalValues", where, src),
        reference_types=_strings(doc, "referenceTypes", where, src),
        sub_attributes={},
        parent=parent,
    )
    subs_doc = doc.get("subAttributes")
    if atype == "complex":
        if not isinstance(subs_doc, list) or not subs_doc:
            raise SchemaLoadError(src, f"{where}: a complex attribute needs 'subAttributes'")
        subs = _compile_attributes(subs_doc, schema, attr, src, where)
        # The dataclass is frozen so that nothing changes it after compilation; filling in
        # the children here (they need the parent object for their `parent` link) is the
        # one sanctioned exception.
        cast(dict[str, AttributeDef], attr.sub_attributes).update(subs)
        object.__setattr__(attr, "sub_order", tuple(subs.values()))
    elif subs_doc:
        raise SchemaLoadError(src, f"{where}: only complex attributes have 'subAttributes'")
    return attr


def _compile_attributes(
    docs: Any, schema: str, parent: AttributeDef | None, src: str, where: str
) -> dict[str, AttributeDef]:
    if not isinstance(docs, list):
        raise SchemaLoadError(src, f"{where}: 'attributes' must be a list")
    out: dict[str, AttributeDef] = {}
    for i, doc in enumerate(docs):
        attr = _compile_attribute(doc, schema, parent, src, f"{where}, attribute #{i + 1}")
        key = attr.name.lower()
        if key in out:
            raise SchemaLoadError(
                src,
                f"schema {schema}: duplicate attribute {attr.path!r} (names are case-insensitive)",
            )
        out[key] = attr
    return out


def _attribute_document(attr: AttributeDef) -> dict[str, Any]:
    """The RFC 7643 7 representation of a compiled attribute (every characteristic
    spelled out, as /Schemas serves it)."""
    doc: dict[str, Any] = {
        "name": attr.name,
        "type": attr.type,
        "multiValued": attr.multi_valued,
        "description": attr.description,
        "required": attr.required,
    }
    if attr.type != "complex":
        doc["caseExact"] = attr.case_exact
    if attr.canonical_values:
        doc["canonicalValues"] = list(attr.canonical_values)
    if attr.reference_types:
        doc["referenceTypes"] = list(attr.reference_types)
    doc["mutability"] = attr.mutability
    doc["returned"] = attr.returned
    if attr.type != "complex":
        doc["uniqueness"] = attr.uniqueness
    if attr.sub_order:
        doc["subAttributes"] = [_attribute_document(s) for s in attr.sub_order]
    return doc


def _compile_schema(doc: Any, src: str) -> SchemaDef:
    if not isinstance(doc, dict):
        raise SchemaLoadError(src, "a schema must be a JSON object")
    sid = doc.get("id")
    if not isinstance(sid, str) or not sid.lower().startswith("urn:") or " " in sid:
        raise SchemaLoadError(src, f"schema 'id' must be a URN, got {sid!r}")
    name = doc.get("name", "")
    description = doc.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise SchemaLoadError(src, f"schema {sid}: 'name' and 'description' must be strings")
    if "attributes" not in doc:
        raise SchemaLoadError(src, f"schema {sid}: missing 'attributes'")
    attrs = _compile_attributes(doc["attributes"], sid, None, src, f"schema {sid}")
    document: dict[str, Any] = {
        "schemas": [SCHEMA_SCHEMA],
        "id": sid,
        "name": name,
        "description": description,
        "attributes": [_attribute_document(a) for a in attrs.values()],
        "meta": {"resourceType": "Schema"},
    }
    return SchemaDef(
        id=sid,
        name=name,
        description=description,
        attributes=attrs,
        order=tuple(attrs.values()),
        document=document,
    )


# ----------------------------------------------------------------------- resource types


def _compile_resource_type(
    doc: Any, schemas: Mapping[str, SchemaDef], common: SchemaDef, src: str
) -> ResourceType:
    if not isinstance(doc, dict):
        raise SchemaLoadError(src, "a resource type must be a JSON object")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaLoadError(src, f"resource type 'name' must be a non-empty string: {name!r}")
    where = f"resource type {name}"
    rid = doc.get("id", name)
    description = doc.get("description", "")
    if not isinstance(rid, str) or not rid or not isinstance(description, str):
        raise SchemaLoadError(src, f"{where}: 'id' and 'description' must be strings")
    endpoint = doc.get("endpoint")
    if (
        not isinstance(endpoint, str)
        or not endpoint.startswith("/")
        or len(endpoint) < 2
        or "/" in endpoint[1:]
    ):
        raise SchemaLoadError(
            src, f"{where}: 'endpoint' must be one path segment like '/Users', got {endpoint!r}"
        )
    if endpoint.lower() in RESERVED_ENDPOINTS:
        raise SchemaLoadError(src, f"{where}: endpoint {endpoint} is reserved by scimd")
    core_id = doc.get("schema")
    if not isinstance(core_id, str):
        raise SchemaLoadError(src, f"{where}: 'schema' must be a schema URN")
    core = schemas.get(core_id.lower())
    if core is None:
        raise SchemaLoadError(src, f"{where}: unknown schema {core_id!r}")
    exts_doc = doc.get("schemaExtensions") or []
    if not isinstance(exts_doc, list):
        raise SchemaLoadError(src, f"{where}: 'schemaExtensions' must be a list")
    extensions: dict[str, tuple[SchemaDef, bool]] = {}
    ext_documents: list[dict[str, Any]] = []
    for ext in exts_doc:
        if not isinstance(ext, dict) or not isinstance(ext.get("schema"), str):
            raise SchemaLoadError(src, f"{where}: each schemaExtensions item needs a 'schema' URN")
        ext_id: str = ext["schema"]
        required = ext.get("required", False)
        if not isinstance(required, bool):
            raise SchemaLoadError(src, f"{where}: extension {ext_id} 'required' must be boolean")
        ext_schema = schemas.get(ext_id.lower())
        if ext_schema is None:
            raise SchemaLoadError(src, f"{where}: unknown extension schema {ext_id!r}")
        if ext_schema is core or ext_id.lower() in extensions:
            raise SchemaLoadError(src, f"{where}: schema {ext_id} listed twice")
        extensions[ext_id.lower()] = (ext_schema, required)
        ext_documents.append({"schema": ext_schema.id, "required": required})
    document: dict[str, Any] = {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rid,
        "name": name,
        "endpoint": endpoint,
        "description": description,
        "schema": core.id,
        "schemaExtensions": ext_documents,
        "meta": {"resourceType": "ResourceType"},
    }
    return ResourceType(
        id=rid,
        name=name,
        endpoint=endpoint,
        description=description,
        schema=core,
        extensions=extensions,
        common=common,
        document=document,
    )


# ------------------------------------------------------------------------------ loading


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaLoadError(path, f"cannot read file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SchemaLoadError(path, "file is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaLoadError(
            path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _documents(data: Any, src: str, what: str) -> list[Any]:
    """A file holds one document, a list of them, or a ListResponse (``Resources``), the
    form in which another SCIM server's /Schemas or /ResourceTypes can be saved."""
    if isinstance(data, list):
        docs = data
    elif isinstance(data, dict) and isinstance(data.get("Resources"), list):
        docs = data["Resources"]
    elif isinstance(data, dict):
        docs = [data]
    else:
        raise SchemaLoadError(src, f"expected a {what} object or a list of them")
    if not docs:
        raise SchemaLoadError(src, f"no {what} in file")
    return docs


def _builtin_sources() -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    pkg = resources.files("scimd.schema") / "data"
    schema_docs: list[tuple[str, Any]] = []
    rt_docs: list[tuple[str, Any]] = []
    for fname in _BUILTIN_SCHEMA_FILES:
        schema_docs.append((f"<builtin>/{fname}", json.loads((pkg / fname).read_text("utf-8"))))
    for fname in _BUILTIN_RESOURCE_TYPE_FILES:
        rt_docs.append((f"<builtin>/{fname}", json.loads((pkg / fname).read_text("utf-8"))))
    return schema_docs, rt_docs


def _compile(
    schema_sources: Iterable[tuple[str, Any, bool]],
    rt_sources: Iterable[tuple[str, Any, bool]],
) -> SchemaRegistry:
    """Compile ``(source, parsed JSON, builtin?)`` triples into a registry."""
    common = _compile_schema(_COMMON_DOCUMENT, "<builtin>")
    registry = SchemaRegistry()
    for src, data, _builtin in schema_sources:
        for doc in _documents(data, src, "schema"):
            schema = _compile_schema(doc, src)
            key = schema.id.lower()
            if key in registry.schemas or key == COMMON_SCHEMA:
                raise SchemaLoadError(src, f"schema {schema.id} is defined twice")
            registry.schemas[key] = schema

    builtin_rts: dict[str, ResourceType] = {}
    custom_rts: dict[str, ResourceType] = {}
    for src, data, builtin in rt_sources:
        target = builtin_rts if builtin else custom_rts
        for doc in _documents(data, src, "resource type"):
            rt = _compile_resource_type(doc, registry.schemas, common, src)
            key = rt.name.lower()
            if key in target:
                raise SchemaLoadError(src, f"resource type {rt.name} is defined twice")
            target[key] = rt
    # A custom resource type named like a builtin one (User, Group) replaces it: that is
    # how an operator adds extensions to User.
    merged = {**builtin_rts, **custom_rts}
    endpoints: dict[str, str] = {}
    ids: dict[str, str] = {}
    for rt in merged.values():
        other = endpoints.setdefault(rt.endpoint.lower(), rt.name)
        if other != rt.name:
            raise SchemaLoadError(
                "<resource types>",
                f"resource types {other} and {rt.name} share the endpoint {rt.endpoint}",
            )
        other = ids.setdefault(rt.id.lower(), rt.name)
        if other != rt.name:
            raise SchemaLoadError(
                "<resource types>", f"resource types {other} and {rt.name} share the id {rt.id}"
            )
    registry.resource_types.update(merged)
    return registry


@functools.cache
def _builtin() -> SchemaRegistry:
    schema_docs, rt_docs = _builtin_sources()
    return _compile([(s, d, True) for s, d in schema_docs], [(s, d, True) for s, d in rt_docs])


def builtin_registry() -> SchemaRegistry:
    """The registry of the bundled RFC 7643 schemas and the User/Group resource types.

    Compiled once per process and shared: treat it as read-only.
    """
    return _builtin()


def load_registry(
    schema_files: Sequence[Path] = (), resource_type_files: Sequence[Path] = ()
) -> SchemaRegistry:
    """The bundled schemas and resource types plus the operator's files.

    :param schema_files: JSON files, each holding one schema document (RFC 7643 7), a list
        of them, or a ListResponse of them: custom schemas and extensions. A schema URN
        may be defined once (builtin ones included).
    :param resource_type_files: JSON files with resource type documents (RFC 7643 6),
        referencing custom or builtin schemas. One named like a builtin resource type
        (``User``, ``Group``) replaces it, e.g. to add extensions to User.
    :raises SchemaLoadError: a file is unreadable, not JSON, or not a valid document (bad
        type, unknown schema named by a resource type, duplicate names or endpoints...).
    """
    if not schema_files and not resource_type_files:
        return builtin_registry()
    schema_docs, rt_docs = _builtin_sources()
    schema_sources: list[tuple[str, Any, bool]] = [(s, d, True) for s, d in schema_docs]
    schema_sources += [(str(p), _read_json(Path(p)), False) for p in schema_files]
    rt_sources: list[tuple[str, Any, bool]] = [(s, d, True) for s, d in rt_docs]
    rt_sources += [(str(p), _read_json(Path(p)), False) for p in resource_type_files]
    return _compile(schema_sources, rt_sources)
