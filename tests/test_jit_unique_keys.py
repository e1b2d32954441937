"""The normalised primary email is unique per tenant, enforced by the backend atomically
with the write (JIT.md: "unique constraints on (idp, subject) and on the normalised
email"; ``Capabilities.unique_keys`` / ``OpContext.unique_keys``, ``scimd.store.unique_keys``).

Several scimd processes sharing one embedded database each have their own in-process
locks; only the store's own constraint, checked inside the write transaction, keeps two of
them from creating the same person twice. These tests use independent ``SQLiteBackend``
instances on one file (each with its own writer thread, caches and service), and real OS
processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from scimd.backend import OpContext
from scimd.errors import ScimError, Uniqueness
from scimd.events import EventEmitter
from scimd.service import Service
from scimd.settings import ScimSettings, Settings
from scimd.store.plugin import EmbeddedFactory
from scimd.store.sqlite import SQLiteBackend
from scimd.store.unique_keys import EMAIL
from scimd.testing.unique import UniqueKeysContract
from tests._store_helpers import ctx, group, group_type, make_backend, registry, user, user_type

ROOT = Path(__file__).resolve().parent.parent
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENFORCE = OpContext("acme", "test", "req", unique_keys=frozenset({EMAIL}))


def with_email(name: str, email: str, *, primary: bool = True, **extra: Any) -> dict[str, Any]:
    return user(name, emails=[{"value": email, "type": "work", "primary": primary}], **extra)


def service_on(backend: SQLiteBackend, *, unique: bool = True) -> Service:
    settings = Settings(scim=ScimSettings(unique_email=unique))
    return Service(registry(), backend, None, settings, EventEmitter(None, log_events=False))


@pytest.fixture
async def open_backend(tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    """Opens independent backends on one database file (like separate processes)."""
    opened: list[SQLiteBackend] = []

    async def make(**kw: Any) -> SQLiteBackend:
        trace = kw.pop("trace", None)
        backend = make_backend(tmp_path / "shared.db", **kw)
        backend.trace = trace
        await backend.start()
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        await backend.aclose()


async def outcome(coro: Any) -> str:
    try:
        await coro
    except Uniqueness as exc:
        return f"409:{exc.detail}"
    return "ok"


# ---------------------------------------------------------------------- through the service
# (the backend contract itself: TestEmbeddedUniqueKeys at the end)


async def test_patch_and_replace_to_a_taken_email_are_refused_atomically(
    open_backend: Any,
) -> None:
    backend = await open_backend()
    users = user_type()
    await backend.create(ENFORCE, users, with_email("ann", "ann@example.com"))
    bob = await backend.create(ENFORCE, users, with_email("bob", "bob@example.com"))
    svc = service_on(backend)
    body: dict[str, Any] = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "replace", "path": "emails[primary eq true].value", "value": "ANN@example.com"}
        ],
    }
    with pytest.raises(Uniqueness) as info:
        await svc.patch(ENFORCE, users, bob["id"], body, if_match=None)
    assert "ANN@example.com" in info.value.detail
    with pytest.raises(Uniqueness):
        await svc.replace(
            ENFORCE, users, bob["id"], with_email("bob", "Ann@example.com"), if_match=None
        )
    stored = await backend.get(ctx(), users, bob["id"])
    assert stored["emails"][0]["value"] == "bob@example.com"
    assert stored["meta"]["version"] == bob["meta"]["version"]  # nothing was written
    # Changing one's own spelling keeps the key.
    body["Operations"][0]["value"] = "BOB@Example.com"
    patched = await svc.patch(ENFORCE, users, bob["id"], body, if_match=None)
    assert patched["emails"][0]["value"] == "BOB@Example.com"


async def test_delete_and_email_change_free_the_key(open_backend: Any) -> None:
    backend = await open_backend()
    users = user_type()
    ann = await backend.create(ENFORCE, users, with_email("ann", "ann@example.com"))
    bob = await backend.create(ENFORCE, users, with_email("bob", "bob@example.com"))
    await backend.delete(ENFORCE, users, ann["id"], if_match=None)
    await backend.create(ENFORCE, users, with_email("ann2", "ann@example.com"))
    await backend.replace(
        ENFORCE, users, bob["id"], with_email("bob", "b@example.com"), if_match=None
    )
    await backend.create(ENFORCE, users, with_email("bob2", "bob@example.com"))
    # No emails at all: no key.
    await backend.replace(ENFORCE, users, bob["id"], user("bob"), if_match=None)
    await backend.create(ENFORCE, users, with_email("b2", "b@example.com"))


async def test_groups_and_unrequested_writes_are_not_checked(open_backend: Any) -> None:
    backend = await open_backend()
    users = user_type()
    await backend.create(ENFORCE, group_type(), group("Admins"))
    await backend.create(ENFORCE, users, with_email("ann", "ann@example.com"))
    # scim.unique_email = false: the service does not ask, duplicates are allowed...
    svc = service_on(backend, unique=False)
    dup = await svc.create(ctx(), users, with_email("ann2", "ann@example.com"))
    # ...and they stay editable once the setting is back on.
    on = service_on(backend)
    await on.replace(
        ctx(), users, dup["id"], with_email("ann2", "ANN@example.com", title="x"), if_match=None
    )
    with pytest.raises(Uniqueness):
        await on.create(ctx(), users, with_email("ann3", "ann@example.com"))


# ---------------------------------------------------------------------- races


async def test_two_services_on_two_backends_race_and_exactly_one_wins(open_backend: Any) -> None:
    """Both writes are held at the database's write lock (so any check a service did before
    the transaction has passed for both); once released, exactly one commits."""
    loop = asyncio.get_running_loop()
    waiting: asyncio.Queue[str] = asyncio.Queue()
    armed: dict[str, bool] = {}

    def tracer(name: str) -> Callable[[str], None]:
        def trace(sql: str) -> None:
            if armed.get(name) and sql.startswith("BEGIN IMMEDIATE"):
                loop.call_soon_threadsafe(waiting.put_nowait, name)

        return trace

    backends = [await open_backend(trace=tracer(n)) for n in ("a", "b")]
    services = [service_on(b) for b in backends]
    users = user_type()
    for round_ in range(5):
        blocker = sqlite3.connect(backends[0].path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        armed.update(a=True, b=True)
        tasks = [
            asyncio.create_task(
                outcome(
                    svc.create(ctx(), users, with_email(f"u{round_}{i}", f"P{round_}@Example.com"))
                )
            )
            for i, svc in enumerate(services)
        ]
        assert {await waiting.get(), await waiting.get()} == {"a", "b"}
        armed.update(a=False, b=False)
        blocker.execute("ROLLBACK")
        blocker.close()
        results = sorted(await asyncio.gather(*tasks))
        assert results[0] == "409:" + results[0][4:] and f"P{round_}@Example.com" in results[0]
        assert results[1] == "ok"


_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from scimd.errors import Uniqueness
    from tests._store_helpers import ctx, make_backend, user_type
    from tests.test_jit_unique_keys import service_on, with_email

    async def main() -> None:
        backend = make_backend(Path(sys.argv[1]))
        await backend.start()
        svc = service_on(backend)
        print("ready", flush=True)
        for line in sys.stdin:
            name, email = line.split()
            try:
                await svc.create(ctx(), user_type(), with_email(name, email))
                print("ok", flush=True)
            except Uniqueness:
                print("409", flush=True)
        await backend.aclose()

    asyncio.run(main())
    """
)


