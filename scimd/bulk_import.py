"""``scimd import``: load Users (and Groups with members) from JSON lines or CSV into the
configured storage backend.

Input formats:

* **JSON lines** (``.jsonl``/``.ndjson``, or ``--format jsonl``): one SCIM resource per
  line; a line whose ``schemas`` holds the Group URN is a Group, anything else a User.
  A Group member may name a User of the import by ``{"userName": ...}`` or
  ``{"externalId": ...}`` instead of ``{"value": id}`` (ids are assigned by the server).
* **CSV** (``.csv``): Users; the header names attributes: ``userName``, ``externalId``,
  ``displayName``, ``active`` (true/false), dotted sub-attributes (``name.givenName``),
  ``emails`` / ``phoneNumbers`` (one value, type work, primary) and ``emails.home`` style
  columns (a value of that type). Empty cells are absent.

Every User line is validated by ``scimd.schema.validate.normalize_resource`` (a password
is hashed with argon2id as the service does), in a pool of worker processes for big
files; a bad line is reported (``FILE:LINE: reason``) and the load goes on. Users are
stored in batches through the backend's bulk path when it has one:

* ``import_encoder(tenant, rtype)`` returning a picklable ``encoder(rtype, resource)``
  (run in the workers next to normalisation) and ``import_encoded(ctx, rtype, encoded)``
  storing a batch of its results (an encoding that is a tuple, e.g. a named tuple,
  reaches it as a plain tuple of the same fields: plain tuples cross the process
  boundary three times faster), or
* ``import_resources(ctx, rtype, resources)``,

each returning one ``(status, detail)`` per resource, status ``created`` (detail: the
id), ``skipped`` (an equal unique value, e.g. the userName, is already stored; detail:
its id or "") or ``error`` (detail: the reason). Backends without either get ``create``
per resource, a ``uniqueness`` conflict counting as skipped. Re-running an import thus
resumes it: what is already stored is skipped.

``scim.unique_email`` applies as on POST: a User whose normalised primary email is
another stored user's (one set-based ``import_email_owners(ctx, rtype, values)`` query
per batch when the backend has it, else ``emails.value eq`` queries) or an earlier line's
of the batch is a per-line error; a stored user with the same userName is the same user.
A backend may offer ``import_bulk(records, force)``: an async context manager around the
whole load whose value says whether its bulk mode is on (PostgreSQL: secondary indexes
dropped and rebuilt after the load; ``--bulk/--no-bulk``, default decided by the backend).
Each batch emits one ``scim.<type>.imported`` event (file, line range, counts, created
ids) through the ``EventEmitter`` given. A backend that records audit events in the
write's own transaction (``Capabilities.events_in_transaction``) gets the batch's event as
``OpContext.outbox`` of ``import_encoded``: it records ``outbox.build({"outcomes":
outcomes})`` in the batch's transaction (a stored batch always has its event) and keeps
them in ``outbox.recorded``; when it recorded none (e.g. a batch stored one by one), the
event is recorded after the batch, as for the other backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import orjson
from argon2 import PasswordHasher

from scimd.backend import Backend, OpContext, Outbox, Query
from scimd.errors import ScimError, Uniqueness
from scimd.events import EventEmitter, make_event
from scimd.query.parse import parse_filter
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.schema.validate import normalize_resource
from scimd.state.base import Event
from scimd.unique_email import email_forms, primary_email

__all__ = ["POOL_THRESHOLD", "ImportStats", "import_file", "read_lines"]

GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
POOL_THRESHOLD = 5000
"""Files with this many records or more are normalised by a process pool by default."""
_TRUE = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


@dataclass
class ImportStats:
    lines: int = 0
    created: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0
    error_lines: list[tuple[int, str]] = field(default_factory=list)


def _csv_row(row: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, raw in row.items():
        if key is None or raw is None or raw == "":
            continue
        key = key.strip()
        low = key.lower()
        if low in ("emails", "phonenumbers"):
            body.setdefault(key, []).append({"value": raw, "type": "work", "primary": True})
        elif "." in key and key.split(".", 1)[0].lower() in ("emails", "phonenumbers"):
            attr, kind = key.split(".", 1)
            body.setdefault(attr, []).append({"value": raw, "type": kind})
        elif "." in key:
            attr, sub = key.split(".", 1)
            body.setdefault(attr, {})[sub] = raw
        elif low == "active":
            body[key] = _TRUE.get(raw.strip().lower(), raw)
        else:
            body[key] = raw
    return body


def read_lines(
    path: Path, fmt: str | None = None, *, raw: bool = False
) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON value or CSV row dict) for each input record; a line that
    does not parse yields an exception instance instead of the value (``parse_line``).

    ``raw``: a JSON line that cannot be a Group is yielded unparsed (bytes), for a worker
    process to parse (``_prepare_with``): the Group URN spelt out, or any ``\\u`` escape
    (the only JSON escape that can spell a letter), keeps a line parsed here. Lines end
    at ``\\n``, ``\\r\\n`` or ``\\r``, as when the file is read as text."""
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    if fmt == "csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                yield reader.line_num, _csv_row(row)
        return
    number = 0
    with path.open("rb") as fh:
        for chunk in fh:
            for line in chunk.splitlines() if b"\r" in chunk else (chunk,):
                number += 1
                if not line.strip():
                    continue
                if raw and _GROUP_MARK not in line and b"\\u" not in line:
                    yield number, line
                else:
                    yield number, parse_line(line)


