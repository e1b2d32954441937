"""Shared test material for the query tests: the real builtin registry and the RFC 7643
example resources."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import orjson

from scimd.query.ast import Filter
from scimd.query.evaluate import matches
from scimd.query.parse import parse_filter
from scimd.schema.loader import builtin_registry
from scimd.schema.model import ResourceType

FIXTURES = Path(__file__).parent / "fixtures"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@functools.cache
def user_type() -> ResourceType:
    rt = builtin_registry().resource_type("User")
    assert rt is not None
    return rt


@functools.cache
def group_type() -> ResourceType:
    rt = builtin_registry().resource_type("Group")
    assert rt is not None
    return rt


@functools.cache
def _fixture(name: str) -> dict[str, Any]:
    data = orjson.loads((FIXTURES / name).read_bytes())
    assert isinstance(data, dict)
    return data


def full_user() -> dict[str, Any]:
    """RFC 7643 8.2, as stored (``meta.location`` is never stored)."""
    user = copy.deepcopy(_fixture("rfc7643-8.2-full_user.json"))
    user["meta"].pop("location", None)
    return user


def enterprise_user() -> dict[str, Any]:
    """RFC 7643 8.3."""
    user = copy.deepcopy(_fixture("rfc7643-8.3-enterprise_user.json"))
    user["meta"].pop("location", None)
    return user


def f(text: str, rtype: ResourceType | None = None) -> Filter:
    return parse_filter(text, rtype or user_type())


def m(text: str, resource: dict[str, Any], rtype: ResourceType | None = None) -> bool:
    return matches(f(text, rtype), resource)
