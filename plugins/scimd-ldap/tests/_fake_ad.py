"""A fake python-ldap connection replaying recorded Active Directory responses.

It stands where ``ldap.initialize(url)`` returns a connection (``LdapPool(initialize=...)``),
so everything above the adapter (pool, backend, errors) is the real code. Entries come from
``fixtures/ad_recorded.json``; searches understand the RFC 4515 subset the bridge sends
(``&``, ``|``, ``!``, ``=``, presence, substrings, ``\\XX`` escapes; objectGUID compared as
bytes, ``objectCategory=person`` as AD's shortcut for the category DN). A ``member`` with more
values than ``max_values`` is answered the way AD does: ``member;range=0-<n>`` and, on
request, the next slice; the group of the fixture returns its recorded pages verbatim.
Writes change the in-memory entries and are logged in ``calls``; ``fail_next`` makes the
next write raise a recorded error.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import ldap  # type: ignore[import-untyped]

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "ad_recorded.json").read_text())

_RANGE = re.compile(r"^member;range=(\d+)-(\d+|\*)$", re.IGNORECASE)


def _unescape(value: str) -> bytes:
    out = bytearray()
    i = 0
    raw = value.encode()
    while i < len(raw):
        if raw[i : i + 1] == b"\\":
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def _parse(flt: str, i: int = 0) -> tuple[Any, int]:
    assert flt[i] == "(", flt
    i += 1
    if flt[i] in "&|!":
        op = flt[i]
        i += 1
        items = []
        while flt[i] == "(":
            node, i = _parse(flt, i)
            items.append(node)
        assert flt[i] == ")"
        return (op, items), i + 1
    end = flt.index(")", i)
    attr, _, value = flt[i:end].partition("=")
    return ("=", attr, value), end + 1


class FakeDirectory:
    """The in-memory AD (shared by every connection of a pool)."""

    def __init__(self, max_values: int = 3) -> None:
        self.max_values = max_values
        self.entries: dict[str, dict[str, list[bytes]]] = {}
        self.pages: dict[str, dict[str, list[bytes]]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.fail_next: BaseException | None = None
        self.connections: list[FakeConnection] = []
        self.names: dict[str, str] = {}
        """Lower-cased DN -> the DN as written."""
        for e in FIXTURE["entries"]:
            attrs = {k: [v.encode() for v in vs] for k, vs in e["attrs"].items()}
            for k, h in e.get("hex", {}).items():
                attrs[k] = [bytes.fromhex(h)]
            self.entries[e["dn"].lower()] = attrs
            self.names[e["dn"].lower()] = e["dn"]
            if "member_pages" in e:
                self.pages[e["dn"].lower()] = {
                    k: [v.encode() for v in vs] for k, vs in e["member_pages"].items()
                }

    def initialize(self, url: str) -> FakeConnection:
        conn = FakeConnection(self, url)
        self.connections.append(conn)
        return conn

    # -- matching -------------------------------------------------------------------------

    def _values(self, attrs: dict[str, list[bytes]], name: str, dn: str) -> list[bytes]:
        for k, v in attrs.items():
            if k.lower() == name.lower():
                return v
        if name.lower() == "member" and dn.lower() in self.pages:
            return [v for page in self.pages[dn.lower()].values() for v in page]
        return []

    def _match(self, node: Any, dn: str, attrs: dict[str, list[bytes]]) -> bool:
        if node[0] == "&":
            return all(self._match(n, dn, attrs) for n in node[1])
        if node[0] == "|":
            return any(self._match(n, dn, attrs) for n in node[1])
        if node[0] == "!":
            return not self._match(node[1][0], dn, attrs)
        _, attr, value = node
        values = self._values(attrs, attr, dn)
        if value == "*":
            return bool(values)
        if attr.lower() == "objectguid":
            return _unescape(value) in values
        if attr.lower() == "objectcategory":
            return any(
                value.lower() in (v.decode().lower(), v.decode().split(",")[0][3:].lower())
                for v in values
            )
        if "*" in value:
            parts = [re.escape(_unescape(p).decode().lower()) for p in value.split("*")]
            rx = re.compile("^" + ".*".join(parts) + "$", re.DOTALL)
            return any(rx.match(v.decode().lower()) for v in values)
        want = _unescape(value).decode().lower()
        return any(v.decode().lower() == want for v in values)

    def _in_scope(self, dn: str, base: str, scope: int) -> bool:
        dn, base = dn.lower(), base.lower()
        if scope == ldap.SCOPE_BASE:
            return dn == base
        if not dn.endswith("," + base):
            return False
        return scope == ldap.SCOPE_SUBTREE or dn[: -len(base) - 1].count(",") == 0

    def _project(
        self, dn: str, attrs: dict[str, list[bytes]], wanted: list[str]
    ) -> dict[str, list[bytes]]:
        low = [w.lower() for w in wanted or ["*"]]
        ranged = next((w for w in low if _RANGE.match(w)), None)
        if ranged:
            return self._range(dn, ranged)
        out = {k: v for k, v in attrs.items() if "*" in low or k.lower() in low}
        if "*" in low or "member" in low:
            members = self._values(attrs, "member", dn)
            out = {k: v for k, v in out.items() if k.lower() != "member"}
            if dn.lower() in self.pages:
                first = next(iter(self.pages[dn.lower()].items()))
                out[first[0]] = first[1]
            elif len(members) > self.max_values:
                out[f"member;range=0-{self.max_values - 1}"] = members[: self.max_values]
            elif members:
                out["member"] = members
        return out

    def _range(self, dn: str, wanted: str) -> dict[str, list[bytes]]:
        m = _RANGE.match(wanted)
        assert m
        start = int(m.group(1))
        if dn.lower() in self.pages:  # the recorded pages, verbatim
            for key, values in self.pages[dn.lower()].items():
                if int(_RANGE.match(key).group(1)) == start:  # type: ignore[union-attr]
                    return {key: values}
            return {}
        members = self._values(self.entries[dn.lower()], "member", dn)
        chunk = members[start : start + self.max_values]
        end = start + len(chunk) - 1
        last = start + self.max_values >= len(members)
        return {f"member;range={start}-{'*' if last else end}": chunk}

    def search(self, base: str, scope: int, flt: str, attrs: list[str] | None) -> list[Any]:
        self.calls.append(("search", base, scope, flt, tuple(attrs or ())))
        node, _ = _parse(flt)
        if scope == ldap.SCOPE_BASE and base.lower() not in self.entries:
            raise ldap.NO_SUCH_OBJECT(
                {
                    "desc": "No such object",
                    "info": "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT), data 0",
                }
            )
        return [
            (self.names[dn], self._project(dn, a, list(attrs or ["*"])))
            for dn, a in self.entries.items()
            if self._in_scope(dn, base, scope) and self._match(node, dn, a)
        ]

    def _fail(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc


class FakeConnection:
    def __init__(self, directory: FakeDirectory, url: str) -> None:
        self.d = directory
        self.url = url
        self.options: dict[int, Any] = {}
        self.tls = url.lower().startswith("ldaps://")
        self.timeout: float = -1
        self._results: dict[int, Any] = {}
        self._msgid = 0

    def set_option(self, option: int, value: Any) -> None:
        self.options[option] = value

    def start_tls_s(self) -> None:
        self.tls = True

    def simple_bind_s(self, dn: str, password: str) -> None:
        self.d.calls.append(("bind", dn))

    def whoami_s(self) -> str:
        return "u:CORP\\scimd"

    def unbind_s(self) -> None:
        pass

    def search_ext(self, base: str, scope: int, flt: str, attrs: list[str], **kw: Any) -> int:
        self._msgid += 1
        try:
            self._results[self._msgid] = self.d.search(base, scope, flt, attrs)
        except ldap.LDAPError as exc:
            self._results[self._msgid] = exc
        return self._msgid

    def result3(self, msgid: int, timeout: float = -1) -> Any:
        res = self._results.pop(msgid)
        if isinstance(res, BaseException):
            raise res
        return 101, res, msgid, []  # no paged-results cookie: one page

    def search_st(
        self, base: str, scope: int, flt: str, attrs: list[str], timeout: float = -1
    ) -> Any:
        return self.d.search(base, scope, flt, attrs)

    def add_s(self, dn: str, modlist: list[tuple[str, list[bytes]]]) -> None:
        self.d.calls.append(("add", dn, modlist, self.tls))
        self.d._fail()
        if dn.lower() in self.d.entries:
            raise ldap.ALREADY_EXISTS(
                {
                    "desc": "Already exists",
                    "info": "00002071: UpdErr: DSID-030505F2, problem 6005 (ENTRY_EXISTS), data 0",
                }
            )
        attrs = {k: list(v) for k, v in modlist}
        attrs["objectGUID"] = [os.urandom(16)]
        attrs["whenCreated"] = attrs["whenChanged"] = [b"20261128120000.0Z"]
        attrs.setdefault(
            "objectCategory", [b"CN=Person,CN=Schema,CN=Configuration,DC=corp,DC=example"]
        )
        attrs.pop("unicodePwd", None)  # write-only on AD
        self.d.names[dn.lower()] = dn
        self.d.entries[dn.lower()] = attrs

    def modify_s(self, dn: str, mods: list[tuple[int, str, list[bytes] | None]]) -> None:
        self.d.calls.append(("modify", dn, mods, self.tls))
        self.d._fail()
        entry = self.d.entries[dn.lower()]
        for op, attr, values in mods:
            key = next((k for k in entry if k.lower() == attr.lower()), attr)
            if attr.lower() == "unicodepwd":
                continue
            if op == ldap.MOD_REPLACE:
                entry[key] = list(values or [])
            elif op == ldap.MOD_ADD:
                entry.setdefault(key, []).extend(values or [])
            elif values is None:
                entry.pop(key, None)
            else:
                entry[key] = [v for v in entry.get(key, []) if v not in values]

    def delete_s(self, dn: str) -> None:
        self.d.calls.append(("delete", dn))
        self.d._fail()
        del self.d.entries[dn.lower()]

    def rename_s(self, dn: str, rdn: str, newsuperior: Any = None, delold: int = 1) -> None:
        self.d.calls.append(("rename", dn, rdn))
        self.d._fail()
        entry = self.d.entries.pop(dn.lower())
        new = f"{rdn},{dn.split(',', 1)[1]}"
        self.d.names[new.lower()] = new
        self.d.entries[new.lower()] = entry
