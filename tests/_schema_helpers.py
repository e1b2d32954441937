"""Shared data for the schema tests: RFC 7643 section 8 fixtures and URNs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from scimd.schema.loader import builtin_registry
from scimd.schema.model import ResourceType

FIXTURES = Path(__file__).parent / "fixtures"

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def load_fixture(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/fixtures/<name>`` (tests may mutate it)."""
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return copy.deepcopy(data)


def user_type() -> ResourceType:
    rt = builtin_registry().resource_type("User")
    assert rt is not None
    return rt


def group_type() -> ResourceType:
    rt = builtin_registry().resource_type("Group")
    assert rt is not None
    return rt


def without(resource: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``resource`` without the top-level ``keys``."""
    return {k: v for k, v in resource.items() if k not in keys}
