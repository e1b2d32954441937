"""With the ``postgres`` backend and the ``postgres`` state store on one database, a SCIM
write records its audit event in its own transaction (JIT.md "emit audit events in the
same transaction"): a committed write has its event even when everything after the commit
fails (here: the state store's own recording), a write that fails has none, and the event
is recorded once. With the audit log elsewhere (the SQLite state store) events are
recorded after the write, as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scimd.settings import StateSettings
from scimd.state.base import Event
from tests._http_helpers import MakeScim, Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _events(scim: Scim, rid: str) -> list[str]:
    return [e.type for e in await scim.state.list_events(resource_id=rid)]


async def _writes(scim: Scim) -> str:
    """Create, patch, replace and delete one User; its id."""
    status, made = await scim.call("POST", "/Users", json={"schemas": [USER], "userName": "ann"})
    assert status == 201, made
    rid = made["id"]
    patch = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "Dr"}]}
    assert (await scim.call("PATCH", f"/Users/{rid}", json=patch))[0] == 200
    body = {"schemas": [USER], "userName": "ann", "displayName": "Ann"}
    assert (await scim.call("PUT", f"/Users/{rid}", json=body))[0] == 200
    assert (await scim.call("DELETE", f"/Users/{rid}"))[0] == 204
    return str(rid)


ALL = ["scim.user.created", "scim.user.patched", "scim.user.replaced", "scim.user.deleted"]


async def test_committed_writes_have_their_events_whatever_follows(
    make_scim: MakeScim, monkeypatch: pytest.MonkeyPatch
) -> None:
    scim = await make_scim()
    assert scim.runtime.backend.capabilities.events_in_transaction
    recorded: list[Event] = []  # what the service hands on (log line, sinks) after commits
    emitter = scim.runtime.service.events
    emit_many = emitter.emit_many

    async def handed_on(events: Any, **kw: Any) -> None:
        recorded.extend(events)
        await emit_many(events, **kw)

    asked: list[Any] = []

    async def state_store_down(events: Any) -> None:  # after the commit: lost, logged
        asked.append(events)
        raise OSError("the audit log is unreachable")

    monkeypatch.setattr(emitter, "emit_many", handed_on)
    monkeypatch.setattr(scim.state, "record_events", state_store_down)
    rid = await _writes(scim)
    monkeypatch.undo()
    assert await _events(scim, rid) == ALL
    assert asked == []  # recorded in the transactions: not sent to the audit log again

    # the service handed on exactly the events the transactions recorded, field for field
    def fields(e: Event) -> tuple[Any, ...]:
        return (e.id, e.type, e.tenant, e.resource_id, e.actor, e.request_id, e.changed_attributes)

    stored = await scim.state.list_events(resource_id=rid)
    assert [fields(e) for e in recorded] == [fields(e) for e in stored]
    assert "userName" in stored[0].changed_attributes
    assert stored[1].changed_attributes == ("title",)


async def test_each_write_is_recorded_once_and_failed_writes_not_at_all(
    make_scim: MakeScim,
) -> None:
    scim = await make_scim()
    rid = await _writes(scim)
    assert await _events(scim, rid) == ALL  # the service's own recording added nothing
    status, other = await scim.call("POST", "/Users", json={"schemas": [USER], "userName": "bo"})
    assert status == 201
    before = len(await scim.state.list_events())
    patch = {"schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "x"}]}
    stale = {"If-Match": 'W/"99"'}
    assert (await scim.call("PATCH", f"/Users/{other['id']}", json=patch, headers=stale))[0] == 412
    dup = {"schemas": [USER], "userName": "BO"}
    assert (await scim.call("POST", "/Users", json=dup))[0] == 409
    assert len(await scim.state.list_events()) == before


async def test_with_the_audit_log_elsewhere_events_follow_the_write(
    make_scim: MakeScim, tmp_path: Path
) -> None:
    scim = await make_scim(state=StateSettings(path=tmp_path / "state.db"))
    assert not scim.runtime.backend.capabilities.events_in_transaction
    rid = await _writes(scim)
    assert await _events(scim, rid) == ALL
