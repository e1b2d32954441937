"""``scimd import`` applies what a SCIM POST applies: ``scim.unique_email`` (a line whose
normalised primary email is another user's is a per-line error; a resumed import is not),
a userName already stored is skipped (the same user: a resumed import), and one
``scim.user.imported`` event per batch naming the created ids. Run on the embedded store
here (the ``create`` fallback, in this
process) and by ``plugins/scimd-postgres/tests/test_import_postgres.py`` on PostgreSQL's
COPY path with a process pool."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from scimd.backend import Backend, BackendEnv, OpContext, Query
from scimd.bulk_import import import_file
from scimd.events import EventEmitter
from scimd.schema.loader import builtin_registry
from scimd.state.base import Event
from scimd.store.sqlite import SQLiteBackend

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


def user(name: str, email: str | None = None, **attrs: Any) -> bytes:
    body: dict[str, Any] = {"schemas": [USER_URN], "userName": name, **attrs}
    if email is not None:
        body["emails"] = [{"value": email, "type": "work", "primary": True}]
    return orjson.dumps(body)


LINES = [
    user("ann", "Ann@Example.COM"),  # 1
    user("bob", "bob@example.com", password="s3cret-Pass"),  # 2
    user("carl", "ann@example.com"),  # 3: ann's primary email, normalised: error
    user("ANN", "other@example.com"),  # 4: ann's userName (casefolded): already stored
    user("dora", "dora@example.com"),  # 5
]


async def check_import_rules(backend: Backend, tmp_path: Path, workers: int) -> None:
    registry = builtin_registry()
    users = registry.resource_type("User")
    assert users is not None
    data = tmp_path / "users.jsonl"
    data.write_bytes(b"\n".join(LINES) + b"\n")
    sink = Sink()
    errors = io.StringIO()
    stats = await import_file(
        data,
        backend,
        registry,
        tenant="default",
        batch_size=2,
        errors=errors,
        events=EventEmitter(None, [sink], log_events=False),
        workers=workers,
    )
    assert (stats.created, stats.skipped, stats.errors) == (3, 1, 1), errors.getvalue()
    report = errors.getvalue()
    assert "users.jsonl:3: uniqueness" in report and "scim.unique_email" in report
    ctx = OpContext(tenant="default", principal="t", request_id="t")
    page = await backend.query(ctx, users, Query(count=50))
    stored = {u["userName"]: u for u in page.resources}
    assert sorted(stored) == ["ann", "bob", "dora"]
    assert stored["bob"]["password"].startswith("$argon2id$")
    assert stored["ann"]["meta"]["version"] == 'W/"1"'
    imported = [e for e in sink.events if e.type == "scim.user.imported"]
    assert sorted(i for e in imported for i in e.data["ids"]) == sorted(
        u["id"] for u in stored.values()
    )
    assert sum(e.data["errors"] for e in imported) == 1
    assert sum(e.data["skipped"] for e in imported) == 1
    assert all(e.actor == "import" and e.data["file"] == "users.jsonl" for e in imported)

    # A re-run resumes: the stored users are skipped, their own emails are no conflict.
    errors = io.StringIO()
    stats = await import_file(
        data, backend, registry, tenant="default", batch_size=2, errors=errors, workers=workers
    )
    assert (stats.created, stats.skipped, stats.errors) == (0, 4, 1), errors.getvalue()


async def test_import_rules_embedded(tmp_path: Path) -> None:
    backend = SQLiteBackend(
        BackendEnv(
            options={"path": str(tmp_path / "s.db")},
            registry=builtin_registry(),
            base_dir=tmp_path,
        )
    )
    await backend.start()
    try:
        await check_import_rules(backend, tmp_path, workers=0)
    finally:
        await backend.aclose()
