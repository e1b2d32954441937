"""The compiled attribute model: RFC 7643 schemas as precompiled, immutable tables.

Schemas and resource types are JSON documents (``scimd/schema/data/*.json`` and the files
named in the config), in the same form ``/Schemas`` and ``/ResourceTypes`` serve. At
startup ``scimd.schema.loader`` compiles them into these objects; validation, projection,
PATCH and filtering walk them over plain dicts.

Attribute names are case-insensitive (RFC 7643 2.1): every mapping here is keyed by the
lower-cased name and every object carries the canonical spelling.

Resource dicts everywhere in scimd are the SCIM JSON representation in canonical case:
core attributes at the top level, extension attributes under their schema URN key
(``{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {...}}``), ``meta``
with ``resourceType``, ``created``, ``lastModified`` and ``version`` (``location`` is
added when a response is rendered).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "COMMON_SCHEMA",
    "AttrType",
    "AttributeDef",
    "Mutability",
    "ResourceType",
    "Returned",
    "SchemaDef",
    "SchemaRegistry",
    "Uniqueness",
]

AttrType: TypeAlias = Literal[
    "string", "boolean", "decimal", "integer", "dateTime", "reference", "binary", "complex"
]
Mutability: TypeAlias = Literal["readOnly", "readWrite", "immutable", "writeOnly"]
Returned: TypeAlias = Literal["always", "never", "default", "request"]
Uniqueness: TypeAlias = Literal["none", "server", "global"]

#: Pseudo-URN under which the common attributes (RFC 7643 3.1: id, externalId, meta,
#: schemas) are compiled. They live at the top level of a resource and are addressed
#: with ``uri=None`` in filters and paths.
COMMON_SCHEMA = "urn:scimd:common"


@dataclass(frozen=True, slots=True, eq=False)
class AttributeDef:
    """One attribute (or sub-attribute) of a schema, RFC 7643 section 7."""

    name: str
    type: AttrType
    schema: str
    """URN of the schema that defines it (``COMMON_SCHEMA`` for id/externalId/meta)."""
    path: str
    """Canonical dotted path inside the schema: ``name.givenName``, ``emails.value``."""
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: Mutability = "readWrite"
    returned: Returned = "default"
    uniqueness: Uniqueness = "none"
    description: str = ""
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: Mapping[str, AttributeDef] = field(default_factory=dict)
    """Sub-attributes keyed by lower-cased name."""
    sub_order: tuple[AttributeDef, ...] = ()
    """Sub-attributes in schema order (for output ordering)."""
    parent: AttributeDef | None = None

    @property
    def is_complex(self) -> bool:
        return self.type == "complex"

    def sub(self, name: str) -> AttributeDef | None:
        """The sub-attribute called ``name`` (any case), or ``None``."""
        return self.sub_attributes.get(name.lower())


@dataclass(frozen=True, slots=True, eq=False)
class SchemaDef:
    """A schema (RFC 7643 7): its id (URN), name, description and top-level attributes."""

    id: str
    name: str
    description: str
    attributes: Mapping[str, AttributeDef]
    """Top-level attributes keyed by lower-cased name."""
    order: tuple[AttributeDef, ...]
    document: Mapping[str, Any]
    """The JSON document as served on /Schemas/{id} (without ``meta.location``)."""

    def attr(self, name: str) -> AttributeDef | None:
        return self.attributes.get(name.lower())


@dataclass(frozen=True, slots=True, eq=False)
class ResourceType:
    """A resource type (RFC 7643 6): endpoint, core schema and schema extensions."""

    id: str
    name: str
    endpoint: str
    """Endpoint relative to the base path, with leading slash: ``/Users``."""
    description: str
    schema: SchemaDef
    extensions: Mapping[str, tuple[SchemaDef, bool]]
    """Extension schemas keyed by lower-cased URN -> (schema, required)."""
    common: SchemaDef
    """The common attributes (id, externalId, meta) as a pseudo-schema."""
    document: Mapping[str, Any]
    """The JSON document as served on /ResourceTypes/{id} (without ``meta.location``)."""

    def schema_for_uri(self, uri: str) -> SchemaDef | None:
        """The core or extension schema with this URN (any case), or ``None``."""
        low = uri.lower()
        if low == self.schema.id.lower():
            return self.schema
        ext = self.extensions.get(low)
        return ext[0] if ext else None

    def lookup(self, uri: str | None, name: str) -> AttributeDef | None:
        """Top-level attribute ``name`` in schema ``uri`` (core + common when ``uri`` is
        None). Sub-attributes: call ``.sub()`` on the result."""
        if uri is None:
            found = self.common.attr(name)
            if found is not None:
                return found
            return self.schema.attr(name)
        schema = self.schema_for_uri(uri)
        return schema.attr(name) if schema else None

    @property
    def all_schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(s.id for s, _ in self.extensions.values()))


@dataclass(slots=True, eq=False)
class SchemaRegistry:
    """All compiled schemas and resource types of one scimd instance."""

    schemas: dict[str, SchemaDef] = field(default_factory=dict)
    """Keyed by lower-cased URN."""
    resource_types: dict[str, ResourceType] = field(default_factory=dict)
    """Keyed by lower-cased name (``user``, ``group``)."""

    def schema(self, uri: str) -> SchemaDef | None:
        return self.schemas.get(uri.lower())

    def resource_type(self, name: str) -> ResourceType | None:
        return self.resource_types.get(name.lower())

    def by_endpoint(self, endpoint: str) -> ResourceType | None:
        """Resource type served at ``endpoint`` (``/Users`` or ``users``, any case)."""
        low = "/" + endpoint.strip("/").lower()
        for rt in self.resource_types.values():
            if rt.endpoint.lower() == low:
                return rt
        return None
