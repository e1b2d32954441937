"""A SCIM-deleted User cannot come back through a login (JIT.md): its tombstone is written
*before* the delete, so there is no moment (a crash, a state store outage) where the user is
deleted without one. A delete that cannot record the tombstone is refused (503) and the
user stays; a delete that fails after it (412, an outage) takes the tombstone back; a delete
that finds the user already deleted (by a concurrent request) keeps it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from scimd.errors import NotFound
from scimd.state.base import JitStateStore
from tests._http_helpers import AiohttpClient
from tests._jit_helpers import JitApp, make_idp, make_jit_app
from tests._jit_helpers import jit_settings as settings_for

KEYS = ["externalid:sub-1", "username:ann.smith"]


@pytest.fixture
async def jit(aiohttp_client: AiohttpClient, tmp_path: Path) -> JitApp:
    return await make_jit_app(aiohttp_client, tmp_path, settings_for(tmp_path, (make_idp(),)))


def _state(jit: JitApp) -> JitStateStore:
    state = jit.scim.state
    assert isinstance(state, JitStateStore)
    return state


Delete = Callable[..., Awaitable[None]]


async def _pushed(
    jit: JitApp, monkeypatch: pytest.MonkeyPatch, wrap: Callable[[Delete], Delete]
) -> dict[str, Any]:
    """A SCIM-pushed (unlinked) User, with the backend's delete wrapped by ``wrap``."""
    pushed = await jit.scim.create_user("ann.smith", externalId="sub-1")
    backend = jit.scim.runtime.backend
    monkeypatch.setattr(backend, "delete", wrap(backend.delete))
    return pushed


async def test_the_tombstone_exists_before_the_delete_runs(
    jit: JitApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []

    def watched(real: Delete) -> Delete:
        async def delete(*args: Any, **kwargs: Any) -> None:
            seen.append(await _state(jit).find_tombstone("default", KEYS))
            await real(*args, **kwargs)

        return delete

    pushed = await _pushed(jit, monkeypatch, watched)
    assert (await jit.scim.call("DELETE", f"/Users/{pushed['id']}"))[0] == 204
    assert seen == [pushed["id"]]
    status, body, _h = await jit.login()
    assert (status, body["reason"]) == (403, "user_deleted")


async def test_no_tombstone_no_delete(jit: JitApp, monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = await jit.scim.create_user("ann.smith", externalId="sub-1")

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("state store unreachable")

    monkeypatch.setattr(_state(jit), "add_tombstone", broken)
    status, body = await jit.scim.call("DELETE", f"/Users/{pushed['id']}")
    assert status == 503, body
    assert body["status"] == "503"
    assert (await jit.scim.call("GET", f"/Users/{pushed['id']}"))[0] == 200
    monkeypatch.undo()
    status, body, _h = await jit.login()  # the live user logs in (linked by correlation)
    assert status == 200 and body["user"]["id"] == pushed["id"]


async def test_a_failed_delete_takes_its_tombstone_back(jit: JitApp) -> None:
    pushed = await jit.scim.create_user("ann.smith", externalId="sub-1")
    status, _body = await jit.scim.call(
        "DELETE", f"/Users/{pushed['id']}", headers={"If-Match": 'W/"999"'}
    )
    assert status == 412
    assert await _state(jit).find_tombstone("default", KEYS) is None
    assert (await jit.scim.call("GET", f"/Users/{pushed['id']}"))[0] == 200


async def test_a_delete_that_lost_the_race_keeps_the_tombstone(
    jit: JitApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def raced(real: Delete) -> Delete:
        async def delete(*args: Any, **kwargs: Any) -> None:
            await real(*args, **kwargs)  # another request's delete, first
            raise NotFound("Resource not found")

        return delete

    pushed = await _pushed(jit, monkeypatch, raced)
    assert (await jit.scim.call("DELETE", f"/Users/{pushed['id']}"))[0] == 404
    assert await _state(jit).find_tombstone("default", KEYS) == pushed["id"]
    status, body, _h = await jit.login()
    assert (status, body["reason"]) == (403, "user_deleted")
