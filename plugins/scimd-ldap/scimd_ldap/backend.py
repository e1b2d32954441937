"""The ``ldap`` backend: SCIM resources as entries of an LDAP directory.

Layout: ``<rdn>=<value>,<container>,<tenant base>`` where the tenant base is the configured
``base_dn`` (single tenant) or ``ou=<tenant>,<base_dn>`` (``multi_tenant = true``, created
on first write). The SCIM ``id`` is ``entryUUID`` (``objectGUID`` with ``profile = "ad"``,
see ``scimd_ldap.ad``). See ``scimd_ldap.mapping`` for what goes
where.

Writes are read-modify-write with a compare-and-swap on ``scimdVersion`` inside the same
LDAP modify (delete the old value, add the new one: the server applies a modify atomically
and fails it with noSuchAttribute when the version moved). A lost race is retried from a
fresh read, or answered 412 when the request carried If-Match. Only changed values are sent;
``member`` values are added and deleted one by one, never rewritten whole. A change of the
RDN value is a modrdn first (so a name clash changes nothing), and group ``member``
references to a renamed or deleted entry are updated by the backend (no refint needed).

Queries push a superset filter (``scimd_ldap.compiler``) with the paged results control,
then every candidate is checked with the reference evaluator; sort and paging happen in
memory over at most ``max_scan`` candidates (more is 400 tooMany).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import random
import re
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import ldap  # type: ignore[import-untyped]
import ldap.dn  # type: ignore[import-untyped]
import orjson
from ldap.controls import SimplePagedResultsControl  # type: ignore[import-untyped]
from ldap.controls.sss import SSSRequestControl  # type: ignore[import-untyped]
from ldap.controls.vlv import (  # type: ignore[import-untyped]
    VLVRequestControl,
    VLVResponseControl,
)
from ldap.filter import escape_filter_chars  # type: ignore[import-untyped]

from scimd import errors
from scimd.backend import (
    Backend,
    BackendEnv,
    Capabilities,
    Keyset,
    OpContext,
    Page,
    PatchOp,
    Query,
    SortSpec,
)
from scimd.patch import apply_patch
from scimd.query.ast import AttrPath
from scimd.query.evaluate import matches
from scimd.query.planner import filterable_key
from scimd.query.sort import keyset_key, sort_key, sort_value
from scimd.store.sqlite import etag_matches
from scimd_ldap.ad import (
    complete_ranges,
    guid_filter_value,
    guid_text,
    uac_active,
    uac_with_active,
    unicode_pwd,
)
from scimd_ldap.adapter import LdapPool
from scimd_ldap.compiler import compile_filter
from scimd_ldap.errors import to_scim
from scimd_ldap.mapping import (
    TypeMap,
    ad_group_map,
    ad_user_map,
    default_group_map,
    default_user_map,
    fold,
    get_path,
    overlay,
    to_ldap,
)

if TYPE_CHECKING:
    from scimd.schema.model import ResourceType

__all__ = ["LdapBackend"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NOT_SHADOWED = frozenset({"id", "meta", "members", "groups", "password"})
_UAC = "userAccountControl"
_NEVER_READ = frozenset({"userpassword", "unicodepwd"})
_RETRIES = 25
SORT_CONTROL = "1.2.840.113556.1.4.473"
"""RFC 2891 server-side sort request control."""
VLV_CONTROL = "2.16.840.1.113730.3.4.9"
"""draft-ietf-ldapext-ldapv3-vlv virtual list view request control."""
PASSWORD_MODIFY = "1.3.6.1.4.1.4203.1.11.1"  # noqa: S105 - an extended operation OID
"""RFC 3062 Password Modify extended operation."""
_NO_SERVER_SORT = (
    ldap.UNAVAILABLE_CRITICAL_EXTENSION,
    ldap.INAPPROPRIATE_MATCHING,
    ldap.NO_SUCH_ATTRIBUTE,
    ldap.UNDEFINED_TYPE,
    ldap.UNWILLING_TO_PERFORM,
    ldap.PROTOCOL_ERROR,
)
"""Result codes of a search whose sort/VLV request the server refused: list in memory."""
_MAX_NESTING = 32
"""Most levels of nested groups followed for a user's indirect ``groups``."""

Entry = tuple[str, dict[str, list[str]]]


class _Conflict(Exception):
    """The entry changed between read and write (the version CAS failed)."""


class _NoServerSort(Exception):
    """The directory refused the sort/VLV request for this list."""


