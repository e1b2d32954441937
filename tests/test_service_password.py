"""Passwords (RFC 7643 4.1.1: writeOnly, returned never): hashed with argon2id before they
reach the backend, whichever way a client sends them; never returned."""

from __future__ import annotations

from typing import Any

import pytest

from scimd.backend import OpContext
from tests._http_helpers import Scim

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"


async def _stored(scim: Scim, rid: str) -> dict[str, Any]:
    rtype = scim.runtime.registry.resource_types["user"]
    ctx = OpContext(tenant="default", principal="test", request_id="t")
    return await scim.runtime.backend.get(ctx, rtype, rid)


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "password", "value": "pw-1"},
        {"op": "Add", "path": "PASSWORD", "value": "pw-1"},
        {"op": "replace", "path": f"{CORE}:password", "value": "pw-1"},
        {"op": "replace", "value": {"Password": "pw-1", "displayName": "D"}},
        {"op": "replace", "value": {f"{CORE}:password": "pw-1"}},
    ],
)
async def test_patch_password_is_hashed(scim: Scim, operation: dict[str, Any]) -> None:
    user = await scim.create_user("pw-user")
    status, doc = await scim.call(
        "PATCH", f"/Users/{user['id']}", json={"schemas": [PATCH_OP], "Operations": [operation]}
    )
    assert status == 200, doc
    assert "password" not in doc
    stored = await _stored(scim, user["id"])
    assert stored["password"].startswith("$argon2id$")
    assert scim.runtime.service.verify_password(stored["password"], "pw-1")
    assert not scim.runtime.service.verify_password(stored["password"], "pw-2")
    events = await scim.state.list_events(type_prefix="scim.user.patched")
    assert "password" in events[-1].changed_attributes


async def test_empty_password_is_invalid_value(scim: Scim) -> None:
    status, doc = await scim.call(
        "POST", "/Users", json={"schemas": [CORE], "userName": "x", "password": ""}
    )
    assert status == 400
    assert doc["scimType"] == "invalidValue"


async def test_filter_on_password_is_refused(scim: Scim) -> None:
    status, doc = await scim.call("GET", '/Users?filter=password eq "x"')
    assert status == 400
    assert doc["status"] == "400"
