"""What the AD profile does against a directory, as scenarios run twice: live against a
Samba AD DC while recording (``tests/fixtures/ad/record.py``, ``test_ad_live.py``) and
against the recordings (``test_ad.py``). Each returns what it observed, for the tests to
check; it must make the same calls each time (fixed names, values and order)."""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]
from scimd_ldap.adtesting import AD_ADMIN_DN, AD_ADMIN_PASSWORD, Recorder, SambaServer
from scimd_ldap.backend import LdapBackend

from scimd import errors
from scimd.backend import BackendEnv, OpContext, Query
from scimd.patch import parse_patch_request
from scimd.query.parse import parse_filter
from scimd.schema.model import ResourceType, SchemaRegistry
from scimd.testing import build_contract_registry

CTX = OpContext("default", "test", "req-1")
PASSWORD = "Scimd-Us3r-Pa55!"  # noqa: S105 - throwaway accounts
NEW_PASSWORD = "An0ther-Pa55-word"  # noqa: S105
BIG = 1600
"""Members of the large group: more than Samba's (and AD's) MaxValRange of 1500."""


def make_backend(
    registry: SchemaRegistry,
    base: str,
    initialize: Callable[[str], Any],
    ca_file: str = "ca.pem",
    **options: Any,
) -> LdapBackend:
    opts = {
        "profile": "ad",
        "url": "ldaps://127.0.0.1:636",
        "tls_ca_file": ca_file,
        "bind_dn": "CN=Administrator,CN=Users,DC=corp,DC=example",
        "bind_password": "Scimd-Test-Pa55!",
        "base_dn": base,
        "users_container": "OU=Users",
        "groups_container": "OU=Groups",
        "pool_size": 1,
        **options,
    }
    return LdapBackend(
        BackendEnv(options=opts, registry=registry, base_dir=Path(".")), initialize=initialize
    )


def rt(registry: SchemaRegistry, name: str) -> ResourceType:
    found = registry.resource_type(name)
    assert found is not None
    return found


def patch_body(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(ops)}


async def _error(coro: Any) -> dict[str, Any]:
    try:
        await coro
    except errors.ScimError as exc:
        return {"status": exc.status, "scimType": exc.scim_type, "detail": exc.detail}
    raise AssertionError("no error")


async def users(backend: LdapBackend, registry: SchemaRegistry) -> dict[str, Any]:
    """Create (with a password, over LDAPS), get by objectGUID, filter, deactivate and
    reactivate, replace without ``active``, change the password, delete."""
    users = rt(registry, "User")
    out: dict[str, Any] = {}
    out["created"] = created = await backend.create(
        CTX,
        users,
        {
            "schemas": [users.schema.id],
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs Jensen",
            "emails": [{"value": "bjensen@corp.example"}],
            "title": "Tour Guide",
            "active": True,
            "password": PASSWORD,
        },
    )
    rid = created["id"]
    out["got"] = await backend.get(CTX, users, rid)
    page = await backend.query(
        CTX, users, Query(filter=parse_filter('userName eq "bjensen"', users))
    )
    out["by_name"] = [r["id"] for r in page.resources]
    page = await backend.query(CTX, users, Query(filter=parse_filter(f'id eq "{rid}"', users)))
    out["by_id"] = [r["id"] for r in page.resources]
    off = parse_patch_request(
        users, patch_body({"op": "replace", "path": "active", "value": False})
    )
    out["deactivated"] = await backend.patch(CTX, users, rid, off, if_match=None)
    on = parse_patch_request(users, patch_body({"op": "replace", "path": "active", "value": True}))
    out["reactivated"] = await backend.patch(CTX, users, rid, on, if_match=None)
    out["replaced"] = await backend.replace(
        CTX,
        users,
        rid,
        {"schemas": [users.schema.id], "userName": "bjensen", "displayName": "Barbara J"},
        if_match=None,
    )
    pw = parse_patch_request(
        users, patch_body({"op": "replace", "path": "password", "value": NEW_PASSWORD})
    )
    out["password_changed"] = await backend.patch(CTX, users, rid, pw, if_match=None)
    await backend.delete(CTX, users, rid, if_match=None)
    out["after_delete"] = await _error(backend.get(CTX, users, rid))
    return out