def _decode(attrs: Mapping[str, list[bytes]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, vs in attrs.items():
        low = k.lower()
        if low in _NEVER_READ:
            continue
        if low == "objectguid":
            out[k] = [guid_text(v) for v in vs if len(v) == 16]
        else:
            out[k] = [v.decode("utf-8", "replace") for v in vs]
    return out


def _first(attrs: Mapping[str, list[str]], name: str) -> str | None:
    for k, v in attrs.items():
        if k.lower() == name.lower() and v:
            return v[0]
    return None


def _values(attrs: Mapping[str, list[str]], name: str) -> list[str]:
    for k, v in attrs.items():
        if k.lower() == name.lower():
            return list(v)
    return []


def _timestamp(generalized: str | None) -> str:
    """``20261128132000Z`` (GeneralizedTime) -> ``2026-11-28T13:20:00Z``."""
    g = generalized or "19700101000000Z"
    frac = ""
    if "." in g:
        g, _, rest = g.partition(".")
        frac = "." + rest.rstrip("Z")
        g += "Z"
    return f"{g[0:4]}-{g[4:6]}-{g[6:8]}T{g[8:10]}:{g[10:12]}:{g[12:14]}{frac}Z"


def _norm_dn(dn: str) -> str:
    try:
        return str(ldap.dn.dn2str(ldap.dn.str2dn(dn))).lower()
    except ldap.DECODING_ERROR:
        return dn.lower()


def _shadow_values(resource: Mapping[str, Any]) -> list[str]:
    return sorted(
        f"{k}={orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()}"
        for k, v in resource.items()
        if k not in _NOT_SHADOWED
    )


def _parse_shadow(values: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for value in values:
        key, _, raw = value.partition("=")
        try:
            out[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
    return out


def _diff(attr: str, old: list[str], new: list[str]) -> list[tuple[int, str, list[bytes] | None]]:
    """Value-level modifications turning ``old`` into ``new`` (nothing when equal)."""
    if old == new or (set(old) == set(new) and len(old) == len(new)):
        return []
    if not new:
        return [(ldap.MOD_DELETE, attr, None)]
    removed = [v.encode() for v in old if v not in new]
    added = [v.encode() for v in new if v not in old]
    mods: list[tuple[int, str, list[bytes] | None]] = []
    if removed:
        mods.append((ldap.MOD_DELETE, attr, removed))
    if added:
        mods.append((ldap.MOD_ADD, attr, added))
    return mods


def _with_indirect(
    direct: list[dict[str, Any]],
    dn: str,
    parents: Mapping[str, list[str]],
    refs: Mapping[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """``direct`` plus the groups reached through them (``type: indirect``), each once;
    ``parents`` maps a normalised DN to the normalised DNs of its direct groups."""
    out = list(direct)
    seen = {dn, *parents.get(dn, [])}
    todo = list(parents.get(dn, []))
    while todo:
        group = todo.pop()
        for parent in parents.get(group, []):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
                out.append({**refs[parent], "type": "indirect"})
    return out


def _trim(ctx: OpContext, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop ``members``/``groups`` the request does not load."""
    for r in resources:
        if not ctx.load_members:
            r.pop("members", None)
        if not ctx.load_groups:
            r.pop("groups", None)
    return resources


def _keyset_page(ctx: OpContext, ordered: list[dict[str, Any]], q: Query) -> Page:
    """The cursor page (RFC 9865) of ``ordered`` (every match, in ``sort_key`` order): the
    ``q.count`` resources strictly after ``q.keyset`` (or strictly before it, for a
    ``prev`` keyset), with the keysets of the pages around it and the exact total. A
    keyset is a position, so it needs not name an existing resource."""
    keys = [sort_key(r, q.sort) for r in ordered]
    count, ks = max(q.count, 0), q.keyset
    try:
        if ks is None:
            lo, hi = 0, min(len(ordered), count)
        elif ks.direction == "prev":
            hi = bisect.bisect_left(keys, keyset_key(ks, q.sort))  # first one not before
            lo = max(0, hi - count)
        else:
            lo = bisect.bisect_right(keys, keyset_key(ks, q.sort))  # first one after
            hi = min(len(ordered), lo + count)
    except TypeError:
        raise errors.InvalidCursor("The cursor does not fit this query") from None

    def at(i: int, direction: Literal["next", "prev"]) -> Keyset:
        value = sort_value(ordered[i], q.sort.path) if q.sort is not None else None
        return Keyset(value, str(ordered[i]["id"]), direction)

    page = ordered[lo:hi]
    return Page(
        _trim(ctx, page),
        len(ordered),
        next_keyset=at(hi - 1, "next") if page and hi < len(ordered) else None,
        prev_keyset=at(lo, "prev") if page and lo > 0 else None,
    )


def _vlv_count(ctrls: Any) -> int | None:
    """The VLV response's content count from an error's raw controls, or None."""
    for ctrl in ctrls or ():
        oid, _crit, value = ctrl
        if oid == VLVResponseControl.controlType and value:
            resp = VLVResponseControl()
            resp.decodeControlValue(value)
            return int(resp.contentCount)
    return None


def _renamer(dn: str, rdn: str) -> Callable[[Any], None]:
    def go(conn: Any) -> None:
        conn.rename_s(dn, rdn, None, 1)

    return go


class LdapBackend(Backend):
    """SCIM Users and Groups in an LDAP directory (python-ldap behind ``LdapPool``)."""

    wants_plaintext_password = True
    """The service hands the SCIM ``password`` over as given (not as an argon2id hash): the
    directory stores and checks it (userPassword / unicodePwd). It is sent only over an
    encrypted connection (unless ``allow_insecure_password``), never shadowed nor logged."""

    def __init__(self, env: BackendEnv, *, initialize: Callable[[str], Any] | None = None) -> None:
        o = env.options
        self.profile = str(o.get("profile") or "openldap").lower()
        if self.profile not in {"openldap", "ad"}:
            raise errors.ServiceUnavailable('storage.ldap.profile must be "openldap" or "ad"')
        self.ad = self.profile == "ad"
        self.id_attr = "objectGUID" if self.ad else "entryUUID"
        self.read_attrs = (
            ["*", "objectGUID", "whenCreated", "whenChanged"]
            if self.ad
            else ["*", "entryUUID", "createTimestamp", "modifyTimestamp"]
        )
        self.password_attr = str(
            o.get("password_attribute") or ("unicodePwd" if self.ad else "userPassword")
        )
        self.allow_insecure_password = bool(o.get("allow_insecure_password", False))
        self.registry = env.registry
        self.base_dn = str(o.get("base_dn") or "")
        if not self.base_dn:
            raise errors.ServiceUnavailable("storage.ldap.base_dn is not set")
        self.multi_tenant = bool(o.get("multi_tenant", False))
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        # AD has no scimdResource class: the mapped attributes are the whole resource.
        self.shadow = bool(o.get("shadow", True)) and not self.ad
        self.max_scan = int(o.get("max_scan", 10000))
        self.server_sort = str(o.get("server_side_sort") or "auto").lower()
        extop = str(o.get("password_modify") or "auto").lower()
        self.use_password_modify = extop != "off"
        for key, value in (("server_side_sort", self.server_sort), ("password_modify", extop)):
            if value not in {"auto", "off"}:
                raise errors.ServiceUnavailable(f'storage.ldap.{key} must be "auto" or "off"')
        self._root_dse: tuple[frozenset[str], frozenset[str]] | None = None
        self.page_size = int(o.get("page_size", 500))
        self.timeout = float(o.get("timeout", 10.0))
        self.empty_member = str(o.get("empty_member", ""))
        users = str(o.get("users_container", "ou=people"))
        groups = str(o.get("groups_container", "ou=groups"))
        if self.ad:
            try:
                user_map = ad_user_map(
                    users,
                    username=str(o.get("ad_username_attribute") or "sAMAccountName"),
                    external_id=o.get("external_id_attribute") or None,
                )
            except ValueError as exc:
                raise errors.ServiceUnavailable(f"storage.ldap: {exc}") from None
            self.maps: dict[str, TypeMap] = {"User": user_map, "Group": ad_group_map(groups)}
        else:
            self.maps = {
                "User": default_user_map(
                    users,
                    external_id=o.get("external_id_attribute") or None,
                    active=o.get("active_attribute") or None,
                ),
                "Group": default_group_map(groups),
            }
        try:
            self.pool = LdapPool(
                str(o.get("url") or ""),
                str(o.get("bind_dn") or ""),
                str(o.get("bind_password") or ""),
                size=int(o.get("pool_size", 4)),
                timeout=self.timeout,
                start_tls=bool(o.get("start_tls", False)),
                tls_ca_file=str(o.get("tls_ca_file") or ""),
                tls_require_cert=str(o.get("tls_require_cert") or "demand"),
                initialize=initialize,
            )
        except ValueError as exc:
            raise errors.ServiceUnavailable(f"storage.ldap: {exc}") from None
        filterable = {"id", "members.value"}
        for tmap in self.maps.values():
            filterable.update(a.scim.lower() for a in tmap.attrs)
        self.capabilities = Capabilities(
            filter_ops=frozenset({"eq", "ne", "co", "sw", "ew", "pr"}),
            filterable=frozenset(filterable),
            cursor=True,
            etag=self.shadow,
            transactions=False,
            multi_tenant=self.multi_tenant,
            max_results=int(o.get("max_results", 1000)),
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.pool.check()
        except ldap.LDAPError as exc:
            raise to_scim(exc) from exc

    async def aclose(self) -> None:
        await self.pool.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, fn: Any) -> Any:
        try:
            return await self.pool.run(fn)
        except ldap.LDAPError as exc:
            raise to_scim(exc) from exc

    async def _features(self) -> tuple[frozenset[str], frozenset[str]]:
        """The root DSE's ``supportedControl`` and ``supportedExtension`` (read once)."""
        if self._root_dse is None:

            def go(conn: Any) -> tuple[frozenset[str], frozenset[str]]:
                res = conn.search_st(
                    "",
                    ldap.SCOPE_BASE,
                    "(objectClass=*)",
                    ["supportedControl", "supportedExtension"],
                    timeout=self.timeout,
                )
                attrs = _decode(res[0][1]) if res else {}
                return (
                    frozenset(_values(attrs, "supportedControl")),
                    frozenset(_values(attrs, "supportedExtension")),
                )

            try:
                self._root_dse = await self.pool.run(go)
            except (ldap.NO_SUCH_OBJECT, ldap.INSUFFICIENT_ACCESS):
                self._root_dse = (frozenset(), frozenset())  # root DSE hidden: assume nothing
            except ldap.LDAPError as exc:
                raise to_scim(exc) from exc
        return self._root_dse

    def _tenant_base(self, ctx: OpContext) -> str:
        if not self.multi_tenant:
            return self.base_dn
        return f"ou={ldap.dn.escape_dn_chars(ctx.tenant)},{self.base_dn}"

    def _map(self, rtype: ResourceType) -> TypeMap:
        tmap = self.maps.get(rtype.name)
        if tmap is None:
            raise errors.NotImplementedFeature(f"the ldap backend does not map {rtype.name}")
        return tmap

    def _container(self, ctx: OpContext, tmap: TypeMap) -> str:
        return f"{tmap.container},{self._tenant_base(ctx)}"

    def _oc_filter(self, tmap: TypeMap) -> str:
        return tmap.search_filter or f"(objectClass={tmap.object_classes[-1]})"

    def _id_filter(self, rid: str) -> str:
        if self.ad:
            value = guid_filter_value(rid)
            return f"(objectGUID={value})" if value else "(!(objectClass=*))"
        return f"(entryUUID={escape_filter_chars(rid)})"

    def _rid(self, attrs: Mapping[str, list[str]]) -> str | None:
        return _first(attrs, self.id_attr)

    def _view(self, attrs: Mapping[str, list[str]]) -> dict[str, list[str]]:
        """``attrs`` as the mapping reads them (AD: userAccountControl as TRUE/FALSE)."""
        out = dict(attrs)
        if self.ad:
            for k in list(out):
                if k.lower() == _UAC.lower():
                    out[k] = ["TRUE" if uac_active(_first(attrs, _UAC)) else "FALSE"]
        return out

    def _password_mod(self, resource: Mapping[str, Any]) -> tuple[str, list[bytes]] | None:
        """The LDAP attribute and value setting ``resource``'s password, or None."""
        password = resource.get("password")
        if password is None:
            return None
        if not isinstance(password, str) or not password:
            raise errors.InvalidValue("password must be a non-empty string")
        if not self.pool.encrypted and not self.allow_insecure_password:
            raise errors.Forbidden(
                "Passwords are only sent to the directory over an encrypted connection "
                "(ldaps:// or storage.ldap.start_tls)"
            )
        if self.password_attr.lower() == "unicodepwd":
            return self.password_attr, [unicode_pwd(password)]
        return self.password_attr, [password.encode()]

    async def _password_exop(self) -> bool:
        """Whether passwords go through the RFC 3062 Password Modify extended operation
        (OpenLDAP ``userPassword`` and advertised): the server hashes them by its policy."""
        if self.ad or not self.use_password_modify:
            return False
        if self.password_attr.lower() != "userpassword":
            return False
        _, extensions = await self._features()
        return PASSWORD_MODIFY in extensions

    async def _set_password(self, dn: str, password: str) -> None:
        def go(conn: Any) -> None:
            conn.passwd_s(dn, None, password)

        await self._run(go)

    def _search(
        self, base: str, flt: str, attrs: list[str], scope: int, *, too_many: str = ""
    ) -> Any:
        limit, page_size, timeout, ranged = self.max_scan, self.page_size, self.timeout, self.ad
        too_many = too_many or f"More than {limit} directory entries match; narrow the filter"

        def complete(conn: Any, dn: str, raw: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
            if not ranged or not any(";range=" in k.lower() for k in raw):
                return raw

            def fetch(wanted: str) -> Mapping[str, list[bytes]]:
                res = conn.search_st(
                    dn, ldap.SCOPE_BASE, "(objectClass=*)", [wanted], timeout=timeout
                )
                return res[0][1] if res else {}

            return complete_ranges(fetch, raw)

        def go(conn: Any) -> list[Entry]:
            ctrl = SimplePagedResultsControl(True, size=page_size, cookie="")
            out: list[Entry] = []
            while True:
                try:
                    msgid = conn.search_ext(
                        base, scope, flt, attrs, serverctrls=[ctrl], timeout=timeout
                    )
                    _, data, _, sctrls = conn.result3(msgid, timeout=timeout)
                except ldap.NO_SUCH_OBJECT:
                    return out
                out.extend((dn, _decode(complete(conn, dn, a))) for dn, a in data if dn)
                if len(out) > limit:
                    raise errors.TooMany(too_many)
                cookie = next((c.cookie for c in sctrls if c.controlType == ctrl.controlType), b"")
                if not cookie:
                    return out
                ctrl.cookie = cookie

        return go

    async def _find(self, ctx: OpContext, tmap: TypeMap, rid: str) -> Entry:
        if not isinstance(rid, str) or not _UUID.match(rid):
            raise errors.NotFound(f"Resource {rid!r} not found")
        flt = f"(&{self._oc_filter(tmap)}{self._id_filter(rid)})"
        found = await self._run(
            self._search(self._container(ctx, tmap), flt, self.read_attrs, ldap.SCOPE_ONELEVEL)
        )
        if not found:
            raise errors.NotFound(f"Resource {rid!r} not found")
        return found[0]  # type: ignore[no-any-return]

    async def _dns_of(self, ctx: OpContext, ids: Sequence[str]) -> dict[str, str]:
        """entryUUID -> DN for ``ids`` in the tenant (unknown ids are absent)."""
        wanted = sorted({i for i in ids if isinstance(i, str) and _UUID.match(i)})
        out: dict[str, str] = {}
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            flt = "(|" + "".join(self._id_filter(i) for i in chunk) + ")"
            for dn, attrs in await self._run(
                self._search(self._tenant_base(ctx), flt, [self.id_attr], ldap.SCOPE_SUBTREE)
            ):
                out[(self._rid(attrs) or "").lower()] = dn
        return {i: out[i.lower()] for i in ids if i.lower() in out}

    async def _ids_of(self, dns: Sequence[str], cache: dict[str, tuple[str, str] | None]) -> None:
        """Fill ``cache`` (normalised DN -> (entryUUID, "User"|"Group") or None)."""
        todo = [dn for dn in dns if _norm_dn(dn) not in cache]
        if not todo:
            return
        group_oc = self.maps["Group"].object_classes[-1].lower()
        id_attr = self.id_attr

        def go(conn: Any) -> dict[str, tuple[str, str] | None]:
            found: dict[str, tuple[str, str] | None] = {}
            for dn in todo:
                try:
                    res = conn.search_st(
                        dn,
                        ldap.SCOPE_BASE,
                        "(objectClass=*)",
                        [id_attr, "objectClass"],
                        timeout=self.timeout,
                    )
                except (ldap.NO_SUCH_OBJECT, ldap.INVALID_DN_SYNTAX):
                    found[_norm_dn(dn)] = None
                    continue
                attrs = _decode(res[0][1]) if res else {}
                kind = (
                    "Group"
                    if group_oc in {c.lower() for c in _values(attrs, "objectClass")}
                    else "User"
                )
                rid = _first(attrs, id_attr)
                found[_norm_dn(dn)] = (rid, kind) if rid else None
            return found

        cache.update(await self._run(go))

    async def _groups_by_member(self, ctx: OpContext) -> dict[str, list[dict[str, Any]]]:
        """Normalised member DN -> the ``groups`` values of that member, for a tenant."""
        gmap = self.maps["Group"]
        out: dict[str, list[dict[str, Any]]] = {}
        entries = await self._run(
            self._search(
                self._container(ctx, gmap),
                self._oc_filter(gmap),
                [self.id_attr, "member", "scimdAttr", gmap.rdn],
                ldap.SCOPE_ONELEVEL,
            )
        )
        refs: dict[str, dict[str, Any]] = {}
        parents: dict[str, list[str]] = {}
        for gdn, attrs in entries:
            ref = {
                "value": self._rid(attrs),
                "display": self._group_name(attrs),
                "type": "direct",
            }
            refs[_norm_dn(gdn)] = ref
            for member in _values(attrs, "member"):
                out.setdefault(_norm_dn(member), []).append(ref)
                parents.setdefault(_norm_dn(member), []).append(_norm_dn(gdn))
        return {dn: _with_indirect(direct, dn, parents, refs) for dn, direct in out.items()}

    def _group_name(self, attrs: Mapping[str, list[str]]) -> str | None:
        gmap = self.maps["Group"]
        names = get_path(
            overlay(gmap, _parse_shadow(_values(attrs, "scimdAttr")), attrs), "displayName"
        )
        return names[0] if names else None

    async def _to_scim(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        entry: Entry,
        *,
        members: bool,
        groups: dict[str, list[dict[str, Any]]] | None,
        cache: dict[str, tuple[str, str] | None],
    ) -> dict[str, Any]:
        dn, attrs = entry
        tmap = self._map(rtype)
        resource = overlay(tmap, _parse_shadow(_values(attrs, "scimdAttr")), self._view(attrs))
        resource.setdefault("schemas", [rtype.schema.id])
        resource["id"] = self._rid(attrs)
        version = _first(attrs, "scimdVersion") or "0"
        resource["meta"] = {
            "resourceType": rtype.name,
            "created": _timestamp(_first(attrs, self.read_attrs[2])),
            "lastModified": _timestamp(_first(attrs, self.read_attrs[3])),
            "version": f'W/"{version}"',
        }
        if rtype.name == "Group" and members:
            dns = [d for d in _values(attrs, "member") if d != self.empty_member]
            await self._ids_of(dns, cache)
            refs = [cache.get(_norm_dn(d)) for d in dns]
            out = [{"value": r[0], "type": r[1]} for r in refs if r]
            if out:
                resource["members"] = sorted(out, key=lambda m: m["value"])
        if rtype.name == "User" and groups is not None:
            mine = groups.get(_norm_dn(dn), [])
            if mine:
                resource["groups"] = sorted(
                    (copy.copy(g) for g in mine), key=lambda g: str(g["value"])
                )
        return resource

    async def _load(self, ctx: OpContext, rtype: ResourceType, entry: Entry) -> dict[str, Any]:
        groups = None
        if rtype.name == "User" and ctx.load_groups:
            groups = await self._groups_of(ctx, entry[0])
        return await self._to_scim(
            ctx, rtype, entry, members=ctx.load_members, groups=groups, cache={}
        )

    async def _groups_of(self, ctx: OpContext, dn: str) -> dict[str, list[dict[str, Any]]]:
        """The ``groups`` of the entry ``dn``: the groups listing it as a ``member``
        (``direct``), then the groups listing those, and so on (``indirect``), level by
        level (at most ``_MAX_NESTING`` levels; cycles end it)."""
        gmap = self.maps["Group"]
        seen = {_norm_dn(dn)}
        level, refs, first = [dn], [], True
        for _ in range(_MAX_NESTING):
            if not level:
                break
            found: list[Entry] = []
            for start in range(0, len(level), 50):
                members = "".join(
                    f"(member={escape_filter_chars(d)})" for d in level[start : start + 50]
                )
                found += await self._run(
                    self._search(
                        self._container(ctx, gmap),
                        f"(&{self._oc_filter(gmap)}(|{members}))",
                        [self.id_attr, "scimdAttr", gmap.rdn],
                        ldap.SCOPE_ONELEVEL,
                    )
                )
            level = []
            for gdn, a in found:
                if _norm_dn(gdn) in seen:
                    continue
                seen.add(_norm_dn(gdn))
                level.append(gdn)
                refs.append(
                    {
                        "value": self._rid(a),
                        "display": self._group_name(a),
                        "type": "direct" if first else "indirect",
                    }
                )
            first = False
        return {_norm_dn(dn): refs}

    # -- writes -----------------------------------------------------------------------------

    def _uniqueness(self, rtype: ResourceType, tmap: TypeMap) -> errors.Uniqueness:
        return errors.Uniqueness(f"{tmap.rdn_scim} is already in use")

    def _rdn_unique(self, rtype: ResourceType, tmap: TypeMap) -> bool:
        defn = rtype.lookup(None, tmap.rdn_scim)
        return defn is None or defn.uniqueness != "none"

    def _rdn(self, tmap: TypeMap, resource: Mapping[str, Any], key: str | None = None) -> str:
        values = get_path(resource, tmap.rdn_scim)
        if not values:
            raise errors.InvalidValue(f"{tmap.rdn_scim} is required")
        rdn = f"{tmap.rdn}={ldap.dn.escape_dn_chars(values[0])}"
        return f"{rdn}+scimdKey={key}" if key else rdn

    async def _member_dns(self, ctx: OpContext, resource: Mapping[str, Any]) -> list[str]:
        ids = [str(m.get("value")) for m in resource.get("members") or [] if m.get("value")]
        found = await self._dns_of(ctx, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise errors.InvalidValue(f"members refer to unknown resources: {missing[:5]}")
        return list(dict.fromkeys(found[i] for i in ids))

    async def _ensure_containers(self, ctx: OpContext) -> None:
        dns = []
        if self.multi_tenant:
            dns.append(self._tenant_base(ctx))
        dns += [self._container(ctx, t) for t in self.maps.values()]

        def go(conn: Any) -> None:
            for dn in dns:
                rdn = ldap.dn.str2dn(dn)[0][0]
                with contextlib.suppress(ldap.ALREADY_EXISTS):
                    conn.add_s(
                        dn,
                        [
                            ("objectClass", [b"top", b"organizationalUnit"]),
                            (rdn[0], [rdn[1].encode()]),
                        ],
                    )

        await self._run(go)

    async def create(
        self, ctx: OpContext, rtype: ResourceType, resource: dict[str, Any]
    ) -> dict[str, Any]:
        tmap = self._map(rtype)
        body = {k: v for k, v in resource.items() if k not in _NOT_SHADOWED}
        mapped = to_ldap(tmap, body)
        if self.ad and _UAC in mapped:
            mapped[_UAC] = [uac_with_active(None, mapped[_UAC][0] == "TRUE")]
        password = self._password_mod(resource) if rtype.name == "User" else None
        exop = password is not None and await self._password_exop()
        attrs: dict[str, list[str]] = {"objectClass": list(tmap.object_classes), **mapped}
        if self.shadow:
            attrs["objectClass"].append("scimdResource")
            attrs["scimdAttr"] = _shadow_values(body)
            attrs["scimdVersion"] = ["1"]
        if rtype.name == "Group":
            attrs["member"] = await self._member_dns(ctx, resource) or self._no_members()
        modlist = [(k, [v.encode() for v in vs]) for k, vs in attrs.items() if vs]
        if password and not exop:
            modlist.append(password)
        container = self._container(ctx, tmap)
        keys: list[str | None] = [None]
        if self.shadow and not self._rdn_unique(rtype, tmap):
            keys.append(uuid.uuid4().hex)
        for key in keys:
            dn = f"{self._rdn(tmap, body, key)},{container}"
            entry_mods = modlist + ([("scimdKey", [key.encode()])] if key else [])
            try:
                await self._add(ctx, dn, entry_mods)
                break
            except errors.Uniqueness:
                if key == keys[-1]:
                    raise self._uniqueness(rtype, tmap) from None
        if exop:
            try:
                await self._set_password(dn, str(resource["password"]))
            except BaseException:
                # No account without the password the client asked for.
                with contextlib.suppress(ldap.LDAPError):
                    await self.pool.run(lambda c: c.delete_s(dn))
                raise
        found = await self._run(
            self._search(dn, "(objectClass=*)", self.read_attrs, ldap.SCOPE_BASE)
        )
        return await self._load(ctx, rtype, found[0])

    def _no_members(self) -> list[str]:
        """The ``member`` values of an empty group (groupOfNames needs one; AD none)."""
        return [] if self.ad else [self.empty_member]

    async def _add(self, ctx: OpContext, dn: str, modlist: list[Any]) -> None:
        try:
            await self.pool.run(lambda conn: conn.add_s(dn, modlist))
            return
        except ldap.NO_SUCH_OBJECT:
            pass
        except ldap.LDAPError as exc:
            raise to_scim(exc) from exc
        await self._ensure_containers(ctx)
        await self._run(lambda conn: conn.add_s(dn, modlist))

    async def get(self, ctx: OpContext, rtype: ResourceType, rid: str) -> dict[str, Any]:
        tmap = self._map(rtype)
        return await self._load(ctx, rtype, await self._find(ctx, tmap, rid))

    async def _write(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        if_match: str | None,
        compute: Any,
    ) -> dict[str, Any]:
        # Writers to one entry in this process queue up (the version CAS still guards
        # against other processes and direct directory changes).
        async with self._entry_lock(ctx.tenant, rid):
            return await self._write_locked(ctx, rtype, rid, if_match, compute)

    def _entry_lock(self, tenant: str, rid: str) -> asyncio.Lock:
        key = (tenant, rid.lower() if isinstance(rid, str) else str(rid))
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _write_locked(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        if_match: str | None,
        compute: Any,
    ) -> dict[str, Any]:
        tmap = self._map(rtype)
        for attempt in range(_RETRIES):
            if attempt:
                # Lost a race on scimdVersion: back off (jittered, bounded) so a crowd of
                # writers to one entry (e.g. 50 member adds to a group) spreads out.
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # noqa: S311
            dn, attrs = await self._find(ctx, tmap, rid)
            version = int(_first(attrs, "scimdVersion") or 0)
            if if_match is not None and not etag_matches(if_match, version):
                raise errors.PreconditionFailed("The resource has changed (If-Match)")
            full = OpContext(ctx.tenant, ctx.principal, ctx.request_id)
            old = await self._to_scim(full, rtype, (dn, attrs), members=True, groups=None, cache={})
            new = compute(old)
            try:
                await self._apply(ctx, rtype, tmap, dn, attrs, old, new, version)
            except _Conflict:
                if if_match is not None:
                    raise errors.PreconditionFailed("The resource has changed (If-Match)") from None
                continue
            return await self.get(ctx, rtype, rid)
        raise errors.ServiceUnavailable("Too many concurrent changes to this resource")

    async def _apply(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        tmap: TypeMap,
        dn: str,
        attrs: dict[str, list[str]],
        old: dict[str, Any],
        new: dict[str, Any],
        version: int,
    ) -> None:
        body = {k: v for k, v in new.items() if k not in _NOT_SHADOWED}
        password = self._password_mod(new) if rtype.name == "User" else None  # before any write
        new_ldap = to_ldap(tmap, body)
        new_rdn = new_ldap.get(tmap.rdn, [])
        renamed_from: str | None = None
        if new_rdn and fold(new_rdn[:1]) != fold(get_path(old, tmap.rdn_scim)[:1]):
            parent = dn.split(",", 1)[1] if "," in dn else ""
            keys: list[str | None] = [None]
            if self.shadow and not self._rdn_unique(rtype, tmap):
                keys.append(uuid.uuid4().hex)
            for key in keys:
                rdn = self._rdn(tmap, body, key)
                try:
                    await self.pool.run(_renamer(dn, rdn))
                except ldap.ALREADY_EXISTS:
                    if key == keys[-1]:
                        raise self._uniqueness(rtype, tmap) from None
                    continue
                except ldap.LDAPError as exc:
                    raise to_scim(exc) from exc
                renamed_from, dn = dn, f"{rdn},{parent}"
                break
        mods: list[tuple[int, str, list[bytes] | None]] = []
        old_ldap = {
            a: _values(attrs, a)
            for a in set(new_ldap) | {m.ldap for m in tmap.attrs} | set(tmap.fillers)
        }
        if self.ad and tmap.ldap_of("active") == _UAC:
            if _UAC in new_ldap:
                new_ldap[_UAC] = [uac_with_active(_first(attrs, _UAC), new_ldap[_UAC][0] == "TRUE")]
            else:  # no active in the new state: the account's flags stay as they are
                new_ldap[_UAC] = _values(attrs, _UAC)
        for attr, old_values in sorted(old_ldap.items()):
            if attr.lower() == tmap.rdn.lower():
                continue
            if self.ad and attr == _UAC:  # single-valued flags: one replace
                if new_ldap.get(_UAC) and new_ldap[_UAC] != old_values:
                    mods.append((ldap.MOD_REPLACE, _UAC, [new_ldap[_UAC][0].encode()]))
                continue
            mods += _diff(attr, old_values, new_ldap.get(attr, []))
        if rtype.name == "Group":
            old_members = _values(attrs, "member")
            wanted = await self._member_dns(ctx, new) or self._no_members()
            old_norm = {_norm_dn(d): d for d in old_members}
            new_norm = {_norm_dn(d): d for d in wanted}
            gone = [d for n, d in old_norm.items() if n not in new_norm]
            added = [d for n, d in new_norm.items() if n not in old_norm]
            if added:
                mods.append((ldap.MOD_ADD, "member", [d.encode() for d in added]))
            if gone:
                mods.append((ldap.MOD_DELETE, "member", [d.encode() for d in gone]))
        if password and await self._password_exop():
            # Before the other changes: a password the server's policy refuses changes
            # nothing (a retry after a lost version race sets it again, harmlessly).
            try:
                await self._set_password(dn, str(new["password"]))
            except BaseException:
                await self._undo_rename(renamed_from, dn)
                raise
        elif password:
            mods.append((ldap.MOD_REPLACE, password[0], password[1]))
        if self.shadow:
            mods += _diff("scimdAttr", sorted(_values(attrs, "scimdAttr")), _shadow_values(body))
            if version:
                mods.append((ldap.MOD_DELETE, "scimdVersion", [str(version).encode()]))
            else:
                mods.append((ldap.MOD_ADD, "objectClass", [b"scimdResource"]))
            mods.append((ldap.MOD_ADD, "scimdVersion", [str(version + 1).encode()]))
        try:
            if mods:
                await self.pool.run(lambda c: c.modify_s(dn, mods))
        except (ldap.NO_SUCH_ATTRIBUTE, ldap.TYPE_OR_VALUE_EXISTS) as exc:
            await self._undo_rename(renamed_from, dn)
            raise _Conflict from exc
        except ldap.LDAPError as exc:
            await self._undo_rename(renamed_from, dn)
            raise to_scim(exc) from exc
        if renamed_from:
            await self._repoint_members(ctx, renamed_from, dn)

    async def _undo_rename(self, old_dn: str | None, dn: str) -> None:
        if old_dn:
            rdn = old_dn.split(",", 1)[0]
            await self._run(lambda c: c.rename_s(dn, rdn, None, 1))

    async def _repoint_members(self, ctx: OpContext, old_dn: str, new_dn: str | None) -> None:
        """Replace (or, with ``new_dn`` None, remove) ``member: old_dn`` in the tenant's groups."""
        gmap = self.maps["Group"]
        flt = f"(&{self._oc_filter(gmap)}(member={escape_filter_chars(old_dn)}))"
        entries = await self._run(
            self._search(self._container(ctx, gmap), flt, ["1.1"], ldap.SCOPE_ONELEVEL)
        )
        empty = self.empty_member.encode()

        def go(conn: Any) -> None:
            for gdn, _ in entries:
                mods: list[Any] = [(ldap.MOD_DELETE, "member", [old_dn.encode()])]
                if new_dn:
                    mods.append((ldap.MOD_ADD, "member", [new_dn.encode()]))
                try:
                    conn.modify_s(gdn, mods)
                except ldap.OBJECT_CLASS_VIOLATION:
                    conn.modify_s(gdn, [(ldap.MOD_ADD, "member", [empty]), *mods])
                except (ldap.NO_SUCH_ATTRIBUTE, ldap.NO_SUCH_OBJECT):
                    continue

        await self._run(go)

    async def replace(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        resource: dict[str, Any],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        def compute(old: dict[str, Any]) -> dict[str, Any]:
            return copy.deepcopy(resource)

        return await self._write(ctx, rtype, rid, if_match, compute)

    async def patch(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        rid: str,
        ops: Sequence[PatchOp],
        *,
        if_match: str | None,
    ) -> dict[str, Any]:
        def compute(old: dict[str, Any]) -> dict[str, Any]:
            return copy.deepcopy(apply_patch(rtype, old, ops).resource)

        return await self._write(ctx, rtype, rid, if_match, compute)

    async def delete(
        self, ctx: OpContext, rtype: ResourceType, rid: str, *, if_match: str | None
    ) -> None:
        tmap = self._map(rtype)
        dn, attrs = await self._find(ctx, tmap, rid)
        version = int(_first(attrs, "scimdVersion") or 0)
        if if_match is not None and not etag_matches(if_match, version):
            raise errors.PreconditionFailed("The resource has changed (If-Match)")
        await self._run(lambda c: c.delete_s(dn))
        await self._repoint_members(ctx, dn, None)

    # -- queries ----------------------------------------------------------------------------

    def _resolver(self, tmap: TypeMap) -> Any:
        def resolve(path: AttrPath) -> str | None:
            key = filterable_key(path)
            if key == "id":
                return self.id_attr
            for a in tmap.attrs:
                if a.scim.lower() == key:
                    # AD's active is a bit in userAccountControl: no LDAP equality narrows
                    # it faithfully, so it is checked on the candidates only.
                    return None if self.ad and a.ldap == _UAC else a.ldap
            return None

        return resolve

    async def query(self, ctx: OpContext, rtype: ResourceType, q: Query) -> Page:
        tmap = self._map(rtype)
        if q.paging == "cursor" and await self._cursor_in_directory(q):
            try:
                return await self._query_cursor_vlv(ctx, rtype, tmap, q)
            except _NoServerSort:
                pass  # the directory refused the sort: in memory
        if q.filter is None and q.paging == "index":
            key = await self._server_sort_key(rtype, tmap, q.sort)
            if key is not None:
                try:
                    return await self._query_vlv(ctx, rtype, tmap, q, key)
                except _NoServerSort:
                    pass  # e.g. no ordering rule for that attribute: sort in memory
        flt = self._oc_filter(tmap)
        if q.filter is not None:
            pushed = compile_filter(q.filter, self._resolver(tmap))
            if pushed:
                flt = f"(&{flt}{pushed})"
        why = (
            "the filter is checked by the bridge"
            if q.filter is not None
            else "the directory offers no server-side sort and VLV for it (OpenLDAP: load "
            "the sssvlv overlay)"
        )
        entries = await self._run(
            self._search(
                self._container(ctx, tmap),
                flt,
                self.read_attrs,
                ldap.SCOPE_ONELEVEL,
                too_many=f"More than {self.max_scan} directory entries match this list; "
                f"{why}, so it is sorted and paged in memory over at most "
                "storage.ldap.max_scan entries: narrow the filter",
            )
        )
        # Members and groups are read even when the response omits them: the filter and
        # sort may use them.
        resources = await self._resources(ctx, rtype, entries, groups=True)
        if q.filter is not None:
            resources = [r for r in resources if matches(q.filter, r)]
        resources.sort(key=lambda r: sort_key(r, q.sort))
        if q.paging == "cursor":
            return _keyset_page(ctx, resources, q)
        start = max(q.start_index, 1) - 1
        return Page(_trim(ctx, resources[start : start + max(q.count, 0)]), len(resources))

    async def _resources(
        self, ctx: OpContext, rtype: ResourceType, entries: Sequence[Entry], *, groups: bool
    ) -> list[dict[str, Any]]:
        by_member = await self._groups_by_member(ctx) if rtype.name == "User" and groups else None
        cache: dict[str, tuple[str, str] | None] = {}
        return [
            await self._to_scim(ctx, rtype, e, members=True, groups=by_member, cache=cache)
            for e in entries
        ]

    # -- server-side sort and VLV -------------------------------------------------------------

    async def _server_sort_key(
        self, rtype: ResourceType, tmap: TypeMap, sort: SortSpec | None
    ) -> tuple[str, str, bool] | None:
        """``(attribute, ordering rule, always present)`` for sorting this list in the
        directory, or None (in-memory path): OpenLDAP profile, ``server_side_sort`` not off,
        sort and VLV controls advertised, and a sort attribute the directory orders the way
        the reference does (``scimd.query.sort``): ``id``, ``meta.created``/``lastModified``
        and single-valued string attributes mapped to one LDAP attribute."""
        if self.ad or self.server_sort == "off":
            return None
        controls, _ = await self._features()
        if not {SORT_CONTROL, VLV_CONTROL} <= controls:
            return None
        if sort is None:
            return self.id_attr, "", True
        path = sort.path
        key = filterable_key(path)
        if key == "id":
            return self.id_attr, "", True
        if key in {"meta.created", "meta.lastmodified"}:
            return self.read_attrs[2 if key == "meta.created" else 3], "", True
        defn = path.defn
        if defn is None or defn.type not in {"string", "reference"} or defn.multi_valued:
            return None
        if defn.parent is not None and defn.parent.multi_valued:
            return None
        attr = next((a.ldap for a in tmap.attrs if a.scim.lower() == key), None)
        if attr is None or sum(a.ldap.lower() == attr.lower() for a in tmap.attrs) > 1:
            return None
        if attr.lower() in {f.lower() for f in tmap.fillers}:
            return None  # e.g. sn holds userName when familyName is absent
        rule = "caseExactOrderingMatch" if defn.case_exact else "caseIgnoreOrderingMatch"
        return attr, rule, attr.lower() == tmap.rdn.lower()

    async def _query_vlv(
        self,
        ctx: OpContext,
        rtype: ResourceType,
        tmap: TypeMap,
        q: Query,
        key: tuple[str, str, bool],
    ) -> Page:
        """One page of an unfiltered list, sorted and cut by the directory (sort + VLV by
        offset); ``totalResults`` is the VLV content count."""
        attr, rule, always = key
        desc = q.sort is not None and q.sort.descending
        sign = "-" if desc else ""
        keys = [f"{sign}{attr}:{rule}" if rule else f"{sign}{attr}"]
        if attr != self.id_attr:
            keys.append(f"{sign}{self.id_attr}")  # ties by id, as the reference order
        base, oc = self._container(ctx, tmap), self._oc_filter(tmap)
        start, count = max(q.start_index, 1), max(q.count, 0)
        if not desc or always:
            entries, total = await self._vlv(base, oc, keys, start, count)
        else:
            # RFC 2891 puts entries without the attribute first in a reverse sort; the
            # reference keeps them last in both directions: two lists, then concatenated.
            escaped = escape_filter_chars(attr)
            entries, with_value = await self._vlv(base, f"(&{oc}({escaped}=*))", keys, start, count)
            rest = count - len(entries) if start + count - 1 > with_value else 0
            more, without = await self._vlv(
                base,
                f"(&{oc}(!({escaped}=*)))",
                [f"-{self.id_attr}"],
                max(1, start - with_value),
                rest,
            )
            entries += more
            total = with_value + without
        resources = await self._resources(ctx, rtype, entries, groups=ctx.load_groups)
        return Page(_trim(ctx, resources), total)

    def _sorted_search(self, conn: Any, base: str, flt: str, keys: list[str], vlv: Any) -> Any:
        """In a worker thread: one search with the sort control (``keys``) and the VLV
        request ``vlv``; returns the entries and the VLV response control, or None when
        the container does not exist yet. ``_NoServerSort`` when the directory cannot sort
        it; ``ldap.VLV_ERROR`` passes."""
        ctrls = [SSSRequestControl(criticality=True, ordering_rules=keys), vlv]
        try:
            msgid = conn.search_ext(
                base,
                ldap.SCOPE_ONELEVEL,
                flt,
                self.read_attrs,
                serverctrls=ctrls,
                timeout=self.timeout,
            )
            _, data, _, sctrls = conn.result3(msgid, timeout=self.timeout)
        except ldap.NO_SUCH_OBJECT:
            return None
        except ldap.VLV_ERROR:
            raise
        except _NO_SERVER_SORT as exc:
            raise _NoServerSort from exc
        resp = next((c for c in sctrls if c.controlType == VLVResponseControl.controlType), None)
        if resp is None or resp.result != 0:
            raise _NoServerSort
        return [(dn, _decode(a)) for dn, a in data if dn], resp

    async def _vlv(
        self, base: str, flt: str, keys: list[str], start: int, count: int
    ) -> tuple[list[Entry], int]:
        """Entries ``start .. start+count-1`` (1-based) of the sorted search, and how many
        entries the search has. One search with the sort and VLV controls, on a connection
        closed afterwards (sssvlv keeps a VLV context per connection until it closes)."""

        def go(conn: Any) -> tuple[list[Entry], int]:
            vlv = VLVRequestControl(
                criticality=True,
                before_count=0,
                after_count=max(count - 1, 0),
                offset=start,
                content_count=0,
            )
            try:
                found = self._sorted_search(conn, base, flt, keys, vlv)
            except ldap.VLV_ERROR as exc:
                # offset past the end (offsetRangeError): no entries; the count is in the
                # response control when the server sent one.
                total = _vlv_count(exc.args[0].get("ctrls") if exc.args else None)
                if total is None:
                    raise _NoServerSort from exc
                return [], total
            if found is None:
                return [], 0
            entries, resp = found
            return (entries[:count] if start <= resp.contentCount else []), resp.contentCount

        try:
            return await self.pool.run(go, discard=True)
        except ldap.LDAPError as exc:
            raise to_scim(exc) from exc

    # -- cursor paging positioned by the directory ------------------------------------------

    async def _cursor_in_directory(self, q: Query) -> bool:
        """Whether this cursor page can be positioned by the directory: an unfiltered list
        in ascending ``id`` order (no sortBy, or sortBy=id) on OpenLDAP with server-side
        sort and VLV, and a keyset naming a UUID (an odd keyset is a position the
        in-memory path handles)."""
        if self.ad or self.server_sort == "off" or q.filter is not None:
            return False
        if q.sort is not None and (q.sort.descending or filterable_key(q.sort.path) != "id"):
            return False
        if q.keyset is not None and not _UUID.match(q.keyset.id):
            return False
        controls, _ = await self._features()
        return {SORT_CONTROL, VLV_CONTROL} <= controls

    async def _query_cursor_vlv(
        self, ctx: OpContext, rtype: ResourceType, tmap: TypeMap, q: Query
    ) -> Page:
        """A cursor page (RFC 9865) in entryUUID order, cut by the directory: sort by
        entryUUID (``UUIDOrderingMatch``: the order of the ids' text) with a VLV request
        targeted at the keyset's id (``greaterThanOrEqual``), ``count`` entries after it
        (``next``) or before it (``prev``). The VLV response's target position and content
        count say whether pages exist before and after, and give the exact total. One
        search per page, whatever the directory's size (no ``max_scan`` bound)."""
        count, ks = max(q.count, 0), q.keyset
        base, oc = self._container(ctx, tmap), self._oc_filter(tmap)
        prev = ks is not None and ks.direction == "prev"
        if ks is None:
            vlv = VLVRequestControl(criticality=True, after_count=count, offset=1, content_count=0)
        else:
            vlv = VLVRequestControl(
                criticality=True,
                before_count=count if prev else 0,
                after_count=0 if prev else count,
                greater_than_or_equal=ks.id.lower(),
            )
        keys = [self.id_attr]

        def go(conn: Any) -> Any:
            try:
                return self._sorted_search(conn, base, oc, keys, vlv)
            except ldap.VLV_ERROR as exc:  # e.g. a target the server will not position
                raise _NoServerSort from exc

        try:
            found = await self.pool.run(go, discard=True)
        except ldap.LDAPError as exc:
            raise to_scim(exc) from exc
        if found is None:
            return Page([], 0)
        entries, resp = found
        total, target = resp.contentCount, resp.targetPosition
        rid = ks.id.lower() if ks is not None else ""
        if ks is None:
            page, first = entries[:count], 1
        elif prev:
            before = [e for e in entries if (self._rid(e[1]) or "") < rid]
            page = before[len(before) - count :] if count else []
            first = target - len(page)
        else:
            page = [e for e in entries if (self._rid(e[1]) or "") > rid][:count]
            first = target + sum(1 for e in entries if (self._rid(e[1]) or "") <= rid)
        resources = await self._resources(ctx, rtype, page, groups=ctx.load_groups)

        def at(r: dict[str, Any], direction: Literal["next", "prev"]) -> Keyset:
            value = r["id"] if q.sort is not None else None
            return Keyset(value, str(r["id"]), direction)

        return Page(
            _trim(ctx, resources),
            total,
            next_keyset=at(resources[-1], "next")
            if page and first + len(page) - 1 < total
            else None,
            prev_keyset=at(resources[0], "prev") if page and first > 1 else None,
        )