_GROUP_MARK = b"core:2.0:Group"  # in GROUP_URN


def parse_line(line: bytes) -> Any:
    """A JSON line parsed, or a ValueError saying why it is not JSON."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return ValueError(f"not JSON: {exc}")


class _Progress:
    """A one-line progress bar on a terminal (``\\r``), else a line every 10%."""

    def __init__(self, total: int, out: TextIO, enabled: bool) -> None:
        self.total = max(1, total)
        self.out = out
        self.enabled = enabled
        self.tty = out.isatty()
        self.t0 = time.monotonic()
        self.last = 0.0
        self.decile = -1

    def update(self, done: int, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        frac = min(1.0, done / self.total)
        rate = done / max(1e-9, now - self.t0)
        if self.tty:
            if not final and now - self.last < 0.2:
                return
            self.last = now
            bar = "#" * int(frac * 30)
            self.out.write(f"\r[{bar:<30}] {frac:4.0%} {done}/{self.total} lines {rate:,.0f}/s")
            if final:
                self.out.write("\n")
        elif int(frac * 10) > self.decile or final:
            self.decile = int(frac * 10)
            self.out.write(f"import: {done}/{self.total} lines ({frac:.0%}, {rate:,.0f}/s)\n")
        self.out.flush()


_EMAIL_MESSAGE = (
    "The email {!r} is already the primary email of another user "
    "(emails are unique per tenant: scim.unique_email)"
)


class _Prepared(NamedTuple):
    """One input line after normalisation (in a worker process or in this one; a tuple:
    it crosses the process boundary, and tuples unpickle fastest)."""

    number: int
    error: str | None = None
    resource: dict[str, Any] | None = None  # when the backend has no row encoder
    encoded: Any = None  # the backend's encoding (``import_encoder``)
    user_name: str | None = None  # casefolded
    external_id: str | None = None
    email_key: str | None = None  # normalised primary email (scim.unique_email)
    email_original: str | None = None
    email_forms: tuple[str, ...] = ()


# The state of a worker process (``_init_worker``); in-process imports use their own.
_WORKER: dict[str, Any] = {}


def _init_worker(registry: SchemaRegistry, unknown: str, encoder: Any, unique_email: bool) -> None:
    _WORKER.update(registry=registry, unknown=unknown, encoder=encoder, unique_email=unique_email)


def _prepare_users(items: Sequence[tuple[int, Any]]) -> list[tuple[Any, ...]]:
    """Normalise (``normalize_resource``), hash passwords (argon2id) and encode the User
    lines ``items`` with the state of ``_init_worker``; as plain tuples (``_plain``)."""
    return [_plain(p) for p in _prepare_with(_WORKER, items)]


def _plain(prepared: _Prepared) -> tuple[Any, ...]:
    """``prepared`` as a plain tuple, its encoding too when that is a tuple: what a worker
    sends back. A named tuple pickles as its class and arguments, three times slower than
    a plain one (~20 of the ~80 µs a worker spent on a bench User); ``_Prepared._make``
    rebuilds it, the backend's ``import_encoded`` accepts its encodings as plain tuples."""
    encoded = prepared.encoded
    if isinstance(encoded, tuple):
        prepared = prepared._replace(encoded=tuple(encoded))
    return tuple(prepared)