async def errors_(backend: LdapBackend, registry: SchemaRegistry) -> dict[str, Any]:
    """What AD answers to a duplicate account, a password its policy refuses, an unknown
    and a malformed objectGUID."""
    users = rt(registry, "User")
    body = {"schemas": [users.schema.id], "userName": "dup", "active": True}
    await backend.create(CTX, users, body)
    return {
        "duplicate": await _error(backend.create(CTX, users, body)),
        "weak_password": await _error(
            backend.create(
                CTX, users, {"schemas": [users.schema.id], "userName": "weak", "password": "x1"}
            )
        ),
        "unknown": await _error(backend.get(CTX, users, "12345678-1234-5678-9abc-def012345678")),
        "malformed": await _error(backend.get(CTX, users, "*)(objectClass=*")),
    }


async def groups(backend: LdapBackend, registry: SchemaRegistry) -> dict[str, Any]:
    """A group with members by objectGUID, member add and remove as value-level modifies, an
    empty group, a user's ``groups``."""
    users, groups = rt(registry, "User"), rt(registry, "Group")
    ids = {}
    for name in ("alice", "bob", "carol"):
        made = await backend.create(CTX, users, {"schemas": [users.schema.id], "userName": name})
        ids[name] = made["id"]
    out: dict[str, Any] = {"ids": ids}
    out["created"] = group = await backend.create(
        CTX,
        groups,
        {
            "schemas": [groups.schema.id],
            "displayName": "Staff",
            "members": [{"value": ids["alice"]}, {"value": ids["bob"]}],
        },
    )
    add = parse_patch_request(
        groups, patch_body({"op": "add", "path": "members", "value": [{"value": ids["carol"]}]})
    )
    out["added"] = await backend.patch(CTX, groups, group["id"], add, if_match=None)
    remove = parse_patch_request(
        groups, patch_body({"op": "remove", "path": f'members[value eq "{ids["alice"]}"]'})
    )
    out["removed"] = await backend.patch(CTX, groups, group["id"], remove, if_match=None)
    out["bob"] = await backend.get(CTX, users, ids["bob"])
    out["empty"] = await backend.create(
        CTX, groups, {"schemas": [groups.schema.id], "displayName": "Nobody"}
    )
    await backend.delete(CTX, groups, group["id"], if_match=None)
    out["bob_after"] = await backend.get(CTX, users, ids["bob"])
    return out


RANGE_MEMBERS = 1600
"""Members of the ``ranges`` recording's group: more than AD's MaxValRange (1500)."""
RANGE_REQUESTS = (
    ["member"],
    ["member;range=0-1499"],
    ["member;range=1500-*"],
    ["member;range=1000-2000"],
    ["member;range=1600-*"],
)
"""What the ``ranges`` recording asks for the group (raw searches, not the bridge)."""


def range_entries(base: str) -> tuple[str, list[tuple[str, list[tuple[str, list[bytes]]]]]]:
    """The group DN and the entries (users, then the group) of the ``ranges`` recording."""
    group = f"CN=Everyone,OU=Groups,{base}"
    dns = [f"CN=m{i:04d},OU=Users,{base}" for i in range(RANGE_MEMBERS)]
    entries = [
        (dn, [("objectClass", [b"user"]), ("sAMAccountName", [dn[3:8].encode()])]) for dn in dns
    ]
    entries.append((group, [("objectClass", [b"group"]), ("member", [d.encode() for d in dns])]))
    return group, entries


SCENARIOS = {"users": users, "errors": errors_, "groups": groups}


async def record(server: SambaServer, name: str, directory: Path) -> None:
    """Run scenario ``name`` (or the raw ``ranges`` searches) on ``server`` in a new
    organizational unit named after it, recording into ``directory/<name>.json``."""
    base = server.fresh_base(name, unique=False)
    recorder = Recorder()
    if name == "ranges":
        group, entries = range_entries(base)
        conn = server.connect()
        try:
            for dn, modlist in entries:
                conn.add_s(dn, modlist)
        finally:
            conn.unbind_s()
        rec = recorder.initialize(server.url)
        rec.set_option(ldap.OPT_X_TLS_CACERTFILE, server.ca_file)
        rec.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        rec.simple_bind_s(AD_ADMIN_DN, AD_ADMIN_PASSWORD)
        for attrs in RANGE_REQUESTS:
            rec.search_st(group, ldap.SCOPE_BASE, "(objectClass=*)", attrs)
        rec.unbind_s()
    else:
        registry = build_contract_registry(Path(tempfile.mkdtemp(prefix="scimd-schema-")))
        backend = make_backend(registry, base, recorder.initialize, server.ca_file)
        await backend.start()
        try:
            await SCENARIOS[name](backend, registry)
        finally:
            await backend.aclose()
    recorder.dump(
        directory / f"{name}.json",
        scenario=name,
        server=server.version,
        recorded=datetime.date.today().isoformat(),
        base_dn=base,
        command="python tests/fixtures/ad/record.py",
    )
