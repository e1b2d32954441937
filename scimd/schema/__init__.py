"""RFC 7643 schemas and resource types as data, and the code that walks them.

- :mod:`scimd.schema.model`: the compiled, immutable attribute tables.
- :mod:`scimd.schema.loader`: JSON documents -> :class:`SchemaRegistry`.
- :mod:`scimd.schema.validate`: request bodies -> canonical resource dicts.
- :mod:`scimd.schema.project`: resource dicts -> response dicts (``attributes``,
  ``excludedAttributes``, ``returned``).
"""

from scimd.schema.loader import SchemaLoadError, builtin_registry, load_registry
from scimd.schema.model import (
    COMMON_SCHEMA,
    AttributeDef,
    ResourceType,
    SchemaDef,
    SchemaRegistry,
)
from scimd.schema.project import project, wants
from scimd.schema.validate import (
    check_required,
    merge_for_replace,
    normalize_datetime,
    normalize_resource,
    normalize_value,
)

__all__ = [
    "COMMON_SCHEMA",
    "AttributeDef",
    "ResourceType",
    "SchemaDef",
    "SchemaLoadError",
    "SchemaRegistry",
    "builtin_registry",
    "check_required",
    "load_registry",
    "merge_for_replace",
    "normalize_datetime",
    "normalize_resource",
    "normalize_value",
    "project",
    "wants",
]
