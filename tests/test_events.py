"""Provisioning events: every successful write is recorded in the audit log, logged as
one JSON line on ``scimd.events`` and handed to plugin sinks; names, never values."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import pytest

from scimd.events import EventEmitter, make_event
from scimd.hookspecs import hookimpl
from scimd.plugins import PluginManager
from scimd.state.base import Event
from tests._http_helpers import Scim

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


class BrokenSink:
    async def emit(self, events: Sequence[Event]) -> None:
        raise ConnectionError("webhook down")


class SinkPlugin:
    def __init__(self) -> None:
        self.recording = RecordingSink()

    @hookimpl
    def scimd_event_sinks(self) -> list[object]:
        return [BrokenSink(), self.recording]


SINKS = SinkPlugin()


@pytest.fixture
def plugins() -> PluginManager:
    SINKS.recording.events.clear()
    return PluginManager.create(entry_points=False, extra=[SINKS])


async def test_write_events_recorded_logged_and_sunk(
    scim: Scim, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="scimd.events"):
        resp = await scim.request(
            "POST",
            "/Users",
            json={
                "schemas": [USER],
                "userName": "evt",
                "password": "s3cr3t-value",
                "name": {"givenName": "Ev"},
            },
            headers={"X-Request-Id": "evt-req-1"},
        )
        assert resp.status == 201
        user = await resp.json(content_type=None)
        rid = user["id"]
        await scim.call(
            "PATCH",
            f"/Users/{rid}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "displayName", "value": "E"}],
            },
        )
        await scim.call(
            "PUT", f"/Users/{rid}", json={"schemas": [USER], "userName": "evt", "nickName": "n"}
        )
        resp = await scim.request("DELETE", f"/Users/{rid}")
        assert resp.status == 204

    events = await scim.state.list_events(tenant="default", resource_id=rid)
    types = sorted(e.type for e in events)
    assert types == sorted(
        ["scim.user.created", "scim.user.patched", "scim.user.replaced", "scim.user.deleted"]
    )
    created = next(e for e in events if e.type == "scim.user.created")
    assert created.request_id == "evt-req-1"
    assert created.resource_type == "User"
    assert created.actor is not None and created.actor.startswith("tok_")
    assert {"userName", "password", "name"} <= set(created.changed_attributes)
    patched = next(e for e in events if e.type == "scim.user.patched")
    assert patched.changed_attributes == ("displayName",)
    replaced = next(e for e in events if e.type == "scim.user.replaced")
    assert "nickName" in replaced.changed_attributes
    assert "displayName" in replaced.changed_attributes  # removed by the PUT

    lines = [r.getMessage() for r in caplog.records if r.name == "scimd.events"]
    assert len(lines) == 4
    logged = [orjson.loads(line) for line in lines]
    assert {e["type"] for e in logged} == set(types)
    assert all("s3cr3t-value" not in line for line in lines)
    for event in events:
        assert "s3cr3t-value" not in repr(event)

    # The broken sink did not stop the recording one nor the requests.
    assert sorted(e.type for e in SINKS.recording.events) == types


async def test_failed_write_emits_nothing(scim: Scim) -> None:
    status, _ = await scim.call("DELETE", "/Users/nope")
    assert status == 404
    assert await scim.state.list_events(tenant="default") == []


async def test_emitter_survives_failing_state_store(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenState:
        async def record_events(self, events: Sequence[Event]) -> None:
            raise OSError("disk full")

    sink = RecordingSink()
    emitter = EventEmitter(BrokenState(), [sink], log_events=False)  # type: ignore[arg-type]
    event = make_event("scim.user.created", tenant="t", resource_id="1", changed=["b", "a"])
    assert event.changed_attributes == ("a", "b")
    assert event.time <= datetime.now(UTC)
    with caplog.at_level(logging.ERROR):
        await emitter.emit(event)
    assert sink.events == [event]
    assert any("audit log" in r.getMessage() for r in caplog.records)
