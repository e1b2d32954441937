"""A small real HTTP service implementing a typical SaaS "members" API, for testing the
``rest`` backend (and reusable by third parties writing mappings): users at
``/api/v1/users``, teams with member lists at ``/api/v1/teams``, in-memory storage,
paging by page number, offset, cursor or next URL (``style``), errors as
``{"error": {"code", "message"}}``, and faults on demand (``faults``: 429 with
``Retry-After``, 503, a slow answer held until ``release()``, a dropped connection).

    api = MembersAPI(token="t", style="page")
    await api.start()           # api.base is http://127.0.0.1:<port>
    ...
    await api.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

__all__ = ["Fault", "MembersAPI"]

_USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "status",
    "role",
    "external_id",
    "custom_attributes",
)


_BODY = web.RequestKey("body", dict)


@dataclass
class Fault:
    kind: str  # "status" | "slow" | "drop"
    status: int = 503
    retry_after: str | None = None
    method: str | None = None
    """Only requests with this method meet the fault (None: any)."""


@dataclass
class MembersAPI:
    token: str = "test-token"  # noqa: S105 - the fake service's own test credential
    style: str = "page"  # page | offset | cursor | url
    max_page: int = 100
    faults: list[Fault] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    base: str = ""
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _clock: datetime = field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._gate])
        for kind in ("users", "teams"):
            app.router.add_get(f"/api/v1/{kind}", self._list)
            app.router.add_post(f"/api/v1/{kind}", self._create)
            app.router.add_get(f"/api/v1/{kind}/{{id}}", self._get)
            app.router.add_put(f"/api/v1/{kind}/{{id}}", self._replace)
            app.router.add_patch(f"/api/v1/{kind}/{{id}}", self._update)
            app.router.add_delete(f"/api/v1/{kind}/{{id}}", self._delete)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def release(self) -> None:
        """Let held ("slow") answers go."""
        self._released.set()

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- plumbing --------------------------------------------------------------------------

    @staticmethod
    def error(status: int, code: str, message: str, **headers: str) -> web.Response:
        body = {"error": {"code": code, "message": message}}
        return web.json_response(body, status=status, headers=headers or None)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen[request.method] += 1
        fault = next((f for f in self.faults if f.method in (None, request.method)), None)
        if fault is not None:
            self.faults.remove(fault)
        if fault is not None:
            if fault.kind == "drop":
                assert request.transport is not None
                request.transport.close()
                raise asyncio.CancelledError
            if fault.kind == "slow":
                await self._released.wait()
            if fault.kind == "status":
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return self.error(fault.status, "unavailable", "injected", **extra)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(401, "unauthorized", "invalid API token")
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                body = await request.json()
            except ValueError:
                return self.error(400, "bad_request", "body is not JSON")
            if not isinstance(body, dict):
                return self.error(400, "bad_request", "body must be an object")
            request[_BODY] = body
        result: web.StreamResponse = await handler(request)
        return result

    def _now(self) -> str:
        # Strictly increasing, so updated_at (and the version scimd derives) moves on.
        self._clock = max(self._clock + timedelta(microseconds=1), datetime.now(UTC))
        return self._clock.isoformat()

    def _store(self, request: web.Request) -> tuple[str, dict[str, dict[str, Any]]]:
        kind = request.path.split("/")[3]
        return kind, self.users if kind == "users" else self.teams

    def _conflict(self, kind: str, doc: dict[str, Any], rid: str | None) -> web.Response | None:
        if kind == "users":
            name = doc.get("username")
            if not isinstance(name, str) or not name:
                return self.error(422, "validation_failed", "username is required")
            for other in self.users.values():
                same = str(other.get("username", "")).lower() == name.lower()
                if same and other["id"] != rid:
                    return self.error(409, "username_taken", f"username {name} is taken")
            if doc.get("status") not in (None, "active", "suspended"):
                return self.error(422, "validation_failed", "status is active or suspended")
            return None
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            return self.error(422, "validation_failed", "name is required")
        for other in self.teams.values():
            if str(other.get("name", "")).lower() == name.lower() and other["id"] != rid:
                return self.error(409, "name_taken", f"team {name} exists")
        for m in doc.get("members") or []:
            if not isinstance(m, dict) or m.get("user_id") not in self.users:
                return self.error(422, "unknown_member", "members must be existing users")
        return None

    @staticmethod
    def _fields(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        if kind == "users":
            return {k: doc.get(k) for k in _USER_FIELDS if k in doc}
        out: dict[str, Any] = {
            k: doc[k] for k in ("name", "description", "custom_attributes") if k in doc
        }
        if "members" in doc:
            out["members"] = [{"user_id": m["user_id"]} for m in doc.get("members") or []]
        return out

    # -- handlers --------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        kind, store = self._store(request)
        doc = self._fields(kind, request[_BODY])
        if kind == "teams":
            doc.setdefault("members", [])
        bad = self._conflict(kind, doc, None)
        if bad is not None:
            return bad
        now = self._now()
        doc.update(id=uuid.uuid4().hex, created_at=now, updated_at=now, seq=next(self._seq))
        store[doc["id"]] = doc
        return web.json_response(self._out(doc), status=201)

    @staticmethod
    def _out(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k != "seq"}

    def _find(self, request: web.Request) -> tuple[str, dict[str, Any] | None]:
        kind, store = self._store(request)
        return kind, store.get(request.match_info["id"])

    async def _get(self, request: web.Request) -> web.Response:
        _kind, doc = self._find(request)
        if doc is None:
            return self.error(404, "not_found", "no such record")
        return web.json_response(self._out(doc))

    async def _replace(self, request: web.Request, *, merge: bool = False) -> web.Response:
        kind, doc = self._find(request)
        if doc is None:
            return self.error(404, "not_found", "no such record")
        new = self._fields(kind, request[_BODY])
        if merge:
            new = {**self._fields(kind, doc), **new}
            new = {k: v for k, v in new.items() if v is not None}
        if kind == "teams":
            new.setdefault("members", [])
        bad = self._conflict(kind, new, doc["id"])
        if bad is not None:
            return bad
        keep = {k: doc[k] for k in ("id", "created_at", "seq")}
        doc.clear()
        doc.update(new, **keep, updated_at=self._now())
        return web.json_response(self._out(doc))

    async def _update(self, request: web.Request) -> web.Response:
        return await self._replace(request, merge=True)

    async def _delete(self, request: web.Request) -> web.Response:
        kind, store = self._store(request)
        if store.pop(request.match_info["id"], None) is None:
            return self.error(404, "not_found", "no such record")
        if kind == "users":
            uid = request.match_info["id"]
            for team in self.teams.values():
                team["members"] = [m for m in team["members"] if m["user_id"] != uid]
        return web.Response(status=204)

    def _matching(self, kind: str, query: Any) -> list[dict[str, Any]]:
        store = self.users if kind == "users" else self.teams
        docs = sorted(store.values(), key=lambda d: d["seq"])
        insensitive = {"username", "email", "name"}
        exact = {"external_id", "status"}
        for key in insensitive | exact:
            if key in query:
                want = query[key]
                docs = [
                    d
                    for d in docs
                    if isinstance(d.get(key), str)
                    and (d[key].lower() == want.lower() if key in insensitive else d[key] == want)
                ]
        if "member_id" in query:
            uid = query["member_id"]
            docs = [d for d in docs if any(m["user_id"] == uid for m in d.get("members", []))]
        return docs

    async def _list(self, request: web.Request) -> web.Response:
        kind, _store = self._store(request)
        q = request.rel_url.query
        docs = self._matching(kind, q)
        try:
            size = int(q.get("per_page" if self.style == "page" else "limit", "25"))
            if self.style == "page":
                start = (int(q.get("page", "1")) - 1) * size
            elif self.style == "offset":
                start = int(q.get("offset", "0"))
            else:
                start = int(q.get("cursor", "0") or "0")
        except ValueError:
            return self.error(400, "bad_request", "paging parameters are integers")
        if size < 1 or size > self.max_page or start < 0:
            return self.error(400, "bad_request", f"page size is 1..{self.max_page}")
        items = [self._out(d) for d in docs[start : start + size]]
        body: dict[str, Any] = {"data": items}
        more = start + size < len(docs)
        if self.style in ("page", "offset"):
            body["total"] = len(docs)
        elif self.style == "cursor":
            body["next_cursor"] = str(start + size) if more else None
        else:
            rest = {k: v for k, v in q.items() if k != "cursor"}
            rest.update(cursor=str(start + size), limit=str(size))
            link = request.rel_url.with_query(rest)
            body["links"] = {"next": str(link) if more else None}
        return web.json_response(body)
