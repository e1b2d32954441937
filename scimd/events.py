"""Provisioning events: the audit log, the ``scimd.events`` JSON log line, plugin sinks.

Every successful write through ``scimd.service`` produces one ``Event``
(``scim.user.created``, ``scim.group.patched`` ...) naming what changed (attribute names,
never values). ``EventEmitter.emit`` records it in the state store's audit log, writes it
as one JSON line on the logger ``scimd.events`` and hands it to every plugin event sink.
Emission never fails the request that caused it: a failing sink is logged and skipped.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from scimd.hookspecs import EventSink
from scimd.state.base import Event, StateStore

__all__ = ["EventEmitter", "event_to_json", "make_event"]

events_log = logging.getLogger("scimd.events")
log = logging.getLogger("scimd.events.delivery")


def make_event(
    type_: str,
    *,
    tenant: str,
    resource_type: str | None = None,
    resource_id: str | None = None,
    actor: str | None = None,
    request_id: str | None = None,
    changed: Iterable[str] = (),
    data: dict[str, Any] | None = None,
) -> Event:
    """Build an ``Event`` with a fresh id and the current UTC time."""
    return Event(
        id="evt_" + secrets.token_hex(12),
        type=type_,
        time=datetime.now(UTC),
        tenant=tenant,
        resource_type=resource_type,
        resource_id=resource_id,
        actor=actor,
        request_id=request_id,
        changed_attributes=tuple(sorted(set(changed))),
        data=dict(data or {}),
    )


def event_to_json(event: Event) -> dict[str, Any]:
    """The JSON form of an event (as logged and as sinks may send it)."""
    return {
        "id": event.id,
        "type": event.type,
        "time": event.time.isoformat(),
        "tenant": event.tenant,
        "resourceType": event.resource_type,
        "resourceId": event.resource_id,
        "actor": event.actor,
        "requestId": event.request_id,
        "changedAttributes": list(event.changed_attributes),
        "data": event.data,
    }


class EventEmitter:
    """Fans an event out to the audit log, the event log line and plugin sinks.

    :param state: the state store (audit log); ``None`` to skip it.
    :param sinks: plugin event sinks (``scimd.hookspecs.EventSink``: ``async emit(events)``).
    :param log_events: write one JSON line per event on logger ``scimd.events``.
    """

    def __init__(
        self,
        state: StateStore | None,
        sinks: Sequence[EventSink] = (),
        *,
        log_events: bool = True,
    ) -> None:
        self._state = state
        self._sinks = tuple(sinks)
        self._log_events = log_events

    async def emit(self, event: Event) -> None:
        """Deliver ``event`` everywhere; never raises (failures are logged)."""
        await self.emit_many((event,))

    async def emit_many(self, events: Sequence[Event], *, recorded: bool = False) -> None:
        """Deliver several events; never raises (failures are logged). ``recorded``: the
        audit log already holds them (written in the write's own transaction,
        ``scimd.backend.Outbox``), so only the log line and the sinks remain."""
        if not events:
            return
        if self._log_events:
            for event in events:
                events_log.info(orjson.dumps(event_to_json(event)).decode())
        if self._state is not None and not recorded:
            try:
                await self._state.record_events(events)
            except Exception:
                log.exception(
                    "could not record %d event(s) in the audit log (request %s)",
                    len(events),
                    events[0].request_id,
                )
        for sink in self._sinks:
            try:
                await sink.emit(events)
            except Exception:
                log.exception(
                    "event sink %r failed for %d event(s) (request %s)",
                    type(sink).__name__,
                    len(events),
                    events[0].request_id,
                )
