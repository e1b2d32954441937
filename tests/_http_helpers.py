"""HTTP test helpers: settings in a temp dir and ``Scim``, a client of a running app.

The fixtures that build them (``scim``, ``make_scim``, ``plugins``) are in ``conftest.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from scimd.app import create_app
from scimd.backend import Backend
from scimd.http.context import RUNTIME, Runtime
from scimd.plugins import PluginManager
from scimd.settings import AuthSettings, Settings, StateSettings, StorageSettings
from scimd.state.base import StateStore

__all__ = ["BASE", "SCIM_JSON", "AiohttpClient", "MakeScim", "Scim", "make_settings"]

BASE = "/scim/v2"
SCIM_JSON = "application/scim+json"

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


def make_settings(tmp_path: Path, **sections: Any) -> Settings:
    """Settings with every file in ``tmp_path``; ``sections`` replace whole sections
    (``scim=ScimSettings(...)``)."""
    base = Settings(
        storage=StorageSettings(
            backend="embedded", options={"embedded": {"path": str(tmp_path / "scimd.db")}}
        ),
        state=StateSettings(path=tmp_path / "state.db"),
        auth=AuthSettings(bootstrap_token=False),
        base_dir=tmp_path,
    )
    return dataclasses.replace(base, **sections)


class Scim:
    """A running scimd app with a read+write token of tenant ``default``."""

    def __init__(self, client: TestClient[web.Request, web.Application], token: str) -> None:
        self.client = client
        self.token = token

    @property
    def app(self) -> web.Application:
        app = self.client.app
        assert app is not None
        return app

    @property
    def runtime(self) -> Runtime:
        return self.app[RUNTIME]

    @property
    def state(self) -> StateStore:
        return self.runtime.state

    async def new_token(
        self,
        *,
        tenant: str = "default",
        scopes: tuple[str, ...] = ("read", "write"),
        me_user_id: str | None = None,
    ) -> str:
        _record, token = await self.state.create_token(
            tenant=tenant, scopes=scopes, me_user_id=me_user_id
        )
        return token

    def headers(
        self, token: str | None = None, *, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        out = {"Authorization": f"Bearer {token or self.token}"}
        out.update(extra or {})
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = SCIM_JSON,
        auth: bool = True,
    ) -> ClientResponse:
        """Send a request to ``BASE + path`` (or to ``path`` if it starts with ``//``).

        ``json`` is serialised with ``content_type`` (None: no Content-Type header at all).
        """
        url = path[1:] if path.startswith("//") else BASE + path
        hdrs: dict[str, str] = self.headers(token) if auth else {}
        body: bytes | str | None = data
        if json is not None:
            body = orjson.dumps(json)
        if body is not None and content_type is not None:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        if body is not None and content_type is None:
            # aiohttp would add application/octet-stream for bytes; Okta sends none.
            return await self.client.request(
                method, url, data=body, headers=hdrs, skip_auto_headers={"Content-Type"}
            )
        return await self.client.request(method, url, data=body, headers=hdrs)

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """``request`` and decode the JSON body (None when empty)."""
        resp = await self.request(method, path, **kw)
        raw = await resp.read()
        return resp.status, (orjson.loads(raw) if raw else None)

    async def create_user(self, user_name: str, **attrs: Any) -> dict[str, Any]:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            **attrs,
        }
        status, doc = await self.call("POST", "/Users", json=body)
        assert status == 201, doc
        assert isinstance(doc, dict)
        return doc

    async def create_group(self, name: str, members: Sequence[str] = ()) -> dict[str, Any]:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": [{"value": m} for m in members],
        }
        status, doc = await self.call("POST", "/Groups", json=body)
        assert status == 201, doc
        assert isinstance(doc, dict)
        return doc


MakeScim = Callable[..., Awaitable[Scim]]


async def start_scim(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    plugins: PluginManager,
    backend: Backend | None = None,
) -> Scim:
    """Serve ``create_app(settings, plugins)`` in the test client; mint a read+write token
    of tenant ``default``. The ``make_scim`` fixtures of the core and plugin suites use it."""
    app = create_app(settings, plugins, backend=backend)
    client = await aiohttp_client(app)
    _record, token = await app[RUNTIME].state.create_token(
        tenant="default", scopes=("read", "write")
    )
    return Scim(client, token)