def _prepare_with(state: dict[str, Any], items: Sequence[tuple[int, Any]]) -> list[_Prepared]:
    registry: SchemaRegistry = state["registry"]
    users = registry.resource_type("User")
    assert users is not None
    encoder = state["encoder"]
    out: list[_Prepared] = []
    for number, body in items:
        if isinstance(body, bytes):  # read_lines(raw=True)
            body = parse_line(body)
        if isinstance(body, Exception):
            out.append(_Prepared(number, error=str(body)))
            continue
        try:
            resource = normalize_resource(users, body, unknown=state["unknown"])
            password = resource.get("password")
            if isinstance(password, str):
                hasher = state.get("hasher") or state.setdefault("hasher", PasswordHasher())
                resource["password"] = hasher.hash(password)
        except ScimError as exc:
            out.append(_Prepared(number, error=f"{exc.scim_type or exc.status}: {exc.detail}"))
            continue
        email = primary_email(resource) if state["unique_email"] else None
        user_name = resource.get("userName")
        external_id = resource.get("externalId")
        out.append(
            _Prepared(
                number,
                resource=None if encoder is not None else resource,
                encoded=encoder(users, resource) if encoder is not None else None,
                user_name=user_name.casefold() if isinstance(user_name, str) else None,
                external_id=external_id if isinstance(external_id, str) else None,
                email_key=email.address if email is not None else None,
                email_original=email.original if email is not None else None,
                email_forms=tuple(email_forms(email)) if email is not None else (),
            )
        )
    return out


