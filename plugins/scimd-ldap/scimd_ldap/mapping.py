"""The declarative SCIM <-> LDAP mapping.

A ``TypeMap`` per resource type names the object classes, the RDN attribute, the container
(relative to the base DN) and a list of ``AttrMap`` rules ``SCIM path -> LDAP attribute``.
SCIM paths are ``attr``, ``attr.sub`` (sub-attribute of a single complex attribute or, for a
multi-valued complex attribute such as ``emails.value``, the values of every element) and
``<extension URN>:attr``.

Mapped LDAP attributes are the directory's truth. What they cannot hold (email types, the
``primary`` flag, unmapped attributes, the exact case of a value on a case-insensitive
attribute) is kept in the auxiliary ``scimdAttr`` values (``<name>=<JSON>``, one per
top-level SCIM attribute) when the ``scimd`` schema is loaded (option ``shadow``). On read,
a mapped attribute whose LDAP values still equal what scimd wrote takes the stored SCIM
value; one changed directly in the directory wins and rebuilds the SCIM value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ENTERPRISE_URN",
    "AttrMap",
    "TypeMap",
    "ad_group_map",
    "ad_user_map",
    "default_group_map",
    "default_user_map",
    "fold",
    "get_path",
    "set_path",
    "to_ldap",
]

ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@dataclass(frozen=True, slots=True)
class AttrMap:
    scim: str
    ldap: str


@dataclass(frozen=True, slots=True)
class TypeMap:
    resource_type: str
    object_classes: tuple[str, ...]
    rdn: str
    """The LDAP RDN attribute (its value is ``rdn_scim``'s)."""
    rdn_scim: str
    container: str
    """The container's RDN sequence relative to the (tenant) base DN, e.g. ``ou=people``."""
    attrs: tuple[AttrMap, ...]
    search_filter: str = ""
    """The RFC 4515 filter selecting this type's entries (default: the last object class)."""
    fillers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Required LDAP attributes without a SCIM value: the first SCIM path with a value
    (e.g. ``cn`` from ``displayName`` then ``userName``)."""

    def ldap_of(self, scim: str) -> str | None:
        for a in self.attrs:
            if a.scim.lower() == scim.lower():
                return a.ldap
        return None


def default_user_map(
    container: str = "ou=people",
    *,
    external_id: str | None = None,
    active: str | None = None,
) -> TypeMap:
    """OpenLDAP ``inetOrgPerson``."""
    attrs = [
        AttrMap("userName", "uid"),
        AttrMap("name.givenName", "givenName"),
        AttrMap("name.familyName", "sn"),
        AttrMap("displayName", "displayName"),
        AttrMap("emails.value", "mail"),
        AttrMap("phoneNumbers.value", "telephoneNumber"),
        AttrMap("title", "title"),
        AttrMap(f"{ENTERPRISE_URN}:employeeNumber", "employeeNumber"),
        AttrMap(f"{ENTERPRISE_URN}:department", "departmentNumber"),
    ]
    if external_id:
        attrs.append(AttrMap("externalId", external_id))
    if active:
        attrs.append(AttrMap("active", active))
    return TypeMap(
        resource_type="User",
        object_classes=("top", "person", "organizationalPerson", "inetOrgPerson"),
        rdn="uid",
        rdn_scim="userName",
        container=container,
        attrs=tuple(attrs),
        fillers={"cn": ("displayName", "userName"), "sn": ("name.familyName", "userName")},
    )


def default_group_map(container: str = "ou=groups") -> TypeMap:
    """OpenLDAP ``groupOfNames`` (``member`` holds DNs, handled by the backend)."""
    return TypeMap(
        resource_type="Group",
        object_classes=("top", "groupOfNames"),
        rdn="cn",
        rdn_scim="displayName",
        container=container,
        attrs=(AttrMap("displayName", "cn"),),
    )


def ad_user_map(
    container: str = "CN=Users",
    *,
    username: str = "sAMAccountName",
    external_id: str | None = None,
) -> TypeMap:
    """Active Directory ``user``: userName in ``username`` (sAMAccountName or
    userPrincipalName), RDN ``CN`` = userName, ``active`` = not ACCOUNTDISABLE in
    userAccountControl (converted by the backend, other bits kept)."""
    if username.lower() not in {"samaccountname", "userprincipalname"}:
        raise ValueError("ad_username_attribute must be sAMAccountName or userPrincipalName")
    attrs = [
        AttrMap("userName", username),
        AttrMap("name.givenName", "givenName"),
        AttrMap("name.familyName", "sn"),
        AttrMap("displayName", "displayName"),
        AttrMap("emails.value", "mail"),
        AttrMap("phoneNumbers.value", "telephoneNumber"),
        AttrMap("title", "title"),
        AttrMap(f"{ENTERPRISE_URN}:employeeNumber", "employeeNumber"),
        AttrMap(f"{ENTERPRISE_URN}:department", "department"),
        AttrMap("active", "userAccountControl"),
    ]
    if external_id:
        attrs.append(AttrMap("externalId", external_id))
    return TypeMap(
        resource_type="User",
        object_classes=("top", "person", "organizationalPerson", "user"),
        rdn="cn",
        rdn_scim="userName",
        container=container,
        attrs=tuple(attrs),
        search_filter="(&(objectCategory=person)(objectClass=user))",
        fillers={"cn": ("userName",)},
    )


def ad_group_map(container: str = "CN=Users") -> TypeMap:
    """Active Directory ``group`` (``member`` DNs, read with range retrieval)."""
    return TypeMap(
        resource_type="Group",
        object_classes=("top", "group"),
        rdn="cn",
        rdn_scim="displayName",
        container=container,
        attrs=(AttrMap("displayName", "cn"),),
        search_filter="(objectClass=group)",
    )


def fold(values: list[str]) -> set[str]:
    """LDAP-style comparison of string values: case and inner whitespace ignored."""
    return {" ".join(v.split()).casefold() for v in values}


def _split(path: str) -> tuple[str | None, str, str | None]:
    uri = None
    if path.lower().startswith("urn:"):
        uri, _, path = path.rpartition(":")
    attr, _, sub = path.partition(".")
    return uri, attr, sub or None


def get_path(resource: Mapping[str, Any], path: str) -> list[str]:
    """The string values at ``path`` (booleans as ``TRUE``/``FALSE``)."""
    uri, attr, sub = _split(path)
    holder: Any = resource.get(uri) if uri else resource
    if not isinstance(holder, Mapping):
        return []
    value = holder.get(attr)
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        v = item.get(sub) if sub and isinstance(item, Mapping) else (None if sub else item)
        if isinstance(v, bool):
            out.append("TRUE" if v else "FALSE")
        elif v is not None and v != "":
            out.append(str(v))
    return out


def set_path(resource: dict[str, Any], path: str, values: list[str]) -> None:
    """Make ``path`` hold ``values`` (read from LDAP), keeping what else the SCIM value
    holds (the other elements' sub-attributes, e.g. an email's ``type``)."""
    uri, attr, sub = _split(path)
    holder: dict[str, Any] = resource.setdefault(uri, {}) if uri else resource
    current = holder.get(attr)
    if sub is None:
        if not values:
            holder.pop(attr, None)
        elif attr == "active":
            holder[attr] = values[0].upper() == "TRUE"
        else:
            holder[attr] = values[0]
    elif isinstance(current, list) or (current is None and attr.endswith("s")):
        kept = [e for e in current or [] if isinstance(e, dict) and e.get(sub) in values]
        seen = {e.get(sub) for e in kept}
        kept += [{sub: v} for v in values if v not in seen]
        if kept:
            holder[attr] = kept
        else:
            holder.pop(attr, None)
    else:
        element = dict(current) if isinstance(current, dict) else {}
        if values:
            element[sub] = values[0]
        else:
            element.pop(sub, None)
        if element:
            holder[attr] = element
        else:
            holder.pop(attr, None)
    if uri and not holder:
        resource.pop(uri, None)


def to_ldap(tmap: TypeMap, resource: Mapping[str, Any]) -> dict[str, list[str]]:
    """The mapped LDAP attributes (without objectClass, member and the shadow)."""
    out: dict[str, list[str]] = {}
    for a in tmap.attrs:
        values = get_path(resource, a.scim)
        for v in values:
            held = out.setdefault(a.ldap, [])
            if fold([v]) - fold(held):  # the directory holds values up to case and spaces
                held.append(v)
    for ldap_attr, sources in tmap.fillers.items():
        if ldap_attr in out:
            continue
        for source in sources:
            values = get_path(resource, source)
            if values:
                out[ldap_attr] = values[:1]
                break
    return out


def overlay(
    tmap: TypeMap, shadow: dict[str, Any], entry: Mapping[str, list[str]]
) -> dict[str, Any]:
    """The SCIM resource: ``shadow`` with the mapped attributes the directory changed."""
    resource = copy.deepcopy(shadow)
    expected = to_ldap(tmap, shadow)
    lower = {k.lower(): v for k, v in entry.items()}
    for a in tmap.attrs:
        actual = lower.get(a.ldap.lower(), [])
        if fold(actual) != fold(expected.get(a.ldap, [])):
            set_path(resource, a.scim, actual)
    return resource
