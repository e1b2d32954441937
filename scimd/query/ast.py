"""scimd's own typed, frozen filter AST (RFC 7644 3.4.2.2) and PATCH path (3.5.2).

Filters are parsed once (``scimd.query.parse``) with scim2-filter-parser and converted
into these nodes; every consumer (the in-memory evaluator, the planner, the SQL/LDAP
compilers, the PATCH engine) walks this tree and nothing else.

Resolution: ``AttrPath`` nodes produced by ``scimd.query.parse.parse_filter`` against a
resource type are *resolved*: ``uri`` is the canonical URN of the schema the attribute
belongs to (``None`` only for the common attributes id/externalId/meta/schemas),
``attr`` and ``sub`` are in the schema's canonical case, and ``defn`` is the
``AttributeDef`` of the addressed attribute (the sub-attribute's definition when ``sub``
is set). Compilers may rely on ``defn`` being set on resolved trees.

``emails[type eq "work"].value eq "x"`` is normalised to
``ValuePath(emails, And(type eq "work", value eq "x"))`` (the same meaning), so compilers
only know one valuePath form. Inside a ``ValuePath`` filter, ``AttrPath`` nodes address
sub-attributes of the outer attribute: their ``attr`` is the outer attribute and ``sub``
the sub-attribute (``emails.type``), with ``in_value_path=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    from scimd.schema.model import AttributeDef

__all__ = [
    "And",
    "AttrPath",
    "CompareOp",
    "Comparison",
    "Filter",
    "Not",
    "Or",
    "PatchPath",
    "Present",
    "Value",
    "ValuePath",
]

CompareOp: TypeAlias = Literal["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]

#: A comparison value as JSON gives it: string, number, boolean or null. dateTime values
#: arrive as strings; compilers compare them as instants using ``defn.type``.
Value: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class AttrPath:
    """``[uri:]attr[.sub]`` — an attribute or a sub-attribute of a complex attribute."""

    uri: str | None
    attr: str
    sub: str | None = None
    defn: AttributeDef | None = field(default=None, compare=False, repr=False)
    in_value_path: bool = field(default=False, compare=False)
    extension: bool = field(default=False, compare=False)
    """True when ``uri`` is a schema *extension* of the resource type: the value lives under
    ``resource[uri]`` (core and common attributes live at the top level). Set by the
    resolver in ``scimd.query.parse``."""

    def dotted(self) -> str:
        """``attr`` or ``attr.sub`` without the URN (the key inside the schema's namespace)."""
        return f"{self.attr}.{self.sub}" if self.sub else self.attr

    def __str__(self) -> str:
        prefix = f"{self.uri}:" if self.uri else ""
        return prefix + self.dotted()


@dataclass(frozen=True, slots=True)
class Comparison:
    """``path op value`` for eq ne co sw ew gt ge lt le."""

    path: AttrPath
    op: CompareOp
    value: Value


@dataclass(frozen=True, slots=True)
class Present:
    """``path pr``."""

    path: AttrPath


@dataclass(frozen=True, slots=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True, slots=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True, slots=True)
class Not:
    expr: Filter


@dataclass(frozen=True, slots=True)
class ValuePath:
    """``attr[filter]``: some element of the multi-valued (or complex) ``path`` matches."""

    path: AttrPath
    filter: Filter


Filter: TypeAlias = Comparison | Present | And | Or | Not | ValuePath


@dataclass(frozen=True, slots=True)
class PatchPath:
    """A PATCH ``path`` (RFC 7644 3.5.2): ``attrPath`` or ``valuePath [subAttr]``.

    ``members`` -> PatchPath(AttrPath(..., "members"), None, None)
    ``name.givenName`` -> PatchPath(AttrPath(..., "name", "givenName"), None, None)
    ``emails[type eq "work"].value`` -> PatchPath(AttrPath(..., "emails"), <filter>, "value")
    """

    attr: AttrPath
    filter: Filter | None = None
    sub: str | None = None

    def __str__(self) -> str:
        text = str(self.attr)
        if self.filter is not None:
            text += "[...]"
        if self.sub:
            text += f".{self.sub}"
        return text
