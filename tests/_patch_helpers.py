"""Shared helpers for the PATCH engine tests (``tests/test_patch_*.py``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from scimd import quirks
from scimd.errors import ScimError
from scimd.patch import PatchResult, apply_patch, parse_patch_request
from scimd.schema.loader import builtin_registry
from scimd.schema.model import ResourceType

FIXTURES = Path(__file__).parent / "fixtures"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

BABS_ID = "2819c223-7f76-453a-919d-413861904646"
JAMES_ID = "08e1d05d-121c-4561-8b96-473d93df9210"

_REGISTRY = builtin_registry()
USER: ResourceType = _REGISTRY.resource_types["user"]
GROUP: ResourceType = _REGISTRY.resource_types["group"]


def fixture(name: str) -> Any:
    """A payload from ``tests/fixtures`` (named after the RFC section)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def body(*operations: dict[str, Any]) -> dict[str, Any]:
    """A PatchOp message with these operations."""
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def user() -> dict[str, Any]:
    """A stored User in canonical form (as a store returns it)."""
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "id": BABS_ID,
        "externalId": "bjensen",
        "userName": "bjensen@example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "active": True,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
                "primary": True,
            }
        ],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations"},
        "meta": {"resourceType": "User", "version": 'W/"3"'},
    }


def bare_user() -> dict[str, Any]:
    """A stored User with only userName (what Entra creates before its PATCHes)."""
    return {
        "schemas": [CORE_USER],
        "id": "5b5a0d63-0d2f-4d4c-9b7e-5d0c7e0b3a11",
        "userName": "Test_User_dfeef4c5@contoso.com",
        "meta": {"resourceType": "User", "version": 'W/"1"'},
    }


def group(*member_ids: str) -> dict[str, Any]:
    """A stored Group with members loaded."""
    out: dict[str, Any] = {
        "schemas": [CORE_GROUP],
        "id": "acbf3ae7-8463-4692-b4fd-9b4da3f908ce",
        "displayName": "Tour Guides",
        "meta": {"resourceType": "Group", "version": 'W/"1"'},
    }
    if member_ids:
        out["members"] = [{"value": m} for m in member_ids]
    return out


def run(
    rtype: ResourceType,
    resource: dict[str, Any],
    message: Any,
    **kwargs: Any,
) -> PatchResult:
    """Parse and apply ``message``; also checks the input resource was not mutated."""
    before = copy.deepcopy(resource)
    ops = parse_patch_request(rtype, message)
    try:
        return apply_patch(rtype, resource, ops, **kwargs)
    finally:
        assert resource == before, "apply_patch mutated its input"


def fails(
    rtype: ResourceType,
    resource: dict[str, Any],
    message: Any,
    status: int,
    scim_type: str | None,
    **kwargs: Any,
) -> ScimError:
    """Parse and apply ``message``, which must fail with this status and scimType, and
    leave the input untouched."""
    with pytest.raises(ScimError) as info:
        run(rtype, resource, message, **kwargs)
    err = info.value
    assert (err.status, err.scim_type) == (status, scim_type), err.detail
    return err


@contextmanager
def counts_quirk(name: str) -> Iterator[None]:
    """Assert that the block records the quirk ``name`` at least once."""
    assert name in quirks.QUIRKS, f"{name} is not a registered quirk"
    before = quirks.snapshot().get(name, 0)
    yield
    assert quirks.snapshot().get(name, 0) > before, f"quirk {name} not recorded"
