"""Derived unique keys a backend enforces atomically with its writes (issue 7 item 4).

A *derived key* is a value computed from a resource that must be unique per tenant
without being an attribute of its own: today one kind, ``"email"``, the normalised primary
email of a User (JIT.md "Email normalisation": one person never becomes two accounts).

The contract (``scimd.backend``):

* a backend that declares a kind in ``Capabilities.unique_keys`` keeps, for every resource
  it stores, the keys :func:`derive_keys` returns for the state it stores, and updates them
  in the same transaction as the resource (create, replace, patch: on the state *after*
  the operations were applied; delete frees them);
* when the write's ``OpContext.unique_keys`` names the kind (the service asks for it when
  ``scim.unique_email`` is on), a key that another resource of the tenant already holds
  raises :func:`conflict` (``Uniqueness`` naming the email) and the write does not happen;
  two writers in two processes cannot both pass (a unique index, or a serialised writer);
* a resource that already held a key keeps it even when another resource holds it too
  (legacy data stored before the setting, or written while it was off): such rows are
  *shared* and outside the unique index, so the duplicates stay editable as long as the
  write keeps that key; a new holder of the key is still refused.

The embedded store implements it with the SQLite helpers below (``unique_keys`` table);
the PostgreSQL backend needs the same table (a partial unique index ``WHERE NOT shared``)
and the same steps in its write transaction (see docs/jit.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from scimd.errors import Uniqueness
from scimd.jit.email import EmailError, NormalizedEmail, normalize_email
from scimd.schema.model import ResourceType

__all__ = [
    "EMAIL",
    "SQLITE_DDL",
    "UniqueKey",
    "conflict",
    "derive_keys",
    "email_conflict",
    "primary_email",
    "sqlite_backfill",
    "sqlite_delete_keys",
    "sqlite_write_keys",
]

EMAIL = "email"
"""The normalised primary email of a User."""

_KINDS_OF_TYPE: Mapping[str, frozenset[str]] = {"User": frozenset({EMAIL})}


@dataclass(frozen=True, slots=True)
class UniqueKey:
    kind: str
    key: str
    """The comparable form (the normalised address)."""
    shown: str
    """The value as the client wrote it, for the error message."""


def primary_email(resource: Mapping[str, Any]) -> NormalizedEmail | None:
    """The normalised primary email of a User (``primary: true``, else the first entry);
    None when there is none or it is not a usable address."""
    emails = resource.get("emails")
    if not isinstance(emails, list):
        return None
    entries = [e for e in emails if isinstance(e, Mapping) and isinstance(e.get("value"), str)]
    chosen = next((e for e in entries if e.get("primary") is True), None)
    if chosen is None and entries:
        chosen = entries[0]
    if chosen is None:
        return None
    value = chosen["value"]
    last = _LAST_EMAIL[0]
    if last[0] == value:  # the same address again (an import asks twice per user)
        return last[1]
    try:
        email: NormalizedEmail | None = normalize_email(value)
    except EmailError:
        email = None
    _LAST_EMAIL[0] = (value, email)
    return email


_LAST_EMAIL: list[tuple[object, NormalizedEmail | None]] = [(None, None)]
"""The last address ``primary_email`` normalised and its result (immutable): a one-entry
memo, replaced whole."""


def kinds_of(rtype: ResourceType) -> frozenset[str]:
    """The derived key kinds a resource type has (none for most)."""
    return _KINDS_OF_TYPE.get(rtype.name, frozenset())


def derive_keys(rtype: ResourceType, resource: Mapping[str, Any]) -> tuple[UniqueKey, ...]:
    """The derived unique keys of ``resource`` (the state about to be stored)."""
    if EMAIL not in kinds_of(rtype):
        return ()
    email = primary_email(resource)
    if email is None:
        return ()
    return (UniqueKey(EMAIL, email.address, email.original),)


def email_conflict(shown: str) -> Uniqueness:
    return Uniqueness(
        f"The email {shown!r} is already the primary email of another user "
        "(emails are unique per tenant: scim.unique_email)"
    )


def conflict(key: UniqueKey) -> Uniqueness:
    """The 409 ``uniqueness`` error for a key another resource holds."""
    if key.kind == EMAIL:
        return email_conflict(key.shown)
    return Uniqueness(f"The {key.kind} {key.shown!r} is already in use")  # pragma: no cover


# ---------------------------------------------------------------------- SQLite

SQLITE_DDL = (
    """CREATE TABLE unique_keys (
        pk INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        shared INTEGER NOT NULL DEFAULT 0
    )""",
    # The constraint itself: one non-shared holder per (tenant, kind, key).
    "CREATE UNIQUE INDEX unique_keys_key ON unique_keys (tenant, kind, key) WHERE shared = 0",
    "CREATE INDEX unique_keys_all ON unique_keys (tenant, kind, key, pk)",
    "CREATE INDEX unique_keys_pk ON unique_keys (pk)",
)


def sqlite_write_keys(
    conn: sqlite3.Connection,
    tenant: str,
    rtype: ResourceType,
    pk: int,
    resource: Mapping[str, Any],
    enforce: frozenset[str],
) -> None:
    """Make the keys of resource ``pk`` those of ``resource``, inside the caller's write
    transaction; raise ``Uniqueness`` (before changing anything) when a new key of a kind
    in ``enforce`` belongs to another resource. Keys the resource already had are kept."""
    if not kinds_of(rtype):
        return
    old = {
        (kind, key)
        for kind, key in conn.execute("SELECT kind, key FROM unique_keys WHERE pk = ?", (pk,))
    }
    new = {(k.kind, k.key): k for k in derive_keys(rtype, resource)}
    inserts: list[tuple[int, str, str, str, int]] = []
    for (kind, key), uk in new.items():
        if (kind, key) in old:
            continue
        taken = conn.execute(
            "SELECT 1 FROM unique_keys WHERE tenant = ? AND kind = ? AND key = ? AND pk <> ?"
            " LIMIT 1",
            (tenant, kind, key, pk),
        ).fetchone()
        if taken is not None and kind in enforce:
            raise conflict(uk)
        inserts.append((pk, tenant, kind, key, 1 if taken is not None else 0))
    conn.executemany(
        "DELETE FROM unique_keys WHERE pk = ? AND kind = ? AND key = ?",
        [(pk, kind, key) for kind, key in old - new.keys()],
    )
    try:
        conn.executemany(
            "INSERT INTO unique_keys (pk, tenant, kind, key, shared) VALUES (?, ?, ?, ?, ?)",
            inserts,
        )
    except sqlite3.IntegrityError as exc:  # pragma: no cover - the writer is serialised
        raise conflict(new[(inserts[0][2], inserts[0][3])]) from exc


def sqlite_delete_keys(conn: sqlite3.Connection, pk: int) -> None:
    conn.execute("DELETE FROM unique_keys WHERE pk = ?", (pk,))


def sqlite_backfill(
    conn: sqlite3.Connection, resource_type: Callable[[str], ResourceType | None]
) -> int:
    """Fill ``unique_keys`` for the stored resources (a migration): in ``pk`` order, the
    first holder of a key owns it and later ones share it (legacy duplicates stay
    editable). Returns the number of shared keys."""
    conn.execute("DELETE FROM unique_keys")
    names = [row[0] for row in conn.execute("SELECT DISTINCT rtype FROM resources")]
    for name in names:
        rtype = resource_type(name)
        if rtype is None or not kinds_of(rtype):
            continue
        rows = conn.execute(
            "SELECT pk, tenant, data FROM resources WHERE rtype = ? ORDER BY pk", (name,)
        ).fetchall()
        for pk, tenant, data in rows:
            sqlite_write_keys(conn, tenant, rtype, pk, orjson.loads(data), frozenset())
    shared = conn.execute("SELECT count(*) FROM unique_keys WHERE shared = 1").fetchone()[0]
    return int(shared)
