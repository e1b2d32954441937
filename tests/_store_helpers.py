"""Fixtures and builders for the embedded store tests (``tests/test_store_*.py``)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from scimd.backend import BackendEnv, OpContext
from scimd.schema.loader import load_registry
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.settings import ScimSettings, Settings
from scimd.store.sqlite import SQLiteBackend

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DEVICE_URN = "urn:example:scimd:schemas:Device"
FIXTURES = Path(__file__).parent / "fixtures"


@functools.cache
def registry() -> SchemaRegistry:
    """The builtin User/Group plus a custom ``Device`` type with every attribute type."""
    return load_registry(
        [FIXTURES / "store-custom-device-schema.json"],
        [FIXTURES / "store-custom-device-resource-type.json"],
    )


def device_type() -> ResourceType:
    rt = registry().resource_type("Device")
    assert rt is not None
    return rt


def user_type() -> ResourceType:
    rt = registry().resource_type("User")
    assert rt is not None
    return rt


def group_type() -> ResourceType:
    rt = registry().resource_type("Group")
    assert rt is not None
    return rt


def ctx(tenant: str = "acme", *, load_members: bool = True, load_groups: bool = True) -> OpContext:
    return OpContext(
        tenant=tenant,
        principal="test",
        request_id="req",
        load_members=load_members,
        load_groups=load_groups,
    )


def user(user_name: str, **attrs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER_URN], "userName": user_name}
    body.update(attrs)
    return body


def group(display_name: str, *member_ids: str, **attrs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP_URN], "displayName": display_name}
    if member_ids:
        body["members"] = [{"value": m} for m in member_ids]
    body.update(attrs)
    return body


def make_backend(
    path: Path, *, allow_dangling: bool = False, max_results: int = 1000, readers: int = 2
) -> SQLiteBackend:
    settings = Settings(
        scim=ScimSettings(allow_dangling_members=allow_dangling, max_results=max_results)
    )
    env = BackendEnv(
        options={"path": path.name, "readers": readers},
        registry=registry(),
        base_dir=path.parent,
        settings=settings,
    )
    return SQLiteBackend(env)


async def started(path: Path, **kw: Any) -> AsyncIterator[SQLiteBackend]:
    backend = make_backend(path, **kw)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()
