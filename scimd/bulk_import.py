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

Every line is validated by ``scimd.schema.validate.normalize_resource`` (a password is
hashed with argon2id as the service does); a bad line is reported (``FILE:LINE: reason``)
and the load goes on. Lines are stored in batches through the backend's bulk path when it
has one: a coroutine method ``import_resources(ctx, rtype, resources)`` returning one
``(status, detail)`` per resource, status ``created`` (detail: the id), ``skipped`` (an
equal unique value, e.g. the userName, is already stored; detail: its id or "") or
``error`` (detail: the reason). Backends without it (the embedded store) get ``create``
per resource, a ``uniqueness`` conflict counting as skipped. Re-running an import thus
resumes it: what is already stored is skipped. Imports emit no provisioning events and do
not apply ``scim.unique_email``.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
from argon2 import PasswordHasher

from scimd.backend import Backend, OpContext, Query
from scimd.errors import ScimError, Uniqueness
from scimd.query.parse import parse_filter
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.schema.validate import normalize_resource

__all__ = ["ImportStats", "import_file", "read_lines"]

GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
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


def read_lines(path: Path, fmt: str | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON value or CSV row dict) for each input record; a line that
    does not parse yields an exception instance instead of the value."""
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    with path.open(encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            reader = csv.DictReader(fh)
            for row in reader:
                yield reader.line_num, _csv_row(row)
            return
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, ValueError(f"not JSON: {exc}")


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


class _Importer:
    def __init__(
        self,
        backend: Backend,
        registry: SchemaRegistry,
        ctx: OpContext,
        unknown: str,
        errors: TextIO,
        name: str,
    ) -> None:
        self.backend = backend
        self.ctx = ctx
        self.unknown = "ignore" if unknown == "ignore" else "error"
        self.errors = errors
        self.name = name
        users = registry.resource_type("User")
        groups = registry.resource_type("Group")
        if users is None:
            raise ValueError("the schema has no User resource type")
        self.users: ResourceType = users
        self.groups: ResourceType | None = groups
        self.by_key: dict[tuple[str, str], str] = {}  # (userName|externalId, value) -> id
        self.hasher: PasswordHasher | None = None
        self.stats = ImportStats()

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

    async def prepare(self, number: int, body: Any) -> tuple[ResourceType, dict[str, Any]] | None:
        if isinstance(body, Exception):
            self.fail(number, str(body))
            return None
        rtype = self.users
        if isinstance(body, dict):
            schemas = body.get("schemas")
            if isinstance(schemas, list) and GROUP_URN in schemas:
                if self.groups is None:
                    self.fail(number, "the schema has no Group resource type")
                    return None
                rtype = self.groups
                members = body.get("members")
                if isinstance(members, list):
                    resolved = []
                    for member in members:
                        if isinstance(member, dict) and "value" not in member:
                            mid = await self._member_id(member)
                            if mid is None:
                                self.fail(
                                    number, f"member {orjson.dumps(member).decode()}: no such User"
                                )
                                return None
                            member = {"value": mid}
                        resolved.append(member)
                    body = {**body, "members": resolved}
        try:
            resource = normalize_resource(rtype, body, unknown=self.unknown)  # type: ignore[arg-type]
            password = resource.get("password")
            if rtype is self.users and isinstance(password, str):
                self.hasher = self.hasher or PasswordHasher()
                resource["password"] = self.hasher.hash(password)
        except ScimError as exc:
            self.fail(number, f"{exc.scim_type or exc.status}: {exc.detail}")
            return None
        return rtype, resource

    def remember(self, resource: dict[str, Any], rid: str) -> None:
        for attr in ("userName", "externalId"):
            value = resource.get(attr)
            if isinstance(value, str) and rid:
                self.by_key[(attr.lower(), value.casefold())] = rid

    async def store(self, rtype: ResourceType, batch: list[tuple[int, dict[str, Any]]]) -> None:
        resources = [r for _, r in batch]
        bulk = getattr(self.backend, "import_resources", None)
        if bulk is not None:
            outcomes: list[tuple[str, str]] = list(await bulk(self.ctx, rtype, resources))
        else:
            outcomes = []
            for resource in resources:
                try:
                    made = await self.backend.create(self.ctx, rtype, resource)
                    outcomes.append(("created", str(made["id"])))
                except Uniqueness:
                    outcomes.append(("skipped", ""))
                except ScimError as exc:
                    outcomes.append(("error", f"{exc.scim_type or exc.status}: {exc.detail}"))
        for (number, resource), (status, detail) in zip(batch, outcomes, strict=True):
            if status == "created":
                self.stats.created += 1
                self.remember(resource, detail)
            elif status == "skipped":
                self.stats.skipped += 1
                self.remember(resource, detail)
            else:
                self.fail(number, detail)


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
) -> ImportStats:
    """Import ``path`` into ``backend`` (started) for ``tenant``; see the module doc."""
    err = errors if errors is not None else sys.stderr
    ctx = OpContext(
        tenant=tenant,
        principal="system",
        request_id="import",
        load_members=False,
        load_groups=False,
    )
    imp = _Importer(backend, registry, ctx, unknown, err, path.name)
    total = sum(1 for _ in read_lines(path, fmt))
    bar = _Progress(total, sys.stderr, progress if progress is not None else sys.stderr.isatty())
    t0 = time.perf_counter()
    pending: list[tuple[int, dict[str, Any]]] = []
    pending_type: ResourceType | None = None
    for number, body in read_lines(path, fmt):
        imp.stats.lines += 1
        is_group = (
            isinstance(body, dict)
            and isinstance(body.get("schemas"), list)
            and GROUP_URN in body["schemas"]
        )
        if is_group and pending and pending_type is not None:
            await imp.store(pending_type, pending)  # its members may be in this batch
            pending = []
        prepared = await imp.prepare(number, body)
        if prepared is None:
            continue
        rtype, resource = prepared
        if pending and (rtype is not pending_type or len(pending) >= batch_size):
            assert pending_type is not None
            await imp.store(pending_type, pending)
            pending = []
        pending_type = rtype
        pending.append((number, resource))
        if rtype is not imp.users:  # Groups may name Users of the next lines' batch
            await imp.store(rtype, pending)
            pending = []
        if imp.stats.lines % 1000 == 0:
            bar.update(imp.stats.lines)
    if pending and pending_type is not None:
        await imp.store(pending_type, pending)
    imp.stats.seconds = time.perf_counter() - t0
    bar.update(imp.stats.lines, final=True)
    return imp.stats