async def test_two_os_processes_create_the_same_email_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PROCESS,
            str(db),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert (await asyncio.wait_for(p.stdout.readline(), 60)).strip() == b"ready"
        for i in range(20):
            for n, p in enumerate(procs):
                assert p.stdin is not None
                p.stdin.write(f"p{n}r{i} Race{i}@Example.com\n".encode())
                await p.stdin.drain()
            lines = [
                (await asyncio.wait_for(p.stdout.readline(), 60)).strip()  # type: ignore[union-attr]
                for p in procs
            ]
            assert sorted(lines) == [b"409", b"ok"], (i, lines)
    finally:
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in procs:
            await asyncio.wait_for(p.wait(), 60)
    backend = make_backend(db)
    await backend.start()
    try:
        conn = sqlite3.connect(db)
        keys = conn.execute("SELECT count(*), count(DISTINCT key) FROM unique_keys").fetchone()
        assert keys == (20, 20)
    finally:
        await backend.aclose()


# ---------------------------------------------------------------------- migration


async def test_layout_2_database_is_backfilled_and_legacy_duplicates_stay_editable(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old.db"
    backend = make_backend(db)
    await backend.start()
    users = user_type()
    # Written without asking for the key (as scimd before layout 3 or with the setting off).
    first = await backend.create(ctx(), users, with_email("first", "dup@example.com"))
    second = await backend.create(ctx(), users, with_email("second", "DUP@example.com"))
    await backend.create(ctx(), users, with_email("solo", "solo@example.com"))
    await backend.aclose()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE unique_keys")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()

    backend = make_backend(db)
    await backend.start()
    try:
        svc = service_on(backend)
        rows = (
            sqlite3.connect(db)
            .execute("SELECT key, shared FROM unique_keys ORDER BY pk")
            .fetchall()
        )
        assert rows == [("dup@example.com", 0), ("dup@example.com", 1), ("solo@example.com", 0)]
        with pytest.raises(Uniqueness):
            await svc.create(ctx(), users, with_email("third", "solo@example.com"))
        # Both holders of the legacy duplicate can still be edited while keeping it.
        for rid in (first["id"], second["id"]):
            await svc.replace(
                ctx(), users, rid, with_email("n" + rid[:4], "dup@example.com"), if_match=None
            )
        # The first holder leaves: the second still holds it, a newcomer is refused.
        await svc.replace(
            ctx(), users, first["id"], with_email("first", "f@example.com"), if_match=None
        )
        with pytest.raises(Uniqueness):
            await svc.create(ctx(), users, with_email("third", "dup@example.com"))
    finally:
        await backend.aclose()


async def test_unique_error_is_a_scim_409_over_the_service(open_backend: Any) -> None:
    backend = await open_backend()
    svc = service_on(backend)
    await svc.create(ctx(), user_type(), with_email("ann", "ann@example.com"))
    with pytest.raises(ScimError) as info:
        await svc.create(ctx(), user_type(), with_email("ann2", "ann@EXAMPLE.com"))
    assert info.value.status == 409


class TestEmbeddedUniqueKeys(UniqueKeysContract):
    """The contract module (scimd.testing.unique) against the embedded store."""

    @pytest.fixture
    def backend_factory(self) -> Callable[..., Any]:
        return EmbeddedFactory()

    @pytest.fixture
    def backend_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"path": str(tmp_path / "u.db")}