class _Importer:
    def __init__(
        self,
        backend: Backend,
        registry: SchemaRegistry,
        ctx: OpContext,
        unknown: str,
        errors: TextIO,
        name: str,
        *,
        events: EventEmitter | None,
        unique_email: bool,
        remember: bool,
    ) -> None:
        self.backend = backend
        self.registry = registry
        self.ctx = ctx
        self.unknown = "ignore" if unknown == "ignore" else "error"
        self.errors = errors
        self.name = name
        self.events = events
        self.unique_email = unique_email
        self.remember_keys = remember
        users = registry.resource_type("User")
        groups = registry.resource_type("Group")
        if users is None:
            raise ValueError("the schema has no User resource type")
        self.users: ResourceType = users
        self.groups: ResourceType | None = groups
        make_encoder = getattr(backend, "import_encoder", None)
        self.encoder: Any = make_encoder(ctx.tenant, users) if make_encoder else None
        self.by_key: dict[tuple[str, str], str] = {}  # (userName|externalId, value) -> id
        self.hasher: PasswordHasher | None = None
        self.stats = ImportStats()

    def worker_state(self) -> tuple[SchemaRegistry, str, Any, bool]:
        return self.registry, self.unknown, self.encoder, self.unique_email

    def fail(self, number: int, reason: str) -> None:
        self.stats.errors += 1
        self.stats.error_lines.append((number, reason))
        self.errors.write(f"{self.name}:{number}: {reason}\n")

    async def _member_id(self, member: dict[str, Any]) -> str | None:
        for attr in ("userName", "externalId"):
            value = member.get(attr)
            if isinstance(value, str):
                hit = self.by_key.get((attr.lower(), value.casefold()))
                if hit is not None:
                    return hit
                flt = parse_filter(f"{attr} eq {orjson.dumps(value).decode()}", self.users)
                page = await self.backend.query(self.ctx, self.users, Query(filter=flt, count=1))
                if page.resources:
                    return str(page.resources[0]["id"])
                return None
        return None

    async def prepare_group(self, number: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """A Group line: members named by userName/externalId resolved, normalised."""
        assert self.groups is not None
        members = body.get("members")
        if isinstance(members, list):
            resolved = []
            for member in members:
                if isinstance(member, dict) and "value" not in member:
                    mid = await self._member_id(member)
                    if mid is None:
                        self.fail(number, f"member {orjson.dumps(member).decode()}: no such User")
                        return None
                    member = {"value": mid}
                resolved.append(member)
            body = {**body, "members": resolved}
        try:
            return normalize_resource(self.groups, body, unknown=self.unknown)  # type: ignore[arg-type]
        except ScimError as exc:
            self.fail(number, f"{exc.scim_type or exc.status}: {exc.detail}")
            return None

    def remember(self, user_name: str | None, external_id: str | None, rid: str) -> None:
        if not self.remember_keys or not rid:
            return
        if user_name is not None:
            self.by_key[("username", user_name)] = rid
        if external_id is not None:
            self.by_key[("externalid", external_id.casefold())] = rid

    async def _stored_emails(self, forms: list[str]) -> list[dict[str, Any]]:
        """Stored Users with an ``emails.value`` among ``forms`` (set-based when the
        backend offers ``import_email_owners``, else one query per 20 forms)."""
        owners = getattr(self.backend, "import_email_owners", None)
        if owners is not None:
            return list(await owners(self.ctx, self.users, forms))
        found: list[dict[str, Any]] = []
        for start in range(0, len(forms), 20):
            text = " or ".join(
                f"emails.value eq {orjson.dumps(f).decode()}" for f in forms[start : start + 20]
            )
            flt = parse_filter(text, self.users)
            query = Query(filter=flt, count=1000)
            found.extend((await self.backend.query(self.ctx, self.users, query)).resources)
        return found

    async def check_emails(self, batch: list[_Prepared]) -> list[_Prepared]:
        """scim.unique_email: drop (as per-line errors) the Users whose primary email is
        already another stored user's primary email, or an earlier line's of this batch.
        A stored user with the same userName is the same user (a resumed import)."""
        keyed = [p for p in batch if p.email_key is not None]
        if not self.unique_email or not keyed:
            return batch
        forms = sorted({f for p in keyed for f in p.email_forms})
        owners: dict[str, set[str]] = {}
        for user in await self._stored_emails(forms):
            email = primary_email(user)
            name = user.get("userName")
            if email is not None and isinstance(name, str):
                owners.setdefault(email.address, set()).add(name.casefold())
        claimed: set[str] = set()
        kept: list[_Prepared] = []
        for p in batch:
            key = p.email_key
            if key is not None:
                stored = owners.get(key, set())
                if key in claimed or (stored and p.user_name not in stored):
                    self.fail(p.number, "uniqueness: " + _EMAIL_MESSAGE.format(p.email_original))
                    continue
                claimed.add(key)
            kept.append(p)
        return kept

    async def store_users(self, prepared: list[_Prepared]) -> None:
        before = (self.stats.skipped, self.stats.errors)
        span = (prepared[0].number, prepared[-1].number) if prepared else (0, 0)
        batch: list[_Prepared] = []
        for p in prepared:
            if p.error is not None:
                self.fail(p.number, p.error)
            else:
                batch.append(p)
        batch = await self.check_emails(batch)
        if not batch:
            await self._announce(self.users, span, before, [])
            return
        outbox: Outbox | None = None
        if self.encoder is not None:
            encoded = getattr(self.backend, "import_encoded")  # noqa: B009
            ctx = self.ctx
            if self.events is not None and self.backend.capabilities.events_in_transaction:
                outbox = Outbox(self._batch_events(span, before))
                ctx = dataclasses.replace(ctx, outbox=outbox)
            outcomes = list(await encoded(ctx, self.users, [p.encoded for p in batch]))
        else:
            outcomes = await self._store_resources(
                self.users, [p.resource for p in batch if p.resource is not None]
            )
        lines = [(p.number, p.user_name, p.external_id) for p in batch]
        created = self._account(lines, outcomes)
        if outbox is not None and outbox.recorded and self.events is not None:
            await self.events.emit_many(outbox.recorded, recorded=True)
        else:
            await self._announce(self.users, span, before, created)

    def _batch_events(
        self, span: tuple[int, int], before: tuple[int, int]
    ) -> Callable[[Mapping[str, Any] | None], list[Event]]:
        """The ``Outbox.build`` of a User batch: its ``scim.user.imported`` event from the
        backend's outcomes (``{"outcomes": [(status, detail), ...]}``), built inside the
        batch's transaction, before ``_account`` counts them."""

        def build(result: Mapping[str, Any] | None) -> list[Event]:
            outcomes = list(result.get("outcomes", ())) if result is not None else []
            created = [detail for status, detail in outcomes if status == "created"]
            skipped = sum(1 for status, _ in outcomes if status == "skipped")
            failed = len(outcomes) - len(created) - skipped
            return [
                self._event(
                    self.users,
                    span,
                    created,
                    self.stats.skipped - before[0] + skipped,
                    self.stats.errors - before[1] + failed,
                )
            ]

        return build

    async def store_group(self, number: int, resource: dict[str, Any]) -> None:
        assert self.groups is not None
        before = (self.stats.skipped, self.stats.errors)
        outcomes = await self._store_resources(self.groups, [resource])
        created = self._account([(number, None, None)], outcomes)
        await self._announce(self.groups, (number, number), before, created)

    async def _store_resources(
        self, rtype: ResourceType, resources: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        bulk = getattr(self.backend, "import_resources", None)
        if bulk is not None:
            return list(await bulk(self.ctx, rtype, resources))
        outcomes: list[tuple[str, str]] = []
        for resource in resources:
            try:
                made = await self.backend.create(self.ctx, rtype, resource)
                outcomes.append(("created", str(made["id"])))
            except Uniqueness:
                outcomes.append(("skipped", ""))
            except ScimError as exc:
                outcomes.append(("error", f"{exc.scim_type or exc.status}: {exc.detail}"))
        return outcomes

    def _account(
        self, lines: list[tuple[int, str | None, str | None]], outcomes: list[tuple[str, str]]
    ) -> list[str]:
        """Count the backend's outcomes; returns the ids created."""
        created: list[str] = []
        for (number, user_name, external_id), (status, detail) in zip(lines, outcomes, strict=True):
            if status == "created":
                self.stats.created += 1
                created.append(detail)
                self.remember(user_name, external_id, detail)
            elif status == "skipped":
                self.stats.skipped += 1
                self.remember(user_name, external_id, detail)
            else:
                self.fail(number, detail)
        return created

    async def _announce(
        self,
        rtype: ResourceType,
        span: tuple[int, int],
        before: tuple[int, int],
        created: list[str],
    ) -> None:
        """One ``scim.<type>.imported`` event per batch (``_event``), after it is stored."""
        if self.events is None:
            return
        await self.events.emit(
            self._event(
                rtype,
                span,
                created,
                self.stats.skipped - before[0],
                self.stats.errors - before[1],
            )
        )

    def _event(
        self,
        rtype: ResourceType,
        span: tuple[int, int],
        created: list[str],
        skipped: int,
        errors: int,
    ) -> Event:
        """The ``scim.<type>.imported`` event of a batch: the file, its line range, the
        counts and the ids created (per-line reasons are on stderr)."""
        return make_event(
            f"scim.{rtype.name.lower()}.imported",
            tenant=self.ctx.tenant,
            resource_type=rtype.name,
            actor=self.ctx.principal,
            request_id=self.ctx.request_id,
            data={
                "file": self.name,
                "lines": list(span),
                "created": len(created),
                "skipped": skipped,
                "errors": errors,
                "ids": created,
            },
        )


def _count(path: Path, fmt: str | None) -> tuple[int, bool]:
    """(records in the file, whether it may hold Groups), without parsing JSON."""
    if (fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")) == "csv":
        return sum(1 for _ in read_lines(path, "csv")), False
    total = 0
    groups = False
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                total += 1
                groups = groups or _GROUP_MARK in line
    return total, groups


def _is_group(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("schemas"), list)
        and GROUP_URN in body["schemas"]
    )


async def import_file(
    path: Path,
    backend: Backend,
    registry: SchemaRegistry,
    *,
    tenant: str,
    fmt: str | None = None,
    batch_size: int = 1000,
    unknown: str = "error",
    progress: bool | None = None,
    errors: TextIO | None = None,
    events: EventEmitter | None = None,
    unique_email: bool = True,
    workers: int | None = None,
    bulk: bool | None = None,
) -> ImportStats:
    """Import ``path`` into ``backend`` (started) for ``tenant``; see the module doc.

    :param events: where the per-batch ``scim.<type>.imported`` events go (None: none).
    :param unique_email: apply ``scim.unique_email`` to the Users.
    :param workers: processes normalising Users; None: one per CPU for files of
        ``POOL_THRESHOLD`` lines or more, else none (0 or 1: in this process).
    :param bulk: the backend's bulk mode (``import_bulk(records, bulk)``, e.g. secondary
        indexes dropped during the load and rebuilt after it): True/False to force it,
        None to let the backend decide from the size of the file.
    """
    err = errors if errors is not None else sys.stderr
    ctx = OpContext(
        tenant=tenant,
        principal="import",
        request_id=f"import:{path.name}",
        load_members=False,
        load_groups=False,
    )
    total, has_groups = _count(path, fmt)
    imp = _Importer(
        backend,
        registry,
        ctx,
        unknown,
        err,
        path.name,
        events=events,
        unique_email=unique_email,
        remember=has_groups,
    )
    if workers is None:
        workers = (os.cpu_count() or 1) if total >= POOL_THRESHOLD else 0
    bar = _Progress(total, sys.stderr, progress if progress is not None else sys.stderr.isatty())
    t0 = time.perf_counter()
    pool: ProcessPoolExecutor | None = None
    if workers > 1:
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=imp.worker_state(),
        )
    local = dict(
        zip(("registry", "unknown", "encoder", "unique_email"), imp.worker_state(), strict=True)
    )
    loop = asyncio.get_running_loop()
    in_flight: deque[asyncio.Future[Sequence[tuple[Any, ...]]]] = deque()

    async def drain(keep: int) -> None:
        while len(in_flight) > keep:
            await imp.store_users(list(map(_Prepared._make, await in_flight.popleft())))
            bar.update(imp.stats.lines)

    def submit(items: list[tuple[int, Any]]) -> None:
        if pool is not None:
            in_flight.append(loop.run_in_executor(pool, _prepare_users, items))
        else:
            done: asyncio.Future[Sequence[tuple[Any, ...]]] = loop.create_future()
            done.set_result(_prepare_with(local, items))
            in_flight.append(done)

    async def load() -> None:
        pending: list[tuple[int, Any]] = []
        for number, body in read_lines(path, fmt, raw=True):
            imp.stats.lines += 1
            if not _is_group(body):
                pending.append((number, body))
                if len(pending) >= batch_size:
                    submit(pending)
                    pending = []
                    await drain(workers + 1 if pool is not None else 0)
                continue
            if pending:  # its members may be in the lines before
                submit(pending)
                pending = []
            await drain(0)
            if imp.groups is None:
                imp.fail(number, "the schema has no Group resource type")
                continue
            group = await imp.prepare_group(number, body)
            if group is not None:
                await imp.store_group(number, group)
        if pending:
            submit(pending)
        await drain(0)

    bulk_mode = getattr(backend, "import_bulk", None)
    mode: Any = bulk_mode(total, bulk) if bulk_mode is not None else contextlib.nullcontext(False)
    try:
        async with mode as on:
            if on and bar.enabled:
                sys.stderr.write("import: bulk mode (secondary indexes rebuilt at the end)\n")
            await load()
            if on and bar.enabled:
                sys.stderr.write("import: rebuilding indexes\n")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    imp.stats.seconds = time.perf_counter() - t0
    bar.update(imp.stats.lines, final=True)
    return imp.stats
